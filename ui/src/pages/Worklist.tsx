// Worklist: the scheduled procedure steps a node's Modality Worklist holds (POST
// /api/nodes/{name}/worklist) for a day (the server's today unless another is chosen), a modality,
// a station; and for each, the Modality Performed Procedure Step that reports it to a node with
// mpps on: Start (N-CREATE "IN PROGRESS", POST /api/mpps), Complete with the series the archive
// holds of the item's study, or Discontinue with a reason of PS3.16 CID 9300 (N-SET, PUT
// /api/mpps/{uid}). The state shown is always the server's: the list is asked again after each
// action, whether it was accepted or refused.
import { useEffect, useRef, useState } from "preact/hooks";

import { api, ApiError, ArchiveSeries, ArchiveStudy, can, Me, MppsStep, PacsNode, useGet, WorklistAnswer, WorklistItem } from "../api";
import { Alert, DialogForm } from "../forms";
import { ColumnHeads, date, enc, errorFor, FieldError, GeneralError, NodeChoice, Problem, problemOf, TextField } from "./TransferParts";

// PS3.16 CID 9300 Procedure Discontinuation Reason: the codes it takes from CID 9301 Modality
// PPS Discontinuation Reason (scheme DCM), the default first.
export const REASONS: [string, string][] = [
  ["110513", "Discontinued for unspecified reason"],
  ["110514", "Incorrect worklist entry selected"],
  ["110500", "Doctor canceled procedure"],
  ["110501", "Equipment failure"],
  ["110502", "Incorrect procedure ordered"],
  ["110503", "Patient allergic to media/contrast"],
  ["110504", "Patient died"],
  ["110505", "Patient refused to continue procedure"],
  ["110506", "Patient taken for treatment or surgery"],
  ["110507", "Patient did not arrive"],
  ["110508", "Patient pregnant"],
  ["110509", "Change of procedure for correct charging"],
  ["110510", "Duplicate order"],
  ["110511", "Nursing unit cancel"],
  ["110512", "Incorrect side ordered"],
  ["110515", "Patient condition prevented continuing"],
  ["110516", "Equipment change"],
];

type Range = "today" | "day" | "any";
type State = "not started" | "in progress" | "completed" | "discontinued";

// The query last sent: the list is asked again with it after an action.
interface Asked {
  query: Record<string, string>;
  override: boolean;
  what: string; // "today", "on 2026-12-04", "any date"
  oneDay: boolean;
}

interface Shown {
  items: WorklistItem[];
  truncated: boolean;
  asked: Asked;
  ours: Set<string>; // steps in progress that we sent (so we may end them), by SOP Instance UID
}

// Where the worklist's errors go: the API's `field` → the control.
const WORKLIST_FIELDS: Record<string, string> = {
  node: "node",
  mwl: "node",
  schedule: "node",
  "query.ScheduledProcedureStepStartDate": "date",
  "query.Modality": "modality",
  "query.ScheduledStationAETitle": "station",
  "query.PatientName": "patient",
};

function isoDay(d: Date): string {
  const pad = (x: number) => String(x).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

// "083000" or "0830" → "08:30".
function clock(t: string | undefined): string {
  return t && /^\d{4}/.test(t) ? `${t.slice(0, 2)}:${t.slice(2, 4)}` : t ?? "";
}

function stateOf(it: WorklistItem): State {
  switch (it.mpps?.status) {
    case "IN PROGRESS":
      return "in progress";
    case "COMPLETED":
      return "completed";
    case "DISCONTINUED":
      return "discontinued";
    default:
      return "not started";
  }
}

function procedureOf(it: WorklistItem): string {
  return it.RequestedProcedureDescription || it.ScheduledProcedureStepDescription || "";
}

// How an item is named in messages and button labels: patient and accession number.
function labelOf(it: WorklistItem): string {
  const name = it.PatientName || it.PatientID || "(no name)";
  return it.AccessionNumber ? `${name} (${it.AccessionNumber})` : name;
}

// The item as POST /api/mpps takes it: as the worklist gave it, without what the server added.
function asSent(it: WorklistItem): Record<string, unknown> {
  const { dicom: _dicom, mpps: _mpps, done: _done, ...rest } = it;
  return rest;
}

function message(e: unknown): string {
  if (!(e instanceof ApiError)) throw e;
  return e.message;
}

export function Worklist({ me }: { me: Me }) {
  const [nodes, error] = useGet<PacsNode[]>("/api/nodes");
  const [picked, setPicked] = useState("");
  const [nodeError, setNodeError] = useState("");
  const user = can(me, "user");
  const mwl = nodes?.filter((n) => n.mwl) ?? null;
  const node = mwl?.find((n) => n.name === picked) ?? mwl?.[0];
  return (
    <section aria-labelledby="worklist-title">
      <h1 id="worklist-title">Worklist</h1>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {mwl && mwl.length === 0 ? (
        <p id="worklist-no-node">
          No node offers a modality worklist: an administrator turns <span class="mono">mwl</span> on for one on{" "}
          <a href="#/connections">PACS connections</a>.
        </p>
      ) : (
        <NodeChoice
          id="worklist-node"
          label="Worklist node"
          none=""
          nodes={mwl}
          value={node?.name ?? ""}
          error={nodeError}
          onChange={(name) => {
            setPicked(name);
            setNodeError("");
          }}
        />
      )}
      {!user && (
        <p class="muted" id="worklist-read-only">
          This account is read-only: asking a worklist and reporting procedure steps need the user role.
        </p>
      )}
      {user && node && nodes && (
        <Items key={node.name} node={node} mppsNodes={nodes.filter((n) => n.mpps && n.type === "dimse")} onNodeError={setNodeError} />
      )}
    </section>
  );
}

type Dialog = { kind: "start" | "complete" | "discontinue"; item: WorklistItem };

function Items({ node, mppsNodes, onNodeError }: { node: PacsNode; mppsNodes: PacsNode[]; onNodeError: (e: string) => void }) {
  const [range, setRange] = useState<Range>("today");
  const [day, setDay] = useState(isoDay(new Date()));
  const [modality, setModality] = useState("");
  const [station, setStation] = useState("");
  const [patient, setPatient] = useState("");
  const [override, setOverride] = useState(false);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [shown, setShown] = useState<Shown | null>(null);
  const [dialog, setDialog] = useState<Dialog | null>(null);
  const [starting, setStarting] = useState<WorklistItem | null>(null); // its N-CREATE is under way (one MPPS node)
  const [actionError, setActionError] = useState("");
  const [outcome, setOutcome] = useState("");
  const asked = useRef<Asked>({ query: {}, override: false, what: "today", oneDay: true });
  const sequence = useRef(0); // only the newest answer is shown

  const place = (p: Problem | null) => {
    setProblem(p);
    onNodeError(p?.key === "node" ? p.message : "");
  };

  const load = async (a: Asked) => {
    const mine = ++sequence.current;
    setBusy(true);
    try {
      const body = { query: a.query, ...(a.override ? { override_schedule: true } : {}) };
      const answer = await api<WorklistAnswer>("POST", `/api/nodes/${enc(node.name)}/worklist`, body);
      // A step in progress that a modality reported may still be one we sent (to ourselves):
      // ours when a sent step has its UID.
      let ours = new Set<string>();
      if (answer.results.some((it) => it.mpps?.status === "IN PROGRESS" && it.mpps.direction !== "sent")) {
        try {
          const steps = await api<MppsStep[]>("GET", "/api/mpps?direction=sent&status=IN%20PROGRESS&limit=1000");
          ours = new Set(steps.map((s) => s.sop_instance_uid));
        } catch (e) {
          message(e);
        }
      }
      for (const it of answer.results) if (it.mpps?.direction === "sent") ours.add(it.mpps.sop_instance_uid);
      if (mine !== sequence.current) return;
      setShown({ items: answer.results, truncated: answer.truncated, asked: a, ours });
      place(null);
    } catch (e) {
      if (mine === sequence.current) place(problemOf(e, WORKLIST_FIELDS));
    } finally {
      if (mine === sequence.current) setBusy(false);
    }
  };

  useEffect(() => {
    load(asked.current);
  }, []);

  const refresh = (e: Event) => {
    e.preventDefault();
    const query: Record<string, string> = {};
    let what = "today";
    let oneDay = true;
    if (range === "any") {
      query.ScheduledProcedureStepStartDate = "";
      what = "any date";
      oneDay = false;
    } else if (range === "day") {
      if (!day) {
        place({ key: "date", message: "choose a day" });
        return;
      }
      query.ScheduledProcedureStepStartDate = day.replace(/-/g, "");
      what = `on ${day}`;
    }
    const put = (key: string, value: string) => {
      if (value.trim()) query[key] = value.trim();
    };
    put("Modality", modality.toUpperCase());
    put("ScheduledStationAETitle", station);
    put("PatientName", patient);
    asked.current = { query, override, what, oneDay };
    load(asked.current);
  };

  const begin = () => {
    setActionError("");
    setOutcome("");
  };

  // N-CREATE to `to`: "" when accepted, else the API's words. The list is asked again either way.
  const start = async (it: WorklistItem, to: string): Promise<string> => {
    try {
      const step = await api<MppsStep>("POST", "/api/mpps", { node: to, item: asSent(it) });
      setOutcome(`${labelOf(it)}: started, reported to ${to}${step.warning ? ` (${step.warning})` : ""}.`);
      return "";
    } catch (e) {
      return message(e);
    } finally {
      load(asked.current);
    }
  };

  // N-SET of the item's step.
  const end = async (it: WorklistItem, body: unknown, done: string): Promise<string> => {
    try {
      const step = await api<MppsStep>("PUT", `/api/mpps/${enc(it.mpps!.sop_instance_uid)}`, body);
      setOutcome(`${labelOf(it)}: ${done}${step.warning ? ` (${step.warning})` : ""}.`);
      return "";
    } catch (e) {
      return message(e);
    } finally {
      load(asked.current);
    }
  };

  const onStart = async (it: WorklistItem) => {
    begin();
    if (mppsNodes.length !== 1) return setDialog({ kind: "start", item: it });
    setStarting(it);
    const refused = await start(it, mppsNodes[0].name);
    setStarting(null);
    if (refused) setActionError(`${labelOf(it)} could not be started: ${refused}`);
  };

  const dateError = errorFor(problem, "date");
  const items = shown?.items ?? [];
  return (
    <>
      <form class="search" onSubmit={refresh} aria-labelledby="worklist-filter-title" noValidate>
        <h2 id="worklist-filter-title">Scheduled procedure steps on {node.name}</h2>
        <fieldset class="dates" aria-describedby={dateError ? "worklist-date-error" : "worklist-date-help"}>
          <legend>Scheduled date</legend>
          {(
            [
              ["today", "Today"],
              ["day", "Another day"],
              ["any", "Any date"],
            ] as [Range, string][]
          ).map(([value, text]) => (
            <label class="check">
              <input type="radio" name="worklist-range" value={value} checked={range === value} onChange={() => setRange(value)} />
              {text}
            </label>
          ))}
          {range === "day" && (
            <span class="range">
              <label for="worklist-day">Day</label>
              <input
                id="worklist-day"
                type="date"
                value={day}
                aria-invalid={dateError ? "true" : undefined}
                aria-describedby={dateError ? "worklist-date-error" : undefined}
                onInput={(e) => setDay(e.currentTarget.value)}
              />
            </span>
          )}
          <div id="worklist-date-help" class="help">
            Today is the server's date.
          </div>
          <FieldError id="worklist-date" error={dateError} />
        </fieldset>
        <div class="fields">
          <TextField id="worklist-modality" label="Modality" value={modality} onInput={setModality} help="e.g. CT, MR; empty: all" error={errorFor(problem, "modality")} />
          <TextField id="worklist-station" label="Station AE title" value={station} onInput={setStation} help="the scheduled station; empty: all" error={errorFor(problem, "station")} />
          <TextField id="worklist-patient" label="Patient name" value={patient} onInput={setPatient} help="* and ? are wildcards" error={errorFor(problem, "patient")} />
        </div>
        {node.available === false && (
          <label class="check">
            <input type="checkbox" checked={override} onChange={(e) => setOverride(e.currentTarget.checked)} />
            Ask now, outside the node's availability window
          </label>
        )}
        <div class="buttons left">
          <button type="submit" disabled={busy}>
            {busy ? "Asking…" : "Refresh"}
          </button>
        </div>
        <GeneralError problem={problem} />
      </form>
      {mppsNodes.length === 0 && (
        <p id="worklist-no-mpps" class="muted">
          No node takes MPPS, so procedure steps cannot be reported: an administrator turns <span class="mono">mpps</span> on for
          one on <a href="#/connections">PACS connections</a>.
        </p>
      )}
      <div role="status" id="worklist-summary" class="muted">
        {shown &&
          `${shown.items.length} scheduled ${shown.items.length === 1 ? "step" : "steps"} on ${node.name}, ${shown.asked.what}` +
            (shown.truncated ? ": more match than the node answers at once (its max_results); narrow the search" : "")}
      </div>
      <Alert text={actionError} />
      <div role="status" id="worklist-outcome" class={outcome ? "result ok" : ""}>
        {outcome}
      </div>
      {shown && items.length > 0 && (
        <table class="grid worklist" aria-busy={busy ? "true" : undefined}>
          <caption class="sr-only">
            Worklist of {node.name}, {shown.asked.what}
          </caption>
          <thead>
            <tr>
              <ColumnHeads names={[shown.asked.oneDay ? "Time" : "Date and time", "Modality", "Station", "Patient", "Accession", "Procedure", "MPPS", "Actions"]} />
            </tr>
          </thead>
          <tbody>
            {items.map((it) => {
              const state = stateOf(it);
              const mine = !!it.mpps && shown.ours.has(it.mpps.sop_instance_uid);
              const label = labelOf(it);
              const at = clock(it.ScheduledProcedureStepStartTime);
              return (
                <tr
                  data-accession={it.AccessionNumber}
                  data-step-id={it.ScheduledProcedureStepID}
                  data-state={state}
                  class={it.done ? "done" : undefined}
                >
                  <td>{shown.asked.oneDay ? at : `${date(it.ScheduledProcedureStepStartDate)} ${at}`.trim()}</td>
                  <td>{it.Modality}</td>
                  <td>{it.ScheduledStationAETitle}</td>
                  <th scope="row">
                    {it.PatientName || "(no name)"}
                    {it.PatientID && <div class="muted">ID {it.PatientID}</div>}
                  </th>
                  <td>{it.AccessionNumber}</td>
                  <td>{procedureOf(it)}</td>
                  <td class={`mpps ${state.replace(" ", "-")}`}>
                    {state === "completed" && <span aria-hidden="true">✓ </span>}
                    {state === "discontinued" && <span aria-hidden="true">✕ </span>}
                    {state}
                    {it.mpps && !mine && it.mpps.direction === "received" && <div class="muted">reported by a modality</div>}
                  </td>
                  <td class="actions">
                    {state === "not started" && mppsNodes.length > 0 && (
                      <button type="button" aria-label={`Start ${label}`} disabled={starting !== null} onClick={() => onStart(it)}>
                        {starting === it ? "Starting…" : "Start"}
                      </button>
                    )}
                    {state === "in progress" && mine && (
                      <>
                        <button
                          type="button"
                          aria-label={`Complete ${label}`}
                          onClick={() => {
                            begin();
                            setDialog({ kind: "complete", item: it });
                          }}
                        >
                          Complete
                        </button>
                        <button
                          type="button"
                          class="danger"
                          aria-label={`Discontinue ${label}`}
                          onClick={() => {
                            begin();
                            setDialog({ kind: "discontinue", item: it });
                          }}
                        >
                          Discontinue
                        </button>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {dialog?.kind === "start" && (
        <StartDialog
          item={dialog.item}
          nodes={mppsNodes}
          preferred={node.mpps ? node.name : mppsNodes[0]?.name ?? ""}
          onStart={(to) => start(dialog.item, to)}
          onClose={() => setDialog(null)}
        />
      )}
      {dialog?.kind === "complete" && (
        <CompleteDialog
          item={dialog.item}
          onComplete={(series) => end(dialog.item, { status: "COMPLETED", series }, `completed with ${series.length} series`)}
          onClose={() => setDialog(null)}
        />
      )}
      {dialog?.kind === "discontinue" && (
        <DiscontinueDialog
          item={dialog.item}
          onDiscontinue={([code, meaning]) =>
            end(
              dialog.item,
              { status: "DISCONTINUED", reason: { CodeValue: code, CodingSchemeDesignator: "DCM", CodeMeaning: meaning } },
              `discontinued (${meaning})`,
            )
          }
          onClose={() => setDialog(null)}
        />
      )}
    </>
  );
}

// Runs a dialog's action: closes the dialog when it was accepted, shows the API's words in it
// when not.
function useAction(onClose: () => void): [boolean, string, (run: () => Promise<string>) => Promise<void>] {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState("");
  const act = async (run: () => Promise<string>) => {
    setBusy(true);
    setError("");
    const refused = await run();
    setBusy(false);
    if (refused) setError(refused);
    else onClose();
  };
  return [busy, error, act];
}

// Which node is told the procedure started, when more than one takes MPPS.
function StartDialog(p: { item: WorklistItem; nodes: PacsNode[]; preferred: string; onStart: (node: string) => Promise<string>; onClose: () => void }) {
  const [to, setTo] = useState(p.preferred);
  const [busy, error, act] = useAction(p.onClose);
  return (
    <DialogForm title={`Start ${labelOf(p.item)}`} submit={busy ? "Starting…" : "Start"} busy={busy} error={error} onSubmit={() => act(() => p.onStart(to))} onClose={p.onClose}>
      <label for="start-node">MPPS node</label>
      <div>
        <select id="start-node" value={to} aria-describedby="start-node-help" onChange={(e) => setTo(e.currentTarget.value)}>
          {p.nodes.map((n) => (
            <option value={n.name}>
              {n.name}
              {n.description ? ` — ${n.description}` : ""}
            </option>
          ))}
        </select>
        <div id="start-node-help" class="help">
          The node told that the procedure is in progress (N-CREATE), and later that it ended.
        </div>
      </div>
    </DialogForm>
  );
}

// The series of the item's study that the archive holds, all chosen at first.
function CompleteDialog(p: { item: WorklistItem; onComplete: (series: string[]) => Promise<string>; onClose: () => void }) {
  const study = p.item.StudyInstanceUID ?? "";
  const [series, setSeries] = useState<ArchiveSeries[] | null>(null);
  const [chosen, setChosen] = useState<Set<string>>(new Set());
  const [loadError, setLoadError] = useState("");
  const [busy, error, act] = useAction(p.onClose);
  useEffect(() => {
    (async () => {
      try {
        let found: ArchiveSeries[] = [];
        if (study) {
          const held = await api<ArchiveStudy[]>("GET", `/api/studies?StudyInstanceUID=${enc(study)}&limit=1`);
          if (held.length) found = await api<ArchiveSeries[]>("GET", `/api/studies/${enc(study)}/series`);
        }
        setSeries(found);
        setChosen(new Set(found.map((s) => s.SeriesInstanceUID)));
      } catch (e) {
        setLoadError(message(e));
        setSeries([]);
      }
    })();
  }, [study]);
  const toggle = (uid: string, on: boolean) => {
    const next = new Set(chosen);
    if (on) next.add(uid);
    else next.delete(uid);
    setChosen(next);
  };
  const list = series ?? [];
  return (
    <DialogForm
      title={`Complete ${labelOf(p.item)}`}
      submit={busy ? "Completing…" : "Complete"}
      busy={busy || series === null}
      error={error}
      onSubmit={() => act(() => p.onComplete(list.filter((s) => chosen.has(s.SeriesInstanceUID)).map((s) => s.SeriesInstanceUID)))}
      onClose={p.onClose}
    >
      <div class="wide">
        <p class="help">
          The node is told that the procedure is completed (N-SET), with the series it produced: each chosen series of the archive, with
          its instances.
        </p>
        {series === null && <p aria-busy="true">Looking for the study's series in the archive…</p>}
        <Alert text={loadError} />
        {series !== null && list.length === 0 && (
          <p id="complete-no-series">
            The archive holds no series of this study{study ? "" : " (the item names no Study Instance UID)"}: the step will be completed
            without a series.
          </p>
        )}
        {list.length > 0 && (
          <table class="grid nested">
            <caption>Series of the study in the archive</caption>
            <thead>
              <tr>
                <ColumnHeads names={["Include", "Number", "Modality", "Description", "Instances"]} />
              </tr>
            </thead>
            <tbody>
              {list.map((s) => (
                <tr data-series={s.SeriesInstanceUID}>
                  <td>
                    <input
                      type="checkbox"
                      checked={chosen.has(s.SeriesInstanceUID)}
                      aria-label={`Include series ${s.SeriesNumber} ${s.SeriesDescription || s.Modality}`.trim()}
                      onChange={(e) => toggle(s.SeriesInstanceUID, e.currentTarget.checked)}
                    />
                  </td>
                  <td>{s.SeriesNumber}</td>
                  <td>{s.Modality}</td>
                  <td>{s.SeriesDescription}</td>
                  <td>{s.instance_count}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {list.length > 0 && (
          <p class="muted" id="complete-count">
            {chosen.size} of {list.length} series chosen
          </p>
        )}
      </div>
    </DialogForm>
  );
}

// Why the procedure stopped: a code of PS3.16 CID 9300.
function DiscontinueDialog(p: { item: WorklistItem; onDiscontinue: (reason: [string, string]) => Promise<string>; onClose: () => void }) {
  const [code, setCode] = useState(REASONS[0][0]);
  const [busy, error, act] = useAction(p.onClose);
  const reason = REASONS.find(([c]) => c === code) ?? REASONS[0];
  return (
    <DialogForm
      title={`Discontinue ${labelOf(p.item)}`}
      submit={busy ? "Discontinuing…" : "Discontinue"}
      busy={busy}
      error={error}
      onSubmit={() => act(() => p.onDiscontinue(reason))}
      onClose={p.onClose}
    >
      <label for="discontinue-reason">Reason</label>
      <div>
        <select id="discontinue-reason" value={code} aria-describedby="discontinue-reason-help" onChange={(e) => setCode(e.currentTarget.value)}>
          {REASONS.map(([c, meaning]) => (
            <option value={c}>
              {meaning} ({c})
            </option>
          ))}
        </select>
        <div id="discontinue-reason-help" class="help">
          Sent with the status DISCONTINUED (N-SET), as a code of DICOM PS3.16 CID 9300.
        </div>
      </div>
    </DialogForm>
  );
}
