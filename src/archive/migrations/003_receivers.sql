-- Receivers created through the API (those of the config file are not stored).
CREATE TABLE receivers (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  body TEXT NOT NULL
);

-- Site-wide settings as JSON documents by key (routing rules, the anonymization secret).
CREATE TABLE site_settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- Where routing filed a series: project / subject / session labels.
ALTER TABLE series ADD COLUMN project TEXT NOT NULL DEFAULT '';
ALTER TABLE series ADD COLUMN subject TEXT NOT NULL DEFAULT '';
ALTER TABLE series ADD COLUMN session TEXT NOT NULL DEFAULT '';
CREATE INDEX series_labels ON series(project, subject, session);

-- Sessions waiting in the staging area (receivers without direct archive).
CREATE TABLE staged_sessions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  receiver TEXT NOT NULL,
  project TEXT NOT NULL,
  subject TEXT NOT NULL,
  session TEXT NOT NULL,
  state TEXT NOT NULL DEFAULT 'open',
  first_at TEXT NOT NULL,
  last_at TEXT NOT NULL,
  instance_count INTEGER NOT NULL DEFAULT 0,
  bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE staged_instances (
  session_id INTEGER NOT NULL REFERENCES staged_sessions(id),
  sop_uid TEXT NOT NULL,
  study_uid TEXT NOT NULL,
  series_uid TEXT NOT NULL,
  file TEXT NOT NULL,
  size INTEGER NOT NULL,
  source_ae TEXT NOT NULL DEFAULT '',
  receiver_ae TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (session_id, sop_uid)
);
