"""A node's preferred transfer syntax applies to what it sends us: our receiver chooses it first
among what the sender proposes, and only for that node's AE title; a C-MOVE from Orthanc then
arrives in it (Orthanc converts).

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_preferred_syntax.py
"""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"


class PreferredSyntaxTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        port = harness.free_port()
        cls.orthanc = harness.Orthanc(cls.tmp / "orthanc", extra={
            "DicomModalities": {"pacsbridge": ["PACSBRIDGE", "127.0.0.1", port]}})
        cls._peers.append(cls.orthanc)
        cls.addClassCleanup(cls.orthanc.stop)
        cls.orthanc.start()
        cls.server = cls.start_class_server(
            receivers=[{"ae_title": "PACSBRIDGE", "port": port, "bind": "127.0.0.1"}],
            nodes=[{"name": "modality", "ae_title": "MODALITY", "host": "127.0.0.1", "port": 4242,
                    "preferred_transfer_syntax": "ImplicitVRLittleEndian"},
                   {"name": "pacs", "ae_title": "ORTHANC", "host": "127.0.0.1",
                    "port": cls.orthanc.dicom_port, "queryable": True, "retrieve_method": "c-move",
                    "preferred_transfer_syntax": "1.2.840.10008.1.2"}])

    def stored_syntax(self, sop_uid):
        status, body = self.server.api("GET", "/api/instances/%s" % sop_uid)
        self.assertEqual(status, 200, body)
        return body["TransferSyntaxUID"]

    def send(self, calling_ae, name):
        # Explicit VR files; storescu proposes Explicit LE, Big Endian and Implicit LE in one
        # context and converts to whatever we accept.
        files = dicomgen.generate(self.tmp / name, 2, patient_name=name.upper() + "^TEST",
                                  patient_id=name)
        cp = harness.storescu(self.server.dicom_port, self.server.dicom_ae,
                              [f[0] for f in files], calling_ae=calling_ae)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        return files

    def test_the_nodes_preferred_syntax_is_chosen_for_its_data(self):
        files = self.send("MODALITY", "node")
        for f in files:
            self.assertEqual(self.stored_syntax(f[1]), IMPLICIT)

    def test_other_senders_keep_our_default_order(self):
        files = self.send("SOMEONE", "other")
        for f in files:
            self.assertEqual(self.stored_syntax(f[1]), EXPLICIT)
        # Unchanged: nothing was converted on the way.
        status, _, raw = self.server.raw("GET", "/api/instances/%s/file" % files[0][1])
        self.assertEqual(status, 200)
        self.assertEqual(dicomgen.dataset_bytes(raw), dicomgen.dataset_bytes(files[0][0]))

    def test_c_move_from_a_pacs_arrives_in_its_preferred_syntax(self):
        files = dicomgen.generate(self.tmp / "pacs", 3, patient_name="PACS^TEST", patient_id="P1")
        cp = harness.storescu(self.orthanc.dicom_port, "ORTHANC", [f[0] for f in files])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        status, job = self.server.api("POST", "/api/retrieve",
                                      {"node": "pacs", "uids": [files[0][2]]})
        self.assertEqual(status, 202, job)
        job_id = job["job_id"]
        for _ in range(300):
            status, job = self.server.api("GET", "/api/jobs/%s" % job_id)
            if job["state"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        self.assertEqual(job["state"], "succeeded", job)
        self.assertEqual(job["method_used"], "c-move", job)
        for f in files:  # stored Explicit VR in Orthanc, sent to us as we prefer
            self.assertEqual(self.stored_syntax(f[1]), IMPLICIT)


if __name__ == "__main__":
    unittest.main()
