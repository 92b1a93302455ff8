// Port helpers shared by the local stand-in services.
// Everything binds 127.0.0.1 only: these services have no auth worth the name and must never be reachable from outside.
import net from "node:net";

export const LOOPBACK_HOST = "127.0.0.1";

export function portInUseMessage(port: number, envName?: string): string {
  const hint = envName ? `Set ${envName} to another port` : "Choose another port";
  return `Port ${port} is in use. ${hint} (or 0 for any free port).`;
}

// EACCES was reported as "in use", so PORT=80 as a normal user sent people hunting for a process that did not exist.
export function portDeniedMessage(port: number, envName?: string): string {
  const hint = envName ? `Set ${envName} to a port above 1024` : "Choose a port above 1024";
  return `Port ${port} cannot be bound: permission denied (EACCES; ports below 1024 need root). ${hint} (or 0 for any free port).`;
}

/** The friendly error for a failed bind, or the original error when it is not about the port. */
export function portBindError(err: NodeJS.ErrnoException, port: number, envName?: string): Error {
  if (err.code === "EADDRINUSE") return new Error(portInUseMessage(port, envName));
  if (err.code === "EACCES") return new Error(portDeniedMessage(port, envName));
  return err;
}

/** Resolves undefined when 127.0.0.1:port can be bound right now, else the bind error's code. */
function probeBind(port: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EADDRINUSE" || err.code === "EACCES") resolve(err.code);
      else reject(err);
    });
    probe.listen({ port, host: LOOPBACK_HOST, exclusive: true }, () => {
      probe.close(() => resolve(undefined));
    });
  });
}

/** True when 127.0.0.1:port can be bound right now (it may of course be taken a moment later). */
export async function isPortFree(port: number): Promise<boolean> {
  return (await probeBind(port)) === undefined;
}

/** Throws the friendly "Port N is in use / cannot be bound. Set ENV ..." error for a fixed port; port 0 always passes. */
export async function assertPortFree(port: number, envName?: string): Promise<void> {
  if (port === 0) return;
  const code = await probeBind(port);
  if (code) throw portBindError(Object.assign(new Error(code), { code }), port, envName);
}

/** A port that was free a moment ago. Prefer passing 0 to the service itself, which has no race. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once("error", reject);
    probe.listen({ port: 0, host: LOOPBACK_HOST }, () => {
      const addr = probe.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      probe.close(() => (port ? resolve(port) : reject(new Error("could not determine a free port"))));
    });
  });
}

/**
 * Listens on 127.0.0.1 and resolves the real port. Binding directly (instead of check-then-bind)
 * avoids a race; EADDRINUSE and EACCES are translated into the same friendly messages as assertPortFree.
 */
export function listenLoopback(server: net.Server, port: number, envName?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off("listening", onListening);
      reject(portBindError(err, port, envName));
    };
    const onListening = (): void => {
      server.off("error", onError);
      const addr = server.address();
      if (typeof addr === "object" && addr) resolve(addr.port);
      else reject(new Error("server has no TCP address"));
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ port, host: LOOPBACK_HOST, exclusive: true });
  });
}
