"""The index on PostgreSQL ([database] url = "postgresql://..."), where it differs from SQLite:
a server that is not there yet, or goes away while we run, and its password.

Each test has a PostgreSQL server of its own (scripts/pg-test-server.sh: initdb and pg_ctl in a
temporary directory, TCP on 127.0.0.1 with a password), which it stops and starts again.

- Unreachable at start: the server says so (the URL without its password), tries again with a
  growing delay, and starts once PostgreSQL answers, without a restart. A wrong password is not
  waited for: the start fails at once, saying why, without the password.
- Lost while running: arrivals that were answered Success are indexed once PostgreSQL is back
  (from their journal, no restart); while it is gone the receivers answer 0xA700 (out of
  resources) and /api/ready answers 503; afterwards the receivers take arrivals again.
- The password never appears in the log, in either case.
- [server] instance_id names the server in /api/health and on each log line.

The main suites (receive, find, retrieve, send, jobs, import, accounts) also run on PostgreSQL as
ctest's e2e-pg.* (PACSBRIDGE_E2E_DATABASE=postgresql).
"""

import os
import re
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402


class PostgresTests(harness.E2ETestCase):
    def setUp(self):
        self.pg = harness.PostgresServer()
        self.addCleanup(self.pg.stop)
        self.database = self.pg.database_for(self.mkdtemp("db"))

    def server(self, password=None, **kw):
        harness.require_binary(self)
        srv = harness.Server(self.mkdtemp("server"), database_url=self.pg.url(self.database, password), **kw)
        self._peers.append(srv)
        return srv

    def log(self, srv):
        try:
            return srv.log_path.read_text("utf-8", "replace")
        except FileNotFoundError:  # not started yet
            return ""

    def store_one(self, srv, path):
        """storescu of one file: True for Success, False for 0xA700; anything else fails."""
        return harness.store_or_refused(self, srv, path, "PGSCU")

    def indexed(self, srv, files):
        return set(harness.archive_instances(srv)) & {f[1] for f in files}

    def test_unreachable_at_start_is_waited_for_and_the_password_never_shown(self):
        self.pg.pause()
        srv = self.server()
        self.addCleanup(srv.stop_and_check)
        waiting = threading.Event()
        resume_failed = []

        def resume_once_waiting():
            # PostgreSQL comes back once the server has said twice that it waits for it, and in
            # any case: a failure here is said below, rather than lost with the thread.
            try:
                if harness.wait_until(lambda: len(re.findall("trying again", self.log(srv))) >= 2, timeout=30):
                    waiting.set()
            finally:
                try:
                    self.pg.resume()
                except AssertionError as e:
                    resume_failed.append(str(e))

        t = threading.Thread(target=resume_once_waiting)
        t.start()
        try:
            srv.start(timeout=90)
        except AssertionError:
            t.join()
            self.assertFalse(resume_failed, "PostgreSQL itself did not start again: %s" % resume_failed)
            raise
        finally:
            t.join()
        self.assertTrue(waiting.is_set(), "the server did not say it waits for the database:\n%s" % self.log(srv))
        log = self.log(srv)
        self.assertRegex(log, r"cannot open postgresql://pb:\*\*\*@127\.0\.0\.1:%d/%s: .*trying again in 1 s"
                         % (self.pg.port, self.database))
        self.assertRegex(log, r"trying again in 2 s", "the delay does not grow")
        self.assertNotIn(self.pg.password, log)
        # The server works: an arrival is indexed.
        files = dicomgen.generate(self.mkdtemp("files"), 1, size=2048, patient_id="PGSTART")
        self.assertTrue(self.store_one(srv, files[0][0]))
        self.assertTrue(harness.wait_until(lambda: self.indexed(srv, files) == {files[0][1]}, timeout=10))

    def test_a_wrong_password_ends_the_start_at_once_and_is_not_shown(self):
        wrong = "Wr0ngPassw0rd"
        srv = self.server(password=wrong)
        with self.assertRaises(AssertionError) as failed:
            srv.start(timeout=20)
        self.assertIn("exited with", str(failed.exception), "the start was retried instead of failing")
        log = self.log(srv)
        self.assertIn("password authentication failed", log)
        self.assertNotIn("trying again", log)
        self.assertNotIn(wrong, log)
        self.assertNotIn(self.pg.password, log)

    def test_lost_while_running_loses_nothing_answered_and_refuses_meanwhile(self):
        srv = self.server(server_toml='instance_id = "gw-1"')
        self.addCleanup(srv.stop_and_check)
        srv.start()
        # Which instance this is: in /api/health (an id chosen by the admin: without log-in too)
        # and on every log line.
        status, body = srv.api("GET", "/api/health", auth=None)
        self.assertEqual((status, body.get("instance")), (200, "gw-1"), body)
        self.assertRegex(self.log(srv), r"\[pacsbridge\] \[gw-1\] \[info\] PACS Bridge ready: .*instance gw-1")
        before = dicomgen.generate(self.mkdtemp("before"), 3, size=4096, patient_id="PGBEFORE")
        for f in before:
            self.assertTrue(self.store_one(srv, f[0]))
        self.assertTrue(harness.wait_until(lambda: len(self.indexed(srv, before)) == 3, timeout=10))

        self.pg.pause()  # a fast shutdown: every connection of ours is cut
        status, body = srv.api("GET", "/api/ready")
        self.assertEqual(status, 503, body)
        files = dicomgen.generate(self.mkdtemp("during"), 100, size=4096, patient_id="PGDURING")
        acked, refused = [], []
        for f in files:
            (acked if self.store_one(srv, f[0]) else refused).append(f)
            if refused:
                break
        self.assertTrue(refused, "100 instances were answered Success while the index was gone: "
                                 "arrivals are not refused")
        self.assertFalse(self.store_one(srv, files[-1][0]), "an arrival was taken while the index is gone")
        self.assertRegex(self.log(srv), r"cannot index \d+ instance\(s\): index database: ",
                         "no log line saying why the index cannot be written")

        self.pg.resume()  # no restart of ours
        want = {f[1] for f in acked}
        self.assertTrue(harness.wait_until(lambda: self.indexed(srv, acked) == want, timeout=30),
                        "answered instances not indexed once the database returned")
        self.assertEqual(self.indexed(srv, before), {f[1] for f in before})
        self.assertNotIn(refused[0][1], set(harness.archive_instances(srv)), "a refused instance was indexed")
        self.assertTrue(self.store_one(srv, refused[0][0]), "arrivals still refused after the database returned")
        self.assertTrue(harness.wait_until(lambda: refused[0][1] in self.indexed(srv, refused), timeout=10))
        status, body = srv.api("GET", "/api/ready")
        self.assertEqual(status, 200, body)
        log = self.log(srv)
        self.assertIn("the index accepts writes again", log)
        self.assertNotIn(self.pg.password, log)


if __name__ == "__main__":
    unittest.main()
