// Texts of lines (a receiver's whitelist, routing rules) with their line numbers, the line the
// API names marked; the three rule texts of a routing; "Try it": what routing would decide for
// pasted attributes or an instance of the archive (POST /api/routing/try); the site-wide rules.
import { useEffect, useRef, useState } from "preact/hooks";

import { api, ApiError, can, errorLine, Me, Receiver, RoutingTexts, RoutingTry, TriedLabel, useGet } from "../api";
import { Alert, describedBy, FieldNotes } from "../forms";

// A textarea with a gutter of line numbers. An error of the API ("line 3: ...") is shown below
// it in the API's words, and line 3 is marked in the gutter and behind the text. The caller
// renders the <label for={id}>.
export function LinesEditor(props: {
  id: string;
  field: string; // the API's name for it (data-field), e.g. "whitelist", "routing.project"
  value: string;
  onInput: (value: string) => void;
  error?: string;
  help?: string;
  readOnly?: boolean;
  placeholder?: string;
  line?: number | null; // the line to mark when the error does not start with "line N:"
}) {
  const gutter = useRef<HTMLDivElement>(null);
  const backdrop = useRef<HTMLDivElement>(null);
  const lines = props.value.split("\n");
  const bad = props.error ? (errorLine(props.error) ?? props.line ?? null) : null;
  // The gutter and the highlight scroll with the text.
  const sync = (e: Event) => {
    const t = e.currentTarget as HTMLTextAreaElement;
    if (gutter.current) gutter.current.scrollTop = t.scrollTop;
    if (backdrop.current) {
      backdrop.current.scrollTop = t.scrollTop;
      backdrop.current.scrollLeft = t.scrollLeft;
    }
  };
  return (
    <div>
      <div class={props.error ? "lines-editor invalid" : "lines-editor"} data-field={props.field}>
        <div class="gutter" ref={gutter} aria-hidden="true">
          {lines.map((_, i) => (
            <span data-line={i + 1} class={bad === i + 1 ? "bad" : undefined}>
              {i + 1}
            </span>
          ))}
        </div>
        <div class="lines-area">
          <div class="backdrop" ref={backdrop} aria-hidden="true">
            {lines.map((text, i) => (
              <div class={bad === i + 1 ? "bad-line" : undefined}>{text || " "}</div>
            ))}
          </div>
          <textarea
            id={props.id}
            rows={Math.min(Math.max(lines.length + 1, 3), 12)}
            wrap="off"
            spellcheck={false}
            autocomplete="off"
            value={props.value}
            readOnly={props.readOnly}
            placeholder={props.placeholder}
            aria-invalid={props.error ? "true" : undefined}
            aria-describedby={describedBy(props.id, props.help, props.error)}
            onInput={(e) => props.onInput(e.currentTarget.value)}
            onScroll={sync}
          />
        </div>
      </div>
      <FieldNotes id={props.id} help={props.help} error={props.error} />
    </div>
  );
}

export const LABELS = ["project", "subject", "session"] as const;
export const EMPTY_RULES: RoutingTexts = { project: "", subject: "", session: "" };
export const RULE_HELP =
  "one rule a line: (gggg,eeee):regex[:group], e.g. (0008,1030):^Study-(\\d+); the first that matches wins";

// The three rule texts as label + editor pairs of a two-column form grid. `prefix` is the API's
// field prefix ("routing"); errors are keyed by the API's field ("routing.subject").
export function RulesEditor(props: {
  idPrefix: string;
  prefix: string;
  value: RoutingTexts;
  onChange: (value: RoutingTexts) => void;
  errors: Record<string, string>;
  readOnly?: boolean;
}) {
  return (
    <>
      {LABELS.map((label) => {
        const id = `${props.idPrefix}-${label}`;
        return (
          <>
            <label for={id}>{label[0].toUpperCase() + label.slice(1)} rules</label>
            <LinesEditor
              id={id}
              field={`${props.prefix}.${label}`}
              value={props.value[label] ?? ""}
              readOnly={props.readOnly}
              error={props.errors[`${props.prefix}.${label}`]}
              help={label === "project" ? RULE_HELP : undefined}
              onInput={(text) => props.onChange({ ...props.value, [label]: text })}
            />
          </>
        );
      })}
    </>
  );
}

const SOURCES: Record<TriedLabel["source"], string> = {
  receiver_rule: "the receiver's rule",
  site_rule: "a site-wide rule",
  comment: "a Project:/Subject:/Session: comment",
  receiver_default: "the receiver's default project",
  default_rule: "a default rule",
  unassigned: "nothing named one: Unassigned",
  none: "nothing",
};

function decidedBy(l: TriedLabel): string {
  let text = SOURCES[l.source] ?? l.source;
  if (l.line) text += `, line ${l.line}`;
  const attribute = [l.keyword, l.tag].filter(Boolean).join(" ");
  if (attribute) text += ` (from ${attribute})`;
  return text;
}

// "Keyword=value" or "(gggg,eeee)=value", one a line, into the API's attributes (with the line
// of each, to mark the one the API refuses); a line that is neither is named the way the API
// names lines.
function parseAttributes(text: string): { values: Record<string, string>; lines: Record<string, number> } | string {
  const values: Record<string, string> = {};
  const lines: Record<string, number> = {};
  const all = text.split("\n");
  for (let i = 0; i < all.length; i++) {
    const line = all[i].replace(/\r$/, "");
    if (!line.trim() || line.trimStart().startsWith("#")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) return `line ${i + 1}: write Keyword=value or (gggg,eeee)=value`;
    const key = line.slice(0, eq).trim();
    values[key] = line.slice(eq + 1);
    lines[key] = i + 1;
  }
  return { values, lines };
}

// What routing would decide. `context` gives the rest of the request (receiver, rules as being
// edited); an error about one of those rules goes to `onRuleError`, which says whether it
// showed it.
export function TryIt(props: {
  idPrefix: string;
  context: () => Record<string, unknown>;
  onRuleError: (field: string, message: string) => boolean;
  note?: string;
  receivers?: Receiver[]; // offered as a choice: whose settings the try uses
}) {
  const [receiver, setReceiver] = useState("");
  const [mode, setMode] = useState<"attributes" | "instance">("attributes");
  const [attributes, setAttributes] = useState("");
  const [uid, setUid] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [badLine, setBadLine] = useState<number | null>(null);
  const [result, setResult] = useState<RoutingTry | null>(null);
  const [busy, setBusy] = useState(false);
  const p = props.idPrefix;

  const run = async () => {
    setResult(null);
    setBadLine(null);
    let what: Record<string, unknown>;
    let lineOf: Record<string, number> = {};
    if (mode === "attributes") {
      const parsed = parseAttributes(attributes);
      if (typeof parsed === "string") return setErrors({ attributes: parsed });
      what = { attributes: parsed.values };
      lineOf = parsed.lines;
    } else {
      what = { sop_instance_uid: uid.trim() };
    }
    setErrors({});
    setBusy(true);
    try {
      const whose = receiver ? { receiver } : {};
      setResult(await api<RoutingTry>("POST", "/api/routing/try", { ...props.context(), ...whose, ...what }));
    } catch (e) {
      if (!(e instanceof ApiError)) throw e;
      // "attributes.NoSuchKeyword": the line with that key is marked.
      if (e.field === "attributes" || e.field?.startsWith("attributes.")) {
        setErrors({ attributes: e.message });
        setBadLine(lineOf[e.field.slice("attributes.".length)] ?? null);
      } else if (e.field === "sop_instance_uid") setErrors({ sop_instance_uid: e.message });
      else if (e.status === 404 && mode === "instance") setErrors({ sop_instance_uid: e.message });
      else if (!(e.field && props.onRuleError(e.field, e.message))) setErrors({ general: e.message });
    } finally {
      setBusy(false);
    }
  };

  return (
    <div class="try-it" role="group" aria-labelledby={`${p}-title`}>
      <h3 id={`${p}-title`}>Try it</h3>
      {props.note && <p class="help">{props.note}</p>}
      {props.receivers && (
        <>
          <label for={`${p}-receiver`}>Receiver</label>
          <select id={`${p}-receiver`} value={receiver} onChange={(e) => setReceiver(e.currentTarget.value)}>
            <option value="">none: the site-wide and default rules only</option>
            {props.receivers.map((r) => (
              <option value={r.id}>
                {r.ae_title} (port {r.port})
              </option>
            ))}
          </select>
        </>
      )}
      <fieldset class="choices">
        <legend>Try with</legend>
        <label>
          <input type="radio" name={`${p}-mode`} checked={mode === "attributes"} onChange={() => setMode("attributes")} />{" "}
          attributes
        </label>
        <label>
          <input type="radio" name={`${p}-mode`} checked={mode === "instance"} onChange={() => setMode("instance")} />{" "}
          an instance of the archive
        </label>
      </fieldset>
      {mode === "attributes" ? (
        <>
          <label for={`${p}-attributes`}>Attributes</label>
          <LinesEditor
            id={`${p}-attributes`}
            field="attributes"
            value={attributes}
            onInput={setAttributes}
            error={errors.attributes}
            line={badLine}
            help="one a line: Keyword=value or (gggg,eeee)=value, e.g. StudyDescription=Study-42"
          />
        </>
      ) : (
        <>
          <label for={`${p}-uid`}>SOP Instance UID</label>
          <div>
            <input
              id={`${p}-uid`}
              class="mono"
              value={uid}
              autocomplete="off"
              aria-invalid={errors.sop_instance_uid ? "true" : undefined}
              aria-describedby={describedBy(`${p}-uid`, undefined, errors.sop_instance_uid)}
              onInput={(e) => setUid(e.currentTarget.value)}
              onKeyDown={(e) => {
                if (e.key === "Enter") {
                  e.preventDefault();
                  run();
                }
              }}
            />
            <FieldNotes id={`${p}-uid`} error={errors.sop_instance_uid} />
          </div>
        </>
      )}
      <div>
        <button type="button" onClick={run} disabled={busy}>
          {busy ? "Trying…" : "Try it"}
        </button>
      </div>
      <Alert text={errors.general ?? ""} />
      {result && <TryResult result={result} />}
    </div>
  );
}

function TryResult({ result }: { result: RoutingTry }) {
  const consulted = Object.entries(result.attributes ?? {});
  return (
    <div class="result" role="status" data-try-result>
      <table class="grid">
        <caption class="sr-only">Where routing files it</caption>
        <thead>
          <tr>
            <th scope="col">Label</th>
            <th scope="col">Value</th>
            <th scope="col">Decided by</th>
            <th scope="col">Why</th>
          </tr>
        </thead>
        <tbody>
          {LABELS.map((label) => {
            const l = result[label];
            return (
              <tr data-label={label}>
                <th scope="row">{label}</th>
                <td class="value mono">{l.value || <span class="muted">(none)</span>}</td>
                <td class="source" data-source={l.source} data-line={l.line ?? undefined}>
                  {decidedBy(l)}
                  {l.pseudonym && " (made a pseudonym: the receiver anonymizes)"}
                  {l.rule && <div class="mono">{l.rule}</div>}
                </td>
                <td>{l.explanation}</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p class="muted" data-anonymize={String(Boolean(result.anonymize))}>
        {result.anonymize
          ? "The data would be anonymized: labels taken from the patient become pseudonyms."
          : "The data would be kept as sent (not anonymized)."}
      </p>
      {consulted.length > 0 && (
        <p class="muted">
          Values consulted:{" "}
          {consulted.map(([tag, value], i) => (
            <>
              {i > 0 && ", "}
              <span class="mono">
                {tag}={value}
              </span>
            </>
          ))}
        </p>
      )}
    </div>
  );
}

// The site-wide rules (GET/PUT /api/routing): every receiver's second choice. Admins change them;
// while they type, a try of the rules as typed (nothing stored) shows the API's word on them.
export function SiteRouting({ me, receivers }: { me: Me; receivers: Receiver[] }) {
  const [saved, loadError, reload] = useGet<RoutingTexts>("/api/routing");
  const [rules, setRules] = useState<RoutingTexts | null>(null);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [message, setMessage] = useState("");
  const check = useRef(0);
  const admin = can(me, "admin");

  useEffect(() => {
    if (saved) setRules({ ...EMPTY_RULES, ...saved });
  }, [saved]);

  // Live validation: the rules as typed, tried on no attributes; only a rule error matters.
  useEffect(() => {
    if (!rules || !admin) return;
    const n = ++check.current;
    const t = window.setTimeout(async () => {
      try {
        await api("POST", "/api/routing/try", { site_routing: rules, attributes: {} });
        if (n === check.current) setErrors({});
      } catch (e) {
        if (n !== check.current || !(e instanceof ApiError)) return;
        const field = e.field?.replace(/^site_routing\./, "routing.");
        setErrors(field && field.startsWith("routing.") ? { [field]: e.message } : {});
      }
    }, 250);
    return () => window.clearTimeout(t);
  }, [rules]);

  const save = async (e: Event) => {
    e.preventDefault();
    setMessage("");
    try {
      const answer = await api<RoutingTexts>("PUT", "/api/routing", rules);
      setErrors({});
      setMessage("Saved: new data is filed by these rules.");
      setRules({ ...EMPTY_RULES, ...answer });
      reload();
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      if (err.field?.startsWith("routing.")) setErrors({ [err.field]: err.message });
      else setMessage(err.message);
    }
  };

  return (
    <section aria-labelledby="site-routing-title" class="site-routing">
      <h2 id="site-routing-title">Site-wide routing rules</h2>
      <p class="muted">
        For each label, a receiver's own rules come first, then these, then the default rules (a Project:/Subject:/Session:
        comment, the receiver's default project, Study Description, Patient Name, Patient ID, Accession Number).
      </p>
      <Alert text={loadError} />
      {rules && (
        <form class="form-grid" onSubmit={save} noValidate>
          <RulesEditor idPrefix="site" prefix="routing" value={rules} onChange={setRules} errors={errors} readOnly={!admin} />
          {message && (
            <p class="wide" role="status">
              {message}
            </p>
          )}
          {admin && (
            <div class="buttons">
              <button type="submit">Save site rules</button>
            </div>
          )}
          <div class="wide">
            <TryIt
              idPrefix="site-try"
              context={() => ({ site_routing: rules })}
              receivers={receivers}
              note={
                "With the site-wide rules as typed here, and the chosen receiver's saved settings " +
                "(its rules, default project, processors, anonymization)."
              }
              onRuleError={(field, text) => {
                const mine = field.replace(/^site_routing\./, "routing.");
                if (!mine.startsWith("routing.")) return false;
                setErrors({ [mine]: text });
                return true;
              }}
            />
          </div>
        </form>
      )}
    </section>
  );
}
