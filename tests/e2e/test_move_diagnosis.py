"""A C-MOVE that brings nothing is explained from what our receivers saw, against Orthanc:

  - Orthanc knows us as "pacsbridge" (its AE title lookup ignores case by default, so it takes
    our move destination PACSBRIDGE for that entry and calls us "pacsbridge"): the job names
    the AE title the PACS used, ours, and that case matters;
  - Orthanc knows PBPORT at a port where nothing listens: no connection reaches our receiver,
    and the job says the PACS did not connect to our address and port;
  - Orthanc does not know the destination at all: it answers as for the wrong port (0xC000,
    nothing attempted), so the message gives both causes and what to register.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_move_diagnosis.py
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

class MoveDiagnosisTests(harness.JobHelpers, harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.port = harness.free_port()
        cls.pbport = harness.free_port()
        cls.nowhere = harness.free_port()  # nothing listens here
        cls.server = harness.Server(cls.tmp / "srv", receivers=[
            {"ae_title": "PACSBRIDGE", "port": cls.port, "bind": "127.0.0.1"},
            {"ae_title": "PBPORT", "port": cls.pbport, "bind": "127.0.0.1"}])
        cls._peers.append(cls.server)
        cls.orthanc = cls.start_class_orthanc(extra={
            "DicomAlwaysAllowFind": True, "DicomAlwaysAllowMove": True,
            "DicomModalities": {
                "wrongcase": ["pacsbridge", "127.0.0.1", cls.port],
                "wrongport": ["PBPORT", "127.0.0.1", cls.nowhere]}})
        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()
        cls.files = dicomgen.generate(cls.tmp / "study", 3, patient_id="MOVEDIAG")
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet, [f[0] for f in cls.files])
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))
        for name, extra in (("orthanc", {}), ("orthanc-port", {"move_destination": "PBPORT"}),
                            ("orthanc-unknown", {"move_destination": "PBUNKNOWN",
                                                 "listen_port": cls.pbport})):
            body = {"name": name, "ae_title": "ORTHANC", "host": "127.0.0.1",
                    "port": cls.orthanc.dicom_port, "queryable": True, "timeout_seconds": 20}
            body.update(extra)
            status, answer = cls.server.api("POST", "/api/nodes", body)
            if status != 201:
                raise AssertionError("POST /api/nodes %r -> %s %r" % (body, status, answer))

    def move(self, node):
        status, answer = self.server.api("POST", "/api/retrieve", {
            "node": node, "level": "STUDY", "uids": [self.files[0][2]], "method": "c-move"})
        self.assertEqual(status, 202, answer)
        job = self.wait_job(answer["job_id"], timeout=90)
        self.assertEqual(job.get("state"), "failed", json.dumps(job, indent=1))
        sys.stderr.write("[job error: %s] " % job.get("error"))
        return job.get("error") or ""

    def test_wrong_case_of_our_ae_title_on_the_pacs(self):
        error = self.move("orthanc")
        self.assertIn("the PACS tried to send to AE title 'pacsbridge' at our port %d; our receiver "
                      "is 'PACSBRIDGE' (case matters): correct it on the PACS" % self.port, error)
        # Our own log has the rejection the message is built from.
        self.assertIn("called AE title 'pacsbridge' not recognized",
                      self.server.log_path.read_text("utf-8", "replace"))

    def test_no_connection_from_the_pacs(self):
        error = self.move("orthanc-port")
        self.assertIn("the PACS did not connect to 127.0.0.1:%d: check the address and port it has "
                      "for us, and firewalls" % self.pbport, error)

    def test_a_destination_the_pacs_does_not_know_keeps_what_to_register(self):
        # PBUNKNOWN: no entry in Orthanc's DicomModalities (the data would go to our PBPORT
        # receiver, by the node's listen_port).
        error = self.move("orthanc-unknown")
        self.assertIn("the PACS did not connect to 127.0.0.1:%d" % self.pbport, error)
        self.assertIn("or it does not know 'PBUNKNOWN' as a move destination", error)
        self.assertIn("register: AE title PBUNKNOWN, host 127.0.0.1, port %d" % self.pbport, error)


if __name__ == "__main__":
    unittest.main()
