"""C-FIND against Orthanc (Debian package), populated by the test: levels, wildcards, date
ranges, non-ASCII names, truncation, and the errors a person must understand.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_find.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402


class FindTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Orthanc answers C-FIND only for callers listed in DicomModalities.
        cls.orthanc = harness.Orthanc(cls.tmp / "orthanc", extra={
            "DicomModalities": {"pacsbridge": ["PACSBRIDGE", "127.0.0.1", 4100]}})
        cls._peers.append(cls.orthanc)
        cls.addClassCleanup(cls.orthanc.stop)
        cls.orthanc.start()
        data = cls.tmp / "data"
        cls.doe = dicomgen.generate(data / "doe", 6, studies=2, series_per_study=3, modality="CT",
                                    patient_name="DOE^JOHN", patient_id="DOE1",
                                    study_date="20240115")
        cls.muller = dicomgen.generate(data / "muller", 2, patient_name="Müller^Hans",
                                       patient_id="MUL1", study_date="20230301")
        cls.other = dicomgen.generate(data / "other", 1, patient_name="ROE^JANE",
                                      patient_id="ROE1", study_date="20220707")
        files = [f[0] for f in cls.doe + cls.muller + cls.other]
        cp = harness.storescu(cls.orthanc.dicom_port, "ORTHANC", files)
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))
        cls.server = harness.Server(cls.tmp / "srv")
        cls._peers.append(cls.server)
        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()
        for name, extra in (("orthanc", {"queryable": True}),
                            ("not-queryable", {"queryable": False}),
                            ("latin1", {"queryable": True, "query_charset": "ISO_IR 100"}),
                            ("no-charset", {"queryable": True, "query_charset": "none"}),
                            ("patient-root", {"queryable": True, "patient_root": True})):
            body = {"name": name, "ae_title": "ORTHANC", "host": "127.0.0.1",
                    "port": cls.orthanc.dicom_port}
            body.update(extra)
            status, answer = cls.server.api("POST", "/api/nodes", body)
            if status != 201:
                raise AssertionError(answer)

    def find(self, level, query=None, node="orthanc", **extra):
        body = {"level": level, "query": query or {}}
        body.update(extra)
        return self.server.api("POST", "/api/nodes/%s/find" % node, body)

    def test_study_level_wildcard(self):
        status, body = self.find("STUDY", {"PatientName": "DOE*"})
        self.assertEqual(status, 200, body)
        self.assertFalse(body["truncated"])
        uids = sorted(r["StudyInstanceUID"] for r in body["results"])
        self.assertEqual(uids, sorted({f[2] for f in self.doe}))
        for r in body["results"]:
            self.assertEqual(r["PatientName"], "DOE^JOHN")
            self.assertEqual(r["NumberOfStudyRelatedInstances"], "3")
            self.assertEqual(r["ModalitiesInStudy"], "CT")

    def test_non_ascii_name_round_trips(self):
        status, body = self.find("STUDY", {"PatientName": "Müller*"})
        self.assertEqual(status, 200, body)
        self.assertEqual([r["PatientName"] for r in body["results"]], ["Müller^Hans"])

    def test_query_sent_in_latin1_finds_the_same(self):
        status, body = self.find("STUDY", {"PatientName": "Müller*"}, node="latin1")
        self.assertEqual(status, 200, body)
        self.assertEqual([r["PatientName"] for r in body["results"]], ["Müller^Hans"])

    def test_query_without_character_set(self):
        status, body = self.find("STUDY", {"PatientID": "MUL1"}, node="no-charset")
        self.assertEqual(status, 200, body)
        self.assertEqual([r["PatientName"] for r in body["results"]], ["Müller^Hans"])

    def test_date_ranges(self):
        status, body = self.find("STUDY", {"StudyDate": "20230101-20231231"})
        self.assertEqual(status, 200, body)
        self.assertEqual({r["PatientID"] for r in body["results"]}, {"MUL1"})
        status, body = self.find("STUDY", {"StudyDate": "-20221231"})
        self.assertEqual({r["PatientID"] for r in body["results"]}, {"ROE1"})

    def test_series_and_image_levels_by_tag_and_keyword(self):
        study = self.doe[0][2]
        status, body = self.find("SERIES", {"(0020,000D)": study})
        self.assertEqual(status, 200, ("SERIES", body))
        self.assertEqual(sorted(r["SeriesInstanceUID"] for r in body["results"]),
                         sorted({f[3] for f in self.doe if f[2] == study}))
        # Hierarchical IMAGE query: the study and series are single values.
        series = self.doe[0][3]
        status, body = self.find("IMAGE", {"StudyInstanceUID": study, "SeriesInstanceUID": series})
        self.assertEqual(status, 200, ("IMAGE", body))
        self.assertEqual(sorted(r["SOPInstanceUID"] for r in body["results"]),
                         sorted(f[1] for f in self.doe if f[3] == series))

    def test_limit_truncates(self):
        status, body = self.find("STUDY", {}, limit=2)
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body["results"]), 2)
        self.assertTrue(body["truncated"])
        status, body = self.find("STUDY", {}, limit=10)
        self.assertEqual(len(body["results"]), 4)
        self.assertFalse(body["truncated"])

    def test_errors_name_what_is_wrong(self):
        status, body = self.find("STUDY", {"PatientNme": "X"})
        self.assertEqual(status, 400, body)
        self.assertEqual(body["field"], "query.PatientNme")
        status, body = self.find("VOLUME")
        self.assertEqual((status, body.get("field")), (400, "level"))
        status, body = self.find("STUDY", node="not-queryable")
        self.assertEqual(status, 409, body)
        self.assertIn("not queryable", body["error"])
        status, body = self.find("PATIENT")
        self.assertEqual((status, body.get("field")), (400, "level"))
        self.assertIn("patient_root", body["error"])

    def test_patient_level_with_the_patient_root_model(self):
        status, body = self.find("PATIENT", {"PatientName": "DOE*"}, node="patient-root")
        self.assertEqual(status, 200, body)
        self.assertEqual([r["PatientID"] for r in body["results"]], ["DOE1"], body)
        self.assertEqual(body["results"][0]["PatientName"], "DOE^JOHN")
        self.assertEqual(body["results"][0].get("NumberOfPatientRelatedStudies"), "2", body)
        status, body = self.find("PATIENT", {"PatientID": "MUL1"}, node="patient-root")
        self.assertEqual(status, 200, body)
        self.assertEqual([r["PatientName"] for r in body["results"]], ["Müller^Hans"], body)

    def test_unknown_caller_is_explained(self):
        status, body = self.server.api("POST", "/api/nodes", {
            "name": "as-stranger", "ae_title": "ORTHANC", "host": "127.0.0.1",
            "port": self.orthanc.dicom_port, "queryable": True, "calling_ae_title": "STRANGER"})
        self.assertEqual(status, 201, body)
        status, body = self.find("STUDY", node="as-stranger")
        self.assertGreaterEqual(status, 500, body)
        self.assertTrue(body["error"].startswith("Connection failed:"), body)
        self.assertIn("STRANGER", body["error"])

    def test_peer_that_never_answers_times_out(self):
        silent = harness.SilentListener()
        self.addCleanup(silent.close)
        status, body = self.server.api("POST", "/api/nodes", {
            "name": "silent", "ae_title": "ORTHANC", "host": "127.0.0.1", "port": silent.port,
            "queryable": True, "timeout_seconds": 2})
        self.assertEqual(status, 201, body)
        status, body = self.find("STUDY", node="silent")
        self.assertEqual(status, 504, body)
        self.assertIn("timed out", body["error"])

    def test_cli_find_refuses_a_malformed_key(self):
        cp = self.server.cli("find", "orthanc", "PatientID")
        self.assertEqual(cp.returncode, 2, harness.proc_output(cp))
        self.assertIn("KEYWORD=VALUE", cp.stderr)

    def test_cli_find_prints_a_table(self):
        cp = self.server.cli("find", "orthanc", "PatientID=DOE1")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("DOE^JOHN", cp.stdout)
        self.assertIn("2 result(s)", cp.stdout)


if __name__ == "__main__":
    unittest.main()
