"""The web UI's Import and Send pages in a real browser (ui/tests/transfer.mjs): a study found
on one Orthanc, opened to its series, retrieved under a project, then sent from our archive to a
second Orthanc; a node outside its availability window (refused, then asked anyway, its
truncated answer); a spreadsheet import (a malformed sheet refused with the API's words, then a
good one reviewed and confirmed); a read-only account that sees no way to retrieve or send.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_ui_transfer.py

Orthanc A holds two generated studies of one patient name: one dated today (the page's "Last 7
days" finds it and not the other) and one of 2024 that the spreadsheet names by its accession
number. Orthanc B starts empty. Both are registered through the API: A queryable and the default
query/retrieve node, B storable and the default storage node; A once more as a node that is
never available and keeps one answer per find. What the pages did is then checked without them:
our archive's studies, series, instances and projects, and Orthanc B's own REST API (the same SOP
Instance UIDs as generated, the same dataset bytes).

Screenshots: see ui_support.py (import.png, import-sheet.png, send.png)."""
import datetime
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ui_support  # noqa: E402
from harness import dicomgen  # noqa: E402

READER = ("reader-2", "reader-Pw-456")
PATIENT = "TRANSFER^UI"
PROJECT = "UI-PROJ"
CSV_PROJECT = "CSV-PROJ"
CSV_ACCESSION = "TUIACC2"
# A sheet whose second line has a month 13: refused with its line and column.
CSV_BAD = "Accession Number,Study Date\n%s,2024-13-01\n" % CSV_ACCESSION
CSV_GOOD = "Accession Number,Project\r\n%s,%s\r\n" % (CSV_ACCESSION, CSV_PROJECT)


class WebUiTransferTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ui_support.require_ui()
        cls.server = cls.start_class_server()
        # A lets anyone query and C-GET, and knows our receiver (for a C-MOVE fallback).
        cls.orthanc_a = cls.start_class_orthanc(aet="ORTHANCA", extra={
            "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {"pacsbridge": ["PACSBRIDGE", "127.0.0.1",
                                               cls.server.dicom_port]}})
        cls.orthanc_b = cls.start_class_orthanc(aet="ORTHANCB")
        cls.shots = ui_support.screenshots_dir(cls.tmp)
        status, body = cls.server.api("POST", "/api/users", {
            "username": READER[0], "role": "read-only", "password": READER[1]})
        assert status == 201, body

        # 6 CT instances over 2 series, dated today; and 3 of 2024 for the spreadsheet.
        today = datetime.date.today().strftime("%Y%m%d")
        cls.study = dicomgen.generate(cls.tmp / "study", 6, series_per_study=2, modality="CT",
                                      patient_name=PATIENT, patient_id="TUI1", study_date=today,
                                      accession_number="TUIACC1",
                                      study_description="UI transfer")
        cls.sheet_study = dicomgen.generate(cls.tmp / "sheet", 3, modality="MR",
                                            patient_name=PATIENT, patient_id="TUI2",
                                            study_date="20240115",
                                            accession_number=CSV_ACCESSION,
                                            study_description="UI sheet")
        for path, *_ in cls.study + cls.sheet_study:
            cls.orthanc_a.upload(path)

        for node in (
                {"name": "pacs-a", "ae_title": cls.orthanc_a.aet,
                 "port": cls.orthanc_a.dicom_port, "queryable": True,
                 "default_query_retrieve": True, "description": "Orthanc A"},
                {"name": "pacs-b", "ae_title": cls.orthanc_b.aet,
                 "port": cls.orthanc_b.dicom_port, "storable": True, "default_storage": True,
                 "description": "Orthanc B"},
                # A again, never available (an empty list of windows) and one answer per find.
                {"name": "pacs-a-1", "ae_title": cls.orthanc_a.aet,
                 "port": cls.orthanc_a.dicom_port, "queryable": True, "max_results": 1,
                 "schedule": {"windows": []}, "description": "Orthanc A, closed"}):
            status, body = cls.server.api("POST", "/api/nodes", dict(
                node, type="dimse", host="127.0.0.1"))
            assert status == 201, body

    def api_error(self, method, path, body, field):
        """The API's words for a request it refuses (400 naming field); nothing is created."""
        status, answer = self.server.api(method, path, body)
        self.assertEqual((status, answer.get("field")), (400, field), answer)
        return answer

    def run_scenarios(self, *names):
        study = self.study[0][2]
        # The API's own words for what the scenarios type wrong, asked here.
        date = self.api_error("POST", "/api/nodes/pacs-a/find", {
            "level": "STUDY", "query": {"PatientName": PATIENT, "StudyDate": "20240201-20240101"}},
            "query.StudyDate")
        project = self.api_error("POST", "/api/retrieve", {
            "node": "pacs-a", "level": "STUDY", "uids": [study], "project": "UI PROJ"}, "project")
        sheet = self.api_error("POST", "/api/imports", {"csv": CSV_BAD, "node": "pacs-a"}, "csv")
        self.assertEqual((sheet.get("line"), sheet.get("column")), (2, 2), sheet)
        status, closed = self.server.api("POST", "/api/nodes/pacs-a-1/find", {
            "level": "STUDY", "query": {"PatientName": PATIENT}})
        self.assertEqual((status, closed.get("field")), (409, "schedule"), closed)
        status, node = self.server.api("GET", "/api/nodes/pacs-a-1")
        self.assertEqual((status, node["available"]), (200, False), node)
        self.assertEqual(self.server.api("GET", "/api/jobs")[1], [], "the refusals made no job")
        series = {}
        for _, _, _, se in self.study:
            series[se] = series.get(se, 0) + 1
        env = {
            "PB_READER": READER[0], "PB_READER_PASSWORD": READER[1],
            "PB_NODE_A": "pacs-a", "PB_NODE_B": "pacs-b",
            "PB_PATIENT": PATIENT, "PB_PROJECT": PROJECT,
            "PB_STUDY": study, "PB_INSTANCES": str(len(self.study)),
            "PB_SERIES": json.dumps(series),
            "PB_DATE_MESSAGE": date["error"], "PB_PROJECT_MESSAGE": project["error"],
            "PB_CSV_STUDY": self.sheet_study[0][2],
            "PB_CLOSED_NODE": "pacs-a-1", "PB_CLOSED_REASON": node["unavailable_reason"],
            "PB_CLOSED_MESSAGE": closed["error"],
            "PB_CSV_BAD": CSV_BAD, "PB_CSV_BAD_MESSAGE": sheet["error"], "PB_CSV_GOOD": CSV_GOOD,
        }
        ui_support.run_scenarios(self, self.server, "transfer.mjs", names, env, self.shots)

    def assertArchived(self, files, project):
        """Our archive holds every generated instance of the study, filed under project."""
        study = files[0][2]
        status, rows = self.server.api("GET", "/api/studies?StudyInstanceUID=%s" % study)
        self.assertEqual(status, 200, rows)
        self.assertEqual([(r["instance_count"], r["series_count"]) for r in rows],
                         [(len(files), len({f[3] for f in files}))])
        for series in {f[3] for f in files}:
            status, instances = self.server.api("GET", "/api/series/%s/instances" % series)
            self.assertEqual(status, 200, instances)
            self.assertEqual(sorted(i["SOPInstanceUID"] for i in instances),
                             sorted(f[1] for f in files if f[3] == series))
        where = harness.where_is(self.server, {f[3] for f in files})
        self.assertEqual({labels[0] for labels in where}, {project}, where)
        self.assertEqual(sum(n for counts in where.values() for n in counts.values()), len(files))
        status, projects = self.server.api("GET", "/api/projects")
        self.assertEqual([(p["studies"], p["instances"]) for p in projects if p["name"] == project],
                         [(1, len(files))], projects)

    def test_import_retrieve_and_send(self):
        self.run_scenarios("closed", "import", "sheet", "send", "reader")
        study = self.study[0][2]
        self.assertArchived(self.study, PROJECT)
        self.assertArchived(self.sheet_study, CSV_PROJECT)

        # The jobs the pages made: a retrieve of the study from A, the sheet's import and its
        # row's retrieve, a send of the study to B; all succeeded.
        status, jobs = self.server.api("GET", "/api/jobs")
        self.assertEqual(status, 200, jobs)
        made = sorted((j["type"], j["node"], j["state"], j.get("uids")) for j in jobs)
        self.assertEqual(made, sorted([
            ("import", "pacs-a", "succeeded", None),
            ("retrieve", "pacs-a", "succeeded", [study]),
            ("retrieve", "pacs-a", "succeeded", [self.sheet_study[0][2]]),
            ("send", "pacs-b", "succeeded", [study]),
        ]), jobs)

        # Orthanc B, asked through its own REST API: the study, exactly its instances, and the
        # datasets as generated.
        status, studies = self.orthanc_b.rest_json("GET", "/studies?expand")
        self.assertEqual(status, 200, studies)
        self.assertEqual([s["MainDicomTags"]["StudyInstanceUID"] for s in studies], [study])
        status, instances = self.orthanc_b.rest_json("GET", "/instances?expand")
        self.assertEqual(status, 200, instances)
        by_sop = {i["MainDicomTags"]["SOPInstanceUID"]: i["ID"] for i in instances}
        self.assertEqual(sorted(by_sop), sorted(f[1] for f in self.study))
        for path, sop, _, _ in self.study:
            status, _, data = self.orthanc_b.rest("GET", "/instances/%s/file" % by_sop[sop])
            self.assertEqual(status, 200)
            self.assertEqual(dicomgen.dataset_bytes(data), dicomgen.dataset_bytes(path), sop)

        for name in ("import", "import-sheet", "send"):
            self.assertTrue((self.shots / ("%s.png" % name)).is_file(), name)

    def test_read_only_account_may_not_retrieve_or_send(self):
        study = self.study[0][2]
        for path, body in (
                ("/api/retrieve", {"node": "pacs-a", "level": "STUDY", "uids": [study]}),
                ("/api/send", {"node": "pacs-b", "level": "STUDY", "uids": [study]}),
                ("/api/nodes/pacs-a/find", {"level": "STUDY", "query": {"PatientName": PATIENT}}),
                ("/api/imports", {"csv": CSV_GOOD, "node": "pacs-a"})):
            status, answer = self.server.api("POST", path, body, auth=READER)
            self.assertEqual(status, 403, "%s: %r" % (path, answer))


if __name__ == "__main__":
    unittest.main()
