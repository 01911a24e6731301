// What the Import and Send pages share: the node choice (with whether the node may be used now),
// labelled fields with the API's own words beside the control they concern, and links to the
// jobs an action made.
import { ApiError, JobRef, PacsNode, useGet } from "../api";

export const enc = encodeURIComponent;

export function date(d: string | undefined): string {
  return d && /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d ?? "";
}

// An error of the API placed where it belongs: `key` is the control it concerns ("" when it
// concerns none: shown as a general alert).
export interface Problem {
  key: string;
  message: string;
}

// `fields` maps the API's `field` to the control's key.
export function problemOf(e: unknown, fields: Record<string, string>): Problem {
  if (!(e instanceof ApiError)) throw e;
  return { key: (e.field && fields[e.field]) || "", message: e.message };
}

export function errorFor(p: Problem | null, key: string): string | undefined {
  return p && p.key === key ? p.message : undefined;
}

export function FieldError({ id, error }: { id: string; error?: string }) {
  if (!error) return null;
  return (
    <div id={`${id}-error`} class="field-error" role="alert">
      {error}
    </div>
  );
}

export function GeneralError({ problem }: { problem: Problem | null }) {
  if (!problem || problem.key) return null;
  return (
    <p class="error" role="alert">
      {problem.message}
    </p>
  );
}

function describedBy(id: string, help?: string, error?: string): string | undefined {
  return [help ? `${id}-help` : "", error ? `${id}-error` : ""].filter(Boolean).join(" ") || undefined;
}

// A labelled text input with its help and, when the API refused it, the API's words.
export function TextField(p: {
  id: string;
  label: string;
  value: string;
  onInput: (v: string) => void;
  help?: string;
  error?: string;
}) {
  return (
    <div class="field">
      <label for={p.id}>{p.label}</label>
      <input
        id={p.id}
        type="text"
        autocomplete="off"
        value={p.value}
        aria-invalid={p.error ? "true" : undefined}
        aria-describedby={describedBy(p.id, p.help, p.error)}
        onInput={(e) => p.onInput(e.currentTarget.value)}
      />
      {p.help && (
        <div id={`${p.id}-help`} class="help">
          {p.help}
        </div>
      )}
      <FieldError id={p.id} error={p.error} />
    </div>
  );
}

function scheduleText(n: PacsNode): string {
  const windows = n.schedule?.windows ?? [];
  const text = windows.map((w) => `${w.days.join(",")} ${w.start}-${w.end}`).join("; ") || "no window";
  return n.schedule?.timezone ? `${text} (${n.schedule.timezone})` : text;
}

// Whether the node may be used now, from its schedule (the API's own reason when it may not).
function availability(n: PacsNode): string {
  if (n.available === false) return n.unavailable_reason ?? "not available now";
  if (!n.schedule) return "available now (no schedule: always)";
  const until = n.availability_changes_at ? `, until ${new Date(n.availability_changes_at).toLocaleString()}` : "";
  return `available now${until} (schedule: ${scheduleText(n)})`;
}

// The nodes that offer `what`, and the one to preselect: the default, else the first.
export function useNodes(what: "import" | "export"): [PacsNode[] | null, string, string] {
  const [nodes, error] = useGet<PacsNode[]>("/api/nodes");
  const fit = nodes?.filter((n) => (what === "import" ? n.offers_import ?? n.queryable : n.offers_export ?? n.storable)) ?? null;
  const preferred = fit?.find((n) => (what === "import" ? n.default_query_retrieve : n.default_storage)) ?? fit?.[0];
  return [fit, preferred?.name ?? "", error];
}

// The choice of a node among those that fit (nothing while they load; `none` when there is none).
export function NodeChoice(p: {
  id: string;
  label: string;
  none: string;
  nodes: PacsNode[] | null;
  value: string;
  onChange: (name: string) => void;
  error?: string;
}) {
  if (!p.nodes) return null;
  if (!p.nodes.length) {
    return (
      <p>
        {p.none}: an administrator adds one on <a href="#/connections">PACS connections</a>.
      </p>
    );
  }
  const n = p.nodes.find((x) => x.name === p.value);
  return (
    <div class="field node-choice">
      <label for={p.id}>{p.label}</label>
      <select
        id={p.id}
        value={p.value}
        aria-invalid={p.error ? "true" : undefined}
        aria-describedby={[`${p.id}-availability`, p.error ? `${p.id}-error` : ""].filter(Boolean).join(" ")}
        onChange={(e) => p.onChange(e.currentTarget.value)}
      >
        {p.nodes.map((x) => (
          <option value={x.name}>
            {x.name}
            {x.description ? ` — ${x.description}` : ""}
          </option>
        ))}
      </select>
      <div
        id={`${p.id}-availability`}
        class={n?.available === false ? "help failed" : "help"}
        data-available={n ? String(n.available !== false) : undefined}
      >
        {n ? availability(n) : ""}
      </div>
      <FieldError id={p.id} error={p.error} />
    </div>
  );
}

// The jobs an action made, each a link to the Jobs page; a live region, present before it fills.
export function JobLinks({ id, jobs, what }: { id: string; jobs: JobRef[]; what: string }) {
  return (
    <div id={id} role="status" class={jobs.length ? "result ok" : ""}>
      {jobs.length > 0 && (
        <>
          {what}:{" "}
          {jobs.map((j, i) => (
            <>
              {i > 0 && ", "}
              <a href={`#/jobs/${j.id}`} data-job-link={j.id}>
                job {j.id}
              </a>{" "}
              ({j.state})
            </>
          ))}
          . Follow it on the Jobs page.
        </>
      )}
    </div>
  );
}

// A table's column headings.
export function ColumnHeads({ names }: { names: string[] }) {
  return (
    <>
      {names.map((n) => (
        <th scope="col">{n}</th>
      ))}
    </>
  );
}

// The heading cell that chooses every row: a checkbox labelled "All".
export function SelectAll(p: { id: string; checked: boolean; onChange: (on: boolean) => void }) {
  return (
    <th scope="col">
      <label class="check">
        <input type="checkbox" id={p.id} checked={p.checked} onChange={(e) => p.onChange(e.currentTarget.checked)} />
        All
      </label>
    </th>
  );
}

// The patient's name that opens a study's row to its series.
export function Opener(p: { open: boolean; controls: string; onToggle: () => void; children: preact.ComponentChildren }) {
  return (
    <button type="button" class="link" aria-expanded={p.open} aria-controls={p.controls} onClick={p.onToggle}>
      {p.children}
    </button>
  );
}
