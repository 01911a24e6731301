"""Our DICOMweb server, QIDO-RS (PS3.18 10.6): the six search routes (/dicom-web/studies,
/series, /instances and their study- and series-scoped forms) answer exactly the expected
entities in the DICOM JSON model (PS3.18 F.2: uppercase hex tag keys, VRs, PN as component
groups, IS as numbers, no "Value" for an empty attribute), with the default attributes of
each level, counts, ModalitiesInStudy, RetrieveURL pointing at the resource and
InstanceAvailability ONLINE; matching by keyword and by tag, * and ? wildcards, UID lists,
date ranges, fuzzymatching of names; includefield (repeated, comma-separated, by tag, all);
limit/offset paging with the 299 Warning on a full page; 400 for an unknown parameter, a bad
limit and a path segment that is no UID; 401 without (or with wrong) credentials, a
read-only account and a read-only API token let in.

Then two clients of it: our own DICOMweb client (a second pacsbridge server with a node of
type dicomweb on the first one's /dicom-web/, basic auth with the read-only account: test
connection, find at STUDY, SERIES and IMAGE level, names in UTF-8), and Orthanc's DICOMweb
plugin (its "DicomWeb" "Servers" entry, REST POST /dicom-web/servers/pb/qido). Orthanc
1.10.1 + plugin 1.7 hand such answers back in Orthanc's own form ({"Name", "Value" as one
string, "vr", ...}) and keep only the first value of a multi-valued attribute and no IS value
given as a JSON number (measured against another Orthanc's QIDO-RS too: ModalitiesInStudy
["CT", "MR"] comes back as "CT", NumberOfStudyRelatedSeries without a Value), so only
single-valued string attributes are compared there.

Test data: 3 patients written by dicomgen in their own character sets (an ASCII one without
(0008,0005) and with an Issuer of Patient ID, "Müller^Hans" in ISO_IR 100,
"Yamada^Tarou=山田^太郎=やまだ^たろう" in \\ISO 2022 IR 87), 4 studies with distinct dates,
2 series of distinct modalities each (CT, MR, Basic Text SR, Secondary Capture; one series
in Implicit VR Little Endian), 10 instances, stored with storescu into the server's
receiver. Every expected value (UIDs, counts, modalities, SOP classes, names, transfer
syntaxes) comes from that generated data (the DATA table below), never from the server's
answers (its REST API only tells when indexing is done).

WADO-RS retrieval from our server is tested in test_wado_server.py.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_qido_server.py
"""

import json
import os
import re
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

CT = dicomgen.CT_IMAGE_STORAGE
MR = dicomgen.MR_IMAGE_STORAGE
SC = dicomgen.SECONDARY_CAPTURE_STORAGE
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SOP_CLASS = {"CT": CT, "MR": MR, "OT": SC, "SR": BASIC_TEXT_SR}
SYNTAX = {"explicit": dicomgen.EXPLICIT_VR_LE, "implicit": dicomgen.IMPLICIT_VR_LE}

JP_NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"  # PS3.5 Example H.3-1

READER, READER_PASSWORD = "qido-reader", "qido-Reader-pw7"

# keyword -> (DICOM JSON key, VR)
ATTR = {
    "StudyDate": ("00080020", "DA"),
    "StudyTime": ("00080030", "TM"),
    "AccessionNumber": ("00080050", "SH"),
    "InstanceAvailability": ("00080056", "CS"),
    "Modality": ("00080060", "CS"),
    "ModalitiesInStudy": ("00080061", "CS"),
    "SOPClassesInStudy": ("00080062", "UI"),
    "ReferringPhysicianName": ("00080090", "PN"),
    "SOPClassUID": ("00080016", "UI"),
    "SOPInstanceUID": ("00080018", "UI"),
    "RetrieveURL": ("00081190", "UR"),
    "StudyDescription": ("00081030", "LO"),
    "SeriesDescription": ("0008103E", "LO"),
    "AvailableTransferSyntaxUID": ("00083002", "UI"),
    "PatientName": ("00100010", "PN"),
    "PatientID": ("00100020", "LO"),
    "IssuerOfPatientID": ("00100021", "LO"),
    "PatientBirthDate": ("00100030", "DA"),
    "PatientSex": ("00100040", "CS"),
    "BodyPartExamined": ("00180015", "CS"),
    "StudyInstanceUID": ("0020000D", "UI"),
    "SeriesInstanceUID": ("0020000E", "UI"),
    "StudyID": ("00200010", "SH"),
    "SeriesNumber": ("00200011", "IS"),
    "InstanceNumber": ("00200013", "IS"),
    "NumberOfStudyRelatedSeries": ("00201206", "IS"),
    "NumberOfStudyRelatedInstances": ("00201208", "IS"),
    "NumberOfSeriesRelatedInstances": ("00201209", "IS"),
}

# PS3.5 Table 6.2-1
VRS = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FL", "FD", "IS", "LO", "LT", "OB", "OD",
       "OF", "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI",
       "UL", "UN", "UR", "US", "UT", "UV"}

STUDY_DEFAULTS = ["StudyDate", "StudyTime", "AccessionNumber", "ModalitiesInStudy",
                  "ReferringPhysicianName", "PatientName", "PatientID", "PatientBirthDate",
                  "PatientSex", "StudyInstanceUID", "StudyID", "StudyDescription",
                  "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"]
SERIES_DEFAULTS = ["StudyInstanceUID", "Modality", "SeriesDescription", "SeriesInstanceUID",
                   "SeriesNumber", "BodyPartExamined", "NumberOfSeriesRelatedInstances"]
INSTANCE_DEFAULTS = ["StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID",
                     "InstanceNumber", "AvailableTransferSyntaxUID"]

# ------------------------------------------------------------------------------ test data

# PatientID -> name, character set of its instances ("" = none written), birth date, sex,
# Issuer of Patient ID ("" = not written)
PATIENTS = {
    "QWDOE1": ("DOE^JANE", "", "19800101", "F", "HOSP-A"),
    "QWMUL2": ("Müller^Hans", "ISO_IR 100", "19620704", "M", ""),
    "QWYAM3": (JP_NAME, "\\ISO 2022 IR 87", "19751231", "M", ""),
}

# (key, PatientID, StudyDate, StudyTime, StudyDescription,
#  [(modality, instances, body part, syntax)])  -- series numbered 1.. in this order
DATA = [
    ("S1", "QWDOE1", "20240105", "081500", "Chest",
     [("CT", 2, "CHEST", "explicit"), ("SR", 1, "", "explicit")]),
    ("S2", "QWDOE1", "20240120", "120000", "Knee",
     [("MR", 2, "KNEE", "implicit"), ("CT", 1, "KNEE", "explicit")]),
    ("S3", "QWMUL2", "20240215", "093000", "Abdomen",
     [("CT", 1, "ABDOMEN", "explicit"), ("OT", 1, "", "explicit")]),
    ("S4", "QWYAM3", "20231230", "151500", "Brain",
     [("MR", 1, "BRAIN", "explicit"), ("CT", 1, "HEAD", "explicit")]),
]


def build_data(directory):
    """Write the instances of DATA with dicomgen; the model of what was written:
    {"studies": {key: study}, "series": {uid: series}, "instances": {sop: instance},
    "files": [paths]}."""
    uid = dicomgen.make_uids()
    studies, all_series, instances, files = {}, {}, {}, []
    n = 0
    for st_index, (key, pid, date, time_, description, series_list) in enumerate(DATA, 1):
        name, charset, birth, sex, issuer = PATIENTS[pid]
        study = {"key": key, "uid": uid("study", st_index), "pid": pid, "name": name,
                 "birth": birth, "sex": sex, "issuer": issuer, "date": date, "time": time_,
                 "description": description, "accession": "ACC-" + key, "study_id": key,
                 "series": []}
        studies[key] = study
        for se_index, (modality, count, body_part, syntax) in enumerate(series_list, 1):
            series = {"uid": uid("series", st_index, se_index), "study": key,
                      "study_uid": study["uid"], "modality": modality,
                      "sop_class": SOP_CLASS[modality], "number": se_index,
                      "description": "%s %s" % (key, modality), "body_part": body_part,
                      "instances": []}
            study["series"].append(series)
            all_series[series["uid"]] = series
            for inum in range(1, count + 1):
                n += 1
                sop = uid("instance", n)
                path = directory / ("%06d.dcm" % n)
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
                    syntax=syntax, size=1024)
                inst = {"sop": sop, "number": inum, "series": series, "study": study,
                        "syntax": SYNTAX[syntax]}
                series["instances"].append(inst)
                instances[sop] = inst
                files.append(path)
    return {"studies": studies, "series": all_series, "instances": instances, "files": files}


def pn_json(name):
    """The DICOM JSON PN value of a name (PS3.18 F.2.2): its component groups."""
    groups = name.split("=")
    out = {}
    for label, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups):
        if group:
            out[label] = group
    return out


def qs(params):
    """A query string from [(name, value)], values percent-encoded as UTF-8 (RFC 3986)."""
    return "&".join("%s=%s" % (urllib.parse.quote(k, safe=""), urllib.parse.quote(v, safe=""))
                    for k, v in params)


class QidoServerTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.data = build_data(cls.tmp / "data")
        cls.server = cls.start_class_server()
        cp = harness.storescu(cls.server.dicom_port, cls.server.dicom_ae, cls.data["files"])
        if cp.returncode != 0:
            raise AssertionError("storescu failed:\n%s" % harness.proc_output(cp))
        expected = {s["uid"]: sum(len(se["instances"]) for se in s["series"])
                    for s in cls.data["studies"].values()}

        harness.wait_studies_indexed(cls.server, expected)
        status, body = cls.server.api("POST", "/api/users", {
            "username": READER, "role": "read-only", "password": READER_PASSWORD})
        if status != 201:
            raise AssertionError("POST /api/users -> %s %r" % (status, body))
        cls.reader = (READER, READER_PASSWORD)

    # ------------------------------------------------------------------ helpers

    def qido(self, path, params=(), auth=None, headers=None):
        """GET /dicom-web{path}?{params} as the read-only account (auth: (user, password),
        or False for no credentials): (status, headers, parsed JSON or None, raw bytes)."""
        url = "/dicom-web" + path + ("?" + qs(params) if params else "")
        if auth is False:
            creds = None
        else:
            creds = auth or self.reader
        status, hdrs, payload = self.server.raw("GET", url, auth=creds, headers=headers)
        return status, hdrs, harness.parse_json(payload), payload

    def search(self, path, params=()):
        """A search that must succeed: 200, application/dicom+json, a JSON array of objects
        whose shape follows PS3.18 F.2; returns (the array, the response headers)."""
        status, hdrs, body, raw = self.qido(path, params)
        where = "GET /dicom-web%s %r" % (path, list(params))
        self.assertEqual(status, 200, "%s -> %s %r" % (where, status, raw[:500]))
        ctype = (hdrs.get("Content-Type") or "").split(";")[0].strip().lower()
        self.assertEqual(ctype, "application/dicom+json", "%s: Content-Type %r"
                         % (where, hdrs.get("Content-Type")))
        self.assertIsInstance(body, list, "%s: not a JSON array: %r" % (where, raw[:500]))
        for obj in body:
            self.assertDicomJson(obj, where)
        return body, hdrs

    def assertDicomJson(self, obj, where=""):
        """PS3.18 F.2: an object whose keys are 8 uppercase hex digits, each value an object
        with a known "vr" and, when present, a non-empty "Value" array; PN values are
        objects of component groups; IS values numbers; other string VRs strings."""
        self.assertIsInstance(obj, dict, "%s: an answer is not a JSON object: %r" % (where, obj))
        for key, elem in obj.items():
            ctx = "%s: %s %r" % (where, key, elem)
            self.assertRegex(key, r"^[0-9A-F]{8}$", "%s: key is not a tag in uppercase hex" % ctx)
            self.assertIsInstance(elem, dict, ctx)
            self.assertIn(elem.get("vr"), VRS, "%s: no valid vr" % ctx)
            self.assertLessEqual(set(elem), {"vr", "Value", "BulkDataURI", "InlineBinary"}, ctx)
            if "Value" not in elem:
                continue
            values = elem["Value"]
            self.assertIsInstance(values, list, "%s: Value is not an array" % ctx)
            self.assertTrue(values, "%s: an empty attribute has no \"Value\" (F.2.5)" % ctx)
            vr = elem["vr"]
            for v in values:
                if vr == "PN":
                    self.assertIsInstance(v, dict, "%s: a PN value is an object (F.2.2)" % ctx)
                    self.assertLessEqual(set(v), {"Alphabetic", "Ideographic", "Phonetic"}, ctx)
                elif vr in ("IS", "DS", "SL", "SS", "UL", "US", "FL", "FD"):
                    self.assertIsInstance(v, (int, float), "%s: %s values are numbers" % (ctx, vr))
                    self.assertNotIsInstance(v, bool, ctx)
                elif vr != "SQ":
                    self.assertIsInstance(v, str, "%s: %s values are strings" % (ctx, vr))
            key_vr = {k: vr_ for k, vr_ in ATTR.values()}.get(key)
            if key_vr is not None:
                self.assertEqual(vr, key_vr, "%s: wrong vr" % ctx)

    def by_uid(self, answers, keyword):
        """{the keyword's single value: answer}; each answer has it, none twice."""
        key = ATTR[keyword][0]
        out = {}
        for a in answers:
            self.assertIn(key, a, "%s (%s) missing from %r" % (keyword, key, a))
            values = a[key].get("Value")
            self.assertIsInstance(values, list, "%s of %r" % (keyword, a))
            self.assertEqual(len(values), 1, "%s of %r" % (keyword, a))
            self.assertNotIn(values[0], out, "%s %s answered twice" % (keyword, values[0]))
            out[values[0]] = a
        return out

    def uids(self, path, params=(), keyword="StudyInstanceUID"):
        answers, _ = self.search(path, params)
        return set(self.by_uid(answers, keyword))

    def assertAttr(self, answer, keyword, expected, where=""):
        """The attribute as DICOM JSON: expected None = empty or absent (an empty attribute
        is {"vr": VR} without "Value"); a set compares a multi-valued attribute unordered;
        anything else is the single value."""
        key, vr = ATTR[keyword]
        elem = answer.get(key)
        ctx = "%s: %s (%s) in %s" % (where, keyword, key, json.dumps(answer, ensure_ascii=False))
        if expected is None:
            if elem is not None:
                self.assertEqual(elem, {"vr": vr}, ctx)
            return
        self.assertIsNotNone(elem, "missing " + ctx)
        self.assertEqual(elem.get("vr"), vr, ctx)
        values = elem.get("Value")
        if isinstance(expected, set):
            self.assertIsInstance(values, list, ctx)
            self.assertEqual(len(values), len(set(values)), "a value repeated: " + ctx)
            self.assertEqual(set(values), expected, ctx)
        else:
            self.assertEqual(values, [expected], ctx)

    def retrieve_url(self, *parts):
        url = self.server.url + "/dicom-web"
        for kind, uid in zip(("studies", "series", "instances"), parts):
            url += "/%s/%s" % (kind, uid)
        return url

    def study(self, key):
        return self.data["studies"][key]

    def study_uids(self, *keys):
        return {self.study(k)["uid"] for k in keys}

    def expected_study(self, s):
        name, _, _, _, _ = PATIENTS[s["pid"]]
        return {
            "StudyDate": s["date"], "StudyTime": s["time"], "AccessionNumber": s["accession"],
            "ModalitiesInStudy": {se["modality"] for se in s["series"]},
            "ReferringPhysicianName": None, "PatientName": pn_json(name),
            "PatientID": s["pid"], "PatientBirthDate": s["birth"], "PatientSex": s["sex"],
            "StudyInstanceUID": s["uid"], "StudyID": s["study_id"],
            "StudyDescription": s["description"],
            "NumberOfStudyRelatedSeries": len(s["series"]),
            "NumberOfStudyRelatedInstances": sum(len(se["instances"]) for se in s["series"]),
            "RetrieveURL": self.retrieve_url(s["uid"]),
            "InstanceAvailability": "ONLINE",
        }

    def expected_series(self, se):
        return {
            "StudyInstanceUID": se["study_uid"], "Modality": se["modality"],
            "SeriesDescription": se["description"], "SeriesInstanceUID": se["uid"],
            "SeriesNumber": se["number"], "BodyPartExamined": se["body_part"] or None,
            "NumberOfSeriesRelatedInstances": len(se["instances"]),
            "RetrieveURL": self.retrieve_url(se["study_uid"], se["uid"]),
            "InstanceAvailability": "ONLINE",
        }

    def expected_instance(self, inst):
        se = inst["series"]
        return {
            "StudyInstanceUID": se["study_uid"], "SeriesInstanceUID": se["uid"],
            "SOPClassUID": se["sop_class"], "SOPInstanceUID": inst["sop"],
            "InstanceNumber": inst["number"], "AvailableTransferSyntaxUID": inst["syntax"],
            "RetrieveURL": self.retrieve_url(se["study_uid"], se["uid"], inst["sop"]),
            "InstanceAvailability": "ONLINE",
        }

    def assertAnswers(self, path, params, keyword, expected):
        """The search answers exactly the entities of `expected` ({uid: {keyword: value}}),
        each attribute as assertAttr checks it."""
        answers, _ = self.search(path, params)
        got = self.by_uid(answers, keyword)
        where = "GET /dicom-web%s %r" % (path, list(params))
        self.assertEqual(set(got), set(expected), where)
        for uid, values in expected.items():
            for k, v in values.items():
                with self.subTest(path=path, uid=uid, attribute=k):
                    self.assertAttr(got[uid], k, v, where)
        return got

    # ================================================================== 1. the six routes

    def test_01_studies_route_every_study_with_its_default_attributes(self):
        got = self.assertAnswers("/studies", [], "StudyInstanceUID",
                                 {s["uid"]: self.expected_study(s)
                                  for s in self.data["studies"].values()})
        # Not asked for (no includefield): SOPClassesInStudy, IssuerOfPatientID absent.
        for uid, a in got.items():
            self.assertNotIn(ATTR["SOPClassesInStudy"][0], a, uid)
            self.assertNotIn(ATTR["IssuerOfPatientID"][0], a, uid)

    def test_02_names_in_utf8_with_their_component_groups(self):
        """PS3.18 F.2.2: the Japanese name's three groups; Latin-1 Müller as UTF-8."""
        answers, _ = self.search("/studies", [("PatientID", "QWYAM3")])
        self.assertEqual([a.get("00100010") for a in answers],
                         [{"vr": "PN", "Value": [{"Alphabetic": "Yamada^Tarou",
                                                  "Ideographic": "山田^太郎",
                                                  "Phonetic": "やまだ^たろう"}]}])
        status, _, _, raw = self.qido("/studies", [("PatientID", "QWMUL2")])
        self.assertEqual(status, 200, raw[:300])
        self.assertIn("Müller^Hans".encode("utf-8"), raw.replace(b"\\u00fc", "ü".encode("utf-8")),
                      "the answer is not UTF-8 JSON: %r" % raw[:500])
        body = json.loads(raw.decode("utf-8"))
        self.assertEqual([a.get("00100010") for a in body],
                         [{"vr": "PN", "Value": [{"Alphabetic": "Müller^Hans"}]}])

    def test_03_series_routes(self):
        # Every series of the archive.
        self.assertAnswers("/series", [], "SeriesInstanceUID",
                           {u: self.expected_series(se) for u, se in self.data["series"].items()})
        # The series of one study.
        s1 = self.study("S1")
        self.assertAnswers("/studies/%s/series" % s1["uid"], [], "SeriesInstanceUID",
                           {se["uid"]: self.expected_series(se) for se in s1["series"]})
        s4 = self.study("S4")
        self.assertAnswers("/studies/%s/series" % s4["uid"], [], "SeriesInstanceUID",
                           {se["uid"]: self.expected_series(se) for se in s4["series"]})

    def test_04_instance_routes(self):
        every = {sop: self.expected_instance(i) for sop, i in self.data["instances"].items()}
        self.assertAnswers("/instances", [], "SOPInstanceUID", every)
        s2 = self.study("S2")
        self.assertAnswers("/studies/%s/instances" % s2["uid"], [], "SOPInstanceUID",
                           {sop: v for sop, v in every.items()
                            if self.data["instances"][sop]["study"] is s2})
        mr = s2["series"][0]  # the Implicit VR series
        self.assertAnswers("/studies/%s/series/%s/instances" % (s2["uid"], mr["uid"]), [],
                           "SOPInstanceUID", {i["sop"]: every[i["sop"]] for i in mr["instances"]})
        # A series asked under a study it does not belong to: nothing.
        self.assertEqual(self.uids("/studies/%s/series/%s/instances"
                                   % (self.study("S1")["uid"], mr["uid"]),
                                   keyword="SOPInstanceUID"), set())

    # ================================================================== 2. matching

    def test_05_matching(self):
        mul = "QWMUL2"
        cases = [
            ("/studies", [("PatientID", mul)], {"S3"}),
            ("/studies", [("00100020", mul)], {"S3"}),  # by tag
            ("/studies", [("PatientID", "QWMUL")], set()),  # single value: no prefix match
            ("/studies", [("PatientID", "qwmul2")], set()),  # case-sensitive
            ("/studies", [("PatientName", "DOE^JANE")], {"S1", "S2"}),
            ("/studies", [("PatientName", "DOE*")], {"S1", "S2"}),
            ("/studies", [("PatientName", "DOE^JAN?")], {"S1", "S2"}),
            ("/studies", [("PatientName", "DOE^JA?")], set()),  # ? is one character
            ("/studies", [("PatientName", "Mü*")], {"S3"}),
            ("/studies", [("PatientName", "*Tarou*")], {"S4"}),
            ("/studies", [("PatientName", "Yamada^Tarou")], {"S4"}),  # component group
            ("/studies", [("PatientName", "山田^太郎")], {"S4"}),
            ("/studies", [("PatientName", "山田*")], {"S4"}),
            ("/studies", [("PatientName", "doe^jane")], set()),  # case-sensitive without fuzzy
            ("/studies", [("PatientName", "doe^jane"), ("fuzzymatching", "true")], {"S1", "S2"}),
            ("/studies", [("PatientName", "müller^hans"), ("fuzzymatching", "true")], {"S3"}),
            ("/studies", [("PatientName", "yam*"), ("fuzzymatching", "true")], {"S4"}),
            ("/studies", [("PatientID", "qwmul2"), ("fuzzymatching", "true")], set()),  # PN only
            ("/studies", [("AccessionNumber", "ACC-S?")], {"S1", "S2", "S3", "S4"}),
            ("/studies", [("StudyDescription", "*e")], {"S2"}),  # Knee
            ("/studies", [("StudyDescription", "*e*")], {"S1", "S2", "S3"}),  # not Brain
            ("/studies", [("StudyDate", "20240101-20240131")], {"S1", "S2"}),
            ("/studies", [("00080020", "20240120")], {"S2"}),
            ("/studies", [("StudyDate", "-20231231")], {"S4"}),
            ("/studies", [("StudyDate", "20240201-")], {"S3"}),
            ("/studies", [("StudyDate", "20240106-20240119")], set()),
            ("/studies", [("ModalitiesInStudy", "SR")], {"S1"}),
            ("/studies", [("ModalitiesInStudy", "MR")], {"S2", "S4"}),
            ("/studies", [("StudyInstanceUID", "%s\\%s" % (self.study("S1")["uid"],
                                                           self.study("S4")["uid"]))],
             {"S1", "S4"}),
            ("/studies", [("StudyInstanceUID", "%s\\%s" % (self.study("S1")["uid"],
                                                           self.study("S4")["uid"])),
                          ("StudyDate", "20240101-")], {"S1"}),
            ("/studies", [("PatientName", "DOE*"), ("PatientID", mul)], set()),
        ]
        for path, params, expected in cases:
            with self.subTest(path=path, params=params):
                self.assertEqual(self.uids(path, params), self.study_uids(*expected))

    def test_06_matching_at_series_and_instance_level(self):
        series = self.data["series"]
        instances = self.data["instances"]
        cases = [
            ("/series", [("Modality", "MR")], "SeriesInstanceUID",
             {u for u, se in series.items() if se["modality"] == "MR"}),
            ("/series", [("00080060", "CT"), ("BodyPartExamined", "KNEE")], "SeriesInstanceUID",
             {u for u, se in series.items() if (se["modality"], se["body_part"]) == ("CT", "KNEE")}),
            ("/series", [("SeriesDescription", "S? CT")], "SeriesInstanceUID",
             {u for u, se in series.items() if se["modality"] == "CT"}),
            ("/series", [("SeriesNumber", "2")], "SeriesInstanceUID",
             {u for u, se in series.items() if se["number"] == 2}),
            # A study attribute at SERIES level (PS3.18 10.6.1.2.2): relational.
            ("/series", [("PatientID", "QWDOE1")], "SeriesInstanceUID",
             {u for u, se in series.items() if se["study"] in ("S1", "S2")}),
            ("/studies/%s/series" % self.study("S2")["uid"], [("Modality", "CT")],
             "SeriesInstanceUID",
             {se["uid"] for se in self.study("S2")["series"] if se["modality"] == "CT"}),
            ("/instances", [("SOPClassUID", BASIC_TEXT_SR)], "SOPInstanceUID",
             {s for s, i in instances.items() if i["series"]["sop_class"] == BASIC_TEXT_SR}),
            ("/instances", [("00200013", "2")], "SOPInstanceUID",
             {s for s, i in instances.items() if i["number"] == 2}),
            ("/instances", [("Modality", "MR")], "SOPInstanceUID",
             {s for s, i in instances.items() if i["series"]["modality"] == "MR"}),
            ("/instances", [("SOPInstanceUID", "\\".join(sorted(instances)[:3]))],
             "SOPInstanceUID", set(sorted(instances)[:3])),
            ("/studies/%s/instances" % self.study("S1")["uid"], [("SOPClassUID", CT)],
             "SOPInstanceUID",
             {s for s, i in instances.items()
              if i["study"]["key"] == "S1" and i["series"]["sop_class"] == CT}),
        ]
        for path, params, keyword, expected in cases:
            with self.subTest(path=path, params=params):
                self.assertTrue(expected, "a case that cannot fail")
                self.assertEqual(self.uids(path, params, keyword), expected)

    # ================================================================== 3. includefield

    def test_07_includefield(self):
        for params in ([("includefield", "all")],
                       [("includefield", "SOPClassesInStudy,IssuerOfPatientID")],
                       [("includefield", "00080062"), ("includefield", "00100021")]):
            with self.subTest(params=params):
                self.assertAnswers(
                    "/studies", [("PatientID", "QWDOE1")] + params, "StudyInstanceUID",
                    {s["uid"]: dict(self.expected_study(s), IssuerOfPatientID="HOSP-A",
                                    SOPClassesInStudy={se["sop_class"] for se in s["series"]})
                     for s in (self.study("S1"), self.study("S2"))})
        # Müller has no Issuer of Patient ID: empty or absent, never a made-up value.
        answers, _ = self.search("/studies", [("PatientID", "QWMUL2"), ("includefield", "all")])
        self.assertEqual(len(answers), 1, answers)
        self.assertAttr(answers[0], "IssuerOfPatientID", None)
        self.assertAttr(answers[0], "SOPClassesInStudy", {CT, SC})

    # ================================================================== 4. paging

    def test_08_limit_and_offset_page_through_everything(self):
        every = set(self.data["instances"])
        self.assertEqual(len(every), 10, "precondition: 10 instances")
        pages, offset = [], 0
        while True:
            answers, hdrs = self.search("/instances", [("limit", "4"), ("offset", str(offset))])
            page = [a[ATTR["SOPInstanceUID"][0]]["Value"][0] for a in answers]
            warning = hdrs.get("Warning")
            if len(page) == 4:
                self.assertIsNotNone(warning, "a full page (offset %d) has no Warning" % offset)
                self.assertRegex(warning, r"^299 ", "offset %d: Warning %r" % (offset, warning))
            else:
                self.assertIsNone(warning, "offset %d: %d answers, Warning %r"
                                  % (offset, len(page), warning))
            pages.append(page)
            offset += 4
            if len(page) < 4 or offset > 40:
                break
        self.assertEqual([len(p) for p in pages], [4, 4, 2], pages)
        flat = [u for p in pages for u in p]
        self.assertEqual(len(flat), len(set(flat)), "pages overlap: %r" % pages)
        self.assertEqual(set(flat), every)
        # Past the end: nothing (200 with an empty array).
        answers, hdrs = self.search("/instances", [("limit", "4"), ("offset", "10")])
        self.assertEqual(answers, [])
        # Default limit (1000): everything, no Warning.
        answers, hdrs = self.search("/instances")
        self.assertEqual(len(answers), 10)
        self.assertIsNone(hdrs.get("Warning"), hdrs.get("Warning"))
        # Exactly as many answers as the limit: the Warning says there may be more.
        answers, hdrs = self.search("/studies", [("limit", "4")])
        self.assertEqual(len(answers), 4)
        self.assertRegex(hdrs.get("Warning") or "", r"^299 ")
        answers, hdrs = self.search("/studies", [("limit", "5")])
        self.assertEqual(len(answers), 4)
        self.assertIsNone(hdrs.get("Warning"), hdrs.get("Warning"))

    # ================================================================== 5. errors

    def test_09_bad_requests_are_400_naming_the_field(self):
        s1 = self.study("S1")
        cases = [
            ("/studies", [("NoSuchAttribute", "x")], "NoSuchAttribute"),
            ("/series", [("Bogus", "1")], "Bogus"),
            ("/instances", [("limit", "0")], "limit"),
            ("/instances", [("limit", "100001")], "limit"),
            ("/instances", [("limit", "ten")], "limit"),
            ("/instances", [("offset", "-1")], "offset"),
            ("/studies/not-a-uid/series", [], "StudyInstanceUID"),
            ("/studies/1.2.abc/instances", [], "StudyInstanceUID"),
            ("/studies/%s/series/x%%20y/instances" % s1["uid"], [], "SeriesInstanceUID"),
        ]
        for path, params, field in cases:
            with self.subTest(path=path, params=params):
                status, _, body, raw = self.qido(path, params)
                self.assertJsonError(status, body, field)
        # In range: fine.
        self.search("/instances", [("limit", "100000")])
        self.search("/instances", [("limit", "1")])

    def test_09b_a_key_the_index_does_not_hold_is_never_silently_ignored(self):
        """PatientWeight (0010,1030) is a DICOM keyword but no key the index holds (and no
        generated file has a weight). PS3.18 10.6.1.3: an attribute the origin server cannot
        match on is ignored, and the answer carries a 299 Warning naming it; never a silent
        superset."""
        for name in ("PatientWeight", "00101030"):
            with self.subTest(parameter=name):
                status, hdrs, body, raw = self.qido("/studies", [(name, "70")])
                self.assertEqual(status, 200, raw)
                warning = hdrs.get("Warning") or ""
                self.assertRegex(warning, r"^299 .*PatientWeight",
                                 "GET /dicom-web/studies?%s=70: the ignored key is not named" % name)
                self.assertEqual(len(body), len(self.data["studies"]), raw)
        # A key the index holds carries no such warning.
        status, hdrs, body, raw = self.qido("/studies", [("PatientID", "*")])
        self.assertEqual(status, 200, raw)
        self.assertNotIn("Warning", hdrs, raw)

    def test_10_authentication(self):
        s1 = self.study("S1")
        se = s1["series"][0]["uid"]
        routes = ["/studies", "/series", "/instances", "/studies/%s/series" % s1["uid"],
                  "/studies/%s/instances" % s1["uid"],
                  "/studies/%s/series/%s/instances" % (s1["uid"], se)]
        for path in routes:
            with self.subTest(path=path, credentials="none"):
                status, _, _, raw = self.qido(path, auth=False)
                self.assertEqual(status, 401, raw[:300])
            with self.subTest(path=path, credentials="read-only account"):
                self.assertTrue(self.search(path)[0], path)
        # A wrong password (once: repeated failures lock the account out for a while, 429),
        # on an account of its own so that the reader is not locked out.
        status, body = self.server.api("POST", "/api/users", {
            "username": "qido-other", "role": "read-only", "password": "qido-Other-pw7"})
        self.assertEqual(status, 201, body)
        status, _, _, raw = self.qido("/studies", auth=("qido-other", "wrong-qido-Other-pw7"))
        self.assertEqual(status, 401, raw[:300])
        # A read-only API token as a bearer.
        status, token = self.server.api("POST", "/api/tokens", {"name": "qido-ro"},
                                        auth=self.reader)
        self.assertEqual(status, 201, token)
        self.assertEqual(token.get("role"), "read-only", token)
        bearer = {"Authorization": "Bearer " + token["token"]}
        status, hdrs, body, raw = self.qido("/studies", [("PatientID", "QWMUL2")],
                                            headers=bearer)
        self.assertEqual(status, 200, raw[:300])
        self.assertEqual([a["0020000D"]["Value"] for a in body], [[self.study("S3")["uid"]]])
        status, _, _, raw = self.qido("/studies", auth=False,
                                      headers={"Authorization": "Bearer pbt_not-a-token-0000"})
        self.assertEqual(status, 401, raw[:300])

    # ================================================================== 6. our own client

    def test_20_our_dicomweb_client_against_our_server(self):
        b = self.start_server()
        node = {"name": "pb-a", "type": "dicomweb", "url": self.server.url + "/dicom-web/",
                "queryable": True, "storable": False,
                "auth": {"type": "basic", "username": READER, "password": READER_PASSWORD}}
        status, answer = b.api("POST", "/api/nodes", node)
        self.assertEqual(status, 201, answer)

        status, echo = b.api("POST", "/api/nodes/pb-a/echo", timeout=60)
        self.assertEqual(status, 200, echo)
        self.assertEqual((echo.get("ok"), echo.get("message")), (True, "Connection established"),
                         echo)
        self.assertNotRegex(json.dumps(echo.get("checks"), ensure_ascii=False).lower(),
                            r"no stud", echo)

        def find(level, query):
            status, body = b.api("POST", "/api/nodes/pb-a/find",
                                 {"level": level, "query": query}, timeout=60)
            self.assertEqual(status, 200, "find %s %r -> %s %r" % (level, query, status, body))
            self.assertIs(body.get("truncated"), False, body)
            self.assertIsInstance(body.get("results"), list, body)
            return body["results"]

        def multi(text):
            return set(v for v in (text or "").split("\\") if v)

        # STUDY: Müller in UTF-8, his counts and modalities.
        s3 = self.study("S3")
        results = find("STUDY", {"PatientID": "QWMUL2"})
        self.assertEqual([(r.get("StudyInstanceUID"), r.get("PatientName"), r.get("PatientID"),
                           r.get("StudyDate"), r.get("AccessionNumber"),
                           r.get("NumberOfStudyRelatedInstances"), multi(r.get("ModalitiesInStudy")))
                          for r in results],
                         [(s3["uid"], "Müller^Hans", "QWMUL2", s3["date"], s3["accession"], "2",
                           {"CT", "OT"})], results)
        # STUDY by a wildcard name, and by a date range.
        results = find("STUDY", {"PatientName": "DOE*"})
        self.assertEqual({r.get("StudyInstanceUID") for r in results}, self.study_uids("S1", "S2"))
        self.assertEqual({r.get("PatientName") for r in results}, {"DOE^JANE"})
        results = find("STUDY", {"StudyDate": "20240101-20240131"})
        self.assertEqual({r.get("StudyInstanceUID") for r in results}, self.study_uids("S1", "S2"))
        # The Japanese name: our client keeps its alphabetic group (as against Orthanc).
        results = find("STUDY", {"PatientID": "QWYAM3"})
        self.assertEqual([(r.get("StudyInstanceUID"), r.get("PatientName")) for r in results],
                         [(self.study("S4")["uid"], "Yamada^Tarou")], results)
        # SERIES of S1.
        s1 = self.study("S1")
        results = find("SERIES", {"StudyInstanceUID": s1["uid"]})
        self.assertEqual({r.get("SeriesInstanceUID"): (r.get("Modality"), r.get("SeriesNumber"))
                          for r in results},
                         {se["uid"]: (se["modality"], str(se["number"])) for se in s1["series"]},
                         results)
        # IMAGE of S1's CT series.
        ct = s1["series"][0]
        results = find("IMAGE", {"StudyInstanceUID": s1["uid"], "SeriesInstanceUID": ct["uid"]})
        self.assertEqual({r.get("SOPInstanceUID"): (r.get("SOPClassUID"), r.get("InstanceNumber"))
                          for r in results},
                         {i["sop"]: (CT, str(i["number"])) for i in ct["instances"]}, results)

    # ================================================================== 7. Orthanc's client

    def test_30_orthanc_dicomweb_plugin_as_a_client(self):
        orth = harness.Orthanc(self.mkdtemp("orthanc"), dicomweb=True, extra={
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/",
                         "Servers": {"pb": [self.server.url + "/dicom-web/", READER,
                                            READER_PASSWORD]}}})
        self._peers.append(orth)
        self.addCleanup(orth.stop)
        orth.start()

        def qido(uri, arguments):
            status, body = orth.rest_json("POST", "/dicom-web/servers/pb/qido",
                                          {"Uri": uri, "Arguments": arguments}, timeout=60)
            self.assertEqual(status, 200, "Orthanc qido %s %r -> %s %r"
                             % (uri, arguments, status, body))
            self.assertIsInstance(body, list, body)
            return body

        def value(answer, keyword):
            return (answer.get(ATTR[keyword][0]) or {}).get("Value")

        s3 = self.study("S3")
        answers = qido("/studies", {"PatientID": "QWMUL2"})
        self.assertEqual([(value(a, "StudyInstanceUID"), value(a, "PatientName"),
                           value(a, "PatientID"), value(a, "StudyDate"),
                           value(a, "AccessionNumber"), value(a, "RetrieveURL"))
                          for a in answers],
                         [(s3["uid"], "Müller^Hans", "QWMUL2", s3["date"], s3["accession"],
                           self.retrieve_url(s3["uid"]))], answers)
        answers = qido("/studies", {"PatientName": "DOE*", "StudyDate": "20240101-20240131"})
        self.assertEqual({value(a, "StudyInstanceUID") for a in answers},
                         self.study_uids("S1", "S2"), answers)
        s1 = self.study("S1")
        answers = qido("/studies/%s/series" % s1["uid"], {})
        self.assertEqual({value(a, "SeriesInstanceUID"): value(a, "Modality") for a in answers},
                         {se["uid"]: se["modality"] for se in s1["series"]}, answers)
        answers = qido("/instances", {"SOPClassUID": BASIC_TEXT_SR})
        self.assertEqual({value(a, "SOPInstanceUID") for a in answers},
                         {s for s, i in self.data["instances"].items()
                          if i["series"]["sop_class"] == BASIC_TEXT_SR}, answers)

if __name__ == "__main__":
    unittest.main()
