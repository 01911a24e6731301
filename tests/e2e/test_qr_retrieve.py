"""Our receiver as a Query/Retrieve SCP, C-GET and C-MOVE: Patient Root and Study Root models
at every level over the archive (a receiver's visible projects only), PS3.4 C.4.2 / C.4.3:
the sub-operations' counts in the pending and final responses, byte-identical data sets when
the peer takes the stored transfer syntax and a lossless conversion when it does not, the
Move Destination looked up among our registered nodes (0xA801 when unknown, with a log line
saying to register it; 0xA702 when it cannot be reached), Move Originator AE title and
Message ID on every C-STORE sub-operation, 0xA900 for a missing unique key or a level the
model lacks, 0xB000 with the Failed SOP Instance UID List when an archive file is gone,
0xFE00 after a C-CANCEL, and receivers without query_retrieve refusing the contexts.

The peers: DCMTK's getscu (C-GET; -d prints every C-GET-RSP with its DIMSE status and the
Remaining/Completed/Failed/Warning counts, +B writes each received data set as it came) and
movescu (C-MOVE; -d prints every C-MOVE-RSP and the final response's identifier, so the
Failed SOP Instance UID List (0008,0058) is read there: getscu does not read a C-GET-RSP's
identifier); DCMTK's storescp as the move destinations (-d prints each association's
"Calling Application Name" and each C-STORE-RQ with its "Move Originator AE Title" and
"Move Originator ID"; +B writes the data set as received; +xi accepts Implicit VR Little
Endian only; --sleep-after 1 makes each store after the first wait a second, so a C-CANCEL
arrives mid-move); and Orthanc 1.10.1 as a client through its REST API
(/modalities/{id}/query, then /queries/{id}/answers/0/retrieve: a C-MOVE to itself, ORTHANC
being one of our nodes); for a C-CANCEL during a C-GET, which getscu cannot send, a second
server's retrieve job (method c-get) through a throttling proxy. DCMTK 3.6.7's getscu +xi
proposes Explicit VR Little Endian only (its prepareTS), so the conversion for an
Implicit-only peer is checked through C-MOVE alone.

Test data: 6 studies of 5 patients written by dicomgen (the DATA table below), 24
instances, stored with storescu into two config receivers filing into project LAB1 or LAB2
(default_project); study C has a series in each, study E an Implicit VR series (sent with
storescu -xi, so stored Implicit). Every expected value (which instances arrive, their data
set bytes, element values, the counts) comes from that generated data and PS3.4, never from
the server's REST answers (those only tell when indexing is done and that the filing into
projects happened; the failure scenario finds the instance's file by walking data_dir/archive
for <SOP Instance UID>.dcm, moves it away and puts it back).

Receivers, one server, one port: STORE1 / STORE2 (storage, no query_retrieve), QR (every
project) and QRLAB1 (query_retrieve_projects LAB1). Nodes (POST /api/nodes): STORESCP,
STORESCP2 (with its own calling_ae_title MYCALLER), IMPLICITSCP (+xi), SLOWSCP, GONE (a port
where nothing listens), ORTHANC.

scripts/in-netns.sh python3 -m unittest -v tests.e2e.test_qr_retrieve
"""

import os
import re
import shutil
import subprocess
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

CT = dicomgen.CT_IMAGE_STORAGE
MR = dicomgen.MR_IMAGE_STORAGE
SC = dicomgen.SECONDARY_CAPTURE_STORAGE
SOP_CLASS = {"CT": CT, "MR": MR, "OT": SC}
EXPLICIT, IMPLICIT = dicomgen.EXPLICIT_VR_LE, dicomgen.IMPLICIT_VR_LE

PENDING, PENDING_WARNING = 0xFF00, 0xFF01
SUCCESS, CANCEL, WARNING_SOME_FAILED = 0x0000, 0xFE00, 0xB000
NOT_MATCHING_SOP_CLASS = 0xA900          # Identifier does not match SOP Class
MOVE_DESTINATION_UNKNOWN = 0xA801        # Refused: Move Destination unknown
OUT_OF_RESOURCES_SUBOPS = 0xA702         # Refused: Out of resources - sub-operations

TAG = {
    "QueryRetrieveLevel": "0008,0052",
    "SOPInstanceUID": "0008,0018",
    "PatientID": "0010,0020",
    "StudyInstanceUID": "0020,000D",
    "SeriesInstanceUID": "0020,000E",
}
PATIENT_ID, SOP_INSTANCE_UID, PIXEL_DATA = (0x0010, 0x0020), (0x0008, 0x0018), (0x7FE0, 0x0010)

# ------------------------------------------------------------------------------ test data

# (key, PatientID, PatientName, [(modality, instances, project, syntax)])
DATA = [
    ("A", "QRRET1", "RET^ALPHA", [("CT", 3, "LAB1", "explicit"), ("MR", 2, "LAB1", "explicit")]),
    ("B", "QRRET1", "RET^ALPHA", [("MR", 3, "LAB2", "explicit")]),
    ("C", "QRRET2", "RET^BRAVO", [("CT", 2, "LAB1", "explicit"), ("MR", 2, "LAB2", "explicit")]),
    ("D", "QRRET3", "RET^CHARLIE", [("OT", 4, "LAB1", "explicit")]),
    ("E", "QRRET4", "RET^DELTA", [("CT", 3, "LAB1", "explicit"), ("OT", 2, "LAB1", "implicit")]),
    ("F", "QRORTH", "RET^ORTHANC", [("CT", 3, "LAB1", "explicit")]),
]


def build_data(directory):
    """Write the instances of DATA; the model of what was written:
    {"studies": {key: study}, "sops": {sop: instance}, "files": {(project, syntax): [paths]}}
    with study = {"uid", "pid", "series": [{"uid", "modality", "project", "syntax",
    "sops": [...]}]} and instance = {"path", "study", "series", "project", "syntax"}."""
    uid = dicomgen.make_uids()
    studies, sops, files = {}, {}, {}
    n = 0
    for st_index, (key, pid, name, series_list) in enumerate(DATA, 1):
        study = {"key": key, "uid": uid("study", st_index), "pid": pid, "series": []}
        studies[key] = study
        for se_index, (modality, count, project, syntax) in enumerate(series_list, 1):
            series = {"uid": uid("series", st_index, se_index), "modality": modality,
                      "project": project, "syntax": syntax, "sops": []}
            study["series"].append(series)
            for inum in range(1, count + 1):
                n += 1
                sop = uid("instance", n)
                path = directory / ("%s-%s" % (project, syntax)) / ("%06d.dcm" % n)
                path.parent.mkdir(parents=True, exist_ok=True)
                dicomgen.write_instance(
                    path, sop_uid=sop, study_uid=study["uid"], series_uid=series["uid"],
                    patient_name=name, patient_id=pid, modality=modality,
                    sop_class=SOP_CLASS[modality], syntax=syntax, instance_number=inum,
                    series_number=se_index, study_id=key, accession_number="ACC-" + key,
                    study_description="Retrieve " + key,
                    series_description="%s %s" % (key, modality), size=6000)
                series["sops"].append(sop)
                sops[sop] = {"path": path, "study": key, "series": series["uid"],
                             "project": project, "syntax": syntax}
                files.setdefault((project, syntax), []).append(path)
    return {"studies": studies, "sops": sops, "files": files}


# ------------------------------------------------------------------------------ DCMTK output

def parse_dimse(output):
    """Every DIMSE message a DCMTK tool dumped with -d, in order: [{field: value}] with
    "_dir" "in" / "out" (the "D: " prefixes stripped; a field is what stands before the first
    colon of a line, e.g. "Message Type", "Completed Suboperations", "DIMSE Status")."""
    messages, current = [], None
    for raw in output.splitlines():
        line = re.sub(r"^[TDIWEF]: ", "", raw)
        if "INCOMING DIMSE MESSAGE" in line or "OUTGOING DIMSE MESSAGE" in line:
            current = {"_dir": "in" if "INCOMING" in line else "out"}
        elif "END DIMSE MESSAGE" in line:
            if current is not None:
                messages.append(current)
            current = None
        elif current is not None and ":" in line and not line.startswith("---"):
            key, value = line.split(":", 1)
            current.setdefault(key.strip(), value.strip())
    return messages


def dimse_status(message):
    m = re.match(r"0x([0-9a-fA-F]{4})", message.get("DIMSE Status", ""))
    return int(m.group(1), 16) if m else None


def sub_count(message, kind):
    """Remaining / Completed / Failed / Warning Suboperations: int, or None when absent."""
    value = message.get("%s Suboperations" % kind, "none")
    return int(value) if value.isdigit() else None


def sops_in(directory):
    """{SOP Instance UID: path} of the Part 10 files in directory (from their meta header)."""
    out = {}
    for p in sorted(Path(directory).iterdir()):
        if not p.is_file():
            continue
        try:
            meta, _ = dicomgen.read_meta(p)
        except (ValueError, OSError):
            out.setdefault("(not DICOM) " + p.name, p)
            continue
        out[meta.get("MediaStorageSOPInstanceUID", "(no SOP UID) " + p.name)] = p
    return out


class RetrieveRun:
    """One getscu or movescu run: its DIMSE responses, the final one, what arrived."""

    KINDS = ("Remaining", "Completed", "Failed", "Warning")

    def __init__(self, args, returncode, output, out_dir=None):
        self.args, self.returncode, self.output = args, returncode, output
        self.messages = parse_dimse(output)
        self.responses = [m for m in self.messages if m["_dir"] == "in"
                          and m.get("Message Type") in ("C-GET RSP", "C-MOVE RSP")]
        self.statuses = [dimse_status(m) for m in self.responses]
        self.pending = [m for m, s in zip(self.responses, self.statuses)
                        if s in (PENDING, PENDING_WARNING)]
        last = self.responses[-1] if self.responses else None
        self.final = last if last is not None and self.statuses[-1] not in (
            PENDING, PENDING_WARNING) else None
        self.final_status = dimse_status(self.final) if self.final else None
        requests = [m for m in self.messages if m["_dir"] == "out"
                    and m.get("Message Type") in ("C-GET RQ", "C-MOVE RQ")]
        self.message_id = requests[0].get("Message ID") if requests else None
        self.files = sops_in(out_dir) if out_dir is not None else {}
        # movescu -d: the final response's identifier, printed after "Response Identifiers:".
        ids = output.split("Response Identifiers:", 1)[1] if "Response Identifiers:" in \
            output else ""
        m = re.search(r"\(0008,0058\) UI \[([^\]]*)\]", ids)
        self.failed_uids = None
        if m:
            self.failed_uids = [u.strip() for u in m.group(1).split("\\") if u.strip()]
        elif re.search(r"\(0008,0058\) UI \(no value available\)", ids):
            self.failed_uids = []

    def counts(self, message=None):
        """(remaining, completed, failed, warning) of a response (default: the final one)."""
        message = message if message is not None else self.final
        return tuple(sub_count(message or {}, k) for k in self.KINDS)

    def describe(self):
        rows = ["%s 0x%04X %s" % (m.get("Message Type"), s if s is not None else 0xFFFF,
                                  self.counts(m)) for m, s in zip(self.responses, self.statuses)]
        # The output from the request on (the association's contexts are long lists).
        start = max(self.output.find("Sending C-GET Request"),
                    self.output.find("Sending Move Request"), 0)
        return ("%s\nexit %s, responses (status, remaining/completed/failed/warning):\n  %s\n"
                "files: %d\n--- output from the request on (tail):\n%s"
                % (" ".join(str(a) for a in self.args), self.returncode, "\n  ".join(rows),
                   len(self.files), self.output[start:][-8000:]))


class StoreSCP(harness._Process):
    """DCMTK's storescp -d --single-process +B writing to its own folder; its log tells each
    association's calling AE title and each C-STORE-RQ's Move Originator fields."""

    name = "storescp"

    def __init__(self, workdir, aet, options=()):
        super().__init__(workdir)
        self.aet = aet
        self.log_path = self.workdir / ("storescp-%s.log" % aet)
        self.out_dir = self.workdir / "out"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.port = harness.free_port()
        self.options = list(options)

    def start(self, timeout=20):
        argv = (["storescp", "-d", "--single-process", "-dhl", "+B"] + self.options
                + ["-aet", self.aet, "-od", str(self.out_dir), str(self.port)])
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=str(self.workdir), env=harness.tool_env())
        finally:
            log.close()
        up = harness.wait_until(
            lambda: not self.running() or harness.tcp_listeners(self.port) > 0, timeout, 0.02)
        if not (up and self.running()):
            raise AssertionError("storescp %s did not listen on %d; log:\n%s"
                                 % (self.aet, self.port, self.log_tail()))
        return self

    def log_size(self):
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")

    def clear(self):
        for p in self.out_dir.iterdir():
            if p.is_dir():
                shutil.rmtree(str(p))
            else:
                p.unlink()

    def files(self):
        return sops_in(self.out_dir)

    @staticmethod
    def store_requests(text):
        return [m for m in parse_dimse(text)
                if m["_dir"] == "in" and m.get("Message Type") == "C-STORE RQ"]

    @staticmethod
    def calling_aes(text):
        """The calling AE title of each association received, in order (storescp -d dumps
        the parameters of the A-ASSOCIATE-RQ, then of the -AC: the first one counts)."""
        out = []
        for part in re.split(r"(?m)^I: Association Received.*$", text)[1:]:
            m = re.search(r"Calling Application Name:\s*(\S*)", part)
            out.append(m.group(1) if m else None)
        return out


class QRRetrieveTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.data = build_data(cls.tmp / "data")
        cls.port = harness.free_port()
        # Orthanc first: it must know our QR receiver's port; we learn its port for our node.
        cls.orthanc = cls.start_class_orthanc(extra={
            "DicomModalities": {"pacsbridge": ["QR", "127.0.0.1", cls.port]}})
        base = {"port": cls.port, "bind": "127.0.0.1"}
        cls.server = cls.start_class_server(receivers=[
            dict(base, ae_title="STORE1", default_project="LAB1"),
            dict(base, ae_title="STORE2", default_project="LAB2"),
            dict(base, ae_title="QR", query_retrieve=True),
            dict(base, ae_title="QRLAB1", query_retrieve=True,
                 query_retrieve_projects=["LAB1"]),
        ])
        # LAB2 first: study C's MR series is filed into LAB2, its CT series then into LAB1.
        # The Implicit VR series goes with -xi, so Implicit is negotiated and stored.
        for ae, key, extra in (("STORE2", ("LAB2", "explicit"), []),
                               ("STORE1", ("LAB1", "explicit"), []),
                               ("STORE1", ("LAB1", "implicit"), ["-xi"])):
            cp = harness.storescu(cls.port, ae, cls.data["files"][key], extra=extra)
            if cp.returncode != 0:
                raise AssertionError("storescu to %s failed:\n%s" % (ae, harness.proc_output(cp)))
        expected = {s["uid"]: sum(len(se["sops"]) for se in s["series"])
                    for s in cls.data["studies"].values()}

        harness.wait_studies_indexed(cls.server, expected)

        cls.scps = {}
        for aet, options in (("STORESCP", []), ("STORESCP2", []), ("IMPLICITSCP", ["+xi"]),
                             ("SLOWSCP", ["--sleep-after", "1"])):
            scp = StoreSCP(cls.tmp / ("scp-" + aet.lower()), aet, options)
            cls._peers.append(scp)
            cls.addClassCleanup(scp.stop)
            scp.start()
            cls.scps[aet] = scp
        cls.gone_port = harness.free_port()  # nothing listens there
        nodes = [{"name": "storescp", "ae_title": "STORESCP", "port": cls.scps["STORESCP"].port},
                 {"name": "storescp2", "ae_title": "STORESCP2",
                  "port": cls.scps["STORESCP2"].port, "calling_ae_title": "MYCALLER"},
                 {"name": "implicit-only", "ae_title": "IMPLICITSCP",
                  "port": cls.scps["IMPLICITSCP"].port},
                 {"name": "slow", "ae_title": "SLOWSCP", "port": cls.scps["SLOWSCP"].port},
                 {"name": "gone", "ae_title": "GONE", "port": cls.gone_port},
                 {"name": "orthanc", "ae_title": "ORTHANC", "port": cls.orthanc.dicom_port}]
        for node in nodes:
            body = dict(node, host="127.0.0.1")
            status, answer = cls.server.api("POST", "/api/nodes", body)
            if status != 201:
                raise AssertionError("POST /api/nodes %r -> %s %r" % (body, status, answer))

    # ------------------------------------------------------------------ helpers

    def study(self, key):
        return self.data["studies"][key]

    def study_sops(self, key, projects=None):
        return {sop for se in self.study(key)["series"]
                if projects is None or se["project"] in projects for sop in se["sops"]}

    def key_args(self, level, keys):
        args = ["-k", "%s=%s" % (TAG["QueryRetrieveLevel"], level)]
        for keyword, value in keys:
            tag = TAG.get(keyword, keyword)
            args += ["-k", tag if value is None else "%s=%s" % (tag, value)]
        return args

    def getscu(self, level, keys, called_ae="QR", model="S", extra=()):
        """getscu -d +B into a fresh folder; keys [(keyword or "gggg,eeee", value)]."""
        out = self.mkdtemp("get")
        args = (["getscu", "-d", "-" + model, "-aet", "GETSCU", "-aec", called_ae,
                 "-to", "10", "-ta", "10", "-td", "30", "+B", "-od", str(out)] + list(extra)
                + self.key_args(level, keys) + ["127.0.0.1", str(self.port)])
        cp = subprocess.run(args, capture_output=True, timeout=90, env=harness.tool_env())
        return RetrieveRun(args, cp.returncode,
                           (cp.stdout + cp.stderr).decode("utf-8", "replace"), out)

    def movescu(self, level, keys, destination, called_ae="QR", model="S", calling_ae="MOVESCU",
                extra=()):
        args = (["movescu", "-d", "-" + model, "-aet", calling_ae, "-aec", called_ae,
                 "-aem", destination, "-to", "10", "-ta", "10", "-td", "30"] + list(extra)
                + self.key_args(level, keys) + ["127.0.0.1", str(self.port)])
        cp = subprocess.run(args, capture_output=True, timeout=90, env=harness.tool_env())
        return RetrieveRun(args, cp.returncode, (cp.stdout + cp.stderr).decode("utf-8", "replace"))

    def move_to(self, aet, level, keys, **kw):
        """movescu to one of our storescps (its folder emptied first): (run, storescp, the
        storescp log written meanwhile)."""
        scp = self.scps[aet]
        scp.clear()
        offset = scp.log_size()
        run = self.movescu(level, keys, aet, **kw)
        time.sleep(0.2)  # storescp logs the release after our final response may have left
        return run, scp, scp.log_since(offset)

    def assertSameDataSets(self, files, expected_sops, what):
        """files {sop: path} holds exactly expected_sops, each data set byte-identical to the
        generated file's."""
        self.assertEqual(set(files), set(expected_sops), "instances in %s" % what)
        for sop in expected_sops:
            src = self.data["sops"][sop]["path"]
            self.assertTrue(dicomgen.dataset_bytes(files[sop]) == dicomgen.dataset_bytes(src),
                            "%s: data set of %s differs from the generated file %s"
                            % (what, sop, src))

    def assertCompleted(self, run, n):
        """Final status Success with completed n, failed 0, warning 0 (remaining absent or 0);
        every pending response has counts that add up to n."""
        self.assertEqual(run.final_status, SUCCESS, run.describe())
        remaining, completed, failed, warning = run.counts()
        self.assertEqual((completed, failed, warning), (n, 0, 0), run.describe())
        self.assertIn(remaining, (None, 0), run.describe())
        for m in run.pending:
            counts = self.counts_of(run, m)
            self.assertEqual(sum(counts), n, "pending counts %r\n%s" % (counts, run.describe()))

    def counts_of(self, run, message):
        counts = run.counts(message)
        self.assertNotIn(None, counts, "a pending response without its four counts\n"
                         + run.describe())
        return counts

    def assertGot(self, run, expected_sops):
        """A C-GET that brought exactly expected_sops, byte-identical, with Success counts."""
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertCompleted(run, len(expected_sops))
        self.assertSameDataSets(run.files, expected_sops, "getscu's folder\n" + run.describe())

    def archive_file(self, sop):
        """The archive file of an instance: data_dir/archive/.../<SOP Instance UID>.dcm."""
        found = [p for p in harness.files_under(self.server.data_dir / "archive")
                 if os.path.basename(p) == sop + ".dcm"]
        self.assertEqual(len(found), 1, "precondition: one archive file named %s.dcm, found %r"
                         % (sop, found))
        return Path(found[0])

    # ================================================================== 1. C-GET

    def test_01a_get_study_level_study_root(self):
        a = self.study("A")
        r = self.getscu("STUDY", [("StudyInstanceUID", a["uid"])])
        self.assertGot(r, self.study_sops("A"))

    def test_01b_get_study_uid_list_with_an_implicit_series(self):
        """A\\E: E has an Implicit VR series (stored Implicit). getscu proposes one context per
        SOP class (every uncompressed syntax); we pick its one transfer syntax at association
        time, before the C-GET-RQ says what will be sent, so an instance stored in another
        syntax may come converted, losslessly; those stored in the syntax picked come
        unchanged."""
        uids = "%s\\%s" % (self.study("A")["uid"], self.study("E")["uid"])
        r = self.getscu("STUDY", [("StudyInstanceUID", uids)])
        expected = self.study_sops("A") | self.study_sops("E")
        self.assertEqual(r.returncode, 0, r.describe())
        self.assertCompleted(r, len(expected))
        self.assertEqual(set(r.files), expected, r.describe())
        for sop in expected:
            src = self.data["sops"][sop]
            meta, _ = dicomgen.read_meta(r.files[sop])
            stored = IMPLICIT if src["syntax"] == "implicit" else EXPLICIT
            if meta["TransferSyntaxUID"] == stored:
                self.assertTrue(dicomgen.dataset_bytes(r.files[sop])
                                == dicomgen.dataset_bytes(src["path"]),
                                "%s came in its stored syntax but changed" % sop)
            else:
                self.assertIn(meta["TransferSyntaxUID"], (EXPLICIT, IMPLICIT), sop)
                self.assertSameValues(r.files[sop], sop)
        # The Explicit ones (every SOP class has some in the archive) come as they are.
        for sop in self.study_sops("A"):
            self.assertEqual(dicomgen.read_meta(r.files[sop])[0]["TransferSyntaxUID"],
                             EXPLICIT, sop)

    def test_01c_get_series_level(self):
        a = self.study("A")
        mr = a["series"][1]
        r = self.getscu("SERIES", [("StudyInstanceUID", a["uid"]),
                                   ("SeriesInstanceUID", mr["uid"])])
        self.assertGot(r, set(mr["sops"]))

    def test_01d_get_image_level_two_uid_list(self):
        a = self.study("A")
        ct = a["series"][0]
        two = [ct["sops"][0], ct["sops"][2]]
        r = self.getscu("IMAGE", [("StudyInstanceUID", a["uid"]),
                                  ("SeriesInstanceUID", ct["uid"]),
                                  ("SOPInstanceUID", "\\".join(two))])
        self.assertGot(r, set(two))

    def test_01e_get_patient_level_patient_root(self):
        # QRRET1 has studies A (LAB1) and B (LAB2): QR sees every project.
        r = self.getscu("PATIENT", [("PatientID", "QRRET1")], model="P")
        self.assertGot(r, self.study_sops("A") | self.study_sops("B"))
        # STUDY level on Patient Root, with the patient's key above it.
        b = self.study("B")
        r = self.getscu("STUDY", [("PatientID", "QRRET1"), ("StudyInstanceUID", b["uid"])],
                        model="P")
        self.assertGot(r, self.study_sops("B"))

    def test_01f_get_zero_matches_is_success_with_zero_counts(self):
        r = self.getscu("STUDY", [("StudyInstanceUID", "1.2.826.0.1.3680043.9.7133.404.404")])
        self.assertEqual(r.returncode, 0, r.describe())
        self.assertEqual(r.final_status, SUCCESS, r.describe())
        self.assertEqual(r.counts()[1:], (0, 0, 0), r.describe())
        self.assertEqual(r.files, {}, r.describe())

    # ================================================================== 2. C-MOVE

    def test_02a_move_study_to_a_registered_node(self):
        e = self.study("E")
        run, scp, log = self.move_to("STORESCP", "STUDY", [("StudyInstanceUID", e["uid"])])
        expected = self.study_sops("E")
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertCompleted(run, len(expected))
        # Explicit and Implicit instances, each as stored (storescp takes both).
        self.assertSameDataSets(scp.files(), expected, "storescp's folder\n" + log[-4000:])
        # One association, called by our receiver's own AE title.
        self.assertEqual(StoreSCP.calling_aes(log), ["QR"], log[-4000:])
        # Every C-STORE-RQ names the C-MOVE's caller and message.
        stores = StoreSCP.store_requests(log)
        self.assertEqual(sorted(m.get("Affected SOP Instance UID") for m in stores),
                         sorted(expected), log[-4000:])
        self.assertIsNotNone(run.message_id, run.describe())
        self.assertEqual({(m.get("Move Originator AE Title"), m.get("Move Originator ID"))
                          for m in stores}, {("MOVESCU", run.message_id)}, log[-4000:])

    def test_02b_move_series_patient_root_and_the_nodes_own_calling_ae(self):
        a = self.study("A")
        ct = a["series"][0]
        run, scp, log = self.move_to("STORESCP2", "SERIES", [
            ("PatientID", "QRRET1"), ("StudyInstanceUID", a["uid"]),
            ("SeriesInstanceUID", ct["uid"])], model="P", calling_ae="OTHERSCU")
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertCompleted(run, len(ct["sops"]))
        self.assertSameDataSets(scp.files(), ct["sops"], "storescp2's folder")
        # The node sets calling_ae_title: that is the calling AE, not the receiver's.
        self.assertEqual(StoreSCP.calling_aes(log), ["MYCALLER"], log[-4000:])
        self.assertEqual({m.get("Move Originator AE Title")
                          for m in StoreSCP.store_requests(log)}, {"OTHERSCU"}, log[-4000:])

    # ================================================================== 3. unknown destination

    def test_03_unknown_move_destination_is_a801_and_logged(self):
        a = self.study("A")
        r = self.movescu("STUDY", [("StudyInstanceUID", a["uid"])], "NOBODY")
        self.assertEqual(r.final_status, MOVE_DESTINATION_UNKNOWN, r.describe())
        self.assertEqual(r.pending, [], r.describe())

        def lines():
            text = self.server.log_path.read_text("utf-8", "replace")
            return [ln for ln in text.splitlines() if "NOBODY" in ln
                    and re.search(r"(?i)regist", ln) and re.search(r"(?i)\bnode", ln)]
        self.assertTrue(harness.wait_until(lines, 5, 0.1),
                        "no log line naming NOBODY and saying to register it as a node:\n"
                        + self.server.log_tail(30))
        # AE titles are case-sensitive: "storescp" is not the node STORESCP.
        scp = self.scps["STORESCP"]
        offset = scp.log_size()
        r = self.movescu("STUDY", [("StudyInstanceUID", a["uid"])], "storescp")
        self.assertEqual(r.final_status, MOVE_DESTINATION_UNKNOWN, r.describe())
        time.sleep(0.2)
        self.assertEqual(StoreSCP.calling_aes(scp.log_since(offset)), [],
                         "nothing may reach STORESCP")

    # ================================================================== 4. unreachable

    def test_04_unreachable_destination_is_a702(self):
        self.assertEqual(harness.tcp_listeners(self.gone_port), 0, "precondition")
        d = self.study("D")
        r = self.movescu("STUDY", [("StudyInstanceUID", d["uid"])], "GONE")
        self.assertEqual(r.final_status, OUT_OF_RESOURCES_SUBOPS, r.describe())
        self.assertIn(r.counts()[1], (None, 0), "nothing can have completed\n" + r.describe())

    # ================================================================== 5. unique keys, levels

    def test_05_missing_or_empty_unique_key_and_foreign_level_are_a900(self):
        a = self.study("A")
        cases = [
            ("STUDY", [("PatientID", "QRRET1")], "S"),                      # no StudyInstanceUID
            ("STUDY", [("StudyInstanceUID", "")], "S"),                     # empty
            ("SERIES", [("StudyInstanceUID", a["uid"])], "S"),              # no SeriesInstanceUID
            ("IMAGE", [("StudyInstanceUID", a["uid"]),
                       ("SeriesInstanceUID", a["series"][0]["uid"])], "S"),  # no SOPInstanceUID
            ("PATIENT", [("PatientID", "")], "P"),                          # empty PatientID
            ("PATIENT", [("PatientID", "QRRET1")], "S"),                    # no PATIENT level
            # Unique keys must be exact (PS3.4 C.4.2.2.1): a wildcard or a list with an empty
            # or wildcard element would select everything under the level above.
            ("PATIENT", [("PatientID", "QRRET*")], "P"),
            ("PATIENT", [("PatientID", "?*")], "P"),
            ("PATIENT", [("PatientID", "QRRET1\\")], "P"),
            ("STUDY", [("StudyInstanceUID", a["uid"] + "\\*")], "S"),
            ("STUDY", [("StudyInstanceUID", a["uid"] + "\\")], "S"),
        ]
        for level, keys, model in cases:
            with self.subTest(level=level, keys=keys, model=model, op="C-GET"):
                r = self.getscu(level, keys, model=model)
                self.assertEqual(r.final_status, NOT_MATCHING_SOP_CLASS, r.describe())
                self.assertEqual(r.pending, [], r.describe())
                self.assertEqual(r.files, {}, "nothing may be sent\n" + r.describe())
        for level, keys, model in (cases[0], cases[1], cases[5]):
            with self.subTest(level=level, keys=keys, model=model, op="C-MOVE"):
                run, scp, log = self.move_to("STORESCP", level, keys, model=model)
                self.assertEqual(run.final_status, NOT_MATCHING_SOP_CLASS, run.describe())
                self.assertEqual((scp.files(), StoreSCP.calling_aes(log)), ({}, []),
                                 "nothing may be sent\n" + log[-3000:])

    # ================================================================== 6. visibility

    def test_06_visible_projects_limit_what_is_sent(self):
        # Precondition: each series is filed in the project its receiver's default names.
        found = harness.where_is(self.server, {se["uid"] for s in self.data["studies"].values()
                                               for se in s["series"]})
        projects = {}
        for (project, _, _), series in found.items():
            for uid in series:
                projects.setdefault(uid, set()).add(project)
        self.assertEqual(projects, {se["uid"]: {se["project"]}
                                    for s in self.data["studies"].values()
                                    for se in s["series"]},
                         "precondition: the archive did not file the series as routed")
        # B is LAB2 only: through QRLAB1 nothing matches (success, zero counts, no file).
        r = self.getscu("STUDY", [("StudyInstanceUID", self.study("B")["uid"])],
                        called_ae="QRLAB1")
        self.assertEqual(r.returncode, 0, r.describe())
        self.assertEqual(r.final_status, SUCCESS, r.describe())
        self.assertEqual(r.counts()[1:], (0, 0, 0), r.describe())
        self.assertEqual(r.files, {}, r.describe())
        # A is LAB1: whole.
        r = self.getscu("STUDY", [("StudyInstanceUID", self.study("A")["uid"])],
                        called_ae="QRLAB1")
        self.assertGot(r, self.study_sops("A"))
        # C is split: only its LAB1 series.
        r = self.getscu("STUDY", [("StudyInstanceUID", self.study("C")["uid"])],
                        called_ae="QRLAB1")
        self.assertGot(r, self.study_sops("C", {"LAB1"}))
        # The LAB2 series asked by its own UID: nothing.
        c_mr = self.study("C")["series"][1]
        r = self.getscu("SERIES", [("StudyInstanceUID", self.study("C")["uid"]),
                                   ("SeriesInstanceUID", c_mr["uid"])], called_ae="QRLAB1")
        self.assertEqual((r.final_status, r.counts()[1:], r.files), (SUCCESS, (0, 0, 0), {}),
                         r.describe())
        # Same through C-MOVE, called by QRLAB1's own AE title.
        run, scp, log = self.move_to("STORESCP", "STUDY",
                                     [("StudyInstanceUID", self.study("C")["uid"])],
                                     called_ae="QRLAB1")
        self.assertCompleted(run, len(self.study_sops("C", {"LAB1"})))
        self.assertSameDataSets(scp.files(), self.study_sops("C", {"LAB1"}), "storescp")
        self.assertEqual(StoreSCP.calling_aes(log), ["QRLAB1"], log[-3000:])

    # ================================================================== 7. no query_retrieve

    def test_07_receiver_without_query_retrieve_refuses_get_and_move(self):
        a = self.study("A")
        for model in ("S", "P"):
            with self.subTest(model=model, op="C-GET"):
                r = self.getscu("STUDY", [("PatientID", "QRRET1"),
                                          ("StudyInstanceUID", a["uid"])],
                                called_ae="STORE1", model=model)
                self.assertNotEqual(r.returncode, 0, r.describe())
                self.assertRegex(r.output, r"(?i)no (acceptable|adequate) presentation context",
                                 r.describe())
                self.assertEqual((r.responses, r.files), ([], {}), r.describe())
            with self.subTest(model=model, op="C-MOVE"):
                run, scp, log = self.move_to("STORESCP", "STUDY", [
                    ("PatientID", "QRRET1"), ("StudyInstanceUID", a["uid"])],
                    called_ae="STORE1", model=model)
                self.assertNotEqual(run.returncode, 0, run.describe())
                self.assertRegex(run.output, r"(?i)no acceptable presentation context",
                                 run.describe())
                self.assertEqual((run.responses, scp.files()), ([], {}), run.describe())

    # ================================================================== 8. failures counted

    def test_08_missing_archive_file_is_counted_failed_and_listed(self):
        d = self.study("D")
        sops = d["series"][0]["sops"]
        lost = sops[1]
        path = self.archive_file(lost)
        away = self.server.data_dir / "moved-away.dcm"
        os.rename(path, away)
        self.addCleanup(os.rename, away, path)
        # C-GET: 0xB000, failed 1, completed N-1, the final response carries an identifier
        # (the Failed SOP Instance UID List; getscu does not read it: see C-MOVE below).
        with self.subTest(op="C-GET"):
            r = self.getscu("STUDY", [("StudyInstanceUID", d["uid"])])
            self.assertEqual(r.final_status, WARNING_SOME_FAILED, r.describe())
            self.assertEqual(r.counts()[1:], (len(sops) - 1, 1, 0), r.describe())
            self.assertIn(r.counts()[0], (None, 0), r.describe())
            self.assertEqual(r.final.get("Data Set"), "present",
                             "a final C-GET-RSP 0xB000 needs its identifier (PS3.4 C.4.3.3.2)\n"
                             + r.describe())
            self.assertSameDataSets(r.files, set(sops) - {lost},
                                    "getscu's folder\n" + r.describe())
        # C-MOVE: the same counts, and movescu prints the identifier.
        with self.subTest(op="C-MOVE"):
            run, scp, log = self.move_to("STORESCP", "STUDY", [("StudyInstanceUID", d["uid"])])
            self.assertEqual(run.final_status, WARNING_SOME_FAILED, run.describe())
            self.assertEqual(run.counts()[1:], (len(sops) - 1, 1, 0), run.describe())
            self.assertEqual(run.failed_uids, [lost], run.describe())
            self.assertSameDataSets(scp.files(), set(sops) - {lost}, "storescp's folder")

    def test_08b_archive_file_damaged_in_place_is_counted_failed_once_and_listed(self):
        """The file is there with its indexed size, but its meta header is overwritten: it
        cannot be read, fails before its C-STORE-RQ goes out, counts once as failed (and is
        listed), and the same association carries the others."""
        d = self.study("D")
        sops = d["series"][0]["sops"]
        damaged = sops[2]
        path = self.archive_file(damaged)
        original = Path(path).read_bytes()
        self.addCleanup(Path(path).write_bytes, original)
        with open(path, "r+b") as f:
            f.seek(132)
            f.write(b"\xff" * 64)
        self.assertEqual(os.path.getsize(path), len(original))
        with self.subTest(op="C-GET"):
            r = self.getscu("STUDY", [("StudyInstanceUID", d["uid"])])
            self.assertEqual(r.final_status, WARNING_SOME_FAILED, r.describe())
            self.assertEqual(r.counts()[1:], (len(sops) - 1, 1, 0), r.describe())
            self.assertSameDataSets(r.files, set(sops) - {damaged},
                                    "getscu's folder\n" + r.describe())
        with self.subTest(op="C-MOVE"):
            run, scp, log = self.move_to("STORESCP", "STUDY", [("StudyInstanceUID", d["uid"])])
            self.assertEqual(run.final_status, WARNING_SOME_FAILED, run.describe())
            self.assertEqual(run.counts()[1:], (len(sops) - 1, 1, 0), run.describe())
            self.assertEqual(run.failed_uids, [damaged], run.describe())
            self.assertSameDataSets(scp.files(), set(sops) - {damaged}, "storescp's folder")
            self.assertEqual(len(StoreSCP.calling_aes(log)), 1, log[-3000:])

    # ================================================================== 9. transcoding

    def test_09_converted_losslessly_for_an_implicit_only_destination(self):
        e = self.study("E")
        expected = self.study_sops("E")
        run, scp, log = self.move_to("IMPLICITSCP", "STUDY", [("StudyInstanceUID", e["uid"])])
        self.assertEqual(run.returncode, 0, run.describe())
        self.assertCompleted(run, len(expected))
        files = scp.files()
        self.assertEqual(set(files), expected, log[-4000:])
        self.assertConvertedToImplicit(files, expected)
        # Those stored Implicit were taken as they are: unchanged.
        self.assertSameDataSets({s: files[s] for s in expected
                                 if self.data["sops"][s]["syntax"] == "implicit"},
                                {s for s in expected
                                 if self.data["sops"][s]["syntax"] == "implicit"},
                                "IMPLICITSCP's folder")
        # Not checked through C-GET: DCMTK 3.6.7's getscu +xi ("accept implicit VR little
        # endian TS only") proposes Explicit VR Little Endian alone (its prepareTS), so no
        # getscu option makes a C-GET peer that takes Implicit only.

    def assertConvertedToImplicit(self, files, expected):
        for sop in expected:
            meta, _ = dicomgen.read_meta(files[sop])
            self.assertEqual(meta["TransferSyntaxUID"], IMPLICIT, sop)
            self.assertSameValues(files[sop], sop)

    def assertSameValues(self, path, sop):
        """The file's elements (read in its own transfer syntax) have the generated values."""
        got = dicomgen.read_elements(path)
        src = dicomgen.read_elements(self.data["sops"][sop]["path"])
        for tag in (PATIENT_ID, SOP_INSTANCE_UID, PIXEL_DATA):
            self.assertIn(tag, got, sop)
            self.assertEqual(got[tag][1], src[tag][1], "(%04X,%04X) of %s" % (tag + (sop,)))
        # Lossless: every element's value as generated.
        self.assertEqual({t: v for t, (_, v) in got.items()},
                         {t: v for t, (_, v) in src.items()}, sop)

    # ================================================================== 10. Orthanc

    def test_10_orthanc_queries_and_moves_a_study_to_itself(self):
        f = self.study("F")
        o = self.orthanc
        status, q = o.rest_json("POST", "/modalities/pacsbridge/query",
                                {"Level": "Study", "Query": {"PatientID": "QRORTH",
                                                             "StudyInstanceUID": ""}})
        self.assertEqual(status, 200, q)
        qid = q["ID"]
        status, answers = o.rest_json("GET", "/queries/%s/answers" % qid)
        self.assertEqual((status, answers), (200, ["0"]), answers)
        status, content = o.rest_json("GET", "/queries/%s/answers/0/content?simplify" % qid)
        self.assertEqual(status, 200, content)
        self.assertEqual(content.get("StudyInstanceUID"), f["uid"], content)
        status, moved = o.rest_json("POST", "/queries/%s/answers/0/retrieve" % qid,
                                    {"TargetAet": "ORTHANC", "Synchronous": True}, timeout=90)
        self.assertEqual(status, 200, "%r\nOrthanc log:\n%s" % (moved, o.log_tail(30)))
        status, found = o.rest_json("POST", "/tools/lookup", f["uid"])
        self.assertEqual(status, 200, found)
        ids = [x["ID"] for x in found if x.get("Type") == "Study"]
        self.assertEqual(len(ids), 1, found)
        status, instances = o.rest_json("GET", "/studies/%s/instances" % ids[0])
        self.assertEqual(status, 200, instances)
        by_sop = {i["MainDicomTags"]["SOPInstanceUID"]: i["ID"] for i in instances}
        self.assertEqual(set(by_sop), self.study_sops("F"))
        sop = sorted(by_sop)[0]
        status, _, raw = o.rest("GET", "/instances/%s/file" % by_sop[sop])
        self.assertEqual(status, 200)
        self.assertTrue(dicomgen.dataset_bytes(raw)
                        == dicomgen.dataset_bytes(self.data["sops"][sop]["path"]),
                        "Orthanc's copy of %s differs from the generated file" % sop)
        # Delivered by our QR receiver's AE title (the node sets no calling AE).
        status, _, remote = o.rest("GET", "/instances/%s/metadata/RemoteAET" % by_sop[sop])
        self.assertEqual((status, remote.decode("utf-8", "replace").strip()), (200, "QR"))

    # ================================================================== 11. C-CANCEL

    def test_11_cancel_ends_the_move_with_fe00(self):
        """SLOWSCP sleeps a second after each store (--sleep-after 1): movescu's C-CANCEL, sent
        after the first pending response, arrives while the move goes on; the final response is
        Cancel with the counts of what was done, and the rest is never sent."""
        d = self.study("D")
        n = len(self.study_sops("D"))
        run, scp, log = self.move_to("SLOWSCP", "STUDY", [("StudyInstanceUID", d["uid"])],
                                     extra=["--cancel", "1"])
        self.assertGreaterEqual(len(run.pending), 1, "no pending response to cancel after\n"
                                + run.describe())
        self.assertEqual(run.final_status, CANCEL, run.describe())
        remaining, completed, failed, warning = run.counts()
        self.assertEqual((failed, warning), (0, 0), run.describe())
        self.assertIsNotNone(completed, run.describe())
        self.assertLess(completed, n, run.describe())
        if remaining is not None:  # PS3.4 C.4.2.1.6: may be included with Cancel
            self.assertEqual(remaining, n - completed, run.describe())
        files = scp.files()
        self.assertEqual(len(files), completed, "%r\n%s" % (sorted(files), run.describe()))
        self.assertLessEqual(set(files), self.study_sops("D"))

    def test_12_a_c_get_canceled_by_its_caller_ends_with_fe00_and_sends_no_more(self):
        """A C-CANCEL during a C-GET. The caller is another server's retrieve job (method
        c-get; DCMTK's getscu cannot cancel), reaching QR through a proxy that paces what QR
        sends to 150 KB/s. Its cancel sends C-CANCEL-RQ while the C-STOREs go on; QR must stop
        after the sub-operation under way and end with Cancel (0xFE00), which lets the caller
        release at once: had QR ignored the C-CANCEL, the caller would have gone on taking
        instances and cut the association only after its 30 s grace. What QR counted as sent
        is exactly what arrived at the caller."""
        n = 40
        files = dicomgen.generate(self.mkdtemp("cancel-get"), n, size=48 * 1024, modality="CT",
                                  patient_id="CANCELGET", patient_name="CANCEL^GET")
        study = files[0][2]
        cp = harness.storescu(self.port, "STORE2", [f[0] for f in files])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        harness.wait_studies_indexed(self.server, {study: n})
        proxy = harness.ThrottledProxy(self.port, rate=150_000)
        self.addCleanup(proxy.close)
        caller = self.start_server()
        body = {"name": "qr", "ae_title": "QR", "host": "127.0.0.1", "port": proxy.port,
                "queryable": True}
        status, answer = caller.api("POST", "/api/nodes", body)
        self.assertEqual(status, 201, answer)
        status, answer = caller.api("POST", "/api/retrieve",
                                    {"node": "qr", "level": "STUDY", "uids": [study],
                                     "method": "c-get"})
        self.assertEqual(status, 202, answer)
        job_id = answer["job_id"]
        log_offset = self.server.log_path.stat().st_size

        def job():
            status, j = caller.api("GET", "/api/jobs/%s" % job_id)
            self.assertEqual(status, 200, j)
            return j

        def under_way():
            j = job()
            self.assertNotIn(j.get("state"), ("succeeded", "partial", "failed", "canceled"), j)
            return ((j.get("progress") or {}).get("completed") or 0) >= 3

        self.assertTrue(harness.wait_until(under_way, timeout=30, interval=0.05),
                        "fewer than 3 arrived: %r" % job())
        status, answer = caller.api("POST", "/api/jobs/%s/cancel" % job_id)
        self.assertEqual(status, 200, answer)
        t0 = time.monotonic()
        status, ended = caller.api("GET", "/api/jobs/%s?wait=25" % job_id, timeout=40)
        self.assertEqual(status, 200, ended)
        self.assertEqual(ended.get("state"), "canceled", ended)
        self.assertLess(time.monotonic() - t0, 10, "the caller waited for its grace: %r" % ended)

        # QR's own account of the C-GET: canceled, and how many it sent.
        pattern = re.compile(r"C-GET STUDY from PACSBRIDGE@\S+: (\d+) sent, (\d+) failed, "
                             r"(\d+) with warnings of (\d+) \(canceled\)")
        def logged():
            with open(self.server.log_path, "rb") as f:
                f.seek(log_offset)
                return f.read().decode("utf-8", "replace")

        m = harness.wait_until(lambda: pattern.search(logged()), timeout=10, interval=0.05)
        text = logged()
        self.assertIsNotNone(m, "QR logged no canceled C-GET:\n" + text)
        sent, failed, warned, total = (int(x) for x in m.groups())
        self.assertEqual((failed, warned, total), (0, 0, n), m.group(0))
        self.assertGreaterEqual(sent, 3, m.group(0))
        self.assertLess(sent, n, m.group(0))
        self.assertNotIn("association broke", text)
        # Every instance QR counted as sent arrived, and nothing else: the job's own count,
        # then the caller's index (it answers the count once indexing has caught up).
        self.assertEqual((ended.get("progress") or {}).get("completed"), sent, ended)
        harness.wait_until(lambda: len(harness.archive_sops(caller, study)) >= sent, timeout=10)
        arrived = harness.archive_sops(caller, study)
        self.assertEqual(len(arrived), sent, arrived)
        self.assertLessEqual(set(arrived), {f[1] for f in files})


if __name__ == "__main__":
    unittest.main()
