-- Several instances on one database: a running job belongs to the instance that claimed it
-- (owner: its [server] instance_id) for as long as that instance renews its lease
-- (lease_until, ISO 8601 UTC, a few seconds ahead). A job whose lease ran out, its instance
-- gone, is queued again by another instance and resumes where it was; an instance writes a
-- running job only while it still owns it.
ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN lease_until TEXT NOT NULL DEFAULT '';
CREATE INDEX jobs_leases ON jobs(state, lease_until);
