"""Retrieve jobs that file what they fetch under project / subject / session labels, against
Orthanc (Debian package): C-GET with the job's labels, with only some of them (the rest from
the site-wide rules and the default rules), without any (Patient Comments, Study Description,
Unassigned); C-MOVE into receivers with identification "jobs", "rules" and "rules" plus the
relabel_from_job processor; C-MOVE into an anonymizing receiver (new UIDs, yet the job counts
every instance); C-MOVE into a staging receiver (the staged session is archived as soon as the
job succeeds, long before staging_idle_seconds); invalid labels refused naming the field.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_retrieve_labels.py

One Orthanc and one pacsbridge for the class. Every scenario retrieves a study of its own (a
retrieve leaves out what the archive has, and a series keeps the labels it was first filed
under). Orthanc's DicomModalities lists our config receiver PACSBRIDGE (C-FIND / C-GET /
C-MOVE caller) and, by AE title and port, each receiver the class creates through the API (the
C-MOVE destinations); their ports are chosen before Orthanc starts.
"""

import json
import os
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

TERMINAL = ("succeeded", "partial", "failed", "canceled")
PATIENT_COMMENTS = (0x0010, 0x4000)

# The receivers created through the API, the C-MOVE destinations: AE title -> body fields.
RECEIVERS = {
    "MVJOBS": {"identification": "jobs", "anonymize": False},
    "MVRULES": {"identification": "rules", "anonymize": False},
    "MVRELABEL": {"identification": "rules", "anonymize": False,
                  "processors": [{"type": "relabel_from_job"}]},
    "MVANON": {"identification": "jobs", "anonymize": True},
    "MVSTAGE": {"identification": "jobs", "anonymize": False, "direct_archive": False,
                "staging_idle_seconds": 600},
}

_uid = dicomgen.make_uids()
_study_index = [0]


def make_study(directory, count, *, series=2, patient_name="LBL^PATIENT", patient_id="LBL1",
               accession="", study_description=None, patient_comments=None, size=4096):
    """count instances of one new study over `series` series (round robin); accession ""
    writes an empty Accession Number. Returns [(path, sop, study, series)]."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _study_index[0] += 1
    st = _study_index[0]
    extra = []
    if patient_comments is not None:
        extra.append(PATIENT_COMMENTS + ("LT", patient_comments))
    out = []
    for i in range(count):
        se = i % series + 1
        study_uid, series_uid = _uid("study", st), _uid("series", st, se)
        sop = _uid("instance", st * 1000 + i)
        path = directory / ("%06d.dcm" % i)
        dicomgen.write_instance(path, sop_uid=sop, study_uid=study_uid, series_uid=series_uid,
                                patient_name=patient_name, patient_id=patient_id,
                                accession_number=accession, study_description=study_description,
                                instance_number=i // series + 1, series_number=se,
                                extra_elements=extra, size=size)
        out.append((path, sop, study_uid, series_uid))
    return out


class RetrieveLabelsTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        # Our server and the receivers' ports first: Orthanc must know them all.
        cls.server = harness.Server(cls.tmp / "srv")
        cls._peers.append(cls.server)
        cls.ports = {ae: harness.free_receiver_port() for ae in RECEIVERS}
        modalities = {"pacsbridge": ["PACSBRIDGE", "127.0.0.1", cls.server.dicom_port]}
        for ae, port in cls.ports.items():
            modalities[ae.lower()] = [ae, "127.0.0.1", port]
        cls.orthanc = harness.Orthanc(cls.tmp / "orthanc", extra={"DicomModalities": modalities})
        cls._peers.append(cls.orthanc)
        cls.addClassCleanup(cls.orthanc.stop)
        cls.orthanc.start()

        d = cls.tmp / "data"
        cls.sets = {
            # C-GET with all three labels
            "get_all": make_study(d / "get_all", 5, patient_name="Getall^Pat",
                                  patient_id="GETALL1", study_description="Getall Desc",
                                  accession="ACCGETALL"),
            # C-GET with a project only; a site rule names the session from the accession
            "get_partial": make_study(d / "get_partial", 3, patient_name="Partial^Pat",
                                      patient_id="PARTIAL1", study_description="Partial Desc",
                                      accession="SITEACC7"),
            # C-GET without labels: Patient Comments
            "get_comment": make_study(d / "get_comment", 4, patient_name="Comment^Pat",
                                      patient_id="COMMENT1", study_description="Comment Desc",
                                      accession="ACCCMT",
                                      patient_comments="Project: PC1 Subject: PS1 Session: PE1"),
            # C-GET without labels: Study Description -> project, name -> subject, ID -> session
            "get_desc": make_study(d / "get_desc", 3, patient_name="Desc^Pat",
                                   patient_id="DESCPID1", study_description="Plain Desc 7",
                                   accession="ACCDESC"),
            # C-GET without labels and nothing to name a project: Unassigned
            "get_none": make_study(d / "get_none", 3, patient_name="None^Pat",
                                   patient_id="NONEPID1"),
            # C-MOVE into MVJOBS / MVRULES / MVRELABEL / MVANON / MVSTAGE
            "move_jobs": make_study(d / "move_jobs", 4, patient_name="Mvjobs^Pat",
                                    patient_id="MVJOBS1", study_description="Mvjobs Desc"),
            "move_rules": make_study(d / "move_rules", 4, patient_name="Mvrules^Pat",
                                     patient_id="MVRULES1", study_description="Mvrules Desc"),
            "move_relabel": make_study(d / "move_relabel", 4, patient_name="Mvrelabel^Pat",
                                       patient_id="MVRELABEL1",
                                       study_description="Mvrelabel Desc"),
            "move_anon": make_study(d / "move_anon", 5, patient_name="Mvanon^Secretname",
                                    patient_id="MVANONPID9", study_description="Mvanon Desc",
                                    accession="ACCMVANON"),
            "move_stage": make_study(d / "move_stage", 4, patient_name="Mvstage^Pat",
                                     patient_id="MVSTAGE1", study_description="Mvstage Desc"),
            "get_anon": make_study(d / "get_anon", 4, patient_name="Getanon^Hiddenname",
                                   patient_id="GETANONPID3", study_description="Getanon Desc"),
        }
        files = [f[0] for v in cls.sets.values() for f in v]
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet, files)
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))

        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()
        cls.receivers = {}
        for ae, fields in RECEIVERS.items():
            body = {"ae_title": ae, "port": cls.ports[ae]}
            body.update(fields)
            status, answer = cls.server.api("POST", "/api/receivers", body)
            if status != 201 or not isinstance(answer, dict) or \
                    answer.get("status") != "listening":
                raise AssertionError("POST /api/receivers %r -> %s %r" % (body, status, answer))
            cls.receivers[ae] = answer
        cls.add_node("orthanc", retrieve_method="c-get")
        for ae in RECEIVERS:
            cls.add_node("move-" + ae.lower(), retrieve_method="c-move", move_destination=ae)

    @classmethod
    def add_node(cls, name, **extra):
        body = {"name": name, "ae_title": cls.orthanc.aet, "host": "127.0.0.1",
                "port": cls.orthanc.dicom_port, "queryable": True, "timeout_seconds": 20}
        body.update(extra)
        status, answer = cls.server.api("POST", "/api/nodes", body)
        if status != 201:
            raise AssertionError("POST /api/nodes %r -> %s %r" % (body, status, answer))
        return answer

    # ------------------------------------------------------------------ helpers

    def api(self, method, path, body=None):
        return self.server.api(method, path, body)

    def retrieve(self, node, files, method, **labels):
        """POST /api/retrieve of the study of `files` (202 asserted), then wait for the job to
        end; returns the job JSON."""
        body = {"node": node, "level": "STUDY", "uids": [files[0][2]], "method": method}
        body.update(labels)
        status, answer = self.api("POST", "/api/retrieve", body)
        self.assertEqual(status, 202, "POST /api/retrieve %r -> %s %r" % (body, status, answer))
        self.assertIsInstance(answer, dict, repr(answer))
        self.assertIn("job_id", answer, repr(answer))
        job_id = str(answer["job_id"])
        deadline = time.monotonic() + 60
        job = None
        while time.monotonic() < deadline:
            status, job = self.api("GET", "/api/jobs/%s" % job_id)
            self.assertEqual(status, 200, "GET /api/jobs/%s -> %s %r" % (job_id, status, job))
            if job.get("state") in TERMINAL:
                return job
            time.sleep(0.05)
        self.fail("job %s of %r not finished after 60 s: %s"
                  % (job_id, body, json.dumps(job, indent=1)))

    def assertSucceeded(self, job, count):
        dump = json.dumps(job, indent=1)
        self.assertEqual(job.get("state"), "succeeded", dump)
        self.assertIsNone(job.get("error"), dump)
        self.assertEqual(job.get("missing"), [], dump)
        p = job.get("progress") or {}
        self.assertEqual(p.get("completed"), count, "progress.completed: " + dump)
        self.assertEqual(p.get("failed"), 0, dump)
        self.assertEqual(p.get("remaining"), 0, dump)

    def browse(self, *labels):
        return harness.browse_labels(self.server, *labels)

    def where_is(self, series_uids):
        return harness.where_is(self.server, series_uids)

    def assertFiledOnlyUnder(self, files, project, subject, session, timeout=10):
        """Every series of `files` is under project/subject/session with all its instances,
        and nowhere else."""
        want = {}
        for f in files:
            want[f[3]] = want.get(f[3], 0) + 1
        labels = (project, subject, session)
        ok = harness.wait_until(lambda: self.where_is(want) == {labels: want}, timeout, 0.1)
        if not ok:
            self.fail("series %s: expected only under %s/%s/%s with %r instances; found %r"
                      % (sorted(want), project, subject, session, want, self.where_is(want)))

    def assertStoredIdentical(self, files):
        problems = []
        for path, sop, _, _ in files:
            status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % sop)
            if status != 200:
                problems.append("%s: GET /api/instances/.../file -> %s" % (sop, status))
                continue
            meta, offset = dicomgen.read_meta(payload)
            if payload[offset:] != dicomgen.dataset_bytes(path):
                problems.append("%s: dataset differs from %s" % (sop, path))
        self.assertEqual(problems, [], "%d of %d instances not as sent:\n  %s"
                         % (len(problems), len(files), "\n  ".join(problems)))

    def study_count(self, study_uid):
        return harness.studies_by_uid(self.server).get(study_uid, {}).get("instance_count")

    def staged(self, receiver_id):
        status, rows = self.api("GET", "/api/staging")
        self.assertEqual(status, 200, rows)
        self.assertIsInstance(rows, list, repr(rows))
        return [r for r in rows if str(r.get("receiver")) == str(receiver_id)]

    def job_ids(self):
        status, jobs = self.api("GET", "/api/jobs")
        self.assertEqual(status, 200, jobs)
        return sorted(str(j.get("id")) for j in jobs)

    # ================================================================== 1. C-GET

    def test_10_c_get_files_everything_under_the_job_labels(self):
        files = self.sets["get_all"]
        job = self.retrieve("orthanc", files, "c-get",
                            project="Import_A", subject="SUBJ01", session="SESS01")
        self.assertSucceeded(job, len(files))
        self.assertEqual(job.get("method_used"), "c-get", json.dumps(job, indent=1))
        self.assertFiledOnlyUnder(files, "Import_A", "SUBJ01", "SESS01")
        projects = {p.get("name"): p for p in self.browse()}
        self.assertIn("Import_A", projects, repr(projects))
        want = {"subjects": 1, "sessions": 1, "studies": 1, "series": 2,
                "instances": len(files)}
        self.assertEqual({k: projects["Import_A"].get(k) for k in want}, want,
                         repr(projects["Import_A"]))
        # Not under what the defaults would have said (Study Description, Patient Name).
        self.assertNotIn("Getall_Desc", projects, repr(sorted(projects)))
        self.assertEqual(self.study_count(files[0][2]), len(files))
        # The labels file the data; they do not change it.
        self.assertStoredIdentical(files)

    def test_11_c_get_labels_not_given_come_from_site_rules_then_defaults(self):
        self.addCleanup(self.api, "PUT", "/api/routing",
                        {"project": "", "subject": "", "session": ""})
        rules = {"project": "(0008,1030):(.+):1", "subject": "",
                 "session": "(0008,0050):(.+):1"}
        status, body = self.api("PUT", "/api/routing", rules)
        self.assertEqual(status, 200, "PUT /api/routing %r -> %s %r" % (rules, status, body))
        files = self.sets["get_partial"]
        job = self.retrieve("orthanc", files, "c-get", project="Import_B")
        self.assertSucceeded(job, len(files))
        # project: the job's (beats the site rule); subject: the default (Patient Name);
        # session: the site rule (Accession Number), not the default (Patient ID).
        self.assertFiledOnlyUnder(files, "Import_B", "Partial_Pat", "SITEACC7")

    def test_20_c_get_without_labels_uses_patient_comments(self):
        files = self.sets["get_comment"]
        job = self.retrieve("orthanc", files, "c-get")
        self.assertSucceeded(job, len(files))
        self.assertFiledOnlyUnder(files, "PC1", "PS1", "PE1")

    def test_21_c_get_without_labels_uses_study_description_else_unassigned(self):
        files = self.sets["get_desc"]
        job = self.retrieve("orthanc", files, "c-get")
        self.assertSucceeded(job, len(files))
        self.assertFiledOnlyUnder(files, "Plain_Desc_7", "Desc_Pat", "DESCPID1")
        files = self.sets["get_none"]
        job = self.retrieve("orthanc", files, "c-get")
        self.assertSucceeded(job, len(files))
        self.assertFiledOnlyUnder(files, "Unassigned", "None_Pat", "NONEPID1")

    # ================================================================== 2. C-MOVE, identification

    def test_30_c_move_into_a_jobs_receiver_files_under_the_job_labels(self):
        files = self.sets["move_jobs"]
        job = self.retrieve("move-mvjobs", files, "c-move",
                            project="Move_Jobs", subject="MJ_S1", session="MJ_E1")
        self.assertSucceeded(job, len(files))
        self.assertEqual(job.get("method_used"), "c-move", json.dumps(job, indent=1))
        self.assertFiledOnlyUnder(files, "Move_Jobs", "MJ_S1", "MJ_E1")
        self.assertStoredIdentical(files)

    def test_31_c_move_into_a_rules_receiver_files_by_its_rules(self):
        files = self.sets["move_rules"]
        job = self.retrieve("move-mvrules", files, "c-move",
                            project="Move_Jobs", subject="MR_S1", session="MR_E1")
        self.assertSucceeded(job, len(files))
        self.assertFiledOnlyUnder(files, "Mvrules_Desc", "Mvrules_Pat", "MVRULES1")
        self.assertStoredIdentical(files)

    def test_32_relabel_from_job_processor_on_a_rules_receiver(self):
        files = self.sets["move_relabel"]
        job = self.retrieve("move-mvrelabel", files, "c-move",
                            project="Move_Relabel", subject="RL_S1", session="RL_E1")
        self.assertSucceeded(job, len(files))
        self.assertFiledOnlyUnder(files, "Move_Relabel", "RL_S1", "RL_E1")
        self.assertStoredIdentical(files)

    # ================================================================== 3. anonymizing receiver

    def test_40_c_move_into_an_anonymizing_receiver_counts_every_instance(self):
        self.assertIs(self.receivers["MVANON"].get("anonymize"), True,
                      repr(self.receivers["MVANON"]))
        files = self.sets["move_anon"]
        original_uids = {u for f in files for u in f[1:]}
        job = self.retrieve("move-mvanon", files, "c-move",
                            project="Anon_Job", subject="ANON_SUBJ", session="ANON_SESS")
        self.assertSucceeded(job, len(files))
        studies = harness.studies_by_uid(self.server)
        self.assertNotIn(files[0][2], studies, "the original StudyInstanceUID is in the archive")
        # The new series are under the job's labels, with every instance.
        rows = self.browse("Anon_Job", "ANON_SUBJ", "ANON_SESS")
        self.assertEqual(len(rows), 2, "series under Anon_Job/ANON_SUBJ/ANON_SESS: %r" % rows)
        self.assertEqual(sum(r.get("instance_count") or 0 for r in rows), len(files), repr(rows))
        new_series = {r.get("SeriesInstanceUID") for r in rows}
        self.assertFalse(new_series & original_uids, "series UIDs not replaced: %r" % rows)
        stored = []
        for uid in sorted(new_series):
            status, inst = self.api("GET", "/api/series/%s/instances" % uid)
            self.assertEqual(status, 200, inst)
            stored += [i.get("SOPInstanceUID") for i in inst]
        self.assertEqual(len(stored), len(files), repr(stored))
        new_studies = set()
        for sop in stored:
            self.assertNotIn(sop, original_uids)
            status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % sop)
            self.assertEqual(status, 200, "GET /api/instances/%s/file -> %s" % (sop, status))
            el = dicomgen.read_elements(payload)
            self.assertEqual(harness.text_of(el, (0x0010, 0x0010)), "ANON_SUBJ", "PatientName of %s" % sop)
            self.assertEqual(harness.text_of(el, (0x0010, 0x0020)), "ANON_SUBJ", "PatientID of %s" % sop)
            self.assertNotIn(b"Secretname", payload)
            self.assertNotIn(b"MVANONPID9", payload)
            new_studies.add(harness.text_of(el, (0x0020, 0x000D)))
            self.assertNotIn(harness.text_of(el, (0x0020, 0x000E)), original_uids)
        self.assertEqual(len(new_studies), 1, repr(new_studies))
        new_study = new_studies.pop()
        self.assertNotEqual(new_study, files[0][2])
        self.assertEqual((studies.get(new_study) or {}).get("instance_count"), len(files),
                         "the new study in /api/studies: %r" % studies.get(new_study))

    def test_41_c_get_into_an_anonymizing_project_is_anonymized(self):
        # A project with its own anonymization options anonymizes what a retrieve files there,
        # as it does for a receiver: a C-GET walks the same ingest path.
        options = {"retain_dates": True}
        status, body = self.api("PUT", "/api/projects/Anon_Project/anonymization", options)
        self.assertEqual(status, 200, body)
        self.addCleanup(self.api, "DELETE", "/api/projects/Anon_Project/anonymization")
        files = self.sets["get_anon"]
        original_uids = {u for f in files for u in f[1:]}
        # C-MOVE would deliver through MVJOBS, which keeps data as sent: refused, nothing stored.
        job = self.retrieve("move-mvjobs", files, "c-move", project="Anon_Project")
        self.assertEqual(job.get("state"), "failed", json.dumps(job, indent=1))
        self.assertIn("project 'Anon_Project' has its own anonymization options, and C-MOVE would "
                      "deliver through receiver 'MVJOBS'", job.get("error") or "")
        self.assertEqual(harness.find_bytes([self.server.data_dir], [b"Hiddenname"]), {})
        job = self.retrieve("orthanc", files, "c-get", project="Anon_Project")
        self.assertSucceeded(job, len(files))
        self.assertNotIn(files[0][2], harness.studies_by_uid(self.server),
                         "the original StudyInstanceUID is in the archive")
        subjects = [s["name"] for s in self.browse("Anon_Project")]
        self.assertEqual(len(subjects), 1, repr(subjects))
        # Patient Name would have been the subject: a pseudonym instead.
        self.assertTrue(subjects[0].startswith("SUBJ_"), repr(subjects))
        sessions = [e["name"] for e in self.browse("Anon_Project", subjects[0])]
        stored = []
        for e in sessions:
            for row in self.browse("Anon_Project", subjects[0], e):
                status, inst = self.api("GET", "/api/series/%s/instances" % row["SeriesInstanceUID"])
                stored += [i.get("SOPInstanceUID") for i in inst]
        self.assertEqual(len(stored), len(files), repr(stored))
        for sop in stored:
            self.assertNotIn(sop, original_uids)
            status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % sop)
            self.assertEqual(status, 200)
            self.assertNotIn(b"Hiddenname", payload)
            self.assertNotIn(b"GETANONPID3", payload)
        # Nothing original reached the disk on the way.
        leaks = harness.find_bytes([self.server.data_dir], [b"Hiddenname", b"GETANONPID3"])
        self.assertEqual(leaks, {}, "original values on disk: %r" % leaks)

    # ================================================================== 4. staging receiver

    def test_50_c_move_into_a_staging_receiver_archives_when_the_job_succeeds(self):
        rid = self.receivers["MVSTAGE"]["id"]
        self.assertIs(self.receivers["MVSTAGE"].get("direct_archive"), False,
                      repr(self.receivers["MVSTAGE"]))
        self.assertEqual(self.staged(rid), [])
        files = self.sets["move_stage"]
        job = self.retrieve("move-mvstage", files, "c-move",
                            project="Stage_Job", subject="STG_S1", session="STG_E1")
        ended = time.monotonic()
        self.assertSucceeded(job, len(files))
        empty = harness.wait_until(lambda: not self.staged(rid), 5, 0.1)
        self.assertTrue(empty, "staged sessions of MVSTAGE %.1f s after the job succeeded "
                        "(staging_idle_seconds 600): %r"
                        % (time.monotonic() - ended, self.staged(rid)))
        there = harness.wait_until(lambda: self.study_count(files[0][2]) == len(files), 5, 0.1)
        self.assertTrue(there, "study %s in /api/studies %.1f s after the job: %r instances, "
                        "expected %d" % (files[0][2], time.monotonic() - ended,
                                         self.study_count(files[0][2]), len(files)))
        self.assertFiledOnlyUnder(files, "Stage_Job", "STG_S1", "STG_E1", timeout=5)
        self.assertStoredIdentical(files)
        leftovers = [p for p in harness.files_under(self.server.data_dir / "staging")]
        self.assertEqual(leftovers, [], "files left in the staging area")

    # ================================================================== 5. invalid labels

    def test_60_invalid_labels_are_400_naming_the_field(self):
        study = self.sets["get_all"][0][2]
        ok = {"node": "orthanc", "level": "STUDY", "uids": [study], "method": "c-get"}
        before = self.job_ids()
        for field, value in (("project", "a b"), ("subject", 12), ("session", "x/y"),
                             ("project", ["Import_A"]), ("subject", "S.1")):
            body = dict(ok)
            body[field] = value
            status, answer = self.api("POST", "/api/retrieve", body)
            with self.subTest(field=field, value=value):
                self.assertJsonError(status, answer, field)
        self.assertEqual(self.job_ids(), before, "a refused retrieve created a job")


if __name__ == "__main__":
    unittest.main()
