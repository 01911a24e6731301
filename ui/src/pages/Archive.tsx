// The local archive, three ways: by labels (projects → subjects → sessions → series), by DICOM
// study, and the staging area (sessions a receiver holds back until they are archived or
// discarded). Every series shows a thumbnail rendered by the server from its middle image, its
// instance count, a link to the viewer (#/viewer/{study}/{series}) and a ZIP download of its
// files.
import { useState } from "preact/hooks";

import { api, ApiError, can, Me, useGet } from "../api";

interface Study {
  StudyInstanceUID: string;
  PatientID: string;
  PatientName: string;
  StudyDate: string;
  StudyDescription: string;
  ModalitiesInStudy: string;
  series_count: number;
  instance_count: number;
}

interface Series {
  SeriesInstanceUID: string;
  StudyInstanceUID: string;
  Modality: string;
  SeriesNumber: string;
  SeriesDescription: string;
  instance_count: number;
}

// A project, subject or session with its counts.
interface Label {
  name: string;
  subjects?: number;
  sessions?: number;
  studies: number;
  series: number;
  instances: number;
  modalities: string;
}

interface Staged {
  id: number;
  receiver_ae_title: string;
  project: string;
  subject: string;
  session: string;
  state: string;
  first_at: string;
  last_at: string;
  instance_count: number;
  bytes: number;
  note?: string;
}

type View = "labels" | "studies" | "staging";

function date(d: string): string {
  return /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d;
}

const enc = encodeURIComponent;

function SeriesCards({ path, label }: { path: string; label: string }) {
  const [series, error] = useGet<Series[]>(path);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!series) return <p aria-busy="true">Loading the series…</p>;
  return (
    <ul class="series-cards" aria-label={label}>
      {series.map((s) => (
        <li data-series={s.SeriesInstanceUID}>
          <img
            src={`/api/series/${enc(s.SeriesInstanceUID)}/thumbnail`}
            alt={`Series ${s.SeriesNumber || ""} ${s.SeriesDescription || s.Modality}: middle image`}
            width={128}
            height={128}
            loading="lazy"
          />
          <div>
            <strong>
              {s.Modality} {s.SeriesNumber && `#${s.SeriesNumber}`}
            </strong>
          </div>
          <div>{s.SeriesDescription}</div>
          <div class="muted">{s.instance_count} instance(s)</div>
          <div class="card-actions">
            <a
              href={`#/viewer/${enc(s.StudyInstanceUID)}/${enc(s.SeriesInstanceUID)}`}
              aria-label={`View series ${s.SeriesNumber || s.SeriesInstanceUID}`}
            >
              View
            </a>
            <a
              href={`/api/series/${enc(s.SeriesInstanceUID)}/zip`}
              download
              aria-label={`Download series ${s.SeriesNumber || s.SeriesInstanceUID} as ZIP`}
            >
              ZIP
            </a>
          </div>
        </li>
      ))}
    </ul>
  );
}

function ByStudy() {
  const [studies, error] = useGet<Study[]>("/api/studies?limit=200");
  const [open, setOpen] = useState<string>("");
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!studies) return <p aria-busy="true">Loading…</p>;
  if (studies.length === 0) return <p>The archive is empty.</p>;
  return (
    <table class="grid">
      <caption class="sr-only">Studies in the archive</caption>
      <thead>
        <tr>
          <th scope="col">Date</th>
          <th scope="col">Patient</th>
          <th scope="col">Patient ID</th>
          <th scope="col">Description</th>
          <th scope="col">Modalities</th>
          <th scope="col">Series</th>
          <th scope="col">Instances</th>
        </tr>
      </thead>
      <tbody>
        {studies.map((st) => (
          <>
            <tr data-study={st.StudyInstanceUID}>
              <td>{date(st.StudyDate)}</td>
              <th scope="row">
                <button
                  type="button"
                  class="link"
                  aria-expanded={open === st.StudyInstanceUID}
                  onClick={() => setOpen(open === st.StudyInstanceUID ? "" : st.StudyInstanceUID)}
                >
                  {st.PatientName || "(no name)"}
                </button>
              </th>
              <td>{st.PatientID}</td>
              <td>{st.StudyDescription}</td>
              <td>{st.ModalitiesInStudy}</td>
              <td>{st.series_count}</td>
              <td>{st.instance_count}</td>
            </tr>
            {open === st.StudyInstanceUID && (
              <tr class="detail">
                <td colSpan={7}>
                  <SeriesCards
                    path={`/api/studies/${enc(st.StudyInstanceUID)}/series`}
                    label={`Series of ${st.PatientName || st.PatientID}`}
                  />
                </td>
              </tr>
            )}
          </>
        ))}
      </tbody>
    </table>
  );
}

// Projects → subjects → sessions, one level at a time, with a trail back up; a session opens
// to its series.
function ByLabels() {
  const [trail, setTrail] = useState<string[]>([]);
  const levels = ["project", "subject", "session"];
  let path = "/api/projects";
  trail.forEach((name, i) => (path += `/${enc(name)}/${["subjects", "sessions", "series"][i]}`));
  const title = trail.length === 0 ? "Projects" : `${levels[trail.length] ?? "series"}s of ${trail[trail.length - 1]}`;
  return (
    <>
      <nav aria-label="Where in the archive" class="trail">
        <button type="button" class="link" onClick={() => setTrail([])} aria-current={trail.length === 0 ? "page" : undefined}>
          All projects
        </button>
        {trail.map((name, i) => (
          <>
            {" › "}
            <button
              type="button"
              class="link"
              onClick={() => setTrail(trail.slice(0, i + 1))}
              aria-current={i === trail.length - 1 ? "page" : undefined}
            >
              {name}
            </button>
          </>
        ))}
      </nav>
      {trail.length === 3 ? (
        <SeriesCards path={path} label={`Series of session ${trail[2]}`} />
      ) : (
        <LabelTable key={path} path={path} level={levels[trail.length]} title={title} onOpen={(n) => setTrail([...trail, n])} />
      )}
    </>
  );
}

function LabelTable(props: { path: string; level: string; title: string; onOpen: (name: string) => void }) {
  const [rows, error] = useGet<Label[]>(props.path);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!rows) return <p aria-busy="true">Loading…</p>;
  if (rows.length === 0) return <p>The archive is empty.</p>;
  return (
    <table class="grid">
      <caption class="sr-only">{props.title}</caption>
      <thead>
        <tr>
          <th scope="col">{props.level[0].toUpperCase() + props.level.slice(1)}</th>
          {props.level === "project" && <th scope="col">Subjects</th>}
          {props.level !== "session" && <th scope="col">Sessions</th>}
          <th scope="col">Studies</th>
          <th scope="col">Series</th>
          <th scope="col">Instances</th>
          <th scope="col">Modalities</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr data-label={r.name}>
            <th scope="row">
              <button type="button" class="link" onClick={() => props.onOpen(r.name)}>
                {r.name}
              </button>
            </th>
            {props.level === "project" && <td>{r.subjects}</td>}
            {props.level !== "session" && <td>{r.sessions}</td>}
            <td>{r.studies}</td>
            <td>{r.series}</td>
            <td>{r.instances}</td>
            <td>{r.modalities}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Staging({ me }: { me: Me }) {
  const [rows, error, load, setError] = useGet<Staged[]>("/api/staging", 5000);
  const act = async (s: Staged, archive: boolean) => {
    if (!archive && !window.confirm(`Discard the ${s.instance_count} staged instance(s) of session ${s.session}?`)) return;
    try {
      await api(archive ? "POST" : "DELETE", `/api/staging/${s.id}${archive ? "/archive" : ""}`, archive ? {} : undefined);
      load();
    } catch (e) {
      setError((e as ApiError).message);
    }
  };
  return (
    <>
      <p class="help">
        Sessions a receiver with staging holds back: archived by themselves once idle for the receiver's time, or now by
        hand; discarded ones are deleted.
      </p>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {rows && rows.length === 0 && <p>Nothing is staged.</p>}
      {rows && rows.length > 0 && (
        <table class="grid">
          <caption class="sr-only">Staged sessions</caption>
          <thead>
            <tr>
              <th scope="col">Session</th>
              <th scope="col">Will be filed under</th>
              <th scope="col">Receiver</th>
              <th scope="col">Instances</th>
              <th scope="col">Last arrival</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((s) => (
              <tr data-staged={s.id}>
                <th scope="row">{s.session || `#${s.id}`}</th>
                <td>
                  {s.project} / {s.subject} / {s.session}
                  {s.note && <div class="muted">{s.note}</div>}
                </td>
                <td>{s.receiver_ae_title}</td>
                <td>
                  {s.instance_count} ({(s.bytes / 1048576).toFixed(1)} MB)
                </td>
                <td>{new Date(s.last_at).toLocaleString()}</td>
                <td class="actions">
                  {can(me, "user") && s.state === "open" && (
                    <>
                      <button type="button" onClick={() => act(s, true)}>
                        Archive now
                      </button>
                      <button type="button" class="danger" onClick={() => act(s, false)}>
                        Discard
                      </button>
                    </>
                  )}
                  {s.state !== "open" && <span class="muted">{s.state}…</span>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}

export function Archive({ me }: { me: Me }) {
  const [view, setView] = useState<View>("labels");
  const views: [View, string][] = [
    ["labels", "By project"],
    ["studies", "By study"],
    ["staging", "Staging"],
  ];
  return (
    <section aria-labelledby="archive-title">
      <h1 id="archive-title">Archive</h1>
      <div class="views" role="group" aria-label="Show the archive">
        {views.map(([v, text]) => (
          <button type="button" aria-pressed={view === v} onClick={() => setView(v)}>
            {text}
          </button>
        ))}
      </div>
      {view === "labels" && <ByLabels />}
      {view === "studies" && <ByStudy />}
      {view === "staging" && <Staging me={me} />}
    </section>
  );
}
