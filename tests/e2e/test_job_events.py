"""GET /api/jobs/events: the jobs list pushed live by the server (Server-Sent Events), as the web
UI's Jobs page uses it. A C-GET through a throttled proxy gives a job that runs long enough to
report progress while it runs; every expectation is about what the stream must say of it."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

COUNT = 40


class JobEventsTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.orthanc = cls.start_class_orthanc(extra={"DicomAlwaysAllowGet": True,
                                                     "DicomAlwaysAllowFind": True})
        cls.files = dicomgen.generate(cls.tmp / "data", COUNT, modality="CT", size=40000,
                                      patient_id="EVENTS")
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet, [f[0] for f in cls.files])
        assert cp.returncode == 0, harness.proc_output(cp)
        cls.server = cls.start_class_server()
        # ~1.6 MB at 1 MB/s: the job runs for more than a second.
        cls.proxy = harness.ThrottledProxy(cls.orthanc.dicom_port, 1_000_000)
        cls.addClassCleanup(cls.proxy.close)
        status, body = cls.server.api("POST", "/api/nodes", {
            "name": "pacs", "ae_title": cls.orthanc.aet, "host": "127.0.0.1",
            "port": cls.proxy.port, "queryable": True, "retrieve_method": "c-get"})
        assert status == 201, body

    def stream(self, path="/api/jobs/events", **kw):
        s = self.server.events(path, **kw)
        self.addCleanup(s.close)
        return s

    def test_a_progress_is_pushed_until_the_job_ends(self):
        running = self.stream("/api/jobs/events?state=running")
        everything = self.stream()
        self.assertEqual(everything.status, 200)
        self.assertIn("text/event-stream", everything.headers.get("Content-Type", ""))
        self.assertEqual(everything.next_event(), ("jobs", []))
        self.assertEqual(running.next_event(), ("jobs", []))
        status, job = self.server.api("POST", "/api/retrieve", {
            "node": "pacs", "level": "STUDY", "uids": [self.files[0][2]]})
        self.assertEqual(status, 202, job)
        seen = []
        while True:
            event = everything.next_event()
            self.assertIsNotNone(event, "the stream ended before the job did")
            name, data = event
            self.assertEqual((name, data["id"]), ("job", job["id"]), event)
            seen.append((data["state"], data.get("progress", {}).get("completed")))
            if data["state"] in ("succeeded", "partial", "failed", "canceled"):
                break
        self.assertEqual(seen[-1], ("succeeded", COUNT), seen)
        # Progress while it ran, never going back.
        during = [c for state, c in seen if state == "running" and c is not None]
        self.assertTrue(any(0 < c < COUNT for c in during), seen)
        self.assertEqual(during, sorted(during), seen)
        # A stream of running jobs saw it come, then leave.
        name, data = running.next_event()
        self.assertEqual((name, data["id"], data["state"]), ("job", job["id"], "running"))
        while True:
            name, data = running.next_event()
            if name == "removed":
                break
            self.assertEqual((name, data["state"]), ("job", "running"), data)
        self.assertEqual(data, {"id": job["id"]})

    def test_b_filters_are_checked_and_credentials_needed(self):
        s = self.stream("/api/jobs/events?state=dancing")
        self.assertEqual(s.status, 400)
        s = self.stream("/api/jobs/events", auth=None)
        self.assertEqual(s.status, 401)
        # No browser password dialog for an event stream.
        self.assertIsNone(s.headers.get("WWW-Authenticate"))

    def test_c_streams_are_capped_and_come_free(self):
        server = self.start_server()  # no stream of another test holds a place
        held = []
        for _ in range(16):
            held.append(server.events("/api/jobs/events"))
            self.addCleanup(held[-1].close)
        for s in held:
            self.assertEqual(s.status, 200)
            self.assertEqual(s.next_event()[0], "jobs")
        extra = server.events("/api/jobs/events")
        self.addCleanup(extra.close)
        self.assertEqual(extra.status, 503)
        self.assertTrue(extra.headers.get("Retry-After"))
        # Other requests are served meanwhile: the streams do not hold every HTTP thread.
        self.assertEqual(server.api("GET", "/api/jobs")[0], 200)
        self.assertEqual(server.api("GET", "/api/jobs/1?wait=1")[0], 404)
        for s in held:
            s.close()

        def opens():
            s = server.events("/api/jobs/events")
            ok = s.status == 200
            s.close()
            return ok
        # A closed stream is noticed at its next write (a change, or the keep-alive every 2 s).
        self.assertTrue(harness.wait_until(opens, timeout=20, interval=0.5))

    def test_z_a_stopping_server_ends_its_streams(self):
        server = self.start_server()
        s = server.events("/api/jobs/events")
        self.addCleanup(s.close)
        self.assertEqual(s.next_event()[0], "jobs")
        server.stop_and_check()
        self.assertIsNone(s.next_event())


if __name__ == "__main__":
    unittest.main()
