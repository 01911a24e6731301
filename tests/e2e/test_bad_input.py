"""Garbage on the DICOM port, truncated PDUs, a transfer cut off mid-way, and bad configs.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_bad_input.py
"""

import os
import signal
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

BIG_SIZE = 100 * 1000 * 1000


socket_bytes_acked = harness.socket_bytes_acked


class BadInputTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.start_class_server()
        cls.counter = 0

    # ------------------------------------------------------------------ helpers

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.server.dicom_port), timeout=10)
        self.addCleanup(s.close)
        return s

    def tmp_files(self):
        tmp = self.server.tmp_dir
        found = []
        for root, _, files in os.walk(tmp):
            found += [os.path.join(root, f) for f in files]
        return found

    def assertTmpEmptySoon(self, timeout=10):
        left = harness.wait_until(lambda: not self.tmp_files(), timeout=timeout)
        self.assertTrue(left, "files left in %s/tmp after %ss: %s"
                        % (self.server.data_dir, timeout, self.tmp_files()[:10]))

    def assertServerAlive(self):
        """echoscu, /api/health and a normal small C-STORE all still work."""
        cp = harness.echoscu(self.server.dicom_port, self.server.dicom_ae)
        self.assertEqual(cp.returncode, 0, "echoscu after bad input:\n%s"
                         % harness.proc_output(cp))
        self.assertHealthy(self.server)
        cls = type(self)
        cls.counter += 1
        path, sop, study, _ = dicomgen.generate(self.mkdtemp("small"), 1, size=2048,
                                                patient_id="ALIVE%d" % cls.counter)[0]
        cp = harness.storescu(self.server.dicom_port, self.server.dicom_ae, [path])
        self.assertEqual(cp.returncode, 0, "storescu after bad input:\n%s"
                         % harness.proc_output(cp))
        status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % sop)
        self.assertEqual(status, 200, "a small instance stored after bad input is not served")
        self.assertEqual(payload[dicomgen.read_meta(payload)[1]:],
                         dicomgen.dataset_bytes(path))

    # ------------------------------------------------------------------ garbage

    def test_survives_random_bytes(self):
        s = self.connect()
        try:
            s.sendall(os.urandom(64 * 1024))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may hang up before reading everything: fine
        s.close()
        self.assertServerAlive()
        self.assertTmpEmptySoon()

    def test_survives_truncated_pdu_then_close(self):
        s = self.connect()
        # A-ASSOCIATE-RQ header announcing 1000 bytes, followed by only 20.
        s.sendall(b"\x01\x00" + struct.pack(">I", 1000) + b"\x00\x01\x00\x00" + b"X" * 16)
        s.close()
        self.assertServerAlive()
        self.assertTmpEmptySoon()

    def test_survives_truncated_pdu_then_silence(self):
        s = self.connect()
        s.sendall(b"\x01\x00" + struct.pack(">I", 1000) + b"\x00\x01\x00\x00" + b"X" * 16)
        t0 = time.monotonic()
        # While this association hangs, other peers must still be served.
        cp = harness.echoscu(self.server.dicom_port, self.server.dicom_ae)
        self.assertEqual(cp.returncode, 0, "echoscu while another peer stalls:\n%s"
                         % harness.proc_output(cp))
        time.sleep(max(0.0, 3.0 - (time.monotonic() - t0)))
        s.close()
        self.assertServerAlive()
        self.assertTmpEmptySoon()

    # ------------------------------------------------------------------ malformed requests

    def associate_rq(self, items, calling="BADPEER"):
        """An A-ASSOCIATE-RQ (PS3.8 9.3.2): protocol version 1, called AE title, calling AE title,
        32 reserved bytes, then `items` as given."""
        body = struct.pack(">HH", 1, 0) + self.server.dicom_ae.ljust(16).encode() + calling.ljust(16).encode()
        body += bytes(32) + items
        return b"\x01\x00" + struct.pack(">I", len(body)) + body

    @staticmethod
    def item(kind, payload):
        return struct.pack(">BBH", kind, 0, len(payload)) + payload

    def answer(self, request):
        """What the server sends back before it closes the connection."""
        s = self.connect()
        s.sendall(request)
        got = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
        return got

    def test_malformed_request_items_are_refused_before_dcmtk_reads_them(self):
        # A transfer syntax sub-item claiming 100 bytes inside a presentation context that holds
        # 21 after it: DCMTK 3.6.7 would refuse it too, and leak the context's list doing so.
        context = struct.pack(">BBBB", 1, 0, 0, 0) + self.item(0x30, b"1.2.840.10008.1.1") + \
            struct.pack(">BBH", 0x40, 0, 100) + b"1.2.840.10008.1.2.1\0"
        request = self.associate_rq(self.item(0x10, b"1.2.840.10008.3.1.1.1") + self.item(0x20, context))
        self.assertEqual(self.answer(request), b"", "a malformed request must get no answer")
        why = "malformed A-ASSOCIATE-RQ: sub-item 0x40 at byte 128 claims 100 bytes, its presentation context has 20 left"
        logged = harness.wait_until(lambda: why in self.server.log_path.read_text("utf-8", "replace"), 5, 0.1)
        self.assertTrue(logged, "no log line %r:\n%s" % (why, self.server.log_tail(20)))
        self.assertServerAlive()

    def test_request_without_application_context_is_rejected(self):
        # PS3.8 9.3.2 makes the application context item mandatory; without it no A-ASSOCIATE-AC
        # can be built. The answer is an A-ASSOCIATE-RJ (PS3.8 9.3.4, Table 9-21): result 1
        # (rejected-permanent), source 1 (DICOM UL service-user), reason 2
        # (application-context-name-not-supported).
        context = struct.pack(">BBBB", 1, 0, 0, 0) + self.item(0x30, b"1.2.840.10008.1.1") + \
            self.item(0x40, b"1.2.840.10008.1.2")
        rj = self.answer(self.associate_rq(self.item(0x20, context)))
        self.assertEqual(rj[:10], b"\x03\x00\x00\x00\x00\x04\x00\x01\x01\x02", rj.hex())
        logged = harness.wait_until(lambda: "rejected association from 127.0.0.1: no application context name"
                                    in self.server.log_path.read_text("utf-8", "replace"), 5, 0.1)
        self.assertTrue(logged, self.server.log_tail(20))
        self.assertServerAlive()

    def test_request_with_blank_calling_ae_title_is_rejected(self):
        # A calling AE title of 16 spaces names no peer (PS3.8 9.3.2: "shall not be all spaces"),
        # so no whitelist can place it. A-ASSOCIATE-RJ: result 1 (rejected-permanent), source 1
        # (DICOM UL service-user), reason 3 (calling-AE-title-not-recognized), PS3.8 Table 9-21.
        context = struct.pack(">BBBB", 1, 0, 0, 0) + self.item(0x30, b"1.2.840.10008.1.1") + \
            self.item(0x40, b"1.2.840.10008.1.2")
        request = self.associate_rq(self.item(0x10, b"1.2.840.10008.3.1.1.1") + self.item(0x20, context),
                                    calling="")
        rj = self.answer(request)
        self.assertEqual(rj[:10], b"\x03\x00\x00\x00\x00\x04\x00\x01\x01\x03", rj.hex())
        logged = harness.wait_until(lambda: "rejected association from 127.0.0.1: an empty calling AE title"
                                    in self.server.log_path.read_text("utf-8", "replace"), 5, 0.1)
        self.assertTrue(logged, self.server.log_tail(20))
        self.assertServerAlive()
    # ------------------------------------------------------------------ cut-off transfer

    def test_cut_off_transfer_is_not_indexed(self):
        path, sop, study, _ = dicomgen.generate(self.mkdtemp("big"), 1, size=BIG_SIZE,
                                                patient_id="CUTOFF")[0]
        size = os.path.getsize(path)
        proc = harness.start_tool(harness.storescu_args(
            self.server.dicom_port, self.server.dicom_ae, [path], calling_ae="CUTOFF"))
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        t0 = time.monotonic()
        acked = None
        # Kill after ~0.3 s, or earlier once a few MB went through (loopback is fast).
        while time.monotonic() - t0 < 20:
            if proc.poll() is not None:
                break
            acked = socket_bytes_acked(proc.pid, self.server.dicom_port)
            if acked is not None and (acked >= 4_000_000 or
                                      (acked > 100_000 and time.monotonic() - t0 >= 0.3)):
                break
            time.sleep(0.01)
        still_running = proc.poll() is None
        if still_running:
            os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        self.assertTrue(still_running, "storescu finished before it could be killed "
                        "(exit %s):\n%s\n%s" % (proc.returncode, out, err))
        self.assertEqual(proc.returncode, -signal.SIGKILL)
        self.assertIsNotNone(acked, "no TCP connection of storescu seen with ss")
        self.assertGreater(acked, 100_000, "storescu was killed before sending the dataset")
        # What had not reached the server yet cannot complete the dataset: after the kill, at
        # most storescu's send buffer (a few MB on loopback) still goes out, so the server must
        # see the connection end mid-dataset. (On a fast machine storescu can send tens of MB
        # between two looks with `ss`; the bound allows for that.)
        self.assertLess(acked, size - 16_000_000,
                        "storescu had already sent %d of %d bytes" % (acked, size))
        sys.stderr.write("[killed storescu after %d of %d bytes] " % (acked, size))

        self.assertServerAlive()
        for _ in range(2):  # right away, and again once the server had time to clean up
            status, _, _ = self.server.raw("GET", "/api/instances/%s/file" % sop)
            self.assertEqual(status, 404, "the cut-off instance is served")
            self.assertNotIn(study, harness.studies_by_uid(self.server),
                             "the cut-off instance's study is listed")
            self.assertTmpEmptySoon()


class ConfigErrorTests(harness.E2ETestCase):
    """serve --config with an invalid file: exit non-zero quickly, naming key and line."""

    def serve_with(self, text, timeout=10):
        binary = harness.require_binary(self)
        d = self.mkdtemp(self._testMethodName[:30])
        cfg = d / "bad.toml"
        cfg.write_text(text, "utf-8")
        proc = harness.start_tool([binary, "serve", "--config", cfg], cwd=str(d))
        try:
            out, err = proc.communicate(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            timed_out = True
        self.assertFalse(timed_out, "serve with an invalid config still runs after %ss:\n%s\n%s"
                         % (timeout, out, err[-3000:]))
        self.assertNotEqual(proc.returncode, 0, "serve accepted an invalid config:\n%s"
                            % err[-3000:])
        self.assertTrue(err.strip(), "no reason on stderr")
        return err

    def assertNamesLine(self, n, err):
        """"line 3" or the compiler-style "bad.toml:3:" both name the line."""
        self.assertMatchesCI(r"\bline %d\b|bad\.toml:%d\b" % (n, n), err,
                             "line %d not named in: %r" % (n, err))

    def head(self, d="var"):
        return ("[server]\n"
                "data_dir = \"%s\"\n" % d)

    def test_toml_syntax_error_names_line(self):
        err = self.serve_with(self.head() +
                              "http_listen = \"127.0.0.1:%d\n" % harness.free_port())
        self.assertNamesLine(3, err)

    def test_unknown_key_names_key_and_line(self):
        err = self.serve_with(self.head() + "colour = 1\n"
                              "http_listen = \"127.0.0.1:%d\"\n" % harness.free_port())
        self.assertIn("colour", err)
        self.assertNamesLine(3, err)

    def test_port_of_wrong_type_names_key_and_line(self):
        err = self.serve_with(self.head() +
                              "http_listen = \"127.0.0.1:%d\"\n"   # line 3
                              "\n"                                  # line 4
                              "[[receivers]]\n"                     # line 5
                              "ae_title = \"PACSBRIDGE\"\n"         # line 6
                              "port = \"abc\"\n"                    # line 7
                              "bind = \"127.0.0.1\"\n" % harness.free_port())
        self.assertMatchesCI(r"\bport\b", err)
        self.assertNamesLine(7, err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
