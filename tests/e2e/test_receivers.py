"""Receivers created at run time through the REST API: several ports, ports shared by called AE
title, conflicts, changes without restart, persistence, whitelists, routing to
project/subject/session, processors, anonymization in memory (nothing original on disk or in the
log), the staging area.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_receivers.py

Facts this file relies on:
  - receivers created through the API bind 0.0.0.0 unless told otherwise and must use ports
    1024..49151 (harness.free_receiver_port() picks one in 20000..32000);
  - on Linux a connection to 127.0.0.2 still comes FROM 127.0.0.1 (the loopback route's
    preferred source), and DCMTK's tools cannot choose their source address: a sender "at
    127.0.0.2" is storescu/echoscu through harness.SourceAddressProxy, whose connections to the
    receiver are bound to 127.0.0.2;
  - DCMTK echoscu/storescu print "Calling AE Title Not Recognized" / "Called AE Title Not
    Recognized" for the A-ASSOCIATE-RJ reasons, and "Connection refused" when nobody listens.
"""

import itertools
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import unittest
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

_uid = dicomgen.make_uids()
_index = itertools.count(1)

PATIENT_COMMENTS = (0x0010, 0x4000)


def make_study(directory, count=1, *, series=1, patient_name="RECV^TEST", patient_id="RECV1",
               accession="", study_description=None, extra=(), study_date="20240115",
               birth_date="19700101", uid=None, size=2048):
    """count instances of one new study over `series` series (round robin), written with
    dicomgen; accession "" writes an empty Accession Number (no project from it). Returns
    [(path, sop, study, series)]."""
    uid = uid or _uid
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    st = next(_index)
    out = []
    for i in range(count):
        se = i % series + 1
        n = next(_index)
        study_uid, series_uid, sop = uid("study", st), uid("series", st, se), uid("instance", n)
        path = directory / ("%06d.dcm" % n)
        dicomgen.write_instance(path, sop_uid=sop, study_uid=study_uid, series_uid=series_uid,
                                patient_name=patient_name, patient_id=patient_id,
                                accession_number=accession, study_description=study_description,
                                study_date=study_date, patient_birth_date=birth_date,
                                instance_number=i // series + 1, series_number=se,
                                extra_elements=list(extra), size=size)
        out.append((path, sop, study_uid, series_uid))
    return out


# Anonymized data is filed under a project only when something names it: the default rule
# Study Description -> project is not used then (Study Description is removed by the profile).
# A rule an administrator writes is, so these receivers file by Study Description.
DESCRIPTION_IS_PROJECT = {"project": "(0008,1030):(.+):1"}


def comment(project=None, subject=None, session=None):
    parts = []
    for key, value in (("Project", project), ("Subject", subject), ("Session", session)):
        if value is not None:
            parts.append("%s: %s" % (key, value))
    return " ".join(parts)


def days_between(new, old):
    d = lambda s: date(int(s[0:4]), int(s[4:6]), int(s[6:8]))  # noqa: E731
    return (d(new) - d(old)).days


_LONG_VRS = {"OB", "OW", "SQ", "UN", "UT", "UC", "UR"}


def explicit_element(group, elem, vr, value):
    """One explicit VR little endian element (value bytes or ASCII str), padded to even."""
    if isinstance(value, str):
        value = value.encode("ascii")
    if len(value) % 2:
        value += b"\0" if vr == "UI" else b" "
    if vr in _LONG_VRS:
        return struct.pack("<HH", group, elem) + vr.encode() + b"\0\0" + \
            struct.pack("<I", len(value)) + value
    return struct.pack("<HH", group, elem) + vr.encode() + struct.pack("<H", len(value)) + value


def sequence_value(*items):
    """The value of an SQ (defined lengths) whose items hold the given encoded elements."""
    return b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(b"".join(i))) + b"".join(i)
                    for i in items)


def _implicit(group, elem, value):
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", group, elem, len(value)) + value


def raw_c_store(assoc, sop_class, sop_uid, dataset, message_id=1):
    """C-STORE-RQ over presentation context 1 of an accepted harness.DicomAssociation: the
    command names sop_uid, the data set is sent as given (in the context's transfer syntax).
    Returns the status of the C-STORE-RSP."""
    body = (_implicit(0x0000, 0x0002, sop_class.encode())
            + _implicit(0x0000, 0x0100, struct.pack("<H", 0x0001))
            + _implicit(0x0000, 0x0110, struct.pack("<H", message_id))
            + _implicit(0x0000, 0x0700, struct.pack("<H", 0))
            + _implicit(0x0000, 0x0800, struct.pack("<H", 0x0000))
            + _implicit(0x0000, 0x1000, sop_uid.encode()))
    cmd = _implicit(0x0000, 0x0000, struct.pack("<I", len(body))) + body
    for header, payload in ((0x03, cmd), (0x02, dataset)):
        pdv = struct.pack(">IBB", len(payload) + 2, 1, header) + payload
        assoc.sock.sendall(struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv)
    data = b""
    while True:
        pdu_type, pdu = assoc.read_pdu()
        if pdu_type != 0x04:
            raise ConnectionError("expected P-DATA-TF, got %s"
                                  % harness.PDU_NAMES.get(pdu_type, hex(pdu_type)))
        pos, last = 0, False
        while pos + 6 <= len(pdu):
            length, _, header = struct.unpack_from(">IBB", pdu, pos)
            data += pdu[pos + 6:pos + 4 + length]
            pos += 4 + length
            last = last or (header & 0x03) == 0x03
        if last:
            break
    fields = harness.parse_implicit_command(data)
    return struct.unpack("<H", fields[(0x0000, 0x0900)])[0]


class ReceiversTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.start_class_server()
        cls._anon = None
        cls._anon_error = None

    # ------------------------------------------------------------------ helpers

    def api(self, method, path, body=None):
        return self.server.api(method, path, body)

    def create(self, body, expected=201):
        status, answer = self.api("POST", "/api/receivers", body)
        self.assertEqual(status, expected, "POST /api/receivers %r -> %r" % (body, answer))
        return answer

    def receiver(self, ae, port=None, **extra):
        """A receiver created through the API (anonymize false unless given), checked."""
        body = {"ae_title": ae, "port": port or harness.free_receiver_port(), "anonymize": False}
        body.update(extra)
        r = self.create(body)
        self.assertIsInstance(r, dict, repr(r))
        self.assertRegex(str(r.get("id")), r"^[0-9]+$", "id of a new receiver: %r" % (r,))
        self.assertEqual((r.get("ae_title"), r.get("port")), (ae, body["port"]), repr(r))
        self.assertIs(r.get("locked"), False, repr(r))
        want = "listening" if body.get("enabled", True) else "disabled"
        self.assertEqual(r.get("status"), want, repr(r))
        return r

    def put(self, rid, patch, expected=200):
        status, answer = self.api("PUT", "/api/receivers/%s" % rid, patch)
        self.assertEqual(status, expected, "PUT /api/receivers/%s %r -> %r" % (rid, patch, answer))
        return answer

    def get_receiver(self, rid):
        status, answer = self.api("GET", "/api/receivers/%s" % rid)
        self.assertEqual(status, 200, "GET /api/receivers/%s -> %r" % (rid, answer))
        return answer

    def receivers(self):
        status, body = self.api("GET", "/api/receivers")
        self.assertEqual(status, 200, body)
        self.assertIsInstance(body, list, repr(body))
        return body

    def store(self, port, ae, files, calling_ae="STORESCU", host="127.0.0.1"):
        cp = harness.storescu(port, ae, [f[0] for f in files], calling_ae=calling_ae, host=host)
        self.assertEqual(cp.returncode, 0, "storescu to %s@%s:%s as %s:\n%s"
                         % (ae, host, port, calling_ae, harness.proc_output(cp)))
        return cp

    def assertEchoOk(self, port, ae, calling_ae="ECHOSCU", msg=""):
        cp = harness.echoscu(port, ae, calling_ae=calling_ae)
        self.assertEqual(cp.returncode, 0, "%secho %s -> %s:%s:\n%s"
                         % (msg and msg + ": ", calling_ae, ae, port, harness.proc_output(cp)))

    def assertEchoRefused(self, port, ae, reason, calling_ae="ECHOSCU", msg=""):
        """echoscu fails and prints `reason` (regex, e.g. "connection refused")."""
        cp = harness.echoscu(port, ae, calling_ae=calling_ae, timeout=30)
        out = harness.proc_output(cp)
        self.assertNotEqual(cp.returncode, 0, "%secho %s -> %s:%s should fail (%s):\n%s"
                            % (msg and msg + ": ", calling_ae, ae, port, reason, out))
        self.assertMatchesCI(reason, out, "%secho %s -> %s:%s: expected %r in:\n%s"
                             % (msg and msg + ": ", calling_ae, ae, port, reason, out))

    def study_count(self, study_uid):
        return harness.studies_by_uid(self.server).get(study_uid, {}).get("instance_count")

    def wait_study(self, study_uid, count, timeout=10):
        got = harness.wait_until(lambda: self.study_count(study_uid) == count, timeout, 0.1)
        self.assertTrue(got, "study %s: expected %d instances in GET /api/studies, have %r"
                        % (study_uid, count, self.study_count(study_uid)))

    def fetch(self, sop):
        status, headers, payload = self.server.raw("GET", "/api/instances/%s/file" % sop)
        self.assertEqual(status, 200, "GET /api/instances/%s/file -> %s %r"
                         % (sop, status, payload[:200]))
        return payload

    def assertStoredIdentical(self, sop, path):
        payload = self.fetch(sop)
        meta, offset = dicomgen.read_meta(payload)
        self.assertEqual(meta.get("MediaStorageSOPInstanceUID"), sop)
        sent = dicomgen.dataset_bytes(path)
        if payload[offset:] != sent:
            got = payload[offset:]
            first = next((i for i, (a, b) in enumerate(zip(got, sent)) if a != b),
                         min(len(got), len(sent)))
            self.fail("dataset of %s differs from the sent one: %d vs %d bytes, first difference "
                      "at dataset offset %d" % (sop, len(got), len(sent), first))

    def browse(self, *labels):
        """GET /api/projects[/{p}/subjects[/{s}/sessions[/{e}/series]]] -> list ([] if not 200)."""
        path = "/api/projects"
        for label, child in zip(labels, ("subjects", "sessions", "series")):
            path += "/%s/%s" % (label, child)
        status, body = self.api("GET", path)
        return body if status == 200 and isinstance(body, list) else []

    def where_is(self, series_uid):
        """Every (project, subject, session) the browse API files series_uid under."""
        found = []
        for p in self.browse():
            for s in self.browse(p["name"]):
                for e in self.browse(p["name"], s["name"]):
                    for row in self.browse(p["name"], s["name"], e["name"]):
                        if row.get("SeriesInstanceUID") == series_uid:
                            found.append((p["name"], s["name"], e["name"],
                                          row.get("instance_count")))
        return found

    def assertFiled(self, series_uid, project, subject, session, count, timeout=10):
        def ok():
            return any(r.get("SeriesInstanceUID") == series_uid and r.get("instance_count") == count
                       for r in self.browse(project, subject, session))
        if not harness.wait_until(ok, timeout, 0.1):
            self.fail("series %s: expected under %s/%s/%s with %d instances; found under %r"
                      % (series_uid, project, subject, session, count, self.where_is(series_uid)))

    def staged(self, receiver_id=None):
        status, rows = self.api("GET", "/api/staging")
        self.assertEqual(status, 200, rows)
        self.assertIsInstance(rows, list, repr(rows))
        return [r for r in rows
                if receiver_id is None or str(r.get("receiver")) == str(receiver_id)]

    def log_text(self):
        return self.server.log_path.read_text("utf-8", "replace")

    # ================================================================== 1. several receivers

    def test_10_two_receivers_on_their_own_ports_store_byte_identical(self):
        a = self.receiver("TWOPORTA")
        b = self.receiver("TWOPORTB")
        self.assertEqual(a.get("bind"), "0.0.0.0", repr(a))
        self.assertIs(a.get("anonymize"), False, repr(a))
        fa = make_study(self.mkdtemp("twoa"), 2, patient_id="TWOA", study_description="Two A")
        fb = make_study(self.mkdtemp("twob"), 3, patient_id="TWOB", study_description="Two B")
        self.store(a["port"], "TWOPORTA", fa)
        self.store(b["port"], "TWOPORTB", fb)
        self.wait_study(fa[0][2], 2)
        self.wait_study(fb[0][2], 3)
        for path, sop, _, _ in fa + fb:
            self.assertStoredIdentical(sop, path)
        # Each port answers only its own AE title.
        self.assertEchoRefused(a["port"], "TWOPORTB", r"Called AE Title Not Recognized")
        listed = {r.get("id"): r for r in self.receivers()}
        for r in (a, b):
            self.assertIn(r["id"], listed, "receiver %s missing from GET /api/receivers" % r["id"])
            self.assertEqual(listed[r["id"]].get("status"), "listening", repr(listed[r["id"]]))
            self.assertEqual(self.get_receiver(r["id"]).get("port"), r["port"])

    def test_11b_one_ae_title_on_two_ports_is_found_by_id_or_ae_at_port(self):
        a = self.receiver("TWOPORTS")
        b = self.receiver("TWOPORTS")
        status, body = self.api("GET", "/api/receivers/TWOPORTS")
        self.assertEqual(status, 404)
        self.assertIn("several receivers (ids %s, %s)" % (a["id"], b["id"]), body["error"])
        status, body = self.api("GET", "/api/receivers/TWOPORTS@%d" % b["port"])
        self.assertEqual((status, body.get("id")), (200, b["id"]))
        status, body = self.api("PUT", "/api/receivers/TWOPORTS", {"enabled": False})
        self.assertEqual(status, 404)
        for r in (a, b):
            self.assertEqual(self.api("DELETE", "/api/receivers/%s" % r["id"])[0], 204)

    def test_11_receivers_share_a_port_by_called_ae_title(self):
        a = self.receiver("SHAREA")
        port = a["port"]
        b = self.receiver("SHAREB", port=port)
        self.assertEqual(b.get("status"), "listening", repr(b))
        fa = make_study(self.mkdtemp("sharea"), 2, patient_id="SHAREA", study_description="Share A")
        fb = make_study(self.mkdtemp("shareb"), 2, patient_id="SHAREB", study_description="Share B")
        self.store(port, "SHAREA", fa)
        self.store(port, "SHAREB", fb)
        self.assertFiled(fa[0][3], "Share_A", "RECV_TEST", "SHAREA", 2)
        self.assertFiled(fb[0][3], "Share_B", "RECV_TEST", "SHAREB", 2)
        for path, sop, _, _ in fa + fb:
            self.assertStoredIdentical(sop, path)
        self.assertEchoRefused(port, "SHAREC", r"Called AE Title Not Recognized",
                               msg="a third AE title on the shared port")

        # Same AE title and port again: 409, whatever else differs.
        status, body = self.api("POST", "/api/receivers",
                                {"ae_title": "SHAREA", "port": port, "anonymize": True})
        self.assertJsonError(status, body, "port", 409)
        # The shared port with another bind address: 409.
        status, body = self.api("POST", "/api/receivers",
                                {"ae_title": "SHARED", "port": port, "bind": "127.0.0.1",
                                 "anonymize": False})
        self.assertJsonError(status, body, "port", 409)
        titles = [(r.get("ae_title"), r.get("port")) for r in self.receivers()]
        self.assertEqual(titles.count(("SHAREA", port)), 1, titles)
        self.assertNotIn(("SHARED", port), titles)
        self.assertEchoOk(port, "SHAREA", msg="after the refused conflicts")
        self.assertEchoOk(port, "SHAREB", msg="after the refused conflicts")

    def test_12_invalid_receivers_are_400_naming_the_field(self):
        port = harness.free_receiver_port()
        cases = [
            ({"ae_title": "", "port": port}, "ae_title"),
            ({"ae_title": "A" * 17, "port": port}, "ae_title"),
            ({"ae_title": "BAD\\AE", "port": port}, "ae_title"),
            ({"port": port}, "ae_title"),
            ({"ae_title": "BADPORT", "port": 80}, "port"),
            ({"ae_title": "BADPORT", "port": 1023}, "port"),
            ({"ae_title": "BADPORT", "port": 49152}, "port"),
            ({"ae_title": "BADPORT", "port": 50000}, "port"),
            ({"ae_title": "BADPORT", "port": 70000}, "port"),
            ({"ae_title": "BADPORT", "port": "11112"}, "port"),
            ({"ae_title": "BADBIND", "port": port, "bind": "localhost"}, "bind"),
            ({"ae_title": "BADPROC", "port": port, "processors": [{"type": "explode"}]},
             "processors[0].type"),
            ({"ae_title": "BADIDENT", "port": port, "identification": "magic"}, "identification"),
            ({"ae_title": "BADIDLE", "port": port, "staging_idle_seconds": 0},
             "staging_idle_seconds"),
            ({"ae_title": "BADDEF", "port": port, "default_project": "a b"}, "default_project"),
        ]
        for body, field in cases:
            body.setdefault("anonymize", False)
            status, answer = self.api("POST", "/api/receivers", body)
            with self.subTest(body=body):
                self.assertJsonError(status, answer, field)
        titles = {r.get("ae_title") for r in self.receivers()}
        for t in ("BADPORT", "BADBIND", "BADPROC", "BADIDENT", "BADIDLE", "BADDEF"):
            self.assertNotIn(t, titles, "an invalid receiver was created anyway")
        # The edges of the allowed range are accepted (disabled: nothing binds them).
        for edge in (1024, 49151):
            r = self.receiver("EDGE%d" % edge, port=edge, enabled=False)
            status, _ = self.api("DELETE", "/api/receivers/%s" % r["id"])
            self.assertEqual(status, 204)

    def test_13_port_used_by_another_program_is_409_and_others_keep_running(self):
        other = self.receiver("BUSYOTHER")
        port = harness.free_receiver_port()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.bind(("0.0.0.0", port))
        blocker.listen(4)
        try:
            status, body = self.api("POST", "/api/receivers",
                                    {"ae_title": "BUSY", "port": port, "anonymize": False})
            self.assertJsonError(status, body, "port", 409)
            self.assertIn("already in use", body["error"], repr(body))
            self.assertNotIn("BUSY", [r.get("ae_title") for r in self.receivers()],
                             "the receiver whose port is taken must not be created")
            files = make_study(self.mkdtemp("busy"), 1, patient_id="BUSY1")
            self.store(other["port"], "BUSYOTHER", files)
            self.wait_study(files[0][2], 1)
            files2 = make_study(self.mkdtemp("busy2"), 1, patient_id="BUSY2")
            self.store(self.server.dicom_port, self.server.dicom_ae, files2)
            self.wait_study(files2[0][2], 1)
            # Disabled, it binds nothing: created. Enabling it then fails with 409 and it stays
            # disabled.
            off = self.receiver("BUSYOFF", port=port, enabled=False)
            status, body = self.api("PUT", "/api/receivers/%s" % off["id"], {"enabled": True})
            self.assertJsonError(status, body, "port", 409)
            self.assertIn("already in use", body["error"], repr(body))
            got = self.get_receiver(off["id"])
            self.assertEqual((got.get("enabled"), got.get("status")), (False, "disabled"),
                             repr(got))
            status, _ = self.api("DELETE", "/api/receivers/%s" % off["id"])
            self.assertEqual(status, 204)
        finally:
            blocker.close()
        # Once the port is free, the same receiver can be created (nothing was left behind).
        self.receiver("BUSY", port=port)
        self.assertEchoOk(port, "BUSY")

    # ================================================================== 2. changes at run time

    def test_20_disable_and_enable_at_run_time(self):
        r = self.receiver("TOGGLE")
        port = r["port"]
        self.assertEchoOk(port, "TOGGLE")
        answer = self.put(r["id"], {"enabled": False})
        self.assertEqual((answer.get("enabled"), answer.get("status")), (False, "disabled"),
                         repr(answer))
        self.assertEchoRefused(port, "TOGGLE", r"connection refused", msg="disabled")
        answer = self.put(r["id"], {"enabled": True})
        self.assertEqual((answer.get("enabled"), answer.get("status")), (True, "listening"),
                         repr(answer))
        self.assertEchoOk(port, "TOGGLE", msg="enabled again")
        files = make_study(self.mkdtemp("toggle"), 1, patient_id="TOGGLE1")
        self.store(port, "TOGGLE", files)
        self.wait_study(files[0][2], 1)
        # The partial PUT changed nothing else.
        got = self.get_receiver(r["id"])
        for key in ("ae_title", "port", "bind", "anonymize", "direct_archive", "whitelist"):
            self.assertEqual(got.get(key), r.get(key), "%s after PUT enabled: %r" % (key, got))

    def test_21_disabling_one_of_two_on_a_shared_port_keeps_the_port_open(self):
        a = self.receiver("KEEPA")
        port = a["port"]
        b = self.receiver("KEEPB", port=port)
        self.put(b["id"], {"enabled": False})
        self.assertEchoOk(port, "KEEPA", msg="KEEPB disabled")
        self.assertEchoRefused(port, "KEEPB", r"Called AE Title Not Recognized",
                               msg="KEEPB disabled, KEEPA still on the port")
        status, _ = self.api("DELETE", "/api/receivers/%s" % a["id"])
        self.assertEqual(status, 204)
        self.assertEchoRefused(port, "KEEPA", r"connection refused",
                               msg="KEEPA deleted, KEEPB disabled: nobody on the port")
        self.put(b["id"], {"enabled": True})
        self.assertEchoOk(port, "KEEPB", msg="KEEPB enabled again")
        self.assertEchoRefused(port, "KEEPA", r"Called AE Title Not Recognized",
                               msg="KEEPA was deleted")

    def test_22_port_change_moves_the_listener(self):
        r = self.receiver("MOVER")
        old = r["port"]
        new = harness.free_receiver_port()
        answer = self.put(r["id"], {"port": new})
        self.assertEqual((answer.get("port"), answer.get("status")), (new, "listening"),
                         repr(answer))
        self.assertEchoRefused(old, "MOVER", r"connection refused", msg="old port")
        self.assertEchoOk(new, "MOVER", msg="new port")
        files = make_study(self.mkdtemp("mover"), 1, patient_id="MOVER1")
        self.store(new, "MOVER", files)
        self.wait_study(files[0][2], 1)
        # Moving onto a port another program holds: 409, and the receiver stays where it was.
        busy = harness.free_receiver_port()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        blocker.bind(("0.0.0.0", busy))
        blocker.listen(4)
        try:
            status, body = self.api("PUT", "/api/receivers/%s" % r["id"], {"port": busy})
            self.assertJsonError(status, body, "port", 409)
            self.assertIn("already in use", body["error"], repr(body))
            got = self.get_receiver(r["id"])
            self.assertEqual((got.get("port"), got.get("status")), (new, "listening"), repr(got))
            self.assertEchoOk(new, "MOVER", msg="after the refused move")
        finally:
            blocker.close()
        # Out of range through PUT: 400.
        status, body = self.api("PUT", "/api/receivers/%s" % r["id"], {"port": 50000})
        self.assertJsonError(status, body, "port")

    def test_22b_rename_and_move_onto_a_shared_port(self):
        a = self.receiver("JOINA")
        b = self.receiver("JOINB")
        answer = self.put(b["id"], {"ae_title": "JOINB2"})
        self.assertEqual(answer.get("ae_title"), "JOINB2", repr(answer))
        self.assertEchoOk(b["port"], "JOINB2", msg="new AE title")
        self.assertEchoRefused(b["port"], "JOINB", r"Called AE Title Not Recognized",
                               msg="old AE title")
        # Onto A's port: the two share it, B's old port closes.
        answer = self.put(b["id"], {"port": a["port"]})
        self.assertEqual((answer.get("port"), answer.get("status")), (a["port"], "listening"),
                         repr(answer))
        self.assertEchoOk(a["port"], "JOINA", msg="A after B joined its port")
        self.assertEchoOk(a["port"], "JOINB2", msg="B on A's port")
        self.assertEchoRefused(b["port"], "JOINB2", r"connection refused", msg="B's old port")
        # Renaming B to A's title on the same port, or giving it another bind there: 409.
        status, body = self.api("PUT", "/api/receivers/%s" % b["id"], {"ae_title": "JOINA"})
        self.assertJsonError(status, body, "port", 409)
        status, body = self.api("PUT", "/api/receivers/%s" % b["id"], {"bind": "127.0.0.1"})
        self.assertJsonError(status, body, "port", 409)
        got = self.get_receiver(b["id"])
        self.assertEqual((got.get("ae_title"), got.get("bind")), ("JOINB2", "0.0.0.0"), repr(got))
        files = make_study(self.mkdtemp("join"), 1, patient_id="JOIN1")
        self.store(a["port"], "JOINB2", files)
        self.wait_study(files[0][2], 1)

    def test_23_delete_removes_the_receiver_and_its_listener(self):
        r = self.receiver("GONER")
        self.assertEchoOk(r["port"], "GONER")
        status, _ = self.api("DELETE", "/api/receivers/%s" % r["id"])
        self.assertEqual(status, 204)
        status, body = self.api("GET", "/api/receivers/%s" % r["id"])
        self.assertEqual(status, 404, body)
        self.assertNotIn(r["id"], [x.get("id") for x in self.receivers()])
        self.assertEchoRefused(r["port"], "GONER", r"connection refused", msg="deleted")
        status, body = self.api("DELETE", "/api/receivers/%s" % r["id"])
        self.assertEqual(status, 404, body)
        status, body = self.api("PUT", "/api/receivers/%s" % r["id"], {"enabled": True})
        self.assertEqual(status, 404, body)

    def test_24_config_file_receiver_is_locked_and_keeps_data_as_sent(self):
        port, ae = self.server.dicom_port, self.server.dicom_ae
        mine = [r for r in self.receivers() if (r.get("ae_title"), r.get("port")) == (ae, port)]
        self.assertEqual(len(mine), 1, repr(self.receivers()))
        cfg = mine[0]
        self.assertIs(cfg.get("locked"), True, repr(cfg))
        self.assertIs(cfg.get("anonymize"), False, "config-file receivers keep data as sent")
        status, body = self.api("PUT", "/api/receivers/%s" % cfg["id"], {"enabled": False})
        self.assertEqual(status, 403, body)
        status, body = self.api("DELETE", "/api/receivers/%s" % cfg["id"])
        self.assertEqual(status, 403, body)
        self.assertEchoOk(port, ae, msg="after the refused PUT and DELETE")
        files = make_study(self.mkdtemp("cfg"), 1, patient_name="Config^Kept",
                           patient_id="CFGKEPT")
        self.store(port, ae, files)
        self.wait_study(files[0][2], 1)
        self.assertStoredIdentical(files[0][1], files[0][0])

    def test_25b_a_config_receiver_that_takes_a_stored_ones_port_holds_it_back(self):
        srv = self.start_server()
        port = harness.free_receiver_port()
        status, stored = srv.api("POST", "/api/receivers",
                                 {"ae_title": "STOREDONE", "port": port, "anonymize": False})
        self.assertEqual(status, 201, stored)
        srv.stop_and_check()
        # The administrator then writes a receiver on the same port with another bind address.
        again = harness.Server(srv.workdir, http_port=srv.http_port, receivers=srv.receivers + [
            {"ae_title": "FROMFILE", "port": port, "bind": "127.0.0.1"}])
        self._peers.append(again)
        self.addCleanup(again.stop_and_check)
        again.start()
        status, held = again.api("GET", "/api/receivers/%s" % stored["id"])
        self.assertEqual(status, 200)
        self.assertTrue(held["status"].startswith("error: conflicts with receiver FROMFILE@%d" % port),
                        held["status"])
        self.assertTrue(held["enabled"] is False)
        cp = harness.echoscu(port, "FROMFILE")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        # Moving it to a free port resolves it: enabled again, listening.
        other = harness.free_receiver_port()
        status, moved = again.api("PUT", "/api/receivers/%s" % stored["id"], {"port": other})
        self.assertEqual(status, 200, moved)
        self.assertEqual((moved["status"], moved["enabled"]), ("listening", True))
        cp = harness.echoscu(other, "STOREDONE")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))

    def test_25_receivers_survive_a_restart(self):
        srv = self.start_server()
        p1, p2 = harness.free_receiver_port(), harness.free_receiver_port()
        body = {"ae_title": "PERSIST", "port": p1, "anonymize": False,
                "whitelist_enabled": True, "whitelist": "KEEPSCU\n",
                "routing": {"project": "(0008,1030):^(\\w+):1", "subject": "", "session": ""},
                "staging_idle_seconds": 77}
        status, a = srv.api("POST", "/api/receivers", body)
        self.assertEqual(status, 201, a)
        status, b = srv.api("POST", "/api/receivers",
                            {"ae_title": "PERSISTOFF", "port": p2, "enabled": False})
        self.assertEqual(status, 201, b)
        p3, p4 = harness.free_receiver_port(), harness.free_receiver_port()
        status, c = srv.api("POST", "/api/receivers",
                            {"ae_title": "PERSISTSTAGE", "port": p3, "anonymize": False,
                             "direct_archive": False, "staging_idle_seconds": 600})
        self.assertEqual(status, 201, c)
        status, busy = srv.api("POST", "/api/receivers",
                               {"ae_title": "PERSISTBUSY", "port": p4, "anonymize": False})
        self.assertEqual(status, 201, busy)
        staged = make_study(self.mkdtemp("persist"), 1, patient_id="PERSIST1",
                            extra=[(0x0010, 0x4000, "LT", comment("PST", "PSUB", "PSES"))])
        self.store(p3, "PERSISTSTAGE", staged)
        p5 = harness.free_receiver_port()
        status, anon = srv.api("POST", "/api/receivers", {"ae_title": "PERSISTANON", "port": p5})
        self.assertEqual(status, 201, anon)
        anon_files = make_study(self.mkdtemp("persistanon"), 1, patient_name="Persist^Anon",
                                patient_id="PERSISTANON1", study_description="Persist Anon")
        self.store(p5, "PERSISTANON", anon_files)
        # The staged instance is not in /api/studies: the anonymized study is the only one.
        self.assertTrue(harness.wait_until(lambda: harness.studies_by_uid(srv), 10))
        before_uids = set(harness.studies_by_uid(srv))
        self.assertEqual(len(before_uids), 1, repr(before_uids))
        self.assertNotIn(anon_files[0][2], before_uids, "the study UID was not replaced")
        srv.stop_and_check()
        blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(blocker.close)
        blocker.bind(("0.0.0.0", p4))
        blocker.listen(4)

        again = harness.Server(srv.workdir, receivers=srv.receivers, http_port=srv.http_port)
        self._peers.append(again)
        self.addCleanup(again.stop_and_check)
        again.start()
        for before in (a, b):
            status, after = again.api("GET", "/api/receivers/%s" % before["id"])
            self.assertEqual(status, 200, "receiver %s after the restart: %r"
                             % (before["id"], after))
            self.assertEqual(after, before, "receiver %s changed across the restart" % before["id"])
        self.assertEchoOk(p1, "PERSIST", calling_ae="KEEPSCU", msg="after the restart")
        self.assertEchoRefused(p1, "PERSIST", r"Calling AE Title Not Recognized",
                               calling_ae="OTHERSCU", msg="whitelist after the restart")
        self.assertEchoRefused(p2, "PERSISTOFF", r"connection refused",
                               msg="disabled receiver after the restart")
        # The receiver whose port another program took meanwhile: kept, in error; the rest run.
        status, after = again.api("GET", "/api/receivers/%s" % busy["id"])
        self.assertEqual(status, 200, after)
        self.assertRegex(after.get("status", ""), r"^error: .*already in use", repr(after))
        self.assertEchoOk(p3, "PERSISTSTAGE", msg="after the restart")
        # The staged session is still there, and can be archived.
        status, rows = again.api("GET", "/api/staging")
        self.assertEqual(status, 200, rows)
        rows = [r for r in rows if str(r.get("receiver")) == str(c["id"])]
        self.assertEqual([(r.get("project"), r.get("subject"), r.get("session"),
                           r.get("instance_count")) for r in rows],
                         [("PST", "PSUB", "PSES", 1)], repr(rows))
        status, body = again.api("POST", "/api/staging/%s/archive" % rows[0]["id"])
        self.assertEqual((status, body.get("archived")), (200, 1), repr(body))
        self.assertTrue(harness.wait_until(lambda: staged[0][2] in harness.studies_by_uid(again)))
        # The anonymization mapping is the site's, across restarts: the same original sent
        # again becomes the same new study (one study, one instance).
        self.store(p5, "PERSISTANON", anon_files)
        time.sleep(0.3)
        after_uids = set(harness.studies_by_uid(again)) - {staged[0][2]}
        self.assertEqual(after_uids, before_uids,
                         "the same original got another new Study Instance UID after a restart")
        counts = [s.get("instance_count") for s in harness.studies_by_uid(again).values()]
        self.assertEqual(sorted(counts), [1, 1], repr(counts))

    def test_26_changes_apply_at_once_while_an_association_runs(self):
        # A port change while a slow transfer runs on the old port: the running association
        # may finish, but the change (and the rest of the API) must not wait for it.
        r = self.receiver("BUSYMOVE")
        old, new = r["port"], harness.free_receiver_port()
        files = make_study(self.mkdtemp("busymove"), 2, patient_id="BUSYMOVE1", size=2_000_000)
        proxy = harness.ThrottledProxy(old, rate=1_000_000, throttle="upload")  # ~4 s
        self.addCleanup(proxy.close)
        proc = harness.start_tool(harness.storescu_args(proxy.port, "BUSYMOVE",
                                                        [f[0] for f in files]))
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        time.sleep(1.0)  # under way
        result = {}

        def change():
            t = time.monotonic()
            result["answer"] = self.api("PUT", "/api/receivers/%s" % r["id"], {"port": new})
            result["took"] = time.monotonic() - t
        thread = threading.Thread(target=change, daemon=True)
        t0 = time.monotonic()
        thread.start()
        thread.join(1.5)
        new_port_ok = harness.echoscu(new, "BUSYMOVE").returncode == 0
        new_port_at = time.monotonic() - t0
        t = time.monotonic()
        status, side = self.api("POST", "/api/receivers",
                                {"ae_title": "BUSYSIDE", "anonymize": False,
                                 "port": harness.free_receiver_port()})
        side_took = time.monotonic() - t
        out, err = proc.communicate(timeout=60)
        transfer_ended = time.monotonic() - t0
        thread.join(30)
        self.assertEqual(proc.returncode, 0, "the running transfer must finish:\n%s" % err[-2000:])
        self.wait_study(files[0][2], 2)
        self.assertEqual(status, 201, side)
        self.assertEqual(result.get("answer", (None,))[0], 200, repr(result))
        self.assertEchoOk(new, "BUSYMOVE", msg="new port once all is done")
        timing = ("PUT port took %s s, POST of another receiver %.1f s, new port %s %.1f s after "
                  "the PUT began; the transfer on the old port ended %.1f s after it"
                  % ("%.1f" % result["took"] if "took" in result else "?", side_took,
                     "answered" if new_port_ok else "refused", new_port_at, transfer_ended))
        self.assertLess(result.get("took", 99), 1.5, "the PUT waited for the running "
                        "association: " + timing)
        self.assertLess(side_took, 1.0, "another receiver's creation waited: " + timing)
        self.assertTrue(new_port_ok, "the new port did not listen at once: " + timing)

    # ================================================================== 3. whitelists

    def proxy_from(self, port, source="127.0.0.2"):
        proxy = harness.SourceAddressProxy(port, source)
        self.addCleanup(proxy.close)
        return proxy

    def test_30_whitelisted_address_is_the_peer_source_address(self):
        r = self.receiver("WLADDR", whitelist_enabled=True, whitelist="127.0.0.2\n")
        via2 = self.proxy_from(r["port"])
        self.assertEchoOk(via2.port, "WLADDR", msg="from 127.0.0.2 (listed)")
        self.assertEchoRefused(r["port"], "WLADDR", r"Calling AE Title Not Recognized",
                               msg="from 127.0.0.1 (not listed)")
        line = "rejected association from ECHOSCU@127.0.0.1: calling AE title not recognized"
        self.assertTrue(harness.wait_until(lambda: line in self.log_text(), 5),
                        "log line %r missing" % line)

    def test_31_whitelist_entries_by_ae_address_ae_at_address_and_cidr(self):
        r = self.receiver("WLIST", whitelist_enabled=True, whitelist="NOBODY\n")
        port = r["port"]
        via2 = self.proxy_from(port)
        cases = [
            ("GOODSCU", [("GOODSCU", 1, True), ("GOODSCU", 2, True), ("BADSCU", 1, False),
                         ("goodscu", 1, False)]),
            ("GOODSCU@127.0.0.2", [("GOODSCU", 2, True), ("GOODSCU", 1, False),
                                   ("OTHERSCU", 2, False)]),
            ("GOODSCU@127.0.0.1", [("GOODSCU", 1, True), ("GOODSCU", 2, False)]),
            ("127.0.0.2/32", [("ANYSCU", 2, True), ("ANYSCU", 1, False)]),
            ("127.0.0.2/31", [("ANYSCU", 2, True), ("ANYSCU", 1, False)]),
            ("127.0.0.0/31", [("ANYSCU", 1, True), ("ANYSCU", 2, False)]),
            ("127.0.0.0/30", [("ANYSCU", 1, True), ("ANYSCU", 2, True)]),
            ("GOODSCU@127.0.0.0/24", [("GOODSCU", 1, True), ("GOODSCU", 2, True),
                                      ("BADSCU", 2, False)]),
            ("# only the first AE and 127.0.0.2\n\nFIRSTSCU\n  127.0.0.2  \n",
             [("FIRSTSCU", 1, True), ("ANYSCU", 2, True), ("ANYSCU", 1, False)]),
            ("::1\nfe80::/10\nV6SCU@::1/128\n[::1]\nV6SCU@[::1]\n",
             [("V6SCU", 1, False), ("ANYSCU", 1, False)]),
        ]
        problems = []
        for text, checks in cases:
            answer = self.put(r["id"], {"whitelist": text})
            self.assertEqual(answer.get("whitelist"), text, repr(answer))
            for calling, source, allowed in checks:
                target = port if source == 1 else via2.port
                cp = harness.echoscu(target, "WLIST", calling_ae=calling)
                out = harness.proc_output(cp)
                refused = "calling ae title not recognized" in out.lower()
                if allowed and cp.returncode != 0:
                    problems.append("%r: %s from 127.0.0.%d refused:\n%s"
                                    % (text, calling, source, out))
                elif not allowed and (cp.returncode == 0 or not refused):
                    problems.append("%r: %s from 127.0.0.%d should be refused with 'Calling AE "
                                    "Title Not Recognized':\n%s" % (text, calling, source, out))
        self.assertEqual(problems, [], "\n\n".join(problems))
        # A whitelist that is not enabled admits everyone; enabling it at run time applies.
        self.put(r["id"], {"whitelist": "GOODSCU\n", "whitelist_enabled": False})
        self.assertEchoOk(port, "WLIST", calling_ae="BADSCU", msg="whitelist disabled")
        self.put(r["id"], {"whitelist_enabled": True})
        self.assertEchoRefused(port, "WLIST", r"Calling AE Title Not Recognized",
                               calling_ae="BADSCU", msg="whitelist enabled again")

    def test_32_refused_sender_is_told_and_logged_without_patient_data(self):
        r = self.receiver("WLSTORE", whitelist_enabled=True, whitelist="GOODSCU\n")
        via2 = self.proxy_from(r["port"])
        files = make_study(self.mkdtemp("wlrefused"), 2, patient_name="Wlrefused^Patient",
                           patient_id="WLREFUSED1", study_description="Wl Refused")
        cp = harness.storescu(via2.port, "WLSTORE", [f[0] for f in files], calling_ae="BADSCU")
        out = harness.proc_output(cp)
        self.assertNotEqual(cp.returncode, 0, out)
        self.assertIn("Calling AE Title Not Recognized", out)
        line = "rejected association from BADSCU@127.0.0.2: calling AE title not recognized"
        self.assertTrue(harness.wait_until(lambda: line in self.log_text(), 5),
                        "log line %r missing; log tail:\n%s" % (line, self.server.log_tail(20)))
        log = self.log_text()
        for secret in ("Wlrefused", "WLREFUSED1", files[0][2], files[0][1]):
            self.assertNotIn(secret, log, "patient data of a refused sender in the log")
        self.assertIsNone(self.study_count(files[0][2]), "a refused sender's data was stored")
        # The listed sender, from the same address, gets in.
        self.store(via2.port, "WLSTORE", files, calling_ae="GOODSCU")
        self.wait_study(files[0][2], 2)

    def test_33_invalid_whitelist_is_400_naming_the_line(self):
        port = harness.free_receiver_port()
        cases = [
            ("GOODSCU\n300.1.1.1\n", 2),
            ("A\nB\n\n127.0.0.1/31\n", 4),    # host bits set
            ("127.0.0.0/33", 1),
            ("GOODSCU@\n", 1),
            ("\n@127.0.0.1", 2),
            ("GOODSCU\nTHIS_AE_IS_TOO_LONG\n", 2),
            ("10.0.0.1 # lab", 1),
            ("# hosts\nSCU@pacs.example.org", 2),
            ("[127.0.0.1]", 1),
        ]
        for text, line in cases:
            status, body = self.api("POST", "/api/receivers",
                                    {"ae_title": "WLBAD", "port": port, "anonymize": False,
                                     "whitelist_enabled": True, "whitelist": text})
            with self.subTest(whitelist=text):
                self.assertJsonError(status, body, "whitelist")
                self.assertIn("line %d" % line, body["error"], repr(body))
        self.assertNotIn("WLBAD", [r.get("ae_title") for r in self.receivers()])
        # PUT with a bad whitelist: 400, the old whitelist stays and works.
        r = self.receiver("WLKEEP", whitelist_enabled=True, whitelist="GOODSCU\n")
        status, body = self.api("PUT", "/api/receivers/%s" % r["id"],
                                {"whitelist": "GOODSCU\n999.0.0.1\n"})
        self.assertJsonError(status, body, "whitelist")
        self.assertIn("line 2", body["error"], repr(body))
        self.assertEqual(self.get_receiver(r["id"]).get("whitelist"), "GOODSCU\n")
        self.assertEchoOk(r["port"], "WLKEEP", calling_ae="GOODSCU")
        self.assertEchoRefused(r["port"], "WLKEEP", r"Calling AE Title Not Recognized",
                               calling_ae="BADSCU")

    def test_33b_whitelists_are_per_receiver_on_a_shared_port(self):
        a = self.receiver("WLSHARA", whitelist_enabled=True, whitelist="GOODSCU\n")
        b = self.receiver("WLSHARB", port=a["port"])
        self.assertEchoRefused(a["port"], "WLSHARA", r"Calling AE Title Not Recognized",
                               calling_ae="BADSCU")
        self.assertEchoOk(a["port"], "WLSHARA", calling_ae="GOODSCU")
        self.assertEchoOk(a["port"], "WLSHARB", calling_ae="BADSCU",
                          msg="the other receiver on the port has no whitelist")

    def test_34_ipv6_receiver_matches_ipv4_entries_and_ipv6_entries(self):
        # A receiver on "::" sees IPv4 peers as IPv4-mapped addresses; "127.0.0.2" must still
        # match them, and "::1" the IPv6 loopback.
        r = self.receiver("WLV6", bind="::", whitelist_enabled=True, whitelist="127.0.0.2\n::1\n")
        via2 = self.proxy_from(r["port"])
        self.assertEchoOk(via2.port, "WLV6", msg="IPv4 127.0.0.2 to a receiver on ::")
        self.assertEchoRefused(r["port"], "WLV6", r"Calling AE Title Not Recognized",
                               msg="IPv4 127.0.0.1 to a receiver on ::")
        a = harness.DicomAssociation(r["port"], "WLV6", calling_ae="V6SCU", host="::1")
        try:
            a.associate(timeout=10)
            self.assertEqual(a.echo(), 0)
            a.release()
        finally:
            a.close()
        self.put(r["id"], {"whitelist": "127.0.0.2\n"})
        a = harness.DicomAssociation(r["port"], "WLV6", calling_ae="V6SCU", host="::1")
        try:
            with self.assertRaises(harness.AssociationRejected) as ctx:
                a.associate(timeout=10)
            self.assertEqual(ctx.exception.reason, 3, "reason: calling AE title not recognized")
        finally:
            a.close()

    # ================================================================== 4. routing

    def test_40_comments_name_project_subject_and_session(self):
        r = self.receiver("ROUTECMT")
        port = r["port"]
        d = self.mkdtemp("cmt")
        f1 = make_study(d, 2, patient_name="Cmt^One", patient_id="CMT1", accession="ACCCMT",
                        study_description="Not This",
                        extra=[(0x0010, 0x4000, "LT", comment("P1", "S1", "E1"))])
        # Study Comments when Patient Comments name nothing; keys in any case, ',' and ';'.
        f2 = make_study(d, 1, patient_name="Cmt^Two", patient_id="CMT2",
                        extra=[(0x0032, 0x4000, "LT", "project: P2, SUBJECT: S2; Session: E2")])
        # Only a project in the comment: subject and session from the defaults.
        f3 = make_study(d, 1, patient_name="Cmt^Three", patient_id="CMT3",
                        extra=[(0x0010, 0x4000, "LT", "Project: P3")])
        self.store(port, "ROUTECMT", f1 + f2 + f3)
        self.assertFiled(f1[0][3], "P1", "S1", "E1", 2)
        self.assertFiled(f2[0][3], "P2", "S2", "E2", 1)
        self.assertFiled(f3[0][3], "P3", "Cmt_Three", "CMT3", 1)
        projects = {p.get("name"): p for p in self.browse()}
        self.assertIn("P1", projects, repr(projects))
        want = {"name": "P1", "subjects": 1, "sessions": 1, "studies": 1, "series": 1,
                "instances": 2, "modalities": "OT"}
        self.assertEqual({k: projects["P1"].get(k) for k in want}, want, repr(projects["P1"]))
        self.assertEqual([s.get("name") for s in self.browse("P1")], ["S1"])
        self.assertEqual([e.get("name") for e in self.browse("P1", "S1")], ["E1"])
        rows = self.browse("P1", "S1", "E1")
        self.assertEqual([(x.get("SeriesInstanceUID"), x.get("instance_count")) for x in rows],
                         [(f1[0][3], 2)])
        # The DICOM hierarchy still works, and the data is as sent.
        self.wait_study(f1[0][2], 2)
        for path, sop, _, _ in f1 + f2 + f3:
            self.assertStoredIdentical(sop, path)

    def test_41_nothing_to_go_by_is_unassigned_and_labels_are_cleaned(self):
        r = self.receiver("ROUTENONE")
        files = make_study(self.mkdtemp("none"), 1, patient_name="Nolabel^Pat  X.Y",
                           patient_id="NL-PID.7", accession="", study_description=None)
        self.store(r["port"], "ROUTENONE", files)
        self.assertFiled(files[0][3], "Unassigned", "Nolabel_Pat_X_Y", "NL-PID_7", 1)
        utf8 = make_study(self.mkdtemp("utf8"), 1, patient_name="Müller^Jörg", patient_id="MÜ1")
        self.store(r["port"], "ROUTENONE", utf8)
        self.assertFiled(utf8[0][3], "Unassigned", "M_ller_J_rg", "M_1", 1)
        # A receiver's default_project is used when the data names none.
        d = self.receiver("ROUTEDEF", default_project="DefProj")
        files = make_study(self.mkdtemp("def"), 1, patient_name="Def^Pat", patient_id="DEF1")
        self.store(d["port"], "ROUTEDEF", files)
        self.assertFiled(files[0][3], "DefProj", "Def_Pat", "DEF1", 1)

    def test_42_study_description_then_accession_name_the_project(self):
        r = self.receiver("ROUTEDESC")
        f1 = make_study(self.mkdtemp("desc"), 1, patient_name="Desc^Pat", patient_id="DESC1",
                        study_description="Brain MRI/2024", accession="ACC42")
        f2 = make_study(self.mkdtemp("acc"), 1, patient_name="Acc^Pat", patient_id="ACC1",
                        study_description=None, accession="ACC-42.B")
        self.store(r["port"], "ROUTEDESC", f1 + f2)
        self.assertFiled(f1[0][3], "Brain_MRI_2024", "Desc_Pat", "DESC1", 1)
        self.assertFiled(f2[0][3], "ACC-42_B", "Acc_Pat", "ACC1", 1)

    def test_43_receiver_rule_beats_site_rule_beats_default(self):
        self.addCleanup(self.api, "PUT", "/api/routing",
                        {"project": "", "subject": "", "session": ""})
        site = {"project": "(0008,1030):(SITE\\w+):1", "subject": "", "session": ""}
        status, body = self.api("PUT", "/api/routing", site)
        self.assertEqual(status, 200, body)
        status, body = self.api("GET", "/api/routing")
        self.assertEqual(status, 200, body)
        self.assertEqual(body.get("project"), site["project"], repr(body))
        ruled = self.receiver("ROUTERULE", routing={
            "project": "# receiver rules\n(0008,1030):(RECV\\w+):1",
            "subject": "(0010,0020):^([A-Z]+)[0-9]+$:1"})
        plain = self.receiver("ROUTEPLAIN")
        d = self.mkdtemp("rules")
        both = make_study(d, 1, patient_name="Rule^Pat", patient_id="RULEPID77",
                          study_description="SITEX RECVY")
        site_only = make_study(d, 1, patient_name="Rule^Pat", patient_id="RULEPID78",
                               study_description="SITEZ ONLY")
        neither = make_study(d, 1, patient_name="Rule^Pat", patient_id="RULEPID79",
                             study_description="PLAIN DESC")
        plain_both = make_study(d, 1, patient_name="Plain^Pat", patient_id="PLAIN1",
                                study_description="SITEW RECVV")
        self.store(ruled["port"], "ROUTERULE", both + site_only + neither)
        self.store(plain["port"], "ROUTEPLAIN", plain_both)
        self.assertFiled(both[0][3], "RECVY", "RULEPID", "RULEPID77", 1)
        self.assertFiled(site_only[0][3], "SITEZ", "RULEPID", "RULEPID78", 1)
        self.assertFiled(neither[0][3], "PLAIN_DESC", "RULEPID", "RULEPID79", 1)
        self.assertFiled(plain_both[0][3], "SITEW", "Plain_Pat", "PLAIN1", 1)
        # Written rules also beat "Project:" comments.
        cmt = make_study(d, 1, patient_name="Rule^Pat", patient_id="RULEPID80",
                         study_description="RECVC",
                         extra=[(0x0010, 0x4000, "LT", comment("CMTP", "CMTS", "CMTE"))])
        self.store(ruled["port"], "ROUTERULE", cmt)
        self.assertFiled(cmt[0][3], "RECVC", "RULEPID", "CMTE", 1)

    def test_44_invalid_rules_are_400_naming_line_and_field(self):
        port = harness.free_receiver_port()
        cases = [
            ({"project": "(0008,1030):^(\\w+):1\n(0008,1030:x"}, "routing.project", 2),
            ({"subject": "(0010,0010):[unclosed"}, "routing.subject", 1),
            ({"session": "# c\n\n(0010,0020):abc:2"}, "routing.session", 3),
            ({"project": "(0008,1030)"}, "routing.project", 1),
            ({"project": "StudyDescription:(.*)"}, "routing.project", 1),
        ]
        for routing, field, line in cases:
            status, body = self.api("POST", "/api/receivers",
                                    {"ae_title": "RULEBAD", "port": port, "anonymize": False,
                                     "routing": routing})
            with self.subTest(routing=routing):
                self.assertJsonError(status, body, field)
                self.assertIn("line %d" % line, body["error"], repr(body))
        self.assertNotIn("RULEBAD", [r.get("ae_title") for r in self.receivers()])
        before = self.api("GET", "/api/routing")
        status, body = self.api("PUT", "/api/routing", {"project": "\n\n(zzzz,0010):x"})
        self.assertJsonError(status, body, "routing.project")
        self.assertIn("line 3", body["error"], repr(body))
        self.assertEqual(self.api("GET", "/api/routing"), before,
                         "a refused PUT /api/routing changed the rules")

    def test_44b_routing_try_answers_what_an_arrival_gets(self):
        """POST /api/routing/try names the labels, the rule line and the attribute that decided;
        an instance with those attributes sent to the receiver is filed exactly there, and
        trying the stored instance by its SOP Instance UID answers the same."""
        self.addCleanup(self.api, "PUT", "/api/routing", {"project": "", "subject": "", "session": ""})
        site_rule = "(0010,0020):^([A-Z]+)[0-9]+$"
        status, body = self.api("PUT", "/api/routing", {"project": "", "subject": site_rule, "session": ""})
        self.assertEqual(status, 200, body)
        rule = "(0008,1030):^Study-(\\d+)"
        r = self.receiver("TRYRULE", routing={"project": "# the study number\n" + rule})
        attrs = {"StudyDescription": "Study-42", "(0010,0020)": "TRY123", "PatientName": "Try^Pat"}
        status, got = self.api("POST", "/api/routing/try", {"receiver": r["id"], "attributes": attrs})
        self.assertEqual(status, 200, got)
        self.assertEqual({k: got[k]["value"] for k in ("project", "subject", "session")},
                         {"project": "42", "subject": "TRY", "session": "TRY123"}, got)
        self.assertEqual((got["project"]["source"], got["project"]["line"], got["project"]["rule"],
                          got["project"]["tag"], got["project"]["keyword"]),
                         ("receiver_rule", 2, rule, "(0008,1030)", "StudyDescription"), got["project"])
        self.assertEqual((got["subject"]["source"], got["subject"]["line"], got["subject"]["rule"]),
                         ("site_rule", 1, site_rule), got["subject"])
        # No rule for the session: Patient ID, the default rule.
        self.assertEqual((got["session"]["source"], got["session"]["tag"], got["session"]["rule"]),
                         ("default_rule", "(0010,0020)", None), got["session"])
        self.assertIs(got["anonymize"], False)
        self.assertEqual(got["attributes"]["(0008,1030)"], "Study-42", got["attributes"])
        # The same attributes, sent: filed where the answer said.
        f = make_study(self.mkdtemp("try"), 1, patient_name="Try^Pat", patient_id="TRY123",
                       study_description="Study-42")
        self.store(r["port"], "TRYRULE", f)
        self.assertFiled(f[0][3], "42", "TRY", "TRY123", 1)
        status, again = self.api("POST", "/api/routing/try", {"receiver": r["id"], "sop_instance_uid": f[0][1]})
        self.assertEqual(status, 200, again)
        self.assertEqual({k: again[k]["value"] for k in ("project", "subject", "session")},
                         {"project": "42", "subject": "TRY", "session": "TRY123"}, again)
        # Rules as being edited replace the receiver's, and the site's.
        status, edited = self.api("POST", "/api/routing/try", {
            "receiver": r["id"], "routing": {"project": "(0008,1030):^Study-(\\d+)-(\\w+):2"},
            "site_routing": {"subject": ""}, "attributes": {"StudyDescription": "Study-42-EDITED",
                                                            "PatientName": "Try^Pat"}})
        self.assertEqual(status, 200, edited)
        self.assertEqual((edited["project"]["value"], edited["project"]["line"]), ("EDITED", 1), edited)
        self.assertEqual((edited["subject"]["value"], edited["subject"]["source"]), ("Try_Pat", "default_rule"))
        # Refusals name the field, and the line of a rule.
        for body, field, words in [
            ({"routing": {"project": "ok\n(0008,1030):[x"}, "attributes": {}}, "routing.project", "line 1"),
            ({"site_routing": {"session": "\n(0008,1030):(x"}, "attributes": {}}, "site_routing.session", "line 2"),
            ({"attributes": {"NotAKeyword": "x"}}, "attributes.NotAKeyword", "unknown attribute"),
            ({"attributes": {"PatientName": 5}}, "attributes.PatientName", "string"),
            ({}, "attributes", "either"),
            ({"attributes": {}, "sop_instance_uid": f[0][1]}, "attributes", "either"),
            ({"attributes": {}, "color": "red"}, "color", "unknown field"),
        ]:
            with self.subTest(body=body):
                status, answer = self.api("POST", "/api/routing/try", body)
                self.assertJsonError(status, answer, field)
                self.assertIn(words, answer["error"])
        status, answer = self.api("POST", "/api/routing/try", {"sop_instance_uid": "1.2.3.999"})
        self.assertEqual(status, 404, answer)
        status, answer = self.api("POST", "/api/routing/try", {"receiver": "NOSUCHRCV", "attributes": {}})
        self.assertEqual(status, 404, answer)

    def test_44c_routing_try_on_an_anonymizing_receiver_gives_the_pseudonyms_it_files_under(self):
        r = self.receiver("TRYANON", anonymize=True)
        attrs = {"PatientName": "Anon^Try", "PatientID": "ANONTRY1", "StudyDescription": "Named"}
        status, got = self.api("POST", "/api/routing/try", {"receiver": r["id"], "attributes": attrs})
        self.assertEqual(status, 200, got)
        self.assertIs(got["anonymize"], True)
        # Study Description is removed by the profile: no project from it (PS3.15 E.1-1).
        self.assertEqual((got["project"]["value"], got["project"]["source"]), ("Unassigned", "unassigned"), got)
        self.assertRegex(got["subject"]["value"], r"^SUBJ_[0-9]{12}$")
        self.assertIs(got["subject"]["pseudonym"], True)
        f = make_study(self.mkdtemp("tryanon"), 1, patient_name="Anon^Try", patient_id="ANONTRY1",
                       study_description="Named")
        self.store(r["port"], "TRYANON", f)
        ok = harness.wait_until(lambda: any(
            s["name"] == got["subject"]["value"] for s in self.browse("Unassigned")), 10, 0.1)
        self.assertTrue(ok, "subject %s not in Unassigned: %r" % (got["subject"]["value"], self.browse("Unassigned")))
        sessions = self.browse("Unassigned", got["subject"]["value"])
        self.assertEqual([e["name"] for e in sessions], [got["session"]["value"]])
        # The setting as being edited: without anonymization the labels are the values.
        status, plain = self.api("POST", "/api/routing/try", {"receiver": r["id"], "anonymize": False,
                                                              "attributes": attrs})
        self.assertEqual(status, 200, plain)
        self.assertEqual((plain["anonymize"], plain["project"]["value"], plain["subject"]["value"]),
                         (False, "Named", "Anon_Try"), plain)
        status, bad = self.api("POST", "/api/routing/try", {"anonymize": "yes", "attributes": {}})
        self.assertJsonError(status, bad, "anonymize")

    def test_44d_receiver_dry_run_checks_and_stores_nothing(self):
        port = harness.free_receiver_port()
        body = {"ae_title": "DRYRCV", "port": port, "anonymize": False, "whitelist_enabled": True,
                "whitelist": "127.0.0.1\n10.0.0.0/33"}
        status, answer = self.api("POST", "/api/receivers?dry_run=true", body)
        self.assertJsonError(status, answer, "whitelist")
        self.assertIn("line 2", answer["error"])
        body["whitelist"] = "127.0.0.1"
        status, answer = self.api("POST", "/api/receivers?dry_run=true", body)
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["ae_title"], "DRYRCV")
        self.assertNotIn("DRYRCV", [x["ae_title"] for x in self.receivers()])
        # Nothing listens on the port.
        self.assertEchoRefused(port, "DRYRCV", "refused|failed")
        r = self.receiver("DRYRCV2")
        status, answer = self.api("PUT", "/api/receivers/%s?dry_run=true" % r["id"], {"port": 80})
        self.assertJsonError(status, answer, "port")
        status, answer = self.api("PUT", "/api/receivers/%s?dry_run=true" % r["id"], {"ae_title": "DRYRCV3"})
        self.assertEqual((status, answer.get("ae_title")), (200, "DRYRCV3"), answer)
        self.assertEqual(self.get_receiver(r["id"])["ae_title"], "DRYRCV2")
        status, answer = self.api("POST", "/api/receivers?dry_run=maybe", body)
        self.assertJsonError(status, answer, "dry_run")

    def test_45_a_series_keeps_the_labels_it_was_first_filed_under(self):
        r = self.receiver("ROUTEKEEP")
        d = self.mkdtemp("keep")
        first = make_study(d, 1, patient_name="Keep^Pat", patient_id="KEEP1",
                           extra=[(0x0010, 0x4000, "LT", comment("FIRSTP", "FS", "FE"))])
        path2 = d / "second.dcm"
        sop2 = _uid("instance", next(_index))
        dicomgen.write_instance(path2, sop_uid=sop2, study_uid=first[0][2],
                                series_uid=first[0][3], patient_name="Keep^Pat",
                                patient_id="KEEP1", accession_number="", instance_number=2,
                                extra_elements=[(0x0010, 0x4000, "LT",
                                                 comment("SECONDP", "SS", "SE"))])
        self.store(r["port"], "ROUTEKEEP", first)
        self.assertFiled(first[0][3], "FIRSTP", "FS", "FE", 1)
        self.store(r["port"], "ROUTEKEEP", [(path2, sop2, first[0][2], first[0][3])])
        self.assertFiled(first[0][3], "FIRSTP", "FS", "FE", 2)
        self.assertEqual(self.where_is(first[0][3]), [("FIRSTP", "FS", "FE", 2)])
        self.assertNotIn("SECONDP", [p.get("name") for p in self.browse()])

    def test_46_processors_map_ae_to_project_set_and_clear_attributes(self):
        r = self.receiver("PROCS", processors=[
            {"type": "map_ae_to_project", "map": {"MAPSCU": "MAPPED"}},
            {"type": "set_attributes", "attributes": {"InstitutionName": "SETBYPROC"}},
            {"type": "clear_attributes", "attributes": ["ReferringPhysicianName"]}])
        d = self.mkdtemp("procs")
        mapped = make_study(d, 1, patient_name="Proc^Pat", patient_id="PROC1",
                            study_description="Proc Desc",
                            extra=[(0x0008, 0x0080, "LO", "Original Institution")])
        other = make_study(d, 1, patient_name="Proc^Pat", patient_id="PROC2",
                           study_description="Proc Desc")
        for f in mapped + other:
            cp = harness.run_tool(["dcmodify", "-nb", "-m", "(0008,0090)=Clearme^Doctor", f[0]])
            self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.store(r["port"], "PROCS", mapped, calling_ae="MAPSCU")
        self.store(r["port"], "PROCS", other, calling_ae="OTHERSCU")
        self.assertFiled(mapped[0][3], "MAPPED", "Proc_Pat", "PROC1", 1)
        self.assertFiled(other[0][3], "Proc_Desc", "Proc_Pat", "PROC2", 1)
        for f in mapped + other:
            el = dicomgen.read_elements(self.fetch(f[1]))
            self.assertEqual(harness.text_of(el, (0x0008, 0x0080)), "SETBYPROC", "InstitutionName")
            self.assertIn(harness.text_of(el, (0x0008, 0x0090)), (None, ""), "ReferringPhysicianName")
            self.assertEqual(harness.text_of(el, (0x0010, 0x0010)), "Proc^Pat", "PatientName kept")
            self.assertEqual(harness.text_of(el, (0x0020, 0x000D)), f[2], "StudyInstanceUID kept")
            src = dicomgen.read_elements(f[0])
            self.assertEqual(el.get((0x7FE0, 0x0010)), src.get((0x7FE0, 0x0010)), "PixelData")

    # ================================================================== 5. anonymization

    NEEDLES = [b"Zyxwv", b"Qwerty", b"PIDQ98765", b"ACCQWERTY77", b"Instqwerty", b"Refqwerty",
               b"Opqwerty", b"Qwertystreet", b"SNQWERTY123", b"STATIONQW", b"secretprivate",
               b"PRIVQWERTY", b"NestedInstQwerty", b"NestedQwerty", b"OTHERPIDQWERTY"]

    def anonymized(self):
        """Once per class: the same 3 instances (one study, 2 series, with identifying values)
        sent to ANONA (anonymizing by default, archive) and ANONB (anonymizing, staging), then
        ANONB's session archived by hand. Scans of the data directory and the log are taken
        while staged and after."""
        cls = type(self)
        if cls._anon_error:
            self.fail("the anonymization set-up failed earlier: %s" % cls._anon_error)
        if cls._anon is None:
            try:
                cls._anon = self._anonymize_once()
            except Exception as e:
                cls._anon_error = "%s: %s" % (type(e).__name__, e)
                raise
        return cls._anon

    def _anonymize_once(self):
        st = {}
        a = self.create({"routing": DESCRIPTION_IS_PROJECT, "ae_title": "ANONA", "port": harness.free_receiver_port()})
        b = self.create({"routing": DESCRIPTION_IS_PROJECT, "ae_title": "ANONB", "port": harness.free_receiver_port(),
                         "direct_archive": False, "staging_idle_seconds": 600})
        st["a"], st["b"] = a, b
        anon_uid = dicomgen.make_uids()  # a run component of its own: no prefix of other UIDs
        src = self.mkdtemp("anonsrc")
        files = make_study(src, 3, series=2, patient_name="Zyxwv^Qwerty",
                           patient_id="PIDQ98765", accession="ACCQWERTY77",
                           study_description="Anon Study", uid=anon_uid, extra=[
                               (0x0008, 0x0080, "LO", "Instqwerty Hospital"),
                               (0x0008, 0x1010, "SH", "STATIONQW"),
                               (0x0008, 0x1070, "PN", "Opqwerty^Tech"),
                               (0x0009, 0x0010, "LO", "PRIVQWERTY"),
                               (0x0009, 0x1001, "LO", "secretprivate"),
                               (0x0010, 0x1040, "LO", "12 Qwertystreet"),
                               (0x0018, 0x1000, "LO", "SNQWERTY123"),
                               # a sequence the profile keeps (processed item by item) ...
                               (0x0008, 0x2218, "SQ", sequence_value([
                                   explicit_element(0x0008, 0x0080, "LO", "NestedInstQwerty"),
                                   explicit_element(0x0008, 0x0100, "SH", "T-D1100"),
                                   explicit_element(0x0008, 0x0102, "SH", "SRT"),
                                   explicit_element(0x0008, 0x0104, "LO", "Head"),
                                   explicit_element(0x0010, 0x0010, "PN", "NestedQwerty^Pat")])),
                               # ... and one it removes
                               (0x0010, 0x1002, "SQ", sequence_value([
                                   explicit_element(0x0010, 0x0020, "LO", "OTHERPIDQWERTY"),
                                   explicit_element(0x0010, 0x0022, "CS", "TEXT")]))])
        for f in files:
            cp = harness.run_tool(["dcmodify", "-nb", "-m", "(0008,0090)=Refqwerty^Doctor", f[0]])
            self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        st["files"] = files
        st["uid_needles"] = sorted({u.encode() for f in files for u in f[1:]})
        st["needles"] = self.NEEDLES + st["uid_needles"]
        missing = set(st["needles"]) - set(harness.find_bytes([src], st["needles"]))
        self.assertEqual(missing, set(), "the test data lacks some of the values searched for")

        self.store(a["port"], "ANONA", files, calling_ae="ANONSCU")
        ok = harness.wait_until(lambda: any(p.get("name") == "Anon_Study" and
                                            p.get("instances") == 3 for p in self.browse()), 10)
        self.assertTrue(ok, "project Anon_Study with 3 instances not listed: %r" % self.browse())
        subjects = self.browse("Anon_Study")
        self.assertEqual(len(subjects), 1, repr(subjects))
        st["subject"] = subjects[0]["name"]
        sessions = self.browse("Anon_Study", st["subject"])
        self.assertEqual(len(sessions), 1, repr(sessions))
        st["session"] = sessions[0]["name"]
        series = self.browse("Anon_Study", st["subject"], st["session"])
        st["series"] = {row["SeriesInstanceUID"]: row for row in series}
        st["stored"] = {}  # new SOP UID -> file bytes
        for uid in st["series"]:
            status, rows = self.api("GET", "/api/series/%s/instances" % uid)
            self.assertEqual(status, 200, rows)
            for row in rows:
                st["stored"][row["SOPInstanceUID"]] = self.fetch(row["SOPInstanceUID"])

        self.store(b["port"], "ANONB", files, calling_ae="ANONSCU")
        ok = harness.wait_until(lambda: [s for s in self.staged(b["id"])
                                         if s.get("instance_count") == 3], 10)
        self.assertTrue(ok, "ANONB's 3 instances not staged: %r" % self.staged())
        st["staged_rows"] = self.staged(b["id"])
        sid = st["staged_rows"][0]["id"]
        st["staged_files"] = {}
        for p in harness.files_under(self.server.data_dir / "staging" / str(sid)):
            st["staged_files"][p] = Path(p).read_bytes()
        st["scan_staged"] = harness.find_bytes([self.server.data_dir, self.server.log_path],
                                               st["needles"])
        st["archive_answer"] = self.api("POST", "/api/staging/%s/archive" % sid)
        st["scan_archived"] = harness.find_bytes([self.server.data_dir, self.server.log_path],
                                                 st["needles"])
        return st

    def test_50_api_receivers_anonymize_by_default(self):
        st = self.anonymized()
        self.assertIs(st["a"].get("anonymize"), True, repr(st["a"]))
        self.assertEqual(st["a"].get("anonymization"),
                         {"retain_dates": False, "retain_device_identity": False,
                          "retain_uids": False, "keep_private_tags": False}, repr(st["a"]))

    def test_51_anonymized_files_carry_no_identity(self):
        st = self.anonymized()
        files = st["files"]
        self.assertRegex(st["subject"], r"^SUBJ_[0-9]{12}$", "subject label from Patient Name")
        self.assertRegex(st["session"], r"^SESS_[0-9]{12}$", "session label from Patient ID")
        self.assertEqual(len(st["stored"]), 3, "stored instances: %r" % list(st["stored"]))
        originals = {u for f in files for u in f[1:]}
        new_studies = set()
        new_series = Counter()
        source = dicomgen.read_elements(files[0][0])
        for sop, payload in st["stored"].items():
            meta, _ = dicomgen.read_meta(payload)
            el = dicomgen.read_elements(payload)
            where = "stored instance %s" % sop
            self.assertEqual(meta.get("MediaStorageSOPInstanceUID"), sop, where)
            self.assertEqual(harness.text_of(el, (0x0008, 0x0018)), sop, where)
            self.assertNotIn(sop, originals, where + ": SOP Instance UID kept")
            study, series = harness.text_of(el, (0x0020, 0x000D)), harness.text_of(el, (0x0020, 0x000E))
            self.assertNotIn(study, originals, where + ": Study Instance UID kept")
            self.assertNotIn(series, originals, where + ": Series Instance UID kept")
            new_studies.add(study)
            new_series[series] += 1
            self.assertEqual(harness.text_of(el, (0x0012, 0x0062)), "YES",
                             where + ": PatientIdentityRemoved")
            self.assertTrue(harness.text_of(el, (0x0012, 0x0063)), where + ": DeidentificationMethod")
            self.assertEqual(harness.text_of(el, (0x0010, 0x0010)), st["subject"], where + ": PatientName")
            self.assertEqual(harness.text_of(el, (0x0010, 0x0020)), st["subject"], where + ": PatientID")
            private = ["(%04X,%04X)" % t for t in el if t[0] % 2 == 1]
            self.assertEqual(private, [], where + ": private tags kept")
            self.assertNotIn((0x0010, 0x1002), el, where + ": OtherPatientIDsSequence kept")
            self.assertIn((0x0008, 0x2218), el, where + ": AnatomicRegionSequence (K) removed")
            for tag, name in (((0x0008, 0x0080), "InstitutionName"),
                              ((0x0008, 0x0050), "AccessionNumber"),
                              ((0x0008, 0x0090), "ReferringPhysicianName"),
                              ((0x0008, 0x1070), "OperatorsName"),
                              ((0x0010, 0x1040), "PatientAddress"),
                              ((0x0010, 0x0030), "PatientBirthDate"),
                              ((0x0008, 0x0020), "StudyDate")):
                orig = harness.text_of(source, tag)
                self.assertNotEqual(harness.text_of(el, tag), orig,
                                    "%s: %s kept (%r)" % (where, name, orig))
        self.assertEqual(len(new_studies), 1, "one original study became %r" % new_studies)
        self.assertEqual(sorted(new_series.values()), [1, 2],
                         "2 series (2 + 1 instances) became %r" % dict(new_series))
        self.assertEqual(set(new_series), set(st["series"]), "series listed by the browse API")
        # Pixel data is not identifying here: it is kept byte for byte.
        by_sop = {f[1]: f[0] for f in files}
        sent_pixels = sorted(dicomgen.read_elements(p)[(0x7FE0, 0x0010)][1]
                             for p in by_sop.values())
        got_pixels = sorted(dicomgen.read_elements(x)[(0x7FE0, 0x0010)][1]
                            for x in st["stored"].values())
        self.assertEqual(got_pixels, sent_pixels, "PixelData changed by anonymization")

    def test_52_same_original_gives_the_same_new_uids_on_another_receiver(self):
        st = self.anonymized()
        rows = st["staged_rows"]
        self.assertEqual(len(rows), 1, repr(rows))
        row = rows[0]
        self.assertEqual((row.get("project"), row.get("subject"), row.get("session"),
                          row.get("instance_count")),
                         ("Anon_Study", st["subject"], st["session"], 3), repr(row))
        self.assertGreater(row.get("bytes") or 0, 0, repr(row))
        staged = {}
        for path, payload in st["staged_files"].items():
            el = dicomgen.read_elements(payload)
            staged[harness.text_of(el, (0x0008, 0x0018))] = (harness.text_of(el, (0x0020, 0x000D)),
                                                     harness.text_of(el, (0x0020, 0x000E)))
        archived = {}
        for sop, payload in st["stored"].items():
            el = dicomgen.read_elements(payload)
            archived[sop] = (harness.text_of(el, (0x0020, 0x000D)), harness.text_of(el, (0x0020, 0x000E)))
        self.assertEqual(staged, archived,
                         "the same originals anonymized by ANONB (staged) and ANONA (archived) "
                         "must get the same new SOP/study/series UIDs")
        status, answer = st["archive_answer"]
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer.get("archived"), 3, repr(answer))
        self.assertEqual(self.staged(st["b"]["id"]), [])
        study = next(iter(archived.values()))[0]
        self.wait_study(study, 3)

    def test_53_no_original_value_on_disk_or_in_the_log(self):
        st = self.anonymized()
        self.assertEqual(st["scan_staged"], {},
                         "original values found while ANONB's copy was staged")
        self.assertEqual(st["scan_archived"], {},
                         "original values found after ANONB's session was archived")
        now = harness.find_bytes([self.server.data_dir, self.server.log_path], st["needles"])
        self.assertEqual(now, {}, "original values found now")
        names = [p for p in harness.files_under(self.server.data_dir)
                 if any(n.decode() in p for n in st["needles"])]
        self.assertEqual(names, [], "file names made of original values")
        for f in st["files"]:
            status, _, _ = self.server.raw("GET", "/api/instances/%s/file" % f[1])
            self.assertEqual(status, 404, "instance found by its original SOP Instance UID")
        status, body = self.api("GET", "/api/studies?PatientID=PIDQ98765")
        self.assertEqual((status, body), (200, []))
        status, _, payload = self.server.raw("GET", "/api/studies")
        for n in st["needles"]:
            self.assertNotIn(n, payload, "GET /api/studies shows an original value")

    def test_54_retain_uids_keeps_the_original_uids(self):
        r = self.create({"routing": DESCRIPTION_IS_PROJECT, "ae_title": "ANONUIDS", "port": harness.free_receiver_port(),
                         "anonymization": {"retain_uids": True}})
        self.assertIs(r.get("anonymize"), True)
        files = make_study(self.mkdtemp("retainuids"), 2, patient_name="Retain^Uids",
                           patient_id="RETAINUIDS1", study_description="Retain Uids")
        self.store(r["port"], "ANONUIDS", files)
        self.wait_study(files[0][2], 2)
        for path, sop, study, series in files:
            el = dicomgen.read_elements(self.fetch(sop))
            self.assertEqual((harness.text_of(el, (0x0008, 0x0018)), harness.text_of(el, (0x0020, 0x000D)),
                              harness.text_of(el, (0x0020, 0x000E))), (sop, study, series))
            self.assertEqual(harness.text_of(el, (0x0012, 0x0062)), "YES")
            self.assertRegex(harness.text_of(el, (0x0010, 0x0010)), r"^SUBJ_[0-9]{12}$")

    def test_54b_a_projects_options_replace_the_receivers(self):
        # The receiver replaces UIDs; project KEEPUIDS asks to retain them, so data filed there
        # keeps its UIDs, while data of other projects on the same receiver does not.
        r = self.create({"ae_title": "ANONPROJ", "port": harness.free_receiver_port()})
        status, body = self.api("PUT", "/api/projects/KEEPUIDS/anonymization", {"retain_uids": True})
        self.assertEqual(status, 200, body)
        status, body = self.api("GET", "/api/projects/KEEPUIDS/anonymization")
        self.assertEqual((status, body["anonymization"]["retain_uids"]), (200, True))
        status, body = self.api("PUT", "/api/projects/KEEPUIDS/anonymization", {"retain_all": True})
        self.assertEqual((status, body.get("field")), (400, "anonymization.retain_all"))
        status, body = self.api("PUT", "/api/projects/bad%20name/anonymization", {})
        self.assertEqual((status, body.get("field")), (400, "project"))
        kept = make_study(self.mkdtemp("projkeep"), 1, patient_name="Proj^Keep", patient_id="PROJKEEP1",
                          extra=[(0x0010, 0x4000, "LT", comment("KEEPUIDS", "PK1", "E1"))])
        other = make_study(self.mkdtemp("projother"), 1, patient_name="Proj^Other",
                           patient_id="PROJOTHER1",
                           extra=[(0x0010, 0x4000, "LT", comment("OTHERPROJ", "PO1", "E1"))])
        self.store(r["port"], "ANONPROJ", kept + other)
        self.wait_study(kept[0][2], 1)
        el = dicomgen.read_elements(self.fetch(kept[0][1]))
        self.assertEqual(harness.text_of(el, (0x0012, 0x0062)), "YES")
        self.assertEqual(harness.text_of(el, (0x0010, 0x0010)), "PK1")
        self.assertTrue(harness.wait_until(lambda: self.browse("OTHERPROJ", "PO1", "E1"), 10))
        series = self.browse("OTHERPROJ", "PO1", "E1")[0]["SeriesInstanceUID"]
        self.assertNotEqual(series, other[0][3], "the receiver's own options still replace UIDs")
        # Removed: the receiver's options apply again.
        status, _ = self.api("DELETE", "/api/projects/KEEPUIDS/anonymization")
        self.assertEqual(status, 204)
        status, body = self.api("GET", "/api/projects/KEEPUIDS/anonymization")
        self.assertIsNone(body["anonymization"])
        again = make_study(self.mkdtemp("projagain"), 1, patient_name="Proj^Again",
                           patient_id="PROJAGAIN1",
                           extra=[(0x0010, 0x4000, "LT", comment("KEEPUIDS", "PK2", "E1"))])
        self.store(r["port"], "ANONPROJ", again)
        self.assertTrue(harness.wait_until(lambda: self.browse("KEEPUIDS", "PK2", "E1"), 10))
        self.assertNotEqual(self.browse("KEEPUIDS", "PK2", "E1")[0]["SeriesInstanceUID"], again[0][3])

    def test_55_retain_dates_shifts_one_patients_dates_by_the_same_days(self):
        r = self.create({"routing": DESCRIPTION_IS_PROJECT, "ae_title": "ANONDATES", "port": harness.free_receiver_port(),
                         "anonymization": {"retain_dates": True}})
        d = self.mkdtemp("dates")
        studies = {}
        for project, day, series_day in (("Dates_One", "20240115", "20240116"),
                                         ("Dates_Two", "20240301", "20240229")):
            studies[project] = make_study(
                d, 1, patient_name="Dates^Pat", patient_id="DATES1",
                study_description=project.replace("_", " "), study_date=day,
                extra=[(0x0008, 0x0021, "DA", series_day),
                       (0x0008, 0x002A, "DT", series_day + "103000")])
            self.store(r["port"], "ANONDATES", studies[project])
        shifts = {}
        for project, src in studies.items():
            harness.wait_until(lambda: self.browse(project), 10)
            subjects = self.browse(project)
            self.assertEqual(len(subjects), 1, "%s: %r" % (project, subjects))
            sessions = self.browse(project, subjects[0]["name"])
            rows = self.browse(project, subjects[0]["name"], sessions[0]["name"])
            status, inst = self.api("GET",
                                    "/api/series/%s/instances" % rows[0]["SeriesInstanceUID"])
            el = dicomgen.read_elements(self.fetch(inst[0]["SOPInstanceUID"]))
            orig = dicomgen.read_elements(src[0][0])
            for tag, name in (((0x0008, 0x0020), "StudyDate"), ((0x0008, 0x0021), "SeriesDate"),
                              ((0x0008, 0x002A), "AcquisitionDateTime")):
                value = harness.text_of(el, tag) or ""
                self.assertRegex(value, r"^[0-9]{8}", "%s %s" % (project, name))
                shifts[(project, name)] = days_between(value[:8], harness.text_of(orig, tag)[:8])
            self.assertEqual(harness.text_of(el, (0x0008, 0x002A))[8:], "103000",
                             "the time part of a DT is kept")
            # PS3.15 Table E.1-1: no C for Patient's Birth Date in the dates option: emptied.
            self.assertIn(harness.text_of(el, (0x0010, 0x0030)), (None, ""), "PatientBirthDate")
        values = set(shifts.values())
        self.assertEqual(len(values), 1, "one patient's dates must move by the same days: %r"
                         % shifts)
        shift = values.pop()
        self.assertTrue(-3650 <= shift < 0, "shift of %d days" % shift)

    def test_57_nothing_original_reaches_the_disk_during_a_slow_transfer(self):
        # "Received into memory": while a 3 MB instance trickles in, nothing under the data
        # directory may hold its identifying values (no spooled temp file).
        r = self.create({"routing": DESCRIPTION_IS_PROJECT, "ae_title": "ANONSLOW", "port": harness.free_receiver_port()})
        files = make_study(self.mkdtemp("slow"), 1, patient_name="Slowleak^Patient",
                           patient_id="SLOWLEAK1", study_description="Slow Anon",
                           uid=dicomgen.make_uids(), size=3_000_000,
                           extra=[(0x0008, 0x0080, "LO", "Slowinstitution")])
        needles = [b"Slowleak", b"SLOWLEAK1", b"Slowinstitution"] + \
            [u.encode() for u in files[0][1:]]
        proxy = harness.ThrottledProxy(r["port"], rate=1_500_000, throttle="upload")
        self.addCleanup(proxy.close)
        proc = harness.start_tool(harness.storescu_args(proxy.port, "ANONSLOW", [files[0][0]],
                                                        calling_ae="SLOWSCU"))
        hits, seen = {}, set()
        volatile = [self.server.data_dir / d for d in ("tmp", "staging", "journal")]
        t0 = time.monotonic()
        try:
            while proc.poll() is None and time.monotonic() - t0 < 60:
                for p in itertools.chain.from_iterable(harness.files_under(d) for d in volatile):
                    seen.add(p)
                for n, where in harness.find_bytes(volatile, needles).items():
                    hits.setdefault(n, set()).update(where)
                time.sleep(0.02)
        finally:
            out, err = proc.communicate(timeout=60)
        elapsed = time.monotonic() - t0
        self.assertEqual(proc.returncode, 0, "storescu: %s\n%s" % (out, err[-2000:]))
        self.assertGreater(elapsed, 1.0, "the transfer was not slow enough to watch")
        self.assertEqual(hits, {}, "original values on disk during the transfer")
        ok = harness.wait_until(lambda: self.browse("Slow_Anon"), 10)
        self.assertTrue(ok, "project Slow_Anon not listed")
        self.assertEqual(harness.find_bytes([self.server.data_dir, self.server.log_path], needles),
                         {}, "original values on disk after the transfer")

    def test_58_a_refused_instance_leaves_no_original_uid_in_the_log(self):
        # A C-STORE whose command names another SOP Instance UID than its data set is refused;
        # on an anonymizing receiver neither UID may reach the log (nor any other value).
        r = self.create({"ae_title": "ANONBAD", "port": harness.free_receiver_port()})
        uid = dicomgen.make_uids()
        d = self.mkdtemp("anonbad")
        path = d / "bad.dcm"
        sop, study, series = uid("instance", 1), uid("study", 1), uid("series", 1, 1)
        claimed = uid("instance", 2)
        dicomgen.write_instance(path, sop_uid=sop, study_uid=study, series_uid=series,
                                patient_name="Badleak^Patient", patient_id="BADLEAK1",
                                syntax="implicit", size=1024)
        a = harness.DicomAssociation(r["port"], "ANONBAD", calling_ae="RAWSCU", contexts=[
            (dicomgen.SECONDARY_CAPTURE_STORAGE, [harness.IMPLICIT_VR_LE])])
        try:
            a.associate(timeout=10)
            status = raw_c_store(a, dicomgen.SECONDARY_CAPTURE_STORAGE, claimed,
                                 dicomgen.dataset_bytes(path))
            a.release()
        finally:
            a.close()
        self.assertNotEqual(status, 0x0000, "a data set whose SOP Instance UID differs from the "
                            "request's was accepted")
        time.sleep(0.3)  # the refusal is logged as it is answered; leave a margin
        leaks = harness.find_bytes([self.server.data_dir, self.server.log_path],
                                   [b"Badleak", b"BADLEAK1", sop.encode(), claimed.encode(),
                                    study.encode(), series.encode()])
        lines = [line for line in self.log_text().splitlines()
                 if any(n in line for n in (sop, claimed, study, series, "Badleak"))]
        self.assertEqual(leaks, {}, "original values of a refused instance written:\n%s"
                         % "\n".join(lines))

    def test_55b_options_keep_private_tags_and_device_identity(self):
        r = self.create({"routing": DESCRIPTION_IS_PROJECT, "ae_title": "ANONOPTS", "port": harness.free_receiver_port(),
                         "anonymization": {"keep_private_tags": True,
                                           "retain_device_identity": True}})
        files = make_study(self.mkdtemp("opts"), 1, patient_name="Opts^Pat",
                           patient_id="OPTS1", study_description="Anon Opts", extra=[
                               (0x0008, 0x1010, "SH", "OPTSTATION"),
                               (0x0009, 0x0010, "LO", "OPTSCREATOR"),
                               (0x0009, 0x1001, "LO", "optsprivate"),
                               (0x0018, 0x1000, "LO", "OPTSERIAL")])
        self.store(r["port"], "ANONOPTS", files)
        ok = harness.wait_until(lambda: self.browse("Anon_Opts"), 10)
        self.assertTrue(ok, "project Anon_Opts not listed")
        s = self.browse("Anon_Opts")[0]["name"]
        e = self.browse("Anon_Opts", s)[0]["name"]
        series = self.browse("Anon_Opts", s, e)[0]["SeriesInstanceUID"]
        status, inst = self.api("GET", "/api/series/%s/instances" % series)
        el = dicomgen.read_elements(self.fetch(inst[0]["SOPInstanceUID"]))
        self.assertEqual(harness.text_of(el, (0x0009, 0x1001)), "optsprivate", "keep_private_tags")
        self.assertEqual(harness.text_of(el, (0x0008, 0x1010)), "OPTSTATION", "retain_device_identity")
        self.assertEqual(harness.text_of(el, (0x0018, 0x1000)), "OPTSERIAL", "retain_device_identity")
        self.assertEqual(harness.text_of(el, (0x0012, 0x0062)), "YES")
        self.assertNotEqual(harness.text_of(el, (0x0010, 0x0010)), "Opts^Pat")

    def test_55c_implicit_vr_data_is_anonymized_too(self):
        # The same kinds of values sent in Implicit VR Little Endian (no VRs on the wire:
        # private elements and sequences must still be found and handled).
        r = self.create({"routing": DESCRIPTION_IS_PROJECT, "ae_title": "ANONIMPL", "port": harness.free_receiver_port()})
        uid = dicomgen.make_uids()
        d = self.mkdtemp("implicit")
        path = d / "implicit.dcm"
        sop, study, series = uid("instance", 1), uid("study", 1), uid("series", 1, 1)
        item = (_implicit(0x0008, 0x0080, b"ImplNestedInst")
                + _implicit(0x0008, 0x0100, b"T-D1100") + _implicit(0x0008, 0x0102, b"SRT")
                + _implicit(0x0008, 0x0104, b"Head"))
        region = struct.pack("<HHI", 0xFFFE, 0xE000, len(item)) + item
        dicomgen.write_instance(path, sop_uid=sop, study_uid=study, series_uid=series,
                                patient_name="Implqwerty^Pat", patient_id="IMPLPID42",
                                study_description="Implicit Anon", accession_number="IMPLACC9",
                                syntax="implicit", extra_elements=[
                                    (0x0008, 0x0080, "LO", "Implinstitution"),
                                    (0x0008, 0x2218, "SQ", region),
                                    (0x0009, 0x0010, "LO", "IMPLCREATOR"),
                                    (0x0009, 0x1001, "LO", "implprivate")])
        self.store(r["port"], "ANONIMPL", [(path, sop, study, series)])
        self.assertTrue(harness.wait_until(lambda: self.browse("Implicit_Anon"), 10),
                        "project Implicit_Anon not listed")
        needles = [b"Implqwerty", b"IMPLPID42", b"IMPLACC9", b"Implinstitution",
                   b"ImplNestedInst", b"IMPLCREATOR", b"implprivate", sop.encode(),
                   study.encode(), series.encode()]
        s = self.browse("Implicit_Anon")[0]["name"]
        e = self.browse("Implicit_Anon", s)[0]["name"]
        new_series = self.browse("Implicit_Anon", s, e)[0]["SeriesInstanceUID"]
        status, inst = self.api("GET", "/api/series/%s/instances" % new_series)
        payload = self.fetch(inst[0]["SOPInstanceUID"])
        self.assertEqual([n for n in needles if n in payload], [], "original values in the file")
        self.assertEqual(harness.find_bytes([self.server.data_dir, self.server.log_path], needles),
                         {}, "original values on disk or in the log")

    def test_56_comment_labels_are_kept_when_anonymizing(self):
        r = self.create({"ae_title": "ANONCMT", "port": harness.free_receiver_port()})
        files = make_study(self.mkdtemp("anoncmt"), 1, patient_name="Anoncmt^Pat",
                           patient_id="ANONCMT1",
                           extra=[(0x0010, 0x4000, "LT", comment("ANONP", "ANONS", "ANONE"))])
        self.store(r["port"], "ANONCMT", files)
        ok = harness.wait_until(lambda: self.browse("ANONP", "ANONS", "ANONE"), 10)
        self.assertTrue(ok, "nothing under ANONP/ANONS/ANONE; projects: %r" % self.browse())
        series = ok[0]["SeriesInstanceUID"]
        self.assertNotEqual(series, files[0][3])
        status, inst = self.api("GET", "/api/series/%s/instances" % series)
        el = dicomgen.read_elements(self.fetch(inst[0]["SOPInstanceUID"]))
        self.assertEqual(harness.text_of(el, (0x0010, 0x0010)), "ANONS", "PatientName = subject label")
        self.assertNotEqual(harness.text_of(el, PATIENT_COMMENTS), comment("ANONP", "ANONS", "ANONE"),
                            "Patient Comments kept")

    def test_56b_no_project_is_guessed_from_removed_attributes_when_anonymizing(self):
        # Study Description and Accession Number are removed by the profile: a project taken
        # from them would keep them in the index. Without a rule or comment: Unassigned.
        r = self.create({"ae_title": "ANONGUESS", "port": harness.free_receiver_port()})
        files = make_study(self.mkdtemp("anonguess"), 1, patient_name="Guess^Pat",
                           patient_id="GUESSPID7", accession="ACCGUESS42",
                           study_description="Guessdesc Qx")
        self.store(r["port"], "ANONGUESS", files)
        self.assertTrue(harness.wait_until(lambda: self.browse("Unassigned"), 10),
                        "nothing Unassigned; projects: %r" % self.browse())
        names = [p["name"] for p in self.browse()]
        self.assertNotIn("Guessdesc_Qx", names)
        self.assertNotIn("ACCGUESS42", names)
        self.server.api("GET", "/api/studies")  # the index has caught up
        self.assertEqual(harness.find_bytes([self.server.data_dir, self.server.log_path],
                                            [b"Guessdesc", b"ACCGUESS42", b"GUESSPID7"]), {})

    # ================================================================== 6. staging

    def test_60_idle_staged_session_is_archived_automatically(self):
        r = self.receiver("STAGEAUTO", direct_archive=False, staging_idle_seconds=2)
        files = make_study(self.mkdtemp("stageauto"), 2, patient_name="Stage^Auto",
                           patient_id="STAGEAUTO1",
                           extra=[(0x0010, 0x4000, "LT", comment("STG", "AUTO", "S1"))])
        self.store(r["port"], "STAGEAUTO", files)
        stored_at = time.monotonic()
        rows = self.staged(r["id"])
        self.assertEqual(len(rows), 1, "staged sessions of STAGEAUTO right after storescu: %r"
                         % rows)
        row = rows[0]
        self.assertEqual((row.get("project"), row.get("subject"), row.get("session"),
                          row.get("instance_count")), ("STG", "AUTO", "S1", 2), repr(row))
        self.assertGreater(row.get("bytes") or 0, 0, repr(row))
        self.assertTrue(row.get("first_at") and row.get("last_at"), repr(row))
        self.assertIsNone(self.study_count(files[0][2]), "staged instances in /api/studies")
        sdir = self.server.data_dir / "staging" / str(row["id"])
        self.assertEqual(len(harness.files_under(sdir)), 2, "files in %s" % sdir)
        self.assertEqual(row.get("bytes"),
                         sum(os.path.getsize(p) for p in harness.files_under(sdir)),
                         "bytes of the session vs its files: %r" % row)

        gone = harness.wait_until(lambda: not self.staged(r["id"]), 10, 0.1)
        waited = time.monotonic() - stored_at
        self.assertTrue(gone, "session not archived 10 s after its last instance: %r"
                        % self.staged(r["id"]))
        self.assertGreaterEqual(waited, 1.5, "archived after %.1f s, before 2 s of idleness"
                                % waited)
        self.wait_study(files[0][2], 2)
        self.assertFiled(files[0][3], "STG", "AUTO", "S1", 2)
        for path, sop, _, _ in files:
            self.assertStoredIdentical(sop, path)
        self.assertEqual(harness.files_under(sdir), [], "staging folder left behind")
        status, body = self.api("GET", "/api/staging/%s" % row["id"])
        self.assertEqual(status, 404, body)

    def held_sessions(self, ae):
        """A staging receiver that never archives by itself, and two sessions on it."""
        r = self.receiver(ae, direct_archive=False, staging_idle_seconds=600)
        d = self.mkdtemp(ae.lower())
        sessions = {}
        for name in ("E2", "E3"):
            sessions[name] = make_study(d, 2, patient_name="Stage^Hold", patient_id=ae + name,
                                        extra=[(0x0010, 0x4000, "LT",
                                                comment("STGH", ae, name))])
            self.store(r["port"], ae, sessions[name])
        rows = {row.get("session"): row for row in self.staged(r["id"])}
        self.assertEqual(sorted(rows), ["E2", "E3"], repr(rows))
        for name, row in rows.items():
            self.assertEqual((row.get("project"), row.get("subject"), row.get("instance_count")),
                             ("STGH", ae, 2), repr(row))
            self.assertIsNone(self.study_count(sessions[name][0][2]))
        return r, rows, sessions

    def test_61_staged_session_archived_by_hand(self):
        r, rows, sessions = self.held_sessions("STAGEHAND")
        sid = rows["E2"]["id"]
        status, body = self.api("POST", "/api/staging/%s/archive" % sid)
        self.assertEqual(status, 200, body)
        self.assertEqual(body.get("archived"), 2, repr(body))
        self.wait_study(sessions["E2"][0][2], 2)
        self.assertFiled(sessions["E2"][0][3], "STGH", "STAGEHAND", "E2", 2)
        for path, sop, _, _ in sessions["E2"]:
            self.assertStoredIdentical(sop, path)
        left = self.staged(r["id"])
        self.assertEqual([x.get("session") for x in left], ["E3"], repr(left))
        self.assertIsNone(self.study_count(sessions["E3"][0][2]))
        status, body = self.api("POST", "/api/staging/%s/archive" % sid)
        self.assertEqual(status, 404, body)

    def test_62_staged_session_discarded(self):
        r, rows, sessions = self.held_sessions("STAGEDROP")
        sid = rows["E3"]["id"]
        sdir = self.server.data_dir / "staging" / str(sid)
        self.assertEqual(len(harness.files_under(sdir)), 2, "files in %s" % sdir)
        status, body = self.raw_delete("/api/staging/%s" % sid)
        self.assertEqual(status, 204, body)
        self.assertEqual(harness.files_under(sdir), [], "files of a discarded session remain")
        self.assertFalse(sdir.exists(), "%s remains" % sdir)
        self.assertEqual([x.get("session") for x in self.staged(r["id"])], ["E2"])
        for uid in (sessions["E3"][0][2],):
            self.assertIsNone(self.study_count(uid), "discarded data in /api/studies")
        status, body = self.api("GET", "/api/staging/%s" % sid)
        self.assertEqual(status, 404, body)
        status, body = self.raw_delete("/api/staging/%s" % sid)
        self.assertEqual(status, 404, body)
        status, body = self.api("POST", "/api/staging/%s/archive" % sid)
        self.assertEqual(status, 404, body)
        # The session left is untouched and can still be archived.
        status, body = self.api("POST", "/api/staging/%s/archive" % rows["E2"]["id"])
        self.assertEqual((status, body.get("archived")), (200, 2), repr(body))
        self.wait_study(sessions["E2"][0][2], 2)

    def raw_delete(self, path):
        status, _, payload = self.server.raw("DELETE", path)
        return status, payload

    def test_63_unknown_staging_and_receiver_ids_are_404(self):
        for method, path in (("GET", "/api/staging/999999"), ("GET", "/api/staging/abc"),
                             ("POST", "/api/staging/999999/archive"),
                             ("DELETE", "/api/staging/999999"),
                             ("GET", "/api/receivers/999999"),
                             ("PUT", "/api/receivers/999999"),
                             ("DELETE", "/api/receivers/999999")):
            body = {"enabled": True} if method == "PUT" else None
            status, _, payload = self.server.raw(method, path, body)
            self.assertEqual(status, 404, "%s %s -> %s %r" % (method, path, status, payload[:200]))


    # ================================================================== 7. CLI

    def cli(self, *args):
        return self.server.cli(*[str(a) for a in args])

    def assertCliOk(self, cp, msg=""):
        self.assertEqual(cp.returncode, 0, "%s%s" % (msg and msg + ":\n", harness.proc_output(cp)))
        return cp.stdout

    def assertCliFails(self, cp, *patterns):
        out = harness.proc_output(cp)
        self.assertNotEqual(cp.returncode, 0, out)
        for pattern in patterns:
            self.assertMatchesCI(pattern, cp.stdout + cp.stderr, "%r not in:\n%s" % (pattern, out))

    def test_70_cli_receivers(self):
        port = harness.free_receiver_port()
        wl = self.mkdtemp("cliwl") / "whitelist.txt"
        wl.write_text("GOODSCU\n127.0.0.2\n")
        out = self.assertCliOk(self.cli("receivers", "add", "CLIRECV", "--port", port,
                                        "--anonymize", "false", "--whitelist-enabled", "true",
                                        "--whitelist-file", wl), "receivers add")
        self.assertRegex(out, r"(?m)^\s*[0-9]+\s+CLIRECV\s+0\.0\.0\.0:%d\s+listening\b" % port)
        mine = [r for r in self.receivers() if r.get("ae_title") == "CLIRECV"]
        self.assertEqual(len(mine), 1, repr(mine))
        rid = mine[0]["id"]
        self.assertEqual((mine[0].get("whitelist"), mine[0].get("whitelist_enabled"),
                          mine[0].get("anonymize")), ("GOODSCU\n127.0.0.2\n", True, False))
        self.assertEchoOk(port, "CLIRECV", calling_ae="GOODSCU")

        out = self.assertCliOk(self.cli("receivers", "list"), "receivers list")
        self.assertRegex(out, r"(?m)^\s*%s\s+CLIRECV\s+0\.0\.0\.0:%d\s+listening" % (rid, port))
        self.assertRegex(out, r"(?m)^\s*%s@%d\s+%s\s" % (self.server.dicom_ae,
                                                            self.server.dicom_port,
                                                            self.server.dicom_ae))
        listed = json.loads(self.assertCliOk(self.cli("receivers", "list", "--json")))
        self.assertEqual(sorted(r["id"] for r in listed), sorted(r["id"] for r in self.receivers()))
        for ref in ("CLIRECV", "CLIRECV@%d" % port, rid):
            shown = json.loads(self.assertCliOk(self.cli("receivers", "show", ref, "--json"),
                                                "receivers show %s" % ref))
            self.assertEqual(shown, self.get_receiver(rid), "receivers show %s --json" % ref)
        out = self.assertCliOk(self.cli("receivers", "show", "CLIRECV"))
        self.assertRegex(out, r"(?m)^whitelist:\s*\n\s+GOODSCU\n\s+127\.0\.0\.2$")

        self.assertCliOk(self.cli("receivers", "update", rid, "--staging-idle-seconds", 33,
                                  "--direct-archive", "false"), "receivers update")
        got = self.get_receiver(rid)
        self.assertEqual((got.get("staging_idle_seconds"), got.get("direct_archive"),
                          got.get("whitelist")), (33, False, "GOODSCU\n127.0.0.2\n"), repr(got))
        out = self.assertCliOk(self.cli("receivers", "disable", rid), "receivers disable")
        self.assertIn("disabled", out)
        self.assertEchoRefused(port, "CLIRECV", r"connection refused", calling_ae="GOODSCU")
        out = self.assertCliOk(self.cli("receivers", "enable", rid), "receivers enable")
        self.assertIn("listening", out)
        self.assertEchoOk(port, "CLIRECV", calling_ae="GOODSCU")

        bad = self.mkdtemp("clibad") / "whitelist.txt"
        bad.write_text("GOODSCU\n300.1.1.1\n")
        self.assertCliFails(self.cli("receivers", "add", "CLIBAD", "--port",
                                     harness.free_receiver_port(), "--whitelist-file", bad),
                            r"line 2", r"whitelist")
        self.assertCliFails(self.cli("receivers", "add", "CLIBAD", "--port", 80), r"\bport\b")
        self.assertCliFails(self.cli("receivers", "add", "CLIRECV", "--port", port),
                            r"already")
        self.assertNotIn("CLIBAD", [r.get("ae_title") for r in self.receivers()])
        self.assertCliFails(self.cli("receivers", "show", "NOSUCHRECV"), r"no receiver")
        self.assertCliFails(self.cli("receivers", "remove", self.server.dicom_ae), r"read-only")

        self.assertCliOk(self.cli("receivers", "remove", rid), "receivers remove")
        self.assertNotIn(rid, [r.get("id") for r in self.receivers()])
        self.assertEchoRefused(port, "CLIRECV", r"connection refused", calling_ae="GOODSCU")
        self.assertCliFails(self.cli("receivers", "remove", rid), r"no receiver")

    def test_71_cli_projects(self):
        r = self.receiver("CLIPROJ")
        files = make_study(self.mkdtemp("cliproj"), 3, series=2, patient_name="Cli^Proj",
                           patient_id="CLIPROJ1",
                           extra=[(0x0010, 0x4000, "LT", comment("CLIP", "CLIS", "CLIE"))])
        self.store(r["port"], "CLIPROJ", files)
        self.assertFiled(files[0][3], "CLIP", "CLIS", "CLIE", 2)
        self.assertFiled(files[1][3], "CLIP", "CLIS", "CLIE", 1)
        out = self.assertCliOk(self.cli("projects"), "projects")
        self.assertRegex(out, r"(?m)^CLIP\s+1\s+1\s+1\s+2\s+3\s+OT\s*$")
        out = self.assertCliOk(self.cli("projects", "CLIP"), "projects CLIP")
        self.assertRegex(out, r"(?m)^CLIS\s+1\s+1\s+2\s+3\s+OT\s*$")
        out = self.assertCliOk(self.cli("projects", "CLIP", "CLIS"))
        self.assertRegex(out, r"(?m)^CLIE\s+1\s+2\s+3\s+OT\s*$")
        out = self.assertCliOk(self.cli("projects", "CLIP", "CLIS", "CLIE"))
        for uid, n in ((files[0][3], 2), (files[1][3], 1)):
            self.assertRegex(out, r"(?m)^%s\s+OT\s+\d+\s+%d\b" % (re.escape(uid), n))
        listed = json.loads(self.assertCliOk(self.cli("projects", "--json")))
        self.assertEqual(listed, self.browse())
        listed = json.loads(self.assertCliOk(self.cli("projects", "CLIP", "CLIS", "CLIE",
                                                      "--json")))
        self.assertEqual(listed, self.browse("CLIP", "CLIS", "CLIE"))
        # Labels that do not exist are an error, not an empty table.
        for args, what in ((("NOPE",), "project 'NOPE'"), (("CLIP", "NOPE"), "subject 'NOPE'"),
                           (("CLIP", "CLIS", "NOPE"), "session 'NOPE'")):
            cp = self.cli("projects", *args)
            self.assertNotEqual(cp.returncode, 0, args)
            self.assertIn(what, cp.stderr, args)
        status, body = self.api("GET", "/api/projects/NOPE/subjects")
        self.assertEqual(status, 404)

    def test_72_cli_staging(self):
        r, rows, sessions = self.held_sessions("CLISTAGE")
        out = self.assertCliOk(self.cli("staging"), "staging")
        for name, row in rows.items():
            self.assertRegex(out, r"(?m)^%s\s+CLISTAGE\s+STGH/CLISTAGE/%s\s+\S+\s+2\s"
                             % (row["id"], name))
            self.assertEqual(row["receiver"], r["id"])
            self.assertEqual(row["receiver_ae_title"], "CLISTAGE")
        listed = json.loads(self.assertCliOk(self.cli("staging", "--json")))
        self.assertEqual(listed, self.staged())
        out = self.assertCliOk(self.cli("staging", "archive", rows["E2"]["id"]), "staging archive")
        self.assertIn("2", out)
        self.wait_study(sessions["E2"][0][2], 2)
        sdir = self.server.data_dir / "staging" / str(rows["E3"]["id"])
        self.assertTrue(harness.files_under(sdir))
        self.assertCliOk(self.cli("staging", "discard", rows["E3"]["id"]), "staging discard")
        self.assertEqual(harness.files_under(sdir), [])
        self.assertEqual(self.staged(r["id"]), [])
        self.assertIsNone(self.study_count(sessions["E3"][0][2]))
        self.assertCliFails(self.cli("staging", "archive", rows["E3"]["id"]), r"no staged session")
        self.assertCliFails(self.cli("staging", "discard", 999999), r"no staged session")

    def test_73_cli_routing(self):
        self.addCleanup(self.api, "PUT", "/api/routing",
                        {"project": "", "subject": "", "session": ""})
        d = self.mkdtemp("clirouting")
        rules = d / "project.txt"
        rules.write_text("(0008,1030):^CLIRULE(\\w+):1\n")
        self.assertCliOk(self.cli("routing", "--project-rules", rules), "routing --project-rules")
        status, body = self.api("GET", "/api/routing")
        self.assertEqual((status, body.get("project")), (200, "(0008,1030):^CLIRULE(\\w+):1\n"),
                         repr(body))
        out = self.assertCliOk(self.cli("routing"))
        self.assertIn("(0008,1030):^CLIRULE(\\w+):1", out)
        self.assertEqual(json.loads(self.assertCliOk(self.cli("routing", "--json"))), body)
        r = self.receiver("CLIRULES")
        files = make_study(d, 1, patient_name="Cli^Rule", patient_id="CLIRULE1",
                           study_description="CLIRULEX")
        self.store(r["port"], "CLIRULES", files)
        self.assertFiled(files[0][3], "X", "Cli_Rule", "CLIRULE1", 1)
        bad = d / "bad.txt"
        bad.write_text("\n(0008,1030):[\n")
        self.assertCliFails(self.cli("routing", "--project-rules", bad), r"line 2",
                            r"routing\.project")
        self.assertEqual(self.api("GET", "/api/routing"), (200, body),
                         "a refused rule file changed the rules")

if __name__ == "__main__":
    unittest.main(verbosity=2)
