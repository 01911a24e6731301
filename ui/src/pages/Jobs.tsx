// Jobs: retrieves, sends and imports, newest first, kept live by the server's event stream
// (GET /api/jobs/events: the list, then each job that changed), not polled. A job opens to its
// runs (history), what is missing and why, and its parameters.
import { useEffect, useState } from "preact/hooks";

import { api, ApiError, can, Me, PacsNode, useGet, whenStreamUnauthorized } from "../api";
import { Modal } from "./Connections";

interface Progress {
  total?: number | null;
  completed?: number;
  failed?: number;
  remaining?: number;
  bytes?: number;
  total_bytes?: number;
  bytes_per_second?: number;
}

interface Attempt {
  attempt?: number;
  started_at?: string;
  ended_at?: string;
  outcome?: string;
  error?: string | null;
  completed?: number;
  transient?: boolean;
}

export interface Job {
  id: string;
  type: string;
  state: string;
  node: string;
  priority: string;
  paused?: boolean;
  progress: Progress;
  error: string | null;
  warning?: string;
  note?: string;
  created_at: string;
  started_at?: string | null;
  finished_at?: string | null;
  waiting_for?: string;
  next_attempt?: string;
  waiting_until?: string;
  attempts?: number;
  history?: Attempt[];
  missing?: string[];
  missing_count?: number;
  failed_uids?: string[];
  failed_instances?: { sop_uid: string; reason: string }[];
  not_confirmed?: string[];
  [key: string]: unknown;
}

const ACTIVE = ["queued", "waiting", "running"];
const STATES = ["queued", "waiting", "running", "succeeded", "partial", "failed", "canceled"];
const MB = 1024 * 1024;

function time(iso?: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleString();
}

export function percent(p: Progress): number | null {
  const total = p.total ?? (p.completed ?? 0) + (p.failed ?? 0) + (p.remaining ?? 0);
  if (!total) return null;
  return Math.min(100, Math.floor((100 * ((p.completed ?? 0) + (p.failed ?? 0))) / total));
}

// "12 of 40 · 3.1 MB · 1.2 MB/s · about 25 s left"
function figures(j: Job): string {
  const p = j.progress ?? {};
  const parts: string[] = [];
  parts.push(p.total ? `${p.completed ?? 0} of ${p.total}` : `${p.completed ?? 0} done`);
  if (p.failed) parts.push(`${p.failed} failed`);
  if (p.bytes) parts.push(`${(p.bytes / MB).toFixed(1)} MB`);
  if (j.state === "running" && p.bytes_per_second) {
    parts.push(`${(p.bytes_per_second / MB).toFixed(1)} MB/s`);
    const left = eta(p);
    if (left !== null) parts.push(`about ${left} left`);
  }
  return parts.join(" · ");
}

// Time left from the rate so far: by bytes when the job knows its size in bytes, else by
// instances at the average size so far.
function eta(p: Progress): string | null {
  const rate = p.bytes_per_second ?? 0;
  if (!rate || !p.bytes) return null;
  let left: number | null = null;
  if (p.total_bytes) left = (p.total_bytes - p.bytes) / rate;
  else if (p.total && p.completed) left = ((p.total - p.completed - (p.failed ?? 0)) * (p.bytes / p.completed)) / rate;
  if (left === null || left < 0) return null;
  if (left < 90) return `${Math.ceil(left)} s`;
  if (left < 5400) return `${Math.ceil(left / 60)} min`;
  return `${(left / 3600).toFixed(1)} h`;
}

function stateText(j: Job): string {
  if (j.state === "waiting" && j.paused) return "paused";
  if (j.state === "waiting" && j.waiting_for) {
    const until = j.next_attempt ?? j.waiting_until;
    return `waiting for ${j.waiting_for}${until ? ` (${time(until)})` : ""}`;
  }
  return j.state;
}

// The live list: the stream's first "jobs" event, then "job" and "removed" events applied.
function useJobStream(query: string): [Job[] | null, boolean] {
  const [jobs, setJobs] = useState<Job[] | null>(null);
  const [live, setLive] = useState(false);
  useEffect(() => {
    setJobs(null);
    let source: EventSource;
    let again = 0;
    const connect = () => {
      source = new EventSource(`/api/jobs/events${query}`);
      source.addEventListener("open", () => setLive(true));
      source.addEventListener("error", () => {
        setLive(false);
        // The browser reconnects by itself after a broken stream, but not after an answer that
        // was not one (signed out, or too many views open): then we look and try again.
        if (source.readyState === EventSource.CLOSED) {
          whenStreamUnauthorized();
          again = window.setTimeout(connect, 5000);
        }
      });
      source.addEventListener("jobs", (e) => setJobs(JSON.parse((e as MessageEvent).data)));
      source.addEventListener("job", (e) => {
        const job: Job = JSON.parse((e as MessageEvent).data);
        setJobs((list) => {
          const all = list ?? [];
          const at = all.findIndex((j) => j.id === job.id);
          if (at >= 0) return [...all.slice(0, at), job, ...all.slice(at + 1)];
          return [job, ...all].sort((a, b) => Number(b.id) - Number(a.id));
        });
      });
      source.addEventListener("removed", (e) => {
        const { id } = JSON.parse((e as MessageEvent).data);
        setJobs((list) => (list ?? []).filter((j) => j.id !== id));
      });
    };
    connect();
    return () => {
      window.clearTimeout(again);
      source.close();
    };
  }, [query]);
  return [jobs, live];
}

export function Jobs({ me }: { me: Me }) {
  const [state, setState] = useState("");
  const [type, setType] = useState("");
  const [node, setNode] = useState("");
  const [nodes] = useGet<PacsNode[]>("/api/nodes");
  const params = new URLSearchParams({ limit: "100" });
  if (state) params.set("state", state);
  if (type) params.set("type", type);
  if (node) params.set("node", node);
  const [jobs, live] = useJobStream(`?${params}`);
  const [error, setError] = useState("");
  // "#/jobs/12" opens job 12 (links from the Import and Send pages); closing goes back to #/jobs.
  const fromHash = () => /^#\/jobs\/(\d+)$/.exec(window.location.hash)?.[1] ?? null;
  const [open, setOpenState] = useState<string | null>(fromHash());
  useEffect(() => {
    const onHash = () => setOpenState(fromHash());
    window.addEventListener("hashchange", onHash);
    return () => window.removeEventListener("hashchange", onHash);
  }, []);
  const setOpen = (id: string | null) => {
    window.location.hash = id ? `#/jobs/${id}` : "#/jobs";
  };

  const act = async (j: Job, action: string, body: Record<string, string> = {}) => {
    try {
      await api("POST", `/api/jobs/${j.id}/${action}`, body);
      setError("");
    } catch (e) {
      setError(`job ${j.id}: ${(e as ApiError).message}`);
    }
  };

  return (
    <section aria-labelledby="jobs-title">
      <h1 id="jobs-title">Jobs</h1>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Filter jobs">
        <label>
          State
          <select value={state} onChange={(e) => setState(e.currentTarget.value)}>
            <option value="">any</option>
            {STATES.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Type
          <select value={type} onChange={(e) => setType(e.currentTarget.value)}>
            <option value="">any</option>
            {["retrieve", "send", "import"].map((t) => (
              <option value={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Node
          <select value={node} onChange={(e) => setNode(e.currentTarget.value)}>
            <option value="">any</option>
            {(nodes ?? []).map((n) => (
              <option value={n.name}>{n.name}</option>
            ))}
          </select>
        </label>
        <span class={live ? "live on" : "live"} role="status">
          {live ? "live" : "connecting…"}
        </span>
      </form>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {jobs && jobs.length === 0 && <p>No job{state || type || node ? " matches" : " yet"}.</p>}
      {jobs && jobs.length > 0 && (
        <table class="grid">
          <caption class="sr-only">Jobs, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Type</th>
              <th scope="col">Node</th>
              <th scope="col">State</th>
              <th scope="col">Priority</th>
              <th scope="col">Progress</th>
              <th scope="col">Created</th>
              <th scope="col">Error</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((j) => {
              const pct = percent(j.progress ?? {});
              const active = ACTIVE.includes(j.state);
              const pending = j.state === "queued" || j.state === "waiting";
              return (
                <tr data-job={j.id} data-state={j.state} data-priority={j.priority}>
                  <th scope="row">
                    <button type="button" class="link" onClick={() => setOpen(j.id)} aria-label={`Details of job ${j.id}`}>
                      {j.id}
                    </button>
                  </th>
                  <td>{j.type}</td>
                  <td>{j.node}</td>
                  <td class={`state ${j.state}`}>{stateText(j)}</td>
                  <td>
                    {can(me, "user") && pending ? (
                      <select
                        aria-label={`Priority of job ${j.id}`}
                        value={j.priority}
                        onChange={(e) => act(j, "reorder", { priority: e.currentTarget.value })}
                      >
                        {["high", "normal", "low"].map((p) => (
                          <option value={p}>{p}</option>
                        ))}
                      </select>
                    ) : (
                      j.priority
                    )}
                  </td>
                  <td class="progress">
                    {pct !== null && (
                      <progress max={100} value={pct} aria-label={`job ${j.id} progress`}>
                        {pct} %
                      </progress>
                    )}{" "}
                    <span class="pct">{pct !== null ? `${pct} %` : ""}</span> <span class="figures">{figures(j)}</span>
                  </td>
                  <td>{time(j.created_at)}</td>
                  <td>{j.error ?? j.warning ?? ""}</td>
                  <td class="actions">
                    {can(me, "user") && pending && (
                      <button type="button" onClick={() => act(j, "reorder", { position: "first" })}>
                        Run next
                      </button>
                    )}
                    {can(me, "user") && active && !j.paused && (
                      <button type="button" onClick={() => act(j, "pause")}>
                        Pause
                      </button>
                    )}
                    {can(me, "user") && j.paused && (
                      <button type="button" onClick={() => act(j, "resume")}>
                        Resume
                      </button>
                    )}
                    {can(me, "user") && active && (
                      <button type="button" onClick={() => act(j, "cancel")}>
                        Cancel
                      </button>
                    )}
                    {can(me, "user") && !active && (
                      <button type="button" onClick={() => act(j, "retry")}>
                        Retry
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {open && <JobDetail id={open} live={jobs?.find((j) => j.id === open)} onClose={() => setOpen(null)} />}
    </section>
  );
}

// One job in full (GET /api/jobs/{id}: its long lists too), asked again when the stream says it
// changed.
function JobDetail(props: { id: string; live?: Job; onClose: () => void }) {
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState("");
  const stamp = props.live ? `${props.live.state} ${props.live.attempts} ${props.live.finished_at}` : "";
  useEffect(() => {
    api<Job>("GET", `/api/jobs/${props.id}`)
      .then((j) => {
        setJob(j);
        setError("");
      })
      .catch((e: ApiError) => setError(e.message));
  }, [props.id, stamp]);
  const reasons = missingReasons(job);
  return (
    <Modal title={`Job ${props.id}`} onClose={props.onClose}>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {job && (
        <div class="job-detail">
          <dl class="facts">
            <dt>Type</dt>
            <dd>{job.type}</dd>
            <dt>Node</dt>
            <dd>{job.node}</dd>
            <dt>State</dt>
            <dd>{stateText(job)}</dd>
            <dt>Progress</dt>
            <dd>{figures(job)}</dd>
            {job.error && (
              <>
                <dt>Error</dt>
                <dd>{job.error}</dd>
              </>
            )}
            {job.warning && (
              <>
                <dt>Warning</dt>
                <dd>{job.warning}</dd>
              </>
            )}
            {job.note && (
              <>
                <dt>Note</dt>
                <dd>{job.note}</dd>
              </>
            )}
          </dl>
          <h3>Runs</h3>
          {(job.history ?? []).length === 0 ? (
            <p>Not run yet.</p>
          ) : (
            <table class="grid" aria-label={`Runs of job ${job.id}`}>
              <thead>
                <tr>
                  <th scope="col">Started</th>
                  <th scope="col">Ended</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">Completed</th>
                  <th scope="col">Why</th>
                </tr>
              </thead>
              <tbody>
                {(job.history ?? []).map((a) => (
                  <tr data-outcome={a.outcome}>
                    <td>{time(a.started_at)}</td>
                    <td>{time(a.ended_at)}</td>
                    <td>{a.outcome}</td>
                    <td>{a.completed ?? ""}</td>
                    <td>{a.error ?? ""}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {reasons.length > 0 && (
            <>
              <h3>
                Missing instances ({reasons.length}
                {job.missing_count && job.missing_count > reasons.length ? ` of ${job.missing_count}` : ""})
              </h3>
              <table class="grid" aria-label={`Missing instances of job ${job.id}`}>
                <thead>
                  <tr>
                    <th scope="col">SOP Instance UID</th>
                    <th scope="col">Why</th>
                  </tr>
                </thead>
                <tbody>
                  {reasons.map(([uid, why]) => (
                    <tr data-missing={uid}>
                      <td class="uid">{uid}</td>
                      <td>{why}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
        </div>
      )}
    </Modal>
  );
}

// [SOP Instance UID, why] for what a job did not get (retrieve) or did not deliver (send).
function missingReasons(job: Job | null): [string, string][] {
  if (!job) return [];
  const out: [string, string][] = [];
  const failed = new Set(job.failed_uids ?? []);
  for (const uid of job.missing ?? []) {
    out.push([uid, failed.has(uid) ? "the node reported it could not send it" : "never arrived"]);
  }
  for (const f of job.failed_instances ?? []) out.push([f.sop_uid, f.reason]);
  for (const uid of job.not_confirmed ?? []) out.push([uid, "sent, not confirmed by the node"]);
  return out;
}
