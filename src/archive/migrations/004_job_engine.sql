-- The job engine: jobs resume after a stop or a crash, retry transient faults by themselves
-- (not_before holds the next attempt; wait_reason says what a waiting job waits for: "retry" or
-- "schedule", the node's next availability window), run by priority then queue order, can be paused, and
-- keep one history entry per run. job_items keeps what a job has done per instance (a send's
-- confirmations), so that a resumed run does not do it again.
ALTER TABLE jobs ADD COLUMN history TEXT NOT NULL DEFAULT '[]';
ALTER TABLE jobs ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN queue_order INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN wait_reason TEXT NOT NULL DEFAULT '';
UPDATE jobs SET queue_order = id;
DROP INDEX jobs_state;
CREATE INDEX jobs_runnable ON jobs(state, priority DESC, queue_order, id);
CREATE INDEX jobs_created ON jobs(created_at);

CREATE TABLE job_items (
  job_id INTEGER NOT NULL,
  sop_uid TEXT NOT NULL,
  state TEXT NOT NULL,
  PRIMARY KEY (job_id, sop_uid)
) WITHOUT ROWID;
