"""The web UI's Worklist page in a real browser (ui/tests/worklist.mjs): a node's Modality
Worklist for today (a Latin-1 name decoded), filtered by modality, station and date; each item's
Modality Performed Procedure Step started, completed with the archive's series, discontinued with
a reason, and refused by the peer; a read-only account that sees none of it. What the page did is
checked here without it, through the API: the steps we sent and the steps our own receiver got.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_ui_worklist.py
(with PACSBRIDGE_UI_DIR=$PWD/ui/dist to try a UI built after the server)

The worklist is DCMTK's wlmscpfs (-cs0: it answers without (0008,0005), so the node's
mwl_charset ISO_IR 100 decodes the Latin-1 name), with files written by test_worklist's helpers
(dump2dcm): three items for today and one for tomorrow. The MPPS peer is our own server: its
receiver has mpps on and is registered as the node "self", so every step the page sends is also
a step received, whose attributes show what went over the wire. One small study, stored to that
receiver, has the Study Instance UID of the first item: its series are what "Complete" offers.

The scenarios run in steps, with checks between them:
  list, start  - only "self" takes MPPS: Start sends at once;
  complete     - both series of the study, chosen by default;
  (the node "ris" then gets mpps on: wlmscpfs refuses an MPPS association, so Start asks which
   node, proposes the worklist's own, and shows the API's 502 in its words)
  discontinue  - started on "self" after that refusal, discontinued with reason 110514;
  refused      - a step completed behind the page's back: the page's Complete is refused by our
                 receiver (0x0110), in the API's words; the list then shows it completed;
  reader       - a read-only account: the node, no list, no action;
  none, no-mpps - no node with mwl on (said, with a link to the nodes); none with mpps on (the
                 list without Start).

Screenshots: see ui_support.py (worklist.png, worklist-complete.png)."""
import datetime
import json
import os
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_worklist as wl  # noqa: E402  (WorklistSCP, item(), dump2dcm files)
import ui_support  # noqa: E402
from harness import dicomgen  # noqa: E402

READER = ("wl-reader", "wl-Reader-pw-42")
AE = "PACSBRIDGE"
REASON = {"CodeValue": "110514", "CodingSchemeDesignator": "DCM",
          "CodeMeaning": "Incorrect worklist entry selected"}  # PS3.16 CID 9301
TOMORROW_ISO = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()


def without_extras(item):
    """A worklist item as POST /api/mpps takes it."""
    return {k: v for k, v in item.items() if k not in ("dicom", "mpps", "done")}


class WebUiWorklistTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ui_support.require_ui()
        cls.shots = ui_support.screenshots_dir(cls.tmp)

        # The study the first item schedules: 4 CT instances over 2 series.
        cls.study = dicomgen.generate(cls.tmp / "study", 4, series_per_study=2, modality="CT",
                                      patient_name="MUELLER^JOSE", patient_id="WUI1",
                                      study_date=wl.TODAY, accession_number="ACC-WUI1",
                                      series_description="Head")
        study_uid = cls.study[0][2]
        cls.items = [
            wl.item("WUI1", wl.LATIN1_NAME, wl.TODAY, "080000", "CT", "CT1",
                    RequestedProcedureDescription=wl.LATIN1_DESCRIPTION,
                    StudyInstanceUID=study_uid, charset="ISO_IR 100"),
            wl.item("WUI2", "DOE^JANE", wl.TODAY, "093000", "MR", "MR1"),
            wl.item("WUI3", "SMITH^ANNA", wl.TODAY, "110000", "CT", "CT1"),
        ]
        cls.later = wl.item("WUI4", "POE^EDGAR", wl.TOMORROW, "073000", "MR", "MR1")
        cls.ris = wl.WorklistSCP(cls.tmp / "wl", "-cs0")
        for it in cls.items + [cls.later]:
            cls.ris.add(it)
        cls._peers.append(cls.ris)
        cls.addClassCleanup(cls.ris.stop)
        cls.ris.start()

        cls.port = harness.free_port()
        cls.server = cls.start_class_server(ae_title=AE, receivers=[
            {"ae_title": AE, "port": cls.port, "bind": "127.0.0.1", "mpps": True}])
        for node in (
                {"name": "ris", "ae_title": cls.ris.aet, "port": cls.ris.port, "mwl": True,
                 "mwl_charset": "ISO_IR 100", "description": "wlmscpfs"},
                {"name": "self", "ae_title": AE, "port": cls.port, "mpps": True,
                 "description": "our own receiver"}):
            status, body = cls.server.api("POST", "/api/nodes", dict(
                node, type="dimse", host="127.0.0.1"))
            assert status == 201, body
        status, body = cls.server.api("POST", "/api/users", {
            "username": READER[0], "role": "read-only", "password": READER[1]})
        assert status == 201, body

        cp = harness.storescu(cls.port, AE, [f[0] for f in cls.study])
        assert cp.returncode == 0, harness.proc_output(cp)
        archived = harness.wait_until(lambda: [
            s["instance_count"] for s in cls.server.api(
                "GET", "/api/studies?StudyInstanceUID=%s" % study_uid)[1]] == [4], 30)
        assert archived, "the study did not reach the archive"

    # ---- helpers

    def scenario(self, name, **extra):
        def row(it, day=False):
            out = {"accession": it["AccessionNumber"], "name": it["PatientName"],
                   "pid": it["PatientID"], "modality": it["Modality"],
                   "station": it["ScheduledStationAETitle"],
                   "time": "%s:%s" % (it["ScheduledProcedureStepStartTime"][:2],
                                      it["ScheduledProcedureStepStartTime"][2:4]),
                   "procedure": it["RequestedProcedureDescription"]}
            if day:
                out["date"] = TOMORROW_ISO
            return out
        series = {}
        for _, _, _, se in self.study:
            series[se] = series.get(se, 0) + 1
        env = {"PB_RIS": "ris", "PB_SELF": "self",
               "PB_ITEMS": json.dumps([row(it) for it in self.items]),
               "PB_LATER": json.dumps(row(self.later, day=True)),
               "PB_SERIES": json.dumps(series),
               "PB_READER": READER[0], "PB_READER_PASSWORD": READER[1]}
        env.update(extra)
        ui_support.run_scenarios(self, self.server, "worklist.mjs", [name], env, self.shots)

    def steps(self, direction, accession):
        query = urllib.parse.urlencode({"direction": direction, "accession_number": accession})
        status, steps = self.server.api("GET", "/api/mpps?" + query)
        self.assertEqual(status, 200, steps)
        return steps

    def step(self, direction, uid):
        status, step = self.server.api("GET", "/api/mpps/%s?direction=%s" % (uid, direction))
        self.assertEqual(status, 200, step)
        return step

    def worklist_item(self, accession, date=""):
        status, answer = self.server.api("POST", "/api/nodes/ris/worklist", {
            "query": {"AccessionNumber": accession, "ScheduledProcedureStepStartDate": date}})
        self.assertEqual(status, 200, answer)
        self.assertEqual(len(answer["results"]), 1, answer)
        return answer["results"][0]

    def one_step_each_way(self, accession, status):
        """The one step we sent for the accession and the one our receiver got: the same SOP
        Instance UID, both in `status`. Returns the received step, with its attributes."""
        sent, received = self.steps("sent", accession), self.steps("received", accession)
        self.assertEqual([(s["node"], s["status"]) for s in sent], [("self", status)], sent)
        self.assertEqual([(s["calling_ae_title"], s["status"]) for s in received],
                         [(AE, status)], received)
        self.assertEqual(sent[0]["sop_instance_uid"], received[0]["sop_instance_uid"])
        return self.step("received", received[0]["sop_instance_uid"])

    # ---- the page, step by step

    def test_1_start_complete_discontinue_and_refusal(self):
        first, second, third = self.items
        self.scenario("list")
        self.assertEqual(self.steps("sent", first["AccessionNumber"]), [], "listing sent nothing")

        self.scenario("start")
        got = self.one_step_each_way(first["AccessionNumber"], "IN PROGRESS")
        a = got["attributes"]
        self.assertEqual((a["PatientName"], a["PatientID"]), (wl.LATIN1_NAME, "WUI1"), a)
        ssa = a["ScheduledStepAttributesSequence"][0]
        self.assertEqual((ssa["AccessionNumber"], ssa["StudyInstanceUID"],
                          ssa["ScheduledProcedureStepID"]),
                         ("ACC-WUI1", self.study[0][2], "SPS-WUI1"), ssa)
        for other in (second, third):
            self.assertEqual(self.steps("sent", other["AccessionNumber"]), [])

        self.scenario("complete")
        got = self.one_step_each_way(first["AccessionNumber"], "COMPLETED")
        performed = got["attributes"]["PerformedSeriesSequence"]
        self.assertEqual(sorted(s["SeriesInstanceUID"] for s in performed),
                         sorted({f[3] for f in self.study}), performed)
        self.assertEqual(sorted(r["ReferencedSOPInstanceUID"] for s in performed
                                for r in s["ReferencedImageSequence"]),
                         sorted(f[1] for f in self.study), performed)
        self.assertTrue(self.worklist_item("ACC-WUI1", wl.TODAY)["done"])
        # What our receiver answers an N-SET on a completed step, in the API's words.
        status, nset = self.server.api("PUT", "/api/mpps/%s" % got["sop_instance_uid"],
                                       {"status": "COMPLETED"}, timeout=60)
        self.assertJsonError(status, nset, field="status", expected_status=409)
        self.assertIn("0x0110", nset["error"])

        # A second node takes MPPS: the worklist's own, which cannot (wlmscpfs refuses the
        # association). Its refusal, asked with tomorrow's item: nothing is recorded for it.
        status, body = self.server.api("PUT", "/api/nodes/ris", {"mpps": True})
        self.assertEqual(status, 200, body)
        status, ris = self.server.api("POST", "/api/mpps", {
            "node": "ris", "item": without_extras(self.worklist_item("ACC-WUI4"))}, timeout=60)
        self.assertJsonError(status, ris, expected_status=502)
        self.assertEqual(self.steps("sent", "ACC-WUI4"), [])

        self.scenario("discontinue", PB_RIS_MESSAGE=ris["error"])
        got = self.one_step_each_way(second["AccessionNumber"], "DISCONTINUED")
        reason = got["attributes"]["PerformedProcedureStepDiscontinuationReasonCodeSequence"]
        self.assertEqual(reason[0]["CodeValue"], "110514", reason)
        self.assertEqual({k: reason[0][k] for k in REASON}, REASON, reason)
        self.assertEqual(self.worklist_item("ACC-WUI2", wl.TODAY)["mpps"]["status"],
                         "DISCONTINUED")

        self.scenario("refused", PB_NSET_MESSAGE=nset["error"])
        got = self.one_step_each_way(third["AccessionNumber"], "COMPLETED")
        self.assertEqual(got["attributes"].get("PerformedSeriesSequence"), [], got)
        sent = self.step("sent", got["sop_instance_uid"])
        self.assertEqual([(h["command"], h["status"], h["accepted"]) for h in sent["history"]],
                         [("N-CREATE", "IN PROGRESS", True), ("N-SET", "COMPLETED", True),
                          ("N-SET", "COMPLETED", False)], sent["history"])

        self.assertEqual(self.steps("sent", "ACC-WUI4"), [], "tomorrow's item was not touched")
        for name in ("worklist", "worklist-complete"):
            self.assertTrue((self.shots / ("%s.png" % name)).is_file(), name)

    def set_nodes(self, changes):
        """PUT each node's changes ({name: {field: value}}); put back as they were after the
        test."""
        for name, fields in changes.items():
            status, node = self.server.api("GET", "/api/nodes/%s" % name)
            self.assertEqual(status, 200, node)
            self.addCleanup(self.server.api, "PUT", "/api/nodes/%s" % name,
                            {k: node[k] for k in fields})
            status, body = self.server.api("PUT", "/api/nodes/%s" % name, fields)
            self.assertEqual(status, 200, body)

    def test_3_without_worklist_or_mpps_node(self):
        self.set_nodes({"ris": {"mwl": False}})
        self.scenario("none")
        self.set_nodes({"ris": {"mwl": True, "mpps": False}, "self": {"mpps": False}})
        self.scenario("no-mpps")

    def test_2_read_only_account(self):
        self.scenario("reader")
        status, body = self.server.api("POST", "/api/nodes/ris/worklist", {"query": {}},
                                       auth=READER)
        self.assertEqual(status, 403, body)
        status, body = self.server.api("POST", "/api/mpps", {
            "node": "self", "item": without_extras(self.worklist_item("ACC-WUI4"))},
            auth=READER)
        self.assertEqual(status, 403, body)


if __name__ == "__main__":
    unittest.main()
