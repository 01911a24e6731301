// The series viewer (#/viewer/{study}/{series}[/{image}]): the series' images one at a time,
// each one drawn by the server (WADO-RS rendered, docs/api.md "The archive as a PACS") into a
// plain <img>, with the key attributes from the series' DICOM JSON metadata.
//
// Why a plain <img> over the server's rendered frames, and not Cornerstone (or another
// JavaScript viewer): no npm dependency; no decoding in the browser: the server decodes every
// syntax it stores (JPEG, JPEG-LS, RLE, ... with DCMTK) and applies the window; it works under
// the page's strict policy (default-src 'self'; img-src 'self' data: — no blob: URLs, workers
// or WebAssembly needed); and each image is one small JPEG, at most the size of the view. The
// cost is a round trip per image and per window change: window changes are debounced, the image
// shown stays until the next one has loaded, and the next images are loaded ahead while
// scrolling.
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";

import { useGet, whenStreamUnauthorized } from "../api";

// One instance of the DICOM JSON model (PS3.18 F.2): "GGGGEEEE" → {vr, Value}.
type DicomJson = Record<string, { vr: string; Value?: unknown[] } | undefined>;

const TAG = {
  PatientName: "00100010",
  PatientID: "00100020",
  StudyDate: "00080020",
  StudyDescription: "00081030",
  Modality: "00080060",
  SeriesDescription: "0008103E",
  SeriesNumber: "00200011",
  SOPInstanceUID: "00080018",
  InstanceNumber: "00200013",
  ImagePositionPatient: "00200032",
  SliceLocation: "00201041",
  NumberOfFrames: "00280008",
  Rows: "00280010",
  Columns: "00280011",
  BitsStored: "00280101",
  PixelRepresentation: "00280103",
  WindowCenter: "00281050",
  WindowWidth: "00281051",
  RescaleIntercept: "00281052",
  RescaleSlope: "00281053",
};

function values(ds: DicomJson, tag: string): unknown[] {
  return ds[tag]?.Value ?? [];
}

// The value as text: a person name's alphabetic group, several values joined by "\".
function text(ds: DicomJson, tag: string): string {
  return values(ds, tag)
    .map((v) => (v && typeof v === "object" ? ((v as { Alphabetic?: string }).Alphabetic ?? "") : String(v ?? "")))
    .join("\\");
}

function num(ds: DicomJson, tag: string): number | null {
  const v = values(ds, tag)[0];
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
}

function date(d: string): string {
  return /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d;
}

function decimal(n: number): string {
  return String(Math.round(n * 100) / 100);
}

// One image of the series: a frame of an instance (frame 1 of a single-frame instance).
interface Slot {
  sop: string;
  frame: number;
  frames: number;
  ds: DicomJson;
}

// Each instance in Instance Number order (the server's, kept for equal numbers), each frame of a
// multi-frame instance in turn. An instance without pixel data keeps one place: the server says
// why it has no image when it is shown.
function slotsOf(instances: DicomJson[]): Slot[] {
  const ordered = instances
    .map((ds, i) => ({ ds, i, n: num(ds, TAG.InstanceNumber) }))
    .sort((a, b) => (a.n ?? Infinity) - (b.n ?? Infinity) || a.i - b.i);
  const out: Slot[] = [];
  for (const { ds } of ordered) {
    const sop = text(ds, TAG.SOPInstanceUID);
    if (!sop) continue;
    const frames = Math.max(1, Math.floor(num(ds, TAG.NumberOfFrames) ?? 1));
    for (let f = 1; f <= frames; f++) out.push({ sop, frame: f, frames, ds });
  }
  return out;
}

interface Win {
  c: number;
  w: number;
}

// CT windows in Hounsfield units.
const PRESETS: { name: string; c: number; w: number }[] = [
  { name: "Brain", c: 40, w: 80 },
  { name: "Soft tissue", c: 40, w: 400 },
  { name: "Lung", c: -600, w: 1500 },
  { name: "Bone", c: 400, w: 1800 },
];

// The file's own window, or null.
function fileWindow(ds: DicomJson): Win | null {
  const c = num(ds, TAG.WindowCenter);
  const w = num(ds, TAG.WindowWidth);
  return c !== null && w !== null && w > 0 ? { c, w } : null;
}

// Where a drag starts from when the file's window is shown: that window, else the range its
// stored bits allow (the server's default is the range of the values actually there, which the
// metadata does not tell).
function startWindow(ds: DicomJson): Win {
  const own = fileWindow(ds);
  if (own) return own;
  const bits = num(ds, TAG.BitsStored) ?? 12;
  const signed = num(ds, TAG.PixelRepresentation) === 1;
  const slope = num(ds, TAG.RescaleSlope) ?? 1;
  const intercept = num(ds, TAG.RescaleIntercept) ?? 0;
  const lo = (signed ? -(2 ** (bits - 1)) : 0) * slope + intercept;
  const hi = (signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1) * slope + intercept;
  return { c: Math.round((lo + hi) / 2), w: Math.max(1, Math.round(Math.abs(hi - lo) + 1)) };
}

const enc = encodeURIComponent;
const PRELOAD = 3; // images loaded ahead in the direction of scrolling
const WINDOW_DEBOUNCE_MS = 120; // a window being dragged is asked for once it rests this long
const QUALITY = 90;

function where(): { study: string; series: string; image: number } | null {
  const m = /^#\/viewer\/([^/]+)\/([^/]+)(?:\/(\d+))?$/.exec(window.location.hash);
  if (!m) return null;
  try {
    return { study: decodeURIComponent(m[1]), series: decodeURIComponent(m[2]), image: m[3] ? Number(m[3]) : 1 };
  } catch {
    return null;
  }
}

export function Viewer() {
  const [at, setAt] = useState(where());
  useEffect(() => {
    const onHash = () => setAt(where());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  if (!at) {
    return (
      <section aria-labelledby="viewer-title">
        <h1 id="viewer-title">Viewer</h1>
        <p class="error" role="alert">
          This address names no series: the viewer's address is #/viewer/study UID/series UID. Open a series from the{" "}
          <a href="#/archive">archive</a>.
        </p>
      </section>
    );
  }
  return <SeriesViewer key={`${at.study}/${at.series}`} study={at.study} series={at.series} image={at.image} />;
}

// Why an image did not load, in the server's words (the <img> itself cannot tell).
async function whyNot(url: string): Promise<string> {
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { Accept: "image/jpeg", "X-Requested-With": "pacsbridge-ui" },
      credentials: "same-origin",
    });
  } catch {
    return "the server cannot be reached";
  }
  if (response.ok) return "the image could not be shown";
  if (response.status === 401) whenStreamUnauthorized();
  let message = "";
  try {
    const data = await response.json();
    if (data && typeof data.error === "string") message = data.error;
  } catch {
    message = "";
  }
  return `the server answered HTTP ${response.status}${message ? `: ${message}` : ""}`;
}

// The image to show: `wanted`, once loaded; until then the last one loaded stays. One request at
// a time: what is wanted meanwhile is asked for when it ends (only the latest).
function useShownImage(wanted: string | null): { shown: string; error: string; busy: boolean } {
  const [shown, setShown] = useState("");
  const [error, setError] = useState("");
  const latest = useRef<string | null>(wanted);
  const inFlight = useRef<string | null>(null);
  latest.current = wanted;
  const start = (url: string) => {
    inFlight.current = url;
    const img = new Image();
    const next = () => {
      inFlight.current = null;
      if (latest.current && latest.current !== url) start(latest.current);
    };
    img.onload = () => {
      if (latest.current === url) {
        setShown(url);
        setError("");
      }
      next();
    };
    img.onerror = () => {
      if (latest.current === url) {
        whyNot(url).then((why) => {
          if (latest.current !== url) return;
          setShown("");
          setError(why);
        });
      }
      next();
    };
    img.src = url;
  };
  useEffect(() => {
    setError("");
    if (wanted && !inFlight.current && wanted !== shown) start(wanted);
  }, [wanted]);
  return { shown, error, busy: !!wanted && wanted !== shown && !error };
}

function SeriesViewer(props: { study: string; series: string; image: number }) {
  const { study, series } = props;
  const seriesPath = `/dicom-web/studies/${enc(study)}/series/${enc(series)}`;
  const [meta, metaError] = useGet<DicomJson[]>(`${seriesPath}/metadata`);
  const slots = useMemo(() => (meta ? slotsOf(meta) : []), [meta]);
  const n = slots.length;
  const [k, setK] = useState(Math.max(0, props.image - 1));
  const direction = useRef(1);
  const clamp = (i: number) => Math.min(Math.max(i, 0), Math.max(n - 1, 0));
  const index = clamp(k);
  const slot: Slot | undefined = slots[index];

  // An address with another image number (typed, or a link) moves there.
  useEffect(() => setK(Math.max(0, props.image - 1)), [props.image]);

  // The address names the image shown, so that it can be linked (no new history entry).
  useEffect(() => {
    if (!n) return;
    const hash = `#/viewer/${enc(study)}/${enc(series)}/${index + 1}`;
    if (window.location.hash !== hash && !(index === 0 && where()?.image === 1)) {
      window.history.replaceState(null, "", hash);
    }
  }, [index, n]);

  const go = (to: number) => {
    setK((cur) => {
      const next = Math.min(Math.max(to, 0), Math.max(n - 1, 0));
      if (next !== cur) direction.current = next > cur ? 1 : -1;
      return next;
    });
  };
  const step = (d: number) => go(index + d);

  // The window: null is the file's own (no window parameter). `win` follows the mouse at once
  // (the figures shown); `asked` is what the images are asked with, WINDOW_DEBOUNCE_MS later.
  const [win, setWin] = useState<Win | null>(null);
  const [asked, setAsked] = useState<Win | null>(null);
  const debounce = useRef(0);
  const setWindow = (w: Win | null, now: boolean) => {
    const rounded = w && { c: Math.round(w.c), w: Math.max(1, Math.round(w.w)) };
    setWin(rounded);
    window.clearTimeout(debounce.current);
    if (now) setAsked(rounded);
    else debounce.current = window.setTimeout(() => setAsked(rounded), WINDOW_DEBOUNCE_MS);
  };
  useEffect(() => () => window.clearTimeout(debounce.current), []);

  // The most the server draws: the stage's size, in device pixels, in steps of 128 (a resize
  // asks again only when it crosses a step).
  const stage = useRef<HTMLDivElement>(null);
  const [viewport, setViewport] = useState<[number, number] | null>(null);
  useLayoutEffect(() => {
    const measure = () => {
      const el = stage.current;
      if (!el) return;
      const dpr = window.devicePixelRatio || 1;
      const fit = (px: number) => Math.min(2048, Math.max(128, Math.ceil((px * dpr) / 128) * 128));
      const next: [number, number] = [fit(el.clientWidth), fit(el.clientHeight)];
      setViewport((old) => (old && old[0] === next[0] && old[1] === next[1] ? old : next));
    };
    measure();
    let t = 0;
    const onResize = () => {
      window.clearTimeout(t);
      t = window.setTimeout(measure, 200);
    };
    window.addEventListener("resize", onResize);
    return () => {
      window.removeEventListener("resize", onResize);
      window.clearTimeout(t);
    };
  }, []);

  // An image larger than the stage is asked for at the stage's size; a smaller one at its own
  // (the browser scales it up: no larger JPEG made for that).
  const urlOf = (s: Slot, w: Win | null): string | null => {
    if (!viewport) return null;
    const rows = num(s.ds, TAG.Rows);
    const columns = num(s.ds, TAG.Columns);
    const fits = rows !== null && columns !== null && columns <= viewport[0] && rows <= viewport[1];
    const query = [
      ...(w ? [`window=${w.c},${w.w}`] : []),
      ...(fits ? [] : [`viewport=${viewport[0]},${viewport[1]}`]),
      `quality=${QUALITY}`,
    ].join("&");
    return `${seriesPath}/instances/${enc(s.sop)}/frames/${s.frame}/rendered?${query}`;
  };
  const wanted = slot ? urlOf(slot, asked) : null;
  const { shown, error, busy } = useShownImage(wanted);

  // Once the image shown is the one wanted, the next few in the direction of scrolling are
  // loaded ahead (the browser keeps them for the <img>). Kept referenced, and forgotten oldest
  // first.
  const ahead = useRef(new Map<string, HTMLImageElement>());
  useEffect(() => {
    if (!wanted || shown !== wanted) return;
    for (let i = 1; i <= PRELOAD; i++) {
      const s = slots[index + i * direction.current];
      const url = s && urlOf(s, asked);
      if (!url || ahead.current.has(url)) continue;
      const img = new Image();
      img.src = url;
      ahead.current.set(url, img);
      if (ahead.current.size > 40) ahead.current.delete(ahead.current.keys().next().value as string);
    }
  }, [shown, wanted]);

  // The keyboard, anywhere on the page but in a field (the slider moves itself): arrows,
  // Page Up/Down (10 images), Home and End.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
      const target = e.target as HTMLElement | null;
      if (target?.closest("input, select, textarea, [contenteditable]")) return;
      const moves: Record<string, (i: number) => number> = {
        ArrowDown: (i) => i + 1,
        ArrowRight: (i) => i + 1,
        ArrowUp: (i) => i - 1,
        ArrowLeft: (i) => i - 1,
        PageDown: (i) => i + 10,
        PageUp: (i) => i - 10,
        Home: () => 0,
        End: () => n - 1,
      };
      const move = moves[e.key];
      if (!move) return;
      e.preventDefault();
      go(move(index));
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [index, n]);

  // The mouse wheel: one image per notch (a touchpad's small steps are added up). With Ctrl it
  // stays the browser's zoom.
  const wheel = useRef(0);
  const onWheel = (e: WheelEvent) => {
    if (e.ctrlKey) return;
    e.preventDefault();
    wheel.current += e.deltaY * (e.deltaMode === 1 ? 40 : e.deltaMode === 2 ? 800 : 1);
    if (Math.abs(wheel.current) >= 50) {
      step(wheel.current > 0 ? 1 : -1);
      wheel.current = 0;
    }
  };

  // Window by dragging: the right button, or the left one with Shift or Ctrl. Right and left
  // change the width, up and down the center.
  const drag = useRef<{ x: number; y: number; from: Win } | null>(null);
  const onPointerDown = (e: PointerEvent) => {
    if (!slot || !(e.button === 2 || (e.button === 0 && (e.shiftKey || e.ctrlKey)))) return;
    e.preventDefault();
    (e.currentTarget as HTMLElement).setPointerCapture(e.pointerId);
    drag.current = { x: e.clientX, y: e.clientY, from: win ?? startWindow(slot.ds) };
  };
  const onPointerMove = (e: PointerEvent) => {
    const d = drag.current;
    if (!d) return;
    const speed = Math.max(1, d.from.w / 256);
    setWindow({ c: d.from.c + (e.clientY - d.y) * speed, w: d.from.w + (e.clientX - d.x) * speed }, false);
  };
  const onPointerUp = () => {
    if (!drag.current) return;
    drag.current = null;
    window.clearTimeout(debounce.current);
    setAsked(win);
  };

  if (metaError) {
    return (
      <section aria-labelledby="viewer-title">
        <h1 id="viewer-title">Viewer</h1>
        <p class="error" role="alert">
          The series cannot be shown: {metaError}
        </p>
        <p>
          <a href="#/archive">Back to the archive</a>
        </p>
      </section>
    );
  }

  const ds = slot?.ds ?? {};
  const own = slot ? fileWindow(slot.ds) : null;
  const isCt = text(ds, TAG.Modality) === "CT";
  const preset = win && PRESETS.find((p) => p.c === win.c && p.w === win.w);
  const windowText = win
    ? `C ${win.c} / W ${win.w}${preset ? ` (${preset.name.toLowerCase()})` : ""}`
    : own
      ? `default: C ${decimal(own.c)} / W ${decimal(own.w)} (the file's)`
      : "default (the range of the values)";
  const position = values(ds, TAG.ImagePositionPatient).map((v) => decimal(Number(v)));
  const slice = num(ds, TAG.SliceLocation);
  const title = [text(ds, TAG.PatientName), text(ds, TAG.SeriesDescription) || text(ds, TAG.Modality)]
    .filter(Boolean)
    .join(" · ");
  const alt = slot
    ? `Image ${index + 1} of ${n}: instance ${text(ds, TAG.InstanceNumber) || slot.sop}` +
      (slot.frames > 1 ? `, frame ${slot.frame} of ${slot.frames}` : "")
    : "";

  return (
    <section aria-labelledby="viewer-title" class="viewer-page">
      <div class="page-head">
        <h1 id="viewer-title">Viewer{title && `: ${title}`}</h1>
        <a href="#/archive">Back to the archive</a>
      </div>
      {!meta && <p aria-busy="true">Loading the series…</p>}
      <div class="viewer">
        <div>
          <div
            ref={stage}
            class="stage"
            tabIndex={0}
            role="group"
            aria-label="Image display"
            aria-describedby="viewer-keys"
            aria-busy={busy}
            onWheel={onWheel}
            onPointerDown={onPointerDown}
            onPointerMove={onPointerMove}
            onPointerUp={onPointerUp}
            onPointerCancel={onPointerUp}
            onContextMenu={(e) => e.preventDefault()}
          >
            {shown && !error && <img src={shown} alt={alt} draggable={false} data-image={index + 1} />}
            {error && (
              <p class="error" role="alert">
                Image {index + 1} ({alt.replace(/^Image \d+ of \d+: /, "")}): {error}
              </p>
            )}
            {slot && (
              <div class="overlay" aria-hidden="true">
                <div>
                  {index + 1} / {n}
                </div>
                <div>{win ? `C ${win.c} W ${win.w}` : "default window"}</div>
              </div>
            )}
          </div>
          <div class="scroll">
            <button type="button" aria-label="Previous image" onClick={() => step(-1)} disabled={index <= 0}>
              ‹
            </button>
            <label for="viewer-slider">Image</label>
            <input
              id="viewer-slider"
              type="range"
              min={1}
              max={Math.max(n, 1)}
              value={index + 1}
              disabled={n < 2}
              aria-valuetext={n ? `image ${index + 1} of ${n}` : "no image"}
              onInput={(e) => go(Number(e.currentTarget.value) - 1)}
            />
            <button type="button" aria-label="Next image" onClick={() => step(1)} disabled={index >= n - 1}>
              ›
            </button>
            <span class="position" data-field="position">
              {n ? `${index + 1} / ${n}` : "0 / 0"}
            </span>
          </div>
          <p id="viewer-keys" class="help">
            Wheel, arrow keys, Page Up/Down (10 images), Home and End scroll; drag with the right button (or Shift and
            the left one) to set the window: sideways the width, up and down the center.
          </p>
        </div>
        <aside aria-label="About the image">
          <fieldset class="window">
            <legend>Window</legend>
            <div class="views" role="group" aria-label="Window presets">
              <button type="button" aria-pressed={win === null} onClick={() => setWindow(null, true)}>
                Default
              </button>
              {isCt &&
                PRESETS.map((p) => (
                  <button
                    type="button"
                    aria-pressed={!!win && win.c === p.c && win.w === p.w}
                    onClick={() => setWindow({ c: p.c, w: p.w }, true)}
                    aria-label={`${p.name}: center ${p.c}, width ${p.w}`}
                  >
                    {p.name}
                  </button>
                ))}
            </div>
            <WindowForm win={win} from={slot ? startWindow(slot.ds) : null} onSet={(w) => setWindow(w, true)} />
          </fieldset>
          <dl class="facts viewer-facts">
            <dt>Patient</dt>
            <dd data-field="patient-name">{text(ds, TAG.PatientName)}</dd>
            <dt>Patient ID</dt>
            <dd data-field="patient-id">{text(ds, TAG.PatientID)}</dd>
            <dt>Study date</dt>
            <dd data-field="study-date">{date(text(ds, TAG.StudyDate))}</dd>
            <dt>Modality</dt>
            <dd data-field="modality">{text(ds, TAG.Modality)}</dd>
            <dt>Series</dt>
            <dd data-field="series">
              {[text(ds, TAG.SeriesNumber) && `#${text(ds, TAG.SeriesNumber)}`, text(ds, TAG.SeriesDescription)]
                .filter(Boolean)
                .join(" ")}
            </dd>
            <dt>Instance</dt>
            <dd data-field="instance">{text(ds, TAG.InstanceNumber)}</dd>
            {slot && slot.frames > 1 && (
              <>
                <dt>Frame</dt>
                <dd data-field="frame">
                  {slot.frame} / {slot.frames}
                </dd>
              </>
            )}
            {position.length > 0 && (
              <>
                <dt>Position</dt>
                <dd data-field="position-patient">{position.join(", ")} mm</dd>
              </>
            )}
            {slice !== null && (
              <>
                <dt>Slice location</dt>
                <dd data-field="slice-location">{decimal(slice)} mm</dd>
              </>
            )}
            <dt>Window</dt>
            <dd data-field="window">{windowText}</dd>
            <dt>Image</dt>
            <dd data-field="image">{n ? `${index + 1} / ${n}` : "none"}</dd>
          </dl>
        </aside>
      </div>
    </section>
  );
}

// The window typed in: center and width, applied with Enter or the button.
function WindowForm(props: { win: Win | null; from: Win | null; onSet: (w: Win) => void }) {
  const [c, setC] = useState("");
  const [w, setW] = useState("");
  useEffect(() => {
    setC(props.win ? String(props.win.c) : "");
    setW(props.win ? String(props.win.w) : "");
  }, [props.win?.c, props.win?.w]);
  const cn = Number(c === "" ? props.from?.c : c);
  const wn = Number(w === "" ? props.from?.w : w);
  const valid = Number.isFinite(cn) && Number.isFinite(wn) && wn > 0;
  return (
    <form
      class="window-form"
      onSubmit={(e) => {
        e.preventDefault();
        if (valid) props.onSet({ c: cn, w: wn });
      }}
    >
      <label>
        Center
        <input
          type="number"
          step="any"
          value={c}
          placeholder={props.from ? String(props.from.c) : ""}
          onInput={(e) => setC(e.currentTarget.value)}
        />
      </label>
      <label>
        Width
        <input
          type="number"
          step="any"
          min="1"
          value={w}
          placeholder={props.from ? String(props.from.w) : ""}
          onInput={(e) => setW(e.currentTarget.value)}
        />
      </label>
      <button type="submit" disabled={!valid}>
        Apply
      </button>
    </form>
  );
}
