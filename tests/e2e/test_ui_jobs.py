"""The Jobs page in a real browser (ui/tests/jobs.mjs): a retrieve slowed by a throttled proxy
is seen progressing live and finishing, pushed by the server's event stream; a retrieve queued
behind it is raised in priority and canceled from the page. What the page did is then checked
through the API."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ui_support  # noqa: E402
from harness import dicomgen  # noqa: E402

COUNT = 40


class JobsPageTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ui_support.require_ui()
        cls.orthanc = cls.start_class_orthanc(extra={"DicomAlwaysAllowGet": True,
                                                     "DicomAlwaysAllowFind": True})
        cls.slow = dicomgen.generate(cls.tmp / "slow", COUNT, modality="CT", size=40000,
                                     patient_id="UISLOW")
        cls.other = dicomgen.generate(cls.tmp / "other", 3, size=4000, patient_id="UIQUEUED")
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet,
                              [f[0] for f in cls.slow + cls.other])
        assert cp.returncode == 0, harness.proc_output(cp)
        cls.server = cls.start_class_server()
        cls.shots = ui_support.screenshots_dir(cls.tmp)
        # ~1.6 MB at 80 KB/s: about twenty seconds, long enough to be seen part-way and for the
        # queued job behind it to be raised and canceled while it still waits (at 200 KB/s a
        # loaded machine's browser could be so slow that the slow job ended first, and the
        # queued one ran before its priority could change).
        cls.proxy = harness.ThrottledProxy(cls.orthanc.dicom_port, 80_000)
        cls.addClassCleanup(cls.proxy.close)
        status, body = cls.server.api("POST", "/api/nodes", {
            "name": "slow-pacs", "ae_title": cls.orthanc.aet, "host": "127.0.0.1",
            "port": cls.proxy.port, "queryable": True, "retrieve_method": "c-get"})
        assert status == 201, body

    def retrieve(self, study):
        status, job = self.server.api("POST", "/api/retrieve", {
            "node": "slow-pacs", "level": "STUDY", "uids": [study]})
        self.assertEqual(status, 202, job)
        return job["id"]

    def test_live_progress_priority_and_cancel(self):
        slow = self.retrieve(self.slow[0][2])
        queued = self.retrieve(self.other[0][2])
        # One retrieve at a time per node: the second waits in the queue.
        self.assertEqual(self.server.api("GET", "/api/jobs/%s" % queued)[1]["state"], "queued")
        ui_support.run_scenarios(self, self.server, "jobs.mjs", ["live"],
                                 {"PB_SLOW_JOB": slow, "PB_QUEUED_JOB": queued}, self.shots)
        status, job = self.server.api("GET", "/api/jobs/%s" % slow)
        self.assertEqual((job["state"], job["progress"]["completed"]), ("succeeded", COUNT), job)
        status, job = self.server.api("GET", "/api/jobs/%s" % queued)
        self.assertEqual((job["state"], job["priority"]), ("canceled", "high"), job)
        self.assertTrue((self.shots / "jobs-live.png").is_file())


if __name__ == "__main__":
    unittest.main()
