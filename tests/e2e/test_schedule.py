"""A node's availability schedule, end to end: outside its windows a retrieve waits (state
`waiting`, `waiting_until` = the next opening), the node says it is not available and until
when, queries are refused unless overridden, and a schedule change lets waiting jobs go.

The window is put two days ahead in UTC, so the expected opening (midnight UTC of that day) is
computed here from the calendar, independently of the server.
"""

import datetime
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class ScheduleTests(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()

    def setUp(self):
        super().setUp()
        self.srv = harness.Server(self.mkdtemp("schedule"))
        self.addCleanup(self.srv.kill)
        self.srv.start()
        # Nothing listens there: a job that ran would fail at once (and say so).
        self.closed_port = harness.free_port()
        now = datetime.datetime.now(datetime.timezone.utc)
        opens = (now + datetime.timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
        self.opens = opens.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.window = {"days": [DAYS[opens.weekday()]], "start": "00:00", "end": "24:00"}
        status, node = self.srv.api("POST", "/api/nodes", {
            "name": "night-pacs", "ae_title": "NIGHT", "host": "127.0.0.1", "port": self.closed_port,
            "queryable": True, "retry": {"attempts": 1},
            "schedule": {"timezone": "UTC", "windows": [self.window]}})
        self.assertEqual(status, 201, node)

    def test_a_job_waits_for_the_window_and_the_node_says_when_it_opens(self):
        status, node = self.srv.api("GET", "/api/nodes/night-pacs")
        self.assertEqual(status, 200, node)
        self.assertIs(node["available"], False, node)
        self.assertEqual(node["availability_changes_at"], self.opens, node)
        self.assertIn(self.opens, node["unavailable_reason"], node)
        self.assertEqual(node["schedule"]["windows"], [self.window], node)

        status, job = self.srv.api("POST", "/api/retrieve",
                                   {"node": "night-pacs", "level": "STUDY", "uids": ["1.2.3.4"]})
        self.assertEqual(status, 202, job)
        job_id = job["job_id"]
        waiting = {}

        def is_waiting():
            nonlocal waiting
            _, waiting = self.srv.api("GET", "/api/jobs/%s" % job_id)
            return waiting.get("state") == "waiting"
        self.assertTrue(harness.wait_until(is_waiting, timeout=20), waiting)
        self.assertEqual(waiting["waiting_until"], self.opens, waiting)
        self.assertNotIn("next_attempt", waiting)
        self.assertEqual(waiting["attempts"], 0, waiting)  # never ran
        self.assertEqual(waiting["history"], [], waiting)

        # The CLI shows it too.
        cp = self.srv.cli("jobs", "show", str(job_id))
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("waiting", cp.stdout)

        # Queries outside the window are refused, naming the next window; an override goes.
        status, answer = self.srv.api("POST", "/api/nodes/night-pacs/find",
                                      {"level": "STUDY", "query": {"PatientID": "X"}})
        self.assertEqual(status, 409, answer)
        self.assertEqual(answer.get("field"), "schedule", answer)
        self.assertIn(self.opens, answer["error"], answer)
        status, answer = self.srv.api("POST", "/api/nodes/night-pacs/find",
                                      {"level": "STUDY", "query": {"PatientID": "X"},
                                       "override_schedule": True})
        self.assertEqual(status, 502, answer)  # asked: nothing listens there
        self.assertIn("connection refused", answer["error"].lower(), answer)

        # Removing the schedule lets the job go at once: it runs (and fails, nothing listens).
        status, node = self.srv.api("PUT", "/api/nodes/night-pacs", {"schedule": None})
        self.assertEqual(status, 200, node)
        self.assertIs(node["available"], True, node)
        done = {}

        def ended():
            nonlocal done
            _, done = self.srv.api("GET", "/api/jobs/%s" % job_id)
            return done.get("state") in ("succeeded", "partial", "failed", "canceled")
        self.assertTrue(harness.wait_until(ended, timeout=30), done)
        self.assertEqual(done["state"], "failed", done)
        self.assertEqual(done["attempts"], 1, done)
        self.assertIn("connection refused", (done.get("error") or "").lower(), done)

    def test_bad_schedules_are_refused_naming_the_field(self):
        for schedule, field in (
                ({"timezone": "Mars/Olympus", "windows": []}, "schedule.timezone"),
                ({"windows": [{"days": ["mon"], "start": "25:00", "end": "26:00"}]}, "schedule.windows[0].start"),
                ({"windows": [{"days": ["someday"], "start": "08:00", "end": "18:00"}]}, "schedule.windows[0].days")):
            status, answer = self.srv.api("PUT", "/api/nodes/night-pacs", {"schedule": schedule})
            self.assertEqual(status, 400, (schedule, answer))
            self.assertEqual(answer.get("field"), field, (schedule, answer))
        # The stored schedule is unchanged.
        status, node = self.srv.api("GET", "/api/nodes/night-pacs")
        self.assertEqual(node["schedule"]["windows"], [self.window], node)

    def test_the_cli_sets_windows(self):
        cp = self.srv.cli("nodes", "update", "night-pacs", "--window", "mon-fri 08:00-18:00",
                          "--window", "sat,sun 22:00-06:00", "--timezone", "Europe/Paris", "--json")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        status, node = self.srv.api("GET", "/api/nodes/night-pacs")
        self.assertEqual(node["schedule"], {
            "timezone": "Europe/Paris",
            "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"},
                        {"days": ["sat", "sun"], "start": "22:00", "end": "06:00"}]}, node)
        cp = self.srv.cli("nodes", "update", "night-pacs", "--no-schedule", "--json")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        status, node = self.srv.api("GET", "/api/nodes/night-pacs")
        self.assertIsNone(node["schedule"], node)
        self.assertIs(node["available"], True, node)


if __name__ == "__main__":
    unittest.main()
