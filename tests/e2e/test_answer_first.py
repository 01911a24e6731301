"""Instances a retrieve job asked for are answered before they are stored; one that then fails
to be stored is found missing by the job, never reported as retrieved.

A retrieve job's C-GET sub-operations, and the C-STOREs a PACS sends for the job's C-MOVE (Move
Originator AE and message ID name the job's request), are answered Success as soon as the data
set is received whole with a readable header naming the requested instance; the archive's work
(journal, rename, index) then overlaps the PACS's next sub-operation. The job checks every
instance against the archive, so a store that fails after such an answer must leave the job
partial with those instances missing, and a retry must fetch exactly them. A C-STORE nobody
asked for is still answered only after it is stored.

The fault: the path of one series' folder in the archive is taken by a regular file, so every
rename into it fails (ENOTDIR) while the data sets arrive whole. Orthanc (Debian package) is the
PACS; storescu (DCMTK) the sender nobody asked.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_answer_first.py
"""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

BIG = 24 * 1000 * 1000


class AnswerFirstTests(harness.JobHelpers, harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.server = harness.Server(cls.tmp / "srv")
        cls._peers.append(cls.server)
        cls.orthanc = harness.Orthanc(cls.tmp / "orthanc", extra={
            "DicomModalities": {"pacsbridge": ["PACSBRIDGE", "127.0.0.1", cls.server.dicom_port]}})
        cls._peers.append(cls.orthanc)
        cls.addClassCleanup(cls.orthanc.stop)
        cls.orthanc.start()

        data = cls.tmp / "data"
        cls.sets = {
            name: dicomgen.generate(data / name, 8, series_per_study=2, modality="CT", size=6000,
                                    patient_id=name.upper())
            for name in ("get", "move", "unasked")
        }
        # Big instances whose store, after the answer, takes a while: the job relabels the
        # patient, so each is read into memory, changed and written again.
        cls.sets["slow"] = dicomgen.generate(data / "slow", 3, modality="CT", size=BIG,
                                             patient_id="SLOW")
        files = [f[0] for name in ("get", "move", "slow") for f in cls.sets[name]]
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet, files)
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))

        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()
        # One attempt: the job's end is the fault's outcome, not an automatic retry's.
        status, answer = cls.server.api("POST", "/api/nodes", {
            "name": "orthanc", "ae_title": "ORTHANC", "host": "127.0.0.1",
            "port": cls.orthanc.dicom_port, "queryable": True, "timeout_seconds": 20,
            "retry": {"attempts": 1}})
        if status != 201:
            raise AssertionError("POST /api/nodes -> %s %r" % (status, answer))

    # ------------------------------------------------------------------ helpers

    def block_series(self, files):
        """Takes the archive path of the first series' folder with a regular file; returns
        (blocker path, blocked files, other files)."""
        study = files[0][2]
        series = sorted({f[3] for f in files})
        blocker = self.server.data_dir / "archive" / study / series[0]
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_bytes(b"not a folder\n")
        return (blocker, [f for f in files if f[3] == series[0]],
                [f for f in files if f[3] != series[0]])

    def archive_instances(self, study_uid):
        return harness.archive_sops(self.server, study_uid)

    def check_fault_then_retry(self, method):
        files = self.sets["get" if method == "c-get" else "move"]
        study = files[0][2]
        blocker, blocked, others = self.block_series(files)
        log_start = len(self.server.log_tail(100000).splitlines())
        status, answer = self.server.api("POST", "/api/retrieve", {
            "node": "orthanc", "level": "STUDY", "uids": [study], "method": method})
        self.assertEqual(status, 202, answer)
        job_id = str(answer["job_id"])
        job = self.wait_job(job_id)
        dump = json.dumps(job, indent=1)

        # Orthanc was told Success for every sub-operation: it reports no failure...
        self.assertFalse(job.get("failed_uids"), dump)
        self.assertEqual((job.get("progress") or {}).get("failed"), 0, dump)
        # ...and the job, checking the archive, still says which instances are not here.
        self.assertEqual(job.get("state"), "partial", dump)
        self.assertEqual(job.get("missing_count"), len(blocked), dump)
        self.assertEqual(sorted(job.get("missing") or []), sorted(f[1] for f in blocked), dump)
        self.assertRegex(job.get("error") or "", r"%d of %d instances did not arrive \(%d were "
                         r"received and could not be stored here" % (len(blocked), len(files),
                                                                     len(blocked)), dump)
        self.assertEqual(job.get("not_stored"), len(blocked), dump)
        self.assertEqual(sorted(self.archive_instances(study)), sorted(f[1] for f in others))
        # The log says what happened to each of them.
        log = "\n".join(self.server.log_tail(100000).splitlines()[log_start:])
        self.assertEqual(len(re.findall(r"answered Success before it was stored, and could not be "
                                        r"stored", log)), len(blocked), log[-3000:])
        self.assertRegex(log, r"rename into archive: Not a directory")
        # Nothing of theirs is left in the temp folder.
        self.assertTrue(harness.wait_until(
            lambda: not any((self.server.tmp_dir).iterdir()), timeout=10),
            sorted(p.name for p in (self.server.tmp_dir).iterdir()))

        # The path is free again: a retry fetches exactly the missing ones.
        blocker.unlink()
        status, answer = self.server.api("POST", "/api/jobs/%s/retry" % job_id)
        self.assertEqual(status, 202, answer)
        retry = self.wait_job(str(answer["job_id"]))
        rdump = json.dumps(retry, indent=1)
        self.assertEqual(retry.get("state"), "succeeded", rdump)
        self.assertEqual(retry["progress"].get("already_present"), len(others), rdump)
        self.assertEqual(retry["progress"].get("completed"), len(files), rdump)
        self.assertEqual(sorted(self.archive_instances(study)), sorted(f[1] for f in files))

    # ------------------------------------------------------------------ scenarios

    def test_c_get_store_failing_after_the_answer_is_missing_then_retried(self):
        self.check_fault_then_retry("c-get")

    def test_c_move_store_failing_after_the_answer_is_missing_then_retried(self):
        self.check_fault_then_retry("c-move")

    def test_c_move_relabeled_instances_answered_first_arrive_relabeled(self):
        # Each store begins after its answer (24 MB read, relabeled, written again) and the job
        # waits for them before it checks. (Orthanc releases its storage association before its
        # final C-MOVE-RSP, and the release is answered once the last store is done, so Orthanc
        # cannot overtake them; the job's wait for PACS that answer first is unit-tested in
        # src/ingest/origin_sink_test.cpp.)
        files = self.sets["slow"]
        study = files[0][2]
        status, answer = self.server.api("POST", "/api/retrieve", {
            "node": "orthanc", "level": "STUDY", "uids": [study], "method": "c-move",
            "subject": "SUBJSLOW", "relabel_patient": True})
        self.assertEqual(status, 202, answer)
        job = self.wait_job(str(answer["job_id"]))
        dump = json.dumps(job, indent=1)
        self.assertEqual(job.get("state"), "succeeded", dump)
        self.assertEqual(job.get("verification"), "counts", dump)
        self.assertEqual(job["progress"].get("completed"), len(files), dump)
        self.assertEqual(sorted(self.archive_instances(study)), sorted(f[1] for f in files))
        status, studies = self.server.api("GET", "/api/studies?PatientID=SUBJSLOW")
        self.assertEqual(status, 200, studies)
        self.assertEqual([(s.get("StudyInstanceUID"), s.get("instance_count")) for s in studies],
                         [(study, len(files))], studies)

    def test_a_store_nobody_asked_for_is_answered_after_storing(self):
        files = self.sets["unasked"]
        _, blocked, others = self.block_series(files)
        cp = harness.storescu(self.server.dicom_port, self.server.dicom_ae,
                              [blocked[0][0], others[0][0]], calling_ae="UNASKED", extra=["-v", "-nh"])
        out = cp.stdout + cp.stderr
        # storescu -nh goes on after a refusal; it prints each status by name: the first
        # refused, the second stored.
        self.assertRegex(out, r"Store Response \(Refused: OutOfResources\)", out)
        self.assertRegex(out, r"Store Response \(Success\)", out)
        self.assertEqual(self.archive_instances(files[0][2]), [others[0][1]])
        self.assertNotRegex(self.server.log_tail(100000), r"UNASKED.*answered Success before")


if __name__ == "__main__":
    import unittest
    unittest.main()
