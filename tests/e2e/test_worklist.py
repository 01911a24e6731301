"""Modality Worklist client (POST /api/nodes/{name}/worklist and `pacsbridge worklist`) against
DCMTK's wlmscpfs, whose worklist files the test writes itself (dump text -> dump2dcm).

Two wlmscpfs peers for the class:
  - "A", -cs0: answers WITHOUT (0008,0005) whatever the file says. Called AE title WLMSCP: a
    Latin-1 patient (written in ISO_IR 100 bytes), and ASCII items on several dates (today,
    yesterday, tomorrow, ten days ago), modalities (CT, MR) and stations (CT1, MR1); one item
    has a RequestedProcedureCodeSequence and a two-item ScheduledProtocolCodeSequence. Called
    AE title WLMSJP: a Japanese name written in \\ISO 2022 IR 87 (so answered without saying so:
    the node's mwl_charset must be assumed).
  - "B", -csk: answers with the file's (0008,0005). Its files: the Japanese name in
    \\ISO 2022 IR 87 (PS3.5 Example H.3-1, escape sequences per component group) and a UTF-8
    one in ISO_IR 192 (asked through a node that assumes ISO_IR 100: the declared set wins).
Both store every C-FIND request they receive (-rfp) as a dump, which shows where each key was
put (inside ScheduledProcedureStepSequence or at top level) and the bytes of its value.

Every expected value comes from the files written here; dates are the local calendar of this
process (the server's clock and time zone: same machine, same environment).

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_worklist.py
"""

import datetime
import json
import os
import re
import subprocess
import sys
import unittest
import unittest.mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

DAY = datetime.timedelta(days=1)
_today = datetime.date.today()
TODAY = _today.strftime("%Y%m%d")
YESTERDAY = (_today - DAY).strftime("%Y%m%d")
TOMORROW = (_today + DAY).strftime("%Y%m%d")
TEN_DAYS_AGO = (_today - 10 * DAY).strftime("%Y%m%d")

LATIN1_NAME = "MÜLLER^JOSÉ"
LATIN1_DESCRIPTION = "SCHÄDEL NATIV"
JP_NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"
# PS3.5 Example H.3-1: each group switches to JIS X 0208 with ESC $ B and back with ESC ( B
# before the delimiters.
JP_BYTES = (b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^"
            b"\x1b$B$?$m$&\x1b(B")
UTF8_NAME = "ØDEGÅRD^ÅSE=小林^花子"

STEP_KEYWORDS = {
    "Modality": "00080060",
    "ScheduledStationAETitle": "00400001",
    "ScheduledProcedureStepStartDate": "00400002",
    "ScheduledProcedureStepStartTime": "00400003",
    "ScheduledPerformingPhysicianName": "00400006",
    "ScheduledProcedureStepDescription": "00400007",
    "ScheduledStationName": "00400010",
    "ScheduledProcedureStepLocation": "00400011",
    "ScheduledProcedureStepID": "00400009",
}
TOP_KEYWORDS = {
    "SpecificCharacterSet": "00080005",
    "AccessionNumber": "00080050",
    "ReferringPhysicianName": "00080090",
    "PatientName": "00100010",
    "PatientID": "00100020",
    "PatientBirthDate": "00100030",
    "PatientSex": "00100040",
    "StudyInstanceUID": "0020000D",
    "RequestedProcedureDescription": "00321060",
    "RequestedProcedureID": "00401001",
}
VRS = {"00080005": "CS", "00080050": "SH", "00080090": "PN", "00100010": "PN",
       "00100020": "LO", "00100030": "DA", "00100040": "CS", "0020000D": "UI",
       "00321060": "LO", "00401001": "SH", "00080060": "CS", "00400001": "AE",
       "00400002": "DA", "00400003": "TM", "00400006": "PN", "00400007": "LO",
       "00400010": "SH", "00400011": "SH", "00400009": "SH",
       "00080100": "SH", "00080102": "SH", "00080104": "LO"}
CODE_KEYS = ("CodeValue", "CodingSchemeDesignator", "CodeMeaning")
CODE_TAGS = {"CodeValue": "00080100", "CodingSchemeDesignator": "00080102",
             "CodeMeaning": "00080104"}
SPS_TAG, PROTOCOL_TAG, RP_CODE_TAG = "00400100", "00400008", "00321064"
UID_ROOT = "1.2.826.0.1.3680043.10.543.77."


def item(pid, name, date, time_, modality, station, **extra):
    """A worklist item: top-level and step attributes by keyword (str values), plus the code
    sequences as lists of {CodeValue, CodingSchemeDesignator, CodeMeaning}."""
    n = len(pid)
    it = {
        "PatientName": name, "PatientID": pid, "PatientBirthDate": "1970010%d" % (n % 9 + 1),
        "PatientSex": "F" if n % 2 else "M", "AccessionNumber": "ACC-" + pid,
        "ReferringPhysicianName": "WELBY^MARCUS", "StudyInstanceUID": UID_ROOT + str(
            sum(ord(c) for c in pid)) + "." + str(len(pid)),
        "RequestedProcedureID": "RP-" + pid, "RequestedProcedureDescription": "PROC " + pid,
        "Modality": modality, "ScheduledStationAETitle": station,
        "ScheduledProcedureStepStartDate": date, "ScheduledProcedureStepStartTime": time_,
        "ScheduledPerformingPhysicianName": "HOUSE^GREGORY",
        "ScheduledProcedureStepDescription": "STEP " + pid,
        "ScheduledProcedureStepID": "SPS-" + pid,
    }
    it.update(extra)
    return it


# Peer A (-cs0). PatientID -> item.
ITEMS_A = {it["PatientID"]: it for it in (
    item("LAT1", LATIN1_NAME, TODAY, "080000", "CT", "CT1",
         RequestedProcedureDescription=LATIN1_DESCRIPTION, charset="ISO_IR 100"),
    item("CODE1", "SMITH^ANNA", TODAY, "093000", "CT", "CT1",
         ScheduledStationName="CTSCANNER1", ScheduledProcedureStepLocation="ROOM 1",
         RequestedProcedureCodeSequence=[
             {"CodeValue": "RPC-CHEST", "CodingSchemeDesignator": "99LOCAL",
              "CodeMeaning": "CT Chest with contrast"}],
         ScheduledProtocolCodeSequence=[
             {"CodeValue": "PROT-17", "CodingSchemeDesignator": "99LOCAL",
              "CodeMeaning": "Chest routine"},
             {"CodeValue": "PROT-18", "CodingSchemeDesignator": "99LOCAL",
              "CodeMeaning": "Chest late phase"}]),
    item("MRTODAY", "DOE^JANE", TODAY, "110000", "MR", "MR1"),
    item("CTYEST", "ROE^RICHARD", YESTERDAY, "140000", "CT", "CT1"),
    item("MRTOMO", "POE^EDGAR", TOMORROW, "073000", "MR", "MR1"),
    item("CTOLD", "OLD^OSCAR", TEN_DAYS_AGO, "120000", "CT", "CT1"),
)}
# Peer A, called AE title WLMSJP: a Japanese name, answered without (0008,0005).
ITEMS_A_JP = {it["PatientID"]: it for it in (
    item("JPA", JP_NAME, TODAY, "083000", "MR", "MR1", charset="\\ISO 2022 IR 87"),
)}
# Peer B (-csk).
ITEMS_B = {it["PatientID"]: it for it in (
    item("JP1", JP_NAME, TODAY, "090000", "MR", "MR1", charset="\\ISO 2022 IR 87"),
    item("UTF1", UTF8_NAME, TODAY, "100000", "CT", "CT1", charset="ISO_IR 192"),
)}


def ids(results):
    return sorted(r.get("PatientID") for r in results)


def of(items, pred=lambda it: True):
    return sorted(pid for pid, it in items.items() if pred(it))


# --------------------------------------------------------------------------- worklist files

def _encode(text, charset):
    if charset == "\\ISO 2022 IR 87":
        return dicomgen.encode_text(text, charset)
    return text.encode({"ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}.get(charset, "ascii"))


def dump_text(it):
    """The dump2dcm input of a worklist item (bytes: values in the item's character set)."""
    cs = it.get("charset")
    lines = []

    def el(tag, value):
        lines.append(b"(%s,%s) %s [%s]" % (tag[:4].encode(), tag[4:].encode(),
                                            VRS[tag].encode(), _encode(value, cs)))

    def codes(tag, entries):
        lines.append(b"(%s,%s) SQ" % (tag[:4].encode(), tag[4:].encode()))
        for e in entries:
            lines.append(b"(fffe,e000) -")
            for k in CODE_KEYS:
                el(CODE_TAGS[k], e[k])
            lines.append(b"(fffe,e00d) -")
        lines.append(b"(fffe,e0dd) -")

    if cs:
        el("00080005", cs)
    for kw, tag in TOP_KEYWORDS.items():
        if kw in it:
            el(tag, it[kw])
    if "RequestedProcedureCodeSequence" in it:
        codes(RP_CODE_TAG, it["RequestedProcedureCodeSequence"])
    lines += [b"(0040,0100) SQ", b"(fffe,e000) -"]
    for kw, tag in STEP_KEYWORDS.items():
        if kw in it:
            el(tag, it[kw])
    if "ScheduledProtocolCodeSequence" in it:
        codes(PROTOCOL_TAG, it["ScheduledProtocolCodeSequence"])
    lines += [b"(fffe,e00d) -", b"(fffe,e0dd) -"]
    return b"\n".join(lines) + b"\n"


def parse_dump(data):
    """A dcmdump-style text (wlmscpfs -rfp request files) as nested dicts: {tag "GGGGEEEE":
    value bytes (padding stripped; b"" when empty) or [item dict, ...] for sequences}."""
    root = {}
    stack = [(0, root)]
    for line in data.split(b"\n"):
        m = re.match(rb"^( *)\(([0-9a-fA-F]{4}),([0-9a-fA-F]{4})\) (\w\w) ?(.*)$", line)
        if not m:
            continue
        depth = len(m.group(1)) // 2
        tag = (m.group(2) + m.group(3)).decode().upper()
        vr, rest = m.group(4).decode(), m.group(5)
        while len(stack) > 1 and stack[-1][0] > depth:
            stack.pop()
        container = stack[-1][1]
        if tag in ("FFFEE00D", "FFFEE0DD"):
            continue
        if tag == "FFFEE000":
            new = {}
            container.append(new)
            stack.append((depth + 1, new))
        elif vr == "SQ":
            container[tag] = []
            stack.append((depth + 1, container[tag]))
        else:
            v = re.match(rb"^\[(.*?)\] *#", rest)
            container[tag] = v.group(1).rstrip(b" \0") if v else b""
    return root


class WorklistSCP(harness._Process):
    """DCMTK's wlmscpfs on a free port, called AE title `aet`, with files written by add()
    and every C-FIND request kept as a dump (-rfp)."""

    name = "wlmscpfs"

    def __init__(self, workdir, charset_option, aet="WLMSCP"):
        super().__init__(workdir)
        self.name = "wlmscpfs" + charset_option
        self.log_path = self.workdir / ("%s.log" % self.name)
        self.aet = aet
        self.charset_option = charset_option
        self.port = harness.free_port()
        self.db = self.workdir / "db"
        (self.db / aet).mkdir(parents=True, exist_ok=True)
        (self.db / aet / "lockfile").touch()
        self.requests_dir = self.workdir / "requests"
        self.requests_dir.mkdir(exist_ok=True)
        self.dumps = self.workdir / "dumps"
        self.dumps.mkdir(exist_ok=True)

    def add(self, it, aet=None):
        """Write the item as a worklist file of called AE title aet (default: self.aet)."""
        directory = self.db / (aet or self.aet)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "lockfile").touch()
        dump = self.dumps / (it["PatientID"] + ".dump")
        dump.write_bytes(dump_text(it))
        out = directory / (it["PatientID"] + ".wl")
        cp = harness.run_tool(["dump2dcm", "+te", "-g", dump, out], timeout=60)
        if cp.returncode != 0 or not out.exists():
            raise AssertionError("dump2dcm %s:\n%s" % (dump, harness.proc_output(cp)))
        return out

    def start(self, timeout=20):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["wlmscpfs", self.charset_option, "-dfp", str(self.db),
                 "-rfp", str(self.requests_dir), str(self.port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                cwd=str(self.workdir), env=harness.tool_env())
        finally:
            log.close()
        up = harness.wait_until(lambda: not self.running() or harness.echoscu(
            self.port, self.aet, timeout=10).returncode == 0, timeout, 0.2)
        if not (up and self.running()):
            raise AssertionError("wlmscpfs did not answer C-ECHO within %ss; log:\n%s"
                                 % (timeout, self.log_tail()))
        return self

    def request_files(self):
        return set(self.requests_dir.iterdir())


# --------------------------------------------------------------------------- the tests

class WorklistTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.peer_a = WorklistSCP(cls.tmp / "wl-a", "-cs0")
        cls.peer_b = WorklistSCP(cls.tmp / "wl-b", "-csk")
        for peer, items in ((cls.peer_a, ITEMS_A), (cls.peer_b, ITEMS_B)):
            for it in items.values():
                peer.add(it)
            if peer is cls.peer_a:
                for it in ITEMS_A_JP.values():
                    peer.add(it, aet="WLMSJP")
            cls._peers.append(peer)
            cls.addClassCleanup(peer.stop)
            peer.start()
        cls.server = harness.Server(cls.tmp / "srv")
        cls._peers.append(cls.server)
        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()
        cls.down_port = harness.free_port()  # nothing ever listens there
        opens = datetime.datetime.now(datetime.timezone.utc) + 2 * DAY
        days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        for name, port, extra in (
                ("mwl-a", cls.peer_a.port, {"mwl": True, "mwl_charset": "ISO_IR 100"}),
                ("mwl-jp", cls.peer_b.port, {"mwl": True, "mwl_charset": "ISO 2022 IR 87"}),
                ("mwl-a-jp", cls.peer_a.port, {"mwl": True, "mwl_charset": "ISO 2022 IR 87",
                                               "ae_title": "WLMSJP"}),
                ("mwl-b-latin1", cls.peer_b.port, {"mwl": True, "mwl_charset": "ISO_IR 100"}),
                ("mwl-a-ascii", cls.peer_a.port, {"mwl": True, "mwl_charset": ""}),
                ("mwl-b-default", cls.peer_b.port, {"mwl": True}),
                ("no-mwl", cls.peer_a.port, {}),
                ("mwl-down", cls.down_port, {"mwl": True, "mwl_charset": "ISO_IR 100"}),
                ("mwl-night", cls.peer_a.port, {
                    "mwl": True, "mwl_charset": "ISO_IR 100",
                    "schedule": {"timezone": "UTC", "windows": [
                        {"days": [days[opens.weekday()]], "start": "00:00",
                         "end": "24:00"}]}})):
            body = {"name": name, "ae_title": "WLMSCP", "host": "127.0.0.1", "port": port}
            body.update(extra)
            status, answer = cls.server.api("POST", "/api/nodes", body)
            if status != 201:
                raise AssertionError("POST /api/nodes %r -> %s %r" % (body, status, answer))

    # ---- helpers

    def worklist(self, node, query=None, expect=200, **extra):
        body = {"query": {} if query is None else query}
        body.update(extra)
        status, answer = self.server.api("POST", "/api/nodes/%s/worklist" % node, body)
        if expect is not None:
            self.assertEqual(status, expect, "POST /api/nodes/%s/worklist %r -> %r"
                             % (node, body, answer))
        return answer if expect is not None else (status, answer)

    def results(self, node, query=None, **extra):
        answer = self.worklist(node, query, **extra)
        self.assertIsInstance(answer.get("results"), list, answer)
        self.assertIs(answer.get("truncated"), False, answer)
        return answer["results"]

    def request_of(self, peer, call):
        """Run call() (one worklist query to `peer`); the request peer received, parsed."""
        before = peer.request_files()
        out = call()
        new = []

        def arrived():
            new[:] = sorted(peer.request_files() - before)
            return new
        self.assertTrue(harness.wait_until(arrived, timeout=10),
                        "no request dump in %s after the query" % peer.requests_dir)
        self.assertEqual(len(new), 1, new)
        return out, parse_dump(new[0].read_bytes())

    def assertStep(self, got, expected, where):
        for kw in STEP_KEYWORDS:
            if kw in expected:
                self.assertEqual(got.get(kw), expected[kw], "%s %s: %r" % (where, kw, got))

    def assertCodes(self, got, expected, where):
        self.assertIsInstance(got, list, "%s: %r" % (where, got))
        self.assertEqual([{k: c.get(k) for k in CODE_KEYS} if isinstance(c, dict) else c
                          for c in got], expected, where)

    # ---- the peers themselves (what the other tests rely on)

    def test_peers_answer_the_files_as_written(self):
        # findscu straight to each peer: every file is served (none rejected as incomplete),
        # A answers the Latin-1 name's bytes without (0008,0005), B with the file's.
        for peer, aet, items, answers_charset in (
                (self.peer_a, "WLMSCP", ITEMS_A, False), (self.peer_a, "WLMSJP", ITEMS_A_JP, False),
                (self.peer_b, "WLMSCP", ITEMS_B, True)):
            out = self.mkdtemp("findscu")
            cp = harness.run_tool(
                ["findscu", "-W", "-aec", aet, "-to", "10", "-X", "-od", out,
                 "-k", "PatientName", "-k", "PatientID", "-k", "SpecificCharacterSet",
                 "-k", "ScheduledProcedureStepSequence[0].Modality",
                 "127.0.0.1", peer.port], timeout=60)
            self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
            got = {}
            for f in sorted(out.glob("rsp*.dcm")):
                els = dicomgen.read_elements(f)
                pid = harness.text_of(els, (0x0010, 0x0020))
                got[pid] = (harness.text_of(els, (0x0008, 0x0005)) or "",
                            els[(0x0010, 0x0010)][1].rstrip(b" "))
            expected = {pid: ((it.get("charset") or "") if answers_charset else "",
                              _encode(it["PatientName"], it.get("charset")))
                        for pid, it in items.items()}
            self.assertEqual(got, expected, peer.log_tail())
        self.assertEqual(_encode(JP_NAME, "\\ISO 2022 IR 87"), JP_BYTES)
        self.assertEqual(_encode(LATIN1_NAME, "ISO_IR 100"), b"M\xdcLLER^JOS\xc9")

    # ---- 1. Latin-1, answers without a character set

    def test_latin1_answer_without_charset_is_decoded_as_the_node_says(self):
        results = self.results("mwl-a", {"PatientID": "LAT1"})
        self.assertEqual(ids(results), ["LAT1"], results)
        r = results[0]
        self.assertEqual(r["PatientName"], LATIN1_NAME, r)
        self.assertEqual(r["RequestedProcedureDescription"], LATIN1_DESCRIPTION, r)
        self.assertEqual(r["dicom"]["00100010"]["vr"], "PN", r["dicom"])
        self.assertEqual(r["dicom"]["00100010"]["Value"], [{"Alphabetic": LATIN1_NAME}],
                         r["dicom"])
        self.assertEqual(r["dicom"]["00321060"]["Value"], [LATIN1_DESCRIPTION], r["dicom"])

    def test_latin1_wildcard_is_sent_in_latin1(self):
        results, request = self.request_of(
            self.peer_a, lambda: self.results("mwl-a", {"PatientName": "MÜLLER*"}))
        self.assertEqual([(r["PatientID"], r["PatientName"]) for r in results],
                         [("LAT1", LATIN1_NAME)], results)
        # What went out: ISO_IR 100 declared, the value in Latin-1 bytes.
        self.assertEqual(request.get("00080005"), b"ISO_IR 100", request)
        self.assertEqual(request.get("00100010"), "MÜLLER*".encode("latin-1"), request)
        # A name that is not there matches nothing.
        self.assertEqual(self.results("mwl-a", {"PatientName": "MÖLLER*"}), [])
        self.assertEqual(self.results("mwl-a", {"PatientName": "MÜLLERS*"}), [])

    def test_declared_charset_wins_over_the_assumed_one(self):
        # Peer B answers with (0008,0005) ISO_IR 192; the node assumes ISO_IR 100 only for
        # answers that declare none.
        results = self.results("mwl-b-latin1", {"PatientID": "UTF1"})
        self.assertEqual([r["PatientName"] for r in results], [UTF8_NAME], results)
        self.assertEqual(results[0]["dicom"]["00100010"]["Value"],
                         [{"Alphabetic": "ØDEGÅRD^ÅSE", "Ideographic": "小林^花子"}],
                         results[0]["dicom"])

    def test_default_charset_queries_in_utf8(self):
        # mwl_charset "" (here: not given): the query goes out in ISO_IR 192.
        for value in ("ØDEGÅRD*", "*小林*"):
            results, request = self.request_of(
                self.peer_b, lambda: self.results("mwl-b-default", {"PatientName": value}))
            self.assertEqual([(r["PatientID"], r["PatientName"]) for r in results],
                             [("UTF1", UTF8_NAME)], results)
            self.assertEqual(request.get("00080005"), b"ISO_IR 192", request)
            self.assertEqual(request.get("00100010"), value.encode("utf-8"), request)

    def test_answer_not_in_the_assumed_charset_still_has_its_dicom_json(self):
        # Latin-1 bytes in an answer without (0008,0005), for a node that assumes ASCII: how
        # the name is shown is the server's choice, but the item is whole and consistent.
        results = self.results("mwl-a-ascii", {"PatientID": "LAT1"})
        self.assertEqual(ids(results), ["LAT1"], results)
        r = results[0]
        self.assertIsInstance(r.get("dicom"), dict, "no DICOM JSON: %r" % (r,))
        self.assertEqual(r["dicom"].get("00100020"), {"vr": "LO", "Value": ["LAT1"]}, r)
        self.assertEqual(r["dicom"].get("00080050"), {"vr": "SH", "Value": ["ACC-LAT1"]}, r)
        self.assertEqual(r["dicom"]["00100010"]["Value"][0]["Alphabetic"], r["PatientName"], r)

    # ---- 2. Japanese, ISO 2022 IR 87

    def test_iso2022_japanese_name_comes_back_as_utf8(self):
        results, request = self.request_of(
            self.peer_b, lambda: self.results("mwl-jp", {"PatientID": "JP1"}))
        self.assertEqual(ids(results), ["JP1"], results)
        r = results[0]
        self.assertEqual(r["PatientName"], JP_NAME, r)
        self.assertEqual(r["dicom"]["00100010"], {"vr": "PN", "Value": [{
            "Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎",
            "Phonetic": "やまだ^たろう"}]}, r["dicom"])
        self.assertIn(b"ISO 2022 IR 87", request.get("00080005", b""), request)
        # An ASCII wildcard is fine on an ISO 2022 node.
        results = self.results("mwl-jp", {"PatientName": "Yamada*"})
        self.assertEqual([r["PatientName"] for r in results], [JP_NAME], results)

    def test_iso2022_japanese_assumed_for_an_answer_without_charset(self):
        results = self.results("mwl-a-jp", {"PatientName": "Yamada*"})
        self.assertEqual([(r["PatientID"], r["PatientName"]) for r in results],
                         [("JPA", JP_NAME)], results)
        self.assertEqual(results[0]["dicom"]["00100010"]["Value"], [{
            "Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎",
            "Phonetic": "やまだ^たろう"}], results[0]["dicom"])

    # ---- 3. filters

    def test_default_query_asks_for_today_inside_the_step(self):
        results, request = self.request_of(self.peer_a, lambda: self.results("mwl-a"))
        self.assertEqual(ids(results),
                         of(ITEMS_A, lambda it: it["ScheduledProcedureStepStartDate"] == TODAY))
        self.assertNotIn("00400002", request, "the date went top level: %r" % request)
        sps = request.get(SPS_TAG)
        self.assertIsInstance(sps, list, request)
        self.assertEqual(len(sps), 1, request)
        self.assertEqual(sps[0].get("00400002"), TODAY.encode(), request)
        for r in results:
            self.assertEqual(r["ScheduledProcedureStepStartDate"], TODAY, r)

    def test_today_is_the_local_date_of_the_server(self):
        # A server whose local time zone is 14 hours ahead of UTC (or 12 behind: whichever
        # puts it on another calendar day than UTC right now) asks for its own today.
        utc = datetime.datetime.now(datetime.timezone.utc)
        hours = 14 if utc.hour >= 12 else -12
        with unittest.mock.patch.dict(os.environ, {"TZ": "WLT%+d" % -hours}):  # POSIX sign
            srv = self.start_server()
        status, answer = srv.api("POST", "/api/nodes", {
            "name": "mwl-a", "ae_title": "WLMSCP", "host": "127.0.0.1",
            "port": self.peer_a.port, "mwl": True, "mwl_charset": "ISO_IR 100"})
        self.assertEqual(status, 201, answer)

        def ask():
            local = (datetime.datetime.now(datetime.timezone.utc)
                     + datetime.timedelta(hours=hours)).strftime("%Y%m%d")
            status, answer = srv.api("POST", "/api/nodes/mwl-a/worklist", {"query": {}})
            self.assertEqual(status, 200, answer)
            return local
        local, request = self.request_of(self.peer_a, ask)
        self.assertNotEqual(local, utc.strftime("%Y%m%d"))
        self.assertEqual(request[SPS_TAG][0].get("00400002"), local.encode(), request)

    def test_any_date(self):
        results = self.results("mwl-a", {"ScheduledProcedureStepStartDate": ""})
        self.assertEqual(ids(results), of(ITEMS_A))
        self.assertEqual({r["PatientID"]: r["ScheduledProcedureStepStartDate"] for r in results},
                         {pid: it["ScheduledProcedureStepStartDate"]
                          for pid, it in ITEMS_A.items()})
        # In the order of the day, whatever order the peer answers in (from the files).
        when = lambda it: (it["ScheduledProcedureStepStartDate"],  # noqa: E731
                           it.get("ScheduledProcedureStepStartTime", ""))
        self.assertEqual([r["PatientID"] for r in results],
                         [pid for pid, _ in sorted(ITEMS_A.items(), key=lambda kv: when(kv[1]))])

    def test_date_ranges(self):
        results = self.results("mwl-a", {"ScheduledProcedureStepStartDate":
                                         "%s-%s" % (YESTERDAY, TODAY)})
        self.assertEqual(ids(results), of(ITEMS_A, lambda it: it[
            "ScheduledProcedureStepStartDate"] in (YESTERDAY, TODAY)))
        results = self.results("mwl-a", {"ScheduledProcedureStepStartDate": TOMORROW + "-"})
        self.assertEqual(ids(results), ["MRTOMO"])
        results = self.results("mwl-a", {"ScheduledProcedureStepStartDate": YESTERDAY})
        self.assertEqual(ids(results), ["CTYEST"])

    def test_modality_goes_inside_the_step(self):
        results, request = self.request_of(
            self.peer_a, lambda: self.results("mwl-a", {"Modality": "MR",
                                                        "ScheduledProcedureStepStartDate": ""}))
        self.assertEqual(ids(results), of(ITEMS_A, lambda it: it["Modality"] == "MR"))
        for r in results:
            self.assertEqual(r["Modality"], "MR", r)
        self.assertNotIn("00080060", request, "Modality went top level: %r" % request)
        sps = request.get(SPS_TAG)
        self.assertIsInstance(sps, list, request)
        self.assertEqual(len(sps), 1, request)
        self.assertEqual(sps[0].get("00080060"), b"MR", request)
        # With today's default date: today's MR only.
        self.assertEqual(ids(self.results("mwl-a", {"Modality": "MR"})), ["MRTODAY"])
        # Named by tag, the same attribute goes to the same place.
        results, request = self.request_of(
            self.peer_a, lambda: self.results("mwl-a", {"(0008,0060)": "MR",
                                                        "(0040,0002)": ""}))
        self.assertEqual(ids(results), of(ITEMS_A, lambda it: it["Modality"] == "MR"))
        self.assertNotIn("00080060", request, "Modality went top level: %r" % request)
        self.assertEqual(request[SPS_TAG][0].get("00080060"), b"MR", request)

    def test_station(self):
        results, request = self.request_of(
            self.peer_a, lambda: self.results("mwl-a", {"ScheduledStationAETitle": "CT1",
                                                        "ScheduledProcedureStepStartDate": ""}))
        self.assertEqual(ids(results),
                         of(ITEMS_A, lambda it: it["ScheduledStationAETitle"] == "CT1"))
        self.assertEqual(request[SPS_TAG][0].get("00400001"), b"CT1", request)
        self.assertNotIn("00400001", request)
        self.assertEqual(ids(self.results("mwl-a", {"ScheduledStationAETitle": "CT1"})),
                         of(ITEMS_A, lambda it: it["ScheduledStationAETitle"] == "CT1"
                            and it["ScheduledProcedureStepStartDate"] == TODAY))

    def test_top_level_keys_by_keyword_and_tag(self):
        results, request = self.request_of(
            self.peer_a, lambda: self.results("mwl-a", {"(0008,0050)": "ACC-CTOLD",
                                                        "ScheduledProcedureStepStartDate": ""}))
        self.assertEqual(ids(results), ["CTOLD"])
        self.assertEqual(request.get("00080050"), b"ACC-CTOLD", request)
        self.assertEqual(ids(self.results("mwl-a", {"PatientID": "CTYEST",
                                                    "ScheduledProcedureStepStartDate": ""})),
                         ["CTYEST"])

    # ---- 4. flattening

    def test_item_is_flattened_with_its_sequences(self):
        results = self.results("mwl-a", {"PatientID": "CODE1"})
        self.assertEqual(ids(results), ["CODE1"], results)
        r, expected = results[0], ITEMS_A["CODE1"]
        for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                   "AccessionNumber", "StudyInstanceUID", "RequestedProcedureID",
                   "RequestedProcedureDescription", "ReferringPhysicianName"):
            self.assertEqual(r.get(kw), expected[kw], "%s: %r" % (kw, r))
        # The step: merged at top level and as the sequence's one item.
        self.assertStep(r, expected, "top level")
        sps = r.get("ScheduledProcedureStepSequence")
        self.assertIsInstance(sps, list, r)
        self.assertEqual(len(sps), 1, sps)
        self.assertStep(sps[0], expected, "ScheduledProcedureStepSequence[0]")
        self.assertCodes(sps[0].get("ScheduledProtocolCodeSequence"),
                         expected["ScheduledProtocolCodeSequence"],
                         "ScheduledProtocolCodeSequence")
        self.assertCodes(r.get("RequestedProcedureCodeSequence"),
                         expected["RequestedProcedureCodeSequence"],
                         "RequestedProcedureCodeSequence")
        # The same in DICOM JSON.
        d = r["dicom"]
        self.assertEqual(d[SPS_TAG]["vr"], "SQ", d)
        step = d[SPS_TAG]["Value"][0]
        for kw, tag in STEP_KEYWORDS.items():
            want = expected[kw]
            value = step.get(tag, {}).get("Value")
            if VRS[tag] == "PN":
                want = {"Alphabetic": want}
            self.assertEqual((step.get(tag, {}).get("vr"), value), (VRS[tag], [want]),
                             "%s: %r" % (kw, step))
        self.assertEqual([[c.get(CODE_TAGS[k], {}).get("Value") for k in CODE_KEYS]
                          for c in step[PROTOCOL_TAG]["Value"]],
                         [[[c[k]] for k in CODE_KEYS]
                          for c in expected["ScheduledProtocolCodeSequence"]], step)
        self.assertEqual([[c.get(CODE_TAGS[k], {}).get("Value") for k in CODE_KEYS]
                          for c in d[RP_CODE_TAG]["Value"]],
                         [[[c[k]] for k in CODE_KEYS]
                          for c in expected["RequestedProcedureCodeSequence"]], d)
        self.assertEqual(d["00100020"], {"vr": "LO", "Value": ["CODE1"]}, d)

    # ---- 5. limit

    def test_limit_truncates(self):
        answer = self.worklist("mwl-a", {"ScheduledProcedureStepStartDate": ""}, limit=2)
        self.assertEqual(len(answer["results"]), 2, answer)
        self.assertIs(answer["truncated"], True, answer)
        self.assertLessEqual(set(ids(answer["results"])), set(ITEMS_A), answer)
        answer = self.worklist("mwl-a", {"ScheduledProcedureStepStartDate": ""},
                               limit=len(ITEMS_A))
        self.assertEqual(ids(answer["results"]), of(ITEMS_A), answer)
        self.assertIs(answer["truncated"], False, answer)

    # ---- 6. refusals

    def test_node_without_mwl_is_refused(self):
        status, answer = self.worklist("no-mwl", expect=None)
        self.assertJsonError(status, answer, field="mwl", expected_status=409)
        self.assertIn("mwl", answer["error"])

    def test_unknown_body_field_is_refused(self):
        status, answer = self.worklist("mwl-a", expect=None, bogus_field=1)
        self.assertJsonError(status, answer)
        self.assertIn("bogus_field", "%s %s" % (answer.get("field"), answer["error"]), answer)

    def test_non_ascii_value_for_an_iso2022_node_is_refused(self):
        before = self.peer_b.request_files()
        status, answer = self.worklist("mwl-jp", {"PatientName": "山田*"}, expect=None)
        self.assertJsonError(status, answer, field="query.PatientName")
        self.assertEqual(self.peer_b.request_files(), before, "a query went out anyway")

    def test_value_the_node_charset_cannot_write_is_refused(self):
        # Nothing is sent with substitutes for what Latin-1 lacks.
        before = self.peer_a.request_files()
        status, answer = self.worklist("mwl-a", {"PatientName": "山田*"}, expect=None)
        self.assertJsonError(status, answer, "query.PatientName")
        self.assertIn("ISO_IR 100", answer["error"])
        self.assertEqual(self.peer_a.request_files(), before, "a query went out anyway")

    def test_roles(self):
        user = ("wl-user", "pw-wl-user-Secret9")
        ro = ("wl-ro", "pw-wl-ro-Secret9")
        for (name, password), role in ((user, "user"), (ro, "read-only")):
            status, body = self.server.api("POST", "/api/users", {
                "username": name, "role": role, "password": password})
            self.assertEqual(status, 201, body)
        status, body = self.server.api("POST", "/api/nodes/mwl-a/worklist",
                                       {"query": {"PatientID": "LAT1"}}, auth=user)
        self.assertEqual(status, 200, body)
        self.assertEqual(ids(body["results"]), ["LAT1"], body)
        before = self.peer_a.request_files()
        status, body = self.server.api("POST", "/api/nodes/mwl-a/worklist",
                                       {"query": {"PatientID": "LAT1"}}, auth=ro)
        self.assertEqual(status, 403, body)
        self.assertIn("user", body.get("error", ""), body)
        self.assertEqual(self.peer_a.request_files(), before, "a query went out anyway")

    def test_unreachable_node(self):
        status, answer = self.worklist("mwl-down", expect=None)
        self.assertJsonError(status, answer, expected_status=502)

    def test_unknown_node_and_no_credentials(self):
        status, answer = self.worklist("no-such-node", expect=None)
        self.assertEqual(status, 404, answer)
        status, answer = self.server.api("POST", "/api/nodes/mwl-a/worklist", {"query": {}},
                                         auth=None)
        self.assertEqual(status, 401, answer)

    def test_schedule_refuses_unless_overridden(self):
        before = self.peer_a.request_files()
        status, answer = self.worklist("mwl-night", {"PatientID": "LAT1"}, expect=None)
        self.assertJsonError(status, answer, field="schedule", expected_status=409)
        self.assertEqual(self.peer_a.request_files(), before, "a query went out anyway")
        results = self.results("mwl-night", {"PatientID": "LAT1"}, override_schedule=True)
        self.assertEqual([r["PatientName"] for r in results], [LATIN1_NAME], results)

    # ---- 7. CLI

    def cli_json(self, *args):
        cp = self.server.cli("worklist", *args, "--json")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        out = json.loads(cp.stdout)
        return out["results"] if isinstance(out, dict) else out

    def test_cli_json_is_the_api_answer(self):
        api = self.results("mwl-a", {"Modality": "CT"})
        self.assertEqual(ids(api), of(ITEMS_A, lambda it: it["Modality"] == "CT"
                                      and it["ScheduledProcedureStepStartDate"] == TODAY))
        cli = self.cli_json("mwl-a", "--modality", "CT")
        key = lambda r: r.get("PatientID")  # noqa: E731
        self.assertEqual(sorted(cli, key=key), sorted(api, key=key))

    def test_cli_options(self):
        self.assertEqual(ids(self.cli_json("mwl-a", "--date", "any", "--station", "MR1")),
                         of(ITEMS_A, lambda it: it["ScheduledStationAETitle"] == "MR1"))
        self.assertEqual(ids(self.cli_json("mwl-a", "--date", "%s-%s" % (YESTERDAY, TODAY),
                                           "--modality", "CT")),
                         of(ITEMS_A, lambda it: it["Modality"] == "CT" and it[
                             "ScheduledProcedureStepStartDate"] in (YESTERDAY, TODAY)))
        self.assertEqual(ids(self.cli_json("mwl-a", "--date", TOMORROW)), ["MRTOMO"])
        self.assertEqual(ids(self.cli_json("mwl-a", "PatientName=MÜLLER*", "--date", "any")),
                         ["LAT1"])
        self.assertEqual(len(self.cli_json("mwl-a", "--date", "any", "--limit", "2")), 2)
        self.assertEqual(ids(self.cli_json("mwl-jp", "PatientID=JP1")), ["JP1"])

    def test_cli_table(self):
        cp = self.server.cli("worklist", "mwl-a")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        lines = cp.stdout.splitlines()
        for pid in of(ITEMS_A, lambda it: it["ScheduledProcedureStepStartDate"] == TODAY):
            it = ITEMS_A[pid]
            row = [line for line in lines if it["AccessionNumber"] in line]
            self.assertEqual(len(row), 1, "%s:\n%s" % (pid, cp.stdout))
            for v in (it["PatientName"], it["PatientID"], it["Modality"],
                      it["ScheduledStationAETitle"]):
                self.assertIn(v, row[0], "%s:\n%s" % (pid, cp.stdout))
        # Not today's: not listed.
        for pid in of(ITEMS_A, lambda it: it["ScheduledProcedureStepStartDate"] != TODAY):
            self.assertNotIn(ITEMS_A[pid]["AccessionNumber"], cp.stdout)
        cp = self.server.cli("worklist", "mwl-jp")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn(JP_NAME, cp.stdout)

    def test_cli_refusal_exits_non_zero(self):
        cp = self.server.cli("worklist", "no-mwl")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("mwl", cp.stdout + cp.stderr)


if __name__ == "__main__":
    unittest.main()
