"""Authentication and exposure: HTTP stays on loopback until [auth] is configured; with an admin
password every call but /api/health (and the OpenAPI document) needs HTTP basic auth."""
import base64
import os
import shutil
import subprocess
import tempfile
import sys
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="pb-e2e-auth-"))
        cls.server = harness.Server(cls.tmp / "srv", extra_toml='[auth]\nadmin_password = "s3cret-Pw"\n')
        cls.server.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.server.stop_and_check()
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_health_needs_no_credentials(self):
        status, body = self.server.api("GET", "/api/health")
        self.assertEqual(status, 200)
        # Without credentials: whether, not which.
        self.assertEqual(body, {"status": "ok", "receivers_ok": True})
        status, _, payload = self.server.raw("GET", "/api/health", headers=basic("admin", "s3cret-Pw"))
        self.assertEqual(harness.parse_json(payload).get("receivers_not_listening"), [], payload)
        status, body = self.server.api("GET", "/api/ready")
        self.assertEqual((status, body), (200, {"status": "ready"}))

    def test_api_refuses_missing_and_wrong_credentials(self):
        status, headers, payload = self.server.raw("GET", "/api/nodes")
        self.assertEqual(status, 401, payload)
        self.assertIn("Basic", headers.get("WWW-Authenticate", ""))
        self.assertIn("authentication required", harness.parse_json(payload).get("error", ""))
        status, _, payload = self.server.raw("GET", "/api/nodes", headers=basic("admin", "wrong"))
        self.assertEqual(status, 401)
        self.assertIn("the password was refused", harness.parse_json(payload).get("error", ""))
        status, _, _ = self.server.raw("GET", "/api/nodes", headers=basic("root", "s3cret-Pw"))
        self.assertEqual(status, 401)

    def test_api_accepts_the_admin_password(self):
        status, _, payload = self.server.raw("GET", "/api/nodes", headers=basic("admin", "s3cret-Pw"))
        self.assertEqual(status, 200, payload)
        self.assertEqual(harness.parse_json(payload), [])

    def test_cli_uses_the_password(self):
        cp = self.server.cli("nodes", "list", "--json")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("authentication required", cp.stderr)
        cp = self.server.cli("nodes", "list", "--json", "--password", "not-it")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("the password was refused", cp.stderr)
        cp = self.server.cli("nodes", "list", "--json", "--password", "s3cret-Pw")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))

    def test_openapi_document_is_served(self):
        status, headers, payload = self.server.raw("GET", "/api/openapi.yaml")
        self.assertEqual(status, 200)
        self.assertTrue(payload.startswith(b"openapi: 3"), payload[:40])
        self.assertIn(b"/api/nodes/{name}/echo", payload)


class ExposureTest(unittest.TestCase):
    def test_refuses_non_loopback_http_without_password(self):
        tmp = Path(tempfile.mkdtemp(prefix="pb-e2e-exposure-"))
        try:
            cfg = tmp / "pb.toml"
            cfg.write_text('[server]\ndata_dir = "%s"\nhttp_listen = "0.0.0.0:%d"\n'
                           '[[receivers]]\nae_title = "X"\nport = %d\nbind = "127.0.0.1"\n'
                           % (tmp / "data", harness.free_port(), harness.free_port()))
            cp = subprocess.run([str(harness.require_binary()), "serve", "--config", str(cfg)],
                                capture_output=True, text=True, timeout=20, env=harness.server_env())
            self.assertNotEqual(cp.returncode, 0)
            self.assertIn("admin_password", cp.stderr)
            self.assertIn("http_listen", cp.stderr)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
