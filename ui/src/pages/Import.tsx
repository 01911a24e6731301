// Import: find studies on a queryable node (C-FIND, STUDY level; a study opens to its series on
// demand), see which the archive already holds, and retrieve the chosen ones as one job, filed
// under optional labels. Or import a spreadsheet of studies (ImportSheet).
import { useEffect, useState } from "preact/hooks";

import { api, ApiError, ArchiveStudy, can, FindAnswer, JobRef, Me, PacsNode } from "../api";
import { SheetImport } from "./ImportSheet";
import {
  ColumnHeads,
  date,
  enc,
  errorFor,
  FieldError,
  GeneralError,
  JobLinks,
  NodeChoice,
  Opener,
  Problem,
  problemOf,
  SelectAll,
  TextField,
  useNodes,
} from "./TransferParts";

export function Import({ me }: { me: Me }) {
  const [nodes, preferred, error] = useNodes("import");
  const [picked, setPicked] = useState("");
  const [nodeError, setNodeError] = useState("");
  const node = picked || preferred;
  const user = can(me, "user");
  return (
    <section aria-labelledby="import-title">
      <h1 id="import-title">Import</h1>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <NodeChoice
        id="import-node"
        label="Query/retrieve node"
        none="No queryable node"
        nodes={nodes}
        value={node}
        error={nodeError}
        onChange={(name) => {
          setPicked(name);
          setNodeError("");
        }}
      />
      {!user && (
        <p class="muted" id="import-read-only">
          This account is read-only: searching a node and retrieving from it need the user role.
        </p>
      )}
      {user && node && (
        <>
          <StudySearch key={node} node={nodes!.find((n) => n.name === node)!} onNodeError={setNodeError} />
          <SheetImport key={`sheet-${node}`} node={node} onNodeError={setNodeError} />
        </>
      )}
    </section>
  );
}

type Range = "any" | "today" | "week" | "custom";

function dicomDate(d: Date): string {
  const pad = (x: number) => String(x).padStart(2, "0");
  return `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}`;
}

// The StudyDate matching value of a quick range (local dates), or of the custom from/to inputs
// (YYYY-MM-DD; an open end leaves its side empty). The API checks it and names what is wrong.
function dateRange(range: Range, from: string, to: string): string {
  const today = new Date();
  if (range === "today") return dicomDate(today);
  if (range === "week") {
    const first = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 6);
    return `${dicomDate(first)}-${dicomDate(today)}`;
  }
  if (range === "custom" && (from || to)) return `${from.replace(/-/g, "")}-${to.replace(/-/g, "")}`;
  return "";
}

// Where the find's errors go: the API's `field` → the control.
const FIND_FIELDS: Record<string, string> = {
  node: "node",
  queryable: "node",
  schedule: "node",
  "query.PatientName": "patient",
  "query.PatientID": "pid",
  "query.StudyDate": "date",
  "query.ModalitiesInStudy": "modality",
  "query.AccessionNumber": "accession",
};

const RETRIEVE_FIELDS: Record<string, string> = {
  node: "node",
  uids: "uids",
  project: "project",
  subject: "subject",
  session: "session",
};

// What the archive holds of a study found on the node: its row, null (nothing) or false (the
// archive could not be asked).
type Held = ArchiveStudy | null | false;

// GET /api/studies takes a list of UIDs (uid1\uid2): one request per 80 studies found, which
// keeps the URL under the server's 8 KB limit with UIDs of the full 64 characters.
async function lookUp(uids: string[], found: (uid: string, held: Held) => void) {
  for (let i = 0; i < uids.length; i += 80) {
    const chunk = uids.slice(i, i + 80);
    try {
      const rows = await api<ArchiveStudy[]>(
        "GET",
        `/api/studies?StudyInstanceUID=${enc(chunk.join("\\"))}&limit=${chunk.length}`,
      );
      const held = new Map(rows.map((r) => [r.StudyInstanceUID, r]));
      for (const uid of chunk) found(uid, held.get(uid) ?? null);
    } catch {
      for (const uid of chunk) found(uid, false);
    }
  }
}

// "yes", "partly" or "no", and the words; undefined while it is asked.
function archiveMark(row: Held | undefined, expected: string | undefined): [string, string] {
  if (row === undefined) return ["", "checking…"];
  if (row === false) return ["", "unknown (the archive did not answer)"];
  if (row === null) return ["no", "not in archive"];
  const total = Number(expected);
  if (!total || row.instance_count >= total) return ["yes", "in archive"];
  return ["partly", `partly in archive: ${row.instance_count} of ${total}`];
}

function StudySearch({ node, onNodeError }: { node: PacsNode; onNodeError: (e: string) => void }) {
  const [patient, setPatient] = useState("");
  const [pid, setPid] = useState("");
  const [range, setRange] = useState<Range>("any");
  const [from, setFrom] = useState("");
  const [to, setTo] = useState("");
  const [modality, setModality] = useState("");
  const [accession, setAccession] = useState("");
  const [override, setOverride] = useState(false);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [answer, setAnswer] = useState<FindAnswer | null>(null);
  const [inArchive, setInArchive] = useState<Record<string, Held>>({});
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [open, setOpen] = useState("");

  const place = (p: Problem | null) => {
    setProblem(p);
    onNodeError(p?.key === "node" ? p.message : "");
  };

  const search = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    place(null);
    const query: Record<string, string> = {};
    const put = (key: string, value: string) => {
      if (value.trim()) query[key] = value.trim();
    };
    put("PatientName", patient);
    put("PatientID", pid);
    put("StudyDate", dateRange(range, from, to));
    put("ModalitiesInStudy", modality.toUpperCase());
    put("AccessionNumber", accession);
    try {
      const body = { level: "STUDY", query, ...(override ? { override_schedule: true } : {}) };
      const a = await api<FindAnswer>("POST", `/api/nodes/${enc(node.name)}/find`, body);
      setAnswer(a);
      setSelected(new Set());
      setOpen("");
      setInArchive({});
      lookUp(
        a.results.map((r) => r.StudyInstanceUID).filter(Boolean),
        (uid, row) => setInArchive((m) => ({ ...m, [uid]: row })),
      );
    } catch (err) {
      place(problemOf(err, FIND_FIELDS));
    } finally {
      setBusy(false);
    }
  };

  const dateError = errorFor(problem, "date");
  return (
    <>
      <form class="search" onSubmit={search} aria-labelledby="search-title" noValidate>
        <h2 id="search-title">Find studies on {node.name}</h2>
        <div class="fields">
          <TextField id="find-patient" label="Patient name" value={patient} onInput={setPatient} help="* and ? are wildcards" error={errorFor(problem, "patient")} />
          <TextField id="find-pid" label="Patient ID" value={pid} onInput={setPid} error={errorFor(problem, "pid")} />
          <TextField id="find-modality" label="Modality" value={modality} onInput={setModality} help="e.g. CT, MR" error={errorFor(problem, "modality")} />
          <TextField id="find-accession" label="Accession number" value={accession} onInput={setAccession} error={errorFor(problem, "accession")} />
        </div>
        <fieldset class="dates" aria-describedby={dateError ? "find-date-error" : undefined}>
          <legend>Study date</legend>
          {(
            [
              ["any", "Any date"],
              ["today", "Today"],
              ["week", "Last 7 days"],
              ["custom", "Custom"],
            ] as [Range, string][]
          ).map(([value, label]) => (
            <label class="check">
              <input type="radio" name="find-range" value={value} checked={range === value} onChange={() => setRange(value)} />
              {label}
            </label>
          ))}
          {range === "custom" && (
            <span class="range">
              <label for="find-from">From</label>
              <input id="find-from" type="date" value={from} aria-invalid={dateError ? "true" : undefined} aria-describedby={dateError ? "find-date-error" : undefined} onInput={(e) => setFrom(e.currentTarget.value)} />
              <label for="find-to">To</label>
              <input id="find-to" type="date" value={to} aria-invalid={dateError ? "true" : undefined} aria-describedby={dateError ? "find-date-error" : undefined} onInput={(e) => setTo(e.currentTarget.value)} />
            </span>
          )}
          <FieldError id="find-date" error={dateError} />
        </fieldset>
        {node.available === false && (
          <label class="check">
            <input type="checkbox" checked={override} onChange={(e) => setOverride(e.currentTarget.checked)} />
            Query now, outside the node's availability window
          </label>
        )}
        <div class="buttons left">
          <button type="submit" disabled={busy}>
            {busy ? "Searching…" : "Search"}
          </button>
        </div>
        <GeneralError problem={problem} />
      </form>
      <div role="status" id="find-summary" class="muted">
        {answer &&
          `${answer.results.length} ${answer.results.length === 1 ? "study" : "studies"} found on ${node.name}` +
            (answer.truncated ? ": more match than the node answers at once (its max_results); narrow the search" : "")}
      </div>
      {answer && answer.results.length > 0 && (
        <>
          <FoundStudies
            node={node.name}
            override={override}
            results={answer.results}
            inArchive={inArchive}
            selected={selected}
            onSelect={setSelected}
            open={open}
            onOpen={setOpen}
          />
          <RetrieveForm node={node.name} uids={[...selected]} onNodeError={onNodeError} />
        </>
      )}
    </>
  );
}

function FoundStudies(p: {
  node: string;
  override: boolean;
  results: Record<string, string>[];
  inArchive: Record<string, Held>;
  selected: Set<string>;
  onSelect: (s: Set<string>) => void;
  open: string;
  onOpen: (uid: string) => void;
}) {
  const uids = p.results.map((r) => r.StudyInstanceUID).filter(Boolean);
  const all = uids.length > 0 && uids.every((u) => p.selected.has(u));
  const toggle = (uid: string, on: boolean) => {
    const next = new Set(p.selected);
    if (on) next.add(uid);
    else next.delete(uid);
    p.onSelect(next);
  };
  return (
    <table class="grid found">
      <caption class="sr-only">Studies found on {p.node}</caption>
      <thead>
        <tr>
          <SelectAll id="found-select-all" checked={all} onChange={(on) => p.onSelect(new Set(on ? uids : []))} />
          <ColumnHeads names={["Patient", "Patient ID", "Date", "Description", "Modalities", "Accession", "Series", "Instances", "Archive"]} />
        </tr>
      </thead>
      <tbody>
        {p.results.map((r, i) => {
          const uid = r.StudyInstanceUID ?? "";
          const [mark, words] = archiveMark(p.inArchive[uid], r.NumberOfStudyRelatedInstances);
          const name = r.PatientName || "(no name)";
          const isOpen = uid !== "" && p.open === uid;
          return (
            <>
              <tr data-study={uid} data-in-archive={mark}>
                <td>
                  <input
                    type="checkbox"
                    disabled={!uid}
                    checked={p.selected.has(uid)}
                    aria-label={`Select the study of ${name} of ${date(r.StudyDate)}`}
                    onChange={(e) => toggle(uid, e.currentTarget.checked)}
                  />
                </td>
                <th scope="row">
                  <Opener open={isOpen} controls={`found-series-${i}`} onToggle={() => p.onOpen(isOpen ? "" : uid)}>
                    {name}
                  </Opener>
                </th>
                <td>{r.PatientID}</td>
                <td>{date(r.StudyDate)}</td>
                <td>{r.StudyDescription}</td>
                <td>{(r.ModalitiesInStudy ?? "").split("\\").join(", ")}</td>
                <td>{r.AccessionNumber}</td>
                <td>{r.NumberOfStudyRelatedSeries}</td>
                <td>{r.NumberOfStudyRelatedInstances}</td>
                <td class={`in-archive ${mark}`}>{words}</td>
              </tr>
              {isOpen && (
                <tr class="detail" id={`found-series-${i}`}>
                  <td colSpan={10}>
                    <SeriesOnNode node={p.node} override={p.override} study={uid} patient={name} />
                  </td>
                </tr>
              )}
            </>
          );
        })}
      </tbody>
    </table>
  );
}

// A study's series as the node lists them: a SERIES-level find, asked when the row opens (outside
// the node's window too when the search was).
function SeriesOnNode(p: { node: string; override: boolean; study: string; patient: string }) {
  const { node, study, patient } = p;
  const [series, setSeries] = useState<Record<string, string>[] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    const body = { level: "SERIES", query: { StudyInstanceUID: study }, ...(p.override ? { override_schedule: true } : {}) };
    api<FindAnswer>("POST", `/api/nodes/${enc(node)}/find`, body)
      .then((a) => setSeries(a.results.sort((x, y) => Number(x.SeriesNumber) - Number(y.SeriesNumber))))
      .catch((e: ApiError) => setError(e.message));
  }, [node, study]);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!series) return <p aria-busy="true">Asking {node} for the series…</p>;
  if (!series.length) return <p>{node} lists no series for this study.</p>;
  return (
    <table class="grid nested">
      <caption>Series of {patient} on {node}</caption>
      <thead>
        <tr>
          <ColumnHeads names={["Number", "Modality", "Description", "Instances"]} />
        </tr>
      </thead>
      <tbody>
        {series.map((s) => (
          <tr data-series={s.SeriesInstanceUID}>
            <td>{s.SeriesNumber}</td>
            <td>{s.Modality}</td>
            <td>{s.SeriesDescription}</td>
            <td>{s.NumberOfSeriesRelatedInstances}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

// The selected studies, retrieved as one job (STUDY level), optionally filed under labels.
function RetrieveForm({ node, uids, onNodeError }: { node: string; uids: string[]; onNodeError: (e: string) => void }) {
  const [project, setProject] = useState("");
  const [subject, setSubject] = useState("");
  const [session, setSession] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [jobs, setJobs] = useState<JobRef[]>([]);

  const retrieve = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setProblem(null);
    onNodeError("");
    const labels = Object.fromEntries(
      Object.entries({ project, subject, session })
        .map(([k, v]) => [k, v.trim()])
        .filter(([, v]) => v),
    );
    try {
      const job = await api<JobRef>("POST", "/api/retrieve", { node, level: "STUDY", uids, ...labels });
      setJobs([job]);
    } catch (err) {
      const p = problemOf(err, RETRIEVE_FIELDS);
      setProblem(p);
      if (p.key === "node") onNodeError(p.message);
    } finally {
      setBusy(false);
    }
  };

  const labelHelp = "letters, digits, _ and -; empty: the archive's rules decide";
  return (
    <form class="retrieve" onSubmit={retrieve} aria-labelledby="retrieve-title" noValidate>
      <h2 id="retrieve-title">Retrieve the selected studies</h2>
      <div class="fields">
        <TextField id="retrieve-project" label="Project" value={project} onInput={setProject} help={labelHelp} error={errorFor(problem, "project")} />
        <TextField id="retrieve-subject" label="Subject" value={subject} onInput={setSubject} error={errorFor(problem, "subject")} />
        <TextField id="retrieve-session" label="Session" value={session} onInput={setSession} error={errorFor(problem, "session")} />
      </div>
      <div class="buttons left">
        <button type="submit" disabled={busy || uids.length === 0} aria-describedby="retrieve-count">
          Retrieve
        </button>
        <span id="retrieve-count" class="muted">
          {uids.length === 0 ? "select the studies to retrieve" : `${uids.length} ${uids.length === 1 ? "study" : "studies"} selected`}
        </span>
      </div>
      <FieldError id="retrieve-uids" error={errorFor(problem, "uids")} />
      <GeneralError problem={problem} />
      <JobLinks id="retrieve-result" jobs={jobs} what={`Retrieve from ${node} queued`} />
    </form>
  );
}
