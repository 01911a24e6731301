"""The administration pages of the web UI in a real browser (ui/tests/admin.mjs: receivers with
their whitelist and rule editors and "Try it", users, API tokens, the audit log), with their
effects checked here through the API and DCMTK between the scenarios: the receiver the browser
added listens and admits only its whitelist (echoscu from 127.0.0.1 and, refused, from
127.0.0.2), and an instance stored to it is filed by the rule typed in the dialog; the account
it made is refused what a user may not do; the token it showed opens the API until it is
revoked.

The expected messages are the API's own words, asked here with requests that change nothing
(dry runs, refusals). Screenshots: see ui_support.py."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ui_support  # noqa: E402
from harness import dicomgen  # noqa: E402

AE = "UI_RECV"
USER = ("ui-user", "ui-User-pw-42")
TOKEN_NAME = "ci-script"
# A whitelist whose line 2 the API refuses, and the same list fixed.
BAD_WHITELIST = "# the test's senders\n10.0.0.1/24"
GOOD_WHITELIST = "# the test's senders\n127.0.0.1/32"
RULE = r"(0008,1030):^Study-(\d+)"
BAD_RULES = "# by study\n" + r"(0008,1030):^Study-(\d+"
# The instance stored to the receiver, and the same attributes as pasted into "Try it".
STUDY = {"study_description": "Study-42", "patient_name": "DOE^JOHN", "patient_id": "PID-7"}
TRY_ATTRIBUTES = "StudyDescription=Study-42\nPatientName=DOE^JOHN\n(0010,0020)=PID-7"


class WebUiAdminTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ui_support.require_ui()
        cls.server = cls.start_class_server()
        cls.shots = ui_support.screenshots_dir(cls.tmp)
        cls.out = cls.tmp / "out"  # the secret of the token the browser made
        cls.out.mkdir()
        cls.port = harness.free_receiver_port()

    def api_error(self, method, path, body, status=400):
        """The API's error for a request that changes nothing (a dry run or a refusal)."""
        got, answer = self.server.api(method, path, body)
        self.assertEqual(got, status, answer)
        return answer

    def scenario(self, name, **env):
        base = {"PB_RCV_AE": AE, "PB_RCV_PORT": str(self.port), "PB_RULE": RULE,
                "PB_USER": USER[0], "PB_USER_PASSWORD": USER[1], "PB_TOKEN_NAME": TOKEN_NAME,
                "PB_OUT": str(self.out)}
        base.update(env)
        ui_support.run_scenarios(self, self.server, "admin.mjs", [name], base, self.shots)

    def bearer(self, token):
        return self.server.api("GET", "/api/auth/me", auth=None,
                               headers={"Authorization": "Bearer " + token})

    def test_admin_pages(self):
        self.check_receivers()
        self.check_users_and_tokens()
        self.check_audit()
        for name in ("receivers", "receiver-dialog", "users", "tokens", "audit"):
            self.assertTrue((self.shots / ("%s.png" % name)).is_file(), name)

    def check_receivers(self):
        wl = self.api_error("POST", "/api/receivers?dry_run=true", {
            "ae_title": AE, "port": self.port, "whitelist_enabled": True,
            "whitelist": BAD_WHITELIST})
        self.assertEqual(wl["field"], "whitelist", wl)
        rule = self.api_error("POST", "/api/receivers?dry_run=true", {
            "ae_title": AE, "port": self.port, "routing": {"project": BAD_RULES}})
        self.assertEqual(rule["field"], "routing.project", rule)
        site = self.api_error("POST", "/api/routing/try", {
            "site_routing": {"project": BAD_RULES}, "attributes": {}})
        self.assertEqual(site["field"], "site_routing.project", site)
        unknown = self.api_error("POST", "/api/routing/try", {"sop_instance_uid": "1.2.3.4.5.6"},
                                 status=404)
        self.scenario("receivers",
                      PB_BAD_WHITELIST=BAD_WHITELIST, PB_GOOD_WHITELIST=GOOD_WHITELIST,
                      PB_BAD_WHITELIST_LINE="2", PB_BAD_WHITELIST_MESSAGE=wl["error"],
                      PB_BAD_RULES=BAD_RULES, PB_BAD_RULE_LINE="2",
                      PB_BAD_RULE_MESSAGE=rule["error"], PB_BAD_SITE_RULE_MESSAGE=site["error"],
                      PB_TRY_ATTRIBUTES=TRY_ATTRIBUTES, PB_UNKNOWN_UID="1.2.3.4.5.6",
                      PB_UNKNOWN_UID_MESSAGE=unknown["error"])

        # The receiver as the browser left it.
        status, r = self.server.api("GET", "/api/receivers/%s@%d" % (AE, self.port))
        self.assertEqual(status, 200, r)
        self.assertEqual((r["whitelist_enabled"], r["whitelist"].rstrip("\n"), r["bind"],
                          r["routing"]["project"], r["status"]),
                         (True, GOOD_WHITELIST, "127.0.0.1", RULE, "listening"), r)
        self.__class__.receiver_id = r["id"]
        # The site-wide rules typed on the page (to see an error, to try one) were not saved.
        self.assertEqual(self.server.api("GET", "/api/routing")[1],
                         {"project": "", "subject": "", "session": ""})

        # DCMTK: 127.0.0.1 is admitted; 127.0.0.2, not in the list, is refused.
        cp = harness.echoscu(self.port, AE)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        proxy = harness.SourceAddressProxy(self.port, "127.0.0.2")
        self.addCleanup(proxy.close)
        cp = harness.echoscu(proxy.port, AE)
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("Calling AE Title Not Recognized", cp.stdout + cp.stderr)

        # An instance whose Study Description the rule typed in the dialog reads is filed in
        # project 42 (the receiver anonymizes; a rule's label is kept as it is), with the
        # subject and session "Try it" showed for the same attributes (pseudonyms).
        files = dicomgen.generate(self.tmp / "study42", 1, **STUDY)
        cp = harness.storescu(self.port, AE, [files[0][0]])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        project = harness.wait_until(lambda: {
            p["name"]: p for p in harness.browse_labels(self.server)}.get("42"), timeout=30)
        self.assertTrue(project, harness.browse_labels(self.server))
        self.assertEqual(project["instances"], 1, project)
        shown = json.loads((self.out / "try.json").read_text())
        self.assertEqual(shown["project"], "42", shown)
        # (Anonymized: its UIDs are new, so it is found by its labels.)
        subjects = [s["name"] for s in harness.browse_labels(self.server, "42")]
        self.assertEqual(subjects, [shown["subject"]], shown)
        sessions = harness.browse_labels(self.server, "42", shown["subject"])
        self.assertEqual([(e["name"], e["instances"]) for e in sessions], [(shown["session"], 1)], shown)

    def check_users_and_tokens(self):
        weak = self.api_error("POST", "/api/users", {
            "username": USER[0], "role": "user", "password": "short"})
        self.assertEqual(weak["field"], "password", weak)
        last = self.api_error("PUT", "/api/users/admin", {"role": "user"}, status=409)
        self.scenario("users", PB_WEAK_PASSWORD_MESSAGE=weak["error"],
                      PB_LAST_ADMIN_MESSAGE=last["error"])

        status, user = self.server.api("GET", "/api/users/%s" % USER[0])
        self.assertEqual((status, user.get("role")), (200, "user"), user)
        self.assertEqual(self.server.api("GET", "/api/users/admin")[1]["role"], "admin")
        # The page showed the user no way to change receivers; the API refuses too.
        status, body = self.server.api("POST", "/api/receivers", {
            "ae_title": "NOPE", "port": harness.free_receiver_port()}, auth=USER)
        self.assertEqual(status, 403, body)

        # The secret the page showed opens the API as that user, with the role chosen.
        token = (self.out / "token.txt").read_text().strip()
        status, me = self.bearer(token)
        self.assertEqual((status, me.get("username"), me.get("role"), me.get("via")),
                         (200, USER[0], "read-only", "token"), me)
        status, listed = self.server.api("GET", "/api/tokens?all=true")
        mine = [t for t in listed if t["username"] == USER[0]]
        self.assertEqual([t["name"] for t in mine], [TOKEN_NAME], listed)
        self.assertIsNotNone(mine[0]["expires_at"])

        self.scenario("revoke")
        status, body = self.bearer(token)
        self.assertEqual(status, 401, body)

    def check_audit(self):
        self.scenario("audit", PB_RCV_ID=str(self.receiver_id))
        # What the page listed, by the API: made by admin, through the browser's session.
        status, log = self.server.api("GET", "/api/audit?target_type=receiver&action=receiver.create")
        made = [a for a in log if a["target"] == str(self.receiver_id)]
        self.assertEqual([(a["actor"], a["via"]) for a in made], [("admin", "session")], log)


if __name__ == "__main__":
    unittest.main()
