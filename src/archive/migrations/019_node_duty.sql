-- Several instances on one database: each node's utilization share (utilization_percent) as all
-- of them used it, so that the share holds for the instances together: the busy stretch going on
-- (when it began and must end), and how much of which minute the stretches that ended used.
-- Times are microseconds since 1970 on the instances' clocks. Written under the node's lock.
CREATE TABLE node_duty (
  node TEXT PRIMARY KEY,
  stretch_start_us BIGINT NOT NULL DEFAULT 0,
  stretch_end_us BIGINT NOT NULL DEFAULT 0,
  minute_us BIGINT NOT NULL DEFAULT 0,
  used_us BIGINT NOT NULL DEFAULT 0,
  in_stretch INTEGER NOT NULL DEFAULT 0
);
