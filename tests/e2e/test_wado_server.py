"""Our DICOMweb server, WADO-RS retrieve (PS3.18 10.4): GET /dicom-web/studies/{study},
.../series/{series} and .../instances/{instance} answer 200 multipart/related;
type="application/dicom", streamed (chunked), one part per instance, each part a DICOM Part 10
file whose Content-Type names its transfer syntax.

Transfer syntaxes (PS3.18 8.7.3.5.2): with transfer-syntax=* every instance comes as stored
(data set byte for byte: Explicit, Implicit, JPEG lossless); without a transfer-syntax (no
Accept, */*, or multipart/related; type="application/dicom") everything comes in Explicit VR
Little Endian, the Explicit instances byte for byte, the Implicit ones converted and the JPEG
lossless ones decompressed with every value kept; transfer-syntax=1.2.840.10008.1.2 gives
Implicit VR Little Endian for all. Tolerant Accept parsing: several media ranges (the first
syntax each instance can be given in wins), a repeated transfer-syntax parameter, quoted
values, any case. 406 JSON naming the field Accept, before any part is sent, when an instance
cannot be given losslessly in any accepted syntax (JPEG baseline only), when Accept names no
DICOM instances, or when its only DICOM range has q=0 (RFC 7231 5.3.1: not acceptable); 404 for a study/series/instance the archive does not hold (also a series
under another study); 400 for a path segment that is no UID; 401 without (or with wrong)
credentials, a read-only account and a read-only API token let in. The RetrieveURL that
QIDO-RS gives is such a route. Nothing is left in data_dir/tmp after the conversions.

Then two clients of it: our own (a second pacsbridge server B with a node of type dicomweb on
the first one's /dicom-web/, basic auth with the read-only account: a retrieve job of two
studies succeeds and B's archive holds every instance with the source's data set byte for
byte), and Orthanc's DICOMweb plugin (its "DicomWeb" "Servers" entry, REST
POST /dicom-web/servers/pb/retrieve {"Resources": [{"Study": uid}]}: Orthanc then holds
every instance of the study, an Explicit one with the source's data set).

Test data (dicomgen, stored with storescu into the server's receiver): study MIX with a CT
series in Explicit VR LE (one instance of 400 KB, so a part spans many chunks) and an MR
series in Implicit VR LE; study JPG with a CT series in JPEG lossless SV1 (DCMTK's dcmcjpeg
copies of Explicit originals, same UIDs) and an Explicit CT series. Every expected value (SOP
Instance UIDs, transfer syntaxes, data set bytes, element values) comes from those generated
files, never from the server's answers. Multipart bodies are parsed here with the standard
library (RFC 2046), independently of the server's own parser.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_wado_server.py
"""

import json
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

EXPLICIT = dicomgen.EXPLICIT_VR_LE
IMPLICIT = dicomgen.IMPLICIT_VR_LE
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
SYNTAX = {"explicit": EXPLICIT, "implicit": IMPLICIT, "jpeg": JPEG_LOSSLESS_SV1}

READER, READER_PASSWORD = "wado-reader", "wado-Reader-pw7"

DICOM_ACCEPT = 'multipart/related; type="application/dicom"'
ANY_ACCEPT = DICOM_ACCEPT + "; transfer-syntax=*"
IMPLICIT_ACCEPT = DICOM_ACCEPT + "; transfer-syntax=" + IMPLICIT
BASELINE_ACCEPT = DICOM_ACCEPT + "; transfer-syntax=" + JPEG_BASELINE

PATIENT_ID = (0x0010, 0x0020)
SOP_INSTANCE_UID = (0x0008, 0x0018)
PIXEL_DATA = (0x7FE0, 0x0010)

# (key, PatientID, [(modality, instances, stored as, [sizes])])
DATA = [
    ("MIX", "WADOMIX1", [("CT", 2, "explicit", [12000, 400_000]),
                         ("MR", 2, "implicit", [12000, 12000])]),
    ("JPG", "WADOJPG2", [("CT", 2, "jpeg", [12000, 12000]),
                         ("CT", 1, "explicit", [12000])]),
]


def jpeg_copy(src, dst):
    """A JPEG lossless (process 14, SV1) copy of src with the same UIDs (DCMTK dcmcjpeg)."""
    cp = harness.run_tool(["dcmcjpeg", "+e1", src, dst])
    if cp.returncode != 0:
        raise AssertionError("dcmcjpeg failed:\n" + harness.proc_output(cp))
    meta, _ = dicomgen.read_meta(str(dst))
    if meta["TransferSyntaxUID"] != JPEG_LOSSLESS_SV1:
        raise AssertionError("dcmcjpeg wrote %r" % meta)
    return dst


def build_data(directory):
    """Write DATA; {"studies": {key: study}, "instances": {sop: instance}, "files": [paths]}.
    An instance: {"sop", "path" (the file stored), "original" (the uncompressed file a JPEG
    copy was made from, else the same), "syntax" (its transfer syntax UID), "study", "series"};
    a study: {"key", "uid", "series": [{"uid", "instances"}]}."""
    uid = dicomgen.make_uids()
    studies, instances, files = {}, {}, []
    n = 0
    for st_index, (key, pid, series_list) in enumerate(DATA, 1):
        study = {"key": key, "uid": uid("study", st_index), "series": []}
        studies[key] = study
        for se_index, (modality, count, stored, sizes) in enumerate(series_list, 1):
            series = {"uid": uid("series", st_index, se_index), "instances": []}
            study["series"].append(series)
            for inum in range(1, count + 1):
                n += 1
                sop = uid("instance", n)
                path = directory / ("%06d.dcm" % n)
                path.parent.mkdir(parents=True, exist_ok=True)
                dicomgen.write_instance(
                    path, sop_uid=sop, study_uid=study["uid"], series_uid=series["uid"],
                    patient_name="WADO^%s" % key, patient_id=pid, modality=modality,
                    instance_number=inum, series_number=se_index, study_id=key,
                    syntax="implicit" if stored == "implicit" else "explicit",
                    size=sizes[inum - 1])
                original = path
                if stored == "jpeg":
                    path = jpeg_copy(original, directory / ("%06d.jpeg.dcm" % n))
                inst = {"sop": sop, "path": path, "original": original,
                        "syntax": SYNTAX[stored], "study": study, "series": series}
                series["instances"].append(inst)
                instances[sop] = inst
                files.append(path)
    return {"studies": studies, "instances": instances, "files": files}


# ------------------------------------------------------------------------------ parsing

def split_params(header):
    """A header value 'a/b; k=v; k2="v 2"' -> ('a/b' lowercased, [(key lowercased, value
    unquoted)]); semicolons inside quotes kept."""
    items, cur, quoted = [], "", False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        if ch == ";" and not quoted:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    params = []
    for item in items[1:]:
        k, _, v = item.strip().partition("=")
        v = v.strip()
        if len(v) >= 2 and v[0] == v[-1] == '"':
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        params.append((k.strip().lower(), v))
    return items[0].strip().lower(), params


def multipart_parts(content_type, body):
    """The parts of a multipart body (RFC 2046 5.1.1): [({header name lowercased: value},
    payload bytes)]. Raises AssertionError when the body is not well formed (no boundary, no
    first delimiter, no close delimiter)."""
    _, params = split_params(content_type or "")
    boundary = dict(params).get("boundary")
    if not boundary:
        raise AssertionError("no boundary in Content-Type %r" % content_type)
    delim = b"--" + boundary.encode("ascii")
    # The first delimiter: at the very start, or after a preamble and CRLF.
    if body.startswith(delim):
        pos = len(delim)
    else:
        i = body.find(b"\r\n" + delim)
        if i < 0:
            raise AssertionError("no delimiter %r in the body (%d bytes: %r...)"
                                 % (delim, len(body), body[:200]))
        pos = i + 2 + len(delim)
    parts = []
    while True:
        if body.startswith(b"--", pos):
            return parts  # close delimiter; an epilogue may follow
        # transport padding, then CRLF
        eol = body.find(b"\r\n", pos)
        if eol < 0 or body[pos:eol].strip(b" \t"):
            raise AssertionError("malformed delimiter line at %d: %r" % (pos, body[pos:pos + 80]))
        start = eol + 2
        nxt = body.find(b"\r\n" + delim, start)
        if nxt < 0:
            raise AssertionError("part %d has no delimiter after it (body cut off? %d bytes)"
                                 % (len(parts) + 1, len(body)))
        chunk = body[start:nxt]
        head, sep, payload = chunk.partition(b"\r\n\r\n")
        if not sep:
            if chunk.startswith(b"\r\n"):  # no header lines at all
                head, payload = b"", chunk[2:]
            else:
                raise AssertionError("part %d has no blank line after its headers: %r"
                                     % (len(parts) + 1, chunk[:200]))
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            if line.strip():
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload))
        pos = nxt + 2 + len(delim)


def accept_for(*syntaxes):
    """multipart/related ranges of application/dicom, one per transfer syntax."""
    return ", ".join(DICOM_ACCEPT + "; transfer-syntax=" + ts for ts in syntaxes)


class WadoServerTests(harness.E2ETestCase, harness.JobHelpers):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.data = build_data(cls.tmp / "data")
        cls.server = cls.start_class_server()
        # storescu proposes each file's own syntax only when told (-xi Implicit, -xs JPEG
        # lossless SV1); otherwise it would convert them to Explicit on the way.
        for syntax, extra in ((EXPLICIT, []), (IMPLICIT, ["-xi"]), (JPEG_LOSSLESS_SV1, ["-xs"])):
            files = [i["path"] for i in cls.data["instances"].values() if i["syntax"] == syntax]
            cp = harness.storescu(cls.server.dicom_port, cls.server.dicom_ae, files, extra=extra)
            if cp.returncode != 0:
                raise AssertionError("storescu failed:\n%s" % harness.proc_output(cp))
        expected = {s["uid"]: sum(len(se["instances"]) for se in s["series"])
                    for s in cls.data["studies"].values()}

        harness.wait_studies_indexed(cls.server, expected)
        # Premise: the archive keeps each file as sent (its syntax and data set).
        for sop, inst in cls.data["instances"].items():
            status, _, payload = cls.server.raw("GET", "/api/instances/%s/file" % sop)
            if status != 200 or (dicomgen.dataset_bytes(payload)
                                 != dicomgen.dataset_bytes(str(inst["path"]))):
                raise AssertionError("premise: the archive does not hold %s as sent (%s)"
                                     % (sop, status))
        status, body = cls.server.api("POST", "/api/users", {
            "username": READER, "role": "read-only", "password": READER_PASSWORD})
        if status != 201:
            raise AssertionError("POST /api/users -> %s %r" % (status, body))
        cls.reader = (READER, READER_PASSWORD)

    # ------------------------------------------------------------------ helpers

    def study(self, key):
        return self.data["studies"][key]

    def instances_of(self, key, series_index=None):
        s = self.study(key)
        series = s["series"] if series_index is None else [s["series"][series_index]]
        return [i for se in series for i in se["instances"]]

    def path_of(self, inst=None, series=None, study=None):
        """The WADO-RS route (below the server's URL) of an instance, a series or a study."""
        if inst is not None:
            return "/dicom-web/studies/%s/series/%s/instances/%s" % (
                inst["study"]["uid"], inst["series"]["uid"], inst["sop"])
        if series is not None:
            return "/dicom-web/studies/%s/series/%s" % (study["uid"], series["uid"])
        return "/dicom-web/studies/%s" % study["uid"]

    def wado(self, path, accept=None, auth=None, headers=None):
        """GET path as the read-only account (auth: (user, password), or False for none),
        with that Accept (None: no Accept header): (status, headers, body bytes)."""
        hdrs = dict(headers or {})
        if accept is not None:
            hdrs["Accept"] = accept
        creds = None if auth is False else (auth or self.reader)
        return self.server.raw("GET", path, headers=hdrs, auth=creds, timeout=60)

    def retrieve(self, path, accept=None, framing=None):
        """A retrieve that must succeed: 200, multipart/related; type="application/dicom"
        with a boundary, framed by its Content-Length (exact) or chunked (framing: "length" or
        "chunked" demands one); returns [{"sop", "ts" (from the part's Content-Type), "meta",
        "bytes"}] in the order sent, each part a Part 10 file."""
        status, hdrs, body = self.wado(path, accept)
        return self.answer_parts(status, hdrs, body, "GET %s (Accept: %r)" % (path, accept), framing)

    def answer_parts(self, status, hdrs, body, where, framing=None):
        """The checks and parts of retrieve(), for an answer already read."""
        self.assertEqual(status, 200, "%s -> %s %r" % (where, status, body[:500]))
        ctype = hdrs.get("Content-Type") or ""
        media, params = split_params(ctype)
        params = dict(params)
        self.assertEqual(media, "multipart/related", "%s: Content-Type %r" % (where, ctype))
        self.assertEqual(params.get("type", "").lower(), "application/dicom",
                         "%s: Content-Type %r" % (where, ctype))
        length, coding = hdrs.get("Content-Length"), (hdrs.get("Transfer-Encoding") or "").lower()
        if framing == "length" or (framing is None and length is not None):
            self.assertIsNotNone(length, "%s: no Content-Length (Transfer-Encoding %r)" % (where, coding))
            self.assertEqual(int(length), len(body), "%s: Content-Length against the body" % where)
        else:
            self.assertRegex(coding, r"\bchunked\b", "%s: neither a Content-Length nor chunked (%r)"
                             % (where, coding))
        out = []
        for i, (phdrs, payload) in enumerate(multipart_parts(ctype, body), 1):
            pmedia, pparams = split_params(phdrs.get("content-type", ""))
            self.assertEqual(pmedia, "application/dicom",
                             "%s: part %d Content-Type %r" % (where, i, phdrs))
            ts = [v for k, v in pparams if k == "transfer-syntax"]
            self.assertEqual(len(ts), 1, "%s: part %d has no single transfer-syntax: %r"
                             % (where, i, phdrs))
            try:
                meta, _ = dicomgen.read_meta(payload)
            except ValueError as e:
                self.fail("%s: part %d is not a Part 10 file (%s): %r" % (where, i, e,
                                                                           payload[:200]))
            self.assertEqual(meta.get("TransferSyntaxUID"), ts[0],
                             "%s: part %d: its Content-Type says %s, its meta header %s"
                             % (where, i, ts[0], meta.get("TransferSyntaxUID")))
            out.append({"sop": meta.get("MediaStorageSOPInstanceUID"), "ts": ts[0],
                        "meta": meta, "bytes": payload})
        return out

    def assertSops(self, parts, expected, where=""):
        """Exactly the expected instances, each once; returns {sop: part}."""
        got = [p["sop"] for p in parts]
        self.assertEqual(sorted(got), sorted(i["sop"] for i in expected),
                         "%s: SOP Instance UIDs of the parts" % where)
        return {p["sop"]: p for p in parts}

    def assertAsStored(self, part, inst, where=""):
        """The part is the stored instance: its syntax and its data set byte for byte."""
        ctx = "%s: %s (stored %s)" % (where, inst["sop"], inst["syntax"])
        self.assertEqual(part["ts"], inst["syntax"], ctx)
        self.assertEqual(part["meta"].get("MediaStorageSOPClassUID"),
                         dicomgen.read_meta(str(inst["path"]))[0]["MediaStorageSOPClassUID"], ctx)
        ours, source = (dicomgen.dataset_bytes(part["bytes"]),
                        dicomgen.dataset_bytes(str(inst["path"])))
        self.assertTrue(ours == source, "%s: data set not byte-identical (%d vs %d bytes)"
                        % (ctx, len(ours), len(source)))

    def assertConverted(self, part, inst, ts, where=""):
        """The part is inst converted to ts: its data set read in ts's VR encoding (not from
        what the meta header says) holds the values of the source. From an uncompressed
        source every element's value is kept (group lengths aside); from JPEG lossless,
        PatientID, SOPInstanceUID and PixelData (that of the uncompressed original)."""
        ctx = "%s: %s (stored %s, wanted %s)" % (where, inst["sop"], inst["syntax"], ts)
        self.assertEqual(part["ts"], ts, ctx)
        try:
            got = dicomgen.read_elements(dicomgen.dataset_bytes(part["bytes"]),
                                         explicit=(ts == EXPLICIT))
        except (ValueError, IndexError, struct.error) as e:
            self.fail("%s: data set cannot be read in %s: %s" % (ctx, ts, e))
        got = {t: v for t, (_, v) in got.items() if t[1] != 0x0000}
        if inst["syntax"] == JPEG_LOSSLESS_SV1:
            original = dicomgen.read_elements(str(inst["original"]))
            for tag in (PATIENT_ID, SOP_INSTANCE_UID, PIXEL_DATA):
                self.assertIn(tag, got, "%s: (%04X,%04X) missing" % ((ctx,) + tag))
                self.assertTrue(got[tag] == original[tag][1],
                                "%s: (%04X,%04X) differs from the uncompressed original"
                                % ((ctx,) + tag))
            return
        source = {t: v for t, (_, v) in dicomgen.read_elements(str(inst["path"])).items()
                  if t[1] != 0x0000}
        differ = sorted("(%04X,%04X)" % t for t in set(source) | set(got)
                        if source.get(t) != got.get(t))
        self.assertEqual(differ, [], "%s: elements whose values differ from the source" % ctx)
        for tag in (PATIENT_ID, SOP_INSTANCE_UID, PIXEL_DATA):  # the brief's three, by name
            self.assertTrue(got.get(tag) == source[tag], ctx)

    def tmp_files(self):
        return harness.files_under(self.server.data_dir / "tmp")

    # ================================================================== 1. as stored

    def test_01_transfer_syntax_star_gives_every_instance_as_stored(self):
        mix, jpg = self.study("MIX"), self.study("JPG")
        cases = [
            ("study MIX", self.path_of(study=mix), self.instances_of("MIX")),
            ("study JPG", self.path_of(study=jpg), self.instances_of("JPG")),
            ("series MIX/Implicit", self.path_of(series=mix["series"][1], study=mix),
             self.instances_of("MIX", 1)),
            ("series JPG/JPEG", self.path_of(series=jpg["series"][0], study=jpg),
             self.instances_of("JPG", 0)),
            ("series MIX/Explicit", self.path_of(series=mix["series"][0], study=mix),
             self.instances_of("MIX", 0)),
        ]
        for inst in (self.instances_of("MIX", 0)[1], self.instances_of("MIX", 1)[0],
                     self.instances_of("JPG", 0)[1]):
            cases.append(("instance %s" % inst["syntax"], self.path_of(inst=inst), [inst]))
        for label, path, expected in cases:
            with self.subTest(label):
                # All as stored: the answer's length is known before its first byte.
                parts = self.assertSops(self.retrieve(path, ANY_ACCEPT, framing="length"), expected, label)
                for inst in expected:
                    self.assertAsStored(parts[inst["sop"]], inst, label)

    def test_02_retrieve_url_from_qido_rs_is_the_route(self):
        """QIDO-RS's RetrieveURL (0008,1190) of a study and of an instance, followed as given."""
        mix = self.study("MIX")
        inst = self.instances_of("MIX", 1)[1]
        for query, expected in ((
                "/dicom-web/studies?StudyInstanceUID=%s" % mix["uid"], self.instances_of("MIX")), (
                "/dicom-web/instances?SOPInstanceUID=%s" % inst["sop"], [inst])):
            with self.subTest(query):
                status, _, body = self.wado(query, "application/dicom+json")
                self.assertEqual(status, 200, body[:300])
                answers = json.loads(body.decode("utf-8"))
                self.assertEqual(len(answers), 1, answers)
                url = answers[0]["00081190"]["Value"][0]
                self.assertTrue(url.startswith(self.server.url + "/dicom-web/"), url)
                parts = self.assertSops(self.retrieve(url[len(self.server.url):], ANY_ACCEPT),
                                        expected, url)
                for i in expected:
                    self.assertAsStored(parts[i["sop"]], i, url)

    # ================================================================== 2. conversions

    def test_03_default_is_explicit_vr_little_endian(self):
        """No transfer-syntax (PS3.18 8.7.3.5.2): Explicit VR LE; Explicit instances byte for
        byte, Implicit converted, JPEG lossless decompressed, values kept."""
        for key in ("MIX", "JPG"):
            for accept in (None, "*/*", DICOM_ACCEPT):
                label = "study %s, Accept %r" % (key, accept)
                with self.subTest(label):
                    parts = self.assertSops(
                        self.retrieve(self.path_of(study=self.study(key)), accept),
                        self.instances_of(key), label)
                    for inst in self.instances_of(key):
                        if inst["syntax"] == EXPLICIT:
                            self.assertAsStored(parts[inst["sop"]], inst, label)
                        else:
                            self.assertConverted(parts[inst["sop"]], inst, EXPLICIT, label)
        # One Implicit instance on its own, no Accept.
        inst = self.instances_of("MIX", 1)[0]
        parts = self.assertSops(self.retrieve(self.path_of(inst=inst)), [inst], "instance")
        self.assertConverted(parts[inst["sop"]], inst, EXPLICIT, "instance, no Accept")

    def test_04_implicit_vr_little_endian_for_all(self):
        for key in ("MIX", "JPG"):
            label = "study %s, Accept %r" % (key, IMPLICIT_ACCEPT)
            with self.subTest(label):
                # Converted parts: their sizes are known only once converted.
                parts = self.assertSops(
                    self.retrieve(self.path_of(study=self.study(key)), IMPLICIT_ACCEPT, framing="chunked"),
                    self.instances_of(key), label)
                for inst in self.instances_of(key):
                    if inst["syntax"] == IMPLICIT:
                        self.assertAsStored(parts[inst["sop"]], inst, label)
                    else:
                        self.assertConverted(parts[inst["sop"]], inst, IMPLICIT, label)

    # ================================================================== 3. tolerant Accept

    def test_05_tolerant_accept(self):
        mix_path = self.path_of(study=self.study("MIX"))
        mix = self.instances_of("MIX")
        all_implicit = [
            # The brief's example: a JSON range first, the type unquoted, the syntax quoted.
            'application/dicom+json, multipart/related; type=application/dicom; '
            'transfer-syntax="1.2.840.10008.1.2"',
            # The first range no instance can be given in (lossy), the second Implicit.
            accept_for(JPEG_BASELINE, IMPLICIT),
            # The transfer-syntax parameter repeated in one range.
            DICOM_ACCEPT + "; transfer-syntax=%s; transfer-syntax=%s" % (JPEG_BASELINE, IMPLICIT),
            # Spaces, a q parameter, and no space after the semicolons.
            'multipart/related;type="application/dicom";transfer-syntax=%s ;q=0.9' % IMPLICIT,
        ]
        for accept in all_implicit:
            with self.subTest(accept=accept):
                parts = self.assertSops(self.retrieve(mix_path, accept), mix, accept)
                for inst in mix:
                    if inst["syntax"] == IMPLICIT:
                        self.assertAsStored(parts[inst["sop"]], inst, accept)
                    else:
                        self.assertConverted(parts[inst["sop"]], inst, IMPLICIT, accept)
        # Media type, parameter names and the type value in any case (RFC 7231 3.1.1.1).
        accept = 'Multipart/Related; Type="Application/DICOM"; Transfer-Syntax=*'
        with self.subTest(accept=accept):
            parts = self.assertSops(self.retrieve(mix_path, accept), mix, accept)
            for inst in mix:
                self.assertAsStored(parts[inst["sop"]], inst, accept)
        # Per instance, the first syntax it can be given in: JPEG lossless as stored; the
        # Explicit instance is as stored in Explicit, or losslessly compressed to JPEG lossless
        # (also lossless, and named first).
        jpg = self.instances_of("JPG")
        accept = accept_for(JPEG_LOSSLESS_SV1, EXPLICIT)
        with self.subTest(accept=accept):
            parts = self.assertSops(self.retrieve(self.path_of(study=self.study("JPG")), accept),
                                    jpg, accept)
            for inst in jpg:
                part = parts[inst["sop"]]
                if inst["syntax"] == JPEG_LOSSLESS_SV1 or part["ts"] == EXPLICIT:
                    self.assertAsStored(part, inst, accept)
                else:
                    self.assertEqual(part["ts"], JPEG_LOSSLESS_SV1, accept)
        # */* beside a JPEG-baseline-only range: */* takes anything (the default, Explicit).
        accept = BASELINE_ACCEPT + ", */*"
        with self.subTest(accept=accept):
            parts = self.assertSops(self.retrieve(mix_path, accept), mix, accept)
            for inst in mix:
                if inst["syntax"] == EXPLICIT:
                    self.assertAsStored(parts[inst["sop"]], inst, accept)
                else:
                    self.assertConverted(parts[inst["sop"]], inst, EXPLICIT, accept)

    # ================================================================== 4. errors

    def test_06_not_acceptable_is_406_before_any_part(self):
        mix, jpg = self.study("MIX"), self.study("JPG")
        cases = [
            ("uncompressed study, JPEG baseline only", self.path_of(study=mix), BASELINE_ACCEPT),
            ("JPEG lossless study, JPEG baseline only", self.path_of(study=jpg),
             BASELINE_ACCEPT),
            ("JPEG lossless instance, JPEG baseline only",
             self.path_of(inst=self.instances_of("JPG", 0)[0]), BASELINE_ACCEPT),
            ("Implicit series, JPEG baseline only (quoted)",
             self.path_of(series=mix["series"][1], study=mix),
             DICOM_ACCEPT + '; transfer-syntax="%s"' % JPEG_BASELINE),
            ("DICOM JSON only", self.path_of(study=mix), "application/dicom+json"),
            # RFC 7231 5.3.1 (PS3.18 8.7.3): q=0 means "not acceptable".
            ("the only DICOM range refused with q=0", self.path_of(study=mix),
             ANY_ACCEPT + "; q=0"),
            ("a zip only", self.path_of(study=mix), "application/zip"),
        ]
        for label, path, accept in cases:
            with self.subTest(label, accept=accept):
                status, hdrs, body = self.wado(path, accept)
                ctype = hdrs.get("Content-Type") or ""
                self.assertEqual(status, 406, "%s: got %s, Content-Type %r, %d bytes%s"
                                 % (label, status, ctype, len(body),
                                    "" if status == 200 else ": %r" % body[:300]))
                self.assertFalse(b"DICM" in body, "%s: DICOM data sent with the refusal" % label)
                self.assertEqual(ctype.split(";")[0].strip().lower(), "application/json",
                                 "%s: %r" % (label, ctype))
                self.assertJsonError(status, harness.parse_json(body), "Accept", 406)

    def test_07_not_held_is_404(self):
        mix, jpg = self.study("MIX"), self.study("JPG")
        ghost = dicomgen.make_uids()
        inst = self.instances_of("MIX", 0)[0]
        cases = [
            ("unknown study", "/dicom-web/studies/%s" % ghost("study", 9)),
            ("unknown series", "/dicom-web/studies/%s/series/%s"
             % (mix["uid"], ghost("series", 9, 9))),
            ("unknown instance", "/dicom-web/studies/%s/series/%s/instances/%s"
             % (mix["uid"], mix["series"][0]["uid"], ghost("instance", 99))),
            ("a series of another study", "/dicom-web/studies/%s/series/%s"
             % (mix["uid"], jpg["series"][1]["uid"])),
            ("an instance of another series", "/dicom-web/studies/%s/series/%s/instances/%s"
             % (mix["uid"], mix["series"][1]["uid"], inst["sop"])),
        ]
        for label, path in cases:
            for accept in (None, ANY_ACCEPT):
                with self.subTest(label, accept=accept):
                    status, _, body = self.wado(path, accept)
                    self.assertJsonError(status, harness.parse_json(body), None, 404)

    def test_08_a_path_segment_that_is_no_uid_is_400(self):
        mix = self.study("MIX")
        se = mix["series"][0]["uid"]
        # Not UIDs (PS3.5 9.1): other characters than digits and dots, more than 64
        # characters. (The structure of the components -- empty, leading zeros -- is left
        # out: archives hold such non-conforming UIDs, and they must stay retrievable.)
        for path, field in (("/dicom-web/studies/not-a-uid", "StudyInstanceUID"),
                            ("/dicom-web/studies/1.2.abc", "StudyInstanceUID"),
                            ("/dicom-web/studies/" + "1" * 65, "StudyInstanceUID"),
                            ("/dicom-web/studies/%s/series/x%%20y" % mix["uid"],
                             "SeriesInstanceUID"),
                            ("/dicom-web/studies/%s/series/%s/instances/1.2-3" % (mix["uid"], se),
                             "SOPInstanceUID")):
            with self.subTest(path=path):
                status, _, body = self.wado(path, ANY_ACCEPT)
                self.assertJsonError(status, harness.parse_json(body), field, 400)

    def test_09_authentication(self):
        mix = self.study("MIX")
        inst = self.instances_of("MIX", 0)[0]
        routes = [self.path_of(study=mix), self.path_of(series=mix["series"][0], study=mix),
                  self.path_of(inst=inst)]
        for path in routes:
            with self.subTest(path=path, credentials="none"):
                status, _, body = self.wado(path, ANY_ACCEPT, auth=False)
                self.assertEqual(status, 401, body[:300])
                self.assertNotIn(b"DICM", body)
            with self.subTest(path=path, credentials="bad bearer"):
                status, _, body = self.wado(path, ANY_ACCEPT, auth=False, headers={
                    "Authorization": "Bearer pbt_not-a-token-0000"})
                self.assertEqual(status, 401, body[:300])
        # A wrong password, on an account of its own (repeated failures lock one out).
        status, body = self.server.api("POST", "/api/users", {
            "username": "wado-other", "role": "read-only", "password": "wado-Other-pw7"})
        self.assertEqual(status, 201, body)
        status, _, body = self.wado(routes[2], ANY_ACCEPT, auth=("wado-other", "wrong-pw-77"))
        self.assertEqual(status, 401, body[:300])
        # The read-only account (every other test) and a read-only API token as a bearer.
        status, token = self.server.api("POST", "/api/tokens", {"name": "wado-ro"},
                                        auth=self.reader)
        self.assertEqual(status, 201, token)
        self.assertEqual(token.get("role"), "read-only", token)
        status, hdrs, body = self.wado(routes[2], ANY_ACCEPT, auth=False, headers={
            "Authorization": "Bearer " + token["token"]})
        self.assertEqual(status, 200, body[:300])
        parts = multipart_parts(hdrs.get("Content-Type"), body)
        self.assertEqual([dicomgen.read_meta(p)[0]["MediaStorageSOPInstanceUID"]
                          for _, p in parts], [inst["sop"]])

    # ================================================================== 5. temp files

    def test_10_no_temp_file_left_after_conversions(self):
        mix = self.study("MIX")
        self.retrieve(self.path_of(study=mix))  # Implicit -> Explicit
        self.retrieve(self.path_of(study=self.study("JPG")), IMPLICIT_ACCEPT)  # all converted
        self.retrieve(self.path_of(inst=self.instances_of("JPG", 0)[0]))  # decompressed
        self.wado(self.path_of(study=mix), BASELINE_ACCEPT)  # 406
        left = harness.wait_until(lambda: not self.tmp_files(), 5, 0.1)
        self.assertTrue(left, "left in %s: %r" % (self.server.data_dir / "tmp",
                                                   self.tmp_files()))

    def test_11_a_large_answer_is_streamed_from_the_files_not_held(self):
        """Two 60 MB instances: the server's peak resident memory grows by far less than the
        120 MB answer while it is sent; a byte range of the answer is the file's bytes."""
        size = 60 * 1000 * 1000
        files = dicomgen.generate(self.tmp / "large", 2, size=size, patient_id="WADOLARGE")
        cp = harness.storescu(self.server.dicom_port, self.server.dicom_ae, [f[0] for f in files])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        study = files[0][2]
        harness.wait_studies_indexed(self.server, {study: 2})
        self.retrieve(self.path_of(inst={"study": {"uid": study}, "series": {"uid": files[0][3]},
                                         "sop": files[0][1]}), ANY_ACCEPT)  # warm up
        with open("/proc/%d/clear_refs" % self.server.pid, "w") as f:
            f.write("5")  # resets the peak (VmHWM) to the current resident size
        before = harness.peak_rss_kb(self.server.pid)
        parts = self.retrieve("/dicom-web/studies/%s" % study, ANY_ACCEPT, framing="length")
        growth_mb = (harness.peak_rss_kb(self.server.pid) - before) / 1024
        print("\n[e2e] WADO-RS of 2 x %d MB: peak resident memory grew by %.1f MB"
              % (size // 1000000, growth_mb), file=sys.stderr)
        self.assertEqual(sorted(p["sop"] for p in parts), sorted(f[1] for f in files))
        for p in parts:
            src = [f for f in files if f[1] == p["sop"]][0]
            self.assertTrue(dicomgen.dataset_bytes(p["bytes"]) == dicomgen.dataset_bytes(src[0]),
                            "part %s is not the instance sent" % p["sop"])
        self.assertLess(growth_mb, 40, "the server's memory grew by %.0f MB for a 120 MB answer" % growth_mb)

        # A Range is not served (each answer has a boundary of its own: ranges of two answers
        # would not fit together): the whole answer goes, with 200, whether the range lies
        # inside it or past its end.
        path = "/dicom-web/studies/%s" % study
        for rng in ("bytes=30000000-30099999", "bytes=%d-%d" % (10 ** 9, 10 ** 9 + 10)):
            with self.subTest(rng):
                status, hdrs, whole = self.wado(path, ANY_ACCEPT, headers={"Range": rng})
                self.assertEqual(status, 200, whole[:300])
                self.assertIsNone(hdrs.get("Content-Range"))
                got = self.answer_parts(status, hdrs, whole, "GET %s (Range: %s)" % (path, rng), "chunked")
                self.assertEqual(sorted(p["sop"] for p in got), sorted(f[1] for f in files))

    # ================================================================== 6. our own client

    def test_20_our_dicomweb_client_retrieves_from_our_server(self):
        b = self.start_server()
        node = {"name": "pb-a", "type": "dicomweb", "url": self.server.url + "/dicom-web/",
                "queryable": True, "storable": False,
                "auth": {"type": "basic", "username": READER, "password": READER_PASSWORD}}
        status, answer = b.api("POST", "/api/nodes", node)
        self.assertEqual(status, 201, answer)
        studies = [self.study("MIX"), self.study("JPG")]
        request = {"node": "pb-a", "level": "STUDY", "uids": [s["uid"] for s in studies]}
        status, answer = b.api("POST", "/api/retrieve", request)
        self.assertEqual(status, 202, "POST /api/retrieve %r -> %s %r" % (request, status, answer))
        job = self.wait_job(str(answer["job_id"]), timeout=60, server=b)
        dump = json.dumps(job, indent=1)
        self.assertEqual(job.get("state"), "succeeded", dump)
        for s in studies:
            expected = self.instances_of(s["key"])
            self.assertEqual(sorted(harness.archive_sops(b, s["uid"])),
                             sorted(i["sop"] for i in expected), "B's archive, study %s" % s["key"])
            for inst in expected:
                status, _, payload = b.raw("GET", "/api/instances/%s/file" % inst["sop"])
                self.assertEqual(status, 200, inst["sop"])
                meta, _ = dicomgen.read_meta(payload)
                self.assertEqual(meta.get("TransferSyntaxUID"), inst["syntax"], inst["sop"])
                self.assertTrue(dicomgen.dataset_bytes(payload)
                                == dicomgen.dataset_bytes(str(inst["path"])),
                                "B's %s (%s): data set not byte-identical to the source"
                                % (inst["sop"], inst["syntax"]))

    # ================================================================== 7. Orthanc's client

    def test_30_orthanc_dicomweb_plugin_retrieves_from_our_server(self):
        orth = harness.Orthanc(self.mkdtemp("orthanc"), dicomweb=True, extra={
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/",
                         "Servers": {"pb": [self.server.url + "/dicom-web/", READER,
                                            READER_PASSWORD]}}})
        self._peers.append(orth)
        self.addCleanup(orth.stop)
        orth.start()
        mix = self.study("MIX")
        status, _, body = orth.rest("POST", "/dicom-web/servers/pb/retrieve",
                                    {"Resources": [{"Study": mix["uid"]}]}, timeout=60)
        self.assertEqual(status, 200, "Orthanc retrieve -> %s %r" % (status, body[:500]))
        expected = self.instances_of("MIX")
        ids = {}
        for inst in expected:
            status, found = orth.rest_json("POST", "/tools/lookup", inst["sop"])
            self.assertEqual(status, 200, found)
            ids[inst["sop"]] = [f["ID"] for f in found if f.get("Type") == "Instance"]
        self.assertEqual({s: len(v) for s, v in ids.items()}, {i["sop"]: 1 for i in expected},
                         "Orthanc should hold each instance of the study once (answer: %r)"
                         % body[:500])
        status, study_ids = orth.rest_json("GET", "/instances")
        self.assertEqual(len(study_ids), len(expected), study_ids)
        # An Explicit instance: whatever syntax Orthanc asked for, it comes unchanged.
        inst = self.instances_of("MIX", 0)[1]
        status, _, payload = orth.rest("GET", "/instances/%s/file" % ids[inst["sop"]][0])
        self.assertEqual(status, 200)
        self.assertTrue(dicomgen.dataset_bytes(payload) == dicomgen.dataset_bytes(str(inst["path"])),
                        "Orthanc's copy of %s: data set not byte-identical" % inst["sop"])
        # The Implicit ones: as stored, or converted with every value kept.
        for inst in self.instances_of("MIX", 1):
            status, _, payload = orth.rest("GET", "/instances/%s/file" % ids[inst["sop"]][0])
            self.assertEqual(status, 200)
            ts = dicomgen.read_meta(payload)[0]["TransferSyntaxUID"]
            part = {"ts": ts, "meta": dicomgen.read_meta(payload)[0], "bytes": payload}
            if ts == IMPLICIT:
                self.assertAsStored(part, inst, "Orthanc")
            else:
                self.assertConverted(part, inst, EXPLICIT, "Orthanc")


if __name__ == "__main__":
    unittest.main()
