"""Bulk import of studies from a CSV spreadsheet (an "import" job): POST /api/imports with a
CSV (JSON body or text/csv), one C-FIND per data row against the node, the rows' matches
shown for a person to confirm (GET /api/imports/{id}, phase "confirmation", job state
"waiting" / waiting_for "confirmation"), then one retrieve job per taken row (a child with
`parent` and `import_row`), the import ending succeeded when they all did. Rows may relabel
what they bring (Project / Subject / Session; a Subject replaces PatientName and PatientID in
the stored files).

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_import.py

One Orthanc (C-FIND / C-GET / C-MOVE allowed for any caller) and one pacsbridge for the class.
Every scenario has studies of its own (patients and accessions prefixed by the scenario), so
that no scenario finds another's studies already in the archive. The expected matches are the
StudyInstanceUIDs the generator wrote, never what our server answers.

  1. rows of zero, one and several matches (JSON body, `;`, BOM, header spellings, quoting, a
     blank line), confirmation with the several-row taken, children, the archive afterwards;
  2. relabeling (text/csv body, options as query parameters, confirm=true): filing under the
     row's project / subject / session, PatientName and PatientID of the stored files, a row
     without subject keeps them, the import-level project for a row without one;
  3. several matches declined (several "none", tab-delimited, the default node);
  4. malformed CSVs: 400, field csv, the exact line and column; unknown node, bad several;
  5. CLI: `import FILE --yes --several all`; a malformed file; `import` without --yes,
     `import show`, `import confirm --take/--skip`;
  6. confirm errors: an undecided several-row (409 naming its line), an unknown line (400),
     confirming twice (409);
  7. cancel: during the confirmation (no child ever), and while the children run (the queued
     child is canceled and never fetches anything).
"""

import json
import os
import re
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

ENDED = harness.JOB_ENDED
BOM = "\ufeff"


def dump(obj):
    return json.dumps(obj, indent=1, ensure_ascii=False)


def modalities(value):
    """ModalitiesInStudy as a set, whether the answer gives a list or a `\\`-joined string."""
    if value is None:
        return set()
    if isinstance(value, list):
        return set(value)
    return set(str(value).split("\\"))


class ImportTests(harness.JobHelpers, harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        # Our server first (not started): Orthanc must know our receiver (a C-MOVE fallback).
        cls.server = harness.Server(cls.tmp / "srv")
        cls._peers.append(cls.server)
        cls.orthanc = harness.Orthanc(cls.tmp / "orthanc", extra={
            "DicomAlwaysAllowGet": True, "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True,
            "DicomModalities": {"pacsbridge": ["PACSBRIDGE", "127.0.0.1",
                                               cls.server.dicom_port]}})
        cls._peers.append(cls.orthanc)
        cls.addClassCleanup(cls.orthanc.stop)
        cls.orthanc.start()

        cls.data = cls.tmp / "data"
        cls.studies = {}  # key -> {"uid", "files", "PatientID", ...}
        S = cls.make_study
        # 1. zero / one / several matches. A2 and B0 are decoys no row selects.
        S("A1", "IMP1A", "Alpha^One", "IMP1ACC1", "20240110", modality="CT",
          description="Alpha head")
        S("A2", "IMP1A", "Alpha^One", "IMP1ACC2", "20240111", description="Alpha later")
        S("B1", "IMP1B", "Beta^Two", "IMP1ACC3", "20240201", description="Beta first")
        S("B2", "IMP1B", "Beta^Two", "IMP1ACC4", "20240305", description="Beta second",
          count=3, series=2)
        S("B0", "IMP1B", "Beta^Two", "IMP1ACC5", "20230615", description="Beta old")
        # 2. relabeling
        S("R1", "REL2A", "Relabel^Alice", "REL2ACC1", "20240401", count=4, series=2)
        S("R2", "REL2B", "Keep^Bob", "REL2ACC2", "20240402", count=2)
        # 2b. relabeling through C-MOVE into a receiver that identifies by its rules
        S("M1", "MOV2A", "Move^Alice", "MOV2ACC1", "20240411", count=3)
        S("M2", "MOV2B", "Move^Bob", "MOV2ACC2", "20240412", count=2)
        # 3. several declined
        S("D1", "DEC3A", "Dec^Alpha", "DEC3ACC1", "20240501")
        S("D2", "DEC3B", "Dec^Beta", "DEC3ACC2", "20240502")
        S("D3", "DEC3B", "Dec^Beta", "DEC3ACC3", "20240503")
        # 5. CLI --yes
        S("C1", "CLI5A", "Cli^Alpha", "CLI5ACC1", "20240601")
        S("C2", "CLI5B", "Cli^Beta", "CLI5ACC2", "20240602")
        S("C3", "CLI5B", "Cli^Beta", "CLI5ACC3", "20240603")
        # 5. CLI show / confirm --take / --skip
        S("K1", "CLK5A", "Clk^Alpha", "CLK5ACC1", "20240611")
        S("K2", "CLK5B", "Clk^Beta", "CLK5ACC2", "20240612")
        S("K3", "CLK5B", "Clk^Beta", "CLK5ACC3", "20240613")
        # 6. confirm errors
        S("F1", "CNF6A", "Cnf^Alpha", "CNF6ACC1", "20240701")
        S("F2", "CNF6B", "Cnf^Beta", "CNF6ACC2", "20240702")
        S("F3", "CNF6B", "Cnf^Beta", "CNF6ACC3", "20240703")
        # 7. cancel while confirming; cancel while the children run (slow: 240 KB each)
        S("W1", "CAN7W", "Can^Wait", "CAN7ACC1", "20240801")
        S("X1", "CAN7X", "Can^Slow", "CAN7ACC2", "20240802", count=30, size=8192)
        S("X2", "CAN7Y", "Can^Slow", "CAN7ACC3", "20240803", count=30, size=8192)

        # 8. SIGKILL while the rows' retrieves run (slow: 240 KB each)
        S("Z1", "KIL8A", "Kill^Alpha", "KIL8ACC1", "20240901", count=30, size=8192)
        S("Z2", "KIL8B", "Kill^Beta", "KIL8ACC2", "20240902", count=30, size=8192)

        files = [f[0] for s in cls.studies.values() for f in s["files"]]
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet, files, timeout=300)
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))

        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()
        cls.add_node("orthanc", cls.orthanc.dicom_port, default_query_retrieve=True)

    @classmethod
    def make_study(cls, key, patient_id, patient_name, accession, date, *, count=2, series=1,
                   modality="OT", description=None, size=2048):
        files = dicomgen.generate(str(cls.data / key), count, series_per_study=series,
                                  size=size, patient_id=patient_id, patient_name=patient_name,
                                  accession_number=accession, study_date=date,
                                  modality=modality, study_description=description)
        cls.studies[key] = {
            "uid": files[0][2], "files": files, "PatientID": patient_id,
            "PatientName": patient_name, "AccessionNumber": accession, "StudyDate": date,
            "Modality": modality, "StudyDescription": description}
        return cls.studies[key]

    @classmethod
    def add_node(cls, name, port, **extra):
        body = {"name": name, "ae_title": cls.orthanc.aet, "host": "127.0.0.1", "port": port,
                "queryable": True, "retrieve_method": "c-get", "timeout_seconds": 20}
        body.update(extra)
        status, answer = cls.server.api("POST", "/api/nodes", body)
        if status != 201:
            raise AssertionError("POST /api/nodes %r -> %s %r" % (body, status, answer))
        return answer

    # ------------------------------------------------------------------ helpers

    def uid(self, key):
        return self.studies[key]["uid"]

    def post_import_json(self, body, expect=202):
        status, answer = self.server.api("POST", "/api/imports", body)
        if expect == 202:
            self.check_created(status, answer, "POST /api/imports %s" % dump(body))
        return status, answer

    def post_import_csv(self, csv, params=None, expect=202):
        """POST /api/imports with a text/csv body (str: UTF-8) and options as query params."""
        path = "/api/imports"
        if params:
            path += "?" + urllib.parse.urlencode(params)
        data = csv.encode("utf-8") if isinstance(csv, str) else csv
        status, _, payload = self.server.raw("POST", path, data,
                                             headers={"Content-Type": "text/csv"})
        answer = harness.parse_json(payload)
        if expect == 202:
            self.check_created(status, answer, "POST %s (text/csv %r)" % (path, data[:300]))
        return status, answer

    def check_created(self, status, answer, what):
        self.assertEqual(status, 202, "%s -> %s %r" % (what, status, answer))
        self.assertIsInstance(answer, dict, repr(answer))
        for key in ("job_id", "id"):
            self.assertIn(key, answer, dump(answer))
        self.assertIsInstance(answer["id"], str, "id should be a string: " + dump(answer))
        self.assertEqual(str(answer["job_id"]), answer["id"], dump(answer))
        self.assertEqual(answer.get("type"), "import", dump(answer))
        # A worker may already have claimed it: the state is checked by the waits that follow.
        self.assertIn(answer.get("state"), ("queued", "running", "waiting"), dump(answer))

    def get_import(self, imp_id):
        status, view = self.server.api("GET", "/api/imports/%s" % imp_id)
        self.assertEqual(status, 200, "GET /api/imports/%s -> %s %r" % (imp_id, status, view))
        self.assertIsInstance(view, dict, repr(view))
        return view

    def wait_import(self, imp_id, predicate, what, timeout=30):
        view = {}

        def check():
            nonlocal view
            view = self.get_import(imp_id)
            return predicate(view)

        if not harness.wait_until(check, timeout=timeout, interval=0.1):
            self.fail("import %s: not %s after %ss:\n%s" % (imp_id, what, timeout, dump(view)))
        return view

    def wait_confirmation(self, imp_id, timeout=30):
        """Wait for phase "confirmation" (failing at once if the import ended instead)."""
        view = self.wait_import(
            imp_id, lambda v: v.get("phase") == "confirmation" or v.get("state") in ENDED,
            "waiting for confirmation", timeout)
        d = dump(view)
        self.assertEqual(view.get("phase"), "confirmation", d)
        self.assertEqual(view.get("state"), "waiting", d)
        self.assertEqual(view.get("waiting_for"), "confirmation", d)
        return view

    def wait_import_end(self, imp_id, timeout=60, unattended=False):
        """Wait for the import to end. unattended: it must not stop for a confirmation (it was
        posted with confirm true and nothing needing a choice): fail at once if it does."""
        if not unattended:
            return self.wait_import(imp_id, lambda v: v.get("state") in ENDED, "ended",
                                    timeout)
        view = self.wait_import(
            imp_id, lambda v: v.get("state") in ENDED or v.get("phase") == "confirmation",
            "ended", timeout)
        self.assertNotEqual(view.get("phase"), "confirmation",
                            "confirm=true and no row needs a choice: the retrieves should "
                            "start without waiting for a person:\n" + dump(view))
        return view

    def rows_by_line(self, view):
        rows = view.get("rows")
        self.assertIsInstance(rows, list, "no rows list: " + dump(view))
        return {r.get("line"): r for r in rows}

    def confirm(self, imp_id, body, expect=200):
        status, answer = self.server.api("POST", "/api/imports/%s/confirm" % imp_id, body)
        if expect == 200:
            self.assertEqual(status, 200, "confirm %s -> %s %s" % (dump(body), status,
                                                                   dump(answer)))
            self.assertIsInstance(answer, dict, repr(answer))
            self.assertIsInstance(answer.get("rows"), list,
                                  "confirm should answer with the import view: " + dump(answer))
        return status, answer

    def import_ids(self):
        status, body = self.server.api("GET", "/api/imports")
        self.assertEqual(status, 200, "GET /api/imports -> %s %r" % (status, body))
        self.assertIsInstance(body, list, repr(body))
        for j in body:
            self.assertEqual(j.get("type"), "import", "GET /api/imports lists " + dump(j))
        return {str(j.get("id")) for j in body}

    def children(self, imp_id):
        """Retrieve jobs whose parent is this import: {import_row: job}."""
        status, jobs = self.server.api("GET", "/api/jobs?type=retrieve&limit=10000")
        self.assertEqual(status, 200, "GET /api/jobs?type=retrieve -> %s %r" % (status, jobs))
        out = {}
        for summary in jobs:
            job = self.get_job(str(summary["id"]))
            if job.get("parent") is None or str(job.get("parent")) != imp_id:
                continue
            self.assertNotIn(job.get("import_row"), out,
                             "two retrieve jobs for one row: %s" % dump(job))
            out[job.get("import_row")] = job
        return out

    def archived(self):
        """{StudyInstanceUID: instance_count} of our archive."""
        return {uid: s.get("instance_count")
                for uid, s in harness.studies_by_uid(self.server).items()}

    def assertArchiveHas(self, present, absent):
        """Every study key of `present` is in our archive with all its instances; none of
        `absent` has anything there."""
        held = self.archived()
        got = {k: held.get(self.uid(k)) for k in list(present) + list(absent)}
        want = {k: len(self.studies[k]["files"]) for k in present}
        want.update({k: None for k in absent})
        self.assertEqual(got, want, "instances per study in our archive (None: absent)")

    def assertMatches(self, row, keys):
        """The row's matches are exactly the studies `keys` made by the generator, with their
        patient, accession, date and description."""
        d = dump(row)
        matches = row.get("matches")
        self.assertIsInstance(matches, list, d)
        by_uid = {m.get("StudyInstanceUID"): m for m in matches}
        self.assertEqual(len(by_uid), len(matches), "a study listed twice: " + d)
        self.assertEqual(sorted(by_uid), sorted(self.uid(k) for k in keys),
                         "matches of line %s (expected studies %s)" % (row.get("line"), keys))
        for k in keys:
            st, m = self.studies[k], by_uid[self.uid(k)]
            for field in ("PatientID", "PatientName", "AccessionNumber", "StudyDate"):
                self.assertEqual(m.get(field), st[field], "%s of match %s: %s" % (field, k, d))
            if st["StudyDescription"] is not None:
                self.assertEqual(m.get("StudyDescription"), st["StudyDescription"],
                                 "StudyDescription of match %s: %s" % (k, d))
            self.assertIn(st["Modality"], modalities(m.get("ModalitiesInStudy")),
                          "ModalitiesInStudy of match %s: %s" % (k, d))

    def assertChildren(self, imp_id, view, expected, node="orthanc"):
        """The import's retrieve jobs are exactly one per taken row, {line: [study keys]}: type
        retrieve, parent and import_row set, level STUDY, uids the row's chosen studies, each
        succeeded, and each named by its row's `job`."""
        kids = self.children(imp_id)
        self.assertEqual(sorted(kids), sorted(expected),
                         "import_row of the retrieve jobs whose parent is %s: %s"
                         % (imp_id, dump(kids)))
        rows = self.rows_by_line(view)
        for line, keys in expected.items():
            job = kids[line]
            d = dump(job)
            self.assertEqual(job.get("type"), "retrieve", d)
            self.assertEqual(job.get("parent"), imp_id,
                             "parent should be the import id (a string): " + d)
            self.assertEqual(job.get("import_row"), line, d)
            self.assertEqual(job.get("level"), "STUDY", d)
            self.assertEqual(sorted(job.get("uids") or []), sorted(self.uid(k) for k in keys),
                             d)
            self.assertEqual(job.get("node"), node, d)
            self.assertEqual(job.get("state"), "succeeded", d)
            row_job = rows[line].get("job")
            self.assertIsInstance(row_job, dict, "row %d has no job: %s" % (line, dump(view)))
            self.assertEqual(str(row_job.get("id")), str(job.get("id")), dump(rows[line]))
            self.assertEqual(row_job.get("state"), "succeeded", dump(rows[line]))
        for line, row in rows.items():
            if line not in expected:
                self.assertIsNone(row.get("job"), "row %s was not taken: %s"
                                  % (line, dump(row)))
        return kids

    def assertSummary(self, view, **want):
        summary = view.get("summary")
        self.assertIsInstance(summary, dict, "no summary: " + dump(view))
        self.assertEqual({k: summary.get(k) for k in want}, want, "summary: " + dump(view))

    def stored_tags(self, sop):
        status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % sop)
        self.assertEqual(status, 200, "GET /api/instances/%s/file -> %s" % (sop, status))
        el = dicomgen.read_elements(payload)
        return harness.text_of(el, (0x0010, 0x0010)), harness.text_of(el, (0x0010, 0x0020))

    def browse(self, *labels):
        return harness.browse_labels(self.server, *labels)

    def where_is(self, series_uids):
        return harness.where_is(self.server, series_uids)

    def series_counts(self, key):
        want = {}
        for f in self.studies[key]["files"]:
            want[f[3]] = want.get(f[3], 0) + 1
        return want

    def assertErrorAt(self, status, body, line, column=None, what=""):
        """400, field csv, the line (and column) in the JSON and at the start of the error."""
        self.assertJsonError(status, body, "csv")
        d = "%s: %s" % (what, dump(body))
        self.assertEqual(body.get("line"), line, d)
        if column is not None:
            self.assertEqual(body.get("column"), column, d)
            self.assertRegex(body["error"], r"^line %d, column %d\b" % (line, column), d)
        else:
            self.assertRegex(body["error"], r"^line %d\b" % line, d)

    # ================================================================== 1. matches

    def test_1_rows_of_zero_one_and_several_matches_then_confirm(self):
        # `;` delimiter, a BOM, header spellings (underscore, lower case, DICOM keywords),
        # quoted fields (one holding the delimiter), a blank line (skipped; lines keep their
        # number in the file). Line 2: one match (date as YYYY-MM-DD picks A1, not A2); line 3:
        # several (a date range leaves B0 out, a name wildcard); line 5: no match.
        csv = (BOM + "Patient_ID;study date;Modality;PatientName;AccessionNumber\r\n"
               "IMP1A;2024-01-10;CT;;\r\n"
               "\"IMP1B\";20240101-20241231;;\"Beta*\";\r\n"
               "\r\n"
               ";;;;\"IMP1;NOPE\"\r\n")
        before = self.import_ids()
        _, answer = self.post_import_json({"csv": csv, "node": "orthanc", "method": "c-get",
                                           "priority": "high"})
        imp_id = answer["id"]
        self.assertEqual(self.import_ids() - before, {imp_id},
                         "GET /api/imports should list the new import")

        view = self.wait_confirmation(imp_id)
        d = dump(view)
        self.assertEqual(view.get("type"), "import", d)
        rows = self.rows_by_line(view)
        self.assertEqual([r.get("line") for r in view["rows"]], [2, 3, 5],
                         "one row per data line, in order, numbered as lines of the file "
                         "(header = 1, the blank line 4 skipped): " + d)
        self.assertEqual([rows[n].get("state") for n in (2, 3, 5)],
                         ["one_match", "several_matches", "no_match"], d)
        for n in (2, 3, 5):
            self.assertIsNone(rows[n].get("error"), d)
            self.assertIsNone(rows[n].get("job"), "nothing runs before the confirmation: " + d)
        self.assertEqual(rows[2]["query"].get("PatientID"), "IMP1A", d)
        self.assertEqual(rows[3]["query"].get("PatientID"), "IMP1B",
                         "the quotes are not part of the value: " + d)
        self.assertEqual(rows[3]["query"].get("PatientName"), "Beta*", d)
        self.assertEqual(rows[5]["query"].get("AccessionNumber"), "IMP1;NOPE",
                         "a quoted field keeps the delimiter: " + d)
        self.assertMatches(rows[2], ["A1"])
        self.assertMatches(rows[3], ["B1", "B2"])
        self.assertEqual(rows[5].get("matches"), [], d)
        self.assertSummary(view, rows=3, no_match=1, one_match=1, several_matches=1, error=0)
        # Nothing retrieved while waiting for the person.
        self.assertEqual(self.children(imp_id), {}, "retrieve jobs before the confirmation")
        self.assertArchiveHas([], ["A1", "A2", "B1", "B2", "B0"])

        _, answer = self.confirm(imp_id, {"rows": {"3": "all"}})
        self.assertEqual(self.rows_by_line(answer)[3].get("choice"), "all", dump(answer))

        view = self.wait_import_end(imp_id)
        d = dump(view)
        self.assertEqual(view.get("state"), "succeeded", d)
        self.assertEqual(view.get("phase"), "done", d)
        rows = self.rows_by_line(view)
        self.assertEqual(rows[3].get("choice"), "all", d)
        self.assertSummary(view, rows=3, no_match=1, one_match=1, several_matches=1, error=0,
                           taken=2, declined=0)
        kids = self.assertChildren(imp_id, view, {2: ["A1"], 3: ["B1", "B2"]})
        for line, job in kids.items():
            self.assertEqual(job.get("priority"), "high",
                             "the import's priority goes to its retrieves: " + dump(job))
        self.assertArchiveHas(["A1", "B1", "B2"], ["A2", "B0"])

        status, job = self.server.api("GET", "/api/jobs/%s" % imp_id)
        self.assertEqual(status, 200, "the import is a job: GET /api/jobs/%s -> %s %r"
                         % (imp_id, status, job))
        self.assertEqual((job.get("type"), job.get("state")), ("import", "succeeded"),
                         dump(job))

    # ================================================================== 2. relabeling

    def test_2_relabeling_files_under_the_row_labels_and_rewrites_the_patient(self):
        csv = ("Accession Number,Project,Subject,Session\n"
               "REL2ACC1,Imp2Proj,SUBJ2A,SESS2A\n"
               "REL2ACC2,,,\n")
        _, answer = self.post_import_csv(csv, {"node": "orthanc", "project": "Imp2Default",
                                               "confirm": "true"})
        imp_id = answer["id"]
        # confirm=true and no row needs a choice: no confirmation call is made here.
        view = self.wait_import_end(imp_id, unattended=True)
        d = dump(view)
        self.assertEqual(view.get("state"), "succeeded", d)
        rows = self.rows_by_line(view)
        self.assertEqual(sorted(rows), [2, 3], d)
        self.assertEqual({k: rows[2].get(k) for k in ("project", "subject", "session")},
                         {"project": "Imp2Proj", "subject": "SUBJ2A", "session": "SESS2A"}, d)
        self.assertIsNone(rows[3].get("subject"), d)
        self.assertIsNone(rows[3].get("session"), d)
        self.assertMatches(rows[2], ["R1"])
        self.assertMatches(rows[3], ["R2"])
        self.assertChildren(imp_id, view, {2: ["R1"], 3: ["R2"]})
        self.assertArchiveHas(["R1", "R2"], [])

        # Filed under the row's labels, and nowhere else.
        want = self.series_counts("R1")
        labels = ("Imp2Proj", "SUBJ2A", "SESS2A")
        ok = harness.wait_until(lambda: self.where_is(want) == {labels: want}, 10, 0.2)
        self.assertTrue(ok, "series of R1: expected only under %s with %r; found %r"
                        % ("/".join(labels), want, self.where_is(want)))
        # The row without a Project value: the import-level project.
        want2 = self.series_counts("R2")

        def r2_filed():
            found = self.where_is(want2)
            merged = {}
            for v in found.values():
                merged.update(v)
            return found if ({k[0] for k in found} == {"Imp2Default"} and merged == want2) \
                else None

        ok = harness.wait_until(r2_filed, 10, 0.2)
        self.assertTrue(ok, "R2 (no Project value in its row) should be all under the "
                        "import's project Imp2Default; found %r" % (self.where_is(want2),))

        # The stored files: the subject replaces PatientName and PatientID...
        bad = []
        for _, sop, _, _ in self.studies["R1"]["files"]:
            tags = self.stored_tags(sop)
            if tags != ("SUBJ2A", "SUBJ2A"):
                bad.append((sop, tags))
        self.assertEqual(bad, [], "stored (PatientName, PatientID) of R1 should be the subject "
                         "SUBJ2A in every file")
        # ...and a row without a subject keeps the patient's.
        for _, sop, _, _ in self.studies["R2"]["files"]:
            self.assertEqual(self.stored_tags(sop), ("Keep^Bob", "REL2B"),
                             "stored (PatientName, PatientID) of %s (row without subject)" % sop)

    def test_2b_relabeling_holds_through_c_move_into_a_rules_receiver(self):
        # The C-MOVE arrives at our receiver (identification "rules", the default): the rows'
        # labels and the subject's Patient Name/ID hold anyway (the PACS names our request as
        # Move Originator). A row with a subject and no session must not get the patient's ID
        # (the default rules' session) as its session label.
        csv = ("Accession Number;Project;Subject;Session\n"
               "MOV2ACC1;Imp2Move;SUBJ2M;SESS2M\n"
               "MOV2ACC2;Imp2Move;SUBJ2N;\n")
        _, answer = self.post_import_json({"csv": csv, "node": "orthanc", "method": "c-move",
                                           "confirm": True})
        view = self.wait_import_end(answer["id"], unattended=True)
        d = dump(view)
        self.assertEqual(view.get("state"), "succeeded", d)
        kids = self.children(answer["id"])
        for line, kid in kids.items():
            job = self.get_job(str(kid["id"]))
            self.assertEqual(job.get("method_used"), "c-move", dump(job))
        want = self.series_counts("M1")
        labels = ("Imp2Move", "SUBJ2M", "SESS2M")
        ok = harness.wait_until(lambda: self.where_is(want) == {labels: want}, 10, 0.2)
        self.assertTrue(ok, "M1 should be only under %s; found %r" % ("/".join(labels), self.where_is(want)))
        for _, sop, _, _ in self.studies["M1"]["files"]:
            self.assertEqual(self.stored_tags(sop), ("SUBJ2M", "SUBJ2M"), sop)
        want2 = self.series_counts("M2")
        found = self.where_is(want2)
        self.assertEqual({k[:2] for k in found}, {("Imp2Move", "SUBJ2N")}, repr(found))
        for (_, _, session) in found:
            self.assertNotIn("MOV2B", session, "the session label carries the patient ID: %r" % (found,))
            self.assertNotIn("MOV2ACC2", session, repr(found))
        for _, sop, _, _ in self.studies["M2"]["files"]:
            self.assertEqual(self.stored_tags(sop), ("SUBJ2N", "SUBJ2N"), sop)

    # ================================================================== 3. declined

    def test_3_several_none_declines_the_several_row(self):
        # Tab-delimited, no node (the default query/retrieve node), several "none" and
        # confirm: nothing needs a choice, so the retrieves start without a confirmation.
        csv = ("Study Instance UID\tPATIENT ID\n"
               "%s\t\n"
               "\tDEC3B\n" % self.uid("D1"))
        _, answer = self.post_import_json({"csv": csv, "several": "none", "confirm": True})
        imp_id = answer["id"]
        view = self.wait_import_end(imp_id, unattended=True)
        d = dump(view)
        self.assertEqual(view.get("state"), "succeeded", d)
        rows = self.rows_by_line(view)
        self.assertEqual([rows[n].get("state") for n in (2, 3)],
                         ["one_match", "several_matches"], d)
        self.assertEqual(rows[2]["query"].get("StudyInstanceUID"), self.uid("D1"), d)
        self.assertMatches(rows[2], ["D1"])
        self.assertMatches(rows[3], ["D2", "D3"])
        self.assertEqual(rows[3].get("choice"), "none", d)
        self.assertIsNone(rows[3].get("job"), d)
        self.assertSummary(view, rows=2, one_match=1, several_matches=1, no_match=0, error=0,
                           taken=1, declined=1)
        # The import ended (so every retrieve it made ended) and D1 arrived: D2 and D3 never.
        self.assertChildren(imp_id, view, {2: ["D1"]})
        self.assertArchiveHas(["D1"], ["D2", "D3"])

    # ================================================================== 4. malformed

    def test_4_malformed_csv_is_refused_with_line_and_column(self):
        before = self.import_ids()
        cases = [
            # (what, csv, line, column, as text/csv?)
            ("unknown column", "Patient ID,Favourite Colour\nX1,red\n", 1, 2, True),
            ("bad date (format)", "Patient ID,Study Date\nBAD1,20240115\nBAD2,15/01/2024\n",
             3, 2, False),
            ("bad date (no such day)",
             "Patient ID;Study Date\nBAD1;20240115\nBAD2;20241345\n", 3, 2, True),
            ("too many fields", "Accession Number;Patient ID\nA1;P1\nA2;P2;EXTRA\n", 3, 3,
             True),
            ("unterminated quote", "Patient ID,Accession Number\nQ1,A1\nQ2,\"A2", 3, 2, True),
            ("no column to find a study", "Project,Subject,Session\nP1,S1,E1\n", 1, None,
             False),
            ("a row with nothing to find",
             "Patient ID,Accession Number,Project\nP1,,Proj\n,,Proj\n", 3, None, False),
        ]
        for what, csv, line, column, as_text in cases:
            with self.subTest(what):
                if as_text:
                    status, body = self.post_import_csv(csv, {"node": "orthanc"}, expect=None)
                else:
                    status, body = self.post_import_json({"csv": csv, "node": "orthanc"},
                                                         expect=None)
                self.assertErrorAt(status, body, line, column, "%s %r" % (what, csv))

        good = "Accession Number\nIMP1ACC2\n"
        status, body = self.post_import_json({"csv": good, "node": "no-such-node"}, expect=None)
        self.assertJsonError(status, body, "node", expected_status=404)
        status, body = self.post_import_json({"csv": good, "node": "orthanc",
                                              "several": "some"}, expect=None)
        self.assertJsonError(status, body, "several")
        status, body = self.post_import_csv(good, {"node": "orthanc", "several": "some"},
                                            expect=None)
        self.assertJsonError(status, body, "several")
        self.assertEqual(self.import_ids() - before, set(),
                         "a refused upload must not leave an import behind")
        status, body = self.server.api("GET", "/api/imports/987654321")
        self.assertEqual(status, 404, "GET of an unknown import -> %s %r" % (status, body))

    # ================================================================== 5. CLI

    def write_csv(self, name, text):
        path = self.mkdtemp("csv") / name
        path.write_text(text, "utf-8")
        return path

    def new_import_after_cli(self, before, cp):
        new = self.import_ids() - before
        self.assertEqual(len(new), 1, "the CLI should have made one import (new: %s)\n%s"
                         % (sorted(new), harness.proc_output(cp)))
        return new.pop()

    def test_5a_cli_import_yes_several_all(self):
        path = self.write_csv("cli.csv", "Accession Number,Patient ID\nCLI5ACC1,\n,CLI5B\n")
        before = self.import_ids()
        cp = self.server.cli("import", str(path), "--node", "orthanc", "--yes",
                             "--several", "all", timeout=90)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        imp_id = self.new_import_after_cli(before, cp)
        out = cp.stdout.splitlines()
        for line, state in ((2, r"one[ _]match"), (3, r"several[ _]match")):
            self.assertTrue(any(re.search(r"\b%d\b" % line, l) and re.search(state, l, re.I)
                                for l in out),
                            "the CLI should print line %d with its state:\n%s"
                            % (line, harness.proc_output(cp)))
        view = self.wait_import_end(imp_id)
        d = dump(view)
        self.assertEqual(view.get("state"), "succeeded", d)
        self.assertEqual(self.rows_by_line(view)[3].get("choice"), "all", d)
        self.assertChildren(imp_id, view, {2: ["C1"], 3: ["C2", "C3"]})
        self.assertArchiveHas(["C1", "C2", "C3"], [])

    def test_5b_cli_malformed_file_exits_non_zero_with_line_and_column(self):
        path = self.write_csv("bad.csv", "Patient ID,Study Date\nOK1,20240101\nBAD,tomorrow\n")
        before = self.import_ids()
        cp = self.server.cli("import", str(path), "--node", "orthanc", "--yes")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("line 3, column 2", cp.stderr, harness.proc_output(cp))
        self.assertEqual(self.import_ids() - before, set(), "no import from a malformed file")

    def test_5c_cli_import_show_and_confirm_take_skip(self):
        path = self.write_csv("clk.csv", "Patient ID\nCLK5A\nCLK5B\n")
        before = self.import_ids()
        cp = self.server.cli("import", str(path), "--node", "orthanc", timeout=90)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        imp_id = self.new_import_after_cli(before, cp)
        self.assertIn("import confirm", cp.stdout + cp.stderr,
                      "without --yes the CLI says how to confirm:\n" + harness.proc_output(cp))
        # The CLI waited for the queries: the import awaits the person now.
        view = self.get_import(imp_id)
        self.assertEqual((view.get("phase"), view.get("state")), ("confirmation", "waiting"),
                         dump(view))
        self.assertEqual(self.children(imp_id), {})

        cp = self.server.cli("import", "show", imp_id)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        out = cp.stdout.splitlines()
        self.assertTrue(any(re.search(r"\b3\b", l) and re.search(r"several[ _]match", l, re.I)
                            for l in out),
                        "import show should list line 3 with several matches:\n"
                        + harness.proc_output(cp))

        cp = self.server.cli("import", "confirm", imp_id, "--take", "3", "--skip", "2")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        view = self.wait_import_end(imp_id)
        d = dump(view)
        self.assertEqual(view.get("state"), "succeeded", d)
        rows = self.rows_by_line(view)
        self.assertEqual((rows[2].get("choice"), rows[3].get("choice")), ("none", "all"), d)
        self.assertSummary(view, rows=2, one_match=1, several_matches=1, taken=1, declined=1)
        self.assertChildren(imp_id, view, {3: ["K2", "K3"]})
        self.assertArchiveHas(["K2", "K3"], ["K1"])

    # ================================================================== 6. confirm errors

    def test_6_confirm_errors(self):
        _, answer = self.post_import_csv("PatientID\nCNF6A\nCNF6B\n", {"node": "orthanc"})
        imp_id = answer["id"]
        self.wait_confirmation(imp_id)

        # several "ask" (the default) and line 3 undecided.
        status, body = self.confirm(imp_id, {}, expect=None)
        self.assertJsonError(status, body, "rows", expected_status=409)
        self.assertRegex(body["error"], r"\b3\b", "the error should name line 3: " + dump(body))
        status, body = self.confirm(imp_id, {"rows": {"2": "all"}}, expect=None)
        self.assertJsonError(status, body, "rows", expected_status=409)
        self.assertRegex(body["error"], r"\b3\b", dump(body))
        status, body = self.confirm(imp_id, {"rows": {"3": "none", "99": "all"}}, expect=None)
        self.assertEqual(status, 400, "an unknown line -> %s %s" % (status, dump(body)))
        # None of that confirmed anything.
        view = self.wait_confirmation(imp_id, timeout=5)
        self.assertEqual(self.children(imp_id), {}, dump(view))

        _, answer = self.confirm(imp_id, {"rows": {"3": "none"}})
        self.assertEqual(self.rows_by_line(answer)[3].get("choice"), "none", dump(answer))
        status, body = self.confirm(imp_id, {"rows": {"3": "all"}}, expect=None)
        self.assertJsonError(status, body, expected_status=409)

        view = self.wait_import_end(imp_id)
        self.assertEqual(view.get("state"), "succeeded", dump(view))
        self.assertChildren(imp_id, view, {2: ["F1"]})
        self.assertArchiveHas(["F1"], ["F2", "F3"])
        status, body = self.confirm(imp_id, {"several": "all"}, expect=None)
        self.assertJsonError(status, body, expected_status=409)

    # ================================================================== 7. cancel

    def test_7a_cancel_during_confirmation(self):
        _, answer = self.post_import_json({"csv": "Accession Number\nCAN7ACC1\n",
                                           "node": "orthanc"})
        imp_id = answer["id"]
        self.wait_confirmation(imp_id)
        status, body = self.server.api("POST", "/api/jobs/%s/cancel" % imp_id)
        self.assertEqual(status, 200, "cancel -> %s %r" % (status, body))
        view = self.wait_import_end(imp_id, timeout=15)
        self.assertEqual(view.get("state"), "canceled", dump(view))
        status, body = self.confirm(imp_id, {}, expect=None)
        self.assertJsonError(status, body, expected_status=409)
        self.assertEqual(self.children(imp_id), {})
        self.assertArchiveHas([], ["W1"])

    def test_7b_cancel_while_the_children_run(self):
        # A node behind a slow proxy (~30 KB/s): each study takes ~8 s, and the node runs one
        # retrieve at a time (max_parallel_retrieves 1), so one child runs, the other queues.
        proxy = harness.ThrottledProxy(self.orthanc.dicom_port, rate=30_000)
        self.addCleanup(proxy.close)
        self.add_node("orthanc-slow", proxy.port, retry={"attempts": 1})
        _, answer = self.post_import_json({"csv": "Accession Number\nCAN7ACC2\nCAN7ACC3\n",
                                           "node": "orthanc-slow", "confirm": True})
        imp_id = answer["id"]

        running = {}

        def one_running():
            view = self.get_import(imp_id)
            if view.get("state") in ENDED or view.get("phase") == "confirmation":
                return view
            for row in view.get("rows") or []:
                job = row.get("job")
                if not job or job.get("state") != "running":
                    continue
                full = self.get_job(str(job.get("id")))
                if ((full.get("progress") or {}).get("completed") or 0) >= 1:
                    running["line"] = row["line"]
                    return view
            return None

        view = harness.wait_until(one_running, timeout=45, interval=0.1)
        self.assertTrue(view, "no child running with progress: %s"
                        % dump(self.get_import(imp_id)))
        self.assertIn("line", running, "the import ended or waits for a confirmation "
                      "(confirm=true, one match per row) before a child ran: " + dump(view))
        status, body = self.server.api("POST", "/api/jobs/%s/cancel" % imp_id)
        self.assertEqual(status, 200, "cancel -> %s %r" % (status, body))
        view = self.wait_import_end(imp_id, timeout=30)
        d = dump(view)
        self.assertEqual(view.get("state"), "canceled", d)

        kids = self.children(imp_id)
        self.assertEqual(sorted(kids), [2, 3], dump(kids))
        ran = running["line"]
        other = 5 - ran
        key = {2: "X1", 3: "X2"}
        queued_job = self.wait_job(str(kids[other]["id"]), timeout=30)
        self.assertEqual(queued_job.get("state"), "canceled",
                         "the child that had not started: " + dump(queued_job))
        running_job = self.wait_job(str(kids[ran]["id"]), timeout=30)
        self.assertEqual(running_job.get("state"), "canceled",
                         "the child that was running: " + dump(running_job))
        self.assertNotIn(self.uid(key[other]), self.archived(),
                         "the canceled queued child's study arrived")
        held = self.archived().get(self.uid(key[ran])) or 0
        self.assertLess(held, len(self.studies[key[ran]]["files"]),
                        "the running child's study arrived whole although it was canceled")


    # ================================================================== 8. crash

    def test_8_sigkill_while_rows_retrieve_then_the_import_ends_by_itself(self):
        # Our own server, killed while a row's retrieve is provably mid-study (the node is behind
        # a slow proxy); a new server on the same data finishes the import without anyone
        # touching it: the same import, the same row jobs, each study once.
        srv = harness.Server(self.mkdtemp("kill8"))
        self._peers.append(srv)
        self.addCleanup(srv.kill)
        srv.start()
        proxy = harness.ThrottledProxy(self.orthanc.dicom_port, rate=30_000)
        self.addCleanup(proxy.close)
        body = {"name": "slow", "ae_title": self.orthanc.aet, "host": "127.0.0.1", "port": proxy.port,
                "queryable": True, "retrieve_method": "c-get", "timeout_seconds": 20}
        status, answer = srv.api("POST", "/api/nodes", body)
        self.assertEqual(status, 201, repr(answer))
        status, answer = srv.api("POST", "/api/imports", {
            "csv": "Accession Number,Subject\nKIL8ACC1,KILL8A\nKIL8ACC2,KILL8B\n", "node": "slow",
            "confirm": True})
        self.assertEqual(status, 202, repr(answer))
        imp_id = answer["id"]

        def a_row_mid_study():
            status, view = srv.api("GET", "/api/imports/%s" % imp_id)
            for row in view.get("rows") or []:
                job = row.get("job") or {}
                done = (job.get("progress") or {}).get("completed") or 0
                if job.get("state") == "running" and 0 < done < 30:
                    return view
            return None

        view = harness.wait_until(a_row_mid_study, 60, 0.05)
        self.assertTrue(view, "no row retrieve seen mid-study: " + dump(srv.api("GET", "/api/imports/%s" % imp_id)[1]))
        before = {row["line"]: row["job"]["id"] for row in view["rows"] if row.get("job")}
        srv.kill()
        proxy.rate = None
        again = harness.Server(srv.workdir, receivers=srv.receivers)
        self._peers.append(again)
        self.addCleanup(again.stop_and_check)
        again.start()

        def ended():
            status, v = again.api("GET", "/api/imports/%s" % imp_id)
            return v if v.get("state") in ENDED else None

        view = harness.wait_until(ended, 120, 0.2)
        self.assertTrue(view, "the import did not end by itself: " + dump(again.api("GET", "/api/imports/%s" % imp_id)[1]))
        d = dump(view)
        self.assertEqual(view.get("state"), "succeeded", d)
        after = {row["line"]: row["job"]["id"] for row in view["rows"] if row.get("job")}
        self.assertEqual(sorted(after), [2, 3], d)
        for line, job_id in before.items():
            self.assertEqual(after[line], job_id, "the row's retrieve job changed across the crash: " + d)
        status, jobs = again.api("GET", "/api/jobs?type=retrieve&limit=10000")
        mine = [j for j in jobs if str(j.get("parent")) == imp_id]
        self.assertEqual(len(mine), 2, "one retrieve job per row, never submitted twice: " + dump(mine))
        resumed = [j for j in mine if j.get("interrupted")]
        self.assertTrue(resumed, "no row retrieve was cut by the kill: " + dump(mine))
        held = {uid: s.get("instance_count") for uid, s in harness.studies_by_uid(again).items()}
        self.assertEqual({k: held.get(self.uid(k)) for k in ("Z1", "Z2")}, {"Z1": 30, "Z2": 30}, repr(held))


if __name__ == "__main__":
    unittest.main()
