// PACS connections: the node table, the add/edit dialog with live validation (the API's own
// words, from a dry run of the same request), the schedule dialog (./ScheduleDialog.tsx), test
// connection and each node's test history.
import { useEffect, useRef, useState } from "preact/hooks";

import { api, ApiError, can, Me, NodeTest, PacsNode, useGet, useLiveCheck } from "../api";
import { rateText, scheduleSummary } from "../schedule";
import { availabilityText, ScheduleForm } from "./ScheduleDialog";

function when(iso: string | undefined | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d.getTime()) ? iso : d.toLocaleString();
}

function address(n: PacsNode): string {
  return n.type === "dicomweb" ? String(n.url ?? "") : `${n.host ?? ""}:${n.port ?? ""}`;
}

// The retrieve method in use: DICOMweb retrieves by WADO-RS; a DIMSE node's configured method,
// and under "auto" (C-GET, falling back to C-MOVE) the one that worked last.
function retrieveText(n: PacsNode): string {
  if (n.type === "dicomweb") return "WADO-RS";
  const configured = n.retrieve_method ?? "auto";
  if (configured !== "auto") return configured.toUpperCase();
  const learned = n.retrieve_method_learned;
  return learned ? `${learned.toUpperCase()} (auto: worked last)` : "auto (C-GET, else C-MOVE)";
}

// Why a node cannot be changed here: only a node of the config file is locked.
const LOCKED_REASON = "Read-only: from the config file; change it there and restart.";

// Columns of the node table (detail rows span them all).
const COLUMNS = 9;

// What the node is used for (queryable, storable), each marked when the node is the default.
function Offers({ n }: { n: PacsNode }) {
  const uses = [
    { what: "query/retrieve", on: n.queryable, isDefault: n.default_query_retrieve },
    { what: "storage", on: n.storable, isDefault: n.default_storage },
  ].filter((u) => u.on);
  if (!uses.length) return <span class="muted">nothing</span>;
  return (
    <>
      {uses.map((u) => (
        <div>
          {u.what}
          {u.isDefault && <span class="badge default"> default</span>}
        </div>
      ))}
    </>
  );
}

function Badges({ n }: { n: PacsNode }) {
  return (
    <span class="badges">
      {n.type === "dicomweb" ? (
        <abbr class="badge dw" title="DICOMweb">
          DW
        </abbr>
      ) : (
        <abbr class="badge dimse" title="DIMSE (DICOM network)">
          DIMSE
        </abbr>
      )}
      {n.tls?.enabled && (
        <abbr class="badge tls" title="TLS">
          T
        </abbr>
      )}
    </span>
  );
}

function TestResult({ test }: { test: NodeTest }) {
  return (
    <div class={test.ok ? "result ok" : "result failed"} role="status">
      <strong>{test.message}</strong>
      {test.checks && test.checks.length > 0 && (
        <table class="checks">
          <caption class="sr-only">Checks</caption>
          <thead>
            <tr>
              <th scope="col">Check</th>
              <th scope="col">Result</th>
              <th scope="col">Detail</th>
            </tr>
          </thead>
          <tbody>
            {test.checks.map((c) => (
              <tr data-check={c.name}>
                <td>{c.name}</td>
                <td class={c.outcome === "failed" ? "failed" : c.outcome === "ok" ? "ok" : ""}>{c.outcome}</td>
                <td>{c.message}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

export function Connections({ me }: { me: Me }) {
  const [nodes, error, load, setError] = useGet<PacsNode[]>("/api/nodes");
  const [editing, setEditing] = useState<PacsNode | "new" | null>(null);
  const [tests, setTests] = useState<Record<string, NodeTest>>({});
  const [testing, setTesting] = useState<string>("");
  const [moveChecks, setMoveChecks] = useState<Record<string, { ok: boolean | null; message: string }>>({});
  const [history, setHistory] = useState<{ node: string; tests: NodeTest[] } | null>(null);
  const [scheduling, setScheduling] = useState<PacsNode | null>(null);
  const admin = can(me, "admin");

  const test = async (n: PacsNode) => {
    setTesting(n.name);
    try {
      const t = await api<NodeTest>("POST", `/api/nodes/${encodeURIComponent(n.name)}/echo`, {});
      setTests({ ...tests, [n.name]: t });
      load();
    } catch (e) {
      setTests({ ...tests, [n.name]: { ok: false, message: (e as ApiError).message, latency_ms: 0, at: "" } });
    } finally {
      setTesting("");
    }
  };

  // "Does the PACS know us?": one real instance moved to us and discarded on arrival.
  const moveCheck = async (n: PacsNode) => {
    setTesting(n.name);
    try {
      const r = await api<{ ok: boolean | null; message: string }>(
        "POST",
        `/api/nodes/${encodeURIComponent(n.name)}/move-check`,
        {},
      );
      setMoveChecks({ ...moveChecks, [n.name]: r });
    } catch (e) {
      setMoveChecks({ ...moveChecks, [n.name]: { ok: false, message: (e as ApiError).message } });
    } finally {
      setTesting("");
    }
  };

  const showHistory = async (n: PacsNode) => {
    try {
      const list = await api<NodeTest[]>("GET", `/api/nodes/${encodeURIComponent(n.name)}/tests?limit=20`);
      setHistory({ node: n.name, tests: list });
    } catch (e) {
      setError((e as ApiError).message);
    }
  };

  const remove = async (n: PacsNode) => {
    if (!window.confirm(`Delete the node ${n.name}? Its test history goes with it.`)) return;
    try {
      await api("DELETE", `/api/nodes/${encodeURIComponent(n.name)}`);
      load();
    } catch (e) {
      setError((e as ApiError).message);
    }
  };

  return (
    <section aria-labelledby="connections-title">
      <div class="page-head">
        <h1 id="connections-title">PACS connections</h1>
        {admin && (
          <button type="button" onClick={() => setEditing("new")}>
            Add node
          </button>
        )}
      </div>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {nodes && nodes.length === 0 && <p>No node yet{admin ? ": add the PACS you work with." : "."}</p>}
      {nodes && nodes.length > 0 && (
        <table class="grid nodes">
          <caption class="sr-only">The nodes this server knows</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Type</th>
              <th scope="col">AE title</th>
              <th scope="col">Address</th>
              <th scope="col">Used for</th>
              <th scope="col">Schedule</th>
              <th scope="col">Last test</th>
              <th scope="col">Retrieve</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {nodes.map((n) => {
              // The server's record (with its time) once the list is reloaded after a test.
              const last = n.last_test ?? tests[n.name] ?? null;
              const availability = availabilityText(n);
              const throttle = rateText(n.max_bytes_per_second);
              return (
                <>
                  <tr data-node={n.name}>
                    <th scope="row">
                      {n.name}
                      {n.locked && (
                        <div class="locked" data-locked>
                          {LOCKED_REASON}
                        </div>
                      )}
                      {n.description && <div class="muted">{n.description}</div>}
                    </th>
                    <td>
                      <Badges n={n} />
                    </td>
                    <td>{n.ae_title ?? ""}</td>
                    <td class="mono">{address(n)}</td>
                    <td class="offers">
                      <Offers n={n} />
                    </td>
                    <td class="schedule">
                      <span class="summary">{scheduleSummary(n.schedule)}</span>
                      {availability && (
                        <div class={n.available ? "availability open" : "availability closed"}>{availability}</div>
                      )}
                      {throttle && <div class="throttle">throttled to {throttle}</div>}
                    </td>
                    <td class="last-test">
                      {last ? (
                        <span class={last.ok ? "ok" : "failed"}>
                          {last.ok ? "ok" : "failed"}
                          {last.at && <span class="muted"> {when(last.at)}</span>}
                        </span>
                      ) : (
                        <span class="muted">never</span>
                      )}
                    </td>
                    <td class="retrieve">{retrieveText(n)}</td>
                    <td class="actions">
                      {can(me, "user") && (
                        <button type="button" onClick={() => test(n)} disabled={testing === n.name}>
                          {testing === n.name ? "Testing…" : "Test connection"}
                        </button>
                      )}
                      {can(me, "user") && n.type === "dimse" && (
                        <button type="button" onClick={() => moveCheck(n)} disabled={testing === n.name}>
                          Does the PACS know us?
                        </button>
                      )}
                      <button type="button" onClick={() => showHistory(n)}>
                        History
                      </button>
                      {admin && !n.locked && (
                        <>
                          <button type="button" onClick={() => setEditing(n)}>
                            Edit
                          </button>
                          <button type="button" onClick={() => setScheduling(n)}>
                            Schedule
                          </button>
                          <button type="button" class="danger" onClick={() => remove(n)}>
                            Delete
                          </button>
                        </>
                      )}
                    </td>
                  </tr>
                  {tests[n.name] && (
                    <tr class="detail">
                      <td colSpan={COLUMNS}>
                        <TestResult test={tests[n.name]} />
                      </td>
                    </tr>
                  )}
                  {moveChecks[n.name] && (
                    <tr class="detail">
                      <td colSpan={COLUMNS}>
                        <div
                          class={
                            moveChecks[n.name].ok === true
                              ? "result ok"
                              : moveChecks[n.name].ok === false
                                ? "result failed"
                                : "result"
                          }
                          role="status"
                          data-move-check={n.name}
                        >
                          <strong>C-MOVE self-test: </strong>
                          {moveChecks[n.name].message}
                        </div>
                      </td>
                    </tr>
                  )}
                </>
              );
            })}
          </tbody>
        </table>
      )}
      {history && (
        <Modal title={`Connection tests of ${history.node}`} onClose={() => setHistory(null)}>
          {history.tests.length === 0 ? (
            <p>Never tested.</p>
          ) : (
            <table class="grid">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Result</th>
                  <th scope="col">Latency</th>
                  <th scope="col">Message</th>
                </tr>
              </thead>
              <tbody>
                {history.tests.map((t) => (
                  <tr>
                    <td>{when(t.at)}</td>
                    <td class={t.ok ? "ok" : "failed"}>{t.ok ? "ok" : "failed"}</td>
                    <td>{t.latency_ms} ms</td>
                    <td>{t.message}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </Modal>
      )}
      {scheduling && (
        <Modal title={`Schedule and throttle of ${scheduling.name}`} wide onClose={() => setScheduling(null)}>
          <ScheduleForm
            node={scheduling}
            onClose={() => setScheduling(null)}
            onSaved={() => {
              setScheduling(null);
              load();
            }}
          />
        </Modal>
      )}
      {editing && (
        <NodeDialog
          node={editing === "new" ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            load();
          }}
        />
      )}
    </section>
  );
}

export function Modal(props: {
  title: string;
  wide?: boolean;
  onClose: () => void;
  children: preact.ComponentChildren;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  return (
    <dialog
      ref={ref}
      class={props.wide ? "wide" : undefined}
      aria-labelledby="modal-title"
      onClose={props.onClose}
      onCancel={props.onClose}
    >
      <div class="modal-head">
        <h2 id="modal-title">{props.title}</h2>
        <button type="button" class="link" onClick={props.onClose} aria-label="Close">
          ×
        </button>
      </div>
      {props.children}
    </dialog>
  );
}

// ----------------------------------------------------------------------------- the dialog

interface FieldSpec {
  key: string; // the API's field name ("auth.username" for nested ones)
  label: string;
  kind: "text" | "number" | "bool" | "password" | "select";
  options?: string[];
  help?: string;
  types: ("dimse" | "dicomweb")[];
}

const BOTH: ("dimse" | "dicomweb")[] = ["dimse", "dicomweb"];
const FIELDS: FieldSpec[] = [
  { key: "name", label: "Name", kind: "text", help: "the label people see; unique", types: BOTH },
  { key: "description", label: "Description", kind: "text", types: BOTH },
  { key: "ae_title", label: "AE title", kind: "text", help: "the PACS's AE title (1-16 characters; case matters)", types: ["dimse"] },
  { key: "host", label: "Host", kind: "text", help: "name or address, without http://", types: ["dimse"] },
  { key: "port", label: "Port", kind: "number", types: ["dimse"] },
  { key: "url", label: "URL", kind: "text", help: "the DICOMweb root, e.g. https://pacs/dicom-web", types: ["dicomweb"] },
  { key: "auth.type", label: "Authentication", kind: "select", options: ["none", "basic", "bearer"], types: ["dicomweb"] },
  { key: "auth.username", label: "User name", kind: "text", types: ["dicomweb"] },
  { key: "auth.password", label: "Password", kind: "password", help: "write-only: empty keeps the one set", types: ["dicomweb"] },
  { key: "auth.token", label: "Bearer token", kind: "password", help: "write-only: empty keeps the one set", types: ["dicomweb"] },
  { key: "queryable", label: "Queryable", kind: "bool", types: BOTH },
  { key: "storable", label: "Storable", kind: "bool", types: BOTH },
  { key: "default_query_retrieve", label: "Default for query/retrieve", kind: "bool", types: BOTH },
  { key: "default_storage", label: "Default for storage", kind: "bool", types: BOTH },
  { key: "retrieve_method", label: "Retrieve method", kind: "select", options: ["auto", "c-get", "c-move"], types: ["dimse"] },
  { key: "calling_ae_title", label: "Our calling AE title", kind: "text", help: "empty: the server's", types: ["dimse"] },
  { key: "move_destination", label: "C-MOVE destination", kind: "text", help: "our AE title as the PACS knows it; empty: the calling AE title", types: ["dimse"] },
  { key: "tls.enabled", label: "TLS", kind: "bool", types: BOTH },
  { key: "max_associations", label: "Connections at once", kind: "number", types: BOTH },
  { key: "timeout_seconds", label: "Timeout (s)", kind: "number", types: BOTH },
  // The throttle (max_bytes_per_second) is set in the schedule dialog, in MB/s.
];

type Values = Record<string, string | boolean>;

function get(n: PacsNode | null, key: string): unknown {
  if (!n) return undefined;
  const [a, b] = key.split(".");
  const v = n[a] as any;
  return b ? (v && typeof v === "object" ? v[b] : undefined) : v;
}

function initialValues(n: PacsNode | null): Values {
  const v: Values = {};
  for (const f of FIELDS) {
    const x = get(n, f.key);
    if (f.kind === "bool") v[f.key] = Boolean(x);
    else if (f.kind === "password") v[f.key] = "";
    else if (x !== undefined && x !== null) v[f.key] = String(x);
    else v[f.key] = f.kind === "select" ? f.options![0] : f.key === "port" ? "104" : "";
  }
  return v;
}

// The request body: nested objects for "a.b" keys; numbers as numbers (a text that is not one is
// sent as it is, for the server to name); empty write-only fields left out.
function body(type: string, v: Values, editing: boolean): Record<string, unknown> {
  const out: Record<string, any> = editing ? {} : { type };
  for (const f of FIELDS) {
    if (!f.types.includes(type as "dimse" | "dicomweb")) continue;
    let x: unknown = v[f.key];
    if (f.kind === "password" && x === "") continue;
    if (f.kind === "number") {
      if (x === "") continue;
      x = /^-?\d+$/.test(String(x)) ? Number(x) : x;
    }
    const [a, b] = f.key.split(".");
    if (b) out[a] = { ...(out[a] ?? {}), [b]: x };
    else out[a] = x;
  }
  return out;
}

function NodeDialog(props: { node: PacsNode | null; onClose: () => void; onSaved: () => void }) {
  const editing = props.node !== null;
  const [type, setType] = useState<"dimse" | "dicomweb">(props.node?.type ?? "dimse");
  const [values, setValues] = useState<Values>(initialValues(props.node));
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState("");
  const [saving, setSaving] = useState(false);

  const target = editing ? `/api/nodes/${encodeURIComponent(props.node!.name)}` : "/api/nodes";
  const method = editing ? "PUT" : "POST";

  // Live validation: the same request as a dry run, a moment after the last keystroke.
  const settle = useLiveCheck(
    async (current) => {
      try {
        await api(method, `${target}?dry_run=true`, body(type, values, editing));
        if (current()) {
          setErrors({});
          setGeneral("");
        }
      } catch (e) {
        if (!current() || !(e instanceof ApiError)) return;
        if (e.field && FIELDS.some((f) => f.key === e.field)) {
          setErrors({ [e.field]: e.message });
          setGeneral("");
        } else {
          setErrors({});
          setGeneral(e.message);
        }
      }
    },
    [type, values],
  );

  const save = async (e: Event) => {
    e.preventDefault();
    setSaving(true);
    try {
      await settle();
      await api(method, target, body(type, values, editing));
      props.onSaved();
    } catch (err) {
      if (err instanceof ApiError && err.field && FIELDS.some((f) => f.key === err.field)) {
        setErrors({ [err.field]: err.message });
      } else {
        setGeneral((err as ApiError).message);
      }
    } finally {
      setSaving(false);
    }
  };

  const set = (key: string, x: string | boolean) => setValues({ ...values, [key]: x });
  const visible = FIELDS.filter((f) => f.types.includes(type));

  return (
    <Modal title={editing ? `Edit ${props.node!.name}` : "Add node"} onClose={props.onClose}>
      <form onSubmit={save} class="node-form" noValidate>
        <label for="node-type">Type</label>
        <div>
          <select
            id="node-type"
            value={type}
            disabled={editing}
            aria-describedby="node-type-help"
            onChange={(e) => setType(e.currentTarget.value as "dimse" | "dicomweb")}
          >
            <option value="dimse">DIMSE (DICOM network: C-FIND, C-MOVE, C-GET, C-STORE)</option>
            <option value="dicomweb">DICOMweb (QIDO-RS, WADO-RS, STOW-RS)</option>
          </select>
          <div id="node-type-help" class="help">
            {editing ? "the type is chosen when a node is created" : "chosen first; fixed afterwards"}
          </div>
        </div>
        {visible.map((f) => {
          const id = `node-${f.key.replace(".", "-")}`;
          const err = errors[f.key];
          const described = [f.help ? `${id}-help` : "", err ? `${id}-error` : ""].filter(Boolean).join(" ");
          return (
            <>
              <label for={id}>{f.label}</label>
              <div>
                {f.kind === "bool" ? (
                  <input
                    id={id}
                    type="checkbox"
                    checked={Boolean(values[f.key])}
                    aria-describedby={described || undefined}
                    onChange={(e) => set(f.key, e.currentTarget.checked)}
                  />
                ) : f.kind === "select" ? (
                  <select id={id} value={String(values[f.key])} onChange={(e) => set(f.key, e.currentTarget.value)}>
                    {f.options!.map((o) => (
                      <option value={o}>{o}</option>
                    ))}
                  </select>
                ) : (
                  <input
                    id={id}
                    type={f.kind === "password" ? "password" : "text"}
                    inputMode={f.kind === "number" ? "numeric" : undefined}
                    autocomplete={f.kind === "password" ? "new-password" : "off"}
                    value={String(values[f.key])}
                    aria-invalid={err ? "true" : undefined}
                    aria-describedby={described || undefined}
                    onInput={(e) => set(f.key, e.currentTarget.value)}
                  />
                )}
                {f.help && (
                  <div id={`${id}-help`} class="help">
                    {f.help}
                  </div>
                )}
                {err && (
                  <div id={`${id}-error`} class="field-error" role="alert">
                    {err}
                  </div>
                )}
              </div>
            </>
          );
        })}
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
            {editing ? "Save" : "Add node"}
          </button>
        </div>
      </form>
    </Modal>
  );
}
