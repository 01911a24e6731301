-- Several instances sharing a data directory: a staged session belongs to the instance that
-- opened it (owner: its [server] instance_id; '' for a server that owns its data directory),
-- which alone archives it, since only that instance knows the arrivals still in flight into it
-- and the rows still in its indexer's batch. An instance that does not run any more has its
-- sessions taken over by another.
ALTER TABLE staged_sessions ADD COLUMN owner TEXT NOT NULL DEFAULT '';
