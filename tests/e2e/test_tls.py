"""Test connection over TLS against DCMTK's storescp in TLS mode (BCP 195 profile), with a
self-signed certificate made by openssl for the test.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_tls.py
"""

import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class TlsEchoTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        certs = cls.tmp / "certs"
        certs.mkdir()
        cls.key, cls.cert = harness.make_cert(certs, "peer")
        _, cls.other_cert = harness.make_cert(certs, "stranger")
        cls.port = harness.free_port()
        out = open(cls.tmp / "storescp-tls.log", "wb")
        cls.peer = subprocess.Popen(["storescp", "+tls", str(cls.key), str(cls.cert), "-ic",
                                     "-od", str(cls.tmp), str(cls.port)],
                                    stdout=out, stderr=out, env=harness.tool_env())
        out.close()
        cls.addClassCleanup(lambda: (cls.peer.kill(), cls.peer.wait(10)))
        if not harness.wait_until(lambda: _listening(cls.port), timeout=10):
            raise AssertionError("storescp +tls did not listen on %d" % cls.port)
        # A peer whose certificate names another host.
        ekey, cls.elsewhere_cert = harness.make_cert(certs, "elsewhere", san="DNS:pacs.elsewhere.example")
        cls.elsewhere_port = harness.free_port()
        out = open(cls.tmp / "storescp-elsewhere.log", "wb")
        cls.elsewhere = subprocess.Popen(["storescp", "+tls", str(ekey), str(cls.elsewhere_cert), "-ic",
                                          "-od", str(cls.tmp), str(cls.elsewhere_port)],
                                         stdout=out, stderr=out, env=harness.tool_env())
        out.close()
        cls.addClassCleanup(lambda: (cls.elsewhere.kill(), cls.elsewhere.wait(10)))
        if not harness.wait_until(lambda: _listening(cls.elsewhere_port), timeout=10):
            raise AssertionError("storescp +tls did not listen on %d" % cls.elsewhere_port)
        cls.server = harness.Server(cls.tmp / "srv")
        cls._peers.append(cls.server)
        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()

    def node(self, name, _port=None, **tls):
        body = {"name": name, "ae_title": "ANY", "host": "127.0.0.1", "port": _port or self.port,
                "timeout_seconds": 5}
        if tls:
            body["tls"] = tls
        status, answer = self.server.api("POST", "/api/nodes", body)
        self.assertEqual(status, 201, answer)
        status, answer = self.server.api("POST", "/api/nodes/%s/echo" % name)
        self.assertEqual(status, 200, answer)
        return answer

    def test_echo_over_tls_with_the_peer_ca(self):
        answer = self.node("tls-ok", enabled=True, ca_file=str(self.cert))
        self.assertEqual(answer["message"], "Connection established", answer)
        self.assertIs(answer["ok"], True)

    def test_untrusted_certificate_fails_the_handshake(self):
        answer = self.node("tls-untrusted", enabled=True, ca_file=str(self.other_cert))
        self.assertIs(answer["ok"], False)
        self.assertIn("TLS handshake failed", answer["message"])
        self.assertIn("certificate not trusted (issuer /CN=peer", answer["message"])

    def test_missing_ca_file_is_named(self):
        answer = self.node("tls-missing", enabled=True, ca_file=str(self.tmp / "nope.pem"))
        self.assertIs(answer["ok"], False)
        self.assertIn("tls.ca_file", answer["message"])

    def test_plain_dicom_to_a_tls_port_suggests_tls(self):
        answer = self.node("plain-to-tls")
        self.assertIs(answer["ok"], False)
        self.assertIn("TLS", answer["message"])

    def test_host_name_must_match_the_certificate(self):
        answer = self.node("tls-wrong-name", enabled=True, ca_file=str(self.elsewhere_cert),
                           _port=self.elsewhere_port)
        self.assertIs(answer["ok"], False, answer)
        self.assertIn("host name does not match the certificate", answer["message"])
        self.assertIn("pacs.elsewhere.example", answer["message"])
        answer = self.node("tls-no-name-check", enabled=True, ca_file=str(self.elsewhere_cert),
                           verify_hostname=False, _port=self.elsewhere_port)
        self.assertEqual(answer["message"], "Connection established", answer)

    def test_expired_certificate_is_named(self):
        work = self.tmp / "expired"
        work.mkdir(exist_ok=True)
        key, csr, cert = work / "exp.key", work / "exp.csr", work / "exp.pem"
        for argv in (["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                      "-out", str(csr), "-subj", "/CN=expired"],
                     ["openssl", "x509", "-req", "-in", str(csr), "-signkey", str(key),
                      "-out", str(cert), "-days", "-1"]):
            subprocess.run(argv, check=True, capture_output=True, timeout=60)
        port = harness.free_port()
        out = open(work / "storescp.log", "wb")
        peer = subprocess.Popen(["storescp", "+tls", str(key), str(cert), "-ic", "-od", str(work),
                                 str(port)], stdout=out, stderr=out, env=harness.tool_env())
        out.close()
        self.addCleanup(lambda: (peer.kill(), peer.wait(10)))
        self.assertTrue(harness.wait_until(lambda: _listening(port), timeout=10))
        answer = self.node("tls-expired", enabled=True, ca_file=str(cert), _port=port)
        self.assertIs(answer["ok"], False, answer)
        self.assertIn("certificate expired", answer["message"])

    def test_tls_to_a_plain_port_says_the_peer_does_not_speak_tls(self):
        answer = self.node("tls-to-plain", enabled=True, ca_file=str(self.cert),
                           _port=self.server.dicom_port)
        self.assertIs(answer["ok"], False, answer)
        self.assertIn("does not speak TLS on this port", answer["message"])

    def test_cli_echo_over_tls(self):
        cp = harness.run_tool([str(harness.require_binary()), "echo", "--aet", "ANY", "--host",
                               "127.0.0.1", "--port", str(self.port), "--tls", "--tls-ca-file",
                               str(self.cert)])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("Connection established", cp.stdout)


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


if __name__ == "__main__":
    unittest.main()
