-- Jobs: retrieves now; sends, imports and their retries, priorities and schedules later.
-- params, progress and result are JSON documents owned by the job kind.
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  type TEXT NOT NULL,
  state TEXT NOT NULL,
  node TEXT NOT NULL DEFAULT '',
  params TEXT NOT NULL DEFAULT '{}',
  progress TEXT NOT NULL DEFAULT '{}',
  result TEXT NOT NULL DEFAULT '{}',
  error TEXT NOT NULL DEFAULT '',
  interrupted INTEGER NOT NULL DEFAULT 0,
  priority INTEGER NOT NULL DEFAULT 0,
  attempts INTEGER NOT NULL DEFAULT 0,
  not_before TEXT NOT NULL DEFAULT '',
  retry_of INTEGER,
  created_at TEXT NOT NULL,
  started_at TEXT NOT NULL DEFAULT '',
  finished_at TEXT NOT NULL DEFAULT '',
  updated_at TEXT NOT NULL
);
CREATE INDEX jobs_state ON jobs(state, priority, id);

-- What we learned about a node at run time (e.g. the retrieve method that worked), kept apart
-- from its settings, which may be locked in the config file.
CREATE TABLE node_state (
  node TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  PRIMARY KEY (node, key)
);
