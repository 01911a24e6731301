// A node's availability schedule (docs/api.md, Nodes: `schedule`) as the schedule dialog's week
// grid shows it, and back; the table's one-line summary; the throttle in MB/s. Pure functions,
// no DOM, no state.
//
// The grid is 7 rows (Monday first) of 48 half-hour cells in the schedule's own time zone; a
// cell is either allowed or not. The API speaks in windows: {"days": ["mon", ...], "start":
// "HH:MM", "end": "HH:MM"}, where `end` may be "24:00" and an `end` at or before `start` runs
// into the next day (Sunday's into Monday's).
import type { NodeSchedule, ScheduleWindow } from "./api";

export const DAY_KEYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"] as const;
export const DAY_NAMES = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
export const DAY_SHORT = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
export const SLOT_MINUTES = 30;
export const SLOTS_PER_DAY = (24 * 60) / SLOT_MINUTES;

// week[day][slot]: true where the node may be used. Day 0 is Monday, slot 0 is 00:00–00:30.
export type Week = boolean[][];

export interface Cell {
  day: number;
  slot: number;
}

export function emptyWeek(): Week {
  return DAY_KEYS.map(() => new Array<boolean>(SLOTS_PER_DAY).fill(false));
}

export function sameWeek(a: Week, b: Week): boolean {
  return a.every((row, d) => row.every((on, s) => on === b[d][s]));
}

export function isEmptyWeek(w: Week): boolean {
  return w.every((row) => row.every((on) => !on));
}

// "08:00" → 480 minutes; "24:00" only as an end. null when it is not an API time.
export function parseTime(text: string, isEnd = false): number | null {
  const m = /^(\d\d):(\d\d)$/.exec(text);
  if (!m) return null;
  const h = Number(m[1]);
  const min = Number(m[2]);
  if (min > 59) return null;
  if (h === 24 && min === 0 && isEnd) return 24 * 60;
  return h > 23 ? null : h * 60 + min;
}

// 480 → "08:00", 1440 → "24:00".
export function formatTime(minute: number): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(Math.floor(minute / 60))}:${pad(minute % 60)}`;
}

// The accessible name of a cell: "Monday 08:00–08:30".
export function cellLabel(c: Cell): string {
  return `${DAY_NAMES[c.day]} ${formatTime(c.slot * SLOT_MINUTES)}–${formatTime((c.slot + 1) * SLOT_MINUTES)}`;
}

// "mon", "Monday", "MON" → 0; -1 for anything else (the API accepts short and full names).
export function dayIndex(name: string): number {
  const n = name.toLowerCase();
  return DAY_KEYS.findIndex((k, i) => k === n || DAY_NAMES[i].toLowerCase() === n);
}

export interface FromWindows {
  week: Week;
  // Windows whose start or end is not on a half hour: the grid shows them widened to whole
  // cells, so the dialog keeps them as they are unless the grid is changed.
  unaligned: ScheduleWindow[];
}

// The API's windows as cells: every cell a window touches is allowed.
export function windowsToWeek(windows: ScheduleWindow[]): FromWindows {
  const week = emptyWeek();
  const unaligned: ScheduleWindow[] = [];
  const mark = (day: number, from: number, to: number) => {
    for (let s = Math.floor(from / SLOT_MINUTES); s < Math.ceil(to / SLOT_MINUTES); s++) week[day][s] = true;
  };
  for (const w of windows) {
    const start = parseTime(w.start);
    const end = parseTime(w.end, true);
    if (start === null || end === null) continue; // the API never stores one; nothing to show
    if (start % SLOT_MINUTES || end % SLOT_MINUTES) unaligned.push(w);
    for (const name of w.days) {
      const day = dayIndex(name);
      if (day < 0) continue;
      if (end > start) {
        mark(day, start, end);
      } else {
        mark(day, start, 24 * 60);
        mark((day + 1) % 7, 0, end);
      }
    }
  }
  return { week, unaligned };
}

interface Run {
  day: number;
  start: number; // minutes
  end: number; // minutes; at or before start: into the next day
}

// The runs of allowed cells of each day, in minutes.
function runsOf(week: Week): Run[][] {
  return week.map((row, day) => {
    const runs: Run[] = [];
    for (let s = 0; s < SLOTS_PER_DAY; s++) {
      if (!row[s]) continue;
      const last = runs[runs.length - 1];
      if (last && last.end === s * SLOT_MINUTES) last.end = (s + 1) * SLOT_MINUTES;
      else runs.push({ day, start: s * SLOT_MINUTES, end: (s + 1) * SLOT_MINUTES });
    }
    return runs;
  });
}

// The cells as the API's windows, as few as the grid allows:
// - adjacent cells of a day make one run;
// - an evening run that reaches midnight and the next day's morning run that starts there
//   become one window across midnight ("22:00"–"06:00"), when the morning ends before the
//   evening starts (else the API would read it as a window within one day); a run of a whole
//   day stays "00:00"–"24:00";
// - runs with the same start and end on several days make one window listing those days.
// Windows come in the order of their first day, then of their start.
export function weekToWindows(week: Week): ScheduleWindow[] {
  const runs = runsOf(week);
  // Each day's evening run may take the next day's morning run (Sunday's takes Monday's).
  const mornings = new Set<Run>();
  for (let day = 0; day < 7; day++) {
    const evening = runs[day][runs[day].length - 1];
    const morning = runs[(day + 1) % 7][0];
    if (
      evening?.end === 24 * 60 &&
      evening.start > 0 &&
      morning?.start === 0 &&
      morning.end < evening.start
    ) {
      mornings.add(morning);
      evening.end = morning.end;
    }
  }
  const merged = runs.flat().filter((r) => !mornings.has(r));
  const byTimes = new Map<string, { start: number; end: number; days: number[] }>();
  for (const r of merged) {
    const key = `${r.start}-${r.end}`;
    const group = byTimes.get(key) ?? { start: r.start, end: r.end, days: [] };
    if (!group.days.includes(r.day)) group.days.push(r.day);
    byTimes.set(key, group);
  }
  return [...byTimes.values()]
    .map((g) => ({ ...g, days: g.days.sort((a, b) => a - b) }))
    .sort((a, b) => a.days[0] - b.days[0] || a.start - b.start)
    .map((g) => ({ days: g.days.map((d) => DAY_KEYS[d]), start: formatTime(g.start), end: formatTime(g.end) }));
}

// The cells of the rectangle between two corners set to `value`, on a copy of `week`: what a
// drag paints (or erases).
export function paintRect(week: Week, a: Cell, b: Cell, value: boolean): Week {
  const out = week.map((row) => row.slice());
  for (let d = Math.min(a.day, b.day); d <= Math.max(a.day, b.day); d++) {
    for (let s = Math.min(a.slot, b.slot); s <= Math.max(a.slot, b.slot); s++) out[d][s] = value;
  }
  return out;
}

// Days as people write them: "Mon–Fri", "Mon, Wed, Sat–Sun".
export function daysText(days: string[]): string {
  const idx = [...new Set(days.map(dayIndex).filter((d) => d >= 0))].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < idx.length; ) {
    let j = i;
    while (j + 1 < idx.length && idx[j + 1] === idx[j] + 1) j++;
    parts.push(j > i ? `${DAY_SHORT[idx[i]]}–${DAY_SHORT[idx[j]]}` : DAY_SHORT[idx[i]]);
    i = j + 1;
  }
  return parts.join(", ");
}

// The table's summary: "always" (no schedule), "never" (no window), or
// "Mon–Fri 08:00–18:00 Europe/Berlin" (windows joined by "; ").
export function scheduleSummary(schedule: NodeSchedule | null | undefined): string {
  if (!schedule) return "always";
  const windows = schedule.windows ?? [];
  if (!windows.length) return "never";
  const text = windows.map((w) => `${daysText(w.days)} ${w.start}–${w.end}`).join("; ");
  return `${text} ${schedule.timezone || "(the server's time zone)"}`;
}

// The throttle is typed in MB/s, 1 MB = 1,000,000 bytes (as the CLI's progress shows MB); the
// API's `max_bytes_per_second` is an integer. Empty means 0: unlimited. A text that is not a
// number is returned as it is, for the API to name what is wrong.
export const BYTES_PER_MB = 1_000_000;

export function megabytesToBytes(text: string): number | string {
  const t = text.trim();
  if (t === "") return 0;
  return /^-?\d+(\.\d+)?$/.test(t) ? Math.round(Number(t) * BYTES_PER_MB) : t;
}

export function bytesToMegabytesText(bytes: number | undefined): string {
  return bytes ? String(bytes / BYTES_PER_MB) : "";
}

// 5000000 → "5 MB/s", 250000 → "250 kB/s"; 0 → "" (unlimited).
export function rateText(bytes: number | undefined): string {
  if (!bytes) return "";
  const round = (x: number) => String(Math.round(x * 100) / 100);
  if (bytes >= BYTES_PER_MB) return `${round(bytes / BYTES_PER_MB)} MB/s`;
  if (bytes >= 1000) return `${round(bytes / 1000)} kB/s`;
  return `${bytes} B/s`;
}
