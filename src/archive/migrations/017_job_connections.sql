-- Several instances on one database: how many connections (associations, HTTP connections) each
-- running job holds to its node, so that a node's max_connections holds across instances: a claim
-- or a further connection counts those of every instance's running jobs whose lease has not ended.
ALTER TABLE jobs ADD COLUMN connections INTEGER NOT NULL DEFAULT 0;
