"""One server per data directory and per HTTP port, and honest readiness.

A second `serve` started while the first receives a slow transfer (through a throttling proxy):
on the same config, on the same data directory only, on the same HTTP port only. The second
exits non-zero at once, naming what is in use and by which PID; the first finishes every
instance; nothing of the first's is deleted or replayed. Then receivers that cannot listen:
named at start, in /api/health and /api/ready; fatal with `serve --strict` or
`[server] strict = true`.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_single_owner.py
"""

import base64
import json
import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

COUNT = 50
SIZE = 20000           # bytes of pixel data per instance: ~1 MB in all
RATE = 150 * 1024      # bytes/s through the proxy: the transfer takes ~7 s


class SecondServerTests(harness.E2ETestCase):
    """Each scenario: a first server receiving slowly, a second started next to it."""

    def start_first(self):
        srv = self.start_server()
        proxy = harness.ThrottledProxy(srv.dicom_port, rate=RATE, throttle="upload")
        self.addCleanup(proxy.close)
        files = dicomgen.generate(self.mkdtemp("study"), COUNT, size=SIZE, patient_id="OWNER")
        sender = harness.start_tool(harness.storescu_args(proxy.port, srv.dicom_ae,
                                                          [f[0] for f in files]))
        self.addCleanup(lambda: sender.poll() is None and sender.kill())
        tmp = srv.data_dir / "tmp"
        # Force the path: the second server starts while an instance is being received.
        self.assertTrue(harness.wait_until(lambda: any(tmp.iterdir()), timeout=30),
                        "no transfer in flight in %s" % tmp)
        return srv, sender, files

    def archive_snapshot(self, srv):
        """The first server's archive files (path -> size, mtime) and its lock file's text."""
        files = {p: (os.stat(p).st_size, os.stat(p).st_mtime_ns)
                 for p in harness.files_under(srv.data_dir / "archive")}
        return files, (srv.data_dir / "pacsbridge.lock").read_text()

    def assertUntouched(self, srv, before):
        files, lock = self.archive_snapshot(srv)
        self.assertEqual(lock, before[1], "the lock file changed")
        for path, stat in before[0].items():
            self.assertEqual(files.get(path), stat, "%s was changed or removed" % path)

    def second_config(self, work, *, data_dir, http_port, database_path=None):
        """A config for a second server in `work`, with a receiver of its own."""
        config = work / "config.toml"
        config.write_text(harness.toml_config(
            data_dir=data_dir, http_port=http_port, database_path=database_path,
            receivers=[{"ae_title": "SECOND", "port": harness.free_port(), "bind": "127.0.0.1"}]))
        return config

    def run_second(self, config_path, workdir):
        log = workdir / "second.log"
        with open(log, "wb") as out:
            cp = subprocess.run([str(harness.require_binary()), "serve", "--config", str(config_path)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=harness.server_env(), timeout=20)
        return cp.returncode, log.read_text("utf-8", "replace")

    def finish_and_check(self, srv, sender, files, second_log):
        self.assertIsNone(sender.poll(), "the transfer ended before the second server did: "
                                         "the scenario did not overlap")
        out, err = sender.communicate(timeout=120)
        self.assertEqual(sender.returncode, 0, "storescu failed:\n%s\n%s" % (out, err))
        study = files[0][2]
        self.assertTrue(harness.wait_until(
            lambda: harness.studies_by_uid(srv).get(study, {}).get("instance_count") == COUNT,
            timeout=30), harness.studies_by_uid(srv).get(study))
        archived = [p for p in harness.files_under(srv.data_dir / "archive") if p.endswith(".dcm")]
        self.assertEqual(len(archived), COUNT)
        log = srv.log_path.read_text("utf-8", "replace")
        self.assertNotRegex(log, r"OutOfResources|0xa7|cannot|error", "the first server had trouble")
        for forbidden in ("removed", "temp file", "indexed", "journal", "ready"):
            self.assertNotIn(forbidden, second_log.lower(), "the second server did too much")

    def test_same_config(self):
        srv, sender, files = self.start_first()
        before = self.archive_snapshot(srv)
        code, log = self.run_second(srv.config_path, self.mkdtemp("second"))
        self.assertNotIn(code, (0, None), log)
        self.assertUntouched(srv, before)
        sys.stderr.write("[second: %s] " % log.strip().splitlines()[-1])
        self.assertIn("data directory %s is in use by pacsbridge PID %d"
                      % (os.path.realpath(srv.data_dir), srv.pid), log)
        self.assertEqual(int((srv.data_dir / "pacsbridge.lock").read_text().strip()), srv.pid)
        self.finish_and_check(srv, sender, files, log)
        self.assertEqual(harness.tcp_listeners(srv.http_port), 1)

    def test_same_data_directory_other_ports(self):
        srv, sender, files = self.start_first()
        work = self.mkdtemp("second")
        config = self.second_config(work, data_dir=srv.data_dir, http_port=harness.free_port())
        before = self.archive_snapshot(srv)
        code, log = self.run_second(config, work)
        self.assertNotIn(code, (0, None), log)
        self.assertUntouched(srv, before)
        self.assertIn("data directory %s is in use by pacsbridge PID %d"
                      % (os.path.realpath(srv.data_dir), srv.pid), log)
        self.finish_and_check(srv, sender, files, log)

    def test_same_http_port_other_data_directory(self):
        srv, sender, files = self.start_first()
        work = self.mkdtemp("second")
        config = self.second_config(work, data_dir=work / "data", http_port=srv.http_port)
        before = self.archive_snapshot(srv)
        code, log = self.run_second(config, work)
        self.assertNotIn(code, (0, None), log)
        self.assertUntouched(srv, before)
        self.assertIn("cannot listen for HTTP on 127.0.0.1:%d: the port is in use by pacsbridge (PID %d)"
                      % (srv.http_port, srv.pid), log)
        # Exactly one listener: every request is the first server's.
        self.assertEqual(harness.tcp_listeners(srv.http_port), 1)
        self.assertFalse(os.path.exists(work / "data" / "index.db"),
                         "the second server opened its database before it had its HTTP port")
        self.finish_and_check(srv, sender, files, log)


    def test_same_index_database_other_data_directory(self):
        index = self.mkdtemp("index") / "shared.db"
        srv = self.start_server(database_path=index)
        work = self.mkdtemp("second")
        config = self.second_config(work, data_dir=work / "data", http_port=harness.free_port(),
                                    database_path=index)
        code, log = self.run_second(config, work)
        self.assertNotIn(code, (0, None), log)
        self.assertIn("the index database %s is in use by pacsbridge PID %d" % (index, srv.pid), log)
        self.assertHealthy(srv)


class ReadinessTests(harness.E2ETestCase):
    """A receiver whose port another program holds."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        cls.blocker.bind(("127.0.0.1", 0))
        cls.blocker.listen(4)
        cls.busy_port = cls.blocker.getsockname()[1]
        cls.addClassCleanup(cls.blocker.close)
        cls.good_port = harness.free_port()
        cls.receivers = [{"ae_title": "GOOD", "port": cls.good_port, "bind": "127.0.0.1"},
                         {"ae_title": "BUSY", "port": cls.busy_port, "bind": "127.0.0.1"}]
        cls.server = cls.start_class_server(receivers=cls.receivers)

    def expected_reason(self):
        with open("/proc/self/comm") as f:
            program = f.read().strip()
        return ("port %d is already in use on 127.0.0.1 (by %s (PID %d))"
                % (self.busy_port, program, os.getpid()))

    def test_start_names_each_receiver_that_did_not_start(self):
        log = self.server.log_path.read_text("utf-8", "replace")
        self.assertRegex(log, r"receiver BUSY@%d \(id [^)]+\) did not start: %s"
                         % (self.busy_port, re.escape(self.expected_reason())))
        self.assertIn("NOT ready: 1 receiver(s) not listening", log)
        self.assertNotIn("PACS Bridge ready", log)
        cp = harness.echoscu(self.good_port, "GOOD")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))

    def test_health_lists_them_and_ready_fails(self):
        status, body = self.server.api("GET", "/api/health")
        self.assertEqual(status, 200, body)
        self.assertEqual((body.get("status"), body.get("receivers_ok")), ("ok", False), body)
        failed = body.get("receivers_not_listening")
        self.assertEqual([(f.get("ae_title"), f.get("port"), f.get("error")) for f in failed],
                         [("BUSY", self.busy_port, self.expected_reason())], body)
        status, body = self.server.api("GET", "/api/ready")
        self.assertEqual(status, 503, body)
        self.assertIn("receiver BUSY@%d" % self.busy_port, body.get("error", ""), body)
        self.assertIn(self.expected_reason(), body.get("error", ""), body)
        self.assertEqual(len(body.get("problems", [])), 1, body)

    def test_ready_once_every_receiver_listens(self):
        srv = self.start_server()
        status, body = srv.api("GET", "/api/ready")
        self.assertEqual((status, body), (200, {"status": "ready"}))
        status, body = srv.api("GET", "/api/health")
        self.assertEqual((body.get("status"), body.get("receivers_ok")), ("ok", True), body)

    def strict_server(self, server_toml=""):
        receivers = [{"ae_title": "GOOD", "port": harness.free_port(), "bind": "127.0.0.1"},
                     self.receivers[1]]
        return harness.Server(self.mkdtemp("strict"), receivers=receivers, server_toml=server_toml)

    def assert_refused_at_start(self, argv, srv):
        cp = harness.run_tool(argv, timeout=30)
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("1 receiver(s) did not start (strict mode): BUSY@%d: %s"
                      % (self.busy_port, self.expected_reason()), cp.stderr)
        # It stopped before it served or ran anything.
        self.assertEqual(cp.returncode, 2, harness.proc_output(cp))
        self.assertNotRegex(cp.stderr, r"PACS Bridge (ready|running)|indexed \d+ instance")

    def test_details_need_an_accounts_credentials(self):
        receivers = [{"ae_title": "GOOD", "port": harness.free_port(), "bind": "127.0.0.1"},
                     self.receivers[1]]
        srv = self.start_server(receivers=receivers,
                                extra_toml='[auth]\nadmin_password = "pw-Secret1"\n')
        status, body = srv.api("GET", "/api/health", auth=None)
        self.assertEqual((status, body), (200, {"status": "ok", "receivers_ok": False}))
        status, body = srv.api("GET", "/api/ready", auth=None)
        self.assertEqual(status, 503, body)
        self.assertNotIn("BUSY", json.dumps(body))
        self.assertNotIn(str(self.busy_port), json.dumps(body))
        auth = {"Authorization": "Basic " + base64.b64encode(b"admin:pw-Secret1").decode()}
        status, _, payload = srv.raw("GET", "/api/ready", headers=auth)
        self.assertEqual(status, 503)
        self.assertIn("receiver BUSY@%d" % self.busy_port, harness.parse_json(payload)["error"])

    def test_zz_a_port_freed_later_is_taken_up(self):
        self.blocker.close()
        ready = harness.wait_until(lambda: self.server.api("GET", "/api/ready")[0] == 200, timeout=40)
        self.assertTrue(ready, self.server.api("GET", "/api/ready"))
        cp = harness.echoscu(self.busy_port, "BUSY")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertHealthy(self.server)
        self.assertIn("receiver BUSY listening on 127.0.0.1:%d" % self.busy_port,
                      self.server.log_path.read_text("utf-8", "replace"))

    def test_strict_flag_makes_it_fatal(self):
        srv = self.strict_server()
        self.assert_refused_at_start(srv.serve_argv() + ["--strict"], srv)

    def test_strict_config_key_makes_it_fatal(self):
        srv = self.strict_server("strict = true")
        self.assert_refused_at_start(srv.serve_argv(), srv)


if __name__ == "__main__":
    unittest.main()
