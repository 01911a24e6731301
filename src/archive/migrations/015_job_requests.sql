-- Several instances on one database: a cancel or a pause asked through one instance for a job
-- that another one runs is left here (requested: 'cancel' or 'pause') for the instance running
-- it, which looks every second, takes the request (clearing it) and stops that run as it would
-- for one asked of it directly, or, when the run ended or was queued again meanwhile, cancels or
-- pauses the job as it is. A job taken over from an instance that stopped before it took the
-- request gets its request applied then.
ALTER TABLE jobs ADD COLUMN requested TEXT NOT NULL DEFAULT '';
