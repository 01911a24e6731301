// Send: studies and series of the local archive to a storable node (C-STORE, or STOW-RS for a
// DICOMweb node), as jobs: one for the whole studies chosen, one for the series chosen of the
// other studies (a send job has a single level).
import { useState } from "preact/hooks";

import { api, ArchiveSeries, ArchiveStudy, can, JobRef, Me, useGet } from "../api";
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

const SEND_FIELDS: Record<string, string> = { node: "node", uids: "uids" };

export function Send({ me }: { me: Me }) {
  const [nodes, preferred, nodesError] = useNodes("export");
  const [picked, setPicked] = useState("");
  const node = picked || preferred;
  const user = can(me, "user");
  const [filter, setFilter] = useState("");
  const [applied, setApplied] = useState("");
  const [studies, studiesError] = useGet<ArchiveStudy[]>(`/api/studies?limit=200${applied ? `&PatientName=${enc(applied)}` : ""}`);
  const [studySel, setStudySel] = useState<Set<string>>(new Set());
  const [seriesSel, setSeriesSel] = useState<Record<string, string>>({}); // series → its study
  const [open, setOpen] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<Problem | null>(null);
  const [jobs, setJobs] = useState<JobRef[]>([]);

  const wholeStudies = [...studySel];
  const someSeries = Object.entries(seriesSel)
    .filter(([, study]) => !studySel.has(study))
    .map(([series]) => series);

  const send = async () => {
    setBusy(true);
    setProblem(null);
    const made: JobRef[] = [];
    try {
      if (wholeStudies.length) made.push(await api<JobRef>("POST", "/api/send", { node, level: "STUDY", uids: wholeStudies }));
      if (someSeries.length) made.push(await api<JobRef>("POST", "/api/send", { node, level: "SERIES", uids: someSeries }));
    } catch (err) {
      setProblem(problemOf(err, SEND_FIELDS));
    } finally {
      setJobs(made);
      setBusy(false);
    }
  };

  const toggleStudy = (uid: string, on: boolean) => {
    const next = new Set(studySel);
    if (on) next.add(uid);
    else next.delete(uid);
    setStudySel(next);
  };
  const toggleSeries = (series: string, study: string, on: boolean) => {
    const next = { ...seriesSel };
    if (on) next[series] = study;
    else delete next[series];
    setSeriesSel(next);
  };

  const uids = studies?.map((s) => s.StudyInstanceUID) ?? [];
  const all = uids.length > 0 && uids.every((u) => studySel.has(u));
  const count = [
    wholeStudies.length && `${wholeStudies.length} ${wholeStudies.length === 1 ? "study" : "studies"}`,
    someSeries.length && `${someSeries.length} series`,
  ].filter(Boolean);
  const columns = user ? 8 : 7;
  return (
    <section aria-labelledby="send-title">
      <h1 id="send-title">Send</h1>
      {(nodesError || studiesError) && (
        <p class="error" role="alert">
          {nodesError || studiesError}
        </p>
      )}
      <NodeChoice
        id="send-node"
        label="Destination node"
        none="No storable node"
        nodes={nodes}
        value={node}
        onChange={setPicked}
        error={errorFor(problem, "node")}
      />
      {!user && (
        <p class="muted" id="send-read-only">
          This account is read-only: sending needs the user role.
        </p>
      )}
      <form
        class="search"
        aria-labelledby="send-filter-title"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(filter.trim());
        }}
      >
        <h2 id="send-filter-title">Studies in the archive</h2>
        <div class="fields">
          <TextField id="send-filter" label="Patient name" value={filter} onInput={setFilter} help="* and ? are wildcards; empty: the newest 200 studies" />
        </div>
        <div class="buttons left">
          <button type="submit">Filter</button>
        </div>
      </form>
      {studies && studies.length === 0 && <p>No study in the archive{applied ? " matches" : ""}.</p>}
      {studies && studies.length > 0 && (
        <table class="grid">
          <caption class="sr-only">Studies in the archive</caption>
          <thead>
            <tr>
              {user && <SelectAll id="send-select-all" checked={all} onChange={(on) => setStudySel(new Set(on ? uids : []))} />}
              <ColumnHeads names={["Patient", "Patient ID", "Date", "Description", "Modalities", "Series", "Instances"]} />
            </tr>
          </thead>
          <tbody>
            {studies.map((st, i) => {
              const uid = st.StudyInstanceUID;
              const name = st.PatientName || "(no name)";
              return (
                <>
                  <tr data-study={uid}>
                    {user && (
                      <td>
                        <input
                          type="checkbox"
                          checked={studySel.has(uid)}
                          aria-label={`Select the study of ${name} of ${date(st.StudyDate)}`}
                          onChange={(e) => toggleStudy(uid, e.currentTarget.checked)}
                        />
                      </td>
                    )}
                    <th scope="row">
                      <Opener open={open === uid} controls={`send-series-${i}`} onToggle={() => setOpen(open === uid ? "" : uid)}>
                        {name}
                      </Opener>
                    </th>
                    <td>{st.PatientID}</td>
                    <td>{date(st.StudyDate)}</td>
                    <td>{st.StudyDescription}</td>
                    <td>{st.ModalitiesInStudy}</td>
                    <td>{st.series_count}</td>
                    <td>{st.instance_count}</td>
                  </tr>
                  {open === uid && (
                    <tr class="detail" id={`send-series-${i}`}>
                      <td colSpan={columns}>
                        <LocalSeries
                          study={st}
                          selectable={user}
                          wholeStudy={studySel.has(uid)}
                          chosen={seriesSel}
                          onToggle={(series, on) => toggleSeries(series, uid, on)}
                        />
                      </td>
                    </tr>
                  )}
                </>
              );
            })}
          </tbody>
        </table>
      )}
      {user && (
        <div class="send-bar">
          <div class="buttons left">
            <button type="button" class="primary" onClick={send} disabled={busy || !node || count.length === 0} aria-describedby="send-count">
              Send
            </button>
            <span id="send-count" class="muted">
              {count.length ? `${count.join(" and ")} selected, to ${node}` : "select studies or series to send"}
            </span>
          </div>
          <FieldError id="send-uids" error={errorFor(problem, "uids")} />
          <GeneralError problem={problem} />
          <JobLinks id="send-result" jobs={jobs} what={`Send to ${node} queued`} />
        </div>
      )}
    </section>
  );
}

// A study's series in the archive; each may be chosen alone (shown chosen while the whole study is).
function LocalSeries(p: {
  study: ArchiveStudy;
  selectable: boolean;
  wholeStudy: boolean;
  chosen: Record<string, string>;
  onToggle: (series: string, on: boolean) => void;
}) {
  const [series, error] = useGet<ArchiveSeries[]>(`/api/studies/${enc(p.study.StudyInstanceUID)}/series`);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!series) return <p aria-busy="true">Loading the series…</p>;
  return (
    <table class="grid nested">
      <caption>Series of {p.study.PatientName || p.study.PatientID}</caption>
      <thead>
        <tr>
          <ColumnHeads names={[...(p.selectable ? ["Send"] : []), "Number", "Modality", "Description", "Instances"]} />
        </tr>
      </thead>
      <tbody>
        {series.map((s) => (
          <tr data-series={s.SeriesInstanceUID}>
            {p.selectable && (
              <td>
                <input
                  type="checkbox"
                  checked={p.wholeStudy || s.SeriesInstanceUID in p.chosen}
                  disabled={p.wholeStudy}
                  aria-label={`Select series ${s.SeriesNumber} ${s.SeriesDescription || s.Modality}`}
                  onChange={(e) => p.onToggle(s.SeriesInstanceUID, e.currentTarget.checked)}
                />
              </td>
            )}
            <td>{s.SeriesNumber}</td>
            <td>{s.Modality}</td>
            <td>{s.SeriesDescription}</td>
            <td>{s.instance_count}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
