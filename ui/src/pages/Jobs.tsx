// Jobs: state and progress of retrieves, sends and imports, newest first.
import { api, ApiError, can, Me, useGet } from "../api";

interface Job {
  id: string;
  type: string;
  state: string;
  node: string;
  priority: string;
  progress: { completed?: number; failed?: number; remaining?: number; total?: number; bytes?: number };
  error: string | null;
  created_at: string;
}

function percent(j: Job): number | null {
  const p = j.progress ?? {};
  const total = p.total ?? (p.completed ?? 0) + (p.failed ?? 0) + (p.remaining ?? 0);
  if (!total) return null;
  return Math.floor((100 * ((p.completed ?? 0) + (p.failed ?? 0))) / total);
}

export function Jobs({ me }: { me: Me }) {
  const [jobs, error, load, setError] = useGet<Job[]>("/api/jobs?limit=100", 2000);

  const act = async (j: Job, action: string) => {
    try {
      await api("POST", `/api/jobs/${j.id}/${action}`, {});
      load();
    } catch (e) {
      setError((e as ApiError).message);
    }
  };

  return (
    <section aria-labelledby="jobs-title">
      <h1 id="jobs-title">Jobs</h1>
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      {jobs && jobs.length === 0 && <p>No job yet.</p>}
      {jobs && jobs.length > 0 && (
        <table class="grid">
          <caption class="sr-only">Jobs, newest first</caption>
          <thead>
            <tr>
              <th scope="col">Job</th>
              <th scope="col">Type</th>
              <th scope="col">Node</th>
              <th scope="col">State</th>
              <th scope="col">Progress</th>
              <th scope="col">Error</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((j) => {
              const pct = percent(j);
              const active = ["queued", "waiting", "running"].includes(j.state);
              return (
                <tr data-job={j.id}>
                  <th scope="row">{j.id}</th>
                  <td>{j.type}</td>
                  <td>{j.node}</td>
                  <td class={`state ${j.state}`}>{j.state}</td>
                  <td>
                    {pct !== null && (
                      <progress max={100} value={pct} aria-label={`job ${j.id} progress`}>
                        {pct} %
                      </progress>
                    )}{" "}
                    {pct !== null ? `${pct} %` : ""} {j.progress?.completed ?? 0} done
                    {j.progress?.failed ? `, ${j.progress.failed} failed` : ""}
                  </td>
                  <td>{j.error ?? ""}</td>
                  <td class="actions">
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
    </section>
  );
}
