// Receivers: our own AE title + port listeners with their live status, the add/edit dialog with
// live validation (a dry run of the same request: the API's own words beside the field, the line
// of a whitelist or rule text marked), "Try it" on the rules being edited, and the site-wide rules.
import { useState } from "preact/hooks";

import { api, ApiError, can, Me, Receiver, RoutingTexts, useGet, useLiveCheck } from "../api";
import { Alert, Check, Choice, DialogForm, Field } from "../forms";
import { EMPTY_RULES, LinesEditor, RulesEditor, SiteRouting, TryIt } from "./Routing";

function StatusCell({ r }: { r: Receiver }) {
  const cls = r.status === "listening" ? "ok" : r.status.startsWith("error") ? "failed" : "muted";
  return (
    <td class="status">
      <span class={cls}>{r.status}</span>
    </td>
  );
}

function whitelistSummary(r: Receiver): string {
  if (!r.whitelist_enabled) return "anyone";
  const entries = r.whitelist.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#")).length;
  return entries ? `${entries} listed` : "nobody (empty list)";
}

export function Receivers({ me }: { me: Me }) {
  // Asked again every 3 s: the status is live (a port taken, a receiver that stopped).
  const [receivers, error, load, setError] = useGet<Receiver[]>("/api/receivers", 3000);
  const [editing, setEditing] = useState<Receiver | "new" | null>(null);
  const admin = can(me, "admin");

  const remove = async (r: Receiver) => {
    if (!window.confirm(`Delete the receiver ${r.ae_title} on port ${r.port}? It stops listening at once.`)) return;
    try {
      await api("DELETE", `/api/receivers/${encodeURIComponent(r.id)}`);
      load();
    } catch (e) {
      setError((e as ApiError).message);
    }
  };

  return (
    <section aria-labelledby="receivers-title">
      <div class="page-head">
        <h1 id="receivers-title">Receivers</h1>
        {admin && (
          <button type="button" onClick={() => setEditing("new")}>
            Add receiver
          </button>
        )}
      </div>
      <Alert text={error} />
      {receivers && receivers.length === 0 && <p>No receiver: nothing can send us images.</p>}
      {receivers && receivers.length > 0 && (
        <table class="grid">
          <caption class="sr-only">Our receivers (AE title and port listeners)</caption>
          <thead>
            <tr>
              <th scope="col">AE title</th>
              <th scope="col">Port</th>
              <th scope="col">Bind address</th>
              <th scope="col">Enabled</th>
              <th scope="col">Status</th>
              <th scope="col">Senders</th>
              <th scope="col">TLS</th>
              <th scope="col">Anonymize</th>
              <th scope="col">Archive</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {receivers.map((r) => (
              <tr data-receiver={r.id} data-ae={r.ae_title}>
                <th scope="row">
                  {r.ae_title}
                  {r.locked && (
                    <span class="locked" title="Written in the configuration file: change it there">
                      {" "}
                      (locked: from the config file)
                    </span>
                  )}
                </th>
                <td>{r.port}</td>
                <td class="mono">{r.bind}</td>
                <td>{r.enabled ? "yes" : "no"}</td>
                <StatusCell r={r} />
                <td>{whitelistSummary(r)}</td>
                <td>{r.tls?.enabled ? (r.tls.require_client_cert ? "yes, client certificates" : "yes") : "no"}</td>
                <td>{r.anonymize ? "yes" : "no"}</td>
                <td>{r.direct_archive ? "direct" : `staging (${r.staging_idle_seconds} s idle)`}</td>
                <td class="actions">
                  {admin && !r.locked && (
                    <>
                      <button type="button" onClick={() => setEditing(r)}>
                        Edit
                      </button>
                      <button type="button" class="danger" onClick={() => remove(r)}>
                        Delete
                      </button>
                    </>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <SiteRouting me={me} receivers={receivers ?? []} />
      {editing && (
        <ReceiverDialog
          receiver={editing === "new" ? null : editing}
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

// ----------------------------------------------------------------------------- the dialog

interface FieldSpec {
  key: string; // the API's field name ("tls.cert_file" for nested ones)
  label: string;
  kind: "text" | "number" | "bool" | "select" | "lines" | "json";
  options?: string[];
  help?: string;
}

// The routing rules are edited by RulesEditor, between "Filing" and "Processing".
const SECTIONS: { legend: string; fields: FieldSpec[] }[] = [
  {
    legend: "Listener",
    fields: [
      { key: "ae_title", label: "AE title", kind: "text", help: "1-16 characters; case matters; unique with the port" },
      { key: "port", label: "Port", kind: "number", help: "1024-49151; receivers may share a port, one AE title each" },
      { key: "bind", label: "Bind address", kind: "text", help: "an IP address of this machine; 0.0.0.0 or :: for all" },
      { key: "enabled", label: "Enabled", kind: "bool" },
    ],
  },
  {
    legend: "Who may send",
    fields: [
      {
        key: "whitelist_enabled",
        label: "Whitelist on",
        kind: "bool",
        help: "only the senders listed below may open an association; an empty list admits nobody",
      },
      {
        key: "whitelist",
        label: "Whitelist",
        kind: "lines",
        help: "one a line: AE title, address, CIDR block, AE@address or AE@block; # starts a comment",
      },
    ],
  },
  {
    legend: "Filing: project, subject, session",
    fields: [
      { key: "default_project", label: "Default project", kind: "text", help: "when no rule and no Project: comment names one" },
      {
        key: "identification",
        label: "Identification",
        kind: "select",
        options: ["rules", "jobs"],
        help: "jobs: what a retrieve job awaits is filed where the job says",
      },
    ],
  },
  {
    legend: "Processing",
    fields: [
      {
        key: "processors",
        label: "Processors (JSON)",
        kind: "json",
        help: 'a list of steps, e.g. [{"type": "set_attributes", "attributes": {"InstitutionName": "Site 4"}}]',
      },
    ],
  },
  {
    legend: "Anonymization",
    fields: [
      { key: "anonymize", label: "Anonymize (PS3.15 Annex E)", kind: "bool", help: "before anything is stored" },
      { key: "anonymization.retain_dates", label: "Keep dates (shifted)", kind: "bool" },
      { key: "anonymization.retain_device_identity", label: "Keep device identity", kind: "bool" },
      { key: "anonymization.retain_uids", label: "Keep UIDs", kind: "bool" },
      { key: "anonymization.keep_private_tags", label: "Keep private attributes", kind: "bool" },
    ],
  },
  {
    legend: "Archive or staging",
    fields: [
      { key: "direct_archive", label: "Archive at once", kind: "bool", help: "off: sessions collect in the staging area first" },
      {
        key: "staging_idle_seconds",
        label: "Staging idle time (s)",
        kind: "number",
        help: "a staged session is complete after this long without a new instance",
      },
    ],
  },
  {
    legend: "TLS",
    fields: [
      { key: "tls.enabled", label: "TLS only", kind: "bool" },
      { key: "tls.cert_file", label: "Certificate file", kind: "text", help: "PEM, on this server" },
      { key: "tls.key_file", label: "Key file", kind: "text", help: "PEM; not readable by others" },
      { key: "tls.ca_file", label: "CA file", kind: "text", help: "client certificates are checked against it" },
      { key: "tls.require_client_cert", label: "Require client certificates", kind: "bool" },
    ],
  },
];
const FIELDS = SECTIONS.flatMap((s) => s.fields);
const RULE_FIELDS = ["routing.project", "routing.subject", "routing.session"];

type Values = Record<string, string | boolean>;

const NEW_RECEIVER: Values = {
  ae_title: "",
  port: "8104",
  bind: "0.0.0.0",
  enabled: true,
  whitelist_enabled: false,
  whitelist: "",
  default_project: "",
  identification: "rules",
  processors: "[]",
  anonymize: true, // the API's default for receivers it makes
  direct_archive: true,
  staging_idle_seconds: "60",
};

function initialValues(r: Receiver | null): Values {
  if (!r) {
    const v: Values = { ...NEW_RECEIVER };
    for (const f of FIELDS) if (!(f.key in v)) v[f.key] = f.kind === "bool" ? false : "";
    return v;
  }
  const v: Values = {};
  for (const f of FIELDS) {
    const [a, b] = f.key.split(".");
    const x = b ? ((r as any)[a] ?? {})[b] : (r as any)[a];
    if (f.kind === "bool") v[f.key] = Boolean(x);
    else if (f.kind === "json") v[f.key] = JSON.stringify(x ?? [], null, 1);
    else v[f.key] = x === undefined || x === null ? "" : String(x);
  }
  return v;
}

// The request body (every field: a PUT with all of them is the receiver as the dialog shows it);
// numbers as numbers (a text that is not one is sent as it is, for the server to name). The
// processors text is JSON; when it is not, the answer is the browser's reason (nothing is sent).
function body(v: Values, routing: RoutingTexts): Record<string, any> | { invalid: string } {
  const out: Record<string, any> = { routing };
  for (const f of FIELDS) {
    let x: unknown = v[f.key];
    if (f.kind === "number") x = /^-?\d+$/.test(String(x)) ? Number(x) : x;
    if (f.kind === "json") {
      try {
        x = JSON.parse(String(x).trim() || "[]");
      } catch (e) {
        return { invalid: `not JSON: ${(e as Error).message}` };
      }
    }
    const [a, b] = f.key.split(".");
    if (b) out[a] = { ...(out[a] ?? {}), [b]: x };
    else out[a] = x;
  }
  return out;
}

// The dialog's field for an error the API names ("processors[0].type" belongs to "processors").
function fieldOf(apiField: string | undefined): string | null {
  if (!apiField) return null;
  if (apiField.startsWith("processors")) return "processors";
  if (FIELDS.some((f) => f.key === apiField) || RULE_FIELDS.includes(apiField)) return apiField;
  return null;
}

function ReceiverDialog(props: { receiver: Receiver | null; onClose: () => void; onSaved: () => void }) {
  const editing = props.receiver !== null;
  const [values, setValues] = useState<Values>(initialValues(props.receiver));
  const [routing, setRouting] = useState<RoutingTexts>({ ...EMPTY_RULES, ...(props.receiver?.routing ?? {}) });
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [general, setGeneral] = useState("");
  const [saving, setSaving] = useState(false);

  const target = editing ? `/api/receivers/${encodeURIComponent(props.receiver!.id)}` : "/api/receivers";
  const method = editing ? "PUT" : "POST";

  const showError = (e: ApiError) => {
    const field = fieldOf(e.field);
    setErrors(field ? { [field]: e.message } : {});
    setGeneral(field ? "" : e.message);
  };

  // Live validation: the same request as a dry run (every check, nothing stored or started), a
  // moment after the last keystroke.
  const settle = useLiveCheck(
    async (current) => {
      const b = body(values, routing);
      if ("invalid" in b) {
        setErrors({ processors: b.invalid });
        return;
      }
      try {
        await api(method, `${target}?dry_run=true`, b);
        if (current()) {
          setErrors({});
          setGeneral("");
        }
      } catch (e) {
        if (current() && e instanceof ApiError) showError(e);
      }
    },
    [values, routing],
  );

  const save = async () => {
    const b = body(values, routing);
    if ("invalid" in b) return setErrors({ processors: b.invalid });
    setSaving(true);
    try {
      await settle();
      await api(method, target, b);
      props.onSaved();
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      showError(err);
    } finally {
      setSaving(false);
    }
  };

  const set = (key: string, x: string | boolean) => setValues({ ...values, [key]: x });

  // One field of the form, by its kind; the API's error beside it.
  const field = (f: FieldSpec) => {
    const common = { id: `rcv-${f.key.replace(".", "-")}`, label: f.label, help: f.help, error: errors[f.key] };
    const v = values[f.key];
    const onChange = (x: string | boolean) => set(f.key, x);
    if (f.kind === "bool") return <Check {...common} value={Boolean(v)} onChange={onChange} />;
    if (f.kind === "select") return <Choice {...common} value={String(v)} options={f.options!} onChange={onChange} />;
    if (f.kind === "text" || f.kind === "number") {
      return <Field {...common} value={String(v)} numeric={f.kind === "number"} onChange={onChange} />;
    }
    return (
      <>
        <label for={common.id}>{f.label}</label>
        <LinesEditor {...common} field={f.key} value={String(v)} onInput={onChange} />
      </>
    );
  };

  // What "Try it" sends besides the attributes: this receiver, its rules and default project as
  // they are being edited.
  const tryContext = () => ({
    ...(editing ? { receiver: props.receiver!.id } : {}),
    routing,
    default_project: String(values.default_project),
  });

  return (
    <DialogForm
      title={editing ? `Edit receiver ${props.receiver!.ae_title}` : "Add receiver"}
      submit={editing ? "Save" : "Add receiver"}
      busy={saving}
      error={general}
      onSubmit={save}
      onClose={props.onClose}
      formClass="receiver-form"
    >
      {SECTIONS.map((s) => (
        <fieldset class="form-grid">
          <legend>{s.legend}</legend>
          {s.legend.startsWith("Filing") && (
            <RulesEditor idPrefix="rcv-routing" prefix="routing" value={routing} onChange={setRouting} errors={errors} />
          )}
          {s.fields.map(field)}
          {s.legend.startsWith("Filing") && (
            <div class="wide">
              <TryIt
                idPrefix="rcv-try"
                context={tryContext}
                note={
                  editing
                    ? "With the rules and default project as typed here; its saved anonymization and processors."
                    : "With the rules and default project as typed here; without anonymization or processors until it is saved."
                }
                onRuleError={(apiField, text) => {
                  if (!RULE_FIELDS.includes(apiField)) return false;
                  setErrors({ [apiField]: text });
                  return true;
                }}
              />
            </div>
          )}
        </fieldset>
      ))}
    </DialogForm>
  );
}
