"""TLS receivers: a TLS-only receiver beside a plain one, DCMTK's echoscu and storescu with
+tls against it, client certificates required and checked, plain DICOM to the TLS port and TLS
to the plain port refused with a log line that says so, a world-readable key refused at start.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_tls_receiver.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402


class TlsReceiverTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        certs = cls.tmp / "certs"
        certs.mkdir()
        cls.key, cls.cert = harness.make_cert(certs, "receiver")
        cls.client_key, cls.client_cert = harness.make_cert(certs, "client")
        cls.stranger_key, cls.stranger_cert = harness.make_cert(certs, "stranger")
        cls.tls_port, cls.plain_port, cls.mtls_port = (harness.free_port() for _ in range(3))
        tls = {"enabled": True, "cert_file": str(cls.cert), "key_file": str(cls.key)}
        cls.server = cls.start_class_server(receivers=[
            {"ae_title": "PACSBRIDGE", "port": cls.plain_port, "bind": "127.0.0.1"},
            {"ae_title": "SECURE", "port": cls.tls_port, "bind": "127.0.0.1", "tls": tls},
            {"ae_title": "MUTUAL", "port": cls.mtls_port, "bind": "127.0.0.1",
             "tls": dict(tls, ca_file=str(cls.client_cert), require_client_cert=True)}])

    def tls_args(self, key=None, cert=None):
        args = ["+tls", str(key or self.client_key), str(cert or self.client_cert),
                "+cf", str(self.cert)]
        return args

    def echo(self, port, ae, extra):
        return harness.run_tool(["echoscu", "-aec", ae, "-to", "5", "-ta", "5"] + extra +
                                ["127.0.0.1", str(port)], timeout=30)

    def test_echo_and_store_over_tls(self):
        cp = self.echo(self.tls_port, "SECURE", self.tls_args())
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        files = dicomgen.generate(self.tmp / "tls-data", 3, patient_id="TLS1")
        cp = harness.storescu(self.tls_port, "SECURE", [f[0] for f in files],
                              extra=self.tls_args())
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        for path, sop in (f[:2] for f in files):
            status, _, data = self.server.raw("GET", "/api/instances/%s/file" % sop)
            self.assertEqual(status, 200, sop)
            self.assertEqual(dicomgen.dataset_bytes(data), dicomgen.dataset_bytes(path))

    def test_tls_receiver_made_at_run_time_with_a_whitelist_and_anonymization(self):
        port = harness.free_receiver_port()
        status, body = self.server.api("POST", "/api/receivers", {
            "ae_title": "TLSWL", "port": port, "bind": "127.0.0.1",
            "tls": {"enabled": True, "cert_file": str(self.cert), "key_file": str(self.key)},
            "whitelist_enabled": True, "whitelist": "TRUSTED@127.0.0.1",
            "routing": {"project": "(0010,0020):^(TLSWL\\d)"}})
        self.assertEqual(status, 201, body)
        self.assertEqual(body["status"], "listening")
        self.assertTrue(body["anonymize"])
        cp = harness.run_tool(["echoscu", "-aet", "OTHER", "-aec", "TLSWL", "-to", "5", "-ta", "5"]
                              + self.tls_args() + ["127.0.0.1", str(port)], timeout=30)
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("Calling AE Title Not Recognized", harness.proc_output(cp))
        files = dicomgen.generate(self.tmp / "tlswl-data", 2, patient_id="TLSWL1",
                                  patient_name="Tls^Whitelisted")
        cp = harness.storescu(port, "TLSWL", [f[0] for f in files], calling_ae="TRUSTED",
                              extra=self.tls_args())
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertTrue(harness.wait_until(lambda: self.server.api(
            "GET", "/api/projects/TLSWL1/subjects")[0] == 200, timeout=10))
        # Anonymized: the original SOP Instance UIDs are not in the archive.
        for sop in (f[1] for f in files):
            self.assertEqual(self.server.raw("GET", "/api/instances/%s/file" % sop)[0], 404)
        self.assertEqual(harness.find_bytes([self.server.data_dir], [b"Tls^Whitelisted"]), {})

    def test_plain_and_tls_receivers_side_by_side(self):
        cp = self.echo(self.plain_port, "PACSBRIDGE", [])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        status, body = self.server.api("GET", "/api/receivers")
        self.assertEqual(status, 200)
        by_ae = {r["ae_title"]: r for r in body}
        self.assertTrue(by_ae["SECURE"]["tls"]["enabled"])
        self.assertFalse(by_ae["PACSBRIDGE"]["tls"]["enabled"])

    def test_plain_dicom_to_the_tls_port_is_refused_and_said(self):
        cp = self.echo(self.tls_port, "SECURE", [])
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertTrue(harness.wait_until(
            lambda: "the peer does not use TLS" in self.server.log_tail(200), timeout=5),
            self.server.log_tail(20))

    def test_tls_to_the_plain_port_is_refused_and_said(self):
        cp = self.echo(self.plain_port, "PACSBRIDGE", self.tls_args())
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertTrue(harness.wait_until(
            lambda: "the peer uses TLS, this receiver does not" in self.server.log_tail(200),
            timeout=5), self.server.log_tail(20))

    def test_client_certificate_required_and_checked(self):
        cp = self.echo(self.mtls_port, "MUTUAL", self.tls_args())
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        cp = self.echo(self.mtls_port, "MUTUAL", ["+tla", "+cf", str(self.cert)])
        self.assertNotEqual(cp.returncode, 0, "anonymous TLS accepted: " + harness.proc_output(cp))
        cp = self.echo(self.mtls_port, "MUTUAL", self.tls_args(self.stranger_key, self.stranger_cert))
        self.assertNotEqual(cp.returncode, 0, "untrusted client accepted: " + harness.proc_output(cp))

    def test_our_client_certificate_towards_a_receiver_that_requires_one(self):
        base = {"ae_title": "MUTUAL", "host": "127.0.0.1", "port": self.mtls_port,
                "timeout_seconds": 5}
        tls = {"enabled": True, "ca_file": str(self.cert)}
        cases = (("with-client-cert", dict(tls, cert_file=str(self.client_cert),
                                            key_file=str(self.client_key)), True),
                 ("without-client-cert", tls, False))
        for name, node_tls, ok in cases:
            status, answer = self.server.api("POST", "/api/nodes", dict(base, name=name, tls=node_tls))
            self.assertEqual(status, 201, answer)
            status, answer = self.server.api("POST", "/api/nodes/%s/echo" % name)
            self.assertEqual(status, 200, answer)
            self.assertIs(answer["ok"], ok, (name, answer))
        # A client key others can read is refused when the node is saved.
        loose = self.mkdtemp("loose-client")
        key, cert = harness.make_cert(loose, "loose-client")
        key.chmod(0o644)
        status, answer = self.server.api("POST", "/api/nodes", dict(
            base, name="loose-key", tls=dict(tls, cert_file=str(cert), key_file=str(key))))
        self.assertEqual(status, 400, answer)
        self.assertEqual(answer["field"], "tls.key_file")
        self.assertIn("chmod 600", answer["error"])

    def test_world_readable_key_refuses_to_start(self):
        work = self.mkdtemp("loose-key")
        key, cert = harness.make_cert(work, "loose")
        key.chmod(0o644)
        srv = harness.Server(work / "srv", receivers=[{
            "ae_title": "LOOSE", "port": harness.free_port(), "bind": "127.0.0.1",
            "tls": {"enabled": True, "cert_file": str(cert), "key_file": str(key)}}])
        cp = harness.run_tool(srv.serve_argv(), timeout=30)
        self.assertNotEqual(cp.returncode, 0)
        out = harness.proc_output(cp)
        self.assertIn("tls.key_file", out)
        self.assertIn("readable by other users", out)
        self.assertIn("chmod 600", out)


if __name__ == "__main__":
    unittest.main()
