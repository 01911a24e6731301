// The local archive: studies, and for the one chosen its series with a thumbnail each (rendered
// by the server from the middle image) and their instance counts.
import { useState } from "preact/hooks";

import { useGet } from "../api";

interface Study {
  StudyInstanceUID: string;
  PatientID: string;
  PatientName: string;
  StudyDate: string;
  StudyDescription: string;
  ModalitiesInStudy: string;
  series_count: number;
  instance_count: number;
}

interface Series {
  SeriesInstanceUID: string;
  Modality: string;
  SeriesNumber: string;
  SeriesDescription: string;
  instance_count: number;
}

function date(d: string): string {
  return /^\d{8}$/.test(d) ? `${d.slice(0, 4)}-${d.slice(4, 6)}-${d.slice(6)}` : d;
}

function StudySeries({ study }: { study: Study }) {
  const [series, error] = useGet<Series[]>(`/api/studies/${encodeURIComponent(study.StudyInstanceUID)}/series`);
  if (error) return <p class="error" role="alert">{error}</p>;
  if (!series) return <p aria-busy="true">Loading the series…</p>;
  return (
    <ul class="series-cards" aria-label={`Series of ${study.PatientName || study.PatientID}`}>
      {series.map((s) => (
        <li data-series={s.SeriesInstanceUID}>
          <img
            src={`/api/series/${encodeURIComponent(s.SeriesInstanceUID)}/thumbnail`}
            alt={`Series ${s.SeriesNumber || ""} ${s.SeriesDescription || s.Modality}: middle image`}
            width={128}
            height={128}
            loading="lazy"
          />
          <div>
            <strong>
              {s.Modality} {s.SeriesNumber && `#${s.SeriesNumber}`}
            </strong>
          </div>
          <div>{s.SeriesDescription}</div>
          <div class="muted">{s.instance_count} instance(s)</div>
        </li>
      ))}
    </ul>
  );
}

export function Archive() {
  const [studies, error] = useGet<Study[]>("/api/studies?limit=200");
  const [open, setOpen] = useState<string>("");
  return (
    <section aria-labelledby="archive-title">
      <h1 id="archive-title">Archive</h1>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {studies && studies.length === 0 && <p>The archive is empty.</p>}
      {studies && studies.length > 0 && (
        <table class="grid">
          <caption class="sr-only">Studies in the archive</caption>
          <thead>
            <tr>
              <th scope="col">Date</th>
              <th scope="col">Patient</th>
              <th scope="col">Patient ID</th>
              <th scope="col">Description</th>
              <th scope="col">Modalities</th>
              <th scope="col">Series</th>
              <th scope="col">Instances</th>
            </tr>
          </thead>
          <tbody>
            {studies.map((st) => (
              <>
                <tr data-study={st.StudyInstanceUID}>
                  <td>{date(st.StudyDate)}</td>
                  <th scope="row">
                    <button
                      type="button"
                      class="link"
                      aria-expanded={open === st.StudyInstanceUID}
                      onClick={() => setOpen(open === st.StudyInstanceUID ? "" : st.StudyInstanceUID)}
                    >
                      {st.PatientName || "(no name)"}
                    </button>
                  </th>
                  <td>{st.PatientID}</td>
                  <td>{st.StudyDescription}</td>
                  <td>{st.ModalitiesInStudy}</td>
                  <td>{st.series_count}</td>
                  <td>{st.instance_count}</td>
                </tr>
                {open === st.StudyInstanceUID && (
                  <tr class="detail">
                    <td colSpan={7}>
                      <StudySeries study={st} />
                    </td>
                  </tr>
                )}
              </>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
