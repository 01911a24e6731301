"""Our DICOMweb server, STOW-RS (PS3.18 10.5, docs/api.md "The archive as a PACS"):
POST /dicom-web/studies and /dicom-web/studies/{study} with multipart/related;
type="application/dicom" bodies, each part a DICOM Part 10 file, answered in the DICOM JSON
model (application/dicom+json, PS3.18 Annex I): ReferencedSOPSequence (0008,1199) items with
ReferencedSOPClassUID (0008,1150), ReferencedSOPInstanceUID (0008,1155) and RetrieveURL
(0008,1190) for each stored instance, FailedSOPSequence (0008,1198) items with FailureReason
(0008,1197) for the others (0xA900: a part that is not DICOM -- of another media type -- or an
instance of another study than the path names; 0xC000: a DICOM file that cannot be read; plain
text sent as application/dicom is both "not DICOM" and "unreadable" as the documentation words
them: either), in the order of the parts, and the study's own RetrieveURL when every stored
instance is of one study.
200 all stored, 202 some not, 409 none; 415 for a body that is not multipart/related of
application/dicom (a multipart/related without a type parameter is taken as application/dicom:
its parts say what they are); 400 for a body that breaks off before any part is complete (the
parts completed before a break are kept and listed, the break one more failure item); nothing
left in data_dir/tmp afterwards, nor when the client goes away mid-body. The user role may
store (read-only: 403, none: 401).

What is checked against what: every instance stored is retrieved again with WADO-RS
(transfer-syntax=*) by the RetrieveURL the answer gives, and its data set must be the sent
file's byte for byte (the file meta header aside); QIDO-RS finds the study with the right counts
and the ISO_IR 100 name in UTF-8; /api/studies counts the instances; the archive files the study
by the site's rules (project from Study Description). With `[dicomweb] stow_receiver` naming a
config receiver that anonymizes and has a default project, the stored files carry none of the
sent identity (Patient Name, Patient ID, UIDs; nowhere under data_dir, temp files included,
nor in the log), are filed in that project, and the answer's RetrieveURLs lead to them. A
stow_receiver naming no receiver answers 503 (nothing stored); once that receiver is created
through the API (default project, staging) STOW-RS files into its staging area, archived by
hand into its project.

A large STOW-RS (10 instances of 4 MB, 40 MB, sent chunked as it is read from the files) is
stored whole. Body limits of the server: a JSON route refuses a 20 MB body with 413 before
reading it (the request head alone is answered); an unauthenticated POST with a body over 64 KB
keeps its 401 (and a read-only one its 403), on /api and on STOW-RS; after such a refusal (it
says Connection: close) the connection closes and nothing of the unread body is answered as a
request of its own (HTTP requests placed in it at every 4 KB boundary past 64 KB: none may run,
or a proxy in front would be desynchronised). CORS with `[dicomweb]
cors_origins`: a listed origin gets Access-Control-Allow-Origin (the origin, Vary: Origin) and
Access-Control-Expose-Headers with Warning on /dicom-web answers (errors included), a preflight
is answered 204 without credentials (methods GET, POST, OPTIONS; Authorization among the
allowed headers), an origin not listed gets 403 for its preflight and no CORS header otherwise,
/api gets none; with ["*"], "*". A listed origin's STOW-RS (a POST, which its preflight allows)
is stored.

Two clients: Orthanc's DICOMweb plugin (its "DicomWeb" "Servers" entry for us with the user
account, REST POST /dicom-web/servers/pb/stow of a study it holds) and our own (a second
pacsbridge server B with a node of type dicomweb on our /dicom-web/, a send job in batches of 3):
our archive then holds every instance with the source's data set.

Test data: dicomgen files (Explicit and Implicit VR Little Endian, CT, MR and Secondary
Capture, one patient "Müller^Jürgen" in ISO_IR 100); every expected value (UIDs, SOP classes,
data set bytes, counts, names, failure reasons) comes from those files and the documentation,
never from the server's answers. Multipart bodies are built and parsed here with the standard
library (RFC 2046).

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_stow_server.py
"""

import json
import os
import re
import socket
import sys
import threading
import unittest
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

EXPLICIT = dicomgen.EXPLICIT_VR_LE
IMPLICIT = dicomgen.IMPLICIT_VR_LE
SYNTAX = {"explicit": EXPLICIT, "implicit": IMPLICIT}
SOP_CLASS = {"CT": dicomgen.CT_IMAGE_STORAGE, "MR": dicomgen.MR_IMAGE_STORAGE,
             "OT": dicomgen.SECONDARY_CAPTURE_STORAGE}

WRITER, WRITER_PASSWORD = "stow-writer", "stow-Writer-pw7"
READER, READER_PASSWORD = "stow-reader", "stow-Reader-pw7"

VIEWER = "https://viewer.example:3000"
ELSEWHERE = "https://other.example:3000"

DICOM_JSON = "application/dicom+json"
ANY_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'

# DICOM JSON keys (PS3.18 Annex I)
RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_CLASS = "00081150"
REFERENCED_SOP_INSTANCE = "00081155"
FAILURE_REASON = "00081197"

NOT_DICOM_OR_OTHER_STUDY = 0xA900
CANNOT_UNDERSTAND = 0xC000

PATIENT_NAME = (0x0010, 0x0010)
PATIENT_ID = (0x0010, 0x0020)

# Markers of the study sent to the anonymizing stow_receiver: nowhere on the server after it.
ANON_NAME, ANON_PID = "Stowhiddenname^Zed", "STOWHIDPID93"


# ------------------------------------------------------------------------------ test data

_uid = dicomgen.make_uids()
_study_index = [0]


def make_study(directory, series, *, patient_name="STOW^PATIENT", patient_id="STOWPID",
               charset=None, description="StowStudy"):
    """Write one study with dicomgen: series = [(modality, count, "explicit"|"implicit",
    size)]. Returns {"uid", "series": [uid], "instances": [instance]}; an instance:
    {"sop", "sop_class", "study", "series", "syntax", "path"}."""
    _study_index[0] += 1
    st = _study_index[0]
    study = {"uid": _uid("study", st), "series": [], "instances": []}
    n = 0
    for se_index, (modality, count, syntax, size) in enumerate(series, 1):
        series_uid = _uid("series", st, se_index)
        study["series"].append(series_uid)
        for inum in range(1, count + 1):
            n += 1
            sop = _uid("instance", st * 1000 + n)
            path = Path(directory) / ("%d-%04d.dcm" % (st, n))
            path.parent.mkdir(parents=True, exist_ok=True)
            dicomgen.write_instance(
                path, sop_uid=sop, study_uid=study["uid"], series_uid=series_uid,
                patient_name=patient_name, patient_id=patient_id, charset=charset,
                modality=modality, instance_number=inum, series_number=se_index,
                study_id="S%d" % st, study_description=description,
                series_description="%s %s" % (description, modality), syntax=syntax, size=size)
            study["instances"].append({"sop": sop, "sop_class": SOP_CLASS[modality],
                                       "study": study["uid"], "series": series_uid,
                                       "syntax": SYNTAX[syntax], "path": path})
    return study


# ------------------------------------------------------------------------------ multipart

def new_boundary():
    return "stow-" + uuid.uuid4().hex


def part(payload, content_type="application/dicom"):
    """One body part: (its header lines, its bytes); content_type None: no header at all."""
    headers = [] if content_type is None else ["Content-Type: " + content_type]
    return headers, payload


def dicom_parts(instances):
    return [part(Path(i["path"]).read_bytes()) for i in instances]


def multipart_body(parts, boundary):
    """A multipart body (RFC 2046 5.1.1): each part after a delimiter line, its header lines,
    a blank line, its bytes; then the close delimiter."""
    out = bytearray()
    delim = b"--" + boundary.encode("ascii")
    for headers, payload in parts:
        if delim in payload:
            raise ValueError("the boundary occurs in a part")
        out += delim + b"\r\n"
        for h in headers:
            out += h.encode("ascii") + b"\r\n"
        out += b"\r\n" + payload + b"\r\n"
    out += delim + b"--\r\n"
    return bytes(out)


def stow_type(boundary, parts_type="application/dicom"):
    ctype = "multipart/related; boundary=%s" % boundary
    if parts_type is not None:
        ctype = 'multipart/related; type="%s"; boundary=%s' % (parts_type, boundary)
    return ctype


def split_params(header):
    """'a/b; k=v; k2="v 2"' -> ('a/b' lowercased, {key lowercased: value unquoted})."""
    items = header.split(";")
    params = {}
    for item in items[1:]:
        k, _, v = item.strip().partition("=")
        params[k.strip().lower()] = v.strip().strip('"')
    return items[0].strip().lower(), params


def multipart_parts(content_type, body):
    """The payloads of a multipart body: [({header lowercased: value}, bytes)]."""
    _, params = split_params(content_type or "")
    boundary = params.get("boundary")
    if not boundary:
        raise AssertionError("no boundary in Content-Type %r" % content_type)
    delim = b"--" + boundary.encode("ascii")
    pos = 0 if body.startswith(delim) else body.find(b"\r\n" + delim) + 2
    if pos < 0 or not body.startswith(delim, pos):
        raise AssertionError("no first delimiter in %r..." % body[:200])
    pos += len(delim)
    parts = []
    while not body.startswith(b"--", pos):
        start = body.index(b"\r\n", pos) + 2
        end = body.find(b"\r\n" + delim, start)
        if end < 0:
            raise AssertionError("part %d is not closed by a delimiter" % (len(parts) + 1))
        head, _, payload = body[start:end].partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, payload))
        pos = end + 2 + len(delim)
    return parts


# ------------------------------------------------------------------------------ raw HTTP

def raw_exchange(port, head, body_chunks=(), timeout=30, until_close=False):
    """Send a request head (str, CRLF line ends added) over a plain socket, then the body
    chunks from a background thread (a server that answers early and closes may make the
    sending fail: ignored), and read the answer: (status, {header lowercased: value}, body,
    after) -- after: with until_close, what else came on the connection until the server
    closed it (b"" when nothing did), or None when it was still open 6 s after the answer."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    lines = head.strip("\r\n").split("\n")
    sock.sendall(("\r\n".join(line.rstrip("\r") for line in lines) + "\r\n\r\n").encode("latin-1"))

    def send_body():
        try:
            for chunk in body_chunks:
                sock.sendall(chunk)
        except OSError:
            pass
    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        if not head_bytes:
            raise AssertionError("no answer (%d bytes read)" % len(data))
        status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        body, after = rest[:length], rest[length:]
        if until_close:
            sock.settimeout(6)  # beyond the server's keep-alive timeout of 5 s
            try:
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    after += chunk
            except socket.timeout:
                after = None
            except OSError:
                pass  # reset: closed
        return int(status_line.split()[1]), headers, body, after
    finally:
        sock.close()
        sender.join(10)


def zeros(total, piece=1 << 20):
    """total bytes of '0' in pieces (a body the server should not need to read)."""
    sent = 0
    while sent < total:
        n = min(piece, total - sent)
        yield b"0" * n
        sent += n


def chunked(pieces):
    """HTTP/1.1 chunked transfer coding of the byte strings of an iterable."""
    for p in pieces:
        if p:
            yield b"%x\r\n" % len(p) + p + b"\r\n"
    yield b"0\r\n\r\n"


# ------------------------------------------------------------------------------ answers

def value_of(item, key):
    v = (item.get(key) or {}).get("Value")
    return v[0] if v else None


class StowAnswer:
    """A STOW-RS answer read as the DICOM JSON model of PS3.18 Annex I."""

    def __init__(self, status, headers, payload):
        self.status = status
        self.headers = headers
        self.raw = payload
        self.json = harness.parse_json(payload)
        obj = self.json if isinstance(self.json, dict) else {}
        self.retrieve_url = value_of(obj, RETRIEVE_URL)
        self.referenced = (obj.get(REFERENCED_SOP_SEQUENCE) or {}).get("Value") or []
        self.failed = (obj.get(FAILED_SOP_SEQUENCE) or {}).get("Value") or []

    def referenced_sops(self):
        return {value_of(i, REFERENCED_SOP_INSTANCE): i for i in self.referenced}

    def failure_reasons(self):
        """[(SOP Instance UID or None, FailureReason)] of the failed items."""
        return [(value_of(i, REFERENCED_SOP_INSTANCE), value_of(i, FAILURE_REASON))
                for i in self.failed]

    def __repr__(self):
        return "%s %s" % (self.status, self.raw[:1500])


class StowServerTests(harness.E2ETestCase, harness.JobHelpers):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.data_dir = cls.tmp / "source"
        cls.server = cls.start_class_server(
            extra_toml='[dicomweb]\ncors_origins = ["%s"]\n' % VIEWER)
        for name, role, password in ((WRITER, "user", WRITER_PASSWORD),
                                     (READER, "read-only", READER_PASSWORD)):
            status, body = cls.server.api("POST", "/api/users", {
                "username": name, "role": role, "password": password})
            if status != 201:
                raise AssertionError("POST /api/users -> %s %r" % (status, body))
        cls.writer = (WRITER, WRITER_PASSWORD)
        cls.reader = (READER, READER_PASSWORD)

    # ------------------------------------------------------------------ helpers

    def stow(self, body, study=None, content_type=None, boundary=None, server=None,
             auth=None, headers=None, timeout=60):
        """POST /dicom-web/studies[/{study}] as the user account (auth: (user, password), or
        False for none): a StowAnswer."""
        server = server or self.server
        hdrs = {"Accept": DICOM_JSON}
        hdrs["Content-Type"] = content_type or stow_type(boundary)
        hdrs.update(headers or {})
        path = "/dicom-web/studies" + ("/" + study if study else "")
        creds = None if auth is False else (auth or self.writer)
        status, rh, payload = server.raw("POST", path, body, headers=hdrs, auth=creds,
                                         timeout=timeout)
        return StowAnswer(status, rh, payload)

    def stow_instances(self, instances, study=None, server=None, **kw):
        boundary = new_boundary()
        return self.stow(multipart_body(dicom_parts(instances), boundary), study=study,
                         boundary=boundary, server=server, **kw)

    def assertDicomJsonAnswer(self, answer, status, where=""):
        self.assertEqual(answer.status, status, "%s: %r" % (where, answer))
        ctype = (answer.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        self.assertEqual(ctype, DICOM_JSON, "%s: Content-Type %r" % (where,
                                                                     answer.headers.get("Content-Type")))
        self.assertIsInstance(answer.json, dict, "%s: %r" % (where, answer))

    def instance_url(self, inst, server=None):
        server = server or self.server
        return "%s/dicom-web/studies/%s/series/%s/instances/%s" % (
            server.url, inst["study"], inst["series"], inst["sop"])

    def assertReferenced(self, answer, instances, where="", server=None):
        """Exactly these instances in ReferencedSOPSequence, each with its SOP class and the
        RetrieveURL of its WADO-RS route under the request's Host."""
        got = answer.referenced_sops()
        self.assertEqual(sorted(s for s in got if s), sorted(i["sop"] for i in instances),
                         "%s: ReferencedSOPSequence: %r" % (where, answer))
        self.assertEqual(len(answer.referenced), len(instances), "%s: %r" % (where, answer))
        for inst in instances:
            item = got[inst["sop"]]
            self.assertEqual(value_of(item, REFERENCED_SOP_CLASS), inst["sop_class"],
                             "%s: %s" % (where, item))
            self.assertEqual(value_of(item, RETRIEVE_URL), self.instance_url(inst, server),
                             "%s: %s" % (where, item))

    def wado(self, url, server=None):
        """GET an absolute RetrieveURL of `server` as the read-only account, transfer-syntax=*:
        (status, [(SOP Instance UID, transfer syntax, file bytes)])."""
        server = server or self.server
        self.assertTrue(url.startswith(server.url + "/dicom-web/"), url)
        status, hdrs, body = server.raw("GET", url[len(server.url):],
                                        headers={"Accept": ANY_ACCEPT}, auth=self.reader,
                                        timeout=60)
        if status != 200:
            return status, body[:300]
        out = []
        for _, payload in multipart_parts(hdrs.get("Content-Type"), body):
            meta, _ = dicomgen.read_meta(payload)
            out.append((meta.get("MediaStorageSOPInstanceUID"), meta.get("TransferSyntaxUID"),
                        payload))
        return status, out

    def assertRetrievedAsSent(self, answer, instances, server=None, where=""):
        """Every RetrieveURL of the answer retrieves its instance with the sent file's syntax
        and data set, byte for byte."""
        got = answer.referenced_sops()
        for inst in instances:
            url = value_of(got.get(inst["sop"], {}), RETRIEVE_URL)
            self.assertIsNotNone(url, "%s: no RetrieveURL for %s" % (where, inst["sop"]))
            status, parts = self.wado(url, server)
            self.assertEqual(status, 200, "%s: GET %s -> %s %r" % (where, url, status, parts))
            self.assertEqual([(p[0], p[1]) for p in parts], [(inst["sop"], inst["syntax"])],
                             "%s: GET %s" % (where, url))
            sent = dicomgen.dataset_bytes(str(inst["path"]))
            self.assertTrue(dicomgen.dataset_bytes(parts[0][2]) == sent,
                            "%s: %s: data set not the one sent" % (where, inst["sop"]))

    def assertArchiveHolds(self, instances, server=None, where=""):
        """The archive's file of each instance has the sent data set (GET /api/...file)."""
        server = server or self.server
        for inst in instances:
            status, _, payload = server.raw("GET", "/api/instances/%s/file" % inst["sop"],
                                            timeout=60)
            self.assertEqual(status, 200, "%s: %s" % (where, inst["sop"]))
            self.assertEqual(dicomgen.read_meta(payload)[0].get("TransferSyntaxUID"),
                             inst["syntax"], "%s: %s" % (where, inst["sop"]))
            self.assertTrue(dicomgen.dataset_bytes(payload)
                            == dicomgen.dataset_bytes(str(inst["path"])),
                            "%s: %s: data set not the one sent" % (where, inst["sop"]))

    def wait_indexed(self, study, count, server=None):
        harness.wait_studies_indexed(server or self.server, {study["uid"]: count})

    def tmp_files(self, server=None):
        return harness.files_under((server or self.server).data_dir / "tmp")

    def assertTmpEmpty(self, server=None, where=""):
        server = server or self.server
        empty = harness.wait_until(lambda: not self.tmp_files(server), 10, 0.1)
        self.assertTrue(empty, "%s: left in %s: %r" % (where, server.data_dir / "tmp",
                                                         self.tmp_files(server)))

    def assertNotStored(self, study, server=None, where=""):
        server = server or self.server
        self.assertEqual(harness.archive_sops(server, study["uid"]), [],
                         "%s: the archive holds instances of the study" % where)

    # ================================================================== 1. a study

    def test_01_a_study_is_stored_as_sent_and_found(self):
        study = make_study(self.data_dir / "main", [("CT", 8, "explicit", 20_000),
                                                    ("MR", 7, "implicit", 20_000),
                                                    ("OT", 5, "explicit", 9_000)],
                           patient_name="Müller^Jürgen", patient_id="STOWMUL1",
                           charset="ISO_IR 100", description="StowMain")
        insts = study["instances"]
        self.assertIn("Müller".encode("latin-1"),
                      dicomgen.read_elements(str(insts[0]["path"]))[PATIENT_NAME][1])
        answer = self.stow_instances(insts)
        self.assertDicomJsonAnswer(answer, 200, "STOW-RS of 20 instances")
        self.assertEqual(answer.failed, [], repr(answer))
        self.assertReferenced(answer, insts, "STOW-RS of 20 instances")
        self.assertEqual(answer.retrieve_url, "%s/dicom-web/studies/%s"
                         % (self.server.url, study["uid"]), "the study's RetrieveURL")

        self.wait_indexed(study, len(insts))
        self.assertEqual(studies_count(self.server, study), (3, 20), "/api/studies")
        self.assertRetrievedAsSent(answer, insts, where="RetrieveURL")
        # The study's RetrieveURL retrieves the study.
        status, parts = self.wado(answer.retrieve_url)
        self.assertEqual(status, 200, parts)
        self.assertEqual(sorted(p[0] for p in parts), sorted(i["sop"] for i in insts))

        # QIDO-RS: the study with its counts and the name in UTF-8, its 20 instances.
        status, body = self.server.api(
            "GET", "/dicom-web/studies?StudyInstanceUID=%s" % study["uid"], auth=self.reader)
        self.assertEqual(status, 200, body)
        self.assertEqual(len(body), 1, body)
        self.assertEqual(body[0]["00100010"]["Value"], [{"Alphabetic": "Müller^Jürgen"}])
        self.assertEqual(body[0]["00201206"]["Value"], [3], "NumberOfStudyRelatedSeries")
        self.assertEqual(body[0]["00201208"]["Value"], [20], "NumberOfStudyRelatedInstances")
        status, body = self.server.api(
            "GET", "/dicom-web/studies/%s/instances" % study["uid"], auth=self.reader)
        self.assertEqual(status, 200, body)
        self.assertEqual(sorted(i["00080018"]["Value"][0] for i in body),
                         sorted(i["sop"] for i in insts))
        # Without a stow_receiver: the archive with the site's rules (the default rules take
        # the project from Study Description).
        where = harness.where_is(self.server, study["series"])
        self.assertEqual({k[0] for k in where}, {"StowMain"}, where)
        self.assertEqual(sum(sum(v.values()) for v in where.values()), 20, where)
        self.assertTmpEmpty()

    def test_02_two_studies_in_one_request_have_no_study_retrieve_url(self):
        a = make_study(self.data_dir / "two", [("CT", 2, "explicit", 4000)], patient_id="STOWTWOA")
        b = make_study(self.data_dir / "two", [("MR", 2, "implicit", 4000)], patient_id="STOWTWOB")
        answer = self.stow_instances(a["instances"] + b["instances"])
        self.assertDicomJsonAnswer(answer, 200, "two studies")
        self.assertReferenced(answer, a["instances"] + b["instances"], "two studies")
        self.assertIsNone(answer.retrieve_url,
                          "a top-level RetrieveURL although the instances are of two studies")
        self.wait_indexed(a, 2)
        self.wait_indexed(b, 2)
        self.assertArchiveHolds(a["instances"] + b["instances"], where="two studies")

    # ================================================================== 2. failures

    def test_03_parts_that_are_not_dicom_fail_alone(self):
        study = make_study(self.data_dir / "mixed", [("CT", 3, "explicit", 6000)],
                           patient_id="STOWMIX")
        good = study["instances"]
        broken = Path(good[0]["path"]).read_bytes()[:200]  # "DICM", then a meta header cut
        dicom_json = json.dumps([{"00080018": {"vr": "UI", "Value": ["1.2.3.4"]}}]).encode()
        parts = (dicom_parts(good[:2])
                 + [part(b"this is a plain text file, not a DICOM instance\n" * 20),
                    part(dicom_json, DICOM_JSON),
                    part(b"%PDF-1.4 not DICOM either\n", "application/pdf"),
                    part(broken)]
                 + dicom_parts(good[2:]))
        boundary = new_boundary()
        answer = self.stow(multipart_body(parts, boundary), boundary=boundary)
        self.assertDicomJsonAnswer(answer, 202, "mixed body")
        self.assertReferenced(answer, good, "mixed body")
        reasons = [r for _, r in answer.failure_reasons()]
        self.assertEqual(len(reasons), 4, repr(answer))
        # Documented: A900 not DICOM, C000 unreadable. Parts of another media type are not
        # DICOM (A900); a DICOM file whose header breaks off is unreadable (C000); plain text
        # sent as application/dicom is both, as the documentation words it: either.
        by_part = "FailureReasons (A900 = %d, C000 = %d) of the four parts that are not " \
                  "instances, in the order sent: text as application/dicom, " \
                  "application/dicom+json, application/pdf, a cut DICOM header: %r" \
                  % (0xA900, 0xC000, reasons)
        self.assertIn(reasons[0], (NOT_DICOM_OR_OTHER_STUDY, CANNOT_UNDERSTAND), by_part)
        self.assertEqual(reasons[1:], [NOT_DICOM_OR_OTHER_STUDY, NOT_DICOM_OR_OTHER_STUDY,
                                       CANNOT_UNDERSTAND], by_part)
        self.wait_indexed(study, 3)
        self.assertArchiveHolds(good, where="mixed body")
        self.assertTmpEmpty(where="mixed body")

    def test_04_the_study_in_the_path_refuses_other_studies(self):
        study = make_study(self.data_dir / "path", [("CT", 3, "explicit", 5000)],
                           patient_id="STOWPATHA")
        other = make_study(self.data_dir / "path", [("MR", 2, "explicit", 5000)],
                           patient_id="STOWPATHB")
        stray = other["instances"][0]
        answer = self.stow_instances(study["instances"][:2] + [stray] + study["instances"][2:],
                                     study=study["uid"])
        self.assertDicomJsonAnswer(answer, 202, "one instance of another study")
        self.assertReferenced(answer, study["instances"], "one instance of another study")
        self.assertEqual(answer.failure_reasons(), [(stray["sop"], NOT_DICOM_OR_OTHER_STUDY)],
                         repr(answer))
        self.assertEqual(value_of(answer.failed[0], REFERENCED_SOP_CLASS), stray["sop_class"])
        self.assertEqual(answer.retrieve_url, "%s/dicom-web/studies/%s"
                         % (self.server.url, study["uid"]))
        self.wait_indexed(study, 3)
        self.assertArchiveHolds(study["instances"], where="the study of the path")

        answer = self.stow_instances(other["instances"], study=study["uid"])
        self.assertDicomJsonAnswer(answer, 409, "only instances of another study")
        self.assertEqual(answer.referenced, [], repr(answer))
        self.assertEqual(sorted(answer.failure_reasons()),
                         sorted((i["sop"], NOT_DICOM_OR_OTHER_STUDY) for i in other["instances"]))
        self.assertIsNone(answer.retrieve_url, repr(answer))
        self.assertNotStored(other, where="409")
        self.assertEqual(studies_count(self.server, study), (1, 3), "the path's study")

        # A path segment that is no UID.
        boundary = new_boundary()
        answer = self.stow(multipart_body(dicom_parts(other["instances"]), boundary),
                           study="not-a-uid", boundary=boundary)
        self.assertJsonError(answer.status, answer.json, "StudyInstanceUID", 400)
        self.assertNotStored(other, where="400")
        self.assertTmpEmpty()

    def test_05_a_body_that_breaks_off(self):
        study = make_study(self.data_dir / "cut", [("CT", 3, "explicit", 30_000)],
                           patient_id="STOWCUT1")
        insts = study["instances"]
        boundary = new_boundary()
        body = multipart_body(dicom_parts(insts), boundary)
        sizes = [len(Path(i["path"]).read_bytes()) for i in insts]
        # Where each part's bytes start in the body.
        starts = [body.index(Path(i["path"]).read_bytes()) for i in insts]
        self.assertEqual(len(starts), 3)

        # Cut inside the first part: 400, nothing stored.
        answer = self.stow(body[:starts[0] + sizes[0] // 2], boundary=boundary)
        self.assertJsonError(answer.status, answer.json, None, 400)
        self.assertTmpEmpty(where="cut in part 1")
        self.assertNotStored(study, where="cut in part 1")

        # Cut inside the third part: the first two are kept and listed, plus a failure.
        answer = self.stow(body[:starts[2] + sizes[2] // 2], boundary=boundary)
        self.assertDicomJsonAnswer(answer, 202, "cut in part 3")
        self.assertReferenced(answer, insts[:2], "cut in part 3")
        self.assertEqual(len(answer.failed), 1, repr(answer))
        self.assertIsNotNone(value_of(answer.failed[0], FAILURE_REASON), repr(answer))
        self.wait_indexed(study, 2)
        self.assertArchiveHolds(insts[:2], where="cut in part 3")
        self.assertTmpEmpty(where="cut in part 3")

        # The client goes away in the middle of a part (the Content-Length promises more):
        # nothing to answer; the parts completed are kept, the broken one leaves nothing.
        later = make_study(self.data_dir / "cut", [("CT", 3, "explicit", 30_000)],
                           patient_id="STOWCUT2")
        body2 = multipart_body(dicom_parts(later["instances"]), boundary)
        starts2 = [body2.index(Path(i["path"]).read_bytes()) for i in later["instances"]]
        for cut, kept in ((starts2[0] + 1000, 0), (starts2[2] + 1000, 2)):
            sock = socket.create_connection(("127.0.0.1", self.server.http_port), timeout=30)
            head = ("POST /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                    "Authorization: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                    "Accept: %s\r\n\r\n" % (self.server.http_port,
                                            harness.basic_auth(*self.writer)["Authorization"],
                                            stow_type(boundary), len(body2), DICOM_JSON))
            sock.sendall(head.encode("ascii") + body2[:cut])
            # The parts before are stored, and the broken one is being written to disk.
            ok = harness.wait_until(
                lambda: (len(harness.archive_sops(self.server, later["uid"])) == kept
                         and self.tmp_files()), 10)
            self.assertTrue(ok, "client about to go at byte %d: archive %r, data_dir/tmp %r"
                            % (cut, harness.archive_sops(self.server, later["uid"]),
                               self.tmp_files()))
            sock.close()
            self.assertTmpEmpty(where="client gone at byte %d" % cut)
            self.assertEqual(sorted(harness.archive_sops(self.server, later["uid"])),
                             sorted(i["sop"] for i in later["instances"][:kept]),
                             "client gone at byte %d" % cut)
        self.assertArchiveHolds(later["instances"][:2], where="client gone in part 3")

    def test_06_bodies_that_are_not_multipart_of_dicom_are_415(self):
        study = make_study(self.data_dir / "types", [("OT", 2, "explicit", 3000)],
                           patient_id="STOWTYPES")
        insts = study["instances"]
        single = Path(insts[0]["path"]).read_bytes()
        boundary = new_boundary()
        body = multipart_body(dicom_parts(insts), boundary)
        cases = [
            ("a single application/dicom instance", single, "application/dicom"),
            ("type application/dicom+json", body, stow_type(boundary, DICOM_JSON)),
            ("type application/octet-stream", body,
             stow_type(boundary, "application/octet-stream")),
            ("multipart/mixed", body, 'multipart/mixed; type="application/dicom"; boundary=%s'
             % boundary),
            ("multipart/related without a boundary", body,
             'multipart/related; type="application/dicom"'),
            ("application/json", b'{"a": 1}', "application/json"),
        ]
        for label, payload, ctype in cases:
            with self.subTest(label):
                answer = self.stow(payload, content_type=ctype)
                self.assertJsonError(answer.status, answer.json, None, 415)
        self.assertNotStored(study, where="415")
        self.assertTmpEmpty(where="415")
        # multipart/related without a type parameter: its parts say application/dicom.
        answer = self.stow(body, content_type=stow_type(boundary, None))
        self.assertDicomJsonAnswer(answer, 200, "multipart/related without a type")
        self.assertReferenced(answer, insts, "multipart/related without a type")
        # Type value and parameter names in any case, the type unquoted.
        again = make_study(self.data_dir / "types", [("OT", 1, "explicit", 3000)],
                           patient_id="STOWTYPES2")
        body = multipart_body(dicom_parts(again["instances"]), boundary)
        answer = self.stow(body, content_type="Multipart/Related; Type=Application/DICOM; "
                                              "Boundary=%s" % boundary)
        self.assertDicomJsonAnswer(answer, 200, "any case")
        self.assertReferenced(answer, again["instances"], "any case")

    def test_07_roles(self):
        study = make_study(self.data_dir / "roles", [("CT", 1, "explicit", 3000)],
                           patient_id="STOWROLES")
        for auth, expected in ((False, 401), (self.reader, 403),
                               (("stow-writer", "wrong-pw-0001"), 401)):
            with self.subTest(auth=auth):
                answer = self.stow_instances(study["instances"], auth=auth)
                self.assertEqual(answer.status, expected, repr(answer))
        self.assertNotStored(study, where="refused")
        answer = self.stow_instances(study["instances"],
                                     auth=("admin", self.server.admin_password))
        self.assertDicomJsonAnswer(answer, 200, "admin")
        self.assertTmpEmpty()

    # ================================================================== 3. large

    def test_08_forty_megabytes_in_one_chunked_request(self):
        study = make_study(self.data_dir / "large", [("CT", 10, "explicit", 4_000_000)],
                           patient_id="STOWLARGE")
        insts = study["instances"]
        boundary = new_boundary()

        def pieces():
            delim = b"--" + boundary.encode()
            for inst in insts:
                yield delim + b"\r\nContent-Type: application/dicom\r\n\r\n"
                with open(inst["path"], "rb") as f:
                    while True:
                        block = f.read(1 << 20)
                        if not block:
                            break
                        yield block
                yield b"\r\n"
            yield delim + b"--\r\n"
        head = ("POST /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                "Authorization: %s\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
                "Accept: %s\r\n" % (self.server.http_port,
                                    harness.basic_auth(*self.writer)["Authorization"],
                                    stow_type(boundary), DICOM_JSON))
        total = sum(os.path.getsize(i["path"]) for i in insts)
        self.assertGreater(total, 39_000_000)
        status, headers, payload, _ = raw_exchange(self.server.http_port, head,
                                                   chunked(pieces()), timeout=120)
        answer = StowAnswer(status, {"Content-Type": headers.get("content-type")}, payload)
        self.assertDicomJsonAnswer(answer, 200, "40 MB")
        self.assertReferenced(answer, insts, "40 MB")
        self.wait_indexed(study, 10)
        self.assertArchiveHolds(insts, where="40 MB")
        self.assertTmpEmpty(where="40 MB")

    # ================================================================== 4. body limits

    def assertOnlyAnswer(self, after, where):
        """Nothing came after the answer, and the server closed the connection: the rest of
        a refused body is never read as requests of their own."""
        self.assertIsNotNone(after, "%s: the connection was still open 6 s after the answer "
                                    "(it says Connection: close)" % where)
        self.assertEqual(after, b"", "%s: more answers on the connection after the refusal "
                                     "(the rest of the body read as requests): %r"
                         % (where, after[:600]))

    def test_09_body_limits(self):
        port = self.server.http_port
        admin = harness.basic_auth("admin", self.server.admin_password)["Authorization"]
        node = b'{"name": "big", "type": "dimse", "ae_title": "BIG", "host": "127.0.0.1", ' \
               b'"port": 104, "description": "'
        big = 20 * 1024 * 1024
        # A JSON route: 413 for 20 MB, answered from the request head alone.
        head = ("POST /api/nodes HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
                "Content-Type: application/json\r\nContent-Length: %d\r\n" % (port, admin, big))
        status, _, payload, _ = raw_exchange(port, head, (), timeout=20)
        self.assertJsonError(status, harness.parse_json(payload), None, 413)
        # ... and when the body comes (a JSON object of 20 MB), and chunked, without a length.
        body = [node] + list(zeros(big - len(node) - 2)) + [b'"}']
        head_chunked = ("POST /api/nodes HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: %s\r\n"
                        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                        % (port, admin))
        for label, h, chunks in (("Content-Length", head, body),
                                 ("chunked", head_chunked, chunked(body))):
            with self.subTest("20 MB JSON, " + label):
                status, _, payload, after = raw_exchange(port, h, chunks, timeout=60,
                                                         until_close=True)
                self.assertJsonError(status, harness.parse_json(payload), None, 413)
                self.assertOnlyAnswer(after, "413, " + label)
        self.assertEqual(self.server.api("GET", "/api/nodes/big")[0], 404)

        # Unauthenticated (or read-only) callers with bodies over 64 KB keep their 401 / 403.
        mb = 1024 * 1024
        study = make_study(self.data_dir / "limits", [("CT", 1, "explicit", 2 * mb)],
                           patient_id="STOWLIMITS")
        boundary = new_boundary()
        stow_body = multipart_body(dicom_parts(study["instances"]), boundary)
        reader = harness.basic_auth(*self.reader)["Authorization"]
        cases = [
            ("/api/nodes, no credentials", "/api/nodes", "application/json", None,
             [node] + list(zeros(mb)) + [b'"}'], 401),
            ("STOW-RS, no credentials", "/dicom-web/studies", stow_type(boundary), None,
             [stow_body], 401),
            ("STOW-RS, a wrong password", "/dicom-web/studies", stow_type(boundary),
             harness.basic_auth(WRITER, "wrong-pw-0002")["Authorization"], [stow_body], 401),
            ("STOW-RS, read-only", "/dicom-web/studies", stow_type(boundary), reader,
             [stow_body], 403),
        ]
        for label, path, ctype, authz, chunks, expected in cases:
            with self.subTest(label):
                length = sum(len(c) for c in chunks)
                self.assertGreater(length, 64 * 1024)
                head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: %s\r\n"
                        "Content-Length: %d\r\n%s" % (path, port, ctype, length,
                                                      "Authorization: %s\r\n" % authz if authz else ""))
                status, _, payload, after = raw_exchange(port, head, chunks, timeout=30,
                                                         until_close=True)
                self.assertJsonError(status, harness.parse_json(payload), None, expected)
                self.assertOnlyAnswer(after, label)
        self.assertNotStored(study, where="refused callers")
        self.assertTmpEmpty()

    def test_09b_a_refused_body_is_never_run_as_a_request(self):
        """No request smuggled in a refused body is answered."""
        # The body of an unauthenticated POST holds a complete HTTP request at every 4 KB
        # boundary from 64 KB on (where a server that reads bodies in 4 KB pieces and stops
        # past 64 KB would resume reading requests): none may be answered, behind a proxy
        # they would run as requests of their own.
        port = self.server.http_port
        inner = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        body = bytearray(b"x" * (256 * 1024))
        for k in range(16, 60):
            body[k * 4096:k * 4096 + len(inner)] = inner
        for path, ctype in (("/api/nodes", "application/json"),
                            ("/dicom-web/studies", stow_type("b"))):
            with self.subTest(path=path):
                head = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: %s\r\n"
                        "Content-Length: %d\r\n" % (path, port, ctype, len(body)))
                status, _, payload, after = raw_exchange(port, head, [bytes(body)], timeout=30,
                                                         until_close=True)
                self.assertJsonError(status, harness.parse_json(payload), None, 401)
                self.assertNotIn(b'"status":"ok"', after or b"",
                                 "GET /api/health inside the refused body was answered: %r"
                                 % (after or b"")[:600])
                self.assertOnlyAnswer(after, path)

    def test_09c_bodies_whose_end_is_ambiguous_or_unread_are_refused_and_the_connection_closed(self):
        """Request framing a proxy in front could read differently, or a body the server would
        not read (GET, HEAD, OPTIONS take none; a gzip body that cannot be decoded; methods not
        served): refused with the connection closed, so nothing after it is run."""
        port = self.server.http_port
        inner = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        cases = [
            ("GET with a body", "GET /dicom-web/studies HTTP/1.1\r\nContent-Length: %d\r\n" % len(inner),
             [inner], 400),
            ("OPTIONS preflight with a body",
             "OPTIONS /dicom-web/studies HTTP/1.1\r\nOrigin: https://x.example\r\n"
             "Access-Control-Request-Method: GET\r\nContent-Length: %d\r\n" % len(inner), [inner], 400),
            ("Transfer-Encoding not exactly chunked",
             "POST /api/nodes HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: %d\r\n" % len(inner),
             [inner], 400),
            ("Content-Length twice",
             "POST /api/nodes HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: %d\r\n" % len(inner), [inner], 400),
            ("PATCH (not served)", "PATCH /api/nodes/x HTTP/1.1\r\nContent-Length: %d\r\n" % len(inner),
             [inner], 405),
            ("a gzip body that is not gzip (refused caller)",
             "POST /api/nodes HTTP/1.1\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
             "Content-Length: %d\r\n" % (4096 + len(inner)), [b"x" * 4096 + inner], 401),
        ]
        for label, head, chunks, expected in cases:
            with self.subTest(label):
                head = head.replace("HTTP/1.1\r\n", "HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port, 1)
                status, _, payload, after = raw_exchange(port, head, chunks, timeout=30, until_close=True)
                self.assertEqual(status, expected, payload[:300])
                self.assertNotIn(b'"status":"ok"', after or b"", "%s: the request in the body was run" % label)
                self.assertOnlyAnswer(after, label)

    # ================================================================== 5. CORS

    def cors_headers(self, headers):
        return {k.lower(): v for k, v in headers.items() if k.lower().startswith("access-control-")}

    def test_10_cors(self):
        study = make_study(self.data_dir / "cors", [("CT", 1, "explicit", 3000)],
                           patient_id="STOWCORS")
        # A listed origin: on answers of /dicom-web, errors included.
        for label, method, path, auth in (
                ("QIDO-RS", "GET", "/dicom-web/studies?limit=1", self.reader),
                ("QIDO-RS without credentials (401)", "GET", "/dicom-web/studies", None),
                ("WADO-RS of an unknown study (404)", "GET",
                 "/dicom-web/studies/1.2.3.4.5.6.7", self.reader)):
            with self.subTest(label):
                status, hdrs, body = self.server.raw(method, path, auth=auth,
                                                     headers={"Origin": VIEWER})
                self.assertEqual(status, {"QIDO-RS": 200}.get(label, status), body[:300])
                self.assertEqual(hdrs.get("Access-Control-Allow-Origin"), VIEWER,
                                 "%s -> %s: %r" % (label, status, dict(hdrs)))
                self.assertIn("origin", [v.strip().lower() for v in
                                         ",".join(hdrs.get_all("Vary") or []).split(",")],
                              dict(hdrs))
                exposed = [v.strip().lower() for v in
                           (hdrs.get("Access-Control-Expose-Headers") or "").split(",")]
                self.assertIn("warning", exposed, dict(hdrs))
        # Its preflight, without credentials.
        for method in ("GET", "POST"):
            with self.subTest(preflight=method):
                status, hdrs, body = self.server.raw(
                    "OPTIONS", "/dicom-web/studies", auth=None, headers={
                        "Origin": VIEWER, "Access-Control-Request-Method": method,
                        "Access-Control-Request-Headers": "authorization, content-type"})
                self.assertEqual(status, 204, body[:300])
                self.assertEqual(hdrs.get("Access-Control-Allow-Origin"), VIEWER)
                methods = {m.strip().upper() for m in
                           (hdrs.get("Access-Control-Allow-Methods") or "").split(",")}
                self.assertLessEqual({"GET", "POST", "OPTIONS"}, methods, dict(hdrs))
                allowed = {h.strip().lower() for h in
                           (hdrs.get("Access-Control-Allow-Headers") or "").split(",")}
                self.assertLessEqual({"authorization", "content-type"}, allowed, dict(hdrs))
        # An origin not listed: its preflight 403, its requests without CORS headers.
        status, hdrs, body = self.server.raw("OPTIONS", "/dicom-web/studies", auth=None, headers={
            "Origin": ELSEWHERE, "Access-Control-Request-Method": "GET"})
        self.assertEqual(status, 403, body[:300])
        self.assertEqual(self.cors_headers(hdrs), {}, dict(hdrs))
        status, hdrs, _ = self.server.raw("GET", "/dicom-web/studies?limit=1", auth=self.reader,
                                          headers={"Origin": ELSEWHERE})
        self.assertEqual(status, 200)
        self.assertEqual(self.cors_headers(hdrs), {}, dict(hdrs))
        # /api never.
        for method, path, extra in (("GET", "/api/studies", {}),
                                    ("OPTIONS", "/api/studies",
                                     {"Access-Control-Request-Method": "GET"})):
            with self.subTest(api=method):
                status, hdrs, _ = self.server.raw(method, path, headers=dict(
                    {"Origin": VIEWER}, **extra))
                self.assertEqual(self.cors_headers(hdrs), {}, "%s %s -> %s %r"
                                 % (method, path, status, dict(hdrs)))
        # The listed origin's STOW-RS (the POST its preflight was allowed).
        answer = self.stow_instances(study["instances"], headers={"Origin": VIEWER})
        self.assertEqual(answer.headers.get("Access-Control-Allow-Origin"), VIEWER, repr(answer))
        self.assertDicomJsonAnswer(answer, 200, "STOW-RS from the listed origin %s" % VIEWER)
        self.assertReferenced(answer, study["instances"], "STOW-RS from a listed origin")

    def test_11_cors_any_origin(self):
        srv = self.start_server(extra_toml='[dicomweb]\ncors_origins = ["*"]\n')
        status, hdrs, _ = srv.raw("GET", "/dicom-web/studies", headers={"Origin": ELSEWHERE})
        self.assertEqual(status, 200)
        self.assertEqual(hdrs.get("Access-Control-Allow-Origin"), "*", dict(hdrs))
        self.assertIn("warning", (hdrs.get("Access-Control-Expose-Headers") or "").lower())
        status, hdrs, _ = srv.raw("OPTIONS", "/dicom-web/studies", auth=None, headers={
            "Origin": ELSEWHERE, "Access-Control-Request-Method": "POST"})
        self.assertEqual(status, 204)
        self.assertEqual(hdrs.get("Access-Control-Allow-Origin"), "*", dict(hdrs))
        status, hdrs, _ = srv.raw("GET", "/api/studies", headers={"Origin": ELSEWHERE})
        self.assertEqual(self.cors_headers(hdrs), {}, dict(hdrs))
        # Without cors_origins (this class's server lists one): no CORS at all for others,
        # and a server with none configured answers no preflight.
        plain = self.start_server()
        status, hdrs, _ = plain.raw("OPTIONS", "/dicom-web/studies", auth=None, headers={
            "Origin": VIEWER, "Access-Control-Request-Method": "GET"})
        self.assertEqual(status, 403)
        self.assertEqual(self.cors_headers(hdrs), {}, dict(hdrs))

    # ================================================================== 6. stow_receiver

    def test_12_stow_receiver_anonymizes_and_files_in_its_project(self):
        srv = self.start_server(
            receivers=[{"ae_title": "PACSBRIDGE", "port": harness.free_port(), "bind": "127.0.0.1"},
                       {"ae_title": "STOWANON", "port": harness.free_port(), "bind": "127.0.0.1",
                        "anonymize": True, "default_project": "StowAnon"}],
            extra_toml='[dicomweb]\nstow_receiver = "STOWANON"\n')
        study = make_study(self.data_dir / "anon", [("CT", 2, "explicit", 5000),
                                                    ("MR", 1, "implicit", 5000)],
                           patient_name=ANON_NAME, patient_id=ANON_PID,
                           description="StowAnonDescr")
        insts = study["instances"]
        needles = [ANON_NAME.split("^")[0].encode(), ANON_PID.encode(), study["uid"].encode()]
        needles += sorted({i["series"].encode() for i in insts} | {i["sop"].encode() for i in insts})
        self.assertEqual(set(harness.find_bytes([self.data_dir / "anon"], needles)), set(needles))
        answer = self.stow_instances(insts, server=srv, auth=("admin", srv.admin_password))
        self.assertIn(answer.status, (200, 202), repr(answer))
        self.assertEqual(answer.failed, [], repr(answer))
        self.assertEqual(len(answer.referenced), 3, repr(answer))

        def filed():
            projects = {p["name"]: p for p in harness.browse_labels(srv)}
            return projects.get("StowAnon", {}).get("instances") == 3 and projects
        projects = harness.wait_until(filed, 10)
        self.assertTrue(projects, "project StowAnon with 3 instances: %r"
                        % harness.browse_labels(srv))
        self.assertEqual(set(projects), {"StowAnon"}, "nothing is filed elsewhere")
        stored = {}
        for s in harness.browse_labels(srv, "StowAnon"):
            for e in harness.browse_labels(srv, "StowAnon", s["name"]):
                for row in harness.browse_labels(srv, "StowAnon", s["name"], e["name"]):
                    status, rows = srv.api("GET", "/api/series/%s/instances"
                                           % row["SeriesInstanceUID"])
                    self.assertEqual(status, 200, rows)
                    for r in rows:
                        st, _, payload = srv.raw("GET", "/api/instances/%s/file"
                                                 % r["SOPInstanceUID"])
                        self.assertEqual(st, 200)
                        stored[r["SOPInstanceUID"]] = payload
        self.assertEqual(len(stored), 3, list(stored))
        originals = {i["sop"] for i in insts} | {i["series"] for i in insts} | {study["uid"]}
        for sop, payload in stored.items():
            el = dicomgen.read_elements(payload)
            self.assertNotIn(sop, originals, "SOP Instance UID kept")
            self.assertNotIn(harness.text_of(el, (0x0020, 0x000D)), originals)
            self.assertNotEqual(harness.text_of(el, PATIENT_NAME), ANON_NAME)
            self.assertNotEqual(harness.text_of(el, PATIENT_ID), ANON_PID)
            self.assertEqual(harness.text_of(el, (0x0012, 0x0062)), "YES",
                             "PatientIdentityRemoved")
        # Nothing of what was sent anywhere on the server: data directory (temp files
        # included) and log.
        found = harness.find_bytes([srv.data_dir, srv.log_path], needles)
        self.assertEqual(found, {}, "values sent found on the server")
        self.assertTmpEmpty(srv)
        # The answer's RetrieveURLs lead to the instances stored (PS3.18 Table I.1-1: "the
        # URL where the SOP Instance is available for retrieval").
        for item in answer.referenced:
            url = value_of(item, RETRIEVE_URL)
            with self.subTest(url=url):
                self.assertIsNotNone(url, item)
                status, parts = self.wado_as_admin(url, srv)
                self.assertEqual(status, 200, "GET %s (the RetrieveURL STOW-RS gave for %s)"
                                 " -> %s %r" % (url, value_of(item, REFERENCED_SOP_INSTANCE),
                                                status, parts))
                self.assertEqual(len(parts), 1)
                self.assertIn(parts[0][0], stored)
        # The study's RetrieveURL too, when given: it retrieves the three stored instances.
        if answer.retrieve_url is not None:
            status, parts = self.wado_as_admin(answer.retrieve_url, srv)
            self.assertEqual(status, 200, "GET %s (the study's RetrieveURL) -> %s %r"
                             % (answer.retrieve_url, status, parts))
            self.assertEqual(sorted(p[0] for p in parts), sorted(stored))

    def wado_as_admin(self, url, server):
        """As wado(), as the server's admin (servers started by a test have no reader)."""
        self.assertTrue(url.startswith(server.url + "/dicom-web/"), url)
        status, hdrs, body = server.raw("GET", url[len(server.url):],
                                        headers={"Accept": ANY_ACCEPT}, timeout=60)
        if status != 200:
            return status, body[:300]
        return status, [(dicomgen.read_meta(p)[0].get("MediaStorageSOPInstanceUID"), None, p)
                        for _, p in multipart_parts(hdrs.get("Content-Type"), body)]

    def test_13_stow_receiver_that_does_not_exist_then_one_that_stages(self):
        srv = self.start_server(extra_toml='[dicomweb]\nstow_receiver = "STOWLATER"\n')
        study = make_study(self.data_dir / "later", [("CT", 2, "explicit", 5000)],
                           patient_id="STOWLATER1", description="LaterDescr")
        answer = self.stow_instances(study["instances"], server=srv,
                                     auth=("admin", srv.admin_password))
        self.assertJsonError(answer.status, answer.json, None, 503)
        self.assertNotStored(study, srv, "503")
        self.assertTmpEmpty(srv, "503")

        status, receiver = srv.api("POST", "/api/receivers", {
            "ae_title": "STOWLATER", "port": harness.free_receiver_port(), "anonymize": False,
            "default_project": "StowLater", "direct_archive": False,
            "staging_idle_seconds": 600})
        self.assertEqual(status, 201, receiver)
        answer = self.stow_instances(study["instances"], server=srv,
                                     auth=("admin", srv.admin_password))
        self.assertDicomJsonAnswer(answer, 200, "STOW-RS into a staging receiver")
        self.assertReferenced(answer, study["instances"], "staging receiver", server=srv)

        def staged():
            status, rows = srv.api("GET", "/api/staging")
            return [r for r in rows if str(r.get("receiver")) == str(receiver["id"])
                    and r.get("instance_count") == 2] if status == 200 else []
        rows = harness.wait_until(staged, 10)
        self.assertTrue(rows, "not staged: %r" % (srv.api("GET", "/api/staging"),))
        self.assertEqual(rows[0].get("project"), "StowLater", rows)
        self.assertNotStored(study, srv, "staged")
        status, body = srv.api("POST", "/api/staging/%s/archive" % rows[0]["id"])
        self.assertIn(status, (200, 202, 204), body)
        harness.wait_studies_indexed(srv, {study["uid"]: 2})
        where = harness.where_is(srv, study["series"])
        self.assertEqual({k[0] for k in where}, {"StowLater"}, where)
        self.assertArchiveHolds(study["instances"], srv, "staged, then archived")
        self.assertTmpEmpty(srv)

    # ================================================================== 7. clients

    def test_20_orthanc_dicomweb_plugin_stores_into_our_server(self):
        study = make_study(self.data_dir / "orthanc", [("CT", 3, "explicit", 30_000),
                                                       ("MR", 2, "implicit", 30_000)],
                           patient_id="STOWORTH")
        # Through a recording forwarder, to say what Orthanc sent when it goes wrong.
        recorder = harness.Forwarder(self.server.http_port, record=True)
        self.addCleanup(recorder.close)
        orth = harness.Orthanc(self.mkdtemp("orthanc"), dicomweb=True, extra={
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/",
                         "Servers": {"pb": ["http://127.0.0.1:%d/dicom-web/" % recorder.port,
                                            WRITER, WRITER_PASSWORD]}}})
        self._peers.append(orth)
        self.addCleanup(orth.stop)
        orth.start()
        ids = {orth.upload(i["path"])["ParentStudy"] for i in study["instances"]}
        self.assertEqual(len(ids), 1, ids)
        status, _, body = orth.rest("POST", "/dicom-web/servers/pb/stow",
                                    {"Resources": sorted(ids), "Synchronous": True}, timeout=90)
        sent = recorder.client_bytes()
        ctype = re.search(rb"\r\ncontent-type: *([^\r]*)", sent, re.IGNORECASE)
        self.assertEqual(status, 200, "Orthanc's STOW-RS -> %s %r; its request's Content-Type: "
                         "%r" % (status, body[:300], ctype.group(1) if ctype else sent[:300]))
        self.wait_indexed(study, 5)
        self.assertEqual(sorted(harness.archive_sops(self.server, study["uid"])),
                         sorted(i["sop"] for i in study["instances"]))
        self.assertArchiveHolds(study["instances"], where="from Orthanc")

    def test_21_our_dicomweb_client_sends_to_our_server(self):
        study = make_study(self.data_dir / "ours", [("CT", 4, "explicit", 20_000),
                                                    ("MR", 3, "implicit", 20_000)],
                           patient_name="Müller^Jürgen", patient_id="STOWOURS",
                           charset="ISO_IR 100")
        b = self.start_server()
        extra = {IMPLICIT: ["-xi"], EXPLICIT: []}
        for syntax in (EXPLICIT, IMPLICIT):
            files = [i["path"] for i in study["instances"] if i["syntax"] == syntax]
            cp = harness.storescu(b.dicom_port, b.dicom_ae, files, extra=extra[syntax])
            self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        harness.wait_studies_indexed(b, {study["uid"]: 7})
        self.assertArchiveHolds(study["instances"], b, "premise: B holds them as sent")
        node = {"name": "pb-a", "type": "dicomweb", "url": self.server.url + "/dicom-web/",
                "queryable": False, "storable": True, "stow_batch_instances": 3,
                "auth": {"type": "basic", "username": WRITER, "password": WRITER_PASSWORD}}
        status, answer = b.api("POST", "/api/nodes", node)
        self.assertEqual(status, 201, answer)
        status, answer = b.api("POST", "/api/send", {"node": "pb-a", "level": "STUDY",
                                                     "uids": [study["uid"]]})
        self.assertEqual(status, 202, answer)
        job = self.wait_job(str(answer["job_id"]), timeout=60, server=b)
        self.assertEqual(job.get("state"), "succeeded", json.dumps(job, indent=1))
        self.wait_indexed(study, 7)
        self.assertEqual(sorted(harness.archive_sops(self.server, study["uid"])),
                         sorted(i["sop"] for i in study["instances"]))
        self.assertArchiveHolds(study["instances"], where="sent by B")


def studies_count(server, study):
    """(series_count, instance_count) of a study in GET /api/studies."""
    row = harness.studies_by_uid(server).get(study["uid"]) or {}
    return row.get("series_count"), row.get("instance_count")


if __name__ == "__main__":
    unittest.main()
