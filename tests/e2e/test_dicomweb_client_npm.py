"""Our DICOMweb server (/dicom-web) used by an independent client: the npm package
dicomweb-client 0.11.3 (the DICOMweb client of OHIF), run in Node with xhr2 0.2.1 as its
XMLHttpRequest by ui/tests/dicomweb_client.mjs (both devDependencies of ui/, in its lock file).
Every request is made by the library's own methods with its own Accept and Content-Type
headers, credentials given as the basic Authorization header in its `headers` option; the
script records each request (method, URL, Accept, Content-Type, the status) and prints what
the library handed back (JSON as parsed, bytes in base64, the media type it attached).

What is checked, call by call:
- searchForStudies with a PatientID filter finds exactly that patient's study (a filter no
  study matches: none); searchForSeries of the study (all three, and CT only);
  searchForInstances of a series and by SOPInstanceUID, whose RetrieveURL is the instance's
  route; all asked with Accept application/dicom+json.
- retrieveStudyMetadata, retrieveSeriesMetadata, retrieveInstanceMetadata: one object per
  instance, each holding exactly its file's elements (test_wado_metadata's oracle:
  expected_object / assertObjectMatches, VRs of the Implicit file from its Explicit twin), the
  bulk data as BulkDataURIs under this server's /dicom-web.
- retrieveInstance: the library asks multipart/related; type="application/dicom" with no
  transfer syntax, so PS3.18 8.7.3.5.2's default, Explicit VR Little Endian, comes (the part's
  headers, as the library reads them, say so): the Explicit instance's data set byte for byte,
  the Implicit and the JPEG lossless ones converted with every value of their file kept (the
  JPEG one's Pixel Data that of its uncompressed original). With any mediaTypes (e.g.
  application/dicom with transferSyntaxUID "*", which would give the instances as stored) the
  library throws before asking anything: its _getCommonMediaType gives "application/", never
  equal to "application/dicom" (a library bug, dcmjs-org/dicomweb-client pull request 56, open);
  asserted, so that a library that fixes it makes this test say so.
- retrieveInstanceFrames: frames [1] and [1,3] of a native 3-frame instance (the library asks
  multipart/related; type="application/octet-stream") equal the file's frames, cut from its
  Pixel Data at Rows*Columns*SamplesPerPixel*BitsAllocated/8; of a 3-frame JPEG lossless SV1
  instance (DCMTK dcmcjpeg +e1) with mediaTypes [{image/jpeg, 1.2.840.10008.1.2.4.70}] they are
  the file's fragments byte for byte (FFD8 first).
- retrieveBulkData on the BulkDataURIs retrieveInstanceMetadata gave: a 3000-byte OB value
  (Encapsulated Document, written with dicomgen's extra_elements) and the Pixel Data, equal to
  the file's bytes.
- retrieveInstanceRendered: without mediaTypes (no Accept) and with image/jpeg a JPEG
  (FFD8 ... FFD9, its SOF of the file's Columns x Rows); with image/png a PNG (signature, IHDR of
  Columns x Rows).
- storeInstances with datasets = [the ArrayBuffers of two new Part 10 files, Explicit and
  Implicit] (the library's Content-Type: multipart/related; type="application/dicom";
  boundary="<quoted>", body starting with CRLF, no CRLF after the close delimiter): the answer
  (handed back by the library as text, parsed here) lists both in ReferencedSOPSequence and no
  FailedSOPSequence; then searchForInstances finds them, retrieveInstance gives them (in
  Explicit VR LE, as above), and the archive's files (GET /api/instances/{sop}/file) hold each
  data set byte for byte in the syntax it was sent in.
- Credentials: without them the library's promise rejects with an error whose status is 401
  (search, retrieve, frames), also with a wrong password; storeInstances as a read-only
  account rejects with 403.

Library behaviours the assertions allow for (none of them the server's): the multipart decoder
gives every part the headers of the first (so the per-part media type and transfer syntax
checked here are what the library reports); retrieveInstanceRendered resolves with [ArrayBuffer],
not an ArrayBuffer; storeInstances resolves with the answer's text; the built bundle calls
itself version 0.5.2 (its package.json, checked here, says 0.11.3). The suite fails (never
skips) when node, ui/node_modules/dicomweb-client or xhr2 is missing, as the browser suites do.

Test data (dicomgen, stored with storescu into the server's receiver, each file in its own
syntax): study NPM with a CT series in Explicit VR LE (a single-frame instance with the OB
value, a native 3-frame one made by dcmodify), a CT series holding a JPEG lossless copy of a
3-frame file, an MR series in Implicit VR LE; study OTHER of another patient; the two STOW files
of study STOW are only sent by the library. Every expected value comes from those files, never
from the server's answers.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_dicomweb_client_npm.py
"""

import base64
import json
import os
import shutil
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_wado_metadata as meta  # noqa: E402  (the metadata oracle, frames, fragments)
import ui_support  # noqa: E402
from harness import dicomgen  # noqa: E402

EXPLICIT = dicomgen.EXPLICIT_VR_LE
IMPLICIT = dicomgen.IMPLICIT_VR_LE
JPEG_LOSSLESS_SV1 = meta.JPEG_LOSSLESS_SV1
SYNTAX = meta.SYNTAX

SCRIPT = ui_support.ROOT / "ui" / "tests" / "dicomweb_client.mjs"
NODE_MODULES = ui_support.ROOT / "ui" / "node_modules"
VERSIONS = {"dicomweb-client": "0.11.3", "xhr2": "0.2.1"}

READER = ("npm-reader", "npm-Reader-pw7")
WRITER = ("npm-writer", "npm-Writer-pw7")

PIXEL_DATA = (0x7FE0, 0x0010)
DOCUMENT = (0x0042, 0x0011)  # Encapsulated Document: the binary value over 1 KB
ROWS, COLUMNS = (0x0028, 0x0010), (0x0028, 0x0011)
FRAMES = 3

DICOM_JSON = "application/dicom+json"
DICOM_PARTS = 'multipart/related; type="application/dicom"'
OCTET_PARTS = 'multipart/related; type="application/octet-stream"'
AS_STORED = [{"mediaType": "application/dicom", "transferSyntaxUID": "*"}]
JPEG_FRAMES = [{"mediaType": "image/jpeg", "transferSyntaxUID": JPEG_LOSSLESS_SV1}]


def document_value():
    return b"%PDF-1.4\n" + bytes(range(256)) * 11 + b"%%EOF\n" + bytes(range(135))


# (key, PatientID, [(modality, stored as, [(instance number, size, kind)])]); kind "document"
# (with the OB value), "plain", "multiframe" (3 frames).
DATA = [
    ("NPM", "NPMCLIENT1", [
        ("CT", "explicit", [(1, 12000, "document"), (2, 20000, "multiframe")]),
        ("CT", "jpeg", [(1, 24000, "multiframe")]),
        ("MR", "implicit", [(1, 6000, "plain")]),
    ]),
    ("OTHER", "NPMOTHER2", [("CT", "explicit", [(1, 4000, "plain")])]),
]
# Sent by the library's storeInstances only: (instance number, size, syntax).
STOW = ("STOW", "NPMSTOW3", [(1, 9000, "explicit"), (2, 7000, "implicit")])


def client_ready():
    """Why the client cannot run here, or None (ui_support's check, for these packages)."""
    for name in VERSIONS:
        if not (NODE_MODULES / name).is_dir():
            return "ui/node_modules/%s is missing: run make ui (npm ci)" % name
    if not shutil.which("node"):
        return "node is missing"
    return None


def require_client():
    """Raises (fails the suite, never skips it) when the client cannot run here."""
    missing = client_ready()
    if missing:
        raise AssertionError("the dicomweb-client tests cannot run: " + missing)


def build_data(directory):
    """Write DATA and STOW; {"studies": {key: study}, "instances": {sop: instance}, "stow":
    study}. An instance: {"sop", "number", "path" (the file stored), "original" (the
    uncompressed file a JPEG copy was made from, else the same), "twin" (an Explicit file
    written with the same arguments, for the VRs of an Implicit one, else the same), "syntax",
    "frames", "kind", "study", "series"}; a study: {"key", "uid", "pid", "series": [{"uid",
    "modality", "instances"}]}."""
    uid = dicomgen.make_uids()
    directory.mkdir(parents=True, exist_ok=True)
    studies, instances = {}, {}
    n = 0

    def write(study, series, se_index, modality, stored, number, size, kind):
        nonlocal n
        n += 1
        sop = uid("instance", n)
        args = dict(sop_uid=sop, study_uid=study["uid"], series_uid=series["uid"],
                    patient_name="NPM^%s" % study["key"], patient_id=study["pid"],
                    modality=modality, instance_number=number, series_number=se_index,
                    study_id=study["key"],
                    extra_elements=[(DOCUMENT[0], DOCUMENT[1], "OB", document_value())]
                    if kind == "document" else None)
        path = directory / ("%06d.dcm" % n)
        syntax = "implicit" if stored == "implicit" else "explicit"
        if kind == "multiframe":
            meta.make_multiframe(path, FRAMES, size, syntax=syntax, **args)
        else:
            dicomgen.write_instance(path, size=size, syntax=syntax, **args)
        twin = path
        if stored == "implicit":
            twin = directory / ("%06d.explicit-twin.dcm" % n)
            dicomgen.write_instance(twin, size=size, syntax="explicit", **args)
        original = path
        if stored == "jpeg":
            path = meta.jpeg_copy(original, directory / ("%06d.jpeg.dcm" % n))
        inst = {"sop": sop, "number": number, "path": path, "original": original,
                "twin": twin, "syntax": SYNTAX[stored], "kind": kind,
                "frames": FRAMES if kind == "multiframe" else 1, "study": study,
                "series": series}
        series["instances"].append(inst)
        instances[sop] = inst
        return inst

    for st_index, (key, pid, series_list) in enumerate(DATA, 1):
        study = {"key": key, "uid": uid("study", st_index), "pid": pid, "series": []}
        studies[key] = study
        for se_index, (modality, stored, items) in enumerate(series_list, 1):
            series = {"uid": uid("series", st_index, se_index), "modality": modality,
                      "instances": []}
            study["series"].append(series)
            for number, size, kind in items:
                write(study, series, se_index, modality, stored, number, size, kind)
    key, pid, items = STOW
    stow = {"key": key, "uid": uid("study", 99), "pid": pid, "series": []}
    series = {"uid": uid("series", 99, 1), "modality": "CT", "instances": []}
    stow["series"].append(series)
    stow_instances = {}
    for number, size, syntax in items:
        inst = write(stow, series, 1, "CT", syntax, number, size, "plain")
        stow_instances[inst["sop"]] = instances.pop(inst["sop"])
    return {"studies": studies, "instances": instances, "stow": stow,
            "stow_instances": stow_instances}


# ------------------------------------------------------------------------------ images

def jpeg_size(data):
    """(width, height) of a JPEG stream from its SOF segment (ITU T.81 B.2.2), or None."""
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        length = struct.unpack_from(">H", data, pos + 2)[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack_from(">HH", data, pos + 5)
            return width, height
        pos += 2 + length
    return None


def png_size(data):
    """(width, height) from a PNG's IHDR chunk (its first), or None."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack_from(">II", data, 16)


def elements_without_group_lengths(src, explicit=None):
    return {t: v for t, (_, v) in dicomgen.read_elements(src, explicit=explicit).items()
            if t[1] != 0x0000}


class DicomwebClientNpmTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        require_client()
        harness.require_binary()
        cls.data = build_data(cls.tmp / "data")
        cls.server = cls.start_class_server()
        cls.root = cls.server.url + "/dicom-web"
        extra = {EXPLICIT: [], IMPLICIT: ["-xi"], JPEG_LOSSLESS_SV1: ["-xs"]}
        for syntax, args in extra.items():
            files = [i["path"] for i in cls.data["instances"].values() if i["syntax"] == syntax]
            cp = harness.storescu(cls.server.dicom_port, cls.server.dicom_ae, files, extra=args)
            if cp.returncode != 0:
                raise AssertionError("storescu failed:\n%s" % harness.proc_output(cp))
        harness.wait_studies_indexed(cls.server, {
            s["uid"]: sum(len(se["instances"]) for se in s["series"])
            for s in cls.data["studies"].values()})
        for account, role in ((READER, "read-only"), (WRITER, "user")):
            status, body = cls.server.api("POST", "/api/users", {
                "username": account[0], "role": role, "password": account[1]})
            if status != 201:
                raise AssertionError("POST /api/users -> %s %r" % (status, body))
        cls.jobs = 0

    # ------------------------------------------------------------------ the client

    _READER = object()

    def client(self, calls, credentials=_READER):
        """Runs ui/tests/dicomweb_client.mjs with these calls [(id, method, options) or (id,
        method, options, credentials)], as the read-only account unless credentials say
        otherwise (None: none); returns {id: result} (see the script)."""
        creds = READER if credentials is self._READER else credentials
        job = {"url": self.root, "credentials": list(creds) if creds else None, "calls": []}
        for call in calls:
            entry = {"id": call[0], "method": call[1], "options": call[2]}
            if len(call) > 3:
                entry["credentials"] = list(call[3]) if call[3] else None
            job["calls"].append(entry)
        type(self).jobs += 1
        path = self.tmp / ("job%03d.json" % self.jobs)
        path.write_text(json.dumps(job), "utf-8")
        cp = harness.run_tool(["node", SCRIPT, path], timeout=120, cwd=str(ui_support.ROOT / "ui"))
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp)[-3000:])
        try:
            out = json.loads(cp.stdout)
        except ValueError:
            self.fail("the script's stdout is not one JSON object:\n%s"
                      % harness.proc_output(cp)[-3000:])
        self.assertEqual({k: out["library"][k] for k in ("version", "xhr2")},
                         {"version": VERSIONS["dicomweb-client"], "xhr2": VERSIONS["xhr2"]},
                         "the packages in ui/node_modules")
        return out["results"]

    def call(self, method, options, credentials=_READER):
        return self.client([("call", method, options)], credentials)["call"]

    def ok(self, result, where):
        """The value of a call that must have resolved."""
        self.assertTrue(result["ok"], "%s rejected: %s (status %s); requests: %s"
                        % (where, result.get("error"), result.get("status"),
                           json.dumps(result.get("requests"), indent=1)))
        return result["value"]

    def assertRequest(self, result, method, url, accept=None, content_type=None, status=200):
        """The call made exactly one request, as given (accept/content_type: compared when
        given, a regex for content_type)."""
        reqs = result["requests"]
        self.assertEqual(len(reqs), 1, reqs)
        req = reqs[0]
        self.assertEqual((req["method"], req["url"]), (method, url), req)
        if accept is not None:
            self.assertEqual(req["accept"], accept, req)
        if content_type is not None:
            self.assertRegex(req["content_type"] or "", content_type, req)
        self.assertEqual(req["status"], status, req)
        return req

    @staticmethod
    def payload(part):
        return base64.b64decode(part["base64"])

    def parts(self, result, where):
        value = self.ok(result, where)
        self.assertIn("parts", value, "%s: no array of byte buffers: %r" % (where, value))
        return value["parts"]

    # ------------------------------------------------------------------ data

    def study(self, key):
        return self.data["studies"][key]

    def inst(self, key, series_index, number=1):
        for i in self.study(key)["series"][series_index]["instances"]:
            if i["number"] == number:
                return i
        raise KeyError((key, series_index, number))

    @staticmethod
    def ids(inst):
        return {"studyInstanceUID": inst["study"]["uid"],
                "seriesInstanceUID": inst["series"]["uid"], "sopInstanceUID": inst["sop"]}

    def route(self, inst):
        return "%s/studies/%s/series/%s/instances/%s" % (
            self.root, inst["study"]["uid"], inst["series"]["uid"], inst["sop"])

    # The metadata oracle of test_wado_metadata (exact tags, VRs, DICOM JSON values, binary
    # values inline up to 1 KB or as BulkDataURI <instance route>/bulk/<tag>).
    assertObjectMatches = meta.WadoMetadataTests.assertObjectMatches

    def expected_object(self, inst):
        elements = dicomgen.read_elements(str(inst["path"]))
        source = inst["path"] if inst["syntax"] == JPEG_LOSSLESS_SV1 else inst["twin"]
        vrs = {t: v for t, (v, _) in dicomgen.read_elements(str(source)).items()}
        return meta.expected_object(elements, vrs, meta.charset_of(inst))

    def assertMetadata(self, objects, instances, where):
        self.assertIsInstance(objects, list, where)
        sops = [((o.get("00080018") or {}).get("Value") or [None])[0] for o in objects]
        self.assertEqual(sorted(sops), sorted(i["sop"] for i in instances),
                         "%s: the instances" % where)
        for obj in objects:
            inst = self.data["instances"][obj["00080018"]["Value"][0]]
            self.assertObjectMatches(obj, self.expected_object(inst), "%s, %s" % (where,
                                                                                 inst["sop"]),
                                     self.route(inst) + "/bulk/")

    def part10(self, part, inst, syntax, where):
        """The Part 10 bytes of a part the library gave, for inst in syntax (meta header)."""
        data = self.payload(part)
        try:
            got_meta, _ = dicomgen.read_meta(data)
        except ValueError as e:
            self.fail("%s: not a Part 10 file (%s): %r" % (where, e, data[:200]))
        self.assertEqual((got_meta.get("MediaStorageSOPInstanceUID"),
                          got_meta.get("TransferSyntaxUID")), (inst["sop"], syntax), where)
        return data

    def assertDataSetAs(self, part, inst, syntax, where):
        """The part is inst's file: its data set byte for byte, in syntax."""
        data = self.part10(part, inst, syntax, where)
        ours, source = dicomgen.dataset_bytes(data), dicomgen.dataset_bytes(str(inst["path"]))
        self.assertTrue(ours == source, "%s: data set not byte-identical (%d vs %d bytes)"
                        % (where, len(ours), len(source)))

    def assertValuesKept(self, part, inst, where):
        """The part is inst converted to Explicit VR LE: every element's value of its file kept
        (group lengths aside); a JPEG one's Pixel Data decoded, equal to the uncompressed
        original's."""
        data = self.part10(part, inst, EXPLICIT, where)
        got = elements_without_group_lengths(dicomgen.dataset_bytes(data), True)
        source = elements_without_group_lengths(str(inst["path"]))
        if inst["syntax"] == JPEG_LOSSLESS_SV1:
            source[PIXEL_DATA] = dicomgen.read_elements(str(inst["original"]))[PIXEL_DATA][1]
        differ = sorted("(%04X,%04X)" % t for t in set(source) | set(got)
                        if source.get(t) != got.get(t))
        self.assertEqual(differ, [], "%s: elements whose values differ from the file" % where)

    # ================================================================== QIDO-RS

    def test_01_search_for_studies_series_and_instances(self):
        npm, other = self.study("NPM"), self.study("OTHER")
        ct_series = [se["uid"] for se in npm["series"] if se["modality"] == "CT"]
        mr = self.inst("NPM", 2)
        res = self.client([
            ("studies", "searchForStudies", {"queryParams": {"PatientID": npm["pid"]}}),
            ("other", "searchForStudies", {"queryParams": {"PatientID": other["pid"]}}),
            ("none", "searchForStudies", {"queryParams": {"PatientID": "NOBODY*"}}),
            ("series", "searchForSeries", {"studyInstanceUID": npm["uid"]}),
            ("ct", "searchForSeries", {"studyInstanceUID": npm["uid"],
                                       "queryParams": {"Modality": "CT"}}),
            ("instances", "searchForInstances", {"studyInstanceUID": npm["uid"],
                                                 "seriesInstanceUID": npm["series"][0]["uid"]}),
            ("by-sop", "searchForInstances", {"queryParams": {"SOPInstanceUID": mr["sop"]}}),
        ])
        self.assertRequest(res["studies"], "GET", "%s/studies?PatientID=%s"
                           % (self.root, npm["pid"]), DICOM_JSON)
        for key, study in (("studies", npm), ("other", other)):
            with self.subTest(key):
                found = self.ok(res[key], key)["json"]
                self.assertEqual([(s["0020000D"]["Value"][0], s["00100020"]["Value"][0])
                                  for s in found], [(study["uid"], study["pid"])])
                # NumberOfStudyRelatedSeries / -Instances, ModalitiesInStudy (Table 10.6.3-3)
                self.assertEqual(
                    [found[0][t]["Value"] for t in ("00201206", "00201208", "00080061")],
                    [[len(study["series"])], [sum(len(se["instances"]) for se in study["series"])],
                     sorted({se["modality"] for se in study["series"]})])
        self.assertEqual(self.ok(res["none"], "none")["json"], [])

        self.assertRequest(res["series"], "GET", "%s/studies/%s/series" % (self.root, npm["uid"]),
                           DICOM_JSON)
        for key, expected in (("series", {se["uid"]: se["modality"] for se in npm["series"]}),
                              ("ct", {uid: "CT" for uid in ct_series})):
            with self.subTest(key):
                found = self.ok(res[key], key)["json"]
                self.assertEqual({s["0020000E"]["Value"][0]: s["00080060"]["Value"][0]
                                  for s in found}, expected)
                self.assertEqual(len(found), len(expected))

        found = self.ok(res["instances"], "instances")["json"]
        self.assertEqual(sorted(i["00080018"]["Value"][0] for i in found),
                         sorted(i["sop"] for i in npm["series"][0]["instances"]))
        found = self.ok(res["by-sop"], "by-sop")["json"]
        self.assertEqual([i["00080018"]["Value"][0] for i in found], [mr["sop"]])
        self.assertEqual(found[0]["00081190"]["Value"], [self.route(mr)], "RetrieveURL")

    # ================================================================== metadata

    def test_02_study_series_and_instance_metadata(self):
        npm = self.study("NPM")
        doc = self.inst("NPM", 0, 1)
        res = self.client([
            ("study", "retrieveStudyMetadata", {"studyInstanceUID": npm["uid"]}),
            ("series", "retrieveSeriesMetadata", {"studyInstanceUID": npm["uid"],
                                                  "seriesInstanceUID": npm["series"][0]["uid"]}),
            ("instance", "retrieveInstanceMetadata", self.ids(doc)),
        ])
        self.assertRequest(res["study"], "GET", "%s/studies/%s/metadata" % (self.root, npm["uid"]),
                           DICOM_JSON)
        self.assertRequest(res["instance"], "GET", self.route(doc) + "/metadata", DICOM_JSON)
        for key, instances in (
                ("study", [i for se in npm["series"] for i in se["instances"]]),
                ("series", npm["series"][0]["instances"]), ("instance", [doc])):
            with self.subTest(key):
                self.assertMetadata(self.ok(res[key], key)["json"], instances, key)

    # ================================================================== WADO-RS instances

    def test_03_retrieve_instance(self):
        explicit, implicit = self.inst("NPM", 0, 1), self.inst("NPM", 2)
        jpeg = self.inst("NPM", 1)
        res = self.client([
            ("explicit", "retrieveInstance", self.ids(explicit)),
            ("implicit", "retrieveInstance", self.ids(implicit)),
            ("jpeg", "retrieveInstance", self.ids(jpeg)),
            ("star", "retrieveInstance", dict(self.ids(implicit), mediaTypes=AS_STORED)),
            ("named", "retrieveInstance", dict(self.ids(explicit), mediaTypes=[
                {"mediaType": "application/dicom", "transferSyntaxUID": EXPLICIT}])),
        ])
        # The library asks with no transfer syntax: Explicit VR LE (PS3.18 8.7.3.5.2).
        for key, inst in (("explicit", explicit), ("implicit", implicit), ("jpeg", jpeg)):
            with self.subTest(key):
                self.assertRequest(res[key], "GET", self.route(inst), DICOM_PARTS)
                part = self.ok(res[key], key)
                # What the library read from the part's headers.
                self.assertEqual((part["content_type"], part["transfer_syntax"]),
                                 ("application/dicom", EXPLICIT), key)
                if inst["syntax"] == EXPLICIT:
                    self.assertDataSetAs(part, inst, EXPLICIT, "stored Explicit")
                else:
                    self.assertValuesKept(part, inst, "stored " + inst["syntax"])
        # With mediaTypes the library throws before asking (its _getCommonMediaType gives
        # "application/", never equal to "application/dicom"; dcmjs-org/dicomweb-client pull
        # request 56): transfer-syntax=* cannot be asked through retrieveInstance.
        for key in ("star", "named"):
            with self.subTest(key):
                self.assertEqual((res[key]["ok"], res[key]["error"], res[key]["requests"]),
                                 (False, "Media type application/ is not supported for "
                                  "retrieval of instance.", []))

    # ================================================================== frames

    def test_04_frames_of_native_and_jpeg_lossless_instances(self):
        native, jpeg = self.inst("NPM", 0, 2), self.inst("NPM", 1)
        frames, stored = meta.frame_bytes(native), meta.stored_frames(jpeg)
        self.assertEqual(len(set(frames)), FRAMES)  # premise: the frames differ
        calls = []
        for numbers in ([1], [1, 3]):
            tag = ",".join(map(str, numbers))
            calls.append(("native " + tag, "retrieveInstanceFrames",
                          dict(self.ids(native), frameNumbers=numbers)))
            calls.append(("jpeg " + tag, "retrieveInstanceFrames",
                          dict(self.ids(jpeg), frameNumbers=numbers, mediaTypes=JPEG_FRAMES)))
        res = self.client(calls)
        self.assertRequest(res["native 1,3"], "GET", self.route(native) + "/frames/1,3",
                           OCTET_PARTS)
        self.assertRequest(res["jpeg 1,3"], "GET", self.route(jpeg) + "/frames/1,3",
                           'multipart/related; type="image/jpeg"; transfer-syntax='
                           + JPEG_LOSSLESS_SV1)
        for numbers in ([1], [1, 3]):
            tag = ",".join(map(str, numbers))
            for kind, source, media in (("native", frames, "application/octet-stream"),
                                        ("jpeg", stored, "image/jpeg")):
                key = "%s %s" % (kind, tag)
                with self.subTest(key):
                    parts = self.parts(res[key], key)
                    self.assertEqual(len(parts), len(numbers), key)
                    for n, part in zip(numbers, parts):
                        got = self.payload(part)
                        self.assertTrue(got == source[n - 1], "%s: frame %d: %d bytes, the "
                                        "file's %d" % (key, n, len(got), len(source[n - 1])))
                        self.assertEqual(part["content_type"], media, key)
                        if kind == "jpeg":
                            self.assertEqual(got[:2], b"\xff\xd8", key)
                            self.assertEqual(part["transfer_syntax"], JPEG_LOSSLESS_SV1, key)

    # ================================================================== bulk data

    def test_05_bulk_data_from_the_metadata_uris(self):
        doc = self.inst("NPM", 0, 1)
        obj = self.ok(self.call("retrieveInstanceMetadata", self.ids(doc)),
                      "retrieveInstanceMetadata")["json"][0]
        elements = dicomgen.read_elements(str(doc["path"]))
        uris = {tag: obj[meta.tag_key(tag)].get("BulkDataURI") for tag in (DOCUMENT, PIXEL_DATA)}
        for tag, uri in uris.items():
            self.assertEqual(uri, self.route(doc) + "/bulk/" + meta.tag_key(tag))
        self.assertGreater(len(elements[DOCUMENT][1]), 1024)  # premise: not inline
        res = self.client([(meta.tag_key(tag), "retrieveBulkData", {"BulkDataURI": uri})
                           for tag, uri in uris.items()])
        for tag, uri in uris.items():
            key = meta.tag_key(tag)
            with self.subTest(key):
                self.assertRequest(res[key], "GET", uri, OCTET_PARTS)
                parts = self.parts(res[key], key)
                self.assertEqual(len(parts), 1, key)
                got, value = self.payload(parts[0]), elements[tag][1]
                self.assertTrue(got == value, "%s: %d bytes, the file's %d"
                                % (key, len(got), len(value)))
                self.assertEqual(parts[0]["content_type"], "application/octet-stream")

    # ================================================================== rendered

    def test_06_rendered_jpeg_and_png(self):
        inst = self.inst("NPM", 0, 1)
        el = dicomgen.read_elements(str(inst["path"]))
        size = (meta.us_value(el, COLUMNS), meta.us_value(el, ROWS))
        res = self.client([
            ("default", "retrieveInstanceRendered", self.ids(inst)),
            ("jpeg", "retrieveInstanceRendered",
             dict(self.ids(inst), mediaTypes=[{"mediaType": "image/jpeg"}])),
            ("png", "retrieveInstanceRendered",
             dict(self.ids(inst), mediaTypes=[{"mediaType": "image/png"}])),
        ])
        for key, accept, media in (("default", None, "image/jpeg"),
                                   ("jpeg", "image/jpeg", "image/jpeg"),
                                   ("png", "image/png", "image/png")):
            with self.subTest(key):
                req = self.assertRequest(res[key], "GET", self.route(inst) + "/rendered")
                self.assertEqual(req["accept"], accept)
                self.assertEqual(req["response_content_type"], media)
                parts = self.parts(res[key], key)  # the library hands back [ArrayBuffer]
                self.assertEqual(len(parts), 1)
                image = self.payload(parts[0])
                if media == "image/jpeg":
                    self.assertEqual((image[:2], image[-2:]), (b"\xff\xd8", b"\xff\xd9"), key)
                    self.assertEqual(jpeg_size(image), size, key)
                else:
                    self.assertEqual(png_size(image), size, "%s: %r" % (key, image[:32]))

    # ================================================================== STOW-RS

    def test_07_store_instances_then_find_and_retrieve_them(self):
        stow = self.data["stow"]
        sent = list(self.data["stow_instances"].values())
        result = self.call("storeInstances", {"datasetFiles": [str(i["path"]) for i in sent]},
                           WRITER)
        self.assertRequest(result, "POST", self.root + "/studies",
                           content_type=r'^multipart/related; type="application/dicom"; '
                                        r'boundary="[^"]+"$')
        answer = self.ok(result, "storeInstances")
        self.assertIn("json", answer, "the answer is not JSON: %r" % answer)
        self.assertNotIn("00081198", answer["json"], "FailedSOPSequence")
        referenced = answer["json"].get("00081199", {}).get("Value", [])
        self.assertEqual(sorted(r["00081155"]["Value"][0] for r in referenced),
                         sorted(i["sop"] for i in sent), "ReferencedSOPSequence")

        calls = [("find", "searchForInstances", {"queryParams": {"StudyInstanceUID": stow["uid"]}})]
        calls += [(i["sop"], "retrieveInstance", self.ids(i)) for i in sent]
        res = self.client(calls)
        found = self.ok(res["find"], "searchForInstances")["json"]
        self.assertEqual(sorted(i["00080018"]["Value"][0] for i in found),
                         sorted(i["sop"] for i in sent))
        for inst in sent:
            where = "stored by the library, sent in " + inst["syntax"]
            with self.subTest(inst["syntax"]):
                # Through the library (in Explicit VR LE, see test_03) ...
                part = self.ok(res[inst["sop"]], "retrieveInstance")
                if inst["syntax"] == EXPLICIT:
                    self.assertDataSetAs(part, inst, EXPLICIT, where)
                else:
                    self.assertValuesKept(part, inst, where)
                # ... and the archive's file: the data set as sent, byte for byte.
                status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % inst["sop"])
                self.assertEqual(status, 200, payload[:300])
                self.assertEqual(dicomgen.read_meta(payload)[0].get("TransferSyntaxUID"),
                                 inst["syntax"], where)
                self.assertTrue(dicomgen.dataset_bytes(payload)
                                == dicomgen.dataset_bytes(str(inst["path"])),
                                "%s: the archive's data set differs from what was sent" % where)

    # ================================================================== credentials

    def test_08_without_credentials_the_library_rejects_with_401(self):
        native = self.inst("NPM", 0, 2)
        res = self.client([
            ("search", "searchForStudies", {"queryParams": {"PatientID": "NPMCLIENT1"}}, None),
            ("instance", "retrieveInstance", self.ids(native), None),
            ("frames", "retrieveInstanceFrames", dict(self.ids(native), frameNumbers=[1]), None),
            ("wrong password", "searchForStudies", {}, (READER[0], "not-the-password")),
            ("read-only stores", "storeInstances",
             {"datasetFiles": [str(self.inst("OTHER", 0)["path"])]}, READER),
        ])
        for key, status, sent in (("search", 401, False), ("instance", 401, False),
                                  ("frames", 401, False), ("wrong password", 401, True),
                                  ("read-only stores", 403, True)):
            with self.subTest(key):
                r = res[key]
                self.assertFalse(r["ok"], "%s resolved: %r" % (key, r))
                self.assertEqual((r["status"], r["error"]), (status, "request failed"), r)
                self.assertEqual([(q["status"], q["authorization"]) for q in r["requests"]],
                                 [(status, sent)])
        self.assertNotIn("0020000D", json.dumps(res["search"]), "nothing of the archive")


if __name__ == "__main__":
    unittest.main()
