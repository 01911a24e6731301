-- Several instances on one database: the nodes each instance transfers to by any path (retrieve
-- and send jobs, the C-STOREs of a C-MOVE its Query/Retrieve SCP serves), as
-- its node limiters saw them in the last seconds. Each instance writes its own rows every second
-- while it transfers, with a short lease (an instance that stopped holds none once it ends), and
-- shares a node's max_bytes_per_second with every other instance holding a row of that node.
CREATE TABLE node_transfers (
  instance_id TEXT NOT NULL,
  node TEXT NOT NULL,
  lease_until TEXT NOT NULL,
  PRIMARY KEY (instance_id, node)
);
