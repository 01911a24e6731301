"""DICOMweb nodes against a real Orthanc 1.10.1 with its DICOMweb plugin (Debian
orthanc-dicomweb 1.7): test connection, QIDO-RS find at every level (Latin-1 and ISO 2022
Japanese names, paging), WADO-RS retrieve byte-identical (Explicit, Implicit, JPEG lossless)
or into an anonymizing project (never on disk as sent), STOW-RS send byte-identical
(multipart in batches; single part through a peer that accepts it, refused by Orthanc
itself), HTTPS through a TLS-terminating forwarder whose CA we are told about only later.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_dicomweb.py

Every Orthanc here has basic authentication on (user alice) and the plugin at /dicom-web/.
Data reaches Orthanc through its REST API (POST /instances), which stores the uploaded file
as it is; the expected values are what was loaded and what Orthanc's REST API gives back.

Facts about Orthanc 1.10.1 + DICOMweb plugin 1.7 this file relies on (measured with curl,
and re-checked by the `test_orthanc_*` premises below so that a changed peer says so):
  - 401 answers carry `WWW-Authenticate: Basic realm="Orthanc Secure Area"`; an unknown path
    (also /dicom-web/wrong/studies) is 404 with a JSON body "Unknown resource"; an empty
    Orthanc answers QIDO /studies with 200 `[]`.
  - WADO-RS with `Accept: multipart/related; type="application/dicom"; transfer-syntax=*`
    returns each instance's stored file byte for byte (meta header included); without
    `transfer-syntax=*` it transcodes everything to Explicit VR Little Endian (JPEG too).
  - STOW-RS stores each multipart part byte for byte; a single-part `application/dicom` body
    is refused with 415 (JSON Message "Unsupported media type"; Orthanc's log adds "The
    STOW-RS server expects a multipart body in its request").
  - QIDO JSON is UTF-8 built from Orthanc's DefaultEncoding: with Latin1 (the default) an
    ISO 2022 IR 87 name comes back as {"Alphabetic": "Yamada^Tarou", "Ideographic": "^",
    "Phonetic": "^"}; with Utf8 the ideographic and phonetic groups survive. IS values
    (NumberOfStudyRelatedInstances, SeriesNumber, ...) come as JSON numbers.
  - QIDO query values are not percent-decoded: `PatientName=DOE*` and `DOE^JOHN` match,
    `DOE%2A`, `DOE%5EJOHN` and `PatientID=DOE%31` match nothing; a raw non-ASCII byte in the
    query is 400 Bad Request. So a non-ASCII name ("Müller*") cannot be queried by name at
    all (UTF-8 or Latin-1 percent-encoded, with or without fuzzymatching), although
    /tools/find finds it: such patients are queried here by PatientID.
"""

import json
import math
import os
import re
import sys
import threading
import time
import unittest
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import web_peer  # noqa: E402
from harness import dicomgen  # noqa: E402

USER, PASSWORD = "alice", "wonderland-7"
USERS = {USER: PASSWORD}
ORTHANC_REALM = "Orthanc Secure Area"
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
JP_NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"  # PS3.5 Example H.3-1
LATIN1_NAME = "Müller^Jürgen"
WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
# Markers of the study retrieved into an anonymizing project: nowhere in our data directory.
ANON_PATIENT = {"patient_name": "Webhiddenname^X", "patient_id": "WEBANONPID7"}
ANON_MARKERS = [b"Webhiddenname", b"WEBANONPID7"]


# --------------------------------------------------------------------------- helpers

def start_dicomweb_orthanc(cls, name, **extra):
    """An Orthanc with the DICOMweb plugin and basic auth, stopped with the class."""
    orth = harness.Orthanc(cls.tmp / name, dicomweb=True, users=USERS, extra=extra or None)
    cls._peers.append(orth)
    cls.addClassCleanup(orth.stop)
    orth.start()
    return orth


def web_node(name, url, **extra):
    body = {"name": name, "type": "dicomweb", "url": url, "queryable": True,
            "storable": True,
            "auth": {"type": "basic", "username": USER, "password": PASSWORD}}
    body.update(extra)
    return body


def add_node(server, body):
    status, answer = server.api("POST", "/api/nodes", body)
    if status != 201:
        raise AssertionError("POST /api/nodes %r -> %s %r" % (body, status, answer))
    return answer


def upload_all(orthanc, files):
    """Upload (path, sop, study, series) tuples; {SOP Instance UID: Orthanc instance ID}."""
    return {sop: orthanc.upload(path)["ID"] for path, sop, _, _ in files}


def jpeg_copy(src, dst):
    """A JPEG lossless (process 14, SV1) copy of src with the same UIDs (DCMTK dcmcjpeg)."""
    cp = harness.run_tool(["dcmcjpeg", "+e1", src, dst])
    if cp.returncode != 0:
        raise AssertionError("dcmcjpeg failed:\n" + harness.proc_output(cp))
    meta, _ = dicomgen.read_meta(str(dst))
    assert meta["TransferSyntaxUID"] == JPEG_LOSSLESS_SV1, meta
    return str(dst)


def series_of(outdir, study_uid, series_uid, count, *, first, syntax="explicit",
              series_number=1, size=12000, **kw):
    """count CT instances of one series: [(path, sop, study, series)]."""
    uid = dicomgen.make_uids()
    os.makedirs(str(outdir), exist_ok=True)
    out = []
    for i in range(count):
        sop = uid("instance", first + i)
        path = os.path.join(str(outdir), "%s-%d.dcm" % (syntax, first + i))
        dicomgen.write_instance(path, sop_uid=sop, study_uid=study_uid, series_uid=series_uid,
                                syntax=syntax, modality="CT", size=size,
                                instance_number=i + 1, series_number=series_number, **kw)
        out.append((path, sop, study_uid, series_uid))
    return out


def multipart_parts(content_type, body):
    """The parts of a multipart body: [(headers text, payload bytes)] (RFC 2046)."""
    m = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type)
    if not m:
        raise AssertionError("no boundary in Content-Type %r" % content_type)
    delim = b"--" + (m.group(1) or m.group(2)).encode("ascii")
    parts = []
    chunks = body.split(b"\r\n" + delim)
    first = chunks[0]
    if first.startswith(delim):
        chunks[0] = first[len(delim):]
    for chunk in chunks:
        if chunk.startswith(b"--"):
            break
        head, _, payload = chunk.partition(b"\r\n\r\n")
        parts.append((head.decode("latin-1").strip(), payload))
    return parts


def outcome(job, key):
    """A field of a finished job's result (job["result"][key], else job[key])."""
    result = job.get("result")
    if isinstance(result, dict) and key in result:
        return result[key]
    return job.get(key)


def http_status(code):
    """A pattern for an HTTP status code standing alone: not part of a port, a UID or a
    longer number (messages carry URLs and UIDs with random digits)."""
    return r"(?<![\d.:])%d(?![\d.])" % code


def checks_text(answer):
    return json.dumps(answer.get("checks"), ensure_ascii=False)


class DicomWebCase(harness.E2ETestCase, harness.JobHelpers):
    """Shared calls of the scenarios: self.server is the class's pacsbridge."""

    def echo(self, node, server=None):
        server = server or self.server
        status, answer = server.api("POST", "/api/nodes/%s/echo" % node, timeout=60)
        self.assertEqual(status, 200, answer)
        self.assertIsInstance(answer.get("ok"), bool, answer)
        self.assertIsInstance(answer.get("message"), str, answer)
        self.assertIsInstance(answer.get("checks"), list, answer)
        return answer

    def assertEchoFailed(self, answer, *patterns):
        self.assertFalse(answer["ok"], answer)
        self.assertTrue(answer["message"].startswith("Connection failed: "), answer)
        for p in patterns:
            self.assertMatchesCI(p, answer["message"],
                                 "%r not in the message: %r" % (p, answer))

    def find(self, node, level, query, expect_truncated=False):
        status, body = self.server.api("POST", "/api/nodes/%s/find" % node,
                                       {"level": level, "query": query}, timeout=60)
        self.assertEqual(status, 200, "find %s %r on %s -> %s %r"
                         % (level, query, node, status, body))
        self.assertIsInstance(body.get("results"), list, body)
        self.assertEqual(body.get("truncated"), expect_truncated, body)
        for r in body["results"]:
            for k, v in r.items():
                self.assertIsInstance(v, str, "%s of %r is not a string" % (k, r))
        return body["results"]

    def archive_sops(self, study_uid):
        return harness.archive_sops(self.server, study_uid)

    def our_file(self, sop):
        status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % sop)
        self.assertEqual(status, 200, "GET /api/instances/%s/file -> %s" % (sop, status))
        return payload

    def orthanc_file(self, orthanc, orthanc_id):
        status, _, payload = orthanc.rest("GET", "/instances/%s/file" % orthanc_id)
        self.assertEqual(status, 200, "Orthanc GET /instances/%s/file -> %s"
                         % (orthanc_id, status))
        return payload

    def assertSameFiles(self, pairs):
        """pairs: [(label, ours bytes, Orthanc's bytes)]; every difference is listed."""
        problems = []
        for label, ours, theirs in pairs:
            if ours == theirs:
                continue
            try:
                om, ot = dicomgen.read_meta(ours)[0], dicomgen.read_meta(theirs)[0]
                same_ds = dicomgen.dataset_bytes(ours) == dicomgen.dataset_bytes(theirs)
                detail = ("transfer syntax ours %s / Orthanc %s; datasets %s; metas differ in %s"
                          % (om.get("TransferSyntaxUID"), ot.get("TransferSyntaxUID"),
                             "identical" if same_ds else "differ",
                             sorted(k for k in set(om) | set(ot) if om.get(k) != ot.get(k))))
            except ValueError as e:
                detail = "not both Part 10 files: %s" % e
            problems.append("%s: %d vs %d bytes; %s" % (label, len(ours), len(theirs), detail))
        self.assertEqual(problems, [], "%d of %d files not byte-identical:\n  %s"
                         % (len(problems), len(pairs), "\n  ".join(problems)))


# --------------------------------------------------------------------------- test connection

class DicomWebEchoTests(DicomWebCase):
    """Test connection against an empty Orthanc: established (with a note that it holds no
    studies), a wrong password (401, basic, the realm), a wrong path (404)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = start_dicomweb_orthanc(cls, "orthanc-empty")
        cls.server = cls.start_class_server()
        add_node(cls.server, web_node("web", cls.orthanc.dicomweb_url))
        add_node(cls.server, web_node("web-badpw", cls.orthanc.dicomweb_url,
                                      auth={"type": "basic", "username": USER,
                                            "password": "not-" + PASSWORD}))
        add_node(cls.server, web_node("web-badpath", cls.orthanc.url + "/wrong/"))

    def test_orthanc_premises(self):
        status, hdrs, body = harness.http_request("GET", self.orthanc.dicomweb_url + "studies")
        self.assertEqual(status, 401)
        self.assertEqual(hdrs.get("WWW-Authenticate"), 'Basic realm="%s"' % ORTHANC_REALM)
        status, _, body = self.orthanc.rest("GET", "/dicom-web/studies")
        self.assertEqual((status, json.loads(body)), (200, []))
        status, _, body = self.orthanc.rest("GET", "/wrong/studies")
        self.assertEqual(status, 404, body)

    def test_right_password_on_an_empty_archive_is_established_with_a_note(self):
        answer = self.echo("web")
        self.assertTrue(answer["ok"], answer)
        self.assertEqual(answer["message"], "Connection established", answer)
        self.assertMatchesCI(r"no stud", checks_text(answer),
                             "no check says the archive holds no studies: %r" % answer)

    def test_wrong_password_names_401_basic_and_the_realm(self):
        answer = self.echo("web-badpw")
        self.assertEchoFailed(answer, http_status(401), r"basic", re.escape(ORTHANC_REALM))
        self.assertNotIn(PASSWORD, json.dumps(answer))

    def test_wrong_path_names_404_and_the_dicomweb_root(self):
        answer = self.echo("web-badpath")
        self.assertEchoFailed(answer, http_status(404), r"DICOM-?web root")


# --------------------------------------------------------------------------- QIDO-RS

class DicomWebQueryTests(DicomWebCase):
    """QIDO-RS find at STUDY, SERIES, IMAGE and PATIENT level, names in Latin-1 and ISO 2022
    Japanese, paging by the node's max_results, and HTTPS with a CA given later.

    Orthanc runs with DefaultEncoding Utf8 (a multilingual site's setting; with Latin1 its
    QIDO loses the ideographic and phonetic groups of the Japanese name)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = start_dicomweb_orthanc(cls, "orthanc-qido", DefaultEncoding="Utf8")
        data = cls.tmp / "data"
        gen = dicomgen.generate
        # DOE1: 2 studies x 3 series x 2 instances.
        cls.doe = gen(str(data / "doe"), 12, studies=2, series_per_study=3, modality="CT",
                      patient_name="DOE^JOHN", patient_id="DOE1")
        cls.latin1 = gen(str(data / "latin1"), 2, patient_name=LATIN1_NAME, patient_id="MUL1",
                         charset="ISO_IR 100", modality="CT")
        cls.japanese = gen(str(data / "jp"), 1, patient_name=JP_NAME, patient_id="YAMJ",
                           charset="\\ISO 2022 IR 87", modality="CT")
        cls.paging = gen(str(data / "paging"), 12, studies=12, patient_name="PAGE^TWELVE",
                         patient_id="PAGE12")
        upload_all(cls.orthanc, cls.doe + cls.latin1 + cls.japanese + cls.paging)
        cls.server = cls.start_class_server()
        url = cls.orthanc.dicomweb_url
        add_node(cls.server, web_node("web", url))
        add_node(cls.server, web_node("web-5", url, max_results=5))
        add_node(cls.server, web_node("web-20", url, max_results=20))

    def test_orthanc_premises(self):
        """What Orthanc's QIDO answers for the two non-ASCII names (UTF-8 JSON)."""
        for pid, alphabetic in (("MUL1", {"Alphabetic": LATIN1_NAME}),
                                ("YAMJ", {"Alphabetic": "Yamada^Tarou",
                                          "Ideographic": "山田^太郎",
                                          "Phonetic": "やまだ^たろう"})):
            status, hdrs, body = self.orthanc.rest(
                "GET", "/dicom-web/studies?PatientID=%s&includefield=00100010" % pid)
            self.assertEqual(status, 200, body)
            answers = json.loads(body.decode("utf-8"))
            self.assertEqual([a["00100010"]["Value"] for a in answers], [[alphabetic]])

    def test_echo_on_a_loaded_archive_has_no_empty_note(self):
        answer = self.echo("web")
        self.assertTrue(answer["ok"], answer)
        self.assertEqual(answer["message"], "Connection established", answer)
        self.assertNotRegex(checks_text(answer).lower(), r"no stud")

    def test_study_level(self):
        results = self.find("web", "STUDY", {"PatientID": "DOE1"})
        self.assertEqual(sorted(r["StudyInstanceUID"] for r in results),
                         sorted({f[2] for f in self.doe}))
        for r in results:
            self.assertEqual(r.get("PatientName"), "DOE^JOHN", r)
            self.assertEqual(r.get("PatientID"), "DOE1", r)
            self.assertEqual(r.get("NumberOfStudyRelatedInstances"), "6", r)
            self.assertEqual(r.get("ModalitiesInStudy"), "CT", r)
            self.assertEqual(r.get("StudyDate"), "20240115", r)

    def test_orthanc_premise_qido_values_are_not_percent_decoded(self):
        """Orthanc 1.10.1 + plugin 1.7 match QIDO values as written in the URL: `*` and `^`
        work only literally (a raw non-ASCII byte is 400 Bad Request)."""
        def patient_ids(query):
            status, _, body = self.orthanc.rest("GET", "/dicom-web/studies?" + query)
            self.assertEqual(status, 200, body)
            return sorted({a["00100020"]["Value"][0] for a in json.loads(body)})
        self.assertEqual(patient_ids("PatientName=DOE*"), ["DOE1"])
        self.assertEqual(patient_ids("PatientName=DOE^JOHN"), ["DOE1"])
        self.assertEqual(patient_ids("PatientName=DOE%2A"), [])
        self.assertEqual(patient_ids("PatientName=DOE%5EJOHN"), [])
        self.assertEqual(patient_ids("PatientID=DOE%31"), [])

    def test_names_with_wildcards_and_component_separators(self):
        doe_studies = sorted({f[2] for f in self.doe})
        hint = (" (Orthanc's QIDO does not percent-decode values: `*` and `^` must be sent "
                "as they are, see test_orthanc_premise_qido_values_are_not_percent_decoded)")
        for level, query, key, expected in (
                ("STUDY", {"PatientName": "DOE*"}, "StudyInstanceUID", doe_studies),
                ("STUDY", {"PatientName": "DOE^JOHN"}, "StudyInstanceUID", doe_studies),
                ("STUDY", {"PatientName": "Yamada*"}, "PatientID", ["YAMJ"]),
                ("PATIENT", {"PatientName": "DOE*"}, "PatientID", ["DOE1"])):
            with self.subTest(level=level, query=query):
                results = self.find("web", level, query)
                self.assertEqual(sorted(r.get(key) for r in results), expected,
                                 "%s %r%s" % (level, query, hint))

    def test_series_level(self):
        study = self.doe[0][2]
        results = self.find("web", "SERIES", {"StudyInstanceUID": study})
        expected = sorted({f[3] for f in self.doe if f[2] == study})
        self.assertEqual(len(expected), 3)
        self.assertEqual(sorted(r["SeriesInstanceUID"] for r in results), expected)
        self.assertEqual(sorted(r.get("SeriesNumber") for r in results), ["1", "2", "3"])
        for r in results:
            self.assertEqual(r.get("Modality"), "CT", r)

    def test_image_level(self):
        study, series = self.doe[0][2], self.doe[0][3]
        results = self.find("web", "IMAGE", {"StudyInstanceUID": study,
                                             "SeriesInstanceUID": series})
        expected = sorted(f[1] for f in self.doe if f[3] == series)
        self.assertEqual(len(expected), 2)
        self.assertEqual(sorted(r["SOPInstanceUID"] for r in results), expected)
        self.assertEqual(sorted(r.get("InstanceNumber") for r in results), ["1", "2"])
        for r in results:
            self.assertEqual(r.get("SOPClassUID"), CT_IMAGE_STORAGE, r)

    def test_patient_level_groups_the_studies(self):
        results = self.find("web", "PATIENT", {"PatientID": "DOE1"})
        self.assertEqual([r.get("PatientID") for r in results], ["DOE1"], results)
        self.assertEqual(results[0].get("PatientName"), "DOE^JOHN")
        self.assertEqual(results[0].get("NumberOfPatientRelatedStudies"), "2", results)
        results = self.find("web", "PATIENT", {"PatientID": "MUL1"})
        self.assertEqual([r.get("PatientName") for r in results], [LATIN1_NAME], results)

    def test_latin1_name(self):
        results = self.find("web", "STUDY", {"PatientID": "MUL1"})
        self.assertEqual([r.get("PatientName") for r in results], [LATIN1_NAME])
        self.assertEqual([r["StudyInstanceUID"] for r in results], [self.latin1[0][2]])

    def test_japanese_name_gives_its_alphabetic_form(self):
        results = self.find("web", "STUDY", {"PatientID": "YAMJ"})
        self.assertEqual([r.get("PatientName") for r in results], ["Yamada^Tarou"])
        self.assertEqual([r["StudyInstanceUID"] for r in results], [self.japanese[0][2]])

    def test_max_results_truncates(self):
        expected = {f[2] for f in self.paging}
        results = self.find("web-5", "STUDY", {"PatientID": "PAGE12"}, expect_truncated=True)
        uids = [r["StudyInstanceUID"] for r in results]
        self.assertEqual(len(uids), 5, uids)
        self.assertEqual(len(set(uids)), 5, uids)
        self.assertTrue(set(uids) <= expected, set(uids) - expected)
        results = self.find("web-20", "STUDY", {"PatientID": "PAGE12"})
        self.assertEqual(sorted(r["StudyInstanceUID"] for r in results), sorted(expected))

    def test_https_with_an_unknown_ca_then_with_its_ca_file(self):
        certs = self.mkdtemp("certs")
        ca = harness.make_ca(certs)
        leaf_key, leaf_cert = harness.make_signed_cert(certs, "orthanc-https", ca)
        fwd = harness.Forwarder(self.orthanc.http_port, tls=(leaf_cert, leaf_key))
        self.addCleanup(fwd.close)
        url = "https://127.0.0.1:%d/dicom-web/" % fwd.port
        # The forwarder really serves Orthanc over TLS (curl with the CA).
        cp = harness.run_tool(["curl", "-sS", "--cacert", ca[1], "-u", USER + ":" + PASSWORD,
                               "-o", "/dev/null", "-w", "%{http_code}", url + "studies"])
        self.assertEqual(cp.stdout, "200", harness.proc_output(cp))

        body = web_node("web-tls", url)
        add_node(self.server, body)
        handshakes_failed = len(fwd.handshake_errors)
        answer = self.echo("web-tls")
        self.assertEchoFailed(answer, r"certificate", r"not trusted", re.escape("tls.ca_file"))
        self.assertTrue(harness.wait_until(
            lambda: len(fwd.handshake_errors) > handshakes_failed, 5),
            "the forwarder saw no failed TLS handshake")

        status, node = self.server.api("PUT", "/api/nodes/web-tls",
                                       dict(body, tls={"ca_file": str(ca[1])}))
        self.assertEqual(status, 200, node)
        answer = self.echo("web-tls")
        self.assertTrue(answer["ok"], answer)
        self.assertEqual(answer["message"], "Connection established", answer)
        results = self.find("web-tls", "STUDY", {"PatientID": "DOE1"})
        self.assertEqual(sorted(r["StudyInstanceUID"] for r in results),
                         sorted({f[2] for f in self.doe}))


# --------------------------------------------------------------------------- WADO-RS

class DicomWebRetrieveTests(DicomWebCase):
    """WADO-RS retrieve jobs: a study with Explicit, Implicit and JPEG lossless instances, one
    series of a study, two instances of a series; our stored files must be Orthanc's stored
    files byte for byte (Orthanc sends them unchanged with transfer-syntax=*). A study
    retrieved into a project with its own anonymization options is anonymized, and its
    original values are never on disk, watched while it trickles in through a throttling
    proxy (node web-slow)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = start_dicomweb_orthanc(cls, "orthanc-wado")
        data = cls.tmp / "data"
        uid = dicomgen.make_uids()
        mix = uid("study", 1)
        cls.mix = (series_of(data / "mix", mix, uid("series", 1, 1), 2, first=100,
                             series_number=1, patient_id="WADOMIX")
                   + series_of(data / "mix", mix, uid("series", 1, 2), 2, first=200,
                               syntax="implicit", series_number=2, patient_id="WADOMIX"))
        jsrc = series_of(data / "mix-src", mix, uid("series", 1, 3), 2, first=300,
                         series_number=3, patient_id="WADOMIX")
        cls.mix += [(jpeg_copy(p, p + ".jpeg.dcm"), sop, st, se) for p, sop, st, se in jsrc]
        two = uid("study", 2)
        cls.two_series = (series_of(data / "two", two, uid("series", 2, 1), 3, first=400,
                                    series_number=1, patient_id="WADOSER")
                          + series_of(data / "two", two, uid("series", 2, 2), 3, first=500,
                                      series_number=2, patient_id="WADOSER"))
        cls.one_series = series_of(data / "one", uid("study", 3), uid("series", 3, 1), 4,
                                   first=600, patient_id="WADOIMG")
        # 1 MB each: larger than the 256 KB a temp file is buffered by, so a part spooled
        # to disk as received would show its header there while the rest trickles in.
        anon = uid("study", 4)
        cls.anon = (series_of(data / "anon", anon, uid("series", 4, 1), 2, first=700,
                              series_number=1, size=1_000_000, **ANON_PATIENT)
                    + series_of(data / "anon", anon, uid("series", 4, 2), 1, first=800,
                                syntax="implicit", series_number=2, size=1_000_000,
                                **ANON_PATIENT))
        cls.ids = upload_all(cls.orthanc,
                             cls.mix + cls.two_series + cls.one_series + cls.anon)
        cls.server = cls.start_class_server()
        add_node(cls.server, web_node("web", cls.orthanc.dicomweb_url))
        # The same Orthanc at 1.5 MB/s, so the data directory can be watched mid-transfer.
        cls.slow = harness.ThrottledProxy(cls.orthanc.http_port, rate=1_500_000)
        cls.addClassCleanup(cls.slow.close)
        add_node(cls.server, web_node("web-slow",
                                      "http://127.0.0.1:%d/dicom-web/" % cls.slow.port))

    def test_orthanc_premise_wado_rs_sends_stored_files_unchanged(self):
        study = self.mix[0][2]
        status, hdrs, body = self.orthanc.rest("GET", "/dicom-web/studies/" + study,
                                               headers={"Accept": WADO_ACCEPT}, timeout=60)
        self.assertEqual(status, 200, body[:500])
        parts = multipart_parts(hdrs.get("Content-Type"), body)
        got = {dicomgen.read_meta(p)[0]["MediaStorageSOPInstanceUID"]: p for _, p in parts}
        self.assertEqual(sorted(got), sorted(f[1] for f in self.mix))
        self.assertEqual(
            sorted(dicomgen.read_meta(p)[0]["TransferSyntaxUID"] for p in got.values()),
            sorted([harness.EXPLICIT_VR_LE] * 2 + [harness.IMPLICIT_VR_LE] * 2
                   + [JPEG_LOSSLESS_SV1] * 2))
        self.assertSameFiles([(sop, got[sop], self.orthanc_file(self.orthanc, self.ids[sop]))
                              for sop in got])

    def retrieve(self, level, uids, expected, **extra):
        """Run a retrieve job; check its outcome, the archive's content and the bytes."""
        body = {"node": "web", "level": level, "uids": list(uids)}
        body.update(extra)
        status, answer = self.server.api("POST", "/api/retrieve", body)
        self.assertEqual(status, 202, "POST /api/retrieve %r -> %s %r" % (body, status, answer))
        job = self.wait_job(str(answer["job_id"]), timeout=90)
        dump = json.dumps(job, indent=1)
        self.assertEqual(job.get("state"), "succeeded", dump)
        self.assertEqual(outcome(job, "method_used"), "wado-rs", dump)
        missing = outcome(job, "missing_count")
        if missing is None and isinstance(job.get("missing"), list):
            missing = len(job["missing"])
        self.assertEqual(missing, 0, dump)
        self.assertEqual((job.get("progress") or {}).get("completed"), len(expected), dump)
        study = expected[0][2]
        stored = self.archive_sops(study)
        self.assertEqual(sorted(stored), sorted(f[1] for f in expected),
                         "our archive should hold exactly what was asked for")
        self.assertSameFiles([(sop, self.our_file(sop),
                               self.orthanc_file(self.orthanc, self.ids[sop]))
                              for _, sop, _, _ in expected])
        return job

    def test_study_with_explicit_implicit_and_jpeg_is_byte_identical(self):
        self.retrieve("STUDY", [self.mix[0][2]], self.mix)

    def test_one_series_of_a_study(self):
        wanted = [f for f in self.two_series if f[3] == self.two_series[-1][3]]
        self.assertEqual(len(wanted), 3)
        self.retrieve("SERIES", [wanted[0][3]], wanted, study_uid=wanted[0][2])

    def test_two_instances_of_a_series(self):
        wanted = self.one_series[1:3]
        self.retrieve("IMAGE", [f[1] for f in wanted], wanted,
                      study_uid=wanted[0][2], series_uid=wanted[0][3])

    def browse(self, *labels):
        """GET /api/projects[/{p}/subjects[/{s}/sessions[/{e}/series]]] -> list."""
        path = "/api/projects"
        for label, child in zip(labels, ("subjects", "sessions", "series")):
            path += "/%s/%s" % (label, child)
        status, body = self.server.api("GET", path)
        self.assertEqual(status, 200, "GET %s -> %s %r" % (path, status, body))
        self.assertIsInstance(body, list, "GET %s -> %r" % (path, body))
        return body

    def watch_disk(self, needles, action):
        """Run action() while every file under our data directory is searched for needles
        every 20 ms; (action's value, {needle: {paths where it was seen}})."""
        seen, stop = {}, threading.Event()

        def watch():
            while not stop.is_set():
                for n, where in harness.find_bytes([self.server.data_dir], needles).items():
                    seen.setdefault(n, set()).update(where)
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            value = action()
        finally:
            stop.set()
            watcher.join(10)
        return value, seen

    def test_wado_into_an_anonymizing_project_is_anonymized_and_never_on_disk_as_sent(self):
        # WADO-RS parts for a project with its own anonymization options stay in memory and
        # go through the anonymizing path: the data directory never sees them as received,
        # neither while the study trickles in (watched) nor after.
        files = self.anon
        study = files[0][2]
        originals = {u for f in files for u in f[1:]}
        for path, _, _, _ in files:
            data = Path(path).read_bytes()
            self.assertTrue(all(m in data for m in ANON_MARKERS),
                            "%s does not carry the markers %r" % (path, ANON_MARKERS))
        self.assertEqual(harness.find_bytes([self.server.data_dir], ANON_MARKERS), {},
                         "markers in our data directory before the retrieve")
        status, body = self.server.api("PUT", "/api/projects/Web_Anon/anonymization",
                                       {"retain_dates": True})
        self.assertEqual(status, 200, body)
        self.addCleanup(self.server.api, "DELETE", "/api/projects/Web_Anon/anonymization")

        def anonymized_retrieve():
            request = {"node": "web-slow", "level": "STUDY", "uids": [study],
                       "project": "Web_Anon"}
            status, answer = self.server.api("POST", "/api/retrieve", request)
            self.assertEqual(status, 202, "POST /api/retrieve %r -> %s %r"
                             % (request, status, answer))
            return self.wait_job(str(answer["job_id"]), timeout=90)

        t0 = time.monotonic()
        job, seen = self.watch_disk(ANON_MARKERS, anonymized_retrieve)
        elapsed = time.monotonic() - t0
        dump = json.dumps(job, indent=1)
        self.assertEqual(job.get("state"), "succeeded", dump)
        self.assertEqual(outcome(job, "method_used"), "wado-rs", dump)
        self.assertEqual((job.get("progress") or {}).get("completed"), len(files), dump)
        self.assertGreater(elapsed, 1.0, "the transfer was not slow enough to watch")
        self.assertEqual(seen, {}, "original values on disk during the transfer")

        self.assertNotIn(study, harness.studies_by_uid(self.server),
                         "the original StudyInstanceUID is in the archive")
        subjects = [s["name"] for s in self.browse("Web_Anon")]
        self.assertEqual(len(subjects), 1, repr(subjects))
        # Patient Name would have been the subject: a pseudonym instead.
        self.assertTrue(subjects[0].startswith("SUBJ_"), repr(subjects))
        stored = []
        for e in self.browse("Web_Anon", subjects[0]):
            for row in self.browse("Web_Anon", subjects[0], e["name"]):
                status, inst = self.server.api("GET", "/api/series/%s/instances"
                                               % row["SeriesInstanceUID"])
                self.assertEqual(status, 200, inst)
                stored += [i.get("SOPInstanceUID") for i in inst]
        self.assertEqual(len(stored), len(files), repr(stored))
        self.assertEqual(len(set(stored)), len(files), repr(stored))
        for sop in stored:
            self.assertNotIn(sop, originals, "an original UID kept as SOP Instance UID")
            payload = self.our_file(sop)
            for m in ANON_MARKERS:
                self.assertNotIn(m, payload, "%r in the stored file of %s" % (m, sop))
        leaks = harness.find_bytes([self.server.data_dir, self.server.log_path], ANON_MARKERS)
        self.assertEqual(leaks, {}, "original values in our data directory or log: %r" % leaks)

        # The watch can see them: once no project anonymizes, the same study retrieved
        # without a project is kept as sent (byte-identical), spooled to a temp file as it
        # arrives, where the watch must catch both markers before the file is archived.
        # (While any project has its own options, a retrieve without one comes in memory too,
        # as the rules could file it there, and is stored with our own meta header.)
        status, body = self.server.api("DELETE", "/api/projects/Web_Anon/anonymization")
        self.assertEqual(status, 204, body)
        _, seen = self.watch_disk(
            ANON_MARKERS, lambda: self.retrieve("STUDY", [study], files, node="web-slow"))
        tmp = str(self.server.tmp_dir) + os.sep
        spooled = {n: sorted(p for p in where if p.startswith(tmp)) for n, where in seen.items()}
        self.assertEqual(sorted(n for n, where in spooled.items() if where),
                         sorted(ANON_MARKERS),
                         "a retrieve kept as sent should show both markers in a temp file "
                         "mid-transfer: seen %r" % seen)
        kept = harness.find_bytes([self.server.data_dir], ANON_MARKERS)
        self.assertEqual(sorted(kept), sorted(ANON_MARKERS),
                         "a retrieve kept as sent should leave both markers on disk: %r" % kept)


# --------------------------------------------------------------------------- STOW-RS

STOW_REQUEST_LINE = re.compile(rb"POST /dicom-web/studies[^ \r\n]* HTTP/1\.[01]\r\n")


class DicomWebSendTests(DicomWebCase):
    """STOW-RS send jobs from our archive (loaded with storescu into our receiver) to an
    empty Orthanc: multipart in batches of 2 (5 instances: 3 requests, counted by a
    recording forwarder), byte-identical in Orthanc; single part (one `application/dicom`
    instance per request) straight to Orthanc, whose plugin refuses it (415: every instance
    failed with that reason), and through the programmable peer playing an archive that
    accepts it (web_peer's accept_single_part: re-wrapped as one part for Orthanc), where
    each request's body is the archived file and Orthanc ends up with the same bytes."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = start_dicomweb_orthanc(cls, "orthanc-stow")
        cls.recorder = harness.Forwarder(cls.orthanc.http_port, record=True)
        cls.addClassCleanup(cls.recorder.close)
        cls.single_part_archive = web_peer.WebPeer(cls.orthanc.url, accept_single_part=True,
                                                   upstream_auth=(USER, PASSWORD))
        cls.addClassCleanup(cls.single_part_archive.close)
        data = cls.tmp / "data"
        uid = dicomgen.make_uids()
        batched = uid("study", 1)
        cls.batched = (series_of(data / "batched", batched, uid("series", 1, 1), 3, first=100,
                                 series_number=1, patient_id="STOWB")
                       + series_of(data / "batched", batched, uid("series", 1, 2), 2,
                                   first=200, syntax="implicit", series_number=2,
                                   patient_id="STOWB"))
        cls.single = series_of(data / "single", uid("study", 2), uid("series", 2, 1), 2,
                               first=300, patient_id="STOWS")
        accepted = uid("study", 3)
        cls.single_accepted = (series_of(data / "single-ok", accepted, uid("series", 3, 1), 2,
                                         first=400, series_number=1, patient_id="STOWSOK")
                               + series_of(data / "single-ok", accepted, uid("series", 3, 2),
                                           1, first=500, syntax="implicit", series_number=2,
                                           patient_id="STOWSOK"))
        cls.server = cls.start_class_server()
        cp = harness.storescu(cls.server.dicom_port, cls.server.dicom_ae,
                              [f[0] for f in cls.batched + cls.single + cls.single_accepted])
        if cp.returncode != 0:
            raise AssertionError("storescu into our receiver failed:\n"
                                 + harness.proc_output(cp))

    def orthanc_id(self, sop):
        """Orthanc's ID of the instance with that SOP Instance UID, or None."""
        status, found = self.orthanc.rest_json("POST", "/tools/lookup", sop)
        self.assertEqual(status, 200, found)
        ids = [f["ID"] for f in found if f.get("Type") == "Instance"]
        return ids[0] if ids else None

    def send(self, node, study):
        status, answer = self.server.api("POST", "/api/send",
                                         {"node": node, "level": "STUDY", "uids": [study]})
        self.assertEqual(status, 202, answer)
        return self.wait_job(str(answer["job_id"]), timeout=90)

    def test_orthanc_premise_stow_rs_stores_the_bytes_it_gets(self):
        uid = dicomgen.make_uids()
        path = str(self.tmp / "premise.dcm")
        dicomgen.write_instance(path, sop_uid=uid("instance", 1), study_uid=uid("study", 1),
                                series_uid=uid("series", 1), syntax="implicit", size=6000)
        sent = Path(path).read_bytes()
        boundary = uuid.uuid4().hex
        body = (b"--%s\r\nContent-Type: application/dicom\r\n\r\n" % boundary.encode()
                + sent + b"\r\n--%s--\r\n" % boundary.encode())
        status, _, answer = self.orthanc.rest(
            "POST", "/dicom-web/studies", body,
            headers={"Content-Type": 'multipart/related; type="application/dicom"; '
                                     'boundary=%s' % boundary,
                     "Accept": "application/dicom+json"})
        self.assertEqual(status, 200, answer)
        self.assertEqual(self.orthanc_file(self.orthanc, self.orthanc_id(uid("instance", 1))),
                         sent)
        status, _, answer = self.orthanc.rest(
            "POST", "/dicom-web/studies", sent, headers={"Content-Type": "application/dicom"})
        self.assertEqual(status, 415, answer)

    def test_multipart_in_batches_is_byte_identical(self):
        add_node(self.server, web_node("web-batched",
                                       "http://127.0.0.1:%d/dicom-web/" % self.recorder.port,
                                       stow_multipart=True, stow_batch_instances=2))
        before = len(STOW_REQUEST_LINE.findall(self.recorder.client_bytes()))
        job = self.send("web-batched", self.batched[0][2])
        dump = json.dumps(job, indent=1)
        self.assertEqual(job.get("state"), "succeeded", dump)
        self.assertEqual((job.get("progress") or {}).get("completed"), len(self.batched), dump)
        requests = len(STOW_REQUEST_LINE.findall(self.recorder.client_bytes())) - before
        self.assertEqual(requests, math.ceil(len(self.batched) / 2),
                         "STOW-RS requests for %d instances in batches of 2"
                         % len(self.batched))
        pairs, absent = [], []
        for _, sop, _, _ in self.batched:
            oid = self.orthanc_id(sop)
            if oid is None:
                absent.append(sop)
                continue
            pairs.append((sop, self.our_file(sop), self.orthanc_file(self.orthanc, oid)))
        self.assertEqual(absent, [], "not in Orthanc after the send")
        self.assertSameFiles(pairs)

    def test_single_part_is_refused_by_orthanc_and_every_instance_says_415(self):
        add_node(self.server, web_node("web-single", self.orthanc.dicomweb_url,
                                       stow_multipart=False))
        job = self.send("web-single", self.single[0][2])
        dump = json.dumps(job, indent=1)
        self.assertEqual(job.get("state"), "failed", dump)
        failed = outcome(job, "failed_instances")
        self.assertIsInstance(failed, list, dump)
        self.assertEqual(sorted(f.get("sop_uid") for f in failed),
                         sorted(sop for _, sop, _, _ in self.single),
                         "every instance should be listed as failed, each once: " + dump)
        for f in failed:
            self.assertRegex(str(f.get("reason")),
                             "(?i)%s|expects a multipart body" % http_status(415),
                             "the reason does not say what Orthanc answered: %s" % dump)
        self.assertEqual([sop for _, sop, _, _ in self.single if self.orthanc_id(sop)], [],
                         "Orthanc should have stored nothing")

    def test_single_part_to_an_archive_that_accepts_it_is_byte_identical(self):
        peer = self.single_part_archive
        files = self.single_accepted
        self.assertEqual([sop for _, sop, _, _ in files if self.orthanc_id(sop)], [],
                         "Orthanc holds the study before the send")
        add_node(self.server, web_node("web-single-ok", peer.url(), stow_multipart=False))
        mark = len(peer.requests())
        job = self.send("web-single-ok", files[0][2])
        stow = [e for e in peer.requests()[mark:] if e["method"] == "POST"]
        dump = json.dumps(job, indent=1) + "\npeer:\n" + "\n".join(
            "%s %s %s %s bytes rewrapped=%s %s" % (
                e["status"], e["path"], e.get("content_type"), e["body_size"],
                e.get("rewrapped"), e.get("sop_uids")) for e in stow)
        self.assertEqual(job.get("state"), "succeeded", dump)
        self.assertEqual((job.get("progress") or {}).get("completed"), len(files), dump)
        self.assertEqual([e["kind"] for e in stow], ["stow"] * len(files),
                         "one STOW-RS request per instance: " + dump)
        self.assertEqual([(e.get("content_type") or "").split(";")[0].strip() for e in stow],
                         ["application/dicom"] * len(files), dump)
        self.assertTrue(all(e.get("rewrapped") and e["status"] == 200 for e in stow), dump)
        ours = {sop: self.our_file(sop) for _, sop, _, _ in files}
        sent = {}
        for e in stow:
            self.assertEqual(len(e.get("sop_uids") or []), 1, dump)
            sent[e["sop_uids"][0]] = e["body_size"]
        self.assertEqual(sent, {sop: len(data) for sop, data in ours.items()},
                         "each request's body should be the archived file (sizes by SOP "
                         "Instance UID): " + dump)
        pairs, absent = [], []
        for sop, data in ours.items():
            oid = self.orthanc_id(sop)
            if oid is None:
                absent.append(sop)
                continue
            pairs.append((sop, data, self.orthanc_file(self.orthanc, oid)))
        self.assertEqual(absent, [], "not in Orthanc after the send: " + dump)
        self.assertSameFiles(pairs)


if __name__ == "__main__":
    unittest.main()
