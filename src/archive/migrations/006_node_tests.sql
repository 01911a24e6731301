-- The history of each node's "test connection" (POST /api/nodes/{name}/echo): when, whether it
-- worked, the line for people, the first check's latency and every check (JSON array), so an
-- administrator sees when a link broke. The server keeps the last 200 per node; a renamed node
-- keeps its history, a deleted one loses it.
CREATE TABLE node_tests (
  id INTEGER PRIMARY KEY,
  node TEXT NOT NULL,
  at TEXT NOT NULL,
  ok INTEGER NOT NULL,
  message TEXT NOT NULL,
  latency_ms INTEGER NOT NULL,
  checks TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX node_tests_node ON node_tests(node, id);
