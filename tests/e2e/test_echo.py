"""C-ECHO to remote nodes through the REST API and the CLI, against Orthanc and broken peers.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_echo.py
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class EchoTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # PBQUERY may query; our default calling AE title (PACSBRIDGE) is not listed, so Orthanc
        # answers its echo (DicomAlwaysAllowEcho) but aborts its C-FIND.
        cls.orthanc = cls.start_class_orthanc(extra={
            "DicomModalities": {"pbquery": ["PBQUERY", "127.0.0.1", 9]}})
        cls.server = cls.start_class_server()

    def add_node(self, name, port, host="127.0.0.1", ae_title="ORTHANC", **extra):
        body = {"name": name, "type": "dimse", "ae_title": ae_title, "host": host,
                "port": port}
        body.update(extra)
        status, answer = self.server.api("POST", "/api/nodes", body)
        self.assertEqual(status, 201, "POST /api/nodes %r -> %r" % (body, answer))
        return answer

    def echo(self, name, timeout=60):
        t0 = time.monotonic()
        status, body = self.server.api("POST", "/api/nodes/%s/echo" % name, timeout=timeout)
        elapsed = time.monotonic() - t0
        self.assertEqual(status, 200, "POST /api/nodes/%s/echo -> %r" % (name, body))
        self.assertIsInstance(body, dict, repr(body))
        self.assertIsInstance(body.get("ok"), bool, repr(body))
        self.assertIsInstance(body.get("message"), str, repr(body))
        self.assertIn("latency_ms", body, repr(body))
        self.assertIsInstance(body["latency_ms"], (int, float), repr(body))
        self.assertNotIsInstance(body["latency_ms"], bool, repr(body))
        return body, elapsed

    def assertEchoFailed(self, body, reason_pattern):
        self.assertIs(body["ok"], False, repr(body))
        self.assertTrue(body["message"].startswith("Connection failed:"), repr(body))
        self.assertMatchesCI(reason_pattern, body["message"])

    # ------------------------------------------------------------------ REST

    def test_echo_to_orthanc_succeeds(self):
        self.add_node("orthanc", self.orthanc.dicom_port)
        body, _ = self.echo("orthanc")
        self.assertIs(body["ok"], True, repr(body))
        self.assertEqual(body["message"], "Connection established")
        self.assertGreaterEqual(body["latency_ms"], 0)
        self.assertLess(body["latency_ms"], 10000)

    def checks(self, body):
        return [(c.get("name"), c.get("outcome")) for c in body.get("checks", [])]

    def test_queryable_node_whose_pacs_refuses_our_queries_is_not_green(self):
        self.add_node("orthanc-noquery", self.orthanc.dicom_port, queryable=True)
        body, _ = self.echo("orthanc-noquery")
        self.assertEqual(self.checks(body), [("echo", "ok"), ("find", "failed")], repr(body))
        self.assertIs(body["ok"], False, repr(body))
        self.assertTrue(body["message"].startswith(
            "Connection failed: C-ECHO works, but queries are refused for calling AE title "
            "'PACSBRIDGE'"), repr(body))
        self.assertIn("aborted the association", body["message"])
        # The plain echo is still there, and green.
        status, plain = self.server.api("POST", "/api/nodes/orthanc-noquery/echo", {"echo_only": True})
        self.assertEqual(status, 200, plain)
        self.assertEqual((plain["ok"], plain["message"], self.checks(plain)),
                         (True, "Connection established", [("echo", "ok")]), repr(plain))
        # The CLI shows each check the same way, and exits non-zero.
        cp = self.server.cli("nodes", "echo", "orthanc-noquery")
        self.assertEqual(cp.returncode, 1, harness.proc_output(cp))
        self.assertRegex(cp.stdout, r"echo\s+ok\s+C-ECHO answered in \d+ ms")
        self.assertRegex(cp.stdout, r"find\s+FAILED\s+queries are refused for calling AE title 'PACSBRIDGE'")
        self.assertIn("Connection failed: C-ECHO works, but queries are refused", cp.stderr)
        cp = self.server.cli("nodes", "echo", "orthanc-noquery", "--echo-only")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertNotIn("find", cp.stdout)

    def test_queryable_node_that_may_query_passes_both_checks(self):
        self.add_node("orthanc-query", self.orthanc.dicom_port, queryable=True,
                      calling_ae_title="PBQUERY")
        body, _ = self.echo("orthanc-query")
        self.assertEqual((body["ok"], body["message"]), (True, "Connection established"), repr(body))
        self.assertEqual(self.checks(body), [("echo", "ok"), ("find", "ok")], repr(body))
        self.assertIn("'PBQUERY' may query", body["checks"][1]["message"])
        cp = self.server.cli("nodes", "echo", "orthanc-query")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertRegex(cp.stdout, r"find\s+ok\s+C-FIND answered")
        self.assertIn("Connection established", cp.stdout)

    def test_a_node_that_is_not_queryable_skips_the_query_check(self):
        self.add_node("orthanc-store-only", self.orthanc.dicom_port)
        body, _ = self.echo("orthanc-store-only")
        self.assertEqual(self.checks(body), [("echo", "ok"), ("find", "skipped")], repr(body))
        self.assertIs(body["ok"], True)

    def test_echo_body_is_validated(self):
        self.add_node("orthanc-body", self.orthanc.dicom_port)
        status, body = self.server.api("POST", "/api/nodes/orthanc-body/echo", {"echo_only": "yes"})
        self.assertJsonError(status, body, "echo_only")
        status, body = self.server.api("POST", "/api/nodes/orthanc-body/echo", {"bogus": 1})
        self.assertJsonError(status, body, "bogus")

    def test_echo_to_closed_port_reports_connection_refused(self):
        self.add_node("closed-port", harness.free_port())
        body, _ = self.echo("closed-port")
        self.assertEchoFailed(body, r"connection refused")

    def test_echo_to_unknown_host_reports_host_not_found(self):
        self.add_node("no-such-host", 104, host="no-such-host.invalid")
        body, _ = self.echo("no-such-host")
        self.assertEchoFailed(body, r"host not found")

    def test_echo_with_wrong_called_ae_reports_rejection(self):
        self.add_node("orthanc-wrong-ae", self.orthanc.dicom_port, ae_title="WRONGAE")
        body, _ = self.echo("orthanc-wrong-ae")
        self.assertEchoFailed(body, r"called AE title not recognized")

    def test_echo_to_silent_peer_times_out(self):
        listener = harness.SilentListener()
        self.addCleanup(listener.close)
        self.add_node("silent", listener.port, timeout_seconds=2)
        body, elapsed = self.echo("silent", timeout=30)
        self.assertEchoFailed(body, r"timed out")
        self.assertLess(elapsed, 10.0, "echo to a silent peer took %.1fs" % elapsed)
        self.assertTrue(listener.conns, "the server never connected to the silent peer")

    def test_echo_to_unknown_node_is_404(self):
        status, body = self.server.api("POST", "/api/nodes/does-not-exist/echo")
        self.assertEqual(status, 404, repr(body))

    # ------------------------------------------------------------------ CLI

    def test_cli_echo_succeeds(self):
        cp = harness.run_tool([harness.require_binary(self), "echo", "--aet", "ORTHANC",
                               "--host", "127.0.0.1", "--port", self.orthanc.dicom_port],
                              timeout=60)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("Connection established", cp.stdout, harness.proc_output(cp))

    def test_cli_echo_to_closed_port_fails(self):
        cp = harness.run_tool([harness.require_binary(self), "echo", "--aet", "ORTHANC",
                               "--host", "127.0.0.1", "--port", harness.free_port()],
                              timeout=60)
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("Connection failed", cp.stderr, harness.proc_output(cp))
        self.assertNotIn("Connection established", cp.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
