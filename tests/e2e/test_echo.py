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
        cls.orthanc = cls.start_class_orthanc()
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
