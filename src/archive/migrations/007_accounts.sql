-- Accounts of the REST API and the web UI (src/auth): users with an Argon2id hash, the UI's
-- sessions and the API tokens of scripts (kept as SHA-256 of the secret, never the secret),
-- and the audit log of changes and log-ins. Times of sessions and tokens are Unix seconds
-- (compared on every request); the others are ISO 8601 UTC, for people.
CREATE TABLE users (
  username TEXT PRIMARY KEY COLLATE NOCASE,
  role TEXT NOT NULL,
  password_hash TEXT NOT NULL,
  created_at TEXT NOT NULL,
  password_changed_at TEXT NOT NULL,
  last_login_at TEXT NOT NULL DEFAULT ''
);
CREATE TABLE sessions (
  id_hash TEXT PRIMARY KEY,
  username TEXT NOT NULL COLLATE NOCASE,
  csrf_token TEXT NOT NULL,
  client TEXT NOT NULL DEFAULT '',
  created_s INTEGER NOT NULL,
  last_seen_s INTEGER NOT NULL,
  expires_s INTEGER NOT NULL
);
CREATE TABLE api_tokens (
  id TEXT PRIMARY KEY,
  username TEXT NOT NULL COLLATE NOCASE,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  token_hash TEXT NOT NULL UNIQUE,
  created_s INTEGER NOT NULL,
  expires_s INTEGER NOT NULL DEFAULT 0,
  last_used_s INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY,
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  via TEXT NOT NULL,
  client TEXT NOT NULL,
  request_id TEXT NOT NULL,
  action TEXT NOT NULL,
  target_type TEXT NOT NULL,
  target TEXT NOT NULL,
  before TEXT NOT NULL DEFAULT 'null',
  after TEXT NOT NULL DEFAULT 'null'
);
CREATE INDEX audit_log_actor ON audit_log(actor, id);
CREATE INDEX audit_log_target ON audit_log(target_type, id);
CREATE INDEX audit_log_action ON audit_log(action, id);
