#!/usr/bin/env python3
"""Driver behind bench/ingest.sh (see bench/README.md). Python 3 standard library only.

Generates a dataset with tools/dicomgen.py, then sends it with DCMTK's storescu to DCMTK's
storescp, to Orthanc and to PACS Bridge, alternating the receivers within each round, and
prints medians, paired ratios and the targets. Must run inside a private network namespace
(bench/ingest.sh takes care of that). Exit status: 0 when every measurement completed (whether
or not the targets are met), 1 when something broke, 2 on bad usage, 130 when interrupted.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import threading
import time

import common
from common import (BenchError, LIVE, MB, KB, PEER_MALLOC, OrthancPeer, await_job, count_files,
                    env_num, fmt, free_port, fs_type, http_get, http_json, listening, log, med,
                    note, paired_ratio, peak_rss_kb, rotate, spawn, start_bridge, stop, tail)

common.PROG = "ingest"


RECEIVER_NAMES = {"storescp": "storescp", "orthanc": "Orthanc", "pacsbridge": "PACS Bridge",
                  "pacsbridge-anon": "PB anonym.", "pacsbridge-busy": "PB busy"}

# Transfer syntax of the generated files -> storescu option proposing it first (with the
# uncompressed ones as fallback where storescu does so), so that storescu never converts.
TS_FLAGS = {
    "1.2.840.10008.1.2.1": "-xe",      # explicit VR little endian
    "1.2.840.10008.1.2": "-xi",        # implicit VR little endian
    "1.2.840.10008.1.2.2": "-xb",      # explicit VR big endian
    "1.2.840.10008.1.2.1.99": "-xd",   # deflated explicit VR little endian
    "1.2.840.10008.1.2.4.70": "-xs",   # JPEG lossless SV1
    "1.2.840.10008.1.2.4.50": "-xy",   # JPEG baseline
    "1.2.840.10008.1.2.4.51": "-xx",   # JPEG extended
    "1.2.840.10008.1.2.4.80": "-xt",   # JPEG-LS lossless
    "1.2.840.10008.1.2.4.81": "-xu",   # JPEG-LS near lossless
    "1.2.840.10008.1.2.4.90": "-xv",   # JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91": "-xw",   # JPEG 2000
    "1.2.840.10008.1.2.5": "-xr",      # RLE lossless
}


# --------------------------------------------------------------------------- processes

def proc_name(pid):
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def children(pid):
    """PIDs of the direct children of pid (all its threads)."""
    kids = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                kids += [int(k) for k in f.read().split()]
    except OSError:
        pass
    return kids


# --------------------------------------------------------------------------- dataset

def read_meta(path):
    """(SOP class, SOP instance, transfer syntax) from a Part 10 file's meta header."""
    with open(path, "rb") as f:
        data = f.read(8192)
    if len(data) < 132 or data[128:132] != b"DICM":
        raise BenchError("%s: not a DICOM Part 10 file" % path)
    pos, found = 132, {}
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"UN", b"SQ", b"UT", b"UC", b"UR"):
            length = struct.unpack_from("<I", data, pos + 8)[0]
            vpos = pos + 12
        else:
            length = struct.unpack_from("<H", data, pos + 6)[0]
            vpos = pos + 8
        if elem in (0x0002, 0x0003, 0x0010):
            found[elem] = data[vpos:vpos + length].rstrip(b"\0 ").decode("ascii", "replace")
        pos = vpos + length
    if len(found) != 3:
        raise BenchError("%s: meta header lacks SOP class, SOP instance or transfer syntax" % path)
    return found[0x0002], found[0x0003], found[0x0010]


class DataSet:
    """One set of instances, split into `nparts` directories p0..p(n-1) (contiguous by name)."""

    def __init__(self, name, root, parts, count, total_bytes, ts_uid, sop_classes, size):
        self.name, self.root, self.parts = name, root, parts
        self.count, self.total_bytes, self.ts_uid = count, total_bytes, ts_uid
        self.sop_classes, self.size = sop_classes, size

    def groups(self, nassoc):
        """Part directories for each of nassoc storescu processes (empty groups dropped)."""
        groups = [self.parts[i::nassoc] for i in range(nassoc)]
        return [g for g in groups if g]

    def subset(self, name, nparts):
        """A DataSet made of the first nparts parts (for warm-up)."""
        parts = self.parts[:nparts]
        files = [os.path.join(self.root, p, f) for p in parts
                 for f in os.listdir(os.path.join(self.root, p))]
        return DataSet(name, self.root, parts, len(files),
                       sum(os.path.getsize(f) for f in files), self.ts_uid, self.sop_classes,
                       self.size)


def generate(root, tmp, name, *, count, size, modality, studies, series, nparts):
    base = os.path.join(tmp, "data", name)
    flat = os.path.join(base, "all")
    cmd = [sys.executable, os.path.join(root, "tools", "dicomgen.py"), flat,
           "--count", str(count), "--size", str(size), "--modality", modality,
           "--studies", str(max(1, min(studies, count))),
           "--series-per-study", str(max(1, series))]
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if res.returncode != 0:
        raise BenchError("dicomgen failed (%d): %s" % (res.returncode,
                                                      res.stdout.decode(errors="replace")))
    files = sorted(f for f in os.listdir(flat) if not f.startswith("."))
    if len(files) != count:
        raise BenchError("dicomgen wrote %d files for %s, expected %d" % (len(files), name, count))
    sops, ts_uids, sop_classes, total = set(), set(), set(), 0
    for f in files:
        sop_class, sop, ts = read_meta(os.path.join(flat, f))
        sops.add(sop)
        ts_uids.add(ts)
        sop_classes.add(sop_class)
        total += os.path.getsize(os.path.join(flat, f))
    if len(sops) != count:
        raise BenchError("%s: %d files but only %d distinct SOP instance UIDs"
                         % (name, count, len(sops)))
    if len(ts_uids) != 1:
        raise BenchError("%s: files use several transfer syntaxes: %s" % (name, sorted(ts_uids)))
    ts_uid = ts_uids.pop()
    if ts_uid not in TS_FLAGS:
        raise BenchError("%s: no storescu proposal known for transfer syntax %s" % (name, ts_uid))
    nparts = max(1, min(nparts, count))
    parts = []
    for i in range(nparts):
        part = "p%d" % i
        os.mkdir(os.path.join(base, part))
        for f in files[i * count // nparts:(i + 1) * count // nparts]:
            os.rename(os.path.join(flat, f), os.path.join(base, part, f))
        parts.append(part)
    os.rmdir(flat)
    return DataSet(name, base, parts, count, total, ts_uid, sorted(sop_classes), size)


# --------------------------------------------------------------------------- receivers

class Receiver:
    key = ""
    ae = ""

    def __init__(self, cfg):
        self.cfg = cfg
        self.proc = None
        self.port = None
        self.log_path = None

    @property
    def label(self):
        return RECEIVER_NAMES[self.key]

    def start(self, work):
        raise NotImplementedError

    def ready(self):
        raise NotImplementedError

    def count(self):
        raise NotImplementedError

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("%s exited with status %s while starting; log %s:\n%s"
                                 % (self.label, self.proc.returncode, self.log_path,
                                    tail(self.log_path)))
            if self.ready():
                return
            time.sleep(0.05)
        raise BenchError("%s not ready after %d s; log:\n%s"
                         % (self.label, timeout, tail(self.log_path)))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """Stop the process; returns a note (str) when something was odd, else None."""
        rc, killed = stop(self.proc, self.cfg.stop_timeout)
        if killed:
            return "%s did not stop within %d s of SIGTERM (killed)" % (self.label,
                                                                        self.cfg.stop_timeout)
        return self.check_exit(rc)

    def check_exit(self, rc):
        return None


class StoreSCP(Receiver):
    key = "storescp"
    ae = "STORESCP"

    def start(self, work):
        self.store = os.path.join(work, "storage")
        os.mkdir(self.store)
        self.port = free_port()
        self.log_path = os.path.join(work, "storescp.log")
        cmd = ["storescp", "--single-process", "+B", "+xa", "-pdu", str(self.cfg.baseline_pdu),
               "-aet", self.ae, "-od", self.store, str(self.port)]
        self.proc = spawn(cmd, env=self.cfg.env_nodelay, log_path=self.log_path, cwd=work)

    def ready(self):
        return listening(self.port)

    def count(self):
        return count_files(self.store)


class Orthanc(OrthancPeer, Receiver):
    key = "orthanc"

    def start(self, work):
        self.launch(self.cfg, work, "bench-orthanc")

    def check_exit(self, rc):
        if rc != 0:
            return "Orthanc exited with status %s after SIGTERM" % rc
        return None


class PacsBridge(Receiver):
    key = "pacsbridge"
    ae = "PACSBRIDGE"
    password = "bench-admin"

    receiver_toml = ""

    def start(self, work):
        self.port = free_port()
        self.http_port = free_port()
        self.proc, self.log_path = start_bridge(self.cfg, work, self.http_port, self.port,
                                                admin_password=self.password,
                                                receiver_toml=self.receiver_toml)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def headers(self):
        import base64
        token = base64.b64encode(("admin:%s" % self.password).encode()).decode()
        return {"Authorization": "Basic " + token, "Accept": "application/json"}

    def ready(self):
        return (http_get(self.url("/api/health"), headers=self.headers(), timeout=2)[0] == 200
                and listening(self.port))

    def count(self):
        status, body = http_get(self.url("/api/studies"), headers=self.headers(), timeout=30)
        if status != 200:
            raise BenchError("PACS Bridge GET /api/studies answered %d: %s"
                             % (status, body[:300].decode(errors="replace")))
        studies = json.loads(body)
        if not isinstance(studies, list):
            raise BenchError("PACS Bridge GET /api/studies did not answer a list: %.300s" % body)
        return sum(int(s.get("instance_count", 0)) for s in studies)

    def check_exit(self, rc):
        if rc != 0:
            return "PACS Bridge exited with status %s after SIGTERM (contract: 0)" % rc
        return None


class PacsBridgeAnonymizing(PacsBridge):
    """The same receiver with PS3.15 Annex E anonymization: each data set's attributes are
    received into memory (its pixel data too, up to a 4 MB budget; beyond it, to a spill file),
    de-identified and written (the cost of never writing the original attributes to disk)."""
    key = "pacsbridge-anon"
    receiver_toml = "anonymize = true\n"


class BusyPacs(OrthancPeer):
    """The PACS the busy receiver retrieves from: one Orthanc for the whole run, loaded once
    with BENCH_BUSY_STUDIES studies of BENCH_BUSY_INSTANCES CT instances each."""

    def __init__(self, cfg, root, tmp):
        sys.path.insert(0, os.path.join(root, "tools"))
        import dicomgen
        directory = os.path.join(tmp, "data", "busy")
        made = dicomgen.generate(directory, cfg.busy_studies * cfg.busy_instances,
                                 studies=cfg.busy_studies, size=cfg.busy_bytes, modality="CT",
                                 patient_id="BENCH-BUSY", patient_name="BENCH^BUSY")
        self.uids = sorted({m[2] for m in made})
        if len(self.uids) != cfg.busy_studies:
            raise BenchError("busy PACS: %d studies generated, %d asked for"
                             % (len(self.uids), cfg.busy_studies))
        work = os.path.join(tmp, "busy-pacs")
        os.makedirs(work)
        # Orthanc answers a C-GET only from a modality it knows (the port is not used by C-GET).
        self.launch(cfg, work, "bench-busy-pacs",
                    modalities={"pacsbridge": ["PACSBRIDGE", "127.0.0.1", 1]},
                    env={"GLIBC_TUNABLES": PEER_MALLOC})
        deadline = time.monotonic() + cfg.start_timeout
        while not self.ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("the busy PACS (Orthanc) did not start:\n%s" % tail(self.log_path))
            time.sleep(0.05)
        log_path = os.path.join(work, "load.log")
        proc = spawn(["storescu", "-aet", "LOADER", "-aec", self.ae, "-xe", "+sd", "127.0.0.1",
                      str(self.port), directory], env=cfg.env_nodelay, log_path=log_path,
                     cwd=work)
        rc = common.wait_exit(proc, cfg.store_timeout)
        LIVE.pop(proc.pid, None)
        if rc != 0 or self.count() != len(made):
            raise BenchError("loading the busy PACS failed (storescu %s, Orthanc holds %d of %d):"
                             "\n%s" % (rc, self.count(), len(made), tail(log_path)))
        self.total_bytes = sum(os.path.getsize(m[0]) for m in made)


class BackgroundLoad:
    """What runs beside the busy receiver's ingest: one C-GET retrieve job after another, each
    of a study of the busy PACS not yet in the archive, and API readers. Started once the
    server is ready, stopped when the last storescu has exited (the retrieve job then running
    is let finish, outside the measured time)."""

    READ_PATHS = ("/api/studies", "/api/jobs")

    def __init__(self, cfg, bridge, pacs):
        self.cfg, self.bridge, self.pacs = cfg, bridge, pacs
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.jobs = self.retrieved = self.reads = 0
        self.read_seconds = []
        self.errors = []
        self.ran_out = False
        self.threads = []

    def start(self):
        status, body = http_json("POST", self.bridge.url("/api/nodes"), {
            "name": "busy-pacs", "ae_title": self.pacs.ae, "host": "127.0.0.1",
            "port": self.pacs.port, "queryable": True})
        if status != 201:
            raise BenchError("PACS Bridge POST /api/nodes answered %s: %r" % (status, body))
        self.threads = [threading.Thread(target=self.retrieve, daemon=True)]
        self.threads += [threading.Thread(target=self.read, args=(i,), daemon=True)
                         for i in range(self.cfg.busy_readers)]
        for t in self.threads:
            t.start()

    def retrieve(self):
        try:
            for uid in self.pacs.uids:
                if self.done.is_set():
                    return
                status, answer = http_json("POST", self.bridge.url("/api/retrieve"), {
                    "node": "busy-pacs", "level": "STUDY", "uids": [uid], "method": "c-get"})
                if status != 202 or not isinstance(answer, dict) or "job_id" not in answer:
                    raise BenchError("POST /api/retrieve answered %s: %r" % (status, answer))
                job = await_job(self.bridge.url("/api/jobs/%s" % answer["job_id"]),
                                self.cfg.store_timeout, "background retrieve")
                completed = (job.get("progress") or {}).get("completed")
                if job.get("state") != "succeeded" or completed != self.cfg.busy_instances:
                    raise BenchError("background retrieve job ended %s with %s of %d: %.500s"
                                     % (job.get("state"), completed, self.cfg.busy_instances,
                                        json.dumps(job)))
                with self.lock:
                    self.jobs += 1
                    self.retrieved += completed
            self.ran_out = not self.done.is_set()
        except Exception as e:  # reported by stop(), in the measuring thread
            with self.lock:
                self.errors.append("retrieve: %s" % e)

    def read(self, i):
        k = i
        while not self.done.wait(self.cfg.busy_read_interval):
            path = self.READ_PATHS[k % len(self.READ_PATHS)]
            k += 1
            t = time.perf_counter()
            status, body = http_get(self.bridge.url(path), timeout=30)
            took = time.perf_counter() - t
            with self.lock:
                self.reads += 1
                self.read_seconds.append(took)
                if status != 200:
                    self.errors.append("GET %s answered %s: %.200r" % (path, status, body))

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(self.cfg.store_timeout)
        if self.errors:
            raise BenchError("the busy receiver's background load failed: %s"
                             % "; ".join(self.errors[:5]))
        if self.ran_out:
            note("the background retrieve ran out of studies before a measurement ended "
                 "(raise BENCH_BUSY_STUDIES)", key="busy-ran-out")
        lat = sorted(self.read_seconds)
        return {"busy_jobs": self.jobs, "busy_retrieved": self.retrieved, "busy_reads": self.reads,
                "busy_read_p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
                "busy_read_max_ms": lat[-1] * 1000 if lat else None}


class PacsBridgeBusy(PacsBridge):
    """The plain receiver while the server also retrieves and answers API reads
    (BackgroundLoad): ingest as a site runs it, beside its other work."""
    key = "pacsbridge-busy"
    pacs = None  # BusyPacs, set by run()
    load = None

    def begin_load(self):
        self.load = BackgroundLoad(self.cfg, self, self.pacs)
        self.load.start()

    def end_load(self):
        load, self.load = self.load, None
        return load.stop() if load else {}

    def stop(self):
        if self.load is not None:  # a failed measurement: stop the load before the server
            self.load.done.set()
            self.load = None
        return super().stop()

    def count(self):
        """Instances of the stored set only (the retrieved studies are the load's)."""
        status, body = http_get(self.url("/api/studies"), headers=self.headers(), timeout=30)
        if status != 200:
            raise BenchError("PACS Bridge GET /api/studies answered %d" % status)
        return sum(int(s.get("instance_count", 0)) for s in json.loads(body)
                   if s.get("StudyInstanceUID") not in self.pacs.uids)


RECEIVERS = {"storescp": StoreSCP, "orthanc": Orthanc, "pacsbridge": PacsBridge,
             "pacsbridge-anon": PacsBridgeAnonymizing, "pacsbridge-busy": PacsBridgeBusy}


# --------------------------------------------------------------------------- measuring

class Bench:
    def __init__(self, cfg, tmp):
        self.cfg = cfg
        self.tmp = tmp
        self.seq = 0

    def measure(self, rcv, ds, nassoc, tag):
        """One measurement with a fresh receiver process and empty storage."""
        self.seq += 1
        work = os.path.join(self.tmp, "runs", "%03d-%s-%s-%d-%s" % (self.seq, tag, ds.name,
                                                                    nassoc, rcv.key))
        os.makedirs(work)
        rcv.start(work)
        try:
            rcv.wait_ready(self.cfg.start_timeout)
            os.sync()  # nothing of the start-up left to write back while we measure
            if hasattr(rcv, "begin_load"):
                rcv.begin_load()
            groups = ds.groups(nassoc)
            logs, procs = [], []
            base = ["storescu", "-aet", "BENCHSCU", "-aec", rcv.ae, TS_FLAGS[ds.ts_uid],
                    "-ta", "120", "-td", "600", "-ts", "600", "+sd", "127.0.0.1", str(rcv.port)]
            t0 = time.perf_counter()
            for i, group in enumerate(groups):
                logs.append(os.path.join(work, "storescu-%d.log" % i))
                procs.append(spawn(base + group, env=self.cfg.env_nodelay, log_path=logs[-1],
                                   cwd=ds.root))
            deadline = time.monotonic() + self.cfg.store_timeout
            failed = []
            for proc, log_path in zip(procs, logs):
                try:
                    rc = common.wait_exit(proc, max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    stop(proc, 5)
                    rc = "timeout after %d s" % self.cfg.store_timeout
                LIVE.pop(proc.pid, None)
                if rc != 0:
                    failed.append((rc, log_path))
            t1 = time.perf_counter()
            busy = rcv.end_load() if hasattr(rcv, "end_load") else {}
            settled = time.perf_counter()  # the index lag counts from here (the load's end joined)
            if failed:
                raise BenchError("storescu -> %s failed (%s):\n%s" % (
                    rcv.label, ", ".join("status %s" % rc for rc, _ in failed),
                    "\n".join("  %s\n%s" % (p, tail(p)) for _, p in failed)))
            if not rcv.alive():
                raise BenchError("%s died during the measurement (status %s):\n%s"
                                 % (rcv.label, rcv.proc.returncode, tail(rcv.log_path)))
            # Every instance must have arrived (PACS Bridge: indexed, as /api/studies says).
            timeout = self.cfg.index_timeout if rcv.key.startswith("pacsbridge") else 5
            deadline = time.monotonic() + timeout
            while True:
                n = rcv.count()
                lag = time.perf_counter() - settled
                if n == ds.count or time.monotonic() > deadline or n > ds.count:
                    break
                time.sleep(0.05)
            if n != ds.count:
                raise BenchError("%s holds %d instances after %.1f s, %d were sent (%s, %d "
                                 "association(s)); log:\n%s"
                                 % (rcv.label, n, lag, ds.count, ds.name, nassoc,
                                    tail(rcv.log_path)))
            rss = peak_rss_kb(rcv.proc.pid)
            kids = children(rcv.proc.pid)
            if kids and rcv.key != "storescp":
                note("%s had child processes (%s) when its peak RSS was read; only the main "
                     "process is counted" % (rcv.label, ", ".join(
                         "%d %s" % (k, proc_name(k)) for k in kids)), key=("kids", rcv.key))
        finally:
            if rcv.proc is not None and rcv.proc.pid in LIVE:
                odd = rcv.stop()
                if odd:
                    note(odd, key=("stop", rcv.key, odd))
        os.sync()
        if self.cfg.clean_between:
            shutil.rmtree(work, ignore_errors=True)
            os.sync()
        seconds = t1 - t0
        return {"seconds": seconds, "instances": ds.count, "bytes": ds.total_bytes,
                "associations": len(groups), "inst_per_s": ds.count / seconds,
                "mb_per_s": ds.total_bytes / MB / seconds,
                "peak_rss_mb": rss / 1024.0 if rss is not None else None,
                "index_lag_s": lag, **busy}


# --------------------------------------------------------------------------- report

def report(cfg, sets, big, results, big_results, receivers, header):
    out = common.report_start("PACS Bridge ingest benchmark", header, cfg.rounds)
    p = out.append
    p("%-6s %5s  %-12s %10s %17s %9s %8s" % ("set", "assoc", "receiver", "inst/s",
                                            "[min-max]", "MB/s", "RSS MB"))
    for ds in sets:
        for n in cfg.assocs:
            for key in receivers:
                rs = list(results.get((ds.name, n, key), {}).values())
                if not rs:
                    continue
                ips = [r["inst_per_s"] for r in rs]
                p("%-6s %5d  %-12s %10.1f %17s %9.1f %8s" % (
                    ds.name, n, RECEIVER_NAMES[key], med(ips),
                    "[%.0f-%.0f]" % (min(ips), max(ips)),
                    med([r["mb_per_s"] for r in rs]),
                    fmt(max((r["peak_rss_mb"] or 0) for r in rs), "%.0f")))
    us = "pacsbridge"
    if us in receivers:
        p("")
        p("Ratios (median of per-round ratios, same round, instances/s)")
        p("%-6s %5s  %12s %12s" % ("set", "assoc", "us/storescp", "us/Orthanc"))
        for ds in sets:
            for n in cfg.assocs:
                p("%-6s %5d  %12s %12s" % (
                    ds.name, n,
                    fmt(paired_ratio(results, (ds.name, n, us), (ds.name, n, "storescp")),
                        "%.2f"),
                    fmt(paired_ratio(results, (ds.name, n, us), (ds.name, n, "orthanc")),
                        "%.2f")))
        if "pacsbridge-anon" in receivers:
            p("anonymizing receiver / plain receiver (ours), and / storescp:")
            for ds in sets:
                for n in cfg.assocs:
                    p("%-6s %5d  %12s %12s" % (
                        ds.name, n,
                        fmt(paired_ratio(results, (ds.name, n, "pacsbridge-anon"), (ds.name, n, us)),
                            "%.2f"),
                        fmt(paired_ratio(results, (ds.name, n, "pacsbridge-anon"),
                                         (ds.name, n, "storescp")), "%.2f")))
        busy = "pacsbridge-busy"
        if busy in receivers:
            p("ours while a retrieve job and API reads run (PB busy) / idle, and / storescp:")
            for ds in sets:
                for n in cfg.assocs:
                    p("%-6s %5d  %12s %12s" % (
                        ds.name, n,
                        fmt(paired_ratio(results, (ds.name, n, busy), (ds.name, n, us)), "%.2f"),
                        fmt(paired_ratio(results, (ds.name, n, busy), (ds.name, n, "storescp")),
                            "%.2f")))
            p("PB busy's load during each measurement (medians): retrieve jobs ended, instances "
              "retrieved, API reads, read latency p50 / max ms")
            for ds in sets:
                for n in cfg.assocs:
                    rs = list(results.get((ds.name, n, busy), {}).values())
                    if rs:
                        p("%-6s %5d  %5s jobs %6s inst %6s reads %8s / %s" % (
                            ds.name, n, fmt(med([r["busy_jobs"] for r in rs]), "%.0f"),
                            fmt(med([r["busy_retrieved"] for r in rs]), "%.0f"),
                            fmt(med([r["busy_reads"] for r in rs]), "%.0f"),
                            fmt(med([r["busy_read_p50_ms"] for r in rs]), "%.1f"),
                            fmt(max([r["busy_read_max_ms"] or 0 for r in rs]), "%.1f")))
        for ds in sets:
            if 1 in cfg.assocs and 4 in cfg.assocs:
                p("us 4-assoc / 1-assoc on %s: %s" % (
                    ds.name, fmt(paired_ratio(results, (ds.name, 4, us), (ds.name, 1, us)),
                                 "%.2f")))
    if big is not None and big_results:
        p("")
        p("Big instance: %.1f MB, 1 association, fresh receiver per send (median MB/s, max "
          "peak RSS over %d round(s))" % (big.total_bytes / MB, cfg.rounds))
        p("%-12s %9s %14s %10s" % ("receiver", "MB/s", "[min-max]", "peak RSS MB"))
        for key in receivers:
            rs = list(big_results.get(key, {}).values())
            if not rs:
                continue
            mbs = [r["mb_per_s"] for r in rs]
            p("%-12s %9.1f %14s %10s" % (RECEIVER_NAMES[key], med(mbs),
                                        "[%.0f-%.0f]" % (min(mbs), max(mbs)),
                                        fmt(max((r["peak_rss_mb"] or 0) for r in rs), "%.0f")))

    # targets
    p("")
    p("Targets")
    names = {ds.name for ds in sets}
    lines = []

    def target(label, value, op, limit):
        if value is None:
            lines.append("n/a   %s (not measured)" % label)
            return
        ok = value >= limit if op == ">=" else value < limit
        lines.append("%-5s %s: %.2f %s %.2f" % ("PASS" if ok else "MISS", label, value, op,
                                                limit))

    have_us = us in receivers
    for ds in sets:
        r = paired_ratio(results, (ds.name, 1, us), (ds.name, 1, "storescp")) if have_us else None
        # Small instances: as fast as storescp +B on one association while indexing (issue 16).
        target("%s, 1 assoc: us/storescp" % ds.name, r, ">=", 1.0 if ds.name == "small" else 0.9)
    for name, limit in (("small", 2.0), ("CT", 3.5)):
        if name not in names:
            continue
        for n in cfg.assocs:
            r = paired_ratio(results, (name, n, us), (name, n, "orthanc")) if have_us else None
            target("%s, %d assoc: us/Orthanc" % (name, n), r, ">=", limit)
    if "small" in names and 1 in cfg.assocs and 4 in cfg.assocs:
        r = paired_ratio(results, ("small", 4, us), ("small", 1, us)) if have_us else None
        target("small: us 4 assoc / us 1 assoc", r, ">=", 1.5)
    if big is not None:
        rs = list(big_results.get(us, {}).values())
        rss = max((r["peak_rss_mb"] or 0) for r in rs) if rs else None
        target("big (%.0f MB): our peak RSS (MB)" % (big.total_bytes / MB), rss, "<", 64.0)
        if "pacsbridge-anon" in receivers:
            rs = list(big_results.get("pacsbridge-anon", {}).values())
            rss = max((r["peak_rss_mb"] or 0) for r in rs) if rs else None
            target("big (%.0f MB): our anonymizing receiver's peak RSS (MB)" % (big.total_bytes / MB),
                   rss, "<", 64.0)
    out.extend(lines)
    for key in receivers:
        lagged = [r["index_lag_s"] for (s, n, k), by_round in results.items() if k == key
                  for r in by_round.values() if r["index_lag_s"] > 0.5]
        lagged += [r["index_lag_s"] for r in big_results.get(key, {}).values()
                   if r["index_lag_s"] > 0.5]
        if lagged:
            note("%s: in %d measurement(s) not every instance was visible when the last storescu "
                 "exited (up to %.2f s later; not counted in the rates)"
                 % (RECEIVER_NAMES[key], len(lagged), max(lagged)))
    common.report_finish(out)


# --------------------------------------------------------------------------- main

def parse_config(args):
    cfg = common.Config()
    quick = args.quick
    cfg.small = env_num("BENCH_SMALL", 200 if quick else 2000, int, 0)
    cfg.small_bytes = env_num("BENCH_SMALL_BYTES", 2048, int, 512)
    cfg.ct = env_num("BENCH_CT", 40 if quick else 500, int, 0)
    cfg.ct_bytes = env_num("BENCH_CT_BYTES", 512 * KB, int, 512)
    cfg.big_mb = env_num("BENCH_BIG_MB", 20 if quick else 200, float, 0)
    cfg.rounds = env_num("BENCH_ROUNDS", 1 if quick else 5, int, 1)
    assocs = os.environ.get("BENCH_ASSOCS", "1,4")
    try:
        cfg.assocs = sorted({int(a) for a in assocs.split(",") if a.strip()})
    except ValueError:
        raise SystemExit("ingest: BENCH_ASSOCS=%r: comma-separated numbers expected" % assocs)
    if not cfg.assocs or min(cfg.assocs) < 1:
        raise SystemExit("ingest: BENCH_ASSOCS must list association counts >= 1")
    recv = os.environ.get("BENCH_RECEIVERS", "storescp,orthanc,pacsbridge,pacsbridge-busy")
    cfg.receivers = [r.strip() for r in recv.split(",") if r.strip()]
    for r in cfg.receivers:
        if r not in RECEIVERS:
            raise SystemExit("ingest: unknown receiver %r in BENCH_RECEIVERS (known: %s)"
                             % (r, ", ".join(RECEIVERS)))
    if not cfg.receivers:
        raise SystemExit("ingest: BENCH_RECEIVERS is empty")
    # The busy receiver's load: studies of the busy PACS (one retrieve job each, one after
    # another), and API readers each asking every BENCH_BUSY_READ_INTERVAL seconds.
    cfg.busy_studies = env_num("BENCH_BUSY_STUDIES", 4 if quick else 16, int, 1)
    cfg.busy_instances = env_num("BENCH_BUSY_INSTANCES", 100, int, 1)
    cfg.busy_bytes = env_num("BENCH_BUSY_BYTES", 256 * KB, int, 512)
    cfg.busy_readers = env_num("BENCH_BUSY_READERS", 4, int, 0)
    cfg.busy_read_interval = env_num("BENCH_BUSY_READ_INTERVAL", 0.05, float, 0.001)
    cfg.store_timeout = env_num("BENCH_STORE_TIMEOUT", 900, int, 1)
    cfg.index_timeout = env_num("BENCH_INDEX_TIMEOUT", 60, int, 1)
    cfg.clean_between = os.environ.get("BENCH_CLEAN_BETWEEN")
    common.parse_common(cfg, args.root, any(r.startswith("pacsbridge") for r in cfg.receivers),
                        "build it, set PACSBRIDGE_BIN, or leave it out: "
                        "BENCH_RECEIVERS=storescp,orthanc")
    if "orthanc" in cfg.receivers and shutil.which("Orthanc") is None:
        raise SystemExit("ingest: Orthanc not found (Debian package orthanc), or leave it out "
                         "with BENCH_RECEIVERS")
    return cfg


def run(cfg, root, tmp):
    started = time.monotonic()
    nparts = max(cfg.assocs)
    log("ingest: work directory %s (%s)" % (tmp, fs_type(tmp)))
    t = time.monotonic()
    sets = []
    if cfg.small:
        sets.append(generate(root, tmp, "small", count=cfg.small, size=cfg.small_bytes,
                             modality="OT", studies=10, series=2, nparts=nparts))
    if cfg.ct:
        sets.append(generate(root, tmp, "CT", count=cfg.ct, size=cfg.ct_bytes, modality="CT",
                             studies=2, series=1, nparts=nparts))
    big = None
    if cfg.big_mb > 0:
        big = generate(root, tmp, "big", count=1, size=int(cfg.big_mb * MB), modality="CT",
                       studies=1, series=1, nparts=1)
    os.sync()
    log("ingest: dataset generated in %.1f s" % (time.monotonic() - t))

    # Storage: every measurement gets a fresh directory. Deleting thousands of files between
    # measurements slows the next ones down on this kind of disk (ext4 with discard), so by
    # default all of it is kept until the end, if the disk has room.
    per_round = sum(ds.total_bytes for ds in sets) * len(cfg.assocs) * len(cfg.receivers)
    per_round += (big.total_bytes * len(cfg.receivers)) if big else 0
    if "pacsbridge-busy" in cfg.receivers:  # what its retrieves may store, each measurement
        per_round += (len(sets) * len(cfg.assocs) + (1 if cfg.big_mb > 0 else 0)) * \
            cfg.busy_studies * cfg.busy_instances * cfg.busy_bytes
    need = int(per_round * cfg.rounds * 1.2) + 512 * MB
    free = shutil.disk_usage(tmp).free
    if cfg.clean_between is None:
        cfg.clean_between = free < need
        if cfg.clean_between:
            note("only %.1f GB free under %s, %.1f GB needed to keep every receiver's storage "
                 "until the end: deleting it after each measurement instead"
                 % (free / 1e9, tmp, need / 1e9))
    else:
        cfg.clean_between = cfg.clean_between not in ("0", "", "no", "false")

    receivers = [RECEIVERS[k](cfg) for k in cfg.receivers]
    bench = Bench(cfg, tmp)
    pacs = None
    if "pacsbridge-busy" in cfg.receivers:
        t = time.monotonic()
        pacs = BusyPacs(cfg, root, tmp)
        for rcv in receivers:
            if isinstance(rcv, PacsBridgeBusy):
                rcv.pacs = pacs
        log("ingest: busy PACS loaded with %d studies of %d instances in %.1f s"
            % (len(pacs.uids), cfg.busy_instances, time.monotonic() - t))

    header = [
        "dataset: " + ", ".join("%s %d x %.1f KB (%s)" % (ds.name, ds.count,
                                                         ds.total_bytes / ds.count / KB,
                                                         "CT" if ds.name == "CT" else "OT")
                                for ds in sets)
        + (", big 1 x %.1f MB" % (big.total_bytes / MB) if big else ""),
        "transfer syntax %s (storescu %s); storescp +B, max PDU %d for storescp and Orthanc"
        % ((sets or [big])[0].ts_uid, TS_FLAGS[(sets or [big])[0].ts_uid], cfg.baseline_pdu),
        "receivers: %s; rounds: %d; associations: %s"
        % (", ".join(r.label for r in receivers), cfg.rounds,
           ", ".join(str(a) for a in cfg.assocs)),
    ] + ([
        "PB busy: the same receiver while the server runs one C-GET retrieve job after another "
        "from an Orthanc (studies of %d x %.0f KB CT, %d in all) and %d API readers each GET "
        "/api/studies or /api/jobs every %.0f ms"
        % (cfg.busy_instances, cfg.busy_bytes / KB, cfg.busy_studies, cfg.busy_readers,
           cfg.busy_read_interval * 1000)] if pacs else []) + common.setup_header(cfg, tmp, "storescu", orthanc="orthanc" in cfg.receivers,
                            storage_extra=", deleted after each measurement"
                            if cfg.clean_between else "")

    if cfg.warmup and sets:
        warm = sets[0].subset("warmup", 1)
        for rcv in receivers:
            r = bench.measure(rcv, warm, 1, "warmup")
            log("warm-up  %-12s %5d inst %6.2f s %8.1f inst/s" % (
                rcv.label, warm.count, r["seconds"], r["inst_per_s"]))

    results = {}       # (set, assoc, receiver) -> {round: result}
    big_results = {}   # receiver -> {round: result}
    k = 0
    for rnd in range(cfg.rounds):
        for ds in sets:
            for n in cfg.assocs:
                for rcv in rotate(receivers, k):
                    r = bench.measure(rcv, ds, n, "r%d" % (rnd + 1))
                    results.setdefault((ds.name, n, rcv.key), {})[rnd] = r
                    log("round %d  %-5s %d assoc  %-12s %5d inst %6.2f s %8.1f inst/s %7.1f MB/s"
                        % (rnd + 1, ds.name, n, rcv.label, ds.count, r["seconds"],
                           r["inst_per_s"], r["mb_per_s"]))
                k += 1
        if big:
            for rcv in rotate(receivers, k):
                r = bench.measure(rcv, big, 1, "r%d" % (rnd + 1))
                big_results.setdefault(rcv.key, {})[rnd] = r
                log("round %d  big   1 assoc  %-12s %6.2f s %7.1f MB/s  peak RSS %s MB"
                    % (rnd + 1, rcv.label, r["seconds"], r["mb_per_s"],
                       fmt(r["peak_rss_mb"], "%.0f")))
            k += 1

    header.append("total run time %.0f s" % (time.monotonic() - started))
    report(cfg, sets, big, results, big_results, [r.key for r in receivers], header)
    common.write_json(cfg, {
        "config": {"rounds": cfg.rounds, "assocs": cfg.assocs,
                   "receivers": cfg.receivers, "baseline_pdu": cfg.baseline_pdu,
                   "sets": {ds.name: {"count": ds.count, "bytes": ds.total_bytes}
                            for ds in sets},
                   "big_bytes": big.total_bytes if big else None},
        "results": [dict(r, set=s, receiver=key, round=rnd + 1)
                    for (s, n, key), by_round in results.items()
                    for rnd, r in by_round.items()],
        "big": [dict(r, receiver=key, round=rnd + 1)
                for key, by_round in big_results.items()
                for rnd, r in by_round.items()],
    })
    return 0


def add_arguments(ap):
    ap.add_argument("--quick", action="store_true",
                    help="small defaults (200 small, 40 CT, 20 MB big, 1 round); BENCH_* win")


if __name__ == "__main__":
    sys.exit(common.main("PACS Bridge ingest benchmark (see bench/README.md)", parse_config, run,
                         "pacsbridge-bench.", add_arguments=add_arguments))
