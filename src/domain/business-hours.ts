import { z } from "zod";
import { PLAIN_TEXT, PLAIN_TEXT_MESSAGE } from "../protocol/plain-text";

/**
 * Opening hours of a business in its own IANA time zone: a weekly schedule, overnight ranges (close before open
 * means the day's window runs past midnight), holidays and special days. All conversions go through Intl, so DST
 * changes are handled by the platform's time-zone database.
 */
export const WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"] as const;
export type Weekday = (typeof WEEKDAYS)[number];

const time = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "must be HH:MM (24 h)");
// A day open until midnight says "24:00": with 23:59 as the latest time, a business open around the clock was
// closed for a minute every night, and a customer writing then was queued as "closed".
const closeTime = z.string().regex(/^(([01]\d|2[0-3]):[0-5]\d|24:00)$/, "must be HH:MM (24 h), or 24:00 for midnight at the day's end");
/** A weekday or a special day that is open must say when, and a window cannot be empty (the same rule for both). */
const opensWhen = (d: { isOpen: boolean; openTime?: string; closeTime?: string }) =>
  !d.isOpen || (d.openTime !== undefined && d.closeTime !== undefined && d.openTime !== d.closeTime);
const opensWhenMessage = { message: "an open day needs openTime and closeTime that differ" };

const day = z.strictObject({ isOpen: z.boolean(), openTime: time.optional(), closeTime: closeTime.optional() }).refine(opensWhen, opensWhenMessage);

export const hoursSchema = z
  .strictObject({
    timezone: z.string().refine(isTimeZone, "must be an IANA time zone, e.g. Europe/Berlin"),
    schedule: z.strictObject(Object.fromEntries(WEEKDAYS.map((d) => [d, day.optional()])) as Record<Weekday, z.ZodOptional<typeof day>>),
    holidays: z
      .array(
        z
          .strictObject({
            date: z
              .string()
              .regex(/^\d{4}-\d{2}-\d{2}$/, "must be YYYY-MM-DD")
              .refine(isCalendarDate, "must be a day of the calendar (2026-02-30 is not)"),
            // Stored in a jsonb column, which refuses `\u0000` and a lone surrogate: that was a 503 the client retried.
            name: z.string().max(100).regex(PLAIN_TEXT, PLAIN_TEXT_MESSAGE).optional(),
            isOpen: z.boolean().default(false),
            openTime: time.optional(),
            closeTime: closeTime.optional(),
          })
          .refine(opensWhen, opensWhenMessage),
      )
      .max(366)
      // Status reads the first entry of a day: a second one was stored, echoed back, and never applied.
      .superRefine((list, ctx) => {
        const seen = new Set<string>();
        for (const h of list) {
          if (seen.has(h.date)) ctx.addIssue({ code: "custom", message: `${h.date} is listed more than once` });
          seen.add(h.date);
        }
      })
      .optional(),
  })
  .meta({ id: "BusinessHours" });
export type BusinessHours = z.infer<typeof hoursSchema>;

/** YYYY-MM-DD naming a real day from year 1 (a holiday on a day that does not exist would never match). */
export function isCalendarDate(s: string): boolean {
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && !s.startsWith("0000") && d.toISOString().slice(0, 10) === s;
}

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return tz.length > 0;
  } catch {
    return false;
  }
}

interface LocalTime {
  date: string;
  weekday: Weekday;
  minutes: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      weekday: "long",
    });
    formatters.set(tz, f);
  }
  return f;
}

export function localTime(instant: number, tz: string): LocalTime {
  const parts = Object.fromEntries(formatter(tz).formatToParts(new Date(instant)).map((p) => [p.type, p.value]));
  return {
    date: `${parts.year}-${parts.month}-${parts.day}`,
    weekday: parts.weekday.toLowerCase() as Weekday,
    minutes: Number(parts.hour) * 60 + Number(parts.minute),
  };
}

const DAY_MS = 86_400_000;

/** The zone's offset from UTC (ms) at an instant, to the minute (localTime has no seconds). */
function offsetAt(instant: number, tz: string): number {
  const whole = Math.floor(instant / 60_000) * 60_000;
  const seen = localTime(whole, tz);
  const [y, m, d] = seen.date.split("-").map(Number);
  return Date.UTC(y, m - 1, d, Math.floor(seen.minutes / 60), seen.minutes % 60) - whole;
}

/**
 * The UTC instant of a wall-clock time in a zone. A time that a DST change skips (02:30 on a spring-forward night in
 * New York) is read with the offset from before the change, so it lands as far after the gap as it was into it
 * (03:30 local); a time that a fall-back change repeats is its first occurrence, whichever side of UTC the zone is.
 * (Converging from a guess found the first one west of UTC and the second one east of it: a Berlin business opening
 * at 02:30 that night opened an hour late.) The unit tests pin both.
 */
export function zonedInstant(date: string, minutes: number, tz: string): number {
  const [y, m, d] = date.split("-").map(Number);
  const wall = Date.UTC(y, m - 1, d, Math.floor(minutes / 60), minutes % 60);
  // The offsets a day either side: a change in between is the only way this wall time can be skipped or repeated.
  const before = offsetAt(wall - DAY_MS, tz);
  const after = offsetAt(wall + DAY_MS, tz);
  if (before === after) return wall - before;
  const shows = (instant: number) => instant + offsetAt(instant, tz) === wall;
  const candidates = [wall - before, wall - after].filter(shows);
  return candidates.length > 0 ? Math.min(...candidates) : wall - before;
}

const toMinutes = (t: string) => Number(t.slice(0, 2)) * 60 + Number(t.slice(3, 5));

function addDays(date: string, n: number): string {
  const [y, m, d] = date.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

function weekdayOf(date: string): Weekday {
  const [y, m, d] = date.split("-").map(Number);
  return WEEKDAYS[new Date(Date.UTC(y, m - 1, d)).getUTCDay()];
}

/** The window that starts on a local date, in local minutes from that date's midnight (end may exceed 1440). */
function windowOn(hours: BusinessHours, date: string): { start: number; end: number } | undefined {
  const special = hours.holidays?.find((h) => h.date === date);
  const rule = special ?? hours.schedule[weekdayOf(date)];
  if (!rule || !rule.isOpen || !rule.openTime || !rule.closeTime) return undefined;
  const start = toMinutes(rule.openTime);
  let end = toMinutes(rule.closeTime);
  if (end <= start) end += 24 * 60;
  return { start, end };
}

/** Absolute [open, close) instants of the windows starting on dates from `from` to `from + days`. */
function windows(hours: BusinessHours, fromDate: string, days: number): { open: number; close: number }[] {
  const out: { open: number; close: number }[] = [];
  for (let i = 0; i <= days; i++) {
    const date = addDays(fromDate, i);
    const w = windowOn(hours, date);
    if (!w) continue;
    const open = zonedInstant(date, w.start, hours.timezone);
    const close = w.end >= 24 * 60 ? zonedInstant(addDays(date, 1), w.end - 24 * 60, hours.timezone) : zonedInstant(date, w.end, hours.timezone);
    out.push({ open, close });
  }
  return out;
}

export interface HoursStatus {
  isOpen: boolean;
  timezone: string;
  localTime: string;
  /** When the current window closes (open) or the next one opens (closed); null when nothing within 14 days. */
  closesAt: string | null;
  nextOpenAt: string | null;
}

export function hoursStatus(hours: BusinessHours, now: number): HoursStatus {
  const local = localTime(now, hours.timezone);
  // Yesterday's overnight window may still be open this morning.
  const all = windows(hours, addDays(local.date, -1), 15);
  const current = all.find((w) => w.open <= now && now < w.close);
  const next = all.find((w) => w.open > now);
  // Windows that touch or overlap (Monday until 24:00, Tuesday from 00:00) are one stretch: the business closes at
  // its end. A stretch that runs past the days looked at has no closing to tell.
  let closesAt = current?.close;
  for (let extended = true; closesAt !== undefined && extended; ) {
    const end: number = closesAt;
    const following = all.find((w) => w.open <= end && w.close > end);
    extended = following !== undefined;
    if (following) closesAt = following.close === all[all.length - 1].close ? undefined : following.close;
  }
  const hh = String(Math.floor(local.minutes / 60)).padStart(2, "0");
  const mm = String(local.minutes % 60).padStart(2, "0");
  return {
    isOpen: current !== undefined,
    timezone: hours.timezone,
    localTime: `${local.date}T${hh}:${mm}`,
    closesAt: closesAt !== undefined ? new Date(closesAt).toISOString() : null,
    nextOpenAt: current ? null : next ? new Date(next.open).toISOString() : null,
  };
}
