"""The staging area shows the labels the archive will apply, not only those routing asked for.

A series the default receiver filed under ACC1 (Accession Number) keeps those labels when more
of it arrives through a staging receiver with default_project QUICKP: the staged session says
so (filed elsewhere, or split with a new series), and archiving it does exactly what it said.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_staging_labels.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402


def write_study(directory, uid, tag, series_counts):
    """One study of patient SMITH^JANE (ID SM1, accession ACC1); series_counts[i] instances in
    series i + 1. Returns {series number: [(path, sop, study, series)]}."""
    os.makedirs(str(directory), exist_ok=True)
    study = uid("study", tag)
    out = {}
    n = 0
    for se, count in enumerate(series_counts, start=1):
        series = uid("series", tag, se)
        out[se] = []
        for i in range(count):
            n += 1
            sop = uid("instance", tag, n)
            path = os.path.join(str(directory), "%d-%d.dcm" % (se, i))
            dicomgen.write_instance(path, sop_uid=sop, study_uid=study, series_uid=series,
                                    patient_name="SMITH^JANE", patient_id="SM1",
                                    accession_number="ACC1", series_number=se,
                                    instance_number=i + 1)
            out[se].append((path, sop, study, series))
    return out


class StagingLabelsTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.start_class_server()
        cls.uid = staticmethod(dicomgen.make_uids())
        port = harness.free_receiver_port()
        status, body = cls.server.api("POST", "/api/receivers", {
            "ae_title": "QUICK", "port": port, "anonymize": False, "direct_archive": False,
            "default_project": "QUICKP", "staging_idle_seconds": 3600})
        if status != 201:
            raise AssertionError("POST /api/receivers -> %s %r" % (status, body))
        cls.quick_port = port

    def store(self, port, ae, files):
        cp = harness.storescu(port, ae, [f[0] for f in files])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))

    def wait_staged(self, count):
        def one():
            status, rows = self.server.api("GET", "/api/staging")
            rows = [r for r in rows if r.get("receiver_ae_title") == "QUICK"]
            return rows if rows and rows[0].get("instance_count") == count else None
        rows = harness.wait_until(one, timeout=15)
        self.assertTrue(rows, "staging: %r" % (self.server.api("GET", "/api/staging"),))
        self.assertEqual(len(rows), 1, rows)
        return rows[0]

    def session_series(self, project, subject, session):
        status, rows = self.server.api(
            "GET", "/api/projects/%s/subjects/%s/sessions/%s/series" % (project, subject, session))
        if status == 404:
            return {}
        self.assertEqual(status, 200, rows)
        return {r["SeriesInstanceUID"]: r.get("instance_count") for r in rows}

    def archive(self, staged):
        status, body = self.server.api("POST", "/api/staging/%s/archive" % staged["id"])
        self.assertEqual(status, 200, body)
        return body

    def test_a_session_split_between_its_labels_and_a_series_filed_before(self):
        study = write_study(self.mkdtemp("split"), self.uid, 1, [3, 2])
        s1, s2 = study[1][0][3], study[2][0][3]
        # The default receiver files the first instance of series 1 under ACC1 (Accession Number).
        self.store(self.server.dicom_port, self.server.dicom_ae, study[1][:1])
        self.assertTrue(harness.wait_until(
            lambda: self.session_series("ACC1", "SMITH_JANE", "SM1").get(s1) == 1))
        # The rest of series 1 and all of series 2 reach the staging receiver (QUICKP).
        self.store(self.quick_port, "QUICK", study[1][1:] + study[2])
        staged = self.wait_staged(4)
        self.assertEqual(staged["routed"], {"project": "QUICKP", "subject": "SMITH_JANE",
                                            "session": "SM1"}, staged)
        self.assertIs(staged.get("split"), True, staged)
        self.assertEqual(
            [(d["project"], d["subject"], d["session"], d["series"], d["staged_instances"],
              d["archived_instances"], d["already_filed"]) for d in staged["destinations"]],
            [("QUICKP", "SMITH_JANE", "SM1", [s2], 2, 0, False),
             ("ACC1", "SMITH_JANE", "SM1", [s1], 2, 1, True)], staged)
        self.assertEqual(staged["note"],
                         "split: 1 series (2 instance(s)) to QUICKP/SMITH_JANE/SM1; 1 series "
                         "(2 instance(s)) to ACC1/SMITH_JANE/SM1, where they are already filed, "
                         "merged with 1 instance(s) there")
        cp = self.server.cli("staging")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("split: 1 series (2 instance(s)) to QUICKP/SMITH_JANE/SM1", cp.stdout)
        # Archiving does what the entry said.
        self.archive(staged)
        self.assertEqual(self.session_series("QUICKP", "SMITH_JANE", "SM1"), {s2: 2})
        self.assertEqual(self.session_series("ACC1", "SMITH_JANE", "SM1"), {s1: 3})

    def test_a_session_whose_series_is_filed_elsewhere_shows_where_it_goes(self):
        study = write_study(self.mkdtemp("elsewhere"), self.uid, 2, [3])
        s1 = study[1][0][3]
        self.store(self.server.dicom_port, self.server.dicom_ae, study[1][:1])
        self.assertTrue(harness.wait_until(
            lambda: self.session_series("ACC1", "SMITH_JANE", "SM1").get(s1) == 1))
        self.store(self.quick_port, "QUICK", study[1][1:])
        staged = self.wait_staged(2)
        self.assertEqual((staged["project"], staged["subject"], staged["session"]),
                         ("ACC1", "SMITH_JANE", "SM1"), staged)
        self.assertEqual(staged["routed"]["project"], "QUICKP", staged)
        self.assertIs(staged.get("split"), False, staged)
        self.assertEqual(staged["note"],
                         "filed under ACC1/SMITH_JANE/SM1, where its series are already filed "
                         "(not QUICKP/SMITH_JANE/SM1 as routed); merged with 1 instance(s) there")
        cp = self.server.cli("staging")
        self.assertIn("ACC1/SMITH_JANE/SM1", cp.stdout, harness.proc_output(cp))
        body = self.archive(staged)
        self.assertEqual((body["project"], body["archived"]), ("ACC1", 2), body)
        self.assertEqual(self.session_series("ACC1", "SMITH_JANE", "SM1").get(s1), 3)
        self.assertNotIn(s1, self.session_series("QUICKP", "SMITH_JANE", "SM1"))


if __name__ == "__main__":
    unittest.main()
