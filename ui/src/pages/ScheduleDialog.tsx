// A node's schedule and throttle: when the node may be used (a week grid of half-hour cells in
// a time zone, or "always") and how fast (`max_bytes_per_second`, typed in MB/s). Saved with
// PUT /api/nodes/{name}; every change is first sent as a dry run, so the API's own words show
// beside the field they are about, with whether the node would be available now.
// The conversions between cells and the API's windows are in ../schedule.ts.
import { useRef, useState } from "preact/hooks";

import { api, ApiError, NodeSchedule, PacsNode, useLiveCheck } from "../api";
import {
  bytesToMegabytesText,
  Cell,
  cellLabel,
  DAY_NAMES,
  DAY_SHORT,
  daysText,
  emptyWeek,
  formatTime,
  isEmptyWeek,
  megabytesToBytes,
  paintRect,
  sameWeek,
  SLOT_MINUTES,
  SLOTS_PER_DAY,
  Week,
  weekToWindows,
  windowsToWeek,
} from "../schedule";

// "Mon, 7 Dec, 08:00" in the browser's zone: when a window opens or closes.
function shortWhen(iso: string): string {
  const d = new Date(iso);
  if (isNaN(d.getTime())) return iso;
  return d.toLocaleString(undefined, {
    weekday: "short",
    day: "numeric",
    month: "short",
    hour: "2-digit",
    minute: "2-digit",
  });
}

// Whether a node may be used now and until when, from the API's `available` and
// `availability_changes_at`; "" for a node without a schedule (always).
export function availabilityText(n: Pick<PacsNode, "schedule" | "available" | "availability_changes_at">): string {
  if (!n.schedule) return "";
  const at = n.availability_changes_at;
  if (n.available) return at ? `open now, until ${shortWhen(at)}` : "open now";
  return at ? `closed until ${shortWhen(at)}` : "closed: no window opens";
}

// The tz database names the browser knows (Chromium: Intl.supportedValuesOf), with the one in
// use added when the list lacks it.
function timeZones(current: string): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  const zones = new Set(intl.supportedValuesOf ? intl.supportedValuesOf("timeZone") : []);
  zones.add("UTC");
  if (current) zones.add(current);
  return [...zones].sort();
}

const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));

function firstAllowed(week: Week): Cell {
  for (let day = 0; day < 7; day++) {
    const slot = week[day].indexOf(true);
    if (slot >= 0) return { day, slot };
  }
  return { day: 0, slot: 0 };
}

interface Drag {
  anchor: Cell; // where the pointer went down
  current: Cell; // the cell under it now
  value: boolean; // painting (true) or erasing: the opposite of the anchor cell's state
  base: Week; // the week before the drag
}

// The week grid: an ARIA grid of 7 rows × 48 cells, one tab stop (the active cell). Pointer:
// press and drag paints the rectangle between the two cells, or erases it when the first cell
// was allowed; a click toggles one cell. Keyboard: arrows, Home and End move; Space or Enter
// toggles; Shift with an arrow moves and gives the next cell the state of the one left.
function WeekGrid(props: { week: Week; onChange: (w: Week) => void; describedBy: string }) {
  const { week, onChange } = props;
  const [drag, setDrag] = useState<Drag | null>(null);
  const [active, setActive] = useState<Cell>(() => firstAllowed(week));
  const table = useRef<HTMLTableElement>(null);
  const shown = drag ? paintRect(drag.base, drag.anchor, drag.current, drag.value) : week;

  const cellOf = (el: Element | null): Cell | null => {
    const td = el?.closest<HTMLElement>("td[data-slot]");
    if (!td || !table.current?.contains(td)) return null;
    return { day: Number(td.dataset.day), slot: Number(td.dataset.slot) };
  };
  const focusCell = (c: Cell) => {
    setActive(c);
    table.current?.querySelector<HTMLElement>(`td[data-day="${c.day}"][data-slot="${c.slot}"]`)?.focus();
  };

  const onPointerDown = (e: PointerEvent) => {
    const c = cellOf(e.target as Element);
    if (!c || e.button !== 0) return;
    e.preventDefault(); // no text selection; the cell is focused here instead
    // Captured, the moves keep coming to the grid wherever the pointer goes (touch included);
    // the cell under the pointer is then found by position.
    table.current?.setPointerCapture(e.pointerId);
    setDrag({ anchor: c, current: c, value: !week[c.day][c.slot], base: week });
    focusCell(c);
  };
  const onPointerMove = (e: PointerEvent) => {
    if (!drag) return;
    const c = cellOf(document.elementFromPoint(e.clientX, e.clientY));
    if (c && (c.day !== drag.current.day || c.slot !== drag.current.slot)) setDrag({ ...drag, current: c });
  };
  const onPointerUp = () => {
    if (!drag) return;
    onChange(paintRect(drag.base, drag.anchor, drag.current, drag.value));
    setDrag(null);
  };

  const onKeyDown = (e: KeyboardEvent) => {
    const c = cellOf(e.target as Element);
    if (!c) return;
    if (e.key === " " || e.key === "Enter") {
      e.preventDefault();
      onChange(paintRect(week, c, c, !week[c.day][c.slot]));
      return;
    }
    const moves: Record<string, Cell> = {
      ArrowLeft: { day: c.day, slot: c.slot - 1 },
      ArrowRight: { day: c.day, slot: c.slot + 1 },
      ArrowUp: { day: c.day - 1, slot: c.slot },
      ArrowDown: { day: c.day + 1, slot: c.slot },
      Home: { day: c.day, slot: 0 },
      End: { day: c.day, slot: SLOTS_PER_DAY - 1 },
    };
    const to = moves[e.key];
    if (!to) return;
    e.preventDefault();
    const next = { day: clamp(to.day, 0, 6), slot: clamp(to.slot, 0, SLOTS_PER_DAY - 1) };
    if (e.shiftKey && e.key.startsWith("Arrow")) onChange(paintRect(week, next, next, week[c.day][c.slot]));
    focusCell(next);
  };

  const slots = Array.from({ length: SLOTS_PER_DAY }, (_, s) => s);
  return (
    <table
      ref={table}
      class={drag ? "week dragging" : "week"}
      role="grid"
      aria-multiselectable="true"
      aria-label="Allowed hours, Monday to Sunday"
      aria-describedby={props.describedBy}
      onPointerDown={onPointerDown}
      onPointerMove={onPointerMove}
      onPointerUp={onPointerUp}
      onPointerCancel={() => setDrag(null)}
      onKeyDown={onKeyDown}
    >
      <thead>
        <tr>
          <th scope="col">
            <span class="sr-only">Day</span>
          </th>
          {slots.map((s) => (
            <th scope="col" class={s % 2 ? "half" : "hour"}>
              {s % 2 === 0 && <span aria-hidden="true">{s / 2}</span>}
              <span class="sr-only">{formatTime(s * SLOT_MINUTES)}</span>
            </th>
          ))}
        </tr>
      </thead>
      <tbody>
        {DAY_NAMES.map((name, day) => (
          <tr>
            <th scope="row">
              <span aria-hidden="true">{DAY_SHORT[day]}</span>
              <span class="sr-only">{name}</span>
            </th>
            {slots.map((slot) => {
              const on = shown[day][slot];
              return (
                <td
                  role="gridcell"
                  data-day={day}
                  data-slot={slot}
                  class={(on ? "on " : "") + (slot % 2 ? "half" : "hour")}
                  aria-selected={on ? "true" : "false"}
                  aria-label={cellLabel({ day, slot })}
                  tabIndex={active.day === day && active.slot === slot ? 0 : -1}
                />
              );
            })}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// The API's errors shown where they belong: beside the time zone or the throttle (keyed by
// the id of the control), else above the buttons.
const FIELD_IDS: Record<string, string> = { "schedule.timezone": "sched-tz", max_bytes_per_second: "sched-throttle" };

// The dialog's form (the caller puts it in its Modal).
export function ScheduleForm(props: { node: PacsNode; onClose: () => void; onSaved: () => void }) {
  const node = props.node;
  const [initial] = useState(() => windowsToWeek(node.schedule?.windows ?? []));
  const [always, setAlways] = useState(!node.schedule);
  // A schedule without a time zone runs on the server's ("" here, null to the API).
  const [zone, setZone] = useState(
    node.schedule ? (node.schedule.timezone ?? "") : Intl.DateTimeFormat().resolvedOptions().timeZone,
  );
  const [week, setWeek] = useState<Week>(initial.week);
  const [throttle, setThrottle] = useState(bytesToMegabytesText(node.max_bytes_per_second));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState("");
  const [preview, setPreview] = useState<PacsNode | null>(null);
  const [saving, setSaving] = useState(false);
  const [zones] = useState(() => timeZones(zone));
  const target = `/api/nodes/${encodeURIComponent(node.name)}`;
  // Windows the grid cannot show exactly are sent back untouched until the grid changes.
  const keepOriginal = initial.unaligned.length > 0 && sameWeek(week, initial.week);

  const body = () => {
    const windows = keepOriginal ? node.schedule!.windows : weekToWindows(week);
    const schedule: NodeSchedule | null = always ? null : { timezone: zone || null, windows };
    return { schedule, max_bytes_per_second: megabytesToBytes(throttle) };
  };

  const showError = (e: ApiError) => {
    if (e.field && FIELD_IDS[e.field]) {
      setErrors({ [FIELD_IDS[e.field]]: e.message });
      setGeneral("");
    } else {
      setErrors({});
      setGeneral(e.message);
    }
  };

  // Live validation: the same request as a dry run, a moment after the last change.
  const settle = useLiveCheck(
    async (current) => {
      try {
        const answer = await api<PacsNode>("PUT", `${target}?dry_run=true`, body());
        if (!current()) return;
        setErrors({});
        setGeneral("");
        setPreview(answer);
      } catch (e) {
        if (!current() || !(e instanceof ApiError)) return;
        showError(e);
        setPreview(null);
      }
    },
    [always, zone, week, throttle],
  );

  const save = async (e: Event) => {
    e.preventDefault();
    setSaving(true);
    try {
      await settle();
      await api("PUT", target, body());
      props.onSaved();
    } catch (err) {
      if (err instanceof ApiError) showError(err);
      else throw err;
    } finally {
      setSaving(false);
    }
  };

  const described = (id: string, help: boolean) =>
    [help ? `${id}-help` : "", errors[id] ? `${id}-error` : ""].filter(Boolean).join(" ") || undefined;
  const fieldError = (id: string) =>
    errors[id] && (
      <div id={`${id}-error`} class="field-error" role="alert">
        {errors[id]}
      </div>
    );

  return (
    <form class="schedule-form" onSubmit={save} noValidate>
      <label class="check">
        <input type="checkbox" checked={always} onChange={(e) => setAlways(e.currentTarget.checked)} />
        Always available (no schedule)
      </label>
      {!always && (
        <>
          <div class="row">
            <label for="sched-tz">Time zone</label>
            <div>
              <select
                id="sched-tz"
                value={zone}
                aria-invalid={errors["sched-tz"] ? "true" : undefined}
                aria-describedby={described("sched-tz", true)}
                onChange={(e) => setZone(e.currentTarget.value)}
              >
                {!zone && <option value="">the server's time zone</option>}
                {zones.map((z) => (
                  <option value={z}>{z}</option>
                ))}
              </select>
              <div id="sched-tz-help" class="help">
                the cells are local times of this zone; daylight-saving changes follow it
              </div>
              {fieldError("sched-tz")}
            </div>
          </div>
          <p id="sched-grid-help" class="help">
            Painted cells are when the node may be used; outside them jobs wait and queries are refused. Drag to
            paint a block (starting on a painted cell erases instead); click a cell to toggle it. Keyboard: arrow
            keys, Home and End move, Space toggles, Shift+arrow carries the state along.
          </p>
          {initial.unaligned.length > 0 && (
            <p class="note" data-unaligned>
              Some windows do not start or end on a half hour:{" "}
              {initial.unaligned.map((w) => `${daysText(w.days)} ${w.start}–${w.end}`).join("; ")}. The grid shows
              them widened to whole half hours; they are saved as they are unless you change the grid.
            </p>
          )}
          <div class="week-scroll">
            <WeekGrid week={week} onChange={setWeek} describedBy="sched-grid-help" />
          </div>
          <div class="grid-tools">
            {isEmptyWeek(week) && (
              <span class="warning" data-never>
                Nothing painted: the node would never be available.
              </span>
            )}
            <button type="button" onClick={() => setWeek(emptyWeek())} disabled={isEmptyWeek(week)}>
              Clear the grid
            </button>
          </div>
        </>
      )}
      <div class="row">
        <label for="sched-throttle">Throttle (MB/s)</label>
        <div>
          <input
            id="sched-throttle"
            type="text"
            inputMode="decimal"
            autocomplete="off"
            placeholder="unlimited"
            value={throttle}
            aria-invalid={errors["sched-throttle"] ? "true" : undefined}
            aria-describedby={described("sched-throttle", true)}
            onInput={(e) => setThrottle(e.currentTarget.value)}
          />
          <div id="sched-throttle-help" class="help">
            1 MB/s = 1,000,000 bytes per second, shared by every retrieve and send to this node; 0 or empty: unlimited.
            Not paced: the data of a C-MOVE, DIMSE over TLS, queries.
          </div>
          {fieldError("sched-throttle")}
        </div>
      </div>
      <p class="preview" role="status" data-preview>
        {preview &&
          (preview.schedule
            ? `With these settings the node is ${availabilityText(preview)}.`
            : "With these settings the node is always available.")}
      </p>
      {general && (
        <p class="error" role="alert">
          {general}
        </p>
      )}
      <div class="buttons">
        <button type="button" onClick={props.onClose}>
          Cancel
        </button>
        <button type="submit" disabled={saving}>
          Save
        </button>
      </div>
    </form>
  );
}
