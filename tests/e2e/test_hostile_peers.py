"""Hostile and stalling peers on the DICOM ports must hold up no one else (issue: hardening).

A new connection is held by the receiver's accept loop (a descriptor, no worker) until its
whole A-ASSOCIATE-RQ, or on a TLS port its whole first handshake record, is in the socket
buffer: silent and dripping connections cost no worker and are cut when their 5 s are up.
Then DCMTK takes the socket only through one process-wide variable, so handing a
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
import selectors
import socket
import ssl
import struct
import subprocess
import sys
import threading
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


def client_hello():
    """The first flight of a TLS client (a whole ClientHello record), made by Python's ssl."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


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

    def assertCutInTime(self, s, opened, why, answered=False):
        """The server closes the hostile connection once its opening's 5 s are up, and says so.
        answered: the server's first bytes (a TLS ServerHello) are read and dropped."""
        s.settimeout(REQUEST_TIMEOUT + 5)
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                data = b""
            if not (answered and data):
                break
        elapsed = time.monotonic() - opened
        self.assertEqual(data, b"", "the server answered a hostile opening with %r" % data[:40])
        self.assertLess(elapsed, REQUEST_TIMEOUT + 3, "the hostile connection lasted %.1f s" % elapsed)
        logged = harness.wait_until(lambda: why in self.server.log_path.read_text("utf-8", "replace"), 5, 0.1)
        self.assertTrue(logged, "no log line %r:\n%s" % (why, self.server.log_tail(20)))

    def test_a_tls_peer_stalling_in_its_handshake_holds_up_no_one(self):
        opened = time.monotonic()
        # A whole ClientHello, then nothing: the accept loop hands the connection over, DCMTK's
        # TLS accept reads it, answers, and waits for the client's next flight, which never comes.
        s = self.hostile(self.tls_port, client_hello())
        cp, took = self.timed_echo(self.plain_port, "PACSBRIDGE")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertLess(took, QUICK, "a plain echo waited %.1f s for a stalled TLS handshake" % took)
        cp, took = self.timed_echo(self.tls_port, "SECURE",
                                   ["+tls", str(self.client_key), str(self.client_cert), "-ic"])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertLess(took, QUICK, "a TLS echo waited %.1f s for a stalled TLS handshake" % took)
        self.assertCutInTime(s, opened, "receiver SECURE: connection from 127.0.0.1 closed: "
                                        "no TLS handshake and A-ASSOCIATE-RQ within %d s" % REQUEST_TIMEOUT,
                             answered=True)
        self.assertHealthy(self.server)

    def test_one_address_stalling_many_tls_handshakes_holds_up_no_one_else(self):
        """Ten whole ClientHellos followed by silence, all from 127.0.0.2: each would hold a
        worker in DCMTK's handshake for the request timeout, and the receiver has eight. One
        address gets at most half of them; its other connections wait in the accept loop, so a
        TLS echo from 127.0.0.1 is served at once."""
        log_before = self.server.log_path.read_text("utf-8", "replace")
        hello = client_hello()
        hostile = []
        for _ in range(10):
            s = socket.create_connection(("127.0.0.1", self.tls_port), timeout=30, source_address=("127.0.0.2", 0))
            self.addCleanup(s.close)
            s.sendall(hello)
            hostile.append(s)
        opened = time.monotonic()
        cp, took = self.timed_echo(self.tls_port, "SECURE", ["+tls", str(self.client_key), str(self.client_cert), "-ic"])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertLess(took, QUICK, "a TLS echo waited %.1f s behind one address's stalled handshakes" % took)
        for s in hostile:  # each is cut: in handoff after its 5 s, or still waiting its turn
            s.settimeout(2 * REQUEST_TIMEOUT + 10)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
        longest = time.monotonic() - opened
        self.assertLess(longest, 2 * REQUEST_TIMEOUT + 4, "a stalled handshake lasted %.1f s" % longest)
        prefix = "receiver SECURE: connection from 127.0.0.2 closed: "
        want = {prefix + "no TLS handshake and A-ASSOCIATE-RQ within %d s" % REQUEST_TIMEOUT,
                prefix + "waited %d s behind other connections from the same address" % REQUEST_TIMEOUT}
        logged = lambda: sum(self.server.log_path.read_text("utf-8", "replace")[len(log_before):].count(w)
                             for w in want)
        self.assertTrue(harness.wait_until(lambda: logged() == 10, 5, 0.1),
                        "log lines for the 10 connections: %d" % logged())
        self.assertHealthy(self.server)

    def test_silent_dripping_and_absurd_openings_hold_up_no_one(self):
        """200 connections that send nothing, a few that drip their A-ASSOCIATE-RQ (or the first
        bytes of a TLS record) a byte per second, and requests announcing 4 GB: the accept loop
        holds the first kinds without a worker until their 5 s are up, and refuses the last at
        once; meanwhile echoes (plain and TLS) stay quick."""
        log_before = self.server.log_path.read_text("utf-8", "replace")
        opened = {}  # socket -> when it was connected
        closed = {}  # socket -> when the server's end-of-file came, seen by a watcher thread

        def connect(port):
            s = socket.create_connection(("127.0.0.1", port), timeout=30)
            opened[s] = time.monotonic()
            self.addCleanup(s.close)
            return s
        silent = [connect(self.plain_port) for _ in range(170)] + [connect(self.tls_port) for _ in range(30)]
        rq = harness.associate_rq_pdu("PACSBRIDGE", "DRIPPER")
        drippers = [connect(self.plain_port) for _ in range(5)] + [connect(self.tls_port) for _ in range(2)]
        sel = selectors.DefaultSelector()
        for s in silent + drippers:
            sel.register(s, selectors.EVENT_READ)

        def watch():
            deadline = time.monotonic() + REQUEST_TIMEOUT + 30
            while len(closed) < len(silent) + len(drippers) and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.5):
                    try:
                        data = key.fileobj.recv(100)
                    except OSError:
                        data = b""
                    if not data:
                        closed[key.fileobj] = time.monotonic()
                        sel.unregister(key.fileobj)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        absurd = []
        for _ in range(3):
            a = socket.create_connection(("127.0.0.1", self.plain_port), timeout=30)
            self.addCleanup(a.close)
            a.sendall(associate_rq_header(0xFFFFFFFF) + b"\x00\x01")
            absurd.append(a)
        hello = client_hello()
        stop = threading.Event()

        def drip():
            i = 0
            while not stop.is_set() and i < 20:
                for n, s in enumerate(drippers):
                    data = rq if n < 5 else hello
                    try:
                        s.send(data[i:i + 1])
                    except OSError:
                        pass
                i += 1
                stop.wait(1.0)
        t = threading.Thread(target=drip, daemon=True)
        t.start()
        self.addCleanup(stop.set)
        for _ in range(3):
            cp, took = self.timed_echo(self.plain_port, "PACSBRIDGE")
            self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
            self.assertLess(took, QUICK, "a plain echo waited %.1f s behind 200 silent connections" % took)
            cp, took = self.timed_echo(self.tls_port, "SECURE",
                                       ["+tls", str(self.client_key), str(self.client_cert), "-ic"])
            self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
            self.assertLess(took, QUICK, "a TLS echo waited %.1f s behind 200 silent connections" % took)
        for a in absurd:
            a.settimeout(5)
            try:
                data = a.recv(100)
            except ConnectionResetError:  # closed with the request unread
                data = b""
            self.assertEqual(data, b"", "a request announcing 4 GB was answered")
        watcher.join(REQUEST_TIMEOUT + 35)
        self.assertEqual(len(closed), len(silent) + len(drippers), "hostile connections the server kept open")
        longest = max(closed[s] - opened[s] for s in closed)
        self.assertLess(longest, REQUEST_TIMEOUT + 3, "a hostile connection lasted %.1f s" % longest)
        stop.set()
        log = self.server.log_path.read_text("utf-8", "replace")[len(log_before):]
        plain_cut = log.count("receiver PACSBRIDGE: connection from 127.0.0.1 closed: no complete "
                              "A-ASSOCIATE-RQ within %d s" % REQUEST_TIMEOUT)
        tls_cut = log.count("receiver SECURE: connection from 127.0.0.1 closed: no TLS handshake within %d s"
                            % REQUEST_TIMEOUT)
        self.assertEqual((plain_cut, tls_cut), (175, 32), "log lines naming the cut connections")
        self.assertEqual(log.count("not a DICOM association request (PDU length 4294967295)"), 3)
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

    def test_a_request_cut_short_by_its_peer_is_dropped_at_once(self):
        # Half a request, then the peer shuts its side: the rest can never come, so the
        # receiver closes at once (not after its 5 s) and says why; on the TLS port, half a
        # ClientHello record the same way.
        for port, first, why in (
                (self.plain_port, associate_rq_header(200) + b"\x00\x01\x00\x00" + b"PACSBRIDGE".ljust(16),
                 "receiver PACSBRIDGE: connection from 127.0.0.1 closed: closed before its A-ASSOCIATE-RQ was complete"),
                (self.tls_port, client_hello()[:20],
                 "receiver SECURE: connection from 127.0.0.1 closed: closed in the middle of its TLS handshake")):
            with self.subTest(port=port):
                opened = time.monotonic()
                s = socket.create_connection(("127.0.0.1", port), timeout=30)
                self.addCleanup(s.close)
                s.sendall(first)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(REQUEST_TIMEOUT + 5)
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    data = b""
                elapsed = time.monotonic() - opened
                self.assertEqual(data, b"")
                self.assertLess(elapsed, REQUEST_TIMEOUT / 2, "the server waited %.1f s for bytes that could not come"
                                % elapsed)
                logged = harness.wait_until(lambda: why in self.server.log_path.read_text("utf-8", "replace"), 5, 0.1)
                self.assertTrue(logged, "no log line %r:\n%s" % (why, self.server.log_tail(20)))
        self.assertHealthy(self.server)


if __name__ == "__main__":
    unittest.main()
