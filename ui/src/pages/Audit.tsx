// The audit log (admins): who changed what, when, how and from where, newest first, with the
// resource before and after as a compact diff. Filters: actor, target type and action are the
// API's; "since" is applied here to the entries fetched (the API has no such filter).
import { useState } from "preact/hooks";

import { AuditEntry, useGet, when } from "../api";
import { Alert } from "../forms";

const TARGET_TYPES = ["node", "receiver", "routing", "project", "user", "token"];
const ACTIONS = [
  "node.create",
  "node.update",
  "node.delete",
  "receiver.create",
  "receiver.update",
  "receiver.delete",
  "routing.update",
  "project.anonymization",
  "user.create",
  "user.update",
  "user.password",
  "user.delete",
  "token.create",
  "token.revoke",
  "auth.login",
  "auth.login_failed",
];

// A JSON value as "path → leaf" pairs: {"tls": {"enabled": true}} → {"tls.enabled": "true"}.
function flatten(value: unknown, prefix = "", out: Record<string, string> = {}): Record<string, string> {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out[prefix] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return out;
}

function short(text: string): preact.ComponentChild {
  if (text === "") return <span class="muted">(empty)</span>;
  const one = text.replace(/\n/g, " ⏎ ");
  return one.length > 80 ? `${one.slice(0, 79)}…` : one;
}

// Before/after: the fields that changed (old struck through, new after the arrow); a creation or
// a deletion folds its fields away behind one line.
export function Diff({ before, after }: { before: unknown; after: unknown }) {
  const a = flatten(before);
  const b = flatten(after);
  if (before == null && after == null) return <span class="muted">—</span>;
  if (before == null || after == null) {
    const fields = Object.entries(before == null ? b : a).filter(([, v]) => v !== "" && v !== "null" && v !== "[]");
    return (
      <details class="diff">
        <summary>
          {before == null ? "created" : "deleted"} ({fields.length} fields)
        </summary>
        <ul>
          {fields.map(([k, v]) => (
            <li>
              <code>{k}</code>: {before == null ? <ins>{short(v)}</ins> : <del>{short(v)}</del>}
            </li>
          ))}
        </ul>
      </details>
    );
  }
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]);
  if (!keys.length) return <span class="muted">no field changed</span>;
  return (
    <ul class="diff">
      {keys.map((k) => (
        <li data-diff={k}>
          <code>{k}</code>: {k in a && <del>{short(a[k])}</del>}
          {k in a && k in b && " → "}
          {k in b && <ins>{short(b[k])}</ins>}
        </li>
      ))}
    </ul>
  );
}

export function Audit() {
  const [actor, setActor] = useState("");
  const [targetType, setTargetType] = useState("");
  const [action, setAction] = useState("");
  const [since, setSince] = useState("");
  const [limit, setLimit] = useState("100");
  const [query, setQuery] = useState("limit=100");

  const path = `/api/audit?${query}`;
  const [entries, error, reload, , answered] = useGet<AuditEntry[]>(path);

  const apply = (e: Event) => {
    e.preventDefault();
    const q = new URLSearchParams({ limit: since ? "1000" : limit });
    if (actor.trim()) q.set("actor", actor.trim());
    if (targetType) q.set("target_type", targetType);
    if (action.trim()) q.set("action", action.trim());
    if (q.toString() === query) reload();
    else setQuery(q.toString());
  };

  const from = since ? new Date(since).getTime() : NaN;
  const shown = (entries ?? []).filter((a) => isNaN(from) || new Date(a.at).getTime() >= from);

  return (
    <section aria-labelledby="audit-title" aria-busy={answered !== path} data-query={answered.replace(/^[^?]*\?/, "")}>
      <h1 id="audit-title">Audit log</h1>
      <form class="audit-filters" onSubmit={apply} aria-label="Filters">
        <div>
          <label for="audit-actor">Actor</label>
          <input id="audit-actor" value={actor} autocomplete="off" onInput={(e) => setActor(e.currentTarget.value)} />
        </div>
        <div>
          <label for="audit-target-type">Target type</label>
          <select id="audit-target-type" value={targetType} onChange={(e) => setTargetType(e.currentTarget.value)}>
            <option value="">any</option>
            {TARGET_TYPES.map((t) => (
              <option value={t}>{t}</option>
            ))}
          </select>
        </div>
        <div>
          <label for="audit-action">Action</label>
          <input
            id="audit-action"
            value={action}
            list="audit-actions"
            autocomplete="off"
            onInput={(e) => setAction(e.currentTarget.value)}
          />
          <datalist id="audit-actions">
            {ACTIONS.map((a) => (
              <option value={a} />
            ))}
          </datalist>
        </div>
        <div>
          <label for="audit-since">Since</label>
          <input
            id="audit-since"
            type="datetime-local"
            value={since}
            aria-describedby="audit-since-help"
            onInput={(e) => setSince(e.currentTarget.value)}
          />
        </div>
        <div>
          <label for="audit-limit">At most</label>
          <select id="audit-limit" value={limit} disabled={Boolean(since)} onChange={(e) => setLimit(e.currentTarget.value)}>
            {["100", "500", "1000"].map((n) => (
              <option value={n}>{n}</option>
            ))}
          </select>
        </div>
        <button type="submit">Show</button>
        <p id="audit-since-help" class="help">
          Since: your local time, among the last 1000 entries that match the other filters.
        </p>
      </form>
      <Alert text={error} />
      {entries && shown.length === 0 && <p>No entry.</p>}
      {shown.length > 0 && (
        <table class="grid audit">
          <caption class="sr-only">Audit entries, newest first</caption>
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Actor</th>
              <th scope="col">Action</th>
              <th scope="col">Target</th>
              <th scope="col">Change</th>
              <th scope="col">How, from where</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((a) => (
              <tr data-audit={a.id} data-action={a.action} data-target={a.target}>
                <td>{when(a.at)}</td>
                <td class="actor">{a.actor}</td>
                <td class="mono">{a.action}</td>
                <td>
                  {a.target_type && <span class="muted">{a.target_type} </span>}
                  {a.target}
                </td>
                <td>
                  <Diff before={a.before} after={a.after} />
                </td>
                <td class="muted">
                  {a.via}
                  {a.client && ` · ${a.client}`}
                  {a.request_id && <div class="mono">{a.request_id}</div>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
