"""Every operation over TLS, not only the echo: find and retrieve (C-GET) from an Orthanc that
speaks DICOM TLS only, and a send to DCMTK's storescp +tls.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_tls_operations.py
"""

import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402


class TlsOperationsTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        certs = cls.tmp / "certs"
        certs.mkdir()
        cls.peer_key, cls.peer_cert = harness.make_cert(certs, "peer")
        cls.files = dicomgen.generate(cls.tmp / "data", 6, series_per_study=2,
                                      patient_name="TLS^OPS", patient_id="TLSOPS")
        # Load Orthanc in plain DICOM first, then restart it TLS-only.
        cls.orthanc = harness.Orthanc(cls.tmp / "orthanc", extra={
            "DicomModalities": {"pacsbridge": ["PACSBRIDGE", "127.0.0.1", 4100]}})
        cls._peers.append(cls.orthanc)
        cls.addClassCleanup(cls.orthanc.stop)
        cls.orthanc.start()
        cp = harness.storescu(cls.orthanc.dicom_port, "ORTHANC", [f[0] for f in cls.files])
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))
        cls.orthanc.stop()
        config = json.loads(cls.orthanc.config_path.read_text("utf-8"))
        config.update({"DicomTlsEnabled": True, "DicomTlsCertificate": str(cls.peer_cert),
                       "DicomTlsPrivateKey": str(cls.peer_key),
                       "DicomTlsTrustedCertificates": str(cls.peer_cert),
                       "DicomTlsRemoteCertificateRequired": False})
        cls.orthanc.config_path.write_text(json.dumps(config), "utf-8")
        cls._start_orthanc_without_echo()
        # storescp +tls for the send.
        cls.scp_port = harness.free_port()
        cls.scp_out = cls.tmp / "scp-out"
        cls.scp_out.mkdir()
        log = open(cls.tmp / "storescp-tls.log", "wb")
        cls.scp = subprocess.Popen(["storescp", "+tls", str(cls.peer_key), str(cls.peer_cert), "-ic",
                                    "+B", "-od", str(cls.scp_out), str(cls.scp_port)],
                                   stdout=log, stderr=log, env=harness.tool_env())
        log.close()
        cls.addClassCleanup(lambda: (cls.scp.kill(), cls.scp.wait(10)))
        cls.server = cls.start_class_server()
        tls = {"enabled": True, "ca_file": str(cls.peer_cert)}
        for body in ({"name": "orthanc-tls", "ae_title": "ORTHANC", "port": cls.orthanc.dicom_port,
                      "queryable": True, "retrieve_method": "c-get"},
                     {"name": "scp-tls", "ae_title": "ANY", "port": cls.scp_port, "storable": True}):
            body.update({"host": "127.0.0.1", "tls": tls, "timeout_seconds": 5})
            status, answer = cls.server.api("POST", "/api/nodes", body)
            if status != 201:
                raise AssertionError(answer)

    @classmethod
    def _start_orthanc_without_echo(cls):
        """Orthanc's start() checks readiness with a plain echo, which a TLS-only Orthanc
        refuses: start it and wait for its HTTP API instead."""
        o = cls.orthanc
        log = open(o.log_path, "ab")
        o.proc = subprocess.Popen(["Orthanc", str(o.config_path)], stdin=subprocess.DEVNULL,
                                  stdout=log, stderr=log, cwd=str(o.workdir),
                                  env=harness.tool_env())
        log.close()
        def up():
            try:
                return harness.http_request("GET", o.url + "/system", timeout=2)[0] == 200
            except OSError:
                return False
        ok = harness.wait_until(up, timeout=30, interval=0.2)
        if not ok:
            raise AssertionError("Orthanc (TLS) did not start:\n" + o.log_tail())

    def wait_job(self, job_id):
        for _ in range(300):
            status, job = self.server.api("GET", "/api/jobs/%s" % job_id)
            if job["state"] not in ("queued", "running"):
                return job
            time.sleep(0.1)
        self.fail("job %s did not end" % job_id)

    def test_find_over_tls(self):
        status, body = self.server.api("POST", "/api/nodes/orthanc-tls/find",
                                       {"level": "STUDY", "query": {"PatientID": "TLSOPS"}})
        self.assertEqual(status, 200, body)
        self.assertEqual([r["PatientName"] for r in body["results"]], ["TLS^OPS"], body)

    def test_plain_find_to_the_tls_orthanc_fails_clearly(self):
        status, answer = self.server.api("POST", "/api/nodes", {
            "name": "orthanc-plain", "ae_title": "ORTHANC", "host": "127.0.0.1",
            "port": self.orthanc.dicom_port, "queryable": True, "timeout_seconds": 5})
        self.assertEqual(status, 201, answer)
        status, body = self.server.api("POST", "/api/nodes/orthanc-plain/find",
                                       {"level": "STUDY", "query": {}})
        self.assertGreaterEqual(status, 500, body)
        self.assertIn("TLS", body["error"])

    def test_retrieve_over_tls(self):
        study = self.files[0][2]
        status, job = self.server.api("POST", "/api/retrieve", {"node": "orthanc-tls", "uids": [study]})
        self.assertEqual(status, 202, job)
        job = self.wait_job(job["job_id"])
        self.assertEqual(job["state"], "succeeded", job)
        for path, sop in (f[:2] for f in self.files if f[2] == study):
            status, _, data = self.server.raw("GET", "/api/instances/%s/file" % sop)
            self.assertEqual(status, 200, sop)
            self.assertEqual(dicomgen.dataset_bytes(data), dicomgen.dataset_bytes(path))

    def test_send_over_tls(self):
        files = dicomgen.generate(self.tmp / "to-send", 4, patient_id="TLSSEND")
        cp = harness.storescu(self.server.dicom_port, self.server.dicom_ae, [f[0] for f in files])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        status, job = self.server.api("POST", "/api/send", {"node": "scp-tls", "uids": [files[0][2]]})
        self.assertEqual(status, 202, job)
        job = self.wait_job(job["job_id"])
        self.assertEqual(job["state"], "succeeded", job)
        got = {p.name.split(".", 1)[1]: p for p in self.scp_out.iterdir()}
        for path, sop in (f[:2] for f in files):
            self.assertIn(sop, got)
            self.assertEqual(dicomgen.dataset_bytes(got[sop]), dicomgen.dataset_bytes(path))


if __name__ == "__main__":
    unittest.main()
