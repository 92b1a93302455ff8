/** Structured JSON logs. Never pass tokens or message contents here: fields are logged verbatim. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

const SECRET_KEYS = /token|secret|authorization|password|content|ticket/i;

function scrub(fields: LogFields): LogFields {
  const out: LogFields = {};
  for (const [k, v] of Object.entries(fields)) out[k] = SECRET_KEYS.test(k) ? "[redacted]" : v;
  return out;
}

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export function createLogger(base: LogFields = {}): Logger {
  const emit = (level: string, msg: string, fields: LogFields = {}) => {
    const line = JSON.stringify({ level, msg, time: new Date().toISOString(), ...scrub(base), ...scrub(fields) });
    if (level === "error") console.error(line);
    else if (level === "warn") console.warn(line);
    else console.log(line);
  };
  return {
    info: (m, f) => emit("info", m, f),
    warn: (m, f) => emit("warn", m, f),
    error: (m, f) => emit("error", m, f),
    child: (f) => createLogger({ ...base, ...f }),
  };
}
