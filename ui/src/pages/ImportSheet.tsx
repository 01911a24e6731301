// Import from a spreadsheet: upload a CSV (POST /api/imports), review what the server found for
// each row, confirm (POST /api/imports/{id}/confirm); the import is followed until its row
// retrieves end. A malformed sheet is refused with the API's words, which name line and column.
import { useEffect, useState } from "preact/hooks";

import { api, ImportRow, ImportView } from "../api";
import { ColumnHeads, date, enc, errorFor, FieldError, GeneralError, Problem, problemOf, TextField } from "./TransferParts";

const ENDED = ["succeeded", "partial", "failed", "canceled"];

const SHEET_FIELDS: Record<string, string> = { csv: "csv", project: "project", node: "node", queryable: "node" };

const ROW_STATE: Record<ImportRow["state"], string> = {
  pending: "being found…",
  no_match: "no match",
  one_match: "one match",
  several_matches: "several matches",
  error: "error",
};

const CHOSEN: Record<string, string> = { all: "taken", none: "skipped" };

function matchText(m: Record<string, string>): string {
  return [m.PatientName, m.PatientID, date(m.StudyDate), m.AccessionNumber, m.StudyDescription, m.NumberOfStudyRelatedInstances && `${m.NumberOfStudyRelatedInstances} instances`]
    .filter(Boolean)
    .join(" · ");
}

export function SheetImport({ node, onNodeError }: { node: string; onNodeError: (e: string) => void }) {
  const [file, setFile] = useState<File | null>(null);
  const [project, setProject] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [view, setView] = useState<ImportView | null>(null);
  const [choices, setChoices] = useState<Record<number, string>>({});

  const place = (p: Problem | null) => {
    setProblem(p);
    onNodeError(p?.key === "node" ? p.message : "");
  };

  // Asked again while the rows are being found and while their retrieves run.
  useEffect(() => {
    if (!view || view.phase === "confirmation" || ENDED.includes(view.state)) return;
    const t = window.setTimeout(() => {
      api<ImportView>("GET", `/api/imports/${enc(view.id)}`)
        .then(setView)
        .catch((e) => place(problemOf(e, {})));
    }, 1000);
    return () => window.clearTimeout(t);
  }, [view]);

  const upload = async (e: Event) => {
    e.preventDefault();
    place(null);
    if (!file) return place({ key: "csv", message: "choose a CSV file first" });
    setBusy(true);
    try {
      const csv = await file.text();
      const body = { csv, node, ...(project.trim() ? { project: project.trim() } : {}) };
      setView(await api<ImportView>("POST", "/api/imports", body));
      setChoices({});
    } catch (err) {
      place(problemOf(err, SHEET_FIELDS));
    } finally {
      setBusy(false);
    }
  };

  const confirm = async () => {
    if (!view) return;
    place(null);
    setBusy(true);
    const rows: Record<string, string> = {};
    for (const r of view.rows) {
      const c = choiceOf(r, choices);
      if (c) rows[String(r.line)] = c;
    }
    try {
      setView(await api<ImportView>("POST", `/api/imports/${enc(view.id)}/confirm`, { rows }));
    } catch (err) {
      place(problemOf(err, {}));
    } finally {
      setBusy(false);
    }
  };

  const csvError = errorFor(problem, "csv");
  return (
    <section class="sheet" aria-labelledby="sheet-title">
      <h2 id="sheet-title">Import a spreadsheet</h2>
      <p class="help" id="csv-file-help">
        One study per row, found on {node}. Columns that find studies: Accession Number, Patient ID, Study Instance UID, Study Date, Modality,
        Patient Name; optional labels: Project, Subject, Session. The header is line 1.
      </p>
      <form onSubmit={upload} noValidate>
        <div class="fields">
          <div class="field">
            <label for="csv-file">Spreadsheet (CSV)</label>
            <input
              id="csv-file"
              type="file"
              accept=".csv,.txt,text/csv,text/plain"
              aria-invalid={csvError ? "true" : undefined}
              aria-describedby={csvError ? "csv-file-help csv-file-error" : "csv-file-help"}
              onChange={(e) => setFile(e.currentTarget.files?.[0] ?? null)}
            />
            <FieldError id="csv-file" error={csvError} />
          </div>
          <TextField id="csv-project" label="Project for rows without one" value={project} onInput={setProject} error={errorFor(problem, "project")} />
        </div>
        <div class="buttons left">
          <button type="submit" disabled={busy}>
            Upload
          </button>
        </div>
      </form>
      <GeneralError problem={problem} />
      <div role="status" id="sheet-status" class="muted">
        {view && <ImportState view={view} />}
      </div>
      {view && view.rows.length > 0 && (
        <>
          <SheetRows view={view} choices={choices} onChoose={(line, c) => setChoices({ ...choices, [line]: c })} />
          {view.phase === "confirmation" && (
            <div class="buttons left">
              <button type="button" class="primary" onClick={confirm} disabled={busy}>
                Confirm
              </button>
              <span class="muted">retrieves the rows marked “take”</span>
            </div>
          )}
        </>
      )}
    </section>
  );
}

function ImportState({ view }: { view: ImportView }) {
  const what =
    view.phase === "query"
      ? "finding the rows…"
      : view.phase === "confirmation"
        ? "waiting for your confirmation"
        : view.phase === "retrieve"
          ? "retrieving the rows taken"
          : view.state;
  return (
    <>
      Import{" "}
      <a href={`#/jobs/${view.id}`} data-job-link={view.id}>
        job {view.id}
      </a>
      : <span data-phase={view.phase}>{what}</span>
      {view.error ? ` (${view.error})` : ""}
    </>
  );
}

// A row's choice: the person's, else the import's, else "take" for a row with one match.
function choiceOf(r: ImportRow, choices: Record<number, string>): string {
  return choices[r.line] ?? r.choice ?? (r.state === "one_match" ? "all" : "");
}

function SheetRows(p: { view: ImportView; choices: Record<number, string>; onChoose: (line: number, c: string) => void }) {
  const deciding = p.view.phase === "confirmation";
  return (
    <table class="grid sheet-rows">
      <caption class="sr-only">Rows of the spreadsheet and what each found</caption>
      <thead>
        <tr>
          <ColumnHeads names={["Line", "Query", "Labels", "Found", "Matches", "Take", "Retrieve"]} />
        </tr>
      </thead>
      <tbody>
        {p.view.rows.map((r) => {
          const matched = r.state === "one_match" || r.state === "several_matches";
          const choice = choiceOf(r, p.choices);
          return (
            <tr data-line={r.line} data-state={r.state}>
              <th scope="row">{r.line}</th>
              <td>
                {Object.entries(r.query)
                  .map(([k, v]) => `${k}: ${v}`)
                  .join(", ")}
              </td>
              <td>{[r.project, r.subject, r.session].filter(Boolean).join(" / ")}</td>
              <td class={r.state === "error" ? "failed" : ""}>
                {r.state === "several_matches" ? `${r.matches.length} matches` : ROW_STATE[r.state]}
                {r.error && `: ${r.error}`}
              </td>
              <td>
                {r.matches.length > 0 && (
                  <ul class="matches">
                    {r.matches.map((m) => (
                      <li data-match={m.StudyInstanceUID}>{matchText(m)}</li>
                    ))}
                  </ul>
                )}
              </td>
              <td>
                {deciding && matched ? (
                  <select id={`sheet-choice-${r.line}`} aria-label={`Line ${r.line}: take or skip`} value={choice} onChange={(e) => p.onChoose(r.line, e.currentTarget.value)}>
                    {r.state === "several_matches" && <option value="">choose…</option>}
                    <option value="all">{r.state === "several_matches" ? `take all ${r.matches.length}` : "take"}</option>
                    <option value="none">skip</option>
                  </select>
                ) : (
                  CHOSEN[r.choice ?? ""] ?? ""
                )}
              </td>
              <td>
                {r.job && (
                  <>
                    <a href={`#/jobs/${r.job.id}`} data-job-link={r.job.id}>
                      job {r.job.id}
                    </a>{" "}
                    <span class={`state ${r.job.state}`}>{r.job.state}</span>
                    {r.job.error && <div class="muted">{r.job.error}</div>}
                  </>
                )}
                {r.note && <div class="muted">{r.note}</div>}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}
