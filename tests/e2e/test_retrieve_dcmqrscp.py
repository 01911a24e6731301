"""Retrieve from a second kind of PACS, DCMTK's dcmqrscp: C-GET and C-MOVE byte-identical, and
the 0xA801 "move destination unknown" answer turned into what to register on the PACS.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_retrieve_dcmqrscp.py
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402


class DcmqrscpRetrieveTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        known, unknown = harness.free_port(), harness.free_port()
        # dcmqrscp knows PACSBRIDGE as a move destination, not STRANGER (also one of ours).
        cls.qr = harness.DcmQRSCP(cls.tmp / "qr", destinations={"PACSBRIDGE": known})
        cls._peers.append(cls.qr)
        cls.addClassCleanup(cls.qr.stop)
        cls.qr.start()
        cls.files = dicomgen.generate(cls.tmp / "data", 12, studies=3, series_per_study=2,
                                      patient_name="QR^TEST", patient_id="QR1")
        cp = harness.storescu(cls.qr.dicom_port, "QRSCP", [f[0] for f in cls.files])
        if cp.returncode != 0:
            raise AssertionError("loading dcmqrscp failed:\n" + harness.proc_output(cp))
        node = {"ae_title": "QRSCP", "host": "127.0.0.1", "port": cls.qr.dicom_port,
                "queryable": True}
        cls.server = cls.start_class_server(
            receivers=[{"ae_title": "PACSBRIDGE", "port": known, "bind": "127.0.0.1"},
                       {"ae_title": "STRANGER", "port": unknown, "bind": "127.0.0.1"}],
            nodes=[dict(node, name="qr-get", retrieve_method="c-get"),
                   dict(node, name="qr-move", retrieve_method="c-move"),
                   dict(node, name="qr-stranger", retrieve_method="c-move",
                        move_destination="STRANGER")])
        cls.unknown_port = unknown

    def retrieve(self, node, study):
        status, job = self.server.api("POST", "/api/retrieve", {"node": node, "uids": [study]})
        self.assertEqual(status, 202, job)
        job_id = job["job_id"]
        for _ in range(600):
            status, job = self.server.api("GET", "/api/jobs/%s" % job_id)
            if job["state"] not in ("queued", "running"):
                return job
            time.sleep(0.1)
        self.fail("job %s did not end: %s" % (job_id, job))

    def assert_all_here_unchanged(self, study):
        expected = [f for f in self.files if f[2] == study]
        self.assertEqual(len(expected), 4)
        for path, sop in (f[:2] for f in expected):
            status, _, data = self.server.raw("GET", "/api/instances/%s/file" % sop)
            self.assertEqual(status, 200, sop)
            self.assertEqual(dicomgen.dataset_bytes(data), dicomgen.dataset_bytes(path), sop)

    def test_c_get(self):
        study = self.studies()[0]
        job = self.retrieve("qr-get", study)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["method_used"], "c-get", job)
        self.assertEqual(job["progress"]["total"], 4, job)
        self.assertEqual(job["missing"], [], job)
        self.assert_all_here_unchanged(study)

    def studies(self):
        return sorted({f[2] for f in self.files}, key=[f[2] for f in self.files].index)

    def test_c_move(self):
        study = self.studies()[1]
        job = self.retrieve("qr-move", study)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["method_used"], "c-move", job)
        self.assertEqual(job["progress"]["completed"], 4, job)
        self.assert_all_here_unchanged(study)

    def test_move_destination_unknown_says_what_to_register(self):
        job = self.retrieve("qr-stranger", self.studies()[2])
        self.assertEqual(job["state"], "failed", job)
        error = job["error"]
        print("\n[job error: %s]" % error, file=sys.stderr)
        self.assertIn("0xA801", error)
        self.assertIn("STRANGER", error)
        self.assertIn("127.0.0.1", error)
        self.assertIn("port %d" % self.unknown_port, error)


if __name__ == "__main__":
    unittest.main()
