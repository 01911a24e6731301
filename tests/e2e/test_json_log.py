"""[server] log_format = "json" (issue 17): every line the server writes is one JSON object a log
shipper can parse, DCMTK's own messages included, and bytes a peer sent that are not UTF-8 do not
break a line.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_json_log.py

One server at log_level "trace" (so DCMTK's own debug messages flow through its "dcmtk" logger)
with log_format "json". The traffic: a C-ECHO, a storescu association of 3 instances, an
association whose calling AE title holds the byte 0xE9 (Latin-1 é, not UTF-8) refused for its
called AE title, SIGTERM; then a second server on the same configuration, which must refuse to
start and say so as a JSON line too. A first start without an admin password keeps the random
one out of the JSON log.
"""

import json
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

AE = "PBJSONLOG"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
LEVELS = {"trace", "debug", "info", "warning", "error", "critical"}


class JsonLogTests(harness.E2ETestCase):

    def parse_lines(self, path):
        """Every line of the log as a dict; fails naming the first line that is not one JSON
        object with exactly the documented fields."""
        raw = path.read_bytes()
        self.assertTrue(raw.endswith(b"\n"), raw[-200:])
        out = []
        for n, line in enumerate(raw.split(b"\n")[:-1], 1):
            text = line.decode("utf-8")  # strict: a byte that is not UTF-8 fails here
            try:
                obj = json.loads(text)
            except ValueError as e:
                self.fail("log line %d is not JSON (%s): %r" % (n, e, text[:300]))
            self.assertEqual(list(obj), ["time", "level", "logger", "thread", "message"], text)
            self.assertRegex(obj["time"], TIME)
            self.assertIn(obj["level"], LEVELS, text)
            self.assertIn(obj["logger"], {"pacsbridge", "dcmtk"}, text)
            self.assertIsInstance(obj["thread"], int)
            out.append(obj)
        return out

    def test_every_line_is_json(self):
        port = harness.free_port()
        server = self.start_server(
            receivers=[{"ae_title": AE, "port": port, "bind": "127.0.0.1"}],
            server_toml='log_format = "json"\nlog_level = "trace"')
        cp = harness.echoscu(port, AE)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        files = dicomgen.generate(str(self.mkdtemp("set")), 3, size=2000, patient_id="JSONLOG")
        cp = harness.storescu(port, AE, [f[0] for f in files])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        # Calling AE "\xe9VIL" (0xE9 as a raw byte), called AE unknown: refused, and logged
        # with the calling AE title.
        cp = harness.echoscu(port, "NOSUCHAE", calling_ae="\udce9VIL")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        harness.wait_until(lambda: b"NOSUCHAE" in server.log_path.read_bytes(), timeout=10)
        server.stop_and_check()

        lines = self.parse_lines(server.log_path)
        messages = [(o["logger"], o["level"], o["message"]) for o in lines]
        # Our own lines: the receiver listening, the association's summary, the refusal with
        # the byte that is not UTF-8 written as U+FFFD.
        self.assertTrue(any(lg == "pacsbridge" and lvl == "info" and AE in m and "3 stored" in m
                            for lg, lvl, m in messages), messages[-40:])
        refused = [m for lg, lvl, m in messages
                   if lg == "pacsbridge" and lvl == "warning" and "NOSUCHAE" in m]
        self.assertEqual(len(refused), 1, messages[-40:])
        self.assertIn("\ufffdVIL@", refused[0])
        # DCMTK's own messages, through its logger, at trace (its debug level).
        self.assertTrue(any(lg == "dcmtk" and lvl == "trace" for lg, lvl, _ in messages),
                        "no line from DCMTK's logger")
        # Lines come in time order within one thread's output.
        self.assertLessEqual(lines[0]["time"], lines[-1]["time"])

        # A second server on the same configuration refuses to start: that fatal error is a
        # JSON line too, naming the holder of the data directory.
        first = self.start_server(
            receivers=[{"ae_title": AE, "port": harness.free_port(), "bind": "127.0.0.1"}],
            server_toml='log_format = "json"')
        self.assertEqual(self.parse_lines(first.log_path)[-1]["logger"], "pacsbridge")
        second = subprocess.run([str(harness.require_binary()), "serve", "--config",
                                 str(first.config_path)], capture_output=True,
                                timeout=30, env=harness.server_env())
        self.assertEqual(second.returncode, 2, second.stderr[-500:])
        last = json.loads(second.stderr.decode("utf-8").strip().splitlines()[-1])
        self.assertEqual(last["level"], "critical")
        self.assertIn(str(first.pid), last["message"])

    def test_the_initial_password_stays_out_of_a_json_log(self):
        """A first start without [auth] admin_password makes a random one: in text the console
        shows it once; a JSON log goes to a shipper, so it only says where the password is."""
        server = self.start_server(admin_password=None, server_toml='log_format = "json"')
        kept = server.data_dir / "initial-admin-password"
        password = kept.read_text("utf-8").strip()
        self.assertEqual(len(password), 20)
        status, _ = server.api("GET", "/api/nodes", auth=("admin", password))
        self.assertEqual(status, 200)
        lines = self.parse_lines(server.log_path)
        self.assertNotIn(password.encode(), server.log_path.read_bytes())
        created = [o for o in lines if 'created the account "admin"' in o["message"]]
        self.assertEqual(len(created), 1, lines)
        self.assertEqual(created[0]["level"], "warning")
        self.assertIn(str(kept), created[0]["message"])

    def test_the_initial_password_stays_out_of_the_journal(self):
        """Under systemd stderr is the journal (JOURNAL_STREAM names it): a text log then does
        not show the random password either."""
        old = os.environ.get("JOURNAL_STREAM")
        os.environ["JOURNAL_STREAM"] = "8:12345"  # what systemd sets: device:inode of stderr
        try:
            server = self.start_server(admin_password=None)
        finally:
            if old is None:
                del os.environ["JOURNAL_STREAM"]
            else:
                os.environ["JOURNAL_STREAM"] = old
        kept = server.data_dir / "initial-admin-password"
        password = kept.read_text("utf-8").strip()
        log = server.log_path.read_text("utf-8")
        self.assertNotIn(password, log)
        self.assertRegex(log, r'\[warning\] created the account "admin" with a random password, kept in '
                         + re.escape(str(kept)))


if __name__ == "__main__":
    unittest.main()
