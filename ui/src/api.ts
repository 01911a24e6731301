import { useEffect, useRef, useState } from "preact/hooks";

// The one way the UI talks to the server: the REST API, same origin, with the session cookie.
// Changes carry the session's CSRF token; X-Requested-With keeps the browser's own password
// dialog away (the server then answers 401 without a challenge).

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public field?: string,
  ) {
    super(message);
  }
}

let csrfToken = "";
let onSignedOut: () => void = () => {};

export function setCsrfToken(token: string) {
  csrfToken = token;
}

export function whenSignedOut(handler: () => void) {
  onSignedOut = handler;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { "X-Requested-With": "pacsbridge-ui", Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrfToken;
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, "the server cannot be reached");
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    if (response.status === 401 && path !== "/api/auth/login") onSignedOut();
    const message = data && typeof data.error === "string" ? data.error : `the server answered HTTP ${response.status}`;
    throw new ApiError(response.status, message, data && typeof data.field === "string" ? data.field : undefined);
  }
  return data as T;
}

// An event stream (EventSource) that ended for good: asks who we are, so that a session that
// ended signs the UI out (api() does on 401).
export function whenStreamUnauthorized() {
  api("GET", "/api/auth/me").catch(() => {});
}

// Live validation of a form: `check` (a dry run of the form's request) a moment after the last
// change to `deps`; it is told whether its answer is still about the current values. The
// returned `settle` stops a check not yet sent and waits for one under way: a save calls it first,
// so that no dry run reaches the server after the save it would contradict (a dry-run POST after
// the node it describes was created answers 409 "exists already").
export function useLiveCheck(check: (current: () => boolean) => Promise<void>, deps: unknown[], delayMs = 250) {
  const generation = useRef(0);
  const timer = useRef<number | undefined>(undefined);
  const running = useRef<Promise<void> | null>(null);
  useEffect(() => {
    const n = ++generation.current;
    timer.current = window.setTimeout(() => {
      timer.current = undefined;
      running.current = check(() => n === generation.current).catch(() => {});
    }, delayMs);
    return () => window.clearTimeout(timer.current);
  }, deps);
  return async () => {
    generation.current++;
    window.clearTimeout(timer.current);
    timer.current = undefined;
    await running.current;
  };
}

// A GET kept in state: [answer (null until the first), error text, reload, setError, the path
// the answer is for]; with `everyMs`, asked again that often while the component is shown. When
// the path changes, the last answer stays shown until the new one comes (the fifth element says
// which path it answers), and an answer for a path no longer asked is dropped, so a slow earlier
// query never overwrites a later one.
export function useGet<T>(path: string, everyMs = 0): [T | null, string, () => void, (e: string) => void, string] {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState("");
  const [answered, setAnswered] = useState("");
  const current = useRef(path);
  current.current = path;
  const load = () => {
    const asked = path;
    return api<T>("GET", asked)
      .then((answer) => {
        if (current.current !== asked) return;
        setData(answer);
        setAnswered(asked);
        setError("");
      })
      .catch((e: ApiError) => {
        if (current.current === asked) setError(e.message);
      });
  };
  useEffect(() => {
    load();
    if (!everyMs) return;
    const t = window.setInterval(load, everyMs);
    return () => window.clearInterval(t);
  }, [path]);
  return [data, error, load, setError, answered];
}

export type Role = "admin" | "user" | "read-only";

export interface Me {
  username: string;
  role: Role;
  via: string;
  csrf_token?: string;
}

export interface NodeTest {
  at: string;
  ok: boolean;
  message: string;
  latency_ms: number;
  checks?: { name: string; outcome: string; message: string }[];
}

// A node's availability windows (docs/api.md, Nodes: `schedule`); null on a node: always.
export interface ScheduleWindow {
  days: string[];
  start: string;
  end: string;
}

export interface NodeSchedule {
  timezone?: string | null; // absent or null: the server's
  windows: ScheduleWindow[];
}

export interface PacsNode {
  name: string;
  type: "dimse" | "dicomweb";
  description?: string;
  ae_title?: string;
  host?: string;
  port?: number;
  url?: string;
  queryable?: boolean;
  storable?: boolean;
  default_query_retrieve?: boolean;
  default_storage?: boolean;
  retrieve_method?: string;
  effective_retrieve_method?: string;
  retrieve_method_learned?: string | null;
  calling_ae_title?: string;
  move_destination?: string;
  tls?: { enabled?: boolean };
  schedule?: NodeSchedule | null;
  max_bytes_per_second?: number;
  available?: boolean;
  availability_changes_at?: string | null;
  unavailable_reason?: string | null;
  offers_import?: boolean;
  offers_export?: boolean;
  locked?: boolean;
  source?: string;
  last_test?: NodeTest | null;
  auth?: { type?: string; username?: string; has_password?: boolean; has_token?: boolean };
  mwl?: boolean; // answers Modality Worklist C-FIND
  mwl_charset?: string;
  mpps?: boolean; // takes MPPS N-CREATE/N-SET
  [key: string]: unknown;
}

// POST /api/nodes/{name}/find: one object per answer, DICOM keyword → value (UTF-8; several
// values joined by "\\"); `truncated` when the node had more than its max_results.
export interface FindAnswer {
  results: Record<string, string>[];
  truncated: boolean;
}

// POST /api/nodes/{name}/worklist: one scheduled procedure step per item, keyword → text (the
// first step's attributes also at the top level), with the MPPS step that performs it, if any.
export interface WorklistItem {
  PatientName?: string;
  PatientID?: string;
  AccessionNumber?: string;
  StudyInstanceUID?: string;
  RequestedProcedureDescription?: string;
  ScheduledProcedureStepDescription?: string;
  ScheduledProcedureStepID?: string;
  ScheduledProcedureStepStartDate?: string;
  ScheduledProcedureStepStartTime?: string;
  Modality?: string;
  ScheduledStationAETitle?: string;
  dicom?: unknown;
  mpps: null | {
    sop_instance_uid: string;
    direction: "sent" | "received";
    status: "IN PROGRESS" | "COMPLETED" | "DISCONTINUED";
    updated_at: string;
  };
  done: boolean;
  [key: string]: unknown;
}

export interface WorklistAnswer {
  results: WorklistItem[];
  truncated: boolean;
}

// An MPPS step (POST /api/mpps, PUT /api/mpps/{uid}, GET /api/mpps).
export interface MppsStep {
  sop_instance_uid: string;
  direction: "sent" | "received";
  status: string;
  node: string;
  accession_number: string;
  warning?: string;
}

// GET /api/studies and GET /api/studies/{uid}/series: the local archive.
export interface ArchiveStudy {
  StudyInstanceUID: string;
  PatientID: string;
  PatientName: string;
  StudyDate: string;
  StudyDescription: string;
  AccessionNumber: string;
  ModalitiesInStudy: string;
  series_count: number;
  instance_count: number;
}

export interface ArchiveSeries {
  SeriesInstanceUID: string;
  Modality: string;
  SeriesNumber: string;
  SeriesDescription: string;
  instance_count: number;
}

// A job as POST /api/retrieve, /api/send and /api/imports answer it (202).
export interface JobRef {
  id: string;
  type: string;
  state: string;
  node: string;
  error?: string | null;
}

// An import of a spreadsheet (GET /api/imports/{id}): each row's find, matches and retrieve.
export interface ImportRow {
  line: number;
  query: Record<string, string>;
  project: string | null;
  subject: string | null;
  session: string | null;
  state: "pending" | "no_match" | "one_match" | "several_matches" | "error";
  error: string | null;
  matches: Record<string, string>[];
  choice: "all" | "none" | null;
  job: { id: string; state: string; error: string | null } | null;
  note?: string;
}

export interface ImportView extends JobRef {
  phase: "query" | "confirmation" | "retrieve" | "done";
  rows: ImportRow[];
  summary: Record<string, number>;
}

export function can(me: Me, role: Role): boolean {
  const rank = { "read-only": 0, user: 1, admin: 2 } as const;
  return rank[me.role] >= rank[role];
}

// Our listeners (GET /api/receivers), as docs/receivers.md describes them.
export interface RoutingTexts {
  project: string;
  subject: string;
  session: string;
}

export interface Receiver {
  id: string;
  ae_title: string;
  port: number;
  bind: string;
  enabled: boolean;
  status: string; // "listening", "disabled" or "error: <reason>"
  locked: boolean;
  whitelist_enabled: boolean;
  whitelist: string;
  routing: RoutingTexts;
  default_project: string;
  identification: "rules" | "jobs";
  processors: unknown[] | null;
  anonymize: boolean;
  anonymization: { retain_dates: boolean; retain_device_identity: boolean; retain_uids: boolean; keep_private_tags: boolean };
  direct_archive: boolean;
  staging_idle_seconds: number;
  tls: { enabled: boolean; cert_file: string; key_file: string; ca_file: string; require_client_cert: boolean };
}

// POST /api/routing/try: one label as routing decides it, and why.
export interface TriedLabel {
  value: string;
  source: "receiver_rule" | "site_rule" | "comment" | "receiver_default" | "default_rule" | "unassigned" | "none";
  tag: string | null;
  keyword: string | null;
  rule: string | null;
  line: number | null;
  explanation: string;
  pseudonym?: boolean; // anonymization turned the value into a stable pseudonym
}

export interface RoutingTry {
  project: TriedLabel;
  subject: TriedLabel;
  session: TriedLabel;
  attributes: Record<string, string>;
  anonymize?: boolean; // the receiver anonymizes (labels from patient data become pseudonyms)
}

export interface User {
  username: string;
  role: Role;
  created_at: string;
  password_changed_at: string;
  last_login_at: string | null;
}

export interface ApiToken {
  id: string;
  name: string;
  username: string;
  role: Role;
  created_at: string | null;
  expires_at: string | null;
  last_used_at: string | null;
  token?: string; // the secret: only in the answer that created it
}

export interface AuditEntry {
  id: number;
  at: string;
  actor: string;
  via: string;
  client: string;
  request_id: string;
  action: string;
  target_type: string;
  target: string;
  before: unknown;
  after: unknown;
}

export const ROLES: Role[] = ["admin", "user", "read-only"];

// "line N: ..." in an error about a text of lines (whitelist, rules): N, else null.
export function errorLine(message: string): number | null {
  const m = /^line (\d+):/.exec(message);
  return m ? Number(m[1]) : null;
}

// A time from the API in the reader's local form ("" for none).
export function when(iso: string | undefined | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleString();
}
