"""Hostile and stalling peers on the DICOM ports must hold up no one else (issue: hardening).

DCMTK takes an accepted socket only through one process-wide variable, so handing a
connection to it is serialized. A peer that stalls inside that handoff must not stall the
others: the handoff ends as soon as DCMTK has read the variable, before the TLS handshake and
before the A-ASSOCIATE-RQ is read. And a peer that never finishes its opening (a TLS handshake
DCMTK would wait on without a limit, a request that breaks off) is cut when its 5 s (the
receivers' request timeout) are up, with a log line naming the peer.

Each scenario first proves the server is inside the hostile connection's handoff: the bytes
the peer sent have left the server socket's receive queue (`ss`), i.e. DCMTK is reading them.
Then it times a normal peer (DCMTK's echoscu) against the server: before the fix it waited
for the hostile peer (for ever, in the TLS case).

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_hostile_peers.py
"""

import os
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

REQUEST_TIMEOUT = 5  # seconds: the receivers' budget for a connection's opening
QUICK = 3.0  # seconds an echo may take while a hostile peer stalls (normally well under 0.1 s; before the fix: 5 s, or for ever)


def server_recv_q(server_port, client_port):
    """Bytes waiting in the receive queue of the server's end of one connection, or None."""
    out = subprocess.run(["ss", "-tnH", "state", "established",
                          "( sport = :%d and dport = :%d )" % (server_port, client_port)],
                         capture_output=True, text=True, timeout=10).stdout
    for line in out.splitlines():
        cols = line.split()
        if cols:
            return int(cols[0])
    return None


def associate_rq_header(length):
    """The 6-byte header of an A-ASSOCIATE-RQ PDU (PS3.8 9.3.2) announcing `length` bytes."""
    return b"\x01\x00" + struct.pack(">I", length)


class HostilePeersTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        certs = cls.tmp / "certs"
        certs.mkdir()
        cls.key, cls.cert = harness.make_cert(certs, "receiver")
        cls.client_key, cls.client_cert = harness.make_cert(certs, "client")
        cls.plain_port, cls.tls_port = harness.free_port(), harness.free_port()
        tls = {"enabled": True, "cert_file": str(cls.cert), "key_file": str(cls.key)}
        cls.server = cls.start_class_server(receivers=[
            {"ae_title": "PACSBRIDGE", "port": cls.plain_port, "bind": "127.0.0.1"},
            {"ae_title": "SECURE", "port": cls.tls_port, "bind": "127.0.0.1", "tls": tls}])

    def hostile(self, port, first_bytes):
        """A connection that sends `first_bytes` and then nothing; returned once the server has
        read them (they left its socket's receive queue)."""
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.addCleanup(s.close)
        s.sendall(first_bytes)
        client_port = s.getsockname()[1]
        read = harness.wait_until(lambda: server_recv_q(port, client_port) == 0, 10, 0.02)
        self.assertTrue(read, "the server did not read the hostile peer's %d bytes (Recv-Q %s)"
                        % (len(first_bytes), server_recv_q(port, client_port)))
        return s

    def timed_echo(self, port, called_ae, extra=()):
        args = ["echoscu", "-aet", "ECHOSCU", "-aec", called_ae, "-to", "30", "-ta", "30"]
        t0 = time.monotonic()
        cp = harness.run_tool(args + list(extra) + ["127.0.0.1", str(port)], timeout=60)
        return cp, time.monotonic() - t0

    def assertCutInTime(self, s, opened, why):
        """The server closes the hostile connection once its opening's 5 s are up, and says so."""
        s.settimeout(REQUEST_TIMEOUT + 5)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        elapsed = time.monotonic() - opened
        self.assertEqual(data, b"", "the server answered a hostile opening with %r" % data[:40])
        self.assertLess(elapsed, REQUEST_TIMEOUT + 3, "the hostile connection lasted %.1f s" % elapsed)
        logged = harness.wait_until(lambda: why in self.server.log_path.read_text("utf-8", "replace"), 5, 0.1)
        self.assertTrue(logged, "no log line %r:\n%s" % (why, self.server.log_tail(20)))

    def test_a_tls_peer_stalling_in_its_handshake_holds_up_no_one(self):
        opened = time.monotonic()
        # The first bytes of a TLS record header (handshake, TLS 1.0 record version): DCMTK's
        # TLS accept reads them and waits for the rest, which never comes.
        s = self.hostile(self.tls_port, b"\x16\x03\x01\x00")
        cp, took = self.timed_echo(self.plain_port, "PACSBRIDGE")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertLess(took, QUICK, "a plain echo waited %.1f s for a stalled TLS handshake" % took)
        cp, took = self.timed_echo(self.tls_port, "SECURE",
                                   ["+tls", str(self.client_key), str(self.client_cert), "-ic"])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertLess(took, QUICK, "a TLS echo waited %.1f s for a stalled TLS handshake" % took)
        self.assertCutInTime(s, opened, "receiver SECURE: connection from 127.0.0.1 closed: "
                                        "no TLS handshake and A-ASSOCIATE-RQ within %d s" % REQUEST_TIMEOUT)
        self.assertHealthy(self.server)

    def test_a_large_association_request_that_breaks_off_holds_up_no_one(self):
        # 70,000 bytes of a request announcing 200,000: more than the server waits for before
        # handing the connection to DCMTK (64 KB), which then reads on and waits for the rest.
        opened = time.monotonic()
        body = b"\x00\x01\x00\x00" + b"PACSBRIDGE".ljust(16) + b"HOSTILE".ljust(16) + bytes(32)
        s = self.hostile(self.plain_port, associate_rq_header(200000) + body.ljust(70000, b"\x00"))
        cp, took = self.timed_echo(self.plain_port, "PACSBRIDGE")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertLess(took, QUICK, "an echo waited %.1f s for a request that broke off" % took)
        self.assertCutInTime(s, opened, "receiver PACSBRIDGE: connection from 127.0.0.1 closed: "
                                        "no complete A-ASSOCIATE-RQ within %d s" % REQUEST_TIMEOUT)
        self.assertHealthy(self.server)


if __name__ == "__main__":
    unittest.main()
