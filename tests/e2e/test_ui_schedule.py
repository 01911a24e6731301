"""The schedule dialog and the PACS connections table in a real browser (playwright-core driving
Debian's Chromium; the scenarios are in ui/tests/schedule.mjs). The server has one node from its
config file (locked, with a schedule across midnight and a throttle) and one made here through
the API; the browser paints the API node's week, picks its time zone and throttle, and this test
checks what was stored through the API, against windows written here by hand.

The throttle is typed in MB/s, where the dialog says 1 MB/s = 1,000,000 bytes per second (the
MB of the CLI's progress and of test_throttle.py); the API's max_bytes_per_second is in bytes
per second, so 5 MB/s is stored as 5000000.

Screenshots: see ui_support.py (schedule.png is this test's)."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ui_support  # noqa: E402

NODE = "ward-pacs"
LOCKED = {
    "name": "config-pacs", "type": "dimse", "ae_title": "CFGPACS", "host": "127.0.0.1",
    "port": 11112, "queryable": True, "retrieve_method": "c-move",
    "max_bytes_per_second": 2500000,
    "schedule": {"timezone": "America/New_York",
                 "windows": [{"days": ["sat", "sun"], "start": "22:00", "end": "06:00"}]},
}
USER = ("user-1", "user-Pw-123")

# What the browser paints, as the API must store it.
WEEKDAYS = {"timezone": "Europe/Berlin",
            "windows": [{"days": ["mon", "tue", "wed", "thu", "fri"],
                         "start": "08:00", "end": "18:00"}]}
# ... and after the keyboard added Friday 18:00-18:30.
FRIDAY_LONGER = {"timezone": "Europe/Berlin",
                 "windows": [{"days": ["mon", "tue", "wed", "thu"], "start": "08:00", "end": "18:00"},
                             {"days": ["fri"], "start": "08:00", "end": "18:30"}]}
FIVE_MB_PER_S = 5 * 1000 * 1000


class ScheduleUiTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ui_support.require_ui()
        cls.server = cls.start_class_server(nodes=[LOCKED])
        status, body = cls.server.api("POST", "/api/nodes", {
            "name": NODE, "type": "dimse", "ae_title": "WARDPACS", "host": "127.0.0.1",
            "port": harness.free_port(), "queryable": True})
        assert status == 201, body
        status, body = cls.server.api("POST", "/api/users", {
            "username": USER[0], "role": "user", "password": USER[1]})
        assert status == 201, body
        cls.shots = ui_support.screenshots_dir(cls.tmp)

    def run_scenarios(self, *names):
        # The API's own words for a throttle it refuses (a dry run changes nothing).
        status, refused = self.server.api("PUT", "/api/nodes/%s?dry_run=true" % NODE,
                                          {"max_bytes_per_second": -1000000})
        self.assertEqual((status, refused.get("field")), (400, "max_bytes_per_second"), refused)
        status, locked = self.server.api("GET", "/api/nodes/%s" % LOCKED["name"])
        self.assertEqual(status, 200, locked)
        env = {
            "PB_NODE": NODE, "PB_LOCKED": LOCKED["name"],
            "PB_LOCKED_AVAILABLE": "true" if locked["available"] else "false",
            "PB_THROTTLE_MESSAGE": refused["error"],
            "PB_USER": USER[0], "PB_USER_PASSWORD": USER[1],
        }
        ui_support.run_scenarios(self, self.server, "schedule.mjs", names, env, self.shots)

    def node(self, name=NODE):
        status, node = self.server.api("GET", "/api/nodes/%s" % name)
        self.assertEqual(status, 200, node)
        return node

    def updates_through_the_ui(self):
        """The audit log's changes of NODE made through a browser session, newest first."""
        status, audit = self.server.api("GET", "/api/audit?target_type=node&action=node.update")
        self.assertEqual(status, 200, audit)
        return [a for a in audit if a["target"] == NODE and a["via"] == "session"]

    def test_schedule_dialog(self):
        self.run_scenarios("conversions", "schedule")
        node = self.node()
        self.assertEqual(node["schedule"], WEEKDAYS)
        self.assertEqual(node["max_bytes_per_second"], FIVE_MB_PER_S)
        # One change: the dry runs of the live validation stored nothing.
        self.assertEqual(len(self.updates_through_the_ui()), 1)

        self.run_scenarios("keyboard")
        node = self.node()
        self.assertEqual(node["schedule"], FRIDAY_LONGER)
        self.assertEqual(node["max_bytes_per_second"], FIVE_MB_PER_S)
        self.assertEqual(len(self.updates_through_the_ui()), 2)

        # The locked node is shown read-only; the API refuses a change anyway, and it stays as
        # the config file says.
        self.run_scenarios("locked", "user")
        status, body = self.server.api("PUT", "/api/nodes/%s" % LOCKED["name"], {"schedule": None})
        self.assertJsonError(status, body, expected_status=403)
        locked = self.node(LOCKED["name"])
        self.assertTrue(locked["locked"])
        self.assertEqual((locked["schedule"], locked["max_bytes_per_second"]),
                         (LOCKED["schedule"], LOCKED["max_bytes_per_second"]))
        # The user's browser showed no way to change the schedule; the API refuses it too.
        status, body = self.server.api("PUT", "/api/nodes/%s" % NODE, {"schedule": None}, auth=USER)
        self.assertJsonError(status, body, expected_status=403)
        self.assertEqual(self.node()["schedule"], FRIDAY_LONGER)
        self.assertTrue((self.shots / "schedule.png").is_file())

        # A window the grid cannot show exactly, in a zone Chromium may name otherwise
        # (Asia/Calcutta): kept while only the throttle changes, then the grid's once a cell
        # changes.
        status, body = self.server.api("PUT", "/api/nodes/%s" % NODE, {"schedule": {
            "timezone": "Asia/Kolkata",
            "windows": [{"days": ["mon"], "start": "08:15", "end": "17:45"}]}})
        self.assertEqual(status, 200, body)
        self.run_scenarios("unaligned")
        node = self.node()
        self.assertEqual(node["schedule"], {
            "timezone": "Asia/Kolkata",
            "windows": [{"days": ["mon"], "start": "08:00", "end": "18:00"},
                        {"days": ["tue"], "start": "08:00", "end": "08:30"}]})
        self.assertEqual(node["max_bytes_per_second"], 500000)
        # The save of the throttle alone sent the window back as it was.
        saves = self.updates_through_the_ui()[::-1]  # oldest first
        self.assertEqual(len(saves), 4)
        self.assertEqual(saves[2]["after"]["schedule"]["windows"],
                         [{"days": ["mon"], "start": "08:15", "end": "17:45"}])
        self.assertEqual(saves[2]["after"]["max_bytes_per_second"], 500000)


if __name__ == "__main__":
    unittest.main()
