"""Send jobs (C-STORE SCU from our archive) to DCMTK's storescp, to Orthanc and to a scripted
SCP: studies, series and instance lists byte-identical, many instances per association, a
peer that refuses a transfer syntax, a SOP class or one instance (status), warning statuses,
the peer killed mid-send then retry (nothing sent twice), request errors, the CLI.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_send.py

Everything is first loaded into our archive with storescu (to our receiver), then sent by
POST /api/send. Facts about storescp 3.6.7 (Debian) this file relies on:
  - `--single-process` (the default) serves one association at a time (a second one waits
    for its A-ASSOCIATE-AC), so SIGKILL leaves no child behind; `-od DIR` writes each
    instance to DIR/<modality>.<SOP Instance UID> (CT.1.2.3, MR.1.2.3; default `-uf`
    naming), overwriting a file of the same name;
  - `+B` writes the dataset exactly as received (the meta header is storescp's own);
  - `-v` logs "I: Association Received" once per association and "I: Received Store Request"
    once per C-STORE-RQ; `-d` also dumps each incoming C-STORE-RQ with its
    "Affected SOP Instance UID";
  - by default it accepts uncompressed transfer syntaxes only; `+xi` accepts Implicit VR
    Little Endian only; `-xf FILE PROFILE` accepts only the presentation contexts of that
    profile (here: Verification and CT Image Storage);
  - without `+B`, an instance whose file cannot be written (a directory of that name exists)
    is answered 0xA700 (Refused: Out of Resources), and the association goes on.
Data we cannot convert for a peer: a JPEG 2000 labelled copy (nothing here decodes it).
Warning statuses come from ScriptedStoreSCP (Python). Slow sends (to kill the peer mid-way)
go through a TCP proxy that paces the bytes we send.
"""

import json
import os
import re
import socket
import struct
import subprocess
import shutil
import sys
import threading
import time
import uuid
import zlib
import unittest
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

TERMINAL = ("succeeded", "partial", "failed", "canceled")
JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

# Association negotiation profile for storescp -xf: only Verification and CT Image Storage
# (uncompressed), so an MR instance finds no presentation context.
CT_ONLY_PROFILE = """\
[[TransferSyntaxes]]
[Uncompressed]
TransferSyntax1 = LocalEndianExplicit
TransferSyntax2 = OppositeEndianExplicit
TransferSyntax3 = LittleEndianImplicit

[[PresentationContexts]]
[CTOnly]
PresentationContext1 = VerificationSOPClass\\Uncompressed
PresentationContext2 = CTImageStorage\\Uncompressed

[[Profiles]]
[CTOnly]
PresentationContexts = CTOnly
"""

# Only lossless compressed syntaxes: we must compress on the way.
LOSSLESS_ONLY_PROFILE = """\
[[TransferSyntaxes]]
[{name}]
TransferSyntax1 = {syntax}

[[PresentationContexts]]
[Lossless]
PresentationContext1 = VerificationSOPClass\\{name}
PresentationContext2 = CTImageStorage\\{name}

[[Profiles]]
[Lossless]
PresentationContexts = Lossless
"""


def pixel_bytes(path, tmp):
    """The decoded pixel data of a DICOM file (decompressed by DCMTK's dcmdjpeg/dcmdjpls)."""
    plain = tmp / ("plain-" + os.path.basename(str(path)))
    for tool in ("dcmdjpls", "dcmdjpeg"):
        if subprocess.run([tool, str(path), str(plain)], env=harness.tool_env(),
                          capture_output=True).returncode == 0:
            break
    else:
        shutil.copy(str(path), str(plain))
    raw = tmp / ("raw-" + os.path.basename(str(path)))
    raw.mkdir(exist_ok=True)
    cp = subprocess.run(["dcmdump", "-q", "+W", str(raw), str(plain)], env=harness.tool_env(),
                        capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    dumps = sorted(raw.iterdir())
    assert len(dumps) == 1, dumps
    return dumps[0].read_bytes()

# --------------------------------------------------------------------------- helpers

def tcp_listening(port):
    return harness.tcp_listeners(port) > 0


class StoreSCP(harness._Process):
    """DCMTK's storescp writing to out_dir; log in workdir/<log_name>.log. One association at a
    time (--single-process), or each in a process of its own (fork=True: --fork)."""

    name = "storescp"

    def __init__(self, workdir, *, out_dir=None, port=None, options=("+B",), debug=False,
                 aet="STORESCP", log_name="storescp", fork=False):
        super().__init__(workdir)
        self.fork = fork
        self.log_path = self.workdir / ("%s.log" % log_name)
        self.out_dir = Path(out_dir) if out_dir else self.workdir / "out"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or harness.free_port()
        self.aet = aet
        self.options = list(options)
        self.debug = debug

    def start(self, timeout=20):
        argv = (["storescp", "-d" if self.debug else "-v", "--fork" if self.fork else "--single-process"]
                + self.options
                + ["-aet", self.aet, "-od", str(self.out_dir), str(self.port)])
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=log, cwd=str(self.workdir),
                                         env=harness.tool_env())
        finally:
            log.close()
        up = harness.wait_until(lambda: not self.running() or tcp_listening(self.port),
                                timeout, 0.02)
        if not (up and self.running()):
            raise AssertionError("storescp %s did not listen on %d within %ss; log:\n%s"
                                 % (" ".join(argv), self.port, timeout, self.log_tail()))
        return self

    def log_text(self):
        try:
            return self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def associations(self):
        return len(re.findall(r"^I: Association Received\s*$", self.log_text(), re.M))

    def store_requests(self):
        return len(re.findall(r"^I: Received Store Request", self.log_text(), re.M))

    def received_sops(self):
        """SOP Instance UIDs of the C-STORE-RQs received, in order, repeats kept (-d only)."""
        assert self.debug, "received_sops needs storescp -d"
        sops, in_store_rq = [], False
        for line in self.log_text().splitlines():
            if "Message Type" in line:
                in_store_rq = "C-STORE RQ" in line
            elif in_store_rq and "Affected SOP Instance UID" in line:
                sops.append(line.split(":", 2)[-1].strip())
                in_store_rq = False
        return sops

    def files(self):
        """{SOP Instance UID: path} of what storescp wrote (names are MODALITY.SOPUID)."""
        out = {}
        for p in sorted(self.out_dir.iterdir()):
            if p.is_file() and "." in p.name:
                out[p.name.split(".", 1)[1]] = p
        return out

    def all_entries(self):
        return sorted(p.name for p in self.out_dir.iterdir())


class ScriptedStoreSCP:
    """A minimal C-STORE SCP on a free loopback port (Python, no DCMTK) that answers each
    C-STORE-RQ with the status statuses[SOP Instance UID] (default 0x0000) and keeps what it
    received: received = [(SOP Instance UID, transfer syntax UID, dataset bytes)]. It accepts
    every presentation context with its first proposed transfer syntax. For statuses no
    DCMTK tool answers on demand (warnings 0xB000/0xB007, failure 0xC000)."""

    def __init__(self, statuses=None, aet="SCRIPTED"):
        self.statuses = dict(statuses or {})
        self.aet = aet
        self.received = []
        self.associations = 0
        self.errors = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _recv_exact(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("closed")
            buf += chunk
        return buf

    def _read_pdu(self, conn):
        pdu_type, _, length = struct.unpack(">BBI", self._recv_exact(conn, 6))
        return pdu_type, self._recv_exact(conn, length)

    @staticmethod
    def _items(data, pos):
        while pos + 4 <= len(data):
            item_type, _, length = struct.unpack_from(">BBH", data, pos)
            yield item_type, data[pos + 4:pos + 4 + length]
            pos += 4 + length

    def _associate_ac(self, rq):
        contexts = {}
        items = b""
        for item_type, body in self._items(rq, 68):
            if item_type == 0x10:
                items += struct.pack(">BBH", 0x10, 0, len(body)) + body
            elif item_type == 0x20:
                pc_id = body[0]
                syntaxes = [v.rstrip(b"\0").decode("ascii")
                            for t, v in self._items(body, 4) if t == 0x40]
                ts = syntaxes[0]
                contexts[pc_id] = ts
                sub = struct.pack(">BBH", 0x40, 0, len(ts)) + ts.encode("ascii")
                payload = struct.pack(">BBBB", pc_id, 0, 0, 0) + sub
                items += struct.pack(">BBH", 0x21, 0, len(payload)) + payload
        impl = dicomgen.IMPLEMENTATION_CLASS_UID.encode("ascii")
        user = (struct.pack(">BBHI", 0x51, 0, 4, 65536)
                + struct.pack(">BBH", 0x52, 0, len(impl)) + impl)
        items += struct.pack(">BBH", 0x50, 0, len(user)) + user
        body = rq[:68] + items  # protocol version, called and calling AE as requested
        return struct.pack(">BBI", 0x02, 0, len(body)) + body, contexts

    @staticmethod
    def _element(group, elem, value):
        if len(value) % 2:
            value += b"\0"
        return struct.pack("<HHI", group, elem, len(value)) + value

    def _store_rsp(self, fields, status):
        e = self._element
        body = (e(0x0000, 0x0002, fields[(0x0000, 0x0002)].rstrip(b"\0"))
                + e(0x0000, 0x0100, struct.pack("<H", 0x8001))
                + e(0x0000, 0x0120, fields[(0x0000, 0x0110)])
                + e(0x0000, 0x0800, struct.pack("<H", 0x0101))
                + e(0x0000, 0x0900, struct.pack("<H", status))
                + e(0x0000, 0x1000, fields[(0x0000, 0x1000)].rstrip(b"\0")))
        return e(0x0000, 0x0000, struct.pack("<I", len(body))) + body

    def _serve(self, conn):
        try:
            pdu_type, rq = self._read_pdu(conn)
            if pdu_type != 0x01:
                return
            ac, contexts = self._associate_ac(rq)
            conn.sendall(ac)
            with self.lock:
                self.associations += 1
            command, dataset, fields = b"", b"", None
            while True:
                pdu_type, body = self._read_pdu(conn)
                if pdu_type == 0x05:  # A-RELEASE-RQ
                    conn.sendall(struct.pack(">BBI", 0x06, 0, 4) + b"\0" * 4)
                    return
                if pdu_type != 0x04:
                    return
                pos = 0
                while pos + 6 <= len(body):
                    length, pc_id, header = struct.unpack_from(">IBB", body, pos)
                    fragment = body[pos + 6:pos + 4 + length]
                    pos += 4 + length
                    if header & 0x01:
                        command += fragment
                        if header & 0x02:
                            fields = harness.parse_implicit_command(command)
                            command = b""
                        continue
                    dataset += fragment
                    if not header & 0x02:
                        continue
                    sop = fields[(0x0000, 0x1000)].rstrip(b"\0 ").decode("ascii")
                    with self.lock:
                        self.received.append((sop, contexts.get(pc_id), dataset))
                    status = self.statuses.get(sop, 0x0000)
                    rsp = self._store_rsp(fields, status)
                    pdv = struct.pack(">IBB", len(rsp) + 2, pc_id, 0x03) + rsp
                    conn.sendall(struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv)
                    dataset, fields = b"", None
        except (OSError, ConnectionError, KeyError, struct.error) as e:
            self.errors.append(repr(e))
        finally:
            try:
                conn.close()
            except OSError:
                pass



def add_series(outdir, study_uid, count, *, syntax="explicit", modality="CT", size=4096,
               patient_id="PID1", series_number=9):
    """count instances in a new series of an existing study; [(path, sop, study, series)]."""
    uid = dicomgen.make_uids()
    series_uid = uid("series", series_number)
    os.makedirs(str(outdir), exist_ok=True)
    out = []
    for i in range(count):
        sop = uid("instance", 9000 + i)
        path = os.path.join(str(outdir), "%s-%s-%06d.dcm" % (syntax, modality, i))
        dicomgen.write_instance(path, sop_uid=sop, study_uid=study_uid, series_uid=series_uid,
                                syntax=syntax, modality=modality, size=size,
                                instance_number=i + 1, series_number=series_number,
                                patient_id=patient_id, patient_name="SEND^TEST")
        out.append((path, sop, study_uid, series_uid))
    return out


def j2k_copy(src, dst):
    """A copy of src (Explicit VR) with the same UIDs whose pixel data is encapsulated and
    labelled JPEG 2000 Lossless: one fragment that starts like a J2K codestream but is not one.
    Nothing in this file decodes it: our receiver stores it as it comes, and the sender cannot
    convert JPEG 2000 (DCMTK has no codec for it), so only a peer that accepts JPEG 2000 may
    get it."""
    data = Path(src).read_bytes()
    meta, offset = dicomgen.read_meta(data)
    ds = data[offset:]
    pos = ds.find(struct.pack("<HH", 0x7FE0, 0x0010) + b"OW")
    assert pos > 0, "no OW pixel data in %s" % src
    fragment = b"\xff\x4f\xff\x51" + bytes(range(256)) * 8
    pixel = (struct.pack("<HH", 0x7FE0, 0x0010) + b"OB\0\0" + struct.pack("<I", 0xFFFFFFFF)
             + struct.pack("<HHI", 0xFFFE, 0xE000, 0)
             + struct.pack("<HHI", 0xFFFE, 0xE000, len(fragment)) + fragment
             + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    Path(dst).write_bytes(dicomgen.meta_header(meta["MediaStorageSOPClassUID"],
                                               meta["MediaStorageSOPInstanceUID"],
                                               JPEG2000_LOSSLESS) + ds[:pos] + pixel)
    return dst


def with_undefined_length_sequence(src, dst):
    """A copy of src (Explicit VR) with a Referenced Image Sequence (0008,1140) of undefined
    length whose one item is of undefined length too, ended by delimitation items (PS3.5
    7.5.2). DCMTK, when it parses a data set and writes it again, gives sequences and items a
    defined length (its default for the network): only a sender that sends the stored bytes
    keeps this encoding."""
    data = Path(src).read_bytes()
    meta, offset = dicomgen.read_meta(data)
    item = b"".join(struct.pack("<HH", 0x0008, e) + b"UI" + struct.pack("<H", len(v)) + v
                    for e, v in ((0x1150, b"1.2.840.10008.5.1.4.1.1.2\0"),
                                 (0x1155, b"1.2.826.0.1.3680043.9.7133.77.10")))
    sequence = (struct.pack("<HH", 0x0008, 0x1140) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF)
                + struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + item
                + struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    pos = offset
    while pos < len(data):  # before the first top-level element after (0008,1140)
        tag, _, _, nxt = dicomgen._next_element(data, pos, True)
        if tag > (0x0008, 0x1140):
            break
        pos = nxt
    Path(dst).write_bytes(data[:pos] + sequence + data[pos:])
    return dst


def ts_of(path):
    return dicomgen.read_meta(path)[0]["TransferSyntaxUID"]


def dump(job):
    return json.dumps(job, indent=1)


# --------------------------------------------------------------------------- tests

class SendTests(harness.JobHelpers, harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.server = cls.start_class_server()
        cls.orthanc = cls.start_class_orthanc()

        data = cls.tmp / "data"
        gen = dicomgen.generate
        cls.sets = {
            "study": gen(data / "study", 20, series_per_study=2, modality="CT", size=6000,
                         patient_id="SENDSTUDY"),
            "orthanc": gen(data / "orthanc", 12, series_per_study=2, modality="CT",
                           size=20000, patient_id="SENDORTHANC"),
            "series": gen(data / "series", 10, series_per_study=2, size=4000,
                          patient_id="SENDSERIES"),
            "image": gen(data / "image", 8, modality="CT", size=4000, patient_id="SENDIMAGE"),
            "default": gen(data / "default", 3, size=3000, patient_id="SENDDEFAULT"),
            "many": gen(data / "many", 200, size=2048, patient_id="SENDMANY"),
            "status": gen(data / "status", 4, modality="CT", size=4000, patient_id="SENDA700"),
            "statuses": gen(data / "statuses", 4, modality="CT", size=4000,
                            patient_id="SENDSTATUSES"),
            "warn_only": gen(data / "warn_only", 3, size=3000, patient_id="SENDWARN"),
            "fault": gen(data / "fault", 150, series_per_study=3, modality="CT",
                         size=100000, patient_id="SENDFAULT"),
            "cli": gen(data / "cli", 5, size=3000, patient_id="SENDCLI"),
            "cli_json": gen(data / "cli_json", 2, size=3000, patient_id="SENDCLIJSON"),
            "cli_parts": gen(data / "cli_parts", 6, series_per_study=2, size=3000,
                             patient_id="SENDCLIPARTS"),
        }
        # Explicit, Implicit VR and JPEG 2000 instances in one study (each stored as it came),
        # a series each.
        expl = gen(data / "ts_expl", 3, modality="CT", size=4000, patient_id="SENDTSMIX")
        impl = add_series(data / "ts_impl", expl[0][2], 2, syntax="implicit",
                          patient_id="SENDTSMIX", series_number=8)
        jpeg = [(j2k_copy(path, path + ".j2k.dcm"), sop, st, se) for path, sop, st, se
                in add_series(data / "ts_jsrc", expl[0][2], 2, size=6000,
                              patient_id="SENDTSMIX", series_number=9)]
        cls.ts_explicit, cls.ts_implicit, cls.ts_jpeg = expl, impl, jpeg
        cls.sets["ts_mix"] = expl + impl + jpeg
        # CT instances and one MR instance in one study.
        ct = gen(data / "sop_ct", 4, modality="CT", size=4000, patient_id="SENDSOPMIX")
        mr = add_series(data / "sop_mr", ct[0][2], 1, modality="MR", patient_id="SENDSOPMIX")
        cls.sop_ct, cls.sop_mr = ct, mr
        cls.sets["sop_mix"] = ct + mr

        explicit_files = [f[0] for k, v in cls.sets.items() if k != "ts_mix" for f in v]
        explicit_files += [f[0] for f in expl]
        cls.load(explicit_files)
        cls.load([f[0] for f in impl], extra=["-xi"])
        cls.load([f[0] for f in jpeg], extra=["-xv"])
        expected = Counter(f[2] for v in cls.sets.values() for f in v)
        ok = harness.wait_until(lambda: all(
            harness.studies_by_uid(cls.server).get(st, {}).get("instance_count") == n
            for st, n in expected.items()), timeout=30, interval=0.2)
        if not ok:
            raise AssertionError("our archive does not list every loaded instance: %r"
                                 % {st: s.get("instance_count") for st, s in
                                    harness.studies_by_uid(cls.server).items()})
        cls.add_node("orthanc", cls.orthanc.dicom_port, ae_title=cls.orthanc.aet)
        cls.add_node("not-storable", 9, storable=False, queryable=True)

    @classmethod
    def load(cls, files, extra=()):
        cp = harness.storescu(cls.server.dicom_port, cls.server.dicom_ae, files,
                              extra=list(extra))
        if cp.returncode != 0:
            raise AssertionError("loading our archive failed:\n" + harness.proc_output(cp))

    @classmethod
    def add_node(cls, name, port, ae_title="STORESCP", **extra):
        body = {"name": name, "ae_title": ae_title, "host": "127.0.0.1", "port": port,
                "storable": True, "timeout_seconds": 20}
        body.update(extra)
        status, answer = cls.server.api("POST", "/api/nodes", body)
        if status != 201:
            raise AssertionError("POST /api/nodes %r -> %s %r" % (body, status, answer))
        return answer

    def start_scp(self, name, **kw):
        """A storescp for this test only (stopped after it); its log tail shows on failure."""
        scp = StoreSCP(self.mkdtemp(name), **kw)
        self._peers.append(scp)
        self.addCleanup(scp.stop)
        scp.start()
        return scp

    def scp_and_node(self, name, scp_kw=None, **node_kw):
        scp = self.start_scp(name, **(scp_kw or {}))
        self.add_node(name, scp.port, **node_kw)
        return scp

    # ------------------------------------------------------------------ job helpers

    def post_send(self, body):
        return self.server.api("POST", "/api/send", body)

    def start_send(self, node, level, uids):
        body = {"level": level, "uids": list(uids)}
        if node is not None:
            body["node"] = node
        status, answer = self.post_send(body)
        self.assertEqual(status, 202, "POST /api/send %r -> %s %r" % (body, status, answer))
        self.assertIsInstance(answer, dict, answer)
        self.assertIn("job_id", answer, answer)
        return str(answer["job_id"])


    def wait_progress(self, job_id, at_least, timeout=30):
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.get_job(job_id)
            done = (job.get("progress") or {}).get("completed") or 0
            if job.get("state") in TERMINAL:
                self.fail("job %s finished before %d instances were confirmed (too fast for "
                          "this scenario, or it failed): %s" % (job_id, at_least, dump(job)))
            if done >= at_least:
                return job
            time.sleep(0.02)
        self.fail("job %s: fewer than %d instances confirmed after %ss: %s"
                  % (job_id, at_least, timeout, dump(job)))

    def send_and_wait(self, node, level, uids, timeout=60):
        return self.wait_job(self.start_send(node, level, uids), timeout)

    # ------------------------------------------------------------------ assertions

    def assert_succeeded(self, job, files, node=None, level=None, uids=None):
        d = dump(job)
        self.assertEqual(job.get("state"), "succeeded", d)
        self.assertEqual(job.get("type"), "send", d)
        if node is not None:
            self.assertEqual(job.get("node"), node, d)
        if level is not None:
            self.assertEqual(job.get("level"), level, d)
        if uids is not None:
            self.assertEqual(job.get("uids"), list(uids), d)
        self.assertIsNone(job.get("error"), d)
        self.assertEqual(job.get("failed_instances"), [], d)
        self.assertEqual(job.get("not_confirmed"), [], d)
        self.assertEqual(job.get("warnings"), [], d)
        p = job.get("progress") or {}
        n = len(files)
        self.assertEqual(p.get("total"), n, d)
        self.assertEqual(p.get("completed"), n, d)
        self.assertEqual(p.get("failed"), 0, d)
        self.assertEqual(p.get("warning"), 0, d)
        self.assertEqual(p.get("remaining"), 0, d)
        payload = sum(len(dicomgen.dataset_bytes(f[0])) for f in files)
        self.assertGreaterEqual(p.get("bytes") or 0, payload,
                                "progress.bytes below the %d dataset bytes sent: %s"
                                % (payload, d))

    def assert_identical_files(self, got, files, what="storescp"):
        """got: {SOP UID: bytes or path} of what the peer stored; exactly the SOPs of files,
        each dataset byte-identical to the source's (below the meta header)."""
        want = {f[1]: f[0] for f in files}
        self.assertEqual(sorted(got), sorted(want),
                         "%s holds other instances than sent: extra %s, missing %s"
                         % (what, sorted(set(got) - set(want))[:5],
                            sorted(set(want) - set(got))[:5]))
        problems = []
        for sop, src in sorted(want.items()):
            data = got[sop]
            if not isinstance(data, bytes):
                data = Path(data).read_bytes()
            try:
                meta, offset = dicomgen.read_meta(data)
            except ValueError as e:
                problems.append("%s: not a Part 10 file (%s)" % (sop, e))
                continue
            if meta.get("TransferSyntaxUID") != ts_of(src):
                problems.append("%s: %s has it as %s, the source is %s"
                                % (sop, what, meta.get("TransferSyntaxUID"), ts_of(src)))
            elif data[offset:] != dicomgen.dataset_bytes(src):
                problems.append("%s: dataset differs (%d vs %d bytes)"
                                % (sop, len(data) - offset, len(dicomgen.dataset_bytes(src))))
        self.assertEqual(problems, [], "%d of %d instances not byte-identical at %s:\n  %s"
                         % (len(problems), len(want), what, "\n  ".join(problems)))

    def assert_storescp_has(self, scp, files):
        self.assertEqual(sorted(scp.all_entries()),
                         sorted(p.name for p in scp.files().values()),
                         "storescp's directory holds something else than instances")
        self.assert_identical_files(scp.files(), files)

    # ------------------------------------------------------------------ 1-3: what arrives

    def test_study_to_storescp_is_byte_identical(self):
        files = self.sets["study"]
        scp = self.scp_and_node("scp-study")
        study = files[0][2]
        job_id = self.start_send("scp-study", "STUDY", [study])
        job = self.wait_job(job_id)
        self.assert_succeeded(job, files, node="scp-study", level="STUDY", uids=[study])
        self.assertEqual(str(job.get("id")), job_id, dump(job))
        self.assert_storescp_has(scp, files)
        self.assertEqual(scp.store_requests(), len(files), "each instance sent once")

    def test_study_to_orthanc_is_byte_identical(self):
        files = self.sets["orthanc"]
        study = files[0][2]
        job = self.send_and_wait("orthanc", "STUDY", [study])
        self.assert_succeeded(job, files, node="orthanc", level="STUDY", uids=[study])
        status, instances = harness.http_json("GET", self.orthanc.url + "/instances?expand")
        self.assertEqual(status, 200, instances)
        got = {}
        for inst in instances:
            sop = (inst.get("MainDicomTags") or {}).get("SOPInstanceUID")
            status, _, payload = harness.http_request(
                "GET", "%s/instances/%s/file" % (self.orthanc.url, inst["ID"]))
            self.assertEqual(status, 200, "Orthanc GET /instances/%s/file" % inst["ID"])
            self.assertNotIn(sop, got, "Orthanc holds %s twice" % sop)
            got[sop] = payload
        self.assert_identical_files(got, files, what="Orthanc")

    def stow_and_wait(self, files):
        """Stores files (path, sop, study, series) in our archive by STOW-RS, as they are
        (storescu would re-encode them), and waits until the study lists them all."""
        boundary = "stow-" + uuid.uuid4().hex
        body = b"".join(b"--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n"
                        % (boundary.encode(), Path(f[0]).read_bytes()) for f in files)
        body += b"--%s--\r\n" % boundary.encode()
        status, _, answer = self.server.raw(
            "POST", "/dicom-web/studies", body,
            headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary='
                     + boundary, "Accept": "application/dicom+json"})
        self.assertEqual(status, 200, answer[:2000])
        study = files[0][2]
        self.assertTrue(harness.wait_until(
            lambda: harness.studies_by_uid(self.server).get(study, {}).get("instance_count")
            == len(files), timeout=30, interval=0.1), "the STOW-RS study is not listed")
        return study

    def test_stored_bytes_go_as_stored_with_undefined_length_sequences(self):
        """A stored instance goes to the peer byte for byte as we hold it, including what a
        parse-and-write would change: sequences and items of undefined length. The peer takes
        PDUs of at most 4 KB, so each data set goes in several PDVs."""
        made = dicomgen.generate(self.tmp / "undef_src", 3, modality="CT", size=20000,
                                 patient_id="SENDUNDEF")
        sequence_tag = struct.pack("<HH", 0x0008, 0x1140)
        self.assertNotIn(sequence_tag, Path(made[0][0]).read_bytes(), "the source has one")
        files = [(with_undefined_length_sequence(path, path + ".sq.dcm"), sop, st, se)
                 for path, sop, st, se in made]
        study = self.stow_and_wait(files)
        # The premise: our archive holds the undefined lengths (else nothing is tested here).
        status, _, stored = self.server.raw(
            "GET", "/api/instances/%s/file" % files[0][1])
        self.assertEqual(status, 200)
        self.assertIn(sequence_tag + b"SQ\0\0" + b"\xff" * 4, stored)
        scp = self.scp_and_node("scp-undef", scp_kw={"options": ("+B", "-pdu", "4096")})
        job = self.send_and_wait("scp-undef", "STUDY", [study])
        self.assert_succeeded(job, files, node="scp-undef", level="STUDY", uids=[study])
        self.assert_storescp_has(scp, files)

    def test_deflated_instances_of_odd_and_even_length_arrive_whole(self):
        """A deflated data set is often stored with an odd length (the stream is not padded in
        a file), and a DICOM receiver refuses a PDV of odd length (PS3.5 A.5 pads it on the
        network): such an instance still arrives. storescp accepts Deflated Explicit VR Little
        Endian (+xd), so nothing is converted to a syntax it prefers."""
        made = dicomgen.generate(self.tmp / "defl_src", 16, modality="CT", size=3000,
                                 patient_id="SENDDEFL")
        odd, even = [], []
        for path, sop, st, se in made:
            out = path + ".defl.dcm"
            cp = subprocess.run(["dcmconv", "+td", path, out], capture_output=True, text=True,
                                env=harness.tool_env())
            self.assertEqual(cp.returncode, 0, cp.stdout + cp.stderr)
            data = Path(out).read_bytes()
            meta, offset = dicomgen.read_meta(data)
            self.assertEqual(meta["TransferSyntaxUID"], "1.2.840.10008.1.2.1.99")
            (odd if (len(data) - offset) % 2 else even).append((out, sop, st, se))
        self.assertTrue(odd and even, "the premise: deflated data sets of both parities "
                        "(odd %d, even %d)" % (len(odd), len(even)))
        files = odd[:2] + even[:2]
        study = self.stow_and_wait(files)
        scp = self.scp_and_node("scp-defl", scp_kw={"options": ("+B", "+xd")})
        job = self.send_and_wait("scp-defl", "STUDY", [study])
        self.assert_succeeded(job, files, node="scp-defl", level="STUDY", uids=[study])
        got = scp.files()
        self.assertEqual(sorted(got), sorted(f[1] for f in files))
        for path, sop, _, _ in files:
            data = Path(got[sop]).read_bytes()
            meta, offset = dicomgen.read_meta(data)
            self.assertEqual(meta["TransferSyntaxUID"], "1.2.840.10008.1.2.1.99", sop)
            source = dicomgen.dataset_bytes(path)
            if len(source) % 2 == 0:  # sent as stored
                self.assertEqual(data[offset:], source, "%s differs at storescp" % sop)
            else:  # deflated again by DCMTK, and padded: the same attributes inflated
                self.assertEqual(len(data[offset:]) % 2, 0, sop)
                self.assertEqual(zlib.decompress(data[offset:], -15),
                                 zlib.decompress(source, -15), "%s differs inflated" % sop)

    def test_series_level_sends_only_that_series(self):
        files = self.sets["series"]
        series = sorted({f[3] for f in files})
        wanted = [f for f in files if f[3] == series[1]]
        scp = self.scp_and_node("scp-series")
        job = self.send_and_wait("scp-series", "SERIES", [series[1]])
        self.assert_succeeded(job, wanted, node="scp-series", level="SERIES",
                              uids=[series[1]])
        self.assert_storescp_has(scp, wanted)

    def test_image_level_sends_only_those_instances(self):
        files = self.sets["image"]
        pick = [files[1], files[4], files[6]]
        scp = self.scp_and_node("scp-image")
        uids = [f[1] for f in pick]
        job = self.send_and_wait("scp-image", "IMAGE", uids)
        self.assert_succeeded(job, pick, node="scp-image", level="IMAGE", uids=uids)
        self.assert_storescp_has(scp, pick)

    def test_default_storage_node_and_default_level(self):
        files = self.sets["default"]
        scp = self.scp_and_node("scp-default")
        status, node = self.server.api("PUT", "/api/nodes/scp-default",
                                       {"default_storage": True})
        self.assertEqual(status, 200, node)
        self.addCleanup(self.server.api, "PUT", "/api/nodes/scp-default",
                        {"default_storage": False})
        status, answer = self.post_send({"uids": [files[0][2]]})  # no node, no level
        self.assertEqual(status, 202, answer)
        job = self.wait_job(str(answer["job_id"]))
        self.assert_succeeded(job, files, node="scp-default", level="STUDY")
        self.assert_storescp_has(scp, files)

    # ------------------------------------------------------------------ 4: associations

    def test_one_association_carries_the_whole_study(self):
        files = self.sets["study"]
        scp = self.scp_and_node("scp-one-assoc", max_associations=1)
        job = self.send_and_wait("scp-one-assoc", "STUDY", [files[0][2]])
        self.assert_succeeded(job, files)
        self.assertEqual(scp.associations(), 1,
                         "20 instances with max_associations=1 should use one association; "
                         "storescp log:\n" + scp.log_tail(40))
        self.assertEqual(scp.store_requests(), len(files))
        self.assert_storescp_has(scp, files)

    def test_two_associations_at_most_for_200_instances(self):
        files = self.sets["many"]
        scp = self.scp_and_node("scp-two-assoc", max_associations=2)
        job = self.send_and_wait("scp-two-assoc", "STUDY", [files[0][2]], timeout=90)
        self.assert_succeeded(job, files)
        n = scp.associations()
        self.assertGreaterEqual(n, 1)
        self.assertLessEqual(n, 2, "200 instances with max_associations=2 used %d "
                             "associations" % n)
        self.assertEqual(scp.store_requests(), len(files))
        self.assertEqual(len(scp.files()), len(files))

    # ------------------------------------------------------------------ 5: refusals

    def test_instance_we_cannot_convert_fails_alone(self):
        """A JPEG 2000 instance (which we cannot convert) to a peer that accepts only
        uncompressed syntaxes (storescp's default) fails alone, with a reason that says so.
        Explicit and Implicit VR instances of the same study arrive unchanged, each in the
        transfer syntax it is stored in (nothing converted when the peer takes it as is)."""
        expl, impl, jpeg = self.ts_explicit, self.ts_implicit, self.ts_jpeg
        for path, sop, _, _ in jpeg:  # precondition: our archive holds them as they came
            status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % sop)
            self.assertEqual(status, 200, sop)
            self.assertEqual(ts_of(payload), JPEG2000_LOSSLESS,
                             "our receiver did not keep the JPEG 2000 instance as it came")
        scp = self.scp_and_node("scp-uncompressed")
        job = self.send_and_wait("scp-uncompressed", "STUDY", [expl[0][2]])
        d = dump(job)
        self.assertEqual(job.get("state"), "partial", d)
        failed = job.get("failed_instances") or []
        self.assertEqual(sorted(f.get("sop_uid") for f in failed),
                         sorted(f[1] for f in jpeg), d)
        for f in failed:
            self.assertIsNone(f.get("status"), "never sent, so no DIMSE status: " + d)
            self.assertMatchesCI(r"transfer syntax|JPEG ?2000|JPEG2000|%s"
                                 % re.escape(JPEG2000_LOSSLESS), f.get("reason"), d)
        self.assertEqual(job.get("not_confirmed"), [], d)
        p = job.get("progress") or {}
        n = len(expl) + len(impl) + len(jpeg)
        self.assertEqual((p.get("total"), p.get("completed"), p.get("failed"),
                          p.get("remaining")), (n, len(expl) + len(impl), len(jpeg), 0), d)
        self.assert_storescp_has(scp, expl + impl)

        # A series of JPEG 2000 instances only: nothing confirmed, so failed.
        job = self.send_and_wait("scp-uncompressed", "SERIES", [jpeg[0][3]])
        d = dump(job)
        self.assertEqual(job.get("state"), "failed", d)
        self.assertEqual(sorted(f.get("sop_uid") for f in job.get("failed_instances") or []),
                         sorted(f[1] for f in jpeg), d)
        self.assertEqual((job.get("progress") or {}).get("completed"), 0, d)
        self.assertTrue(job.get("error"), d)
        self.assertEqual(len(scp.files()), len(expl) + len(impl), "nothing more may arrive")

    def test_explicit_instance_to_a_peer_accepting_only_implicit_vr(self):
        """Explicit VR data to a peer that takes only Implicit VR: refused with the reason, or
        converted faithfully (an open question: no transcoding in this step, but DCMTK
        converts between uncompressed syntaxes by itself). Either is accepted here, not a
        silent mess: a failure names the transfer syntax; a delivery is Implicit VR at the
        peer with exactly the source's elements and values."""
        expl, impl = self.ts_explicit, self.ts_implicit
        scp = self.scp_and_node("scp-implicit", {"options": ["+B", "+xi"]})
        job = self.send_and_wait("scp-implicit", "STUDY", [expl[0][2]])
        d = dump(job)
        failed = {f.get("sop_uid"): f for f in job.get("failed_instances") or []}
        got = scp.files()
        sys.stderr.write("[Explicit -> Implicit-only peer: %s, %d failed, %d delivered] "
                         % (job.get("state"), len(failed), len(got)))
        self.assertIn(job.get("state"), ("succeeded", "partial"), d)
        self.assert_identical_files({s: got[s] for s in got if s in {f[1] for f in impl}},
                                    impl)
        for path, sop, _, _ in expl:
            if sop in failed:
                self.assertNotIn(sop, got, d)
                self.assertMatchesCI(r"transfer syntax|Explicit VR|1\.2\.840\.10008\.1\.2\.1\b",
                                     failed[sop].get("reason"), d)
                continue
            self.assertIn(sop, got, "neither failed nor delivered: " + d)
            self.assertEqual(ts_of(got[sop]), harness.IMPLICIT_VR_LE)
            theirs = {tag: v[1] for tag, v in dicomgen.read_elements(got[sop]).items()}
            ours = {tag: v[1] for tag, v in dicomgen.read_elements(path).items()}
            self.assertEqual(theirs, ours, "%s: the Implicit VR copy has other elements or "
                             "values than the source" % sop)

    def test_lossless_only_peer_gets_compressed_data_that_decodes_to_the_original(self):
        ct = self.sop_ct
        for name, syntax, uid in (("JLS", "JPEGLSLossless", "1.2.840.10008.1.2.4.80"),
                                  ("JPEGLL", "JPEGLossless:Non-hierarchical-1stOrderPrediction",
                                   "1.2.840.10008.1.2.4.70")):
            with self.subTest(syntax):
                work = self.mkdtemp("lossless-" + name)
                cfg = work / "lossless.cfg"
                cfg.write_text(LOSSLESS_ONLY_PROFILE.format(name=name, syntax=syntax), "utf-8")
                node = "scp-" + name.lower()
                scp = self.scp_and_node(node, {"options": ["+B", "-xf", str(cfg), "Lossless"]})
                job = self.send_and_wait(node, "SERIES", [ct[0][3]])
                d = dump(job)
                self.assertEqual(job.get("state"), "succeeded", d)
                got = scp.files()
                self.assertEqual(set(got), {f[1] for f in ct}, d)
                for path, sop, _, _ in ct:
                    self.assertEqual(ts_of(got[sop]), uid, sop)
                    self.assertEqual(pixel_bytes(got[sop], work), pixel_bytes(path, work),
                                     "%s: decoded pixels differ from the original" % sop)

    def test_peer_refusing_a_sop_class(self):
        ct, mr = self.sop_ct, self.sop_mr
        work = self.mkdtemp("ctonly-cfg")
        cfg = work / "ctonly.cfg"
        cfg.write_text(CT_ONLY_PROFILE, "utf-8")
        scp = self.scp_and_node("scp-ct-only", {"options": ["+B", "-xf", str(cfg), "CTOnly"]})
        job = self.send_and_wait("scp-ct-only", "STUDY", [ct[0][2]])
        d = dump(job)
        self.assertEqual(job.get("state"), "partial", d)
        failed = job.get("failed_instances") or []
        self.assertEqual([f.get("sop_uid") for f in failed], [mr[0][1]], d)
        self.assertTrue((failed[0].get("reason") or "").strip(), "no reason: " + d)
        self.assertMatchesCI(r"SOP class|presentation context|abstract syntax|not accepted|"
                             r"refused|rejected|MR", failed[0].get("reason"), d)
        self.assertEqual(job.get("not_confirmed"), [], d)
        p = job.get("progress") or {}
        self.assertEqual((p.get("completed"), p.get("failed")), (len(ct), 1), d)
        self.assert_storescp_has(scp, ct)

    def test_peer_refusing_one_instance_with_a_status_then_retry(self):
        files = self.sets["status"]
        victim = files[2]
        # Not bit-preserving: storescp writes the file itself and answers 0xA700 when it
        # cannot (here a directory has the file's name).
        # 0xA700 (out of resources) is a transient refusal: no automatic retry on this node, the
        # scenario is the partial job and the retry by hand.
        scp = self.scp_and_node("scp-a700", {"options": ["-B"]}, retry={"attempts": 1})
        blocker = scp.out_dir / ("CT." + victim[1])
        blocker.mkdir()
        job_id = self.start_send("scp-a700", "STUDY", [files[0][2]])
        job = self.wait_job(job_id)
        d = dump(job)
        self.assertEqual(job.get("state"), "partial", d)
        self.assertEqual([(h.get("outcome"), h.get("transient")) for h in job.get("history") or []],
                         [("partial", True)], "one run, 0xA700 judged transient: " + d)
        failed = job.get("failed_instances") or []
        self.assertEqual([f.get("sop_uid") for f in failed], [victim[1]], d)
        self.assertEqual(str(failed[0].get("status")).lower(), "0xa700", d)
        self.assertTrue((failed[0].get("reason") or "").strip(), "no reason: " + d)
        self.assertEqual(job.get("not_confirmed"), [], d)
        p = job.get("progress") or {}
        self.assertEqual((p.get("total"), p.get("completed"), p.get("failed")),
                         (len(files), len(files) - 1, 1), d)
        self.assertEqual(scp.store_requests(), len(files), scp.log_tail(30))
        self.assertEqual(sorted(scp.files()), sorted(f[1] for f in files if f is not victim))

        blocker.rmdir()
        status, answer = self.server.api("POST", "/api/jobs/%s/retry" % job_id)
        self.assertEqual(status, 202, answer)
        retry_id = str(answer["job_id"])
        self.assertNotEqual(retry_id, job_id)
        retry = self.wait_job(retry_id)
        rd = dump(retry)
        self.assertEqual(retry.get("state"), "succeeded", rd)
        self.assertEqual(retry.get("type"), "send", rd)
        self.assertEqual(retry.get("node"), "scp-a700", rd)
        self.assertEqual((retry.get("progress") or {}).get("total"), 1,
                         "the retry should send only the refused instance: " + rd)
        self.assertEqual(scp.store_requests(), len(files) + 1, scp.log_tail(30))
        self.assertEqual(sorted(scp.files()), sorted(f[1] for f in files))

    def test_warning_and_failure_statuses(self):
        """Warnings (0xB000, 0xB007) count as confirmed and are listed; a failure status
        (0xC000) fails that instance alone; a study with only warnings still succeeds."""
        files = self.sets["statuses"]
        warn_a, warn_b, fail, ok = files[0], files[1], files[2], files[3]
        scp = ScriptedStoreSCP({warn_a[1]: 0xB000, warn_b[1]: 0xB007, fail[1]: 0xC000})
        self.addCleanup(scp.close)
        self.add_node("scripted", scp.port, ae_title=scp.aet)
        job = self.send_and_wait("scripted", "STUDY", [ok[2]])
        d = dump(job)
        self.assertEqual(scp.errors, [])
        self.assertEqual(sorted(r[0] for r in scp.received), sorted(f[1] for f in files))
        for sop, ts, data in scp.received:
            src = [f[0] for f in files if f[1] == sop][0]
            self.assertEqual(ts, ts_of(src), sop)
            self.assertEqual(data, dicomgen.dataset_bytes(src), "%s: dataset differs" % sop)
        self.assertEqual(job.get("state"), "partial", d)
        self.assertEqual([(f.get("sop_uid"), str(f.get("status")).lower())
                          for f in job.get("failed_instances") or []],
                         [(fail[1], "0xc000")], d)
        self.assertTrue((job["failed_instances"][0].get("reason") or "").strip(), d)
        self.assertEqual(sorted((w.get("sop_uid"), str(w.get("status")).lower())
                                for w in job.get("warnings") or []),
                         sorted([(warn_a[1], "0xb000"), (warn_b[1], "0xb007")]),
                         "warnings[].status should be the bare code, as failed_instances[]"
                         ".status is: " + d)
        self.assertEqual(job.get("not_confirmed"), [], d)
        p = job.get("progress") or {}
        self.assertEqual((p.get("total"), p.get("failed"), p.get("warning"), p.get("remaining")),
                         (4, 1, 2, 0), d)
        self.assertIn(p.get("completed"), (1, 3), "completed: the successes (1), or the "
                      "successes and warnings (3): " + d)

        # Only warnings: succeeded, with the warnings listed.
        only = self.sets["warn_only"]
        scp.statuses = {only[1][1]: 0xB000}
        job = self.send_and_wait("scripted", "STUDY", [only[0][2]])
        d = dump(job)
        self.assertEqual(job.get("state"), "succeeded", d)
        self.assertEqual([(w.get("sop_uid"), str(w.get("status")).lower())
                          for w in job.get("warnings") or []], [(only[1][1], "0xb000")], d)
        self.assertEqual(job.get("failed_instances"), [], d)
        self.assertEqual((job.get("progress") or {}).get("warning"), 1, d)

    # ------------------------------------------------------------------ 6: fault

    def test_peer_killed_mid_send_then_retry_sends_only_the_rest(self):
        files = self.sets["fault"]
        study = files[0][2]
        all_sops = {f[1] for f in files}
        scp = self.start_scp("scp-fault", debug=True)
        proxy = harness.ThrottledProxy(scp.port, rate=2_000_000, throttle="upload")
        self.addCleanup(proxy.close)
        # No automatic retry (the peer's death is transient): the scenario is the partial job
        # and the retry by hand.
        self.add_node("scp-fault", proxy.port, timeout_seconds=30, retry={"attempts": 1})
        try:
            job_id = self.start_send("scp-fault", "STUDY", [study])
            self.wait_progress(job_id, 15, timeout=60)
            scp.kill()
            job = self.wait_job(job_id, timeout=90)
        finally:
            proxy.rate = None
        d = dump(job)
        self.assertEqual(job.get("state"), "partial", d)
        self.assertEqual([(h.get("outcome"), h.get("transient")) for h in job.get("history") or []],
                         [("partial", True)], "one run, the peer's death judged transient: " + d)
        self.assertTrue(job.get("error"), "the job should say the peer went away: " + d)
        self.assertNotRegex(job["error"], r"AE title|TLS",
                            "%d instances were confirmed on this node before the peer died: "
                            "the error should say the peer went away mid-send, not suggest an "
                            "AE title or TLS problem: %s" % (job["progress"]["completed"], d))
        not_confirmed = job.get("not_confirmed") or []
        failed = [f.get("sop_uid") for f in job.get("failed_instances") or []]
        self.assertTrue(not_confirmed, d)
        self.assertEqual(len(not_confirmed), len(set(not_confirmed)), d)
        unconfirmed = set(not_confirmed) | set(failed)
        self.assertTrue(unconfirmed <= all_sops, d)
        confirmed = all_sops - unconfirmed
        p = job.get("progress") or {}
        self.assertEqual(p.get("total"), len(files), d)
        self.assertEqual(p.get("completed"), len(confirmed),
                         "completed + not confirmed/failed should be all %d: %s"
                         % (len(files), d))
        self.assertGreaterEqual(len(confirmed), 15, d)
        # What was confirmed is at the peer, complete; each C-STORE-RQ went once.
        first_run = scp.received_sops()
        self.assertEqual([s for s, n in Counter(first_run).items() if n > 1], [],
                         "sent twice within the first job")
        self.assertTrue(confirmed <= set(first_run), "confirmed but never received: %s"
                        % sorted(confirmed - set(first_run))[:5])
        self.assert_identical_files({s: p for s, p in scp.files().items() if s in confirmed},
                                    [f for f in files if f[1] in confirmed])

        # storescp back on the same port and directory: the retry sends exactly the rest.
        again = StoreSCP(scp.workdir, out_dir=scp.out_dir, port=scp.port, debug=True,
                         log_name="storescp-again")
        self._peers.append(again)
        self.addCleanup(again.stop)
        again.start()
        status, answer = self.server.api("POST", "/api/jobs/%s/retry" % job_id)
        self.assertEqual(status, 202, answer)
        retry_id = str(answer["job_id"])
        self.assertNotEqual(retry_id, job_id)
        retry = self.wait_job(retry_id, timeout=90)
        rd = dump(retry)
        self.assertEqual(retry.get("state"), "succeeded", rd)
        self.assertEqual(retry.get("node"), "scp-fault", rd)
        rp = retry.get("progress") or {}
        self.assertEqual(rp.get("total"), len(unconfirmed),
                         "the retry should send only the %d unconfirmed instances: %s"
                         % (len(unconfirmed), rd))
        self.assertEqual(rp.get("completed"), len(unconfirmed), rd)
        second_run = again.received_sops()
        self.assertEqual(sorted(second_run), sorted(unconfirmed),
                         "the retry sent other instances than the unconfirmed ones "
                         "(or some twice): extra %s, missing %s"
                         % (sorted(set(second_run) - unconfirmed)[:5],
                            sorted(unconfirmed - set(second_run))[:5]))
        self.assertFalse(set(second_run) & confirmed, "confirmed instances sent again")
        self.assert_storescp_has(again, files)

    def test_a_stored_file_cut_short_mid_send_fails_alone_and_never_arrives_whole(self):
        """Something outside the server truncates an archive file while it is being sent (a
        16 MB instance paced to 1 MB/s). The data set cannot be finished: the association is
        aborted (a peer keeps no instance from an aborted one), the instance fails with the
        reason, the study's other instances arrive whole on a new association, and the server
        goes on."""
        d = self.mkdtemp("cut")
        big = dicomgen.generate(d / "big", 1, modality="CT", size=16 * 1024 * 1024,
                                patient_id="SENDCUT")
        study = big[0][2]
        small = add_series(d / "small", study, 3, size=4000, patient_id="SENDCUT")
        self.load([f[0] for f in big + small])
        self.assertTrue(harness.wait_until(
            lambda: harness.studies_by_uid(self.server).get(study, {}).get("instance_count") == 4,
            timeout=30, interval=0.1))
        big_sop = big[0][1]
        stored = [p for p in harness.files_under(self.server.data_dir / "archive")
                  if os.path.basename(p) == big_sop + ".dcm"]
        self.assertEqual(len(stored), 1, stored)
        whole = os.path.getsize(stored[0])
        scp = self.start_scp("scp-cut", debug=True)
        proxy = harness.ThrottledProxy(scp.port, rate=1_000_000, throttle="upload")
        self.addCleanup(proxy.close)
        self.add_node("scp-cut", proxy.port, retry={"attempts": 1})
        job_id = self.start_send("scp-cut", "STUDY", [study])

        def partly_there():
            for p in scp.out_dir.iterdir():
                if big_sop in p.name and p.stat().st_size > 512 * 1024:
                    return True
            return False

        try:
            self.assertTrue(harness.wait_until(partly_there, timeout=30, interval=0.05),
                            "the big instance never started arriving: " + dump(self.get_job(job_id)))
            # Far below what has been read by now: the next read finds the end of the file.
            os.truncate(stored[0], 4 * 1024 * 1024)
            job = self.wait_job(job_id, timeout=60)
        finally:
            proxy.rate = None
        d = dump(job)
        self.assertEqual(job.get("state"), "partial", d)
        failed = job.get("failed_instances") or []
        self.assertEqual([f.get("sop_uid") for f in failed], [big_sop], d)
        # Where it ended and how long it was, in file bytes; not worth another try by itself.
        self.assertIn("the stored file ended at byte %d of %d" % (4 * 1024 * 1024, whole),
                      failed[0].get("reason", ""), d)
        self.assertIn(big_sop, job.get("error") or "", d)
        self.assertEqual([h.get("transient") for h in job.get("history") or []], [False], d)
        p = job.get("progress") or {}
        self.assertEqual((p.get("completed"), p.get("failed")), (3, 1), d)
        # The peer: the three small ones byte-identical, nothing of the cut one kept whole.
        got = scp.files()
        self.assert_identical_files({s: f for s, f in got.items() if s != big_sop}, small)
        if big_sop in got:
            self.assertLess(got[big_sop].stat().st_size, 16 * 1024 * 1024,
                            "storescp holds the cut instance whole")
        self.assertIn("Abort", scp.log_text(), "storescp saw no A-ABORT:\n" + scp.log_text()[-2000:])

        # Before a send: the two files cut short fail alone before their C-STORE-RQ goes out
        # (their size is not the indexed one), one damaged in place (its size unchanged) stays
        # not confirmed (it could be the storage failing for a while), and one association
        # carries the last one.
        def archive_path(sop):
            found = [p for p in harness.files_under(self.server.data_dir / "archive")
                     if os.path.basename(p) == sop + ".dcm"]
            self.assertEqual(len(found), 1, found)
            return found[0]

        os.truncate(archive_path(small[0][1]), 1000)
        with open(archive_path(small[1][1]), "r+b") as f:
            f.seek(132)
            f.write(b"\xff" * 64)
        requests_before = scp.store_requests()
        job = self.send_and_wait("scp-cut", "STUDY", [study])
        d = dump(job)
        self.assertEqual(job.get("state"), "partial", d)
        failed = {f.get("sop_uid"): f.get("reason", "") for f in job.get("failed_instances") or []}
        self.assertEqual(sorted(failed), sorted([big_sop, small[0][1]]), d)
        self.assertIn("is %d bytes, %d when it was indexed" % (4 * 1024 * 1024, whole), failed[big_sop], d)
        self.assertIn("is 1000 bytes", failed[small[0][1]], d)
        self.assertEqual(job.get("not_confirmed"), [small[1][1]], d)
        self.assertIn("cannot read the stored file", job.get("error") or "", d)
        p = job.get("progress") or {}
        self.assertEqual((p.get("completed"), p.get("failed"), p.get("associations")), (1, 2, 1), d)
        self.assertEqual(scp.store_requests() - requests_before, 1, scp.log_text()[-3000:])
        self.assert_identical_files({s: f for s, f in scp.files().items() if s == small[2][1]}, small[2:])
        status, health = self.server.api("GET", "/api/health")
        self.assertEqual(status, 200, health)

    # ------------------------------------------------------------------ 7: errors

    def test_request_errors_name_the_field(self):
        study = self.sets["study"][0][2]
        scp_port = harness.free_port()
        self.add_node("errors-target", scp_port)
        ok = {"node": "errors-target", "level": "STUDY", "uids": [study]}

        def post(**changes):
            body = dict(ok)
            body.update(changes)
            return self.post_send({k: v for k, v in body.items() if v is not None})

        status, body = post(node="no-such-node")
        self.assertJsonError(status, body, "node", 404)
        status, body = post(node="not-storable")
        self.assertJsonError(status, body, None, 409)
        for level, uid in (("STUDY", "1.2.3.4.5.6.7.8.9"), ("SERIES", study),
                           ("IMAGE", self.sets["study"][0][3])):
            status, body = post(level=level, uids=[uid])
            self.assertJsonError(status, body, None, 404)
            self.assertTrue(str(body.get("field", "")).startswith("uids"),
                            "%s %s matches nothing here: field should be uids: %r"
                            % (level, uid, body))
        for field, value in (("level", "PATIENT"), ("level", "VOLUME"), ("uids", []),
                             ("uids", ["not a uid"]), ("uids", study)):
            status, body = post(**{field: value})
            self.assertJsonError(status, body, None, 400)
            self.assertTrue(str(body.get("field", "")).startswith(field),
                            "%s=%r: field should name %s: %r" % (field, value, field, body))
        status, body = self.post_send({"node": "errors-target", "level": "STUDY"})
        self.assertJsonError(status, body, None, 400)
        self.assertTrue(str(body.get("field", "")).startswith("uids"), body)
        status, body = self.server.api("POST", "/api/jobs/987654321/retry")
        self.assertEqual(status, 404, body)

    # ------------------------------------------------------------------ 8: CLI

    def test_cli_send_follow_and_json(self):
        files = self.sets["cli"]
        scp = self.scp_and_node("scp-cli")
        cp = self.server.cli("send", "scp-cli", "--study", files[0][2], "--follow",
                             timeout=120)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        m = re.search(r"job (\d+)\b.*\bsucceeded", cp.stdout)
        self.assertIsNotNone(m, "stdout should end with the job's final state:\n"
                             + harness.proc_output(cp))
        job = self.get_job(m.group(1))
        self.assert_succeeded(job, files, node="scp-cli")
        self.assert_storescp_has(scp, files)

        files = self.sets["cli_json"]
        cp = self.server.cli("send", "scp-cli", "--study", files[0][2], "--json")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        answer = json.loads(cp.stdout)
        self.assertIn("job_id", answer, cp.stdout)
        self.assert_succeeded(self.wait_job(str(answer["job_id"])), files, node="scp-cli")

    def test_cli_send_series_and_instances(self):
        files = self.sets["cli_parts"]
        series = sorted({f[3] for f in files})
        scp = self.scp_and_node("scp-cli-parts")
        cp = self.server.cli("send", "scp-cli-parts", "--series", series[0], "--follow",
                             timeout=120)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        in_series = [f for f in files if f[3] == series[0]]
        self.assert_storescp_has(scp, in_series)
        pick = [f for f in files if f[3] == series[1]][:2]
        args = ["send", "scp-cli-parts", "--study", files[0][2], "--series", series[1]]
        for f in pick:
            args += ["--instance", f[1]]
        cp = self.server.cli(*(args + ["--follow"]), timeout=120)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assert_storescp_has(scp, in_series + pick)

    def test_cli_send_follow_fails_when_the_job_does_not_succeed(self):
        files = self.sets["cli_parts"]
        # Nothing listens there (refused: transient), and no automatic retry: the job ends.
        self.add_node("closed-port", harness.free_port(), retry={"attempts": 1})
        cp = self.server.cli("send", "closed-port", "--study", files[0][2], "--follow",
                             timeout=120)
        self.assertNotEqual(cp.returncode, 0, "a failed send must not exit 0:\n"
                            + harness.proc_output(cp))
        self.assertIn("failed", cp.stdout + cp.stderr, harness.proc_output(cp))
        status, jobs = self.server.api("GET", "/api/jobs?node=closed-port")
        self.assertEqual(status, 200, jobs)
        self.assertEqual(len(jobs), 1, jobs)
        job = self.get_job(jobs[0]["id"])
        d = dump(job)
        self.assertEqual(job.get("state"), "failed", d)
        self.assertEqual([(h.get("outcome"), h.get("transient")) for h in job.get("history") or []],
                         [("failed", True)], "one run, a refused connection judged transient: " + d)
        self.assertMatchesCI(r"refused", job.get("error"), d)
        unconfirmed = set(job.get("not_confirmed") or []) | {
            f.get("sop_uid") for f in job.get("failed_instances") or []}
        self.assertEqual(unconfirmed, {f[1] for f in files},
                         "every instance should be listed as not sent: " + d)
        self.assertEqual((job.get("progress") or {}).get("completed"), 0, d)


if __name__ == "__main__":
    unittest.main()
