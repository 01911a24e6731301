"""Our receiver as a Query/Retrieve SCP, C-FIND only: Patient Root and Study Root models at
every level, PS3.4 C.2.2.2 matching (single values, * and ?, UID lists, date ranges, universal
keys, PN component groups, case), counts and ModalitiesInStudy / SOPClassesInStudy, the
0xFF01 status for unsupported optional keys, 0xA900 for PATIENT level on Study Root, the
answer's character set, C-CANCEL, answers from the index alone (the archive folder renamed
away), and who may ask: receivers without query_retrieve refuse the Query contexts, a
whitelist limits callers, query_retrieve_projects limits what is seen; the REST fields.

C-CANCEL: at full speed every answer leaves within microseconds, before findscu's C-CANCEL
(sent once the first answer arrived) can come, so the exact "one answer, then Cancel" is
checked on a second server started with the server's test-only PACSBRIDGE_TEST_FIND_DELAY_MS
(each answer after the first waits that long, then the C-CANCEL is looked for); at full speed
the C-CANCEL crosses the final answer and must be ignored, as DCMTK's own SCPs do (dcmqrscp,
wlmscpfs: "late C-CANCEL-RQ, ignoring"), not end the association.

The peer is DCMTK's findscu alone: every query goes out through it (-X writes the answers'
raw bytes, -d prints each C-FIND-RSP's DIMSE status as "DIMSE Status : 0xff00: ..."), so the
bytes on the wire are checked, not our own reading of them.

Test data: 4 patients written by dicomgen in their own character sets (an ASCII one without
(0008,0005), "Müller^Hans" in ISO_IR 100, "Yamada^Tarou=山田^太郎=やまだ^たろう" in \\ISO 2022
IR 87, "García^José" in ISO_IR 192), 6 studies with distinct dates, 1-3 series of distinct
modalities each (CT, MR, Basic Text SR, Secondary Capture), 18 instances, stored with
storescu into two config receivers filing into project LAB1 or LAB2 (default_project); one
study has a series in each. Every expected value (UIDs, counts, modalities, SOP classes,
names and their bytes) comes from that generated data (the DATA table below), never from the
server's REST answers (those only tell when indexing is done, and that the filing into
projects the LAB1/LAB2 checks rely on happened).

Query receivers, one server: QR (all projects) and QRLAB1 (query_retrieve_projects LAB1) in
the config file on the storage receivers' port; QRCI (query_names_ignore_case), NOQR (no
query_retrieve) and QRWL (whitelist admitting calling AE FRIEND) created through the API on
a second shared port.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_qr_find.py
"""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

CT = dicomgen.CT_IMAGE_STORAGE
MR = dicomgen.MR_IMAGE_STORAGE
SC = dicomgen.SECONDARY_CAPTURE_STORAGE
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SOP_CLASS = {"CT": CT, "MR": MR, "OT": SC, "SR": BASIC_TEXT_SR}

JP_NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"

PENDING, PENDING_WARNING = 0xFF00, 0xFF01
SUCCESS, CANCEL, NOT_MATCHING_SOP_CLASS = 0x0000, 0xFE00, 0xA900

TAGS = {
    "SpecificCharacterSet": (0x0008, 0x0005),
    "SOPClassUID": (0x0008, 0x0016),
    "SOPInstanceUID": (0x0008, 0x0018),
    "StudyDate": (0x0008, 0x0020),
    "StudyTime": (0x0008, 0x0030),
    "AccessionNumber": (0x0008, 0x0050),
    "QueryRetrieveLevel": (0x0008, 0x0052),
    "Modality": (0x0008, 0x0060),
    "ModalitiesInStudy": (0x0008, 0x0061),
    "SOPClassesInStudy": (0x0008, 0x0062),
    "ReferringPhysicianName": (0x0008, 0x0090),
    "StudyDescription": (0x0008, 0x1030),
    "SeriesDescription": (0x0008, 0x103E),
    "PatientName": (0x0010, 0x0010),
    "PatientID": (0x0010, 0x0020),
    "IssuerOfPatientID": (0x0010, 0x0021),
    "PatientBirthDate": (0x0010, 0x0030),
    "PatientSex": (0x0010, 0x0040),
    "PatientComments": (0x0010, 0x4000),  # not a supported key: answered empty, 0xFF01
    "BodyPartExamined": (0x0018, 0x0015),
    "StudyInstanceUID": (0x0020, 0x000D),
    "SeriesInstanceUID": (0x0020, 0x000E),
    "StudyID": (0x0020, 0x0010),
    "SeriesNumber": (0x0020, 0x0011),
    "InstanceNumber": (0x0020, 0x0013),
    "NumberOfPatientRelatedStudies": (0x0020, 0x1200),
    "NumberOfPatientRelatedSeries": (0x0020, 0x1202),
    "NumberOfPatientRelatedInstances": (0x0020, 0x1204),
    "NumberOfStudyRelatedSeries": (0x0020, 0x1206),
    "NumberOfStudyRelatedInstances": (0x0020, 0x1208),
    "NumberOfSeriesRelatedInstances": (0x0020, 0x1209),
}

# ------------------------------------------------------------------------------ test data

# PatientID -> name, character set of its instances ("" = none written), birth date, sex,
# Issuer of Patient ID ("" = not written)
PATIENTS = {
    "QRDOE1": ("DOE^JANE", "", "19800101", "F", "HOSP-A"),
    "QRMUL2": ("Müller^Hans", "ISO_IR 100", "19620704", "M", ""),
    "QRYAM3": (JP_NAME, "\\ISO 2022 IR 87", "19751231", "M", ""),
    "QRGAR4": ("García^José", "ISO_IR 192", "19901010", "M", ""),
}

# (key, PatientID, StudyDate, StudyTime, StudyDescription,
#  [(modality, instances, project, body part)])  -- series numbered 1.. in this order
DATA = [
    ("S1", "QRDOE1", "20230110", "081500", "Chest and head",
     [("CT", 2, "LAB1", "CHEST"), ("SR", 1, "LAB1", ""), ("MR", 1, "LAB1", "HEAD")]),
    ("S2", "QRDOE1", "20230520", "120000", "Knee", [("MR", 3, "LAB2", "KNEE")]),
    ("S3", "QRMUL2", "20231105", "093000", "Abdomen",
     [("CT", 2, "LAB1", "ABDOMEN"), ("OT", 1, "LAB1", "")]),
    ("S4", "QRYAM3", "20240215", "151500", "Brain",
     [("MR", 2, "LAB2", "BRAIN"), ("CT", 2, "LAB1", "HEAD")]),
    ("S5", "QRGAR4", "20240901", "070000", "Follow-up",
     [("SR", 1, "LAB1", ""), ("CT", 1, "LAB1", "CHEST")]),
    ("S6", "QRGAR4", "20250303", "164500", "Spine", [("MR", 2, "LAB2", "SPINE")]),
]

STUDY_KEYS = ["PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate",
              "PatientSex", "StudyInstanceUID", "StudyDate", "StudyTime", "AccessionNumber",
              "StudyID", "StudyDescription", "ReferringPhysicianName", "ModalitiesInStudy",
              "SOPClassesInStudy", "NumberOfStudyRelatedSeries",
              "NumberOfStudyRelatedInstances"]


def build_data(directory):
    """Write the instances of DATA with dicomgen; the model of what was written:
    {"studies": {key: study}, "series": {uid: series}, "files": {project: [paths]}}."""
    uid = dicomgen.make_uids()
    studies, all_series, files = {}, {}, {}
    n = 0
    for st_index, (key, pid, date, time_, description, series_list) in enumerate(DATA, 1):
        name, charset, birth, sex, issuer = PATIENTS[pid]
        study = {"key": key, "uid": uid("study", st_index), "pid": pid, "date": date,
                 "time": time_, "description": description, "accession": "ACC-" + key,
                 "study_id": key, "series": []}
        studies[key] = study
        for se_index, (modality, count, project, body_part) in enumerate(series_list, 1):
            series = {"uid": uid("series", st_index, se_index), "study": key,
                      "modality": modality, "sop_class": SOP_CLASS[modality],
                      "project": project, "number": se_index,
                      "description": "%s %s" % (key, modality), "body_part": body_part,
                      "instances": []}
            study["series"].append(series)
            all_series[series["uid"]] = series
            for inum in range(1, count + 1):
                n += 1
                sop = uid("instance", n)
                path = directory / project / ("%06d.dcm" % n)
                path.parent.mkdir(parents=True, exist_ok=True)
                extra = []
                if issuer:
                    extra.append((0x0010, 0x0021, "LO", issuer))
                if body_part:
                    extra.append((0x0018, 0x0015, "CS", body_part))
                dicomgen.write_instance(
                    path, sop_uid=sop, study_uid=study["uid"], series_uid=series["uid"],
                    patient_name=name, patient_id=pid, charset=charset,
                    patient_birth_date=birth, patient_sex=sex, modality=modality,
                    sop_class=series["sop_class"], instance_number=inum,
                    series_number=se_index, study_id=key, accession_number=study["accession"],
                    study_date=date, study_time=time_, study_description=description,
                    series_description=series["description"], extra_elements=extra,
                    size=1024)
                series["instances"].append((sop, inum))
                files.setdefault(project, []).append(path)
    return {"studies": studies, "series": all_series, "files": files}


# ------------------------------------------------------------------------------ findscu

class Answer:
    """One pending C-FIND-RSP identifier as findscu -X wrote it: raw values by tag."""

    def __init__(self, path):
        self.path = path
        self.raw = {tag: (value or b"")
                    for tag, (_, value) in dicomgen.read_elements(path).items()}
        self.charset = self.raw.get(TAGS["SpecificCharacterSet"], b"").decode(
            "ascii", "replace").strip(" \0")

    def has(self, keyword):
        return TAGS[keyword] in self.raw

    def bytes(self, keyword):
        """The raw value, padding stripped; None when the element is absent."""
        value = self.raw.get(TAGS[keyword])
        return None if value is None else value.rstrip(b" \0")

    def text(self, keyword):
        value = self.bytes(keyword)
        if value is None:
            return None
        return dicomgen.decode_text(value, self.charset or None)

    def values(self, keyword):
        text = self.text(keyword)
        return set(v.strip() for v in text.split("\\")) if text else set()

    def number(self, keyword):
        text = self.text(keyword)
        return int(text.strip()) if text and text.strip() else text

    def __repr__(self):
        return "Answer(%s, %s)" % (self.charset or "-", {
            "(%04X,%04X)" % t: v[:80] for t, v in sorted(self.raw.items())})


class FindResult:
    def __init__(self, args, returncode, output, answers):
        self.args, self.returncode, self.output, self.answers = args, returncode, output, answers
        # Every C-FIND-RSP findscu received, in order (-d prints its DIMSE status).
        self.statuses = [int(s, 16) for s in
                         re.findall(r"DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})", output)]
        self.pending = [s for s in self.statuses if s in (PENDING, PENDING_WARNING)]
        self.final = (self.statuses[-1] if self.statuses and self.statuses[-1]
                      not in (PENDING, PENDING_WARNING) else None)

    def describe(self):
        tail = self.output[-6000:]
        return ("findscu %s\nexit %s, statuses %s, %d answers\n--- output (tail):\n%s"
                % (" ".join(self.args[1:]), self.returncode,
                   ["0x%04X" % s for s in self.statuses], len(self.answers), tail))


def key_arg(keyword, value):
    """A findscu -k argument by tag; value None = universal (no value), bytes are sent as
    they are (e.g. Latin-1), str as UTF-8."""
    tag = "%04X,%04X" % TAGS[keyword]
    if value is None:
        return tag
    if isinstance(value, bytes):
        return os.fsdecode(tag.encode("ascii") + b"=" + value)
    return "%s=%s" % (tag, value)


class QRFindTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.data = build_data(cls.tmp / "data")
        cls.port = harness.free_port()
        base = {"port": cls.port, "bind": "127.0.0.1"}
        cls.server = cls.start_class_server(receivers=[
            dict(base, ae_title="STORE1", default_project="LAB1"),
            dict(base, ae_title="STORE2", default_project="LAB2"),
            dict(base, ae_title="QR", query_retrieve=True),
            dict(base, ae_title="QRLAB1", query_retrieve=True,
                 query_retrieve_projects=["LAB1"]),
        ])
        # LAB2 first: study S4's MR series is filed into LAB2, its CT series then into LAB1.
        for ae, project in (("STORE2", "LAB2"), ("STORE1", "LAB1")):
            cp = harness.storescu(cls.port, ae, cls.data["files"][project])
            if cp.returncode != 0:
                raise AssertionError("storescu to %s failed:\n%s" % (ae, harness.proc_output(cp)))
        expected = {s["uid"]: sum(len(se["instances"]) for se in s["series"])
                    for s in cls.data["studies"].values()}

        harness.wait_studies_indexed(cls.server, expected)
        cls.api_port = harness.free_receiver_port()
        cls.rest = {}
        for ae, extra in (("QRCI", {"query_retrieve": True, "query_names_ignore_case": True}),
                          ("NOQR", {"default_project": "LAB2"}),
                          ("QRWL", {"query_retrieve": True, "whitelist_enabled": True,
                                    "whitelist": "FRIEND\n"})):
            body = {"ae_title": ae, "port": cls.api_port, "anonymize": False}
            body.update(extra)
            status, answer = cls.server.api("POST", "/api/receivers", body)
            if status != 201:
                raise AssertionError("POST /api/receivers %r -> %s %r" % (body, status, answer))
            cls.rest[ae] = answer

    # ------------------------------------------------------------------ helpers

    def findscu(self, called_ae, keys, level="STUDY", model="S", charset=None,
                calling_ae="FINDSCU", port=None, cancel=None, check=True):
        """Run findscu (-d, -X) with QueryRetrieveLevel=level and keys [(keyword, value)]
        (value None: universal). charset: the query's (0008,0005). check: the association
        and the find must have gone through (exit 0, a final status)."""
        if port is None:
            port = self.api_port if called_ae in self.rest else self.port
        out = self.mkdtemp("rsp")
        args = ["findscu", "-d", "-" + model, "-aet", calling_ae, "-aec", called_ae,
                "-to", "10", "-ta", "10", "-td", "20", "-X", "-od", str(out)]
        if cancel is not None:
            args += ["--cancel", str(cancel)]
        args += ["-k", "0008,0052=" + level]
        if charset is not None:
            args += ["-k", "0008,0005=" + charset]
        for keyword, value in keys:
            args += ["-k", key_arg(keyword, value)]
        args += ["127.0.0.1", str(port)]
        cp = subprocess.run(args, capture_output=True, timeout=60, env=harness.tool_env())
        output = (cp.stdout + cp.stderr).decode("utf-8", "replace")
        result = FindResult(args, cp.returncode, output,
                            [Answer(p) for p in sorted(out.glob("rsp*.dcm"))])
        if check:
            self.assertEqual(cp.returncode, 0, result.describe())
            self.assertIsNotNone(result.final, "no final C-FIND-RSP\n" + result.describe())
            self.assertEqual(len(result.answers), len(result.pending), result.describe())
        return result

    def study_uids(self, ae, keys, **kw):
        """The StudyInstanceUIDs a STUDY query answers (final status Success checked)."""
        r = self.findscu(ae, [("StudyInstanceUID", None)] + list(keys), **kw)
        self.assertEqual(r.final, SUCCESS, r.describe())
        uids = [a.text("StudyInstanceUID") for a in r.answers]
        self.assertEqual(len(uids), len(set(uids)), "a study answered twice\n" + r.describe())
        return set(uids)

    def uids_of(self, *keys):
        return {self.data["studies"][k]["uid"] for k in keys}

    def study(self, key):
        return self.data["studies"][key]

    def expected_studies(self, projects=None):
        """{StudyInstanceUID: expected STUDY-level values} over the series in `projects`
        (None: all), from the generated data."""
        out = {}
        for s in self.data["studies"].values():
            series = [se for se in s["series"] if projects is None or se["project"] in projects]
            if not series:
                continue
            name, _, birth, sex, issuer = PATIENTS[s["pid"]]
            out[s["uid"]] = {
                "PatientName": name, "PatientID": s["pid"], "IssuerOfPatientID": issuer,
                "PatientBirthDate": birth, "PatientSex": sex, "StudyDate": s["date"],
                "StudyTime": s["time"], "AccessionNumber": s["accession"],
                "StudyID": s["study_id"], "StudyDescription": s["description"],
                "ReferringPhysicianName": "",
                "ModalitiesInStudy": {se["modality"] for se in series},
                "SOPClassesInStudy": {se["sop_class"] for se in series},
                "NumberOfStudyRelatedSeries": len(series),
                "NumberOfStudyRelatedInstances": sum(len(se["instances"]) for se in series),
            }
        return out

    def got_studies(self, result):
        got = {}
        for a in result.answers:
            row = {}
            for k in STUDY_KEYS:
                if k == "StudyInstanceUID":
                    continue
                self.assertTrue(a.has(k), "%s missing from %r" % (k, a))
                if k in ("ModalitiesInStudy", "SOPClassesInStudy"):
                    row[k] = a.values(k)
                elif k.startswith("NumberOf"):
                    row[k] = a.number(k)
                else:
                    row[k] = a.text(k)
            got[a.text("StudyInstanceUID")] = row
        self.assertEqual(len(got), len(result.answers), "a study answered twice")
        return got

    def assertStudiesAnswered(self, ae, projects=None, **kw):
        """A universal STUDY query with every supported STUDY and PATIENT key answers
        exactly the expected studies, each value right, statuses 0xFF00 then Success."""
        r = self.findscu(ae, [(k, None) for k in STUDY_KEYS], **kw)
        self.assertEqual(r.final, SUCCESS, r.describe())
        self.assertEqual(set(r.pending), {PENDING}, "every key asked is supported\n"
                         + r.describe())
        self.assertEqual(self.got_studies(r), self.expected_studies(projects), r.describe())
        return r

    def assertFindRefused(self, ae, pattern, model="S", calling_ae="FINDSCU"):
        r = self.findscu(ae, [("StudyInstanceUID", None)], model=model, calling_ae=calling_ae,
                         check=False)
        self.assertNotEqual(r.returncode, 0, "findscu should fail\n" + r.describe())
        self.assertEqual(r.answers, [], r.describe())
        self.assertMatchesCI(pattern, r.output, "expected %r\n%s" % (pattern, r.describe()))

    def assertFiledAsGenerated(self):
        """Precondition of the project checks: each series is filed in the project its
        receiver's default_project names (S4 split over LAB1 and LAB2)."""
        found = harness.where_is(self.server, self.data["series"])
        projects = {}
        for (project, _, _), series in found.items():
            for uid in series:
                projects.setdefault(uid, set()).add(project)
        self.assertEqual(projects, {u: {s["project"]} for u, s in self.data["series"].items()},
                         "precondition: the archive did not file the series as routed")

    # ================================================================== 1. STUDY level

    def test_01_study_level_universal_query_answers_every_study_with_counts(self):
        self.assertStudiesAnswered("QR")
        # The same through the Patient Root model.
        self.assertStudiesAnswered("QR", model="P")

    # ================================================================== 2. matching

    def test_02_patient_keys_single_value_wildcards_and_case(self):
        cases = [
            ("QR", [("PatientID", "QRMUL2")], None, {"S3"}),
            ("QR", [("PatientID", "QRMUL")], None, set()),  # single value: no prefix match
            ("QR", [("PatientName", "DOE^JANE")], None, {"S1", "S2"}),
            ("QR", [("PatientName", b"M\xfc*")], "ISO_IR 100", {"S3"}),
            ("QR", [("PatientName", "*Tarou*")], None, {"S4"}),
            ("QR", [("PatientName", "DOE^JAN?")], None, {"S1", "S2"}),
            ("QR", [("PatientName", "DOE^JA?")], None, set()),  # ? is one character
            ("QR", [("PatientName", "?OE^JANE")], None, {"S1", "S2"}),
            ("QR", [("PatientName", "Yamada^Tarou")], None, {"S4"}),  # component group
            ("QR", [("PatientName", "doe^jane")], None, set()),  # case-sensitive
            ("QR", [("PatientName", "doe*")], None, set()),
            ("QRCI", [("PatientName", "doe^jane")], None, {"S1", "S2"}),
            ("QRCI", [("PatientName", "doe*")], None, {"S1", "S2"}),
            ("QRCI", [("PatientName", "yamada^tarou")], None, {"S4"}),
            ("QRCI", [("PatientID", "qrdoe1")], None, set()),  # only PN ignores case
            ("QR", [("PatientName", "DOE*"), ("PatientID", "QRMUL2")], None, set()),
            ("QR", [("AccessionNumber", "ACC-S5")], None, {"S5"}),
            ("QR", [("AccessionNumber", "ACC-S?")], None, {"S1", "S2", "S3", "S4", "S5", "S6"}),
            ("QR", [("ModalitiesInStudy", "SR")], None, {"S1", "S5"}),
            ("QR", [("StudyDescription", "*e")], None, {"S2", "S6"}),
        ]
        for ae, keys, charset, expected in cases:
            with self.subTest(ae=ae, keys=keys, charset=charset):
                self.assertEqual(self.study_uids(ae, keys, charset=charset),
                                 self.uids_of(*expected))

    # ================================================================== 3. dates, UID lists

    def test_03_date_ranges_and_uid_lists(self):
        cases = [
            ("20231105", {"S3"}),
            ("20230501-20240301", {"S2", "S3", "S4"}),
            ("-20230520", {"S1", "S2"}),
            ("20240901-", {"S5", "S6"}),
            ("20230111-20230519", set()),
        ]
        for dates, expected in cases:
            with self.subTest(StudyDate=dates):
                self.assertEqual(self.study_uids("QR", [("StudyDate", dates)]),
                                 self.uids_of(*expected))
        two = "%s\\%s" % (self.study("S1")["uid"], self.study("S4")["uid"])
        self.assertEqual(self.study_uids("QR", [("StudyInstanceUID", two)]),
                         self.uids_of("S1", "S4"))
        # A UID list combined with a date range: both must match.
        self.assertEqual(self.study_uids("QR", [("StudyInstanceUID", two),
                                                ("StudyDate", "20240101-")]),
                         self.uids_of("S4"))
        # The range's values come back: StudyDate of each answer is the study's own.
        r = self.findscu("QR", [("StudyInstanceUID", None), ("StudyDate", "-20230520")])
        self.assertEqual({a.text("StudyInstanceUID"): a.text("StudyDate") for a in r.answers},
                         {self.study(k)["uid"]: self.study(k)["date"] for k in ("S1", "S2")})

    # ================================================================== 4. PATIENT level

    def test_04_patient_level_on_patient_root_and_refused_on_study_root(self):
        keys = [(k, None) for k in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex",
                                    "NumberOfPatientRelatedStudies",
                                    "NumberOfPatientRelatedSeries",
                                    "NumberOfPatientRelatedInstances")]
        r = self.findscu("QR", keys, level="PATIENT", model="P")
        self.assertEqual(r.final, SUCCESS, r.describe())
        self.assertEqual(set(r.pending), {PENDING}, r.describe())
        self.assertEqual(self.got_patients(r), self.expected_patients(), r.describe())
        # Matching on a patient key at PATIENT level.
        r = self.findscu("QR", [("PatientID", None), ("PatientName", "*Hans")], level="PATIENT",
                         model="P")
        self.assertEqual([a.text("PatientID") for a in r.answers], ["QRMUL2"], r.describe())
        # STUDY level under one patient (Patient Root).
        self.assertEqual(self.study_uids("QR", [("PatientID", "QRGAR4")], model="P"),
                         self.uids_of("S5", "S6"))
        # Study Root has no PATIENT level: 0xA900, nothing pending.
        r = self.findscu("QR", keys[:2], level="PATIENT", model="S")
        self.assertEqual((r.final, r.pending), (NOT_MATCHING_SOP_CLASS, []), r.describe())

    def expected_patients(self, projects=None):
        out = {}
        for s in self.data["studies"].values():
            series = [se for se in s["series"] if projects is None or se["project"] in projects]
            if not series:
                continue
            name, _, birth, sex, _ = PATIENTS[s["pid"]]
            p = out.setdefault(s["pid"], {
                "PatientName": name, "PatientBirthDate": birth, "PatientSex": sex,
                "NumberOfPatientRelatedStudies": 0, "NumberOfPatientRelatedSeries": 0,
                "NumberOfPatientRelatedInstances": 0})
            p["NumberOfPatientRelatedStudies"] += 1
            p["NumberOfPatientRelatedSeries"] += len(series)
            p["NumberOfPatientRelatedInstances"] += sum(len(se["instances"]) for se in series)
        return out

    def got_patients(self, result):
        got = {}
        for a in result.answers:
            got[a.text("PatientID")] = {
                "PatientName": a.text("PatientName"),
                "PatientBirthDate": a.text("PatientBirthDate"),
                "PatientSex": a.text("PatientSex"),
                "NumberOfPatientRelatedStudies": a.number("NumberOfPatientRelatedStudies"),
                "NumberOfPatientRelatedSeries": a.number("NumberOfPatientRelatedSeries"),
                "NumberOfPatientRelatedInstances": a.number("NumberOfPatientRelatedInstances")}
        self.assertEqual(len(got), len(result.answers), "a patient answered twice\n"
                         + result.describe())
        return got

    # ================================================================== 5. SERIES, IMAGE

    def test_05_series_and_image_levels(self):
        s1 = self.study("S1")
        keys = [("StudyInstanceUID", s1["uid"]), ("PatientID", None)] + [
            (k, None) for k in ("SeriesInstanceUID", "Modality", "SeriesNumber",
                                "SeriesDescription", "BodyPartExamined",
                                "NumberOfSeriesRelatedInstances")]
        r = self.findscu("QR", keys, level="SERIES")
        self.assertEqual(r.final, SUCCESS, r.describe())
        self.assertEqual(set(r.pending), {PENDING}, r.describe())
        got = {a.text("SeriesInstanceUID"): (
            a.text("StudyInstanceUID"), a.text("PatientID"), a.text("Modality"),
            a.number("SeriesNumber"), a.text("SeriesDescription"), a.text("BodyPartExamined"),
            a.number("NumberOfSeriesRelatedInstances")) for a in r.answers}
        self.assertEqual(got, {se["uid"]: (s1["uid"], "QRDOE1", se["modality"], se["number"],
                                           se["description"], se["body_part"],
                                           len(se["instances"]))
                               for se in s1["series"]}, r.describe())
        # SERIES level across studies: Modality matched alone (relational).
        r = self.findscu("QR", [("SeriesInstanceUID", None), ("Modality", "MR")],
                         level="SERIES")
        self.assertEqual({a.text("SeriesInstanceUID") for a in r.answers},
                         {u for u, se in self.data["series"].items() if se["modality"] == "MR"},
                         r.describe())
        # IMAGE level within S4's CT series.
        s4 = self.study("S4")
        ct = [se for se in s4["series"] if se["modality"] == "CT"][0]
        r = self.findscu("QR", [("StudyInstanceUID", s4["uid"]),
                                ("SeriesInstanceUID", ct["uid"]), ("PatientID", None),
                                ("SOPInstanceUID", None), ("SOPClassUID", None),
                                ("InstanceNumber", None)], level="IMAGE")
        self.assertEqual(r.final, SUCCESS, r.describe())
        self.assertEqual(set(r.pending), {PENDING}, r.describe())
        self.assertEqual({a.text("SOPInstanceUID"): (a.text("SOPClassUID"),
                                                     a.number("InstanceNumber"),
                                                     a.text("StudyInstanceUID"),
                                                     a.text("SeriesInstanceUID"),
                                                     a.text("PatientID"))
                          for a in r.answers},
                         {sop: (CT, inum, s4["uid"], ct["uid"], "QRYAM3")
                          for sop, inum in ct["instances"]}, r.describe())
        # IMAGE level by SOP Class alone: the SR instances of every study.
        r = self.findscu("QR", [("SOPInstanceUID", None), ("SOPClassUID", BASIC_TEXT_SR)],
                         level="IMAGE")
        self.assertEqual({a.text("SOPInstanceUID") for a in r.answers},
                         {sop for se in self.data["series"].values() if se["modality"] == "SR"
                          for sop, _ in se["instances"]}, r.describe())

    # ================================================================== 6. unsupported keys

    def test_06_unsupported_optional_key_is_empty_and_pending_is_ff01(self):
        keys = [("PatientID", "QRDOE1"), ("StudyInstanceUID", None), ("PatientName", None)]
        r = self.findscu("QR", keys + [("PatientComments", None)])
        self.assertEqual(r.final, SUCCESS, r.describe())
        self.assertEqual(len(r.answers), 2, r.describe())
        self.assertEqual(r.pending, [PENDING_WARNING] * 2, r.describe())
        for a in r.answers:
            self.assertTrue(a.has("PatientComments"), "PatientComments missing from %r" % a)
            self.assertEqual(a.bytes("PatientComments"), b"", repr(a))
            self.assertEqual(a.text("PatientName"), "DOE^JANE", repr(a))
        r = self.findscu("QR", keys)
        self.assertEqual(r.final, SUCCESS, r.describe())
        self.assertEqual(r.pending, [PENDING] * 2, r.describe())

    # ================================================================== 7. character sets

    def test_07_answers_in_the_query_character_set_or_utf8(self):
        def one(ae, keys, charset):
            r = self.findscu(ae, [("StudyInstanceUID", None), ("PatientName", None)] + keys,
                             charset=charset)
            self.assertEqual(r.final, SUCCESS, r.describe())
            return r
        # Müller (stored in ISO_IR 100), asked in ISO_IR 100 with a Latin-1 wildcard.
        r = one("QR", [("PatientName", b"M\xfc*")], "ISO_IR 100")
        self.assertEqual([(a.charset, a.bytes("PatientName")) for a in r.answers],
                         [("ISO_IR 100", b"M\xfcller^Hans")], r.describe())
        # García (stored in UTF-8) asked in ISO_IR 100: every value fits, so Latin-1.
        r = one("QR", [("PatientID", "QRGAR4")], "ISO_IR 100")
        self.assertEqual(sorted((a.charset, a.bytes("PatientName")) for a in r.answers),
                         [("ISO_IR 100", b"Garc\xeda^Jos\xe9")] * 2, r.describe())
        # The Japanese patient asked in ISO_IR 100: does not fit, so UTF-8.
        r = one("QR", [("PatientID", "QRYAM3")], "ISO_IR 100")
        self.assertEqual([(a.charset, a.bytes("PatientName")) for a in r.answers],
                         [("ISO_IR 192", JP_NAME.encode("utf-8"))], r.describe())
        # Asked in ISO_IR 192 for 山田*: found (stored in ISO 2022 IR 87), answered in UTF-8.
        r = one("QR", [("PatientName", "山田*")], "ISO_IR 192")
        self.assertEqual([(a.charset, a.bytes("PatientName"), a.text("StudyInstanceUID"))
                          for a in r.answers],
                         [("ISO_IR 192", JP_NAME.encode("utf-8"), self.study("S4")["uid"])],
                         r.describe())
        r = one("QR", [("PatientName", "山田^太郎")], "ISO_IR 192")
        self.assertEqual([a.text("StudyInstanceUID") for a in r.answers],
                         [self.study("S4")["uid"]], r.describe())
        # Müller in a query without (0008,0005): not ASCII, so UTF-8 with ISO_IR 192.
        r = one("QR", [("PatientID", "QRMUL2")], None)
        self.assertEqual([(a.charset, a.bytes("PatientName")) for a in r.answers],
                         [("ISO_IR 192", "Müller^Hans".encode("utf-8"))], r.describe())
        # An ASCII patient asked in ISO_IR 100: the declared set (it fits), value as stored.
        r = one("QR", [("PatientID", "QRDOE1")], "ISO_IR 100")
        self.assertEqual(sorted((a.charset, a.bytes("PatientName")) for a in r.answers),
                         [("ISO_IR 100", b"DOE^JANE")] * 2, r.describe())

    # ================================================================== 8. C-CANCEL

    def test_08a_cancel_ends_the_answers_with_status_cancel(self):
        """On a server pacing its pending answers (its test-only PACSBRIDGE_TEST_FIND_DELAY_MS:
        each answer after the first waits that long, then the C-CANCEL is looked for), the
        C-CANCEL findscu sends after the first answer arrives in time: one pending answer,
        then Cancel."""
        port = harness.free_port()
        srv = self.start_server(env={"PACSBRIDGE_TEST_FIND_DELAY_MS": "300"}, receivers=[
            {"ae_title": "STORE", "port": port, "bind": "127.0.0.1"},
            {"ae_title": "QR", "port": port, "bind": "127.0.0.1", "query_retrieve": True}])
        files = self.data["files"]["LAB1"]
        cp = harness.storescu(port, "STORE", files)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        studies = {s["uid"] for s in self.data["studies"].values()
                   if any(se["project"] == "LAB1" for se in s["series"])}
        self.assertTrue(harness.wait_until(
            lambda: studies <= set(harness.studies_by_uid(srv)), 10, 0.1), "not indexed")
        r = self.findscu("QR", [("StudyInstanceUID", None)], port=port, cancel=1)
        self.assertEqual((r.final, r.pending), (CANCEL, [PENDING]), r.describe())
        self.assertEqual(len(r.answers), 1, r.describe())
        self.assertIn(r.answers[0].text("StudyInstanceUID"), studies, r.describe())
        # Without a C-CANCEL the same query answers every study.
        r = self.findscu("QR", [("StudyInstanceUID", None)], port=port)
        self.assertEqual((r.final, {a.text("StudyInstanceUID") for a in r.answers}),
                         (SUCCESS, studies), r.describe())

    def test_08b_cancel_that_crosses_the_final_answer_is_harmless(self):
        """At full speed every answer has left before findscu's C-CANCEL (sent after the
        first answer) arrives: the find ends as Cancel or as Success with every answer, and
        the association is still released normally (findscu exits 0)."""
        total = sum(len(se["instances"]) for se in self.data["series"].values())
        r = self.findscu("QR", [("SOPInstanceUID", None)], level="IMAGE", cancel=1)
        self.assertIn(r.final, (CANCEL, SUCCESS), r.describe())
        if r.final == SUCCESS:
            self.assertEqual(len(r.answers), total, r.describe())
        else:
            self.assertLess(len(r.answers), total, r.describe())
        self.assertNotRegex(r.output, r"(?i)aborted", r.describe())

    # ================================================================== 9. index only

    def test_09_find_never_reads_the_archive(self):
        archive = self.server.data_dir / "archive"
        self.assertTrue(archive.is_dir(), "precondition: no archive folder at %s" % archive)
        moved = self.server.data_dir / "archive-moved-away"
        os.rename(archive, moved)
        try:
            self.assertStudiesAnswered("QR")
            r = self.findscu("QR", [("SOPInstanceUID", None), ("SOPClassUID", None)],
                             level="IMAGE")
            self.assertEqual({a.text("SOPInstanceUID"): a.text("SOPClassUID")
                              for a in r.answers},
                             {sop: se["sop_class"] for se in self.data["series"].values()
                              for sop, _ in se["instances"]}, r.describe())
        finally:
            os.rename(moved, archive)

    # ================================================================== 10. who may ask

    def test_10a_receiver_without_query_retrieve_refuses_the_query_contexts(self):
        self.assertFindRefused("NOQR", r"no acceptable presentation context", model="S")
        self.assertFindRefused("NOQR", r"no acceptable presentation context", model="P")
        # Storage still works there (a duplicate: kept once, success).
        path = self.data["files"]["LAB2"][0]
        cp = harness.storescu(self.api_port, "NOQR", [path])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        # The storage receivers have no Query/Retrieve either.
        self.assertFindRefused("STORE1", r"no acceptable presentation context")

    def test_10b_whitelist_limits_who_may_query(self):
        self.assertFindRefused("QRWL", r"Calling AE Title Not Recognized",
                               calling_ae="STRANGER")
        self.assertStudiesAnswered("QRWL", calling_ae="FRIEND")

    def test_10c_visible_projects_limit_what_is_found_and_counted(self):
        self.assertFiledAsGenerated()
        self.assertStudiesAnswered("QRLAB1", projects={"LAB1"})
        r = self.findscu("QRLAB1", [(k, None) for k in (
            "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
            "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries",
            "NumberOfPatientRelatedInstances")], level="PATIENT", model="P")
        self.assertEqual(r.final, SUCCESS, r.describe())
        self.assertEqual(self.got_patients(r), self.expected_patients({"LAB1"}), r.describe())
        # S4 has one series in each project: only its CT series is seen through QRLAB1.
        s4 = self.study("S4")
        r = self.findscu("QRLAB1", [("StudyInstanceUID", s4["uid"]),
                                    ("SeriesInstanceUID", None), ("Modality", None),
                                    ("NumberOfSeriesRelatedInstances", None)], level="SERIES")
        self.assertEqual({a.text("SeriesInstanceUID"): a.text("Modality") for a in r.answers},
                         {se["uid"]: se["modality"] for se in s4["series"]
                          if se["project"] == "LAB1"}, r.describe())
        r = self.findscu("QRLAB1", [("SOPInstanceUID", None)], level="IMAGE")
        self.assertEqual({a.text("SOPInstanceUID") for a in r.answers},
                         {sop for se in self.data["series"].values() if se["project"] == "LAB1"
                          for sop, _ in se["instances"]}, r.describe())
        # A LAB2-only study is not found even by its UID.
        self.assertEqual(self.study_uids("QRLAB1", [("StudyInstanceUID",
                                                     self.study("S2")["uid"])]), set())

    # ================================================================== 11. REST fields

    def test_11_rest_fields(self):
        # query_retrieve_projects needs query_retrieve: 400 naming the field.
        for extra in ({"query_retrieve_projects": ["LAB1"]},
                      {"query_retrieve": False, "query_retrieve_projects": ["LAB1"]}):
            body = dict({"ae_title": "QRBAD", "port": harness.free_receiver_port(),
                         "anonymize": False}, **extra)
            status, answer = self.server.api("POST", "/api/receivers", body)
            with self.subTest(body=body):
                self.assertJsonError(status, answer, "query_retrieve_projects")
        noqr = self.rest["NOQR"]
        status, answer = self.server.api("PUT", "/api/receivers/%s" % noqr["id"],
                                         {"query_retrieve_projects": ["LAB1"]})
        self.assertJsonError(status, answer, "query_retrieve_projects")
        # GET shows the three fields, for API and config receivers.
        for rid, expected in (
                (noqr["id"], (False, [], False)),
                (self.rest["QRCI"]["id"], (True, [], True)),
                (self.rest["QRWL"]["id"], (True, [], False)),
                ("QR@%d" % self.port, (True, [], False)),
                ("QRLAB1@%d" % self.port, (True, ["LAB1"], False))):
            status, r = self.server.api("GET", "/api/receivers/%s" % rid)
            self.assertEqual(status, 200, r)
            with self.subTest(receiver=rid):
                self.assertEqual((r.get("query_retrieve"), r.get("query_retrieve_projects"),
                                  r.get("query_names_ignore_case")), expected, repr(r))
        # Switched on at run time with LAB2 visible: NOQR answers LAB2's studies; then off.
        self.addCleanup(self.server.api, "PUT", "/api/receivers/%s" % noqr["id"],
                        {"query_retrieve": False, "query_retrieve_projects": []})
        status, r = self.server.api("PUT", "/api/receivers/%s" % noqr["id"],
                                    {"query_retrieve": True, "query_retrieve_projects": ["LAB2"]})
        self.assertEqual(status, 200, r)
        self.assertEqual((r.get("query_retrieve"), r.get("query_retrieve_projects")),
                         (True, ["LAB2"]), repr(r))
        self.assertFiledAsGenerated()
        self.assertStudiesAnswered("NOQR", projects={"LAB2"})
        status, r = self.server.api("PUT", "/api/receivers/%s" % noqr["id"],
                                    {"query_retrieve": False, "query_retrieve_projects": []})
        self.assertEqual(status, 200, r)
        self.assertFindRefused("NOQR", r"no acceptable presentation context")


if __name__ == "__main__":
    unittest.main()
