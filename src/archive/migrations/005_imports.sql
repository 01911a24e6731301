-- Bulk imports from a spreadsheet. An import job groups the retrieve jobs of its rows
-- (jobs.parent_id); import_rows keeps each row of the sheet: its query (JSON keyword → value),
-- its labels, what the node answered (state: pending, no_match, one_match, several_matches or
-- error; matches: JSON array of the studies found) and the choice made for it ('' until
-- confirmed, then 'all' or 'none').
ALTER TABLE jobs ADD COLUMN parent_id INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_parent ON jobs(parent_id);

CREATE TABLE import_rows (
  job_id INTEGER NOT NULL,
  line INTEGER NOT NULL,
  query TEXT NOT NULL,
  project TEXT NOT NULL DEFAULT '',
  subject TEXT NOT NULL DEFAULT '',
  session TEXT NOT NULL DEFAULT '',
  state TEXT NOT NULL DEFAULT 'pending',
  error TEXT NOT NULL DEFAULT '',
  matches TEXT NOT NULL DEFAULT '[]',
  choice TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (job_id, line)
) WITHOUT ROWID;
