import { describe, expect, it } from "vitest";
import { hoursSchema, hoursStatus, zonedInstant, type BusinessHours } from "../../src/domain/business-hours";

const weekdays = { isOpen: true, openTime: "09:00", closeTime: "17:00" };
const berlin: BusinessHours = {
  timezone: "Europe/Berlin",
  schedule: { monday: weekdays, tuesday: weekdays, wednesday: weekdays, thursday: weekdays, friday: weekdays, saturday: { isOpen: false }, sunday: { isOpen: false } },
  holidays: [{ date: "2026-12-25", name: "Christmas", isOpen: false }],
};
const at = (iso: string) => Date.parse(iso);

describe("business hours", () => {
  it("is open inside the local window and closed outside it, in the business's time zone", () => {
    // Wednesday 2026-11-25: 09:00 Berlin is 08:00 UTC (CET, +1).
    expect(hoursStatus(berlin, at("2026-11-25T07:59:00Z")).isOpen).toBe(false);
    expect(hoursStatus(berlin, at("2026-11-25T08:00:00Z"))).toMatchObject({ isOpen: true, closesAt: "2026-11-25T16:00:00.000Z" });
    expect(hoursStatus(berlin, at("2026-11-25T16:00:00Z"))).toMatchObject({ isOpen: false, nextOpenAt: "2026-11-26T08:00:00.000Z" });
  });

  it("skips weekends and holidays when telling the next opening", () => {
    expect(hoursStatus(berlin, at("2026-11-28T12:00:00Z")).nextOpenAt).toBe("2026-11-30T08:00:00.000Z");
    // Christmas 2026 is a Friday: closed; next opening Monday the 28th.
    expect(hoursStatus(berlin, at("2026-12-25T10:00:00Z"))).toMatchObject({ isOpen: false, nextOpenAt: "2026-12-28T08:00:00.000Z" });
  });

  it("handles overnight ranges across midnight", () => {
    const bar: BusinessHours = { timezone: "America/New_York", schedule: { friday: { isOpen: true, openTime: "20:00", closeTime: "02:00" } } };
    // Friday 2026-11-27 23:30 New York (EST, -5) = Saturday 04:30 UTC: still open from Friday's window.
    expect(hoursStatus(bar, at("2026-11-28T04:30:00Z"))).toMatchObject({ isOpen: true, closesAt: "2026-11-28T07:00:00.000Z" });
    expect(hoursStatus(bar, at("2026-11-28T07:00:00Z")).isOpen).toBe(false);
  });

  it("follows DST changes", () => {
    // Berlin moves to CEST (+2) on 2026-03-29: Monday 30 March 09:00 local is 07:00 UTC; the Friday before, 08:00 UTC.
    expect(hoursStatus(berlin, at("2026-03-27T08:00:00Z")).isOpen).toBe(true);
    expect(hoursStatus(berlin, at("2026-03-30T07:00:00Z")).isOpen).toBe(true);
    expect(hoursStatus(berlin, at("2026-03-30T06:59:00Z")).isOpen).toBe(false);
    // On the switch day itself, 10:00 local is already CEST.
    expect(zonedInstant("2026-03-29", 600, "Europe/Berlin")).toBe(at("2026-03-29T08:00:00Z"));
    // And back to CET on 2026-10-25.
    expect(zonedInstant("2026-10-25", 600, "Europe/Berlin")).toBe(at("2026-10-25T09:00:00Z"));
  });

  it("special days override the weekly schedule", () => {
    const h: BusinessHours = { ...berlin, holidays: [{ date: "2026-11-28", isOpen: true, openTime: "10:00", closeTime: "14:00" }] };
    expect(hoursStatus(h, at("2026-11-28T10:00:00Z")).isOpen).toBe(true);
  });

  it("validates schedules", () => {
    expect(hoursSchema.safeParse({ timezone: "Mars/Base", schedule: {} }).success).toBe(false);
    expect(hoursSchema.safeParse({ timezone: "UTC", schedule: { monday: { isOpen: true, openTime: "25:00", closeTime: "10:00" } } }).success).toBe(false);
    expect(hoursSchema.safeParse({ timezone: "UTC", schedule: { funday: { isOpen: false } } }).success).toBe(false);
    expect(hoursSchema.safeParse(berlin).success).toBe(true);
    // Holidays on days that do not exist would be stored and never match.
    for (const date of ["2026-13-45", "2026-02-30", "0000-00-00", "2026-00-10"]) {
      expect(hoursSchema.safeParse({ timezone: "UTC", schedule: {}, holidays: [{ date }] }).success, date).toBe(false);
    }
    expect(hoursSchema.safeParse({ timezone: "UTC", schedule: {}, holidays: [{ date: "2028-02-29" }] }).success).toBe(true);
  });

  it("takes 24:00 as a closing time: a business open around the clock never closes at 23:59", () => {
    const allDay = { isOpen: true, openTime: "00:00", closeTime: "24:00" };
    const weekdaysAllDay: BusinessHours = {
      timezone: "Europe/Berlin",
      schedule: { monday: allDay, tuesday: allDay, wednesday: allDay, thursday: allDay, friday: allDay, saturday: { isOpen: false } },
    };
    expect(hoursSchema.safeParse(weekdaysAllDay).success).toBe(true);
    expect(hoursSchema.safeParse({ timezone: "UTC", schedule: { monday: { isOpen: true, openTime: "24:00", closeTime: "10:00" } } }).success).toBe(false);
    expect(hoursSchema.safeParse({ timezone: "UTC", schedule: { monday: { isOpen: true, openTime: "10:00", closeTime: "24:30" } } }).success).toBe(false);
    // Wednesday 2026-11-25, 23:59:30 in Berlin: open, and the weekday stretch ends when Saturday begins.
    expect(hoursStatus(weekdaysAllDay, at("2026-11-25T22:59:30Z"))).toMatchObject({ isOpen: true, closesAt: "2026-11-27T23:00:00.000Z" });
    expect(hoursStatus(weekdaysAllDay, at("2026-11-27T23:00:00Z"))).toMatchObject({ isOpen: false, nextOpenAt: "2026-11-29T23:00:00.000Z" });
    // Open every day of the week: no closing to tell.
    const always: BusinessHours = { timezone: "UTC", schedule: { ...weekdaysAllDay.schedule, saturday: allDay, sunday: allDay } };
    expect(hoursStatus(always, at("2026-11-25T23:59:30Z"))).toMatchObject({ isOpen: true, closesAt: null });
  });

  it("tells the end of touching windows as one closing: an overnight window running into the next day's", () => {
    const h: BusinessHours = {
      timezone: "UTC",
      schedule: { monday: { isOpen: true, openTime: "18:00", closeTime: "02:00" }, tuesday: { isOpen: true, openTime: "01:00", closeTime: "09:00" } },
    };
    // Monday 2026-11-23 20:00: open until Tuesday 09:00, not until the overnight window's 02:00.
    expect(hoursStatus(h, at("2026-11-23T20:00:00Z"))).toMatchObject({ isOpen: true, closesAt: "2026-11-24T09:00:00.000Z" });
  });

  it("validates open special days like open weekdays: both times, and different", () => {
    const withHoliday = (holiday: Record<string, unknown>) => hoursSchema.safeParse({ timezone: "UTC", schedule: {}, holidays: [{ date: "2026-12-24", ...holiday }] });
    expect(withHoliday({ isOpen: true }).success).toBe(false);
    expect(withHoliday({ isOpen: true, openTime: "10:00" }).success).toBe(false);
    expect(withHoliday({ isOpen: true, closeTime: "14:00" }).success).toBe(false);
    expect(withHoliday({ isOpen: true, openTime: "10:00", closeTime: "10:00" }).success).toBe(false);
    expect(withHoliday({ isOpen: true, openTime: "10:00", closeTime: "14:00" }).success).toBe(true);
    // Closed (explicitly or by default) needs no times.
    expect(withHoliday({ isOpen: false }).success).toBe(true);
    expect(withHoliday({ name: "Christmas Eve" }).success).toBe(true);
  });

  it("opens a window whose start a DST change skips at the same distance after the gap (02:30 → 03:30)", () => {
    // New York springs forward on Sunday 2026-03-08: 02:00 EST (07:00Z) becomes 03:00 EDT, so 02:30 never happens.
    const early: BusinessHours = { timezone: "America/New_York", schedule: { sunday: { isOpen: true, openTime: "02:30", closeTime: "10:00" } } };
    expect(zonedInstant("2026-03-08", 150, "America/New_York")).toBe(at("2026-03-08T07:30:00Z"));
    // 01:00 EST: closed, opening at 03:30 EDT (07:30Z).
    expect(hoursStatus(early, at("2026-03-08T06:00:00Z"))).toMatchObject({ isOpen: false, localTime: "2026-03-08T01:00", nextOpenAt: "2026-03-08T07:30:00.000Z" });
    // 03:15 EDT, after the gap but before the shifted opening: still closed.
    expect(hoursStatus(early, at("2026-03-08T07:15:00Z"))).toMatchObject({ isOpen: false, localTime: "2026-03-08T03:15", nextOpenAt: "2026-03-08T07:30:00.000Z" });
    expect(hoursStatus(early, at("2026-03-08T07:30:00Z"))).toMatchObject({ isOpen: true, localTime: "2026-03-08T03:30", closesAt: "2026-03-08T14:00:00.000Z" });
    // The next Sunday, 02:30 exists again (EDT, 06:30Z).
    expect(hoursStatus(early, at("2026-03-14T12:00:00Z")).nextOpenAt).toBe("2026-03-15T06:30:00.000Z");
  });

  it("opens at the first of a wall time the fall-back change repeats, and stretches an overnight window across it", () => {
    // New York falls back on Sunday 2026-11-01: 02:00 EDT (06:00Z) becomes 01:00 EST, so 01:30 happens twice
    // (05:30Z in EDT, 06:30Z in EST). The opening is the first one: a customer is never told "closed" at 01:30.
    expect(zonedInstant("2026-11-01", 90, "America/New_York")).toBe(at("2026-11-01T05:30:00Z"));
    const late: BusinessHours = { timezone: "America/New_York", schedule: { saturday: { isOpen: true, openTime: "20:00", closeTime: "02:00" } } };
    // Saturday 20:00 EDT (00:00Z) to Sunday 02:00 EST (07:00Z): seven hours that night, not six.
    expect(hoursStatus(late, at("2026-11-01T00:00:00Z"))).toMatchObject({ isOpen: true, closesAt: "2026-11-01T07:00:00.000Z" });
    // 01:30 the second time (EST, 06:30Z) is still inside the window.
    expect(hoursStatus(late, at("2026-11-01T06:30:00Z"))).toMatchObject({ isOpen: true, localTime: "2026-11-01T01:30" });
    expect(hoursStatus(late, at("2026-11-01T07:00:00Z"))).toMatchObject({ isOpen: false, nextOpenAt: "2026-11-08T01:00:00.000Z" });
  });

  it("opens at the first of a repeated wall time east of UTC too (Berlin, Sydney), as in New York", () => {
    // Berlin falls back on Sunday 2026-10-25: 03:00 CEST (01:00Z) becomes 02:00 CET, so 02:30 happens at 00:30Z and 01:30Z.
    expect(zonedInstant("2026-10-25", 150, "Europe/Berlin")).toBe(at("2026-10-25T00:30:00Z"));
    // Sydney on Sunday 2026-04-05: 03:00 AEDT (16:00Z) becomes 02:00 AEST; 02:30 first at 15:30Z.
    expect(zonedInstant("2026-04-05", 150, "Australia/Sydney")).toBe(at("2026-04-04T15:30:00Z"));
    const early: BusinessHours = { timezone: "Europe/Berlin", schedule: { sunday: { isOpen: true, openTime: "02:30", closeTime: "10:00" } } };
    // 02:45 the first time (CEST): open, not "closed until 02:30 comes round again" (an hour late).
    expect(hoursStatus(early, at("2026-10-25T00:45:00Z"))).toMatchObject({ isOpen: true, localTime: "2026-10-25T02:45" });
    expect(hoursStatus(early, at("2026-10-24T12:00:00Z")).nextOpenAt).toBe("2026-10-25T00:30:00.000Z");
    // A window closing at 02:30 that night closes the first time the clocks show it, not an hour later.
    const late: BusinessHours = { timezone: "Europe/Berlin", schedule: { saturday: { isOpen: true, openTime: "22:00", closeTime: "02:30" } } };
    expect(hoursStatus(late, at("2026-10-24T21:00:00Z"))).toMatchObject({ isOpen: true, closesAt: "2026-10-25T00:30:00.000Z" });
    expect(hoursStatus(late, at("2026-10-25T00:45:00Z"))).toMatchObject({ isOpen: false });
  });
});
