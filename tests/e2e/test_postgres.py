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
- A full disk under the index (the database's tablespace on a tmpfs that only PostgreSQL sees,
  filled until PostgreSQL itself reports SQLSTATE 53100): arrivals answered before the index
  failed are kept in their journal, later ones are refused 0xA700, the log and /api/ready say the
  disk is full; once space is freed (the filler dropped, no restart) everything answered is
  indexed once and arrivals are taken again.
- The password never appears in the log, in either case.
- [server] instance_id names the server in /api/health and on each log line.

The main suites (receive, find, retrieve, send, jobs, import, accounts) also run on PostgreSQL as
ctest's e2e-pg.* (PACSBRIDGE_E2E_DATABASE=postgresql).
"""

import json
import os
import re
import subprocess
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


class PostgresFullDiskTests(harness.E2ETestCase):
    """The index's database in a tablespace on a tmpfs of TMPFS_MB that only PostgreSQL sees."""

    TMPFS_MB = 24

    def setUp(self):
        if os.geteuid() != 0:
            raise AssertionError("the full-disk test mounts a tmpfs in a private mount namespace and needs root "
                                 "(id -u is %d)" % os.geteuid())
        self.pg = harness.PostgresServer(tmpfs_mb=self.TMPFS_MB)
        self.addCleanup(self.pg.stop)
        self.pg.psql("CREATE TABLESPACE small LOCATION '%s'" % self.pg.small_dir)
        self.pg.psql("CREATE DATABASE e2e_full TABLESPACE small")

    def fill(self):
        """Fills the tablespace until PostgreSQL refuses; returns the SQLSTATE it gave."""
        url = self.pg.admin_url + "&dbname=e2e_full"
        # Not vacuumed meanwhile: a vacuum would cut the failed insert's pages off and give space back.
        self.pg.psql("CREATE TABLE filler (x text) WITH (autovacuum_enabled = off)", "e2e_full")
        # 2,000 rows of 900 bytes (stored as they are: TOAST compresses only values over ~2 KB) at
        # a time, so that little room is left when the disk refuses.
        for _ in range(4 * self.TMPFS_MB):
            cp = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-tAc",
                                 "INSERT INTO filler SELECT repeat('x', 900) FROM generate_series(1, 2000)"],
                                capture_output=True, text=True, timeout=60)
            if cp.returncode != 0:
                state = re.search(r"ERROR:\s+([0-9A-Z]{5}):", cp.stderr)
                self.assertTrue(state, "psql failed without an SQLSTATE: %s" % cp.stderr)
                return state.group(1)
        self.fail("%d MB of rows went into a %d MB tablespace" % (4 * self.TMPFS_MB * 2, self.TMPFS_MB))

    def test_a_full_disk_under_the_index_refuses_arrivals_meanwhile_and_loses_nothing_answered(self):
        harness.require_binary(self)
        srv = harness.Server(self.mkdtemp("server"), database_url=self.pg.url("e2e_full"))
        self._peers.append(srv)
        self.addCleanup(srv.stop_and_check)
        srv.start()  # its tables are created in the tablespace, empty
        self.assertEqual(self.fill(), "53100", "PostgreSQL did not report a full disk")

        files = dicomgen.generate(self.mkdtemp("during"), 50, size=4096, patient_id="PGFULL")
        acked, refused = [], []
        for f in files:
            (acked if harness.store_or_refused(self, srv, f[0], "PGSCU") else refused).append(f)
            if refused:
                break
        self.assertTrue(acked, "the first arrival, before the index failed, was not answered Success")
        self.assertTrue(refused, "50 instances were answered Success while the index could not be written")
        log = srv.log_path.read_text("utf-8", "replace")
        self.assertRegex(log, r"cannot index \d+ instance\(s\): index database: .*No space left on device",
                         "no log line saying the index's disk is full")
        status, body = srv.api("GET", "/api/ready")
        self.assertEqual(status, 503, body)
        self.assertIn("No space left on device", json.dumps(body), body)
        self.assertFalse(harness.store_or_refused(self, srv, refused[0][0], "PGSCU"),
                         "an arrival was taken while the index cannot be written")
        self.assertEqual(set(harness.archive_instances(srv)), set(), "something was indexed on a full disk")

        self.pg.psql("DROP TABLE filler", "e2e_full")  # space again, no restart of ours
        want = {f[1] for f in acked}
        self.assertTrue(harness.wait_until(lambda: set(harness.archive_instances(srv)) == want, timeout=30),
                        "answered instances not indexed once there was space again")
        self.assertTrue(harness.store_or_refused(self, srv, refused[0][0], "PGSCU"),
                        "arrivals still refused once there was space again")
        self.assertTrue(harness.wait_until(lambda: refused[0][1] in set(harness.archive_instances(srv)), timeout=10))
        self.assertEqual(len(harness.archive_instances(srv)), len(acked) + 1, "an instance was indexed twice")
        status, body = srv.api("GET", "/api/ready")
        self.assertEqual(status, 200, body)
        self.assertIn("the index accepts writes again", srv.log_path.read_text("utf-8", "replace"))
        # Every failed write's statements were let go on the server too (none refused inside
        # the aborted transaction, and so left prepared there for each retry).
        pg_log = (self.pg.dir / "cluster" / "server.log").read_text("utf-8", "replace")
        self.assertNotIn("DEALLOCATE", pg_log)


if __name__ == "__main__":
    unittest.main()
