"""Each node keeps the history of its connection tests (POST /api/nodes/{name}/echo): when, the
outcome, the message, the latency and every check, newest first at GET /api/nodes/{name}/tests,
and the last one in the node itself (last_test). Against a running Orthanc and a port where
nothing listens; the history survives a restart, follows a rename and goes with a delete.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_node_history.py
"""

import datetime
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def parse_utc(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


class NodeHistoryTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = cls.start_class_orthanc(extra={"DicomAlwaysAllowFind": True})

    def add(self, server, name, port):
        status, answer = server.api("POST", "/api/nodes", {
            "name": name, "ae_title": "ORTHANC", "host": "127.0.0.1", "port": port,
            "queryable": True, "timeout_seconds": 5})
        self.assertEqual(status, 201, answer)

    def echo(self, server, name):
        status, answer = server.api("POST", "/api/nodes/%s/echo" % name)
        self.assertEqual(status, 200, answer)
        return answer

    def history(self, server, name, query=""):
        status, answer = server.api("GET", "/api/nodes/%s/tests%s" % (name, query))
        self.assertEqual(status, 200, answer)
        return answer

    def test_history_of_tests(self):
        srv = self.start_server()
        before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        self.add(srv, "pacs", self.orthanc.dicom_port)
        self.add(srv, "dead", harness.free_port())  # nothing listens there
        status, node = srv.api("GET", "/api/nodes/pacs")
        self.assertEqual((status, node["last_test"]), (200, None), node)  # none yet

        first = self.echo(srv, "pacs")
        self.assertTrue(first["ok"], first)
        failed = self.echo(srv, "dead")
        self.assertFalse(failed["ok"], failed)
        second = self.echo(srv, "pacs")

        history = self.history(srv, "pacs")
        self.assertEqual(len(history), 2, history)
        self.assertEqual([h["ok"] for h in history], [True, True])
        self.assertEqual(history[0]["message"], second["message"])
        self.assertEqual(history[0]["latency_ms"], second["latency_ms"])
        self.assertEqual([c["name"] for c in history[0]["checks"]], ["echo", "find"])
        after = datetime.datetime.now(datetime.timezone.utc)
        times = [parse_utc(h["at"]) for h in history]
        self.assertTrue(before <= times[1] <= times[0] <= after, times)  # newest first
        self.assertEqual(len(self.history(srv, "pacs", "?limit=1")), 1)

        dead = self.history(srv, "dead")
        self.assertEqual(len(dead), 1, dead)
        self.assertFalse(dead[0]["ok"])
        self.assertEqual(dead[0]["message"], failed["message"])
        self.assertIn("Connection failed", dead[0]["message"])

        status, nodes = srv.api("GET", "/api/nodes")
        last = {n["name"]: n["last_test"] for n in nodes}
        self.assertEqual(last["pacs"]["message"], second["message"])
        self.assertEqual(last["dead"]["ok"], False)

        for bad in ("?limit=0", "?limit=201", "?limit=x"):
            status, answer = srv.api("GET", "/api/nodes/pacs/tests" + bad)
            self.assertEqual((status, answer.get("field")), (400, "limit"), (bad, answer))
        status, _ = srv.api("GET", "/api/nodes/no-such-node/tests")
        self.assertEqual(status, 404)

        # Kept in the index: a restart shows the same history.
        srv.stop_and_check()
        srv.start()
        self.assertEqual(self.history(srv, "pacs"), history)

        # A rename keeps it; a delete drops it (a new node of that name starts afresh).
        status, answer = srv.api("PUT", "/api/nodes/pacs", {"name": "pacs-2"})
        self.assertEqual(status, 200, answer)
        self.assertEqual(self.history(srv, "pacs-2"), history)
        status, _ = srv.api("DELETE", "/api/nodes/dead")
        self.assertEqual(status, 204)
        self.add(srv, "dead", harness.free_port())
        self.assertEqual(self.history(srv, "dead"), [])

        # The CLI shows the same.
        cp = srv.cli("nodes", "tests", "pacs-2", "--limit", "5")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        lines = cp.stdout.splitlines()
        self.assertIn("AT (UTC)", lines[0])
        self.assertEqual(len(lines), 1 + 2, cp.stdout)  # header, two tests
        self.assertIn(history[0]["at"], lines[1])
        cp = srv.cli("nodes", "list")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("LAST TEST", cp.stdout)
        self.assertIn("ok " + history[0]["at"], cp.stdout)


if __name__ == "__main__":
    unittest.main()
