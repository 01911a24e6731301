#!/usr/bin/env python3
"""Load benchmark: PACS Bridge's receiver under hostile peers, HTTP readers and a flood of
associations, in one run. Python 3 standard library only (plus DCMTK's storescu).

    bench/load.sh                      # ~3 minutes: 3 rounds of 10 s phases, a 60 s flood
    LOAD_FLOOD_SECONDS=180 bench/load.sh
    make soak                          # the flood for an hour (LOAD_FLOOD_SECONDS=3600)

One `pacsbridge serve` (release build), one receiver. A well-behaved sender is one storescu
(TCP_NODELAY) sending the small set (LOAD_SMALL instances of 2 KB) again and again; its rate
(instances/s) is measured alone, then with each kind of trouble going on, in LOAD_ROUNDS (3)
rounds of LOAD_PHASE_SECONDS (10) each; the ratios are per round, their median reported:
- hostile: 200 connections that send nothing (re-opened as the server cuts them), 10 that drip
  an A-ASSOCIATE-RQ a byte per second, and 5 per second announcing a 4 GB PDU;
- http: 200 clients reading GET /api/studies (a page of 50), each once a second
  (LOAD_READ_INTERVAL; 0: as fast as they can, which on 2 cores measures the machine: the
  Python clients take a core).
Target: the sender keeps >= 80 % of its rate alone; no HTTP error; every hostile connection cut
within its 5 s, with a log line naming the peer.

Then the flood (the receiver's max_associations raised to LOAD_ASSOCS + 8): LOAD_ASSOCS (50)
storescu processes at once, each sending its own share of a
mixed set (small, and CT of 0.5 MB) in a loop for LOAD_FLOOD_SECONDS. The server's resident
memory and open descriptors are sampled every 2 s: after a warm-up (the first quarter), memory
must not trend upward (the fitted slope under LOAD_RSS_SLOPE MB per minute, default 2) and the
descriptors must come back to where they were; every instance is indexed exactly once.

Exit status: 0 when every measurement completed (targets met or not: see the report), 1 when
something broke, 2 on bad usage.
"""

import glob
import os
import socket
import struct
import subprocess
import sys
import threading
import time

import common
from common import (BenchError, env_num, free_port, http_json, log, med, start_bridge, stop,
                    wait_bridge_ready)

common.PROG = "load"
REQUEST_TIMEOUT = 5


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def slope_per_minute(samples):
    """Least-squares slope of (t seconds, value) samples, per minute."""
    n = len(samples)
    if n < 3:
        return None
    mt = sum(t for t, _ in samples) / n
    mv = sum(v for _, v in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    return 60.0 * sum((t - mt) * (v - mv) for t, v in samples) / var if var else None


def associate_rq(called, calling):
    """A minimal A-ASSOCIATE-RQ (PS3.8 9.3.2) proposing Verification."""
    def item(t, payload):
        return struct.pack(">BBH", t, 0, len(payload)) + payload
    app = item(0x10, b"1.2.840.10008.3.1.1.1")
    pc = item(0x20, bytes([1, 0, 0, 0]) + item(0x30, b"1.2.840.10008.1.1") + item(0x40, b"1.2.840.10008.1.2"))
    user = item(0x50, item(0x51, struct.pack(">I", 16384)))
    body = (struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode() + bytes(32)
            + app + pc + user)
    return struct.pack(">BBI", 1, 0, len(body)) + body


class Sender:
    """storescu in a loop over `files` until stopped; counts instances sent and failures."""

    def __init__(self, cfg, port, files, tag):
        self.cfg, self.port, self.files, self.tag = cfg, port, files, tag
        self.sent = 0
        self.failures = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while not self.stopping.is_set():
            cp = subprocess.run(["storescu", "-aet", self.tag, "-aec", "PACSBRIDGE", "-to", "60",
                                 "127.0.0.1", str(self.port)] + self.files,
                                env=self.cfg.env_nodelay, capture_output=True, timeout=600)
            if cp.returncode == 0:
                self.sent += len(self.files)
            else:
                self.failures += 1
                log("load: storescu %s failed: %s" % (self.tag, (cp.stdout + cp.stderr).decode()[-300:]))

    def start(self):
        self.thread.start()
        return self

    def finish(self):
        self.stopping.set()
        self.thread.join()


def measure_rate(cfg, port, files, seconds):
    """Instances/s of one storescu looping over files for about `seconds` (whole passes)."""
    s = Sender(cfg, port, files, "WELLBEHAVED").start()
    t0 = time.monotonic()
    time.sleep(seconds)
    s.finish()
    elapsed = time.monotonic() - t0
    if s.failures:
        raise BenchError("the well-behaved storescu failed %d time(s)" % s.failures)
    return s.sent / elapsed


class Threads:
    """Threads in self.threads that run until self.stopping is set."""

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stopping.set()
        for t in self.threads:
            t.join()


class Hostiles(Threads):
    """Silent connections (kept at `silent`), dripping requests, and 4 GB announcements."""

    def __init__(self, port, silent=200, drippers=10, absurd_per_s=5):
        self.port, self.silent, self.drippers, self.absurd_per_s = port, silent, drippers, absurd_per_s
        self.stopping = threading.Event()
        self.cut_times = []  # seconds from open to the server's close, silent and dripping ones
        self.lock = threading.Lock()
        self.opened = 0
        self.threads = [threading.Thread(target=self.silent_loop, daemon=True),
                        threading.Thread(target=self.drip_loop, daemon=True),
                        threading.Thread(target=self.absurd_loop, daemon=True)]

    def watch(self, s, opened):
        try:
            s.settimeout(REQUEST_TIMEOUT + 30)
            while s.recv(4096):
                pass
        except OSError:
            pass
        with self.lock:
            self.cut_times.append(time.monotonic() - opened)
        s.close()

    def open(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        with self.lock:
            self.opened += 1
        return s

    def silent_loop(self):
        live = []
        while not self.stopping.is_set():
            live = [t for t in live if t.is_alive()]
            while len(live) < self.silent and not self.stopping.is_set():
                s = self.open()
                t = threading.Thread(target=self.watch, args=(s, time.monotonic()), daemon=True)
                t.start()
                live.append(t)
            self.stopping.wait(0.2)

    def drip_loop(self):
        rq = associate_rq("PACSBRIDGE", "DRIPPER")
        conns = []
        while not self.stopping.is_set():
            while len(conns) < self.drippers:
                conns.append([self.open(), time.monotonic(), 0])
            for c in list(conns):
                s, opened, i = c
                try:
                    s.send(rq[i:i + 1])
                    c[2] += 1
                except OSError:
                    with self.lock:
                        self.cut_times.append(time.monotonic() - opened)
                    s.close()
                    conns.remove(c)
            self.stopping.wait(1.0)
        for s, _, _ in conns:
            s.close()

    def absurd_loop(self):
        while not self.stopping.is_set():
            for _ in range(self.absurd_per_s):
                try:
                    s = self.open()
                    s.sendall(struct.pack(">BBI", 1, 0, 0xFFFFFFFF) + b"\x00\x01")
                    s.close()
                except OSError:
                    pass
            self.stopping.wait(1.0)


class Readers(Threads):
    """`n` clients, each reading GET /api/studies?limit=50 every `interval` seconds (a viewer's
    or a script's pace; 0: as fast as it can)."""

    def __init__(self, cfg, http_port, n, interval):
        self.interval = interval
        self.url = "http://127.0.0.1:%d%s" % (http_port, cfg.read_path)
        self.n = n
        self.stopping = threading.Event()
        self.ok = 0
        self.errors = []
        self.latencies = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(n)]

    def loop(self):
        while not self.stopping.is_set():
            t0 = time.monotonic()
            try:
                status, body = http_json("GET", self.url, timeout=30)
            except Exception as e:  # noqa: BLE001 (an error of any kind is counted)
                status, body = None, str(e)
            took = time.monotonic() - t0
            with self.lock:
                if status == 200:
                    self.ok += 1
                    self.latencies.append(took)
                else:
                    self.errors.append("%s %s" % (status, str(body)[:100]))
            if self.interval:
                self.stopping.wait(max(0.0, self.interval - took))


def percentile(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(p / 100.0 * len(v)))]


def indexed(http_port):
    status, studies = http_json("GET", "http://127.0.0.1:%d/api/studies?limit=1000" % http_port, timeout=60)
    if status != 200:
        raise BenchError("GET /api/studies answered %s" % status)
    return sum(s["instance_count"] for s in studies)


def parse_config(args):
    cfg = common.Config()
    cfg.phase_seconds = env_num("LOAD_PHASE_SECONDS", 10, int, 2)
    cfg.rounds = env_num("LOAD_ROUNDS", 3, int, 1)
    cfg.flood_seconds = env_num("LOAD_FLOOD_SECONDS", 60, int, 5)
    cfg.assocs = env_num("LOAD_ASSOCS", 50, int, 1)
    cfg.small = env_num("LOAD_SMALL", 300, int, 10)
    cfg.ct = env_num("LOAD_CT", 100, int, 0)
    cfg.readers = env_num("LOAD_READERS", 200, int, 1)
    cfg.read_interval = env_num("LOAD_READ_INTERVAL", 1.0, float, 0)
    cfg.read_path = os.environ.get("LOAD_READ_PATH", "/api/studies?limit=50")
    cfg.rss_slope = env_num("LOAD_RSS_SLOPE", 2.0, float, 0)
    common.parse_common(cfg, args.root, True, "build it (make build) or set PACSBRIDGE_BIN")
    return cfg


def run(cfg, root, tmp):
    sys.path.insert(0, os.path.join(root, "tools"))
    import dicomgen
    started = time.monotonic()
    small = [f[0] for f in dicomgen.generate(os.path.join(tmp, "small"), cfg.small, size=2048,
                                             studies=10, patient_id="LOADSMALL")]
    flood_small = [f[0] for f in dicomgen.generate(os.path.join(tmp, "fsmall"), cfg.assocs * 20, size=2048,
                                                   studies=cfg.assocs, patient_id="LOADFLOOD")]
    flood_ct = [f[0] for f in dicomgen.generate(os.path.join(tmp, "fct"), cfg.ct, size=512 * 1024,
                                                studies=5, modality="CT", patient_id="LOADCT")]
    http_port, dicom_port = free_port(), free_port()
    readers = []
    work = os.path.join(tmp, "pacsbridge")
    os.mkdir(work)
    # 50 senders at once: the receiver serves them all (the default, 8 at once and 8 waiting,
    # would turn some away with "temporary congestion", as configured).
    cfg.bridge_server_toml += "\nmax_associations = %d\n" % max(8, cfg.assocs + 8)
    proc, log_path = start_bridge(cfg, work, http_port, dicom_port)
    out = []
    try:
        wait_bridge_ready(cfg, proc, log_path, http_port, dicom_port)
        measure_rate(cfg, dicom_port, small, 3)  # warm-up: the set is in the archive from now on
        # Rounds of (alone, with hostile peers, with HTTP readers): the ratios are per round
        # (the same minute of this machine), their median reported.
        rates = {"alone": [], "hostile": [], "http": []}
        all_cut = []
        for rnd in range(cfg.rounds):
            rates["alone"].append(measure_rate(cfg, dicom_port, small, cfg.phase_seconds))
            h = Hostiles(dicom_port).start()
            time.sleep(2)
            rates["hostile"].append(measure_rate(cfg, dicom_port, small, cfg.phase_seconds))
            h.finish()
            all_cut += h.cut_times
            r = Readers(cfg, http_port, cfg.readers, cfg.read_interval).start()
            time.sleep(1)
            rates["http"].append(measure_rate(cfg, dicom_port, small, cfg.phase_seconds))
            r.finish()
            log("load: round %d: alone %.0f, with hostile peers %.0f, with %d HTTP readers %.0f instances/s "
                "(%d reads, %d errors)" % (rnd + 1, rates["alone"][-1], rates["hostile"][-1], cfg.readers,
                                           rates["http"][-1], r.ok, len(r.errors)))
            readers.append(r)
        time.sleep(REQUEST_TIMEOUT + 2)
        with open(log_path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        cut_lines = text.count("closed: no complete A-ASSOCIATE-RQ within %d s" % REQUEST_TIMEOUT)
        absurd_lines = text.count("(PDU length 4294967295)")
        late = [t for t in all_cut if t > REQUEST_TIMEOUT + 2]
        base = med(rates["alone"])
        hostile_ratio = med([b / a for a, b in zip(rates["alone"], rates["hostile"])])
        http_ratio = med([b / a for a, b in zip(rates["alone"], rates["http"])])

        # The flood.
        shares = [flood_small[i::cfg.assocs] + flood_ct[i::cfg.assocs] for i in range(cfg.assocs)]
        samples = []
        fd0 = fds(proc.pid)
        senders = [Sender(cfg, dicom_port, share, "FLOOD%02d" % i).start() for i, share in enumerate(shares)]
        t0 = time.monotonic()
        while time.monotonic() - t0 < cfg.flood_seconds:
            if proc.poll() is not None:
                raise BenchError("PACS Bridge exited during the flood:\n%s" % common.tail(log_path))
            samples.append((time.monotonic() - t0, rss_mb(proc.pid), fds(proc.pid)))
            time.sleep(2)
        for s in senders:
            s.stopping.set()
        for s in senders:
            s.finish()
        flood_sent = sum(s.sent for s in senders)
        flood_failures = sum(s.failures for s in senders)
        time.sleep(3)
        fd_end = fds(proc.pid)
        warm = [x for x in samples if x[0] >= cfg.flood_seconds / 4.0]
        slope = slope_per_minute([(t, v) for t, v, _ in warm])
        want = cfg.small + len(flood_small) + len(flood_ct)
        got = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            got = indexed(http_port)
            if got == want:
                break
            time.sleep(1)
        log("load: flood: %d instances in %d s by %d associations, RSS %.0f -> %.0f MB (slope %s MB/min), "
            "descriptors %d -> max %d -> %d, indexed %s of %d"
            % (flood_sent, cfg.flood_seconds, cfg.assocs, warm[0][1] if warm else 0, warm[-1][1] if warm else 0,
               "%.2f" % slope if slope is not None else "-", fd0, max(x[2] for x in samples), fd_end, got, want))
    finally:
        stop(proc, cfg.stop_timeout)

    def target(ok, text):
        out.append("%-5s %s" % ("PASS" if ok else "MISS", text))
    out += ["", "=" * 78, "PACS Bridge load benchmark",
            "  well-behaved sender: storescu, %d x 2 KB per pass; phases of %d s" % (cfg.small, cfg.phase_seconds),
            "  flood: %d storescu at once for %d s, %d small + %d CT (0.5 MB) instances"
            % (cfg.assocs, cfg.flood_seconds, len(flood_small), len(flood_ct))]
    out += ["  " + line for line in common.setup_header(cfg, tmp, "storescu", orthanc=False)]
    out += ["  total run time %.0f s" % (time.monotonic() - started), "=" * 78, ""]
    latencies = [x for r in readers for x in r.latencies]
    errors = [e for r in readers for e in r.errors]
    out.append("sender alone                 %8.0f instances/s  (median of %d rounds)" % (base, cfg.rounds))
    out.append("with hostile peers           %8.0f instances/s  ratio %.2f (median of per-round ratios)"
               % (med(rates["hostile"]), hostile_ratio))
    out.append("with %3d HTTP readers        %8.0f instances/s  ratio %.2f  (each reads every %g s: %d reads, "
               "p50 %.0f ms, p99 %.0f ms)"
               % (cfg.readers, med(rates["http"]), http_ratio, cfg.read_interval, sum(r.ok for r in readers),
                  1000 * (percentile(latencies, 50) or 0), 1000 * (percentile(latencies, 99) or 0)))
    out.append("flood                        %8.0f instances/s  (%d associations, %d failed storescu runs)"
               % (flood_sent / cfg.flood_seconds, cfg.assocs, flood_failures))
    out += ["", "Targets"]
    target(hostile_ratio >= 0.8, "sender with hostile peers / alone: %.2f >= 0.80" % hostile_ratio)
    target(not late, "every silent or dripping connection cut within %d s (+2): %d of %d late"
           % (REQUEST_TIMEOUT, len(late), len(all_cut)))
    target(cut_lines >= len(all_cut) - len(late) and absurd_lines > 0,
           "a log line per cut connection: %d lines for %d cut, %d for 4 GB requests"
           % (cut_lines, len(all_cut), absurd_lines))
    target(http_ratio >= 0.8, "sender with %d HTTP readers / alone: %.2f >= 0.80" % (cfg.readers, http_ratio))
    target(not errors, "HTTP errors: %d%s" % (len(errors), (" (first: %s)" % errors[0]) if errors else ""))
    target(flood_failures == 0, "flood: failed storescu runs: %d" % flood_failures)
    target(got == want, "flood: every instance indexed once: %s of %d" % (got, want))
    target(slope is not None and slope < cfg.rss_slope,
           "flood: RSS slope after warm-up %s < %.1f MB/min" % ("%.2f" % slope if slope is not None else "-",
                                                              cfg.rss_slope))
    target(fd_end <= fd0 + 2, "flood: descriptors back to %d after (from %d)" % (fd_end, fd0))
    common.report_finish(out)
    return 0


if __name__ == "__main__":
    sys.exit(common.main("PACS Bridge load benchmark (hostile peers, HTTP readers, a flood of associations)",
                         parse_config, run, "pacsbridge-bench-load.", epilog=__doc__))
