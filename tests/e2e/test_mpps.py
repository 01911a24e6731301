"""Modality Performed Procedure Step (PS3.4 Annex F): the MPPS client (POST /api/mpps, PUT
/api/mpps/{uid}) and the MPPS receivers (mpps on), against

  - a second pacsbridge ("B") whose receiver MPPSB has mpps on (and NOMPPS beside it, off);
  - tests/peers/mpps_peer.mjs, an independent MPPS SCP/SCU on the npm package dcmjs-dimse
    (ui/node_modules): as SCP it records every N-CREATE / N-SET it gets (DICOM JSON) and keeps
    the PS3.4 F.7.2 transitions; as SCU it plays a modality against B's receivers;
  - DCMTK's wlmscpfs serving worklist files written here (test_worklist's WorklistSCP and
    dump2dcm), which server "A" queries through its node "mwl".

Every expected value comes from the worklist files and the data written here, or from the
standard (PS3.4 F.7.2, PS3.7 C.4, PS3.16 CID 9300); dates are this process's local calendar
(the server's: same machine, same environment).

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_mpps.py
"""

import datetime
import json
import subprocess
import os
import sys
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_worklist as wl  # noqa: E402  (WorklistSCP, item(), dump2dcm files)
from harness import dicomgen  # noqa: E402

PEER_SCRIPT = harness.REPO_ROOT / "tests" / "peers" / "mpps_peer.mjs"

# DIMSE-N statuses (PS3.7 C.4, PS3.4 F.7.2.1.2 / F.7.2.2.2).
PROCESSING_FAILURE = 0x0110
INVALID_ATTRIBUTE_VALUE = 0x0106
DUPLICATE_SOP_INSTANCE = 0x0111
NO_SUCH_SOP_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
# PS3.4 F.7.2.2.4: an N-SET on a step no longer IN PROGRESS.
NO_LONGER_UPDATED = "Performed Procedure Step Object may no longer be updated"
ERROR_ID_NO_LONGER_UPDATED = 0xA710

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"  # not an image: a non-image composite reference

# Tags (DICOM JSON, PS3.18 F.2).
T_STATUS = "00400252"              # Performed Procedure Step Status
T_SSA = "00400270"                 # Scheduled Step Attributes Sequence
T_STUDY_UID = "0020000D"
T_ACCESSION = "00080050"
T_SPS_ID = "00400009"              # Scheduled Procedure Step ID
T_RP_ID = "00401001"               # Requested Procedure ID
T_PROTOCOL_CODES = "00400008"      # Scheduled Protocol Code Sequence
T_PATIENT_NAME = "00100010"
T_PATIENT_ID = "00100020"
T_MODALITY = "00080060"
T_STATION_AE = "00400241"          # Performed Station AE Title
T_STATION_NAME = "00400242"        # Performed Station Name
T_LOCATION = "00400243"            # Performed Location
T_START_DATE = "00400244"
T_START_TIME = "00400245"
T_END_DATE = "00400250"
T_END_TIME = "00400251"
T_PPS_ID = "00400253"              # Performed Procedure Step ID
T_PROCEDURE_CODES = "00081032"     # Procedure Code Sequence
T_SERIES = "00400340"              # Performed Series Sequence
T_REASON = "00400281"              # PPS Discontinuation Reason Code Sequence
CODE_TAGS = wl.CODE_TAGS

RP_CODES_1 = [{"CodeValue": "RPC-ABD", "CodingSchemeDesignator": "99LOCAL",
               "CodeMeaning": "CT Abdomen"}]
PROTOCOLS_1 = [{"CodeValue": "PROT-41", "CodingSchemeDesignator": "99LOCAL",
                "CodeMeaning": "Abdomen routine"},
               {"CodeValue": "PROT-42", "CodingSchemeDesignator": "99LOCAL",
                "CodeMeaning": "Abdomen delayed"}]
RP_CODES_2 = [{"CodeValue": "RPC-KNEE", "CodingSchemeDesignator": "99LOCAL",
               "CodeMeaning": "MR Knee"}]
PROTOCOLS_2 = [{"CodeValue": "PROT-77", "CodingSchemeDesignator": "99LOCAL",
                "CodeMeaning": "Knee standard"}]

# PatientID -> worklist item (all scheduled today, so the default query finds them).
ITEMS = {it["PatientID"]: it for it in (
    # Scenario 1: performed through server B.
    wl.item("MPPS1", "CURIE^MARIE", wl.TODAY, "081500", "CT", "CT7",
            ScheduledStationName="CT SCANNER 7", ScheduledProcedureStepLocation="ROOM 7",
            RequestedProcedureCodeSequence=RP_CODES_1,
            ScheduledProtocolCodeSequence=PROTOCOLS_1),
    # Scenario 2: performed through the independent peer.
    wl.item("MPPS2", "BOHR^NIELS", wl.TODAY, "091500", "MR", "MR3",
            ScheduledStationName="MR ROOM 3", ScheduledProcedureStepLocation="WING B",
            RequestedProcedureCodeSequence=RP_CODES_2,
            ScheduledProtocolCodeSequence=PROTOCOLS_2),
    # Discontinued without a reason (the default code).
    wl.item("MPPS3", "MEITNER^LISE", wl.TODAY, "101500", "CT", "CT7"),
    # Refusals.
    wl.item("MPPS4", "NOETHER^EMMY", wl.TODAY, "111500", "CT", "CT7"),
    # Nobody performs it.
    wl.item("MPPS5", "LOVELACE^ADA", wl.TODAY, "121500", "MR", "MR3"),
)}


def new_uid():
    return "2.25.%d" % uuid.uuid4().int


def first(ds, tag):
    """The first value of tag in a DICOM JSON data set (None when absent or empty)."""
    values = (ds or {}).get(tag, {}).get("Value")
    return values[0] if values else None


def items_of(ds, tag):
    """The items of a sequence of a DICOM JSON data set ([] when empty, None when absent)."""
    if tag not in (ds or {}):
        return None
    return ds[tag].get("Value") or []


def codes_of(ds, tag):
    return [{k: first(c, CODE_TAGS[k]) for k in wl.CODE_KEYS} for c in items_of(ds, tag) or []]


def local_dates_around(call):
    """Run call(); the local dates (YYYYMMDD) before and after it, and call()'s result."""
    before = datetime.datetime.now()
    out = call()
    after = datetime.datetime.now()
    return {before.strftime("%Y%m%d"), after.strftime("%Y%m%d")}, before, after, out


class MppsPeer(harness._Process):
    """node tests/peers/mpps_peer.mjs scp: called AE title `aet`, records to record.jsonl."""

    name = "mpps_peer"

    def __init__(self, workdir, aet="MPPSPEER"):
        super().__init__(workdir)
        self.aet = aet
        self.port = harness.free_port()
        self.record = self.workdir / "record.jsonl"

    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["node", str(PEER_SCRIPT), "scp", "--port", str(self.port), "--ae", self.aet,
                 "--record", str(self.record)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=str(self.workdir), env=harness.tool_env())
        finally:
            log.close()
        up = harness.wait_until(lambda: not self.running() or "listening" in self.log_tail(),
                                timeout, 0.1)
        if not (up and self.running()):
            raise AssertionError("mpps_peer scp did not listen within %ss; log:\n%s"
                                 % (timeout, self.log_tail()))
        return self

    def records(self, uid=None):
        try:
            lines = self.record.read_text("utf-8").splitlines()
        except OSError:
            return []
        out = [json.loads(line) for line in lines if line.strip()]
        return [r for r in out if uid is None or r.get("sop_instance_uid") == uid]


def mpps_scu(port, called, operation, uid, dataset, calling="MODALITY1", timeout=60):
    """One N-CREATE / N-SET by mpps_peer.mjs scu: (CompletedProcess, parsed answer or None)."""
    cp = harness.run_tool(["node", PEER_SCRIPT, "scu", "--host", "127.0.0.1", "--port", port,
                           "--called", called, "--calling", calling, operation, "--uid", uid,
                           "--dataset", "-", "--timeout", "20"],
                          timeout=timeout, input=json.dumps(dataset))
    answer = None
    if cp.returncode == 0 and cp.stdout.strip():
        answer = json.loads(cp.stdout.strip().splitlines()[-1])
    return cp, answer


def cs(v):
    return {"vr": "CS", "Value": [v]}


def modality_create(study_uid, accession, status="IN PROGRESS", patient_id="MODPID",
                    step_id="SPS-MOD"):
    """An N-CREATE data set as a modality sends it (PS3.4 Table F.7.2-1, the main ones)."""
    ds = {
        T_SSA: {"vr": "SQ", "Value": [{
            T_STUDY_UID: {"vr": "UI", "Value": [study_uid]},
            T_ACCESSION: {"vr": "SH", "Value": [accession]},
            T_SPS_ID: {"vr": "SH", "Value": [step_id]},
            T_RP_ID: {"vr": "SH", "Value": ["RP-MOD"]},
        }]},
        T_PATIENT_NAME: {"vr": "PN", "Value": [{"Alphabetic": "MODALITY^PATIENT"}]},
        T_PATIENT_ID: {"vr": "LO", "Value": [patient_id]},
        T_MODALITY: cs("CT"),
        T_STATION_AE: {"vr": "AE", "Value": ["MODALITY1"]},
        T_PPS_ID: {"vr": "SH", "Value": ["PPS-1"]},
        T_START_DATE: {"vr": "DA", "Value": [wl.TODAY]},
        T_START_TIME: {"vr": "TM", "Value": ["101010"]},
        T_END_DATE: {"vr": "DA"},
        T_END_TIME: {"vr": "TM"},
        T_SERIES: {"vr": "SQ", "Value": []},
    }
    if status is not None:
        ds[T_STATUS] = cs(status)
    return ds


def modality_set(status):
    return {T_STATUS: cs(status), T_END_DATE: {"vr": "DA", "Value": [wl.TODAY]},
            T_END_TIME: {"vr": "TM", "Value": ["111111"]}}


class MppsTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        if not (harness.REPO_ROOT / "ui" / "node_modules" / "dcmjs-dimse").is_dir():
            raise AssertionError("ui/node_modules/dcmjs-dimse missing: run `npm ci` in ui/")
        cls.wlm = wl.WorklistSCP(cls.tmp / "wl", "-csk")
        for it in ITEMS.values():
            cls.wlm.add(it)
        cls._peers.append(cls.wlm)
        cls.addClassCleanup(cls.wlm.stop)
        cls.wlm.start()

        cls.peer = MppsPeer(cls.tmp / "peer")
        cls._peers.append(cls.peer)
        cls.addClassCleanup(cls.peer.stop)
        cls.peer.start()

        cls.b_mpps_port, cls.b_plain_port = harness.free_port(), harness.free_port()
        cls.b = cls.start_class_server(ae_title="SERVERB", receivers=[
            {"ae_title": "MPPSB", "port": cls.b_mpps_port, "bind": "127.0.0.1", "mpps": True},
            {"ae_title": "NOMPPS", "port": cls.b_plain_port, "bind": "127.0.0.1"}])
        cls.a = cls.start_class_server(ae_title="SERVERA", receivers=[
            {"ae_title": "SERVERA", "port": harness.free_port(), "bind": "127.0.0.1"}])
        cls.down_port = harness.free_port()  # nothing ever listens there
        for name, ae, port, extra in (
                ("mwl", "WLMSCP", cls.wlm.port, {"mwl": True}),
                ("b-mpps", "MPPSB", cls.b_mpps_port, {"mpps": True}),
                ("peer", cls.peer.aet, cls.peer.port, {"mpps": True}),
                ("no-mpps", "MPPSB", cls.b_mpps_port, {}),
                ("b-plain", "NOMPPS", cls.b_plain_port, {"mpps": True}),
                ("down", "MPPSDOWN", cls.down_port, {"mpps": True})):
            body = {"name": name, "ae_title": ae, "host": "127.0.0.1", "port": port}
            body.update(extra)
            status, answer = cls.a.api("POST", "/api/nodes", body)
            if status != 201:
                raise AssertionError("POST /api/nodes %r -> %s %r" % (body, status, answer))
        body = {"name": "mwl", "ae_title": "WLMSCP", "host": "127.0.0.1", "port": cls.wlm.port,
                "mwl": True}
        status, answer = cls.b.api("POST", "/api/nodes", body)
        if status != 201:
            raise AssertionError("POST /api/nodes on B %r -> %s %r" % (body, status, answer))

    # ---- helpers

    def worklist_item(self, pid, server=None):
        """The worklist item of PatientID pid as A's (or server's) worklist gives it."""
        status, answer = (server or self.a).api("POST", "/api/nodes/mwl/worklist",
                                    {"query": {"PatientID": pid}})
        self.assertEqual(status, 200, answer)
        results = answer.get("results")
        self.assertEqual([r.get("PatientID") for r in results or []], [pid], answer)
        return results[0]

    def start_step(self, node, pid, expect=201, **extra):
        item = self.worklist_item(pid)
        body = {"node": node, "item": item}
        body.update(extra)
        status, step = self.a.api("POST", "/api/mpps", body, timeout=60)
        if expect is not None:
            self.assertEqual(status, expect, "POST /api/mpps %s -> %r" % (node, step))
        return status, step

    def put(self, uid, body, server=None):
        return (server or self.a).api("PUT", "/api/mpps/%s" % uid, body, timeout=60)

    def get_step(self, server, uid, direction=None):
        path = "/api/mpps/%s" % uid + ("?direction=%s" % direction if direction else "")
        status, step = server.api("GET", path)
        self.assertEqual(status, 200, "GET %s -> %s %r" % (path, status, step))
        return step

    def list_steps(self, server, **query):
        import urllib.parse
        path = "/api/mpps" + ("?" + urllib.parse.urlencode(query) if query else "")
        status, steps = server.api("GET", path)
        self.assertEqual(status, 200, "GET %s -> %s %r" % (path, status, steps))
        self.assertIsInstance(steps, list, steps)
        return steps

    def peer_record(self, uid, command, count=1):
        """The count-th record of `command` for uid at the peer (waits for it)."""
        def found():
            return [r for r in self.peer.records(uid) if r["command"] == command]
        recs = harness.wait_until(lambda: len(found()) >= count and found(), timeout=10)
        self.assertTrue(recs and len(recs) >= count,
                        "no %d %s for %s at the peer: %r" % (count, command, uid,
                                                             self.peer.records(uid)))
        return recs[count - 1]

    def assertCodes(self, got, expected, where):
        self.assertIsInstance(got, list, "%s: %r" % (where, got))
        self.assertEqual([{k: c.get(k) for k in wl.CODE_KEYS} for c in got], expected,
                         "%s: %r" % (where, got))

    def store_study(self, server, port, ae, study_uid, accession, patient_id, series):
        """Write and storescu a study: series = [(series uid, modality, sop class, count,
        description)]. Waits until the archive has every instance; {series uid: [(class,
        sop uid)]}."""
        out = self.mkdtemp("study")
        files, expected = [], {}
        n = 0
        for s_index, (series_uid, modality, sop_class, count, description) in enumerate(series):
            for i in range(count):
                n += 1
                sop_uid = new_uid()
                path = out / ("%03d.dcm" % n)
                dicomgen.write_instance(
                    path, sop_uid=sop_uid, study_uid=study_uid, series_uid=series_uid,
                    patient_name="STORED^PATIENT", patient_id=patient_id, size=2048,
                    modality=modality, sop_class=sop_class, instance_number=i + 1,
                    series_number=s_index + 1, accession_number=accession,
                    series_description=description)
                files.append(path)
                expected.setdefault(series_uid, []).append((sop_class, sop_uid))
        cp = harness.storescu(port, ae, files, calling_ae="MODALITY1")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertTrue(harness.wait_until(
            lambda: harness.studies_by_uid(server).get(study_uid, {}).get("instance_count")
            == n, timeout=20), harness.studies_by_uid(server).get(study_uid))
        return expected

    def assertNoLongerUpdated(self, status, body, uid):
        """PUT on a step the peer no longer lets change: 409 with its 0110 and meaning."""
        self.assertJsonError(status, body, field="status", expected_status=409)
        self.assertEqual(body.get("dimse_status"), PROCESSING_FAILURE, body)
        self.assertEqual(body.get("sop_instance_uid"), uid, body)
        self.assertIn("0x0110", body["error"], body)
        self.assertIn("Processing failure", body["error"], body)
        self.assertIn("may no longer be updated", body["error"], body)

    # ---- 1. MPPS client against our own server (B's receiver with mpps on)

    def test_1_step_through_our_own_receiver(self):
        expected = ITEMS["MPPS1"]
        item = self.worklist_item("MPPS1")
        self.assertIsNone(item.get("mpps"), item)
        self.assertIs(item.get("done"), False, item)

        dates, _, _, (status, step) = local_dates_around(
            lambda: self.a.api("POST", "/api/mpps", {"node": "b-mpps", "item": item},
                               timeout=60))
        self.assertEqual(status, 201, step)
        uid = step.get("sop_instance_uid")
        self.assertTrue(uid, step)
        self.assertEqual((step.get("direction"), step.get("status"), step.get("node")),
                         ("sent", "IN PROGRESS", "b-mpps"), step)

        # B has it, as received from A.
        listed = [s for s in self.list_steps(self.b, direction="received")
                  if s.get("sop_instance_uid") == uid]
        self.assertEqual(len(listed), 1, self.list_steps(self.b))
        got = listed[0]
        self.assertEqual({k: got.get(k) for k in (
            "direction", "status", "accession_number", "study_instance_uid", "patient_id",
            "scheduled_step_id", "calling_ae_title", "receiver_ae_title", "modality")}, {
            "direction": "received", "status": "IN PROGRESS",
            "accession_number": expected["AccessionNumber"],
            "study_instance_uid": expected["StudyInstanceUID"],
            "patient_id": expected["PatientID"],
            "scheduled_step_id": expected["ScheduledProcedureStepID"],
            "calling_ae_title": "SERVERA", "receiver_ae_title": "MPPSB",
            "modality": expected["Modality"]}, got)
        self.assertEqual([s.get("sop_instance_uid")
                          for s in self.list_steps(self.b, direction="sent")], [])

        # What B received, attribute by attribute (PS3.4 Table F.7.2-1 from the item).
        attrs = self.get_step(self.b, uid, "received")["attributes"]
        ssa = attrs.get("ScheduledStepAttributesSequence")
        self.assertIsInstance(ssa, list, attrs)
        self.assertEqual(len(ssa), 1, ssa)
        for kw in ("StudyInstanceUID", "AccessionNumber", "RequestedProcedureID",
                   "RequestedProcedureDescription", "ScheduledProcedureStepID",
                   "ScheduledProcedureStepDescription"):
            self.assertEqual(ssa[0].get(kw), expected[kw], "%s: %r" % (kw, ssa[0]))
        self.assertEqual(ssa[0].get("ReferencedStudySequence"), [], ssa[0])
        self.assertCodes(ssa[0].get("ScheduledProtocolCodeSequence"), PROTOCOLS_1,
                         "ScheduledStepAttributesSequence.ScheduledProtocolCodeSequence")
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "Modality"):
            self.assertEqual(attrs.get(kw), expected[kw], "%s: %r" % (kw, attrs))
        self.assertEqual(attrs.get("ReferencedPatientSequence"), [], attrs)
        self.assertEqual(attrs.get("PerformedStationAETitle"),
                         expected["ScheduledStationAETitle"], attrs)
        self.assertEqual(attrs.get("PerformedStationName"), expected["ScheduledStationName"],
                         attrs)
        self.assertEqual(attrs.get("PerformedLocation"),
                         expected["ScheduledProcedureStepLocation"], attrs)
        self.assertEqual(attrs.get("PerformedProcedureStepStatus"), "IN PROGRESS", attrs)
        self.assertIn(attrs.get("PerformedProcedureStepStartDate"), dates, attrs)
        self.assertRegex(attrs.get("PerformedProcedureStepStartTime") or "", r"^\d{6}", attrs)
        self.assertEqual(attrs.get("PerformedProcedureStepEndDate"), "", attrs)
        self.assertEqual(attrs.get("PerformedProcedureStepEndTime"), "", attrs)
        self.assertTrue(attrs.get("PerformedProcedureStepID"), attrs)
        self.assertEqual(attrs.get("PerformedProcedureStepDescription"),
                         expected["ScheduledProcedureStepDescription"], attrs)
        self.assertEqual(attrs.get("PerformedProcedureTypeDescription"),
                         expected["RequestedProcedureDescription"], attrs)
        self.assertCodes(attrs.get("ProcedureCodeSequence"), RP_CODES_1, "ProcedureCodeSequence")
        self.assertCodes(attrs.get("PerformedProtocolCodeSequence"), PROTOCOLS_1,
                         "PerformedProtocolCodeSequence")
        self.assertEqual(attrs.get("PerformedSeriesSequence"), [], attrs)

        # The study the procedure produced, in A's archive: a CT series and an SR.
        ct_series, sr_series = new_uid(), new_uid()
        produced = self.store_study(
            self.a, self.a.dicom_port, self.a.dicom_ae, expected["StudyInstanceUID"],
            expected["AccessionNumber"], expected["PatientID"],
            [(ct_series, "CT", CT_IMAGE_STORAGE, 3, "ABDOMEN AXIAL"),
             (sr_series, "SR", BASIC_TEXT_SR, 1, "DOSE REPORT")])
        step = self.get_step(self.a, uid, "sent")
        self.assertEqual([(s.get("StudyInstanceUID"), s.get("instance_count"))
                          for s in step.get("studies", [])],
                         [(expected["StudyInstanceUID"], 4)], step)

        status, done = self.put(uid, {"status": "COMPLETED", "series": [ct_series, sr_series]})
        self.assertEqual(status, 200, done)
        self.assertEqual((done.get("sop_instance_uid"), done.get("status")), (uid, "COMPLETED"),
                         done)

        got = self.get_step(self.b, uid, "received")
        self.assertEqual(got.get("status"), "COMPLETED", got)
        self.assertEqual([h.get("command") for h in got.get("history", [])],
                         ["N-CREATE", "N-SET"], got)
        attrs = got["attributes"]
        self.assertEqual(attrs.get("PerformedProcedureStepStatus"), "COMPLETED", attrs)
        self.assertIn(attrs.get("PerformedProcedureStepEndDate"),
                      dates | {datetime.date.today().strftime("%Y%m%d")}, attrs)
        self.assertRegex(attrs.get("PerformedProcedureStepEndTime") or "", r"^\d{6}", attrs)
        performed = attrs.get("PerformedSeriesSequence")
        self.assertIsInstance(performed, list, attrs)
        by_uid = {s.get("SeriesInstanceUID"): s for s in performed}
        self.assertEqual(sorted(by_uid), sorted([ct_series, sr_series]), performed)
        self.assertEqual(len(performed), 2, performed)
        for series_uid, description, images, others in (
                (ct_series, "ABDOMEN AXIAL", produced[ct_series], []),
                (sr_series, "DOSE REPORT", [], produced[sr_series])):
            s = by_uid[series_uid]
            self.assertEqual(s.get("RetrieveAETitle"), "SERVERA", s)
            self.assertEqual(s.get("SeriesDescription"), description, s)
            self.assertTrue(s.get("ProtocolName"), "ProtocolName is type 1: %r" % s)
            refs = lambda key: sorted(  # noqa: E731
                (r.get("ReferencedSOPClassUID"), r.get("ReferencedSOPInstanceUID"))
                for r in s.get(key) or [])
            self.assertEqual(refs("ReferencedImageSequence"), sorted(images), s)
            self.assertEqual(refs("ReferencedNonImageCompositeSOPInstanceSequence"),
                             sorted(others), s)
        # The same in DICOM JSON.
        series_json = items_of(got["dicom"], T_SERIES)
        self.assertEqual(sorted(first(s, "0020000E") for s in series_json),
                         sorted([ct_series, sr_series]), got["dicom"].get(T_SERIES))

        # A's worklist: the item is done.
        item = self.worklist_item("MPPS1")
        self.assertIs(item.get("done"), True, item)
        self.assertEqual({k: (item.get("mpps") or {}).get(k)
                          for k in ("sop_instance_uid", "direction", "status")},
                         {"sop_instance_uid": uid, "direction": "sent", "status": "COMPLETED"},
                         item)
        # The others are not.
        other = self.worklist_item("MPPS5")
        self.assertEqual((other.get("mpps"), other.get("done")), (None, False), other)

        # Once COMPLETED the step cannot change: B answers 0110 (A710), A says so.
        status, body = self.put(uid, {"status": "DISCONTINUED"})
        self.assertNoLongerUpdated(status, body, uid)
        step = self.get_step(self.a, uid, "sent")
        self.assertEqual(step.get("status"), "COMPLETED", step)
        history = step.get("history", [])
        self.assertEqual([(h.get("command"), h.get("accepted")) for h in history],
                         [("N-CREATE", True), ("N-SET", True), ("N-SET", False)], history)
        self.assertIn("may no longer be updated", history[-1].get("outcome", ""), history)
        self.assertTrue(all(h.get("at") for h in history), history)
        self.assertEqual(self.get_step(self.b, uid, "received").get("status"), "COMPLETED")
        # Still listed as done.
        self.assertIs(self.worklist_item("MPPS1").get("done"), True)

    # ---- 2. MPPS client against the independent peer

    def test_2_step_through_the_independent_peer(self):
        expected = ITEMS["MPPS2"]
        item = self.worklist_item("MPPS2")
        dates, before, after, (status, step) = local_dates_around(
            lambda: self.a.api("POST", "/api/mpps", {"node": "peer", "item": item}, timeout=60))
        self.assertEqual(status, 201, step)
        uid = step["sop_instance_uid"]
        self.assertEqual((step.get("direction"), step.get("status"), step.get("node")),
                         ("sent", "IN PROGRESS", "peer"), step)

        rec = self.peer_record(uid, "N-CREATE")
        self.assertEqual((rec["status"], rec["calling_ae"]), (0, "SERVERA"), rec)
        ds = rec["dataset"]
        self.assertEqual(first(ds, T_STATUS), "IN PROGRESS", ds)
        ssa = items_of(ds, T_SSA)
        self.assertIsInstance(ssa, list, ds)
        self.assertEqual(len(ssa), 1, ds.get(T_SSA))
        self.assertEqual((first(ssa[0], T_STUDY_UID), first(ssa[0], T_ACCESSION),
                          first(ssa[0], T_SPS_ID), first(ssa[0], T_RP_ID)),
                         (expected["StudyInstanceUID"], expected["AccessionNumber"],
                          expected["ScheduledProcedureStepID"],
                          expected["RequestedProcedureID"]), ssa[0])
        self.assertEqual(codes_of(ssa[0], T_PROTOCOL_CODES), PROTOCOLS_2, ssa[0])
        self.assertEqual(first(ds, T_PATIENT_ID), expected["PatientID"], ds)
        self.assertEqual((first(ds, T_PATIENT_NAME) or {}).get("Alphabetic"),
                         expected["PatientName"], ds)
        self.assertEqual(first(ds, T_MODALITY), expected["Modality"], ds)
        self.assertEqual(first(ds, T_STATION_AE), expected["ScheduledStationAETitle"], ds)
        self.assertEqual(first(ds, T_STATION_NAME), expected["ScheduledStationName"], ds)
        self.assertEqual(first(ds, T_LOCATION), expected["ScheduledProcedureStepLocation"], ds)
        self.assertEqual(codes_of(ds, T_PROCEDURE_CODES), RP_CODES_2, ds)
        self.assertTrue(first(ds, T_PPS_ID), "no Performed Procedure Step ID: %r" % ds)
        self.assertIn(first(ds, T_START_DATE), dates, ds)
        start = first(ds, T_START_TIME) or ""
        self.assertRegex(start, r"^\d{6}", ds)
        started = datetime.datetime.strptime(first(ds, T_START_DATE) + start[:6],
                                             "%Y%m%d%H%M%S")
        self.assertTrue(before.replace(microsecond=0) - datetime.timedelta(seconds=1)
                        <= started <= after + datetime.timedelta(seconds=1),
                        "start %s not between %s and %s" % (started, before, after))
        # Type 2, empty at N-CREATE: present without a value.
        for tag in (T_END_DATE, T_END_TIME):
            self.assertIn(tag, ds)
            self.assertIsNone(first(ds, tag), ds[tag])
        self.assertIn(T_SERIES, ds, "no Performed Series Sequence")
        self.assertEqual((ds[T_SERIES].get("vr"), items_of(ds, T_SERIES)), ("SQ", []), ds[T_SERIES])

        reason = {"CodeValue": "110514", "CodingSchemeDesignator": "DCM",
                  "CodeMeaning": "Incorrect worklist entry selected"}  # PS3.16 CID 9300
        dates, _, _, (status, step) = local_dates_around(
            lambda: self.put(uid, {"status": "DISCONTINUED", "reason": reason}))
        self.assertEqual(status, 200, step)
        self.assertEqual(step.get("status"), "DISCONTINUED", step)
        rec = self.peer_record(uid, "N-SET")
        self.assertEqual(rec["status"], 0, rec)
        ds = rec["dataset"]
        self.assertEqual(first(ds, T_STATUS), "DISCONTINUED", ds)
        self.assertEqual(codes_of(ds, T_REASON), [reason], ds)
        self.assertIn(first(ds, T_END_DATE), dates, ds)
        self.assertRegex(first(ds, T_END_TIME) or "", r"^\d{6}", ds)

        item = self.worklist_item("MPPS2")
        self.assertEqual({k: (item.get("mpps") or {}).get(k)
                          for k in ("sop_instance_uid", "direction", "status")},
                         {"sop_instance_uid": uid, "direction": "sent",
                          "status": "DISCONTINUED"}, item)
        self.assertIs(item.get("done"), False, item)

        # A further N-SET: the peer's 0110 (A710), explained.
        status, body = self.put(uid, {"status": "COMPLETED"})
        self.assertNoLongerUpdated(status, body, uid)
        rec = self.peer_record(uid, "N-SET", count=2)
        self.assertEqual(rec["status"], PROCESSING_FAILURE, rec)
        self.assertEqual(self.get_step(self.a, uid).get("status"), "DISCONTINUED")

    def test_discontinued_without_reason_sends_the_default_code_and_overrides(self):
        _, step = self.start_step("peer", "MPPS3")
        uid = step["sop_instance_uid"]
        status, step = self.put(uid, {"status": "DISCONTINUED", "attributes": {
            "CommentsOnThePerformedProcedureStep": "PATIENT LEFT"}})
        self.assertEqual(status, 200, step)
        ds = self.peer_record(uid, "N-SET")["dataset"]
        self.assertEqual(first(ds, T_STATUS), "DISCONTINUED", ds)
        self.assertEqual(first(ds, "00400280"), "PATIENT LEFT", ds)  # Comments on the PPS
        self.assertEqual(codes_of(ds, T_REASON), [{
            "CodeValue": "110513", "CodingSchemeDesignator": "DCM",
            "CodeMeaning": "Discontinued for unspecified reason"}], ds)

    def test_attributes_override_what_the_item_gives(self):
        _, step = self.start_step("peer", "MPPS3",
                                  attributes={"PerformedStationName": "SPARE ROOM"})
        ds = self.peer_record(step["sop_instance_uid"], "N-CREATE")["dataset"]
        self.assertEqual(first(ds, T_STATION_NAME), "SPARE ROOM", ds)
        self.assertEqual(first(ds, T_STATION_AE), ITEMS["MPPS3"]["ScheduledStationAETitle"], ds)
        self.assertEqual(first(ds, T_STATUS), "IN PROGRESS", ds)

    # ---- 3. wrong transitions refused by our receiver

    def test_3_receiver_refuses_wrong_transitions(self):
        port, ae = self.b_mpps_port, "MPPSB"
        study, accession = new_uid(), "ACC-WRONG-%d" % (uuid.uuid4().int % 10**6)

        # N-CREATE not IN PROGRESS: 0106; without a status: 0120.
        bad = new_uid()
        cp, answer = mpps_scu(port, ae, "create", bad,
                              modality_create(study, accession, status="COMPLETED"))
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(answer["status"], INVALID_ATTRIBUTE_VALUE, answer)
        cp, answer = mpps_scu(port, ae, "create", bad,
                              modality_create(study, accession, status=None))
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(answer["status"], MISSING_ATTRIBUTE, answer)
        status, body = self.b.api("GET", "/api/mpps/%s" % bad)
        self.assertEqual(status, 404, body)

        # A good one, then the same UID again: 0111.
        uid = new_uid()
        cp, answer = mpps_scu(port, ae, "create", uid, modality_create(study, accession))
        self.assertEqual((cp.returncode, (answer or {}).get("status")), (0, 0),
                         harness.proc_output(cp))
        cp, answer = mpps_scu(port, ae, "create", uid, modality_create(study, accession))
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(answer["status"], DUPLICATE_SOP_INSTANCE, answer)

        # N-SET of a step nobody created: 0112.
        cp, answer = mpps_scu(port, ae, "set", new_uid(), modality_set("COMPLETED"))
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(answer["status"], NO_SUCH_SOP_INSTANCE, answer)

        # N-SET to a status that does not exist: 0106, and the step is unchanged.
        cp, answer = mpps_scu(port, ae, "set", uid, modality_set("FINISHED"))
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(answer["status"], INVALID_ATTRIBUTE_VALUE, answer)
        self.assertEqual(self.get_step(self.b, uid).get("status"), "IN PROGRESS")

        # COMPLETED, then one more N-SET: 0110 with Error ID A710 and the comment.
        cp, answer = mpps_scu(port, ae, "set", uid, modality_set("COMPLETED"))
        self.assertEqual((cp.returncode, (answer or {}).get("status")), (0, 0),
                         harness.proc_output(cp))
        for status in ("DISCONTINUED", "IN PROGRESS"):
            cp, answer = mpps_scu(port, ae, "set", uid, modality_set(status))
            self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
            self.assertEqual((answer["status"], answer["error_id"], answer["error_comment"]),
                             (PROCESSING_FAILURE, ERROR_ID_NO_LONGER_UPDATED, NO_LONGER_UPDATED),
                             answer)
        step = self.get_step(self.b, uid, "received")
        self.assertEqual(step.get("status"), "COMPLETED", step)
        self.assertEqual(step["attributes"].get("PerformedProcedureStepStatus"), "COMPLETED")
        self.assertEqual([h.get("command") for h in step.get("history", [])],
                         ["N-CREATE", "N-SET"], step)

    # ---- 4. MPPS server: a modality's step and its study

    def test_4_received_step_with_its_study(self):
        port, ae = self.b_mpps_port, "MPPSB"
        study = new_uid()
        accession = "ACC-MOD-%d" % (uuid.uuid4().int % 10**6)
        uid = new_uid()
        cp, answer = mpps_scu(port, ae, "create", uid,
                              modality_create(study, accession, patient_id="MODPID4",
                                              step_id="SPS-MOD4"),
                              calling="CTMODALITY")
        self.assertEqual((cp.returncode, (answer or {}).get("status")), (0, 0),
                         harness.proc_output(cp))
        cp, answer = mpps_scu(port, ae, "set", uid, modality_set("COMPLETED"),
                              calling="CTMODALITY")
        self.assertEqual((cp.returncode, (answer or {}).get("status")), (0, 0),
                         harness.proc_output(cp))
        self.store_study(self.b, port, ae, study, accession, "MODPID4",
                         [(new_uid(), "CT", CT_IMAGE_STORAGE, 2, "SERIES 1"),
                          (new_uid(), "CT", CT_IMAGE_STORAGE, 1, "SERIES 2")])

        step = self.get_step(self.b, uid)
        self.assertEqual({k: step.get(k) for k in (
            "sop_instance_uid", "direction", "status", "calling_ae_title", "receiver_ae_title",
            "accession_number", "study_instance_uid", "patient_id", "scheduled_step_id",
            "patient_name", "modality")}, {
            "sop_instance_uid": uid, "direction": "received", "status": "COMPLETED",
            "calling_ae_title": "CTMODALITY", "receiver_ae_title": "MPPSB",
            "accession_number": accession, "study_instance_uid": study,
            "patient_id": "MODPID4", "scheduled_step_id": "SPS-MOD4",
            "patient_name": "MODALITY^PATIENT", "modality": "CT"}, step)
        self.assertEqual([(s.get("StudyInstanceUID"), s.get("AccessionNumber"),
                           s.get("instance_count")) for s in step.get("studies", [])],
                         [(study, accession, 3)], step)
        self.assertEqual([h.get("command") for h in step.get("history", [])],
                         ["N-CREATE", "N-SET"], step)
        self.assertEqual(step["attributes"].get("PerformedProcedureStepEndDate"), wl.TODAY)
        self.assertEqual(first(step["dicom"], T_STATUS), "COMPLETED", step["dicom"])

        # The list's filters find it, and only it.
        for query in ({"accession_number": accession}, {"study_instance_uid": study},
                      {"accession_number": accession, "status": "COMPLETED",
                       "direction": "received"}):
            steps = self.list_steps(self.b, **query)
            self.assertEqual([s.get("sop_instance_uid") for s in steps], [uid], query)
            self.assertEqual([(s.get("StudyInstanceUID"), s.get("instance_count"))
                              for s in steps[0].get("studies", [])], [(study, 3)], steps)
        for query in ({"accession_number": accession, "status": "IN PROGRESS"},
                      {"accession_number": accession, "direction": "sent"}):
            self.assertEqual(self.list_steps(self.b, **query), [], query)
        self.assertEqual(len(self.list_steps(self.b, limit=1)), 1)
        self.assertIn(uid, [s.get("sop_instance_uid")
                            for s in self.list_steps(self.b, status="COMPLETED")])
        status, body = self.b.api("GET", "/api/mpps/%s?direction=sent" % uid)
        self.assertEqual(status, 404, body)

    def test_4c_manager_forwards_what_it_accepts(self):
        # The MPPS manager role: a receiver with mpps_forward passes each accepted request on to
        # a node, in order, with the same SOP Instance UID; refused ones are not passed on.
        status, body = self.b.api("POST", "/api/nodes", {
            "name": "peer", "ae_title": self.peer.aet, "host": "127.0.0.1",
            "port": self.peer.port, "mpps": True})
        self.assertIn(status, (201, 409), body)  # 409: another test made it already
        port = harness.free_receiver_port()
        status, body = self.b.api("POST", "/api/receivers", {
            "ae_title": "MPPSFWD", "port": port, "bind": "127.0.0.1", "mpps": True,
            "mpps_forward": "peer"})
        self.assertEqual(status, 201, body)
        self.addCleanup(self.b.api, "DELETE", "/api/receivers/MPPSFWD@%d" % port)
        status, body = self.b.api("POST", "/api/receivers?dry_run=true", {
            "ae_title": "MPPSFWD2", "port": harness.free_receiver_port(), "mpps_forward": "peer"})
        self.assertJsonError(status, body, "mpps_forward")  # forwarding needs mpps on
        harness.wait_until(lambda: harness.tcp_listeners(port), timeout=10)

        study, accession, uid = new_uid(), "ACC-FWD-%d" % (uuid.uuid4().int % 10**6), new_uid()
        create = modality_create(study, accession, patient_id="FWDPID", step_id="SPS-FWD")
        cp, answer = mpps_scu(port, "MPPSFWD", "create", uid, create, calling="CTFWD")
        self.assertEqual((cp.returncode, (answer or {}).get("status")), (0, 0), harness.proc_output(cp))
        cp, answer = mpps_scu(port, "MPPSFWD", "set", uid, modality_set("COMPLETED"), calling="CTFWD")
        self.assertEqual((cp.returncode, (answer or {}).get("status")), (0, 0), harness.proc_output(cp))
        cp, answer = mpps_scu(port, "MPPSFWD", "set", uid, modality_set("DISCONTINUED"), calling="CTFWD")
        self.assertEqual((answer or {}).get("status"), 0x0110, harness.proc_output(cp))

        # The peer got the two accepted requests, in order, with what the modality sent.
        sent = self.peer_record(uid, "N-SET")
        created = self.peer_record(uid, "N-CREATE")
        self.assertEqual((created["status"], sent["status"]), (0, 0))
        self.assertEqual(first(created["dataset"], T_STATUS), "IN PROGRESS")
        self.assertEqual(first(items_of(created["dataset"], "00400270")[0], "00080050"), accession)
        self.assertEqual(first(created["dataset"], "00100020"), "FWDPID")
        self.assertEqual(first(sent["dataset"], T_STATUS), "COMPLETED")

        # B's step says where each went and how it was answered.
        def forwarded():
            step = self.get_step(self.b, uid)
            return [(h.get("command"), h.get("forwarded_to")) for h in step.get("history", [])
                    if h.get("forwarded_to")]
        harness.wait_until(lambda: len(forwarded()) == 2, timeout=15)
        self.assertEqual(forwarded(), [("N-CREATE", "peer"), ("N-SET", "peer")])
        step = self.get_step(self.b, uid)
        outcomes = [h.get("outcome") for h in step["history"] if h.get("forwarded_to")]
        self.assertTrue(all(o.startswith("0x0000") for o in outcomes), step["history"])
        # Both forwards are done (their outcomes are kept): the refused N-SET was never passed on.
        self.assertEqual([r["command"] for r in self.peer.records(uid)], ["N-CREATE", "N-SET"])

    def test_4b_worklist_marks_steps_received_here(self):
        # B's own worklist: an item is performed by a step a modality reported to B, matched
        # by accession number and (both having one) the scheduled step ID.
        expected = ITEMS["MPPS5"]
        port, ae = self.b_mpps_port, "MPPSB"
        item = self.worklist_item("MPPS5", server=self.b)
        self.assertEqual((item.get("mpps"), item.get("done")), (None, False), item)
        other = new_uid()  # same accession, another scheduled step: not this item's
        cp, answer = mpps_scu(port, ae, "create", other, modality_create(
            expected["StudyInstanceUID"], expected["AccessionNumber"],
            patient_id=expected["PatientID"], step_id="SPS-SOMETHING-ELSE"))
        self.assertEqual((cp.returncode, (answer or {}).get("status")), (0, 0),
                         harness.proc_output(cp))
        item = self.worklist_item("MPPS5", server=self.b)
        self.assertEqual((item.get("mpps"), item.get("done")), (None, False), item)

        uid = new_uid()
        cp, answer = mpps_scu(port, ae, "create", uid, modality_create(
            expected["StudyInstanceUID"], expected["AccessionNumber"],
            patient_id=expected["PatientID"], step_id=expected["ScheduledProcedureStepID"]))
        self.assertEqual((cp.returncode, (answer or {}).get("status")), (0, 0),
                         harness.proc_output(cp))
        item = self.worklist_item("MPPS5", server=self.b)
        self.assertEqual({k: (item.get("mpps") or {}).get(k)
                          for k in ("sop_instance_uid", "direction", "status")},
                         {"sop_instance_uid": uid, "direction": "received",
                          "status": "IN PROGRESS"}, item)
        self.assertTrue((item.get("mpps") or {}).get("updated_at"), item)
        self.assertIs(item.get("done"), False, item)

        cp, answer = mpps_scu(port, ae, "set", uid, modality_set("COMPLETED"))
        self.assertEqual((cp.returncode, (answer or {}).get("status")), (0, 0),
                         harness.proc_output(cp))
        item = self.worklist_item("MPPS5", server=self.b)
        self.assertEqual(((item.get("mpps") or {}).get("sop_instance_uid"),
                          (item.get("mpps") or {}).get("status"), item.get("done")),
                         (uid, "COMPLETED", True), item)
        # A knows nothing of B's steps.
        item = self.worklist_item("MPPS5")
        self.assertEqual((item.get("mpps"), item.get("done")), (None, False), item)

    # ---- 5. a receiver without mpps

    def test_5_receiver_without_mpps_refuses_the_association(self):
        before = self.list_steps(self.b)
        uid = new_uid()
        cp, answer = mpps_scu(self.b_plain_port, "NOMPPS", "create", uid,
                              modality_create(new_uid(), "ACC-NOMPPS"))
        self.assertEqual(cp.returncode, 1, harness.proc_output(cp))
        self.assertIsNone(answer)
        self.assertIn("MPPS", cp.stderr, harness.proc_output(cp))
        status, body = self.b.api("GET", "/api/mpps/%s" % uid)
        self.assertEqual(status, 404, body)
        self.assertEqual(self.list_steps(self.b), before)
        # The same receiver still takes a C-ECHO: only the MPPS context is refused.
        cp = harness.echoscu(self.b_plain_port, "NOMPPS")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))

        # Our client toward it: an error that says MPPS, nothing recorded anywhere.
        sent_before = self.list_steps(self.a, direction="sent")
        status, body = self.start_step("b-plain", "MPPS4", expect=None)
        self.assertIn(status, (409, 502), body)
        self.assertJsonError(status, body, expected_status=status)
        self.assertIn("MPPS", body["error"], body)
        self.assertEqual(self.list_steps(self.a, direction="sent"), sent_before)
        self.assertEqual(self.list_steps(self.b), before)

    # ---- 6. refusals of the API

    def test_6_refusals(self):
        item = self.worklist_item("MPPS4")
        received_before = self.list_steps(self.b)
        sent_before = self.list_steps(self.a, direction="sent")
        peer_before = len(self.peer.records())

        # A node without mpps: 409 naming the field; nothing went to B.
        status, body = self.a.api("POST", "/api/mpps", {"node": "no-mpps", "item": item})
        self.assertJsonError(status, body, field="mpps", expected_status=409)
        self.assertEqual(self.list_steps(self.b), received_before)
        # The worklist node itself is not an MPPS node either.
        status, body = self.a.api("POST", "/api/mpps", {"node": "mwl", "item": item})
        self.assertJsonError(status, body, field="mpps", expected_status=409)
        # No item / no node / unknown node / unknown field.
        status, body = self.a.api("POST", "/api/mpps", {"node": "peer"})
        self.assertJsonError(status, body, field="item")
        status, body = self.a.api("POST", "/api/mpps", {"node": "peer", "item": "MPPS4"})
        self.assertJsonError(status, body, field="item")
        status, body = self.a.api("POST", "/api/mpps", {"item": item})
        self.assertJsonError(status, body, field="node")
        no_study = {k: v for k, v in item.items() if k != "StudyInstanceUID"}
        status, body = self.a.api("POST", "/api/mpps", {"node": "peer", "item": no_study})
        self.assertJsonError(status, body)  # Study Instance UID is type 1 in the N-CREATE
        self.assertIn("StudyInstanceUID", "%s %s" % (body.get("field"), body["error"]), body)
        status, body = self.a.api("POST", "/api/mpps", {"node": "peer", "item": item,
                                                        "attributes": ["x"]})
        self.assertJsonError(status, body, field="attributes")
        status, body = self.a.api("POST", "/api/mpps", {"node": "peer", "item": item,
                                                        "attributes": {"NoSuchKeyword": "x"}})
        self.assertJsonError(status, body)
        self.assertIn("NoSuchKeyword", "%s %s" % (body.get("field"), body["error"]), body)
        status, body = self.a.api("POST", "/api/mpps", {"node": "nobody", "item": item})
        self.assertEqual(status, 404, body)
        status, body = self.a.api("POST", "/api/mpps", {"node": "peer", "item": item,
                                                        "bogus": 1})
        self.assertJsonError(status, body)
        self.assertIn("bogus", "%s %s" % (body.get("field"), body["error"]), body)
        # Unreachable: 502.
        status, body = self.a.api("POST", "/api/mpps", {"node": "down", "item": item},
                                  timeout=60)
        self.assertJsonError(status, body, expected_status=502)
        self.assertEqual(len(self.peer.records()), peer_before, "something reached the peer")
        self.assertEqual([s["sop_instance_uid"] for s in self.list_steps(self.a, direction="sent")],
                         [s["sop_instance_uid"] for s in sent_before])

        # PUT on a step nobody sent: 404.
        status, body = self.put(new_uid(), {"status": "COMPLETED"})
        self.assertEqual(status, 404, body)

        # A step in progress at the peer; PUTs it refuses before sending anything.
        _, step = self.start_step("peer", "MPPS4")
        uid = step["sop_instance_uid"]
        self.peer_record(uid, "N-CREATE")
        missing = new_uid()
        status, body = self.put(uid, {"status": "COMPLETED", "series": [missing]})
        self.assertJsonError(status, body, field="series")
        self.assertIn(missing, body["error"], body)
        status, body = self.put(uid, {"status": "FINISHED"})
        self.assertJsonError(status, body, field="status")
        for wrong in (1, None, ["COMPLETED"]):  # not a string: 400 naming it, never a 500
            status, body = self.put(uid, {"status": wrong})
            self.assertJsonError(status, body, field="status")
        status, body = self.put(uid, {"status": "COMPLETED", "attributes": {"PatientWeight": 70}})
        self.assertJsonError(status, body, field="attributes.PatientWeight")
        status, body = self.put(uid, {"status": "COMPLETED", "series": "1.2.3"})
        self.assertJsonError(status, body, field="series")
        status, body = self.put(uid, {"status": "COMPLETED", "reason": {
            "CodeValue": "110514", "CodingSchemeDesignator": "DCM"}})
        self.assertJsonError(status, body, field="reason")
        self.assertEqual([r["command"] for r in self.peer.records(uid)], ["N-CREATE"],
                         "a refused PUT reached the peer")
        step = self.get_step(self.a, uid, "sent")
        self.assertEqual(step.get("status"), "IN PROGRESS", step)
        self.assertEqual([h.get("command") for h in step.get("history", [])], ["N-CREATE"],
                         step)
        # Still usable afterwards.
        status, step = self.put(uid, {"status": "COMPLETED"})
        self.assertEqual(status, 200, step)
        ds = self.peer_record(uid, "N-SET")["dataset"]
        self.assertEqual(first(ds, T_STATUS), "COMPLETED", ds)
        self.assertEqual(items_of(ds, T_SERIES), [], ds)

        # Bad list queries.
        status, body = self.a.api("GET", "/api/mpps?direction=sideways")
        self.assertJsonError(status, body, field="direction")
        status, body = self.a.api("GET", "/api/mpps?limit=0")
        self.assertJsonError(status, body, field="limit")
        status, body = self.a.api("GET", "/api/mpps/%s" % new_uid())
        self.assertEqual(status, 404, body)

    def test_roles(self):
        ro = ("mpps-ro", "pw-mpps-ro-Secret9")
        status, body = self.a.api("POST", "/api/users", {
            "username": ro[0], "role": "read-only", "password": ro[1]})
        self.assertEqual(status, 201, body)
        item = self.worklist_item("MPPS4")
        peer_before = len(self.peer.records())
        status, body = self.a.api("POST", "/api/mpps", {"node": "peer", "item": item}, auth=ro)
        self.assertEqual(status, 403, body)
        status, body = self.a.api("GET", "/api/mpps", auth=ro)
        self.assertEqual(status, 200, body)
        status, body = self.a.api("GET", "/api/mpps", auth=None)
        self.assertEqual(status, 401, body)
        self.assertEqual(len(self.peer.records()), peer_before)


if __name__ == "__main__":
    unittest.main()
