#!/usr/bin/env python3
"""Retrieve benchmark: how fast PACS Bridge's retrieve jobs bring a study from a PACS, next to
DCMTK's command-line tools doing the same in the same run. Python 3 standard library only.

    bench/retrieve.sh                 # 500 small, 50 CT, 2 x 50 CT together; 5 rounds (~2-4 min)
    BENCH_ROUNDS=5 bench/retrieve.sh
    BENCH_METHODS=get bench/retrieve.sh
    PACSBRIDGE_BIN=build/debug/pacsbridge bench/retrieve.sh

The PACS is one Orthanc (Debian package, TCP_NODELAY=1, max PDU 131072, its own storage),
loaded once with a "small" study (BENCH_SMALL instances of ~BENCH_SMALL_BYTES, Secondary
Capture, 2 series), a "CT" study (BENCH_CT instances of ~BENCH_CT_BYTES, 1 series) and the
BENCH_MULTI studies of the "multi" case (each made like the CT study, with a StudyInstanceUID of
its own), all Explicit VR Little Endian (tools/dicomgen.py). Per round, for each case (small, CT,
multi) and each method, both sides are measured once, in an order that alternates:

- C-GET, DCMTK: `getscu -S +B -pdu 131072` with QueryRetrieveLevel=STUDY and the
  StudyInstanceUID, into a fresh directory (one getscu per study: getscu 3.6.7 crashes when
  given several query files); time = process start to exit; it must exit 0 and have written
  every instance.
- C-GET, PACS Bridge: a fresh `pacsbridge serve` (empty data directory, node "orthanc"
  registered through POST /api/nodes before the clock starts), then POST /api/retrieve
  {"node": "orthanc", "level": "STUDY", "uids": [study], "method": "c-get"} and GET
  /api/jobs/ID?wait=30 (answered when the job ends); time = from the POST until the job is
  seen finished. The job must
  end "succeeded" with progress.completed == the study's size, and GET /api/studies must list
  every instance.
- C-MOVE, DCMTK: a fresh `storescp --single-process +B -pdu 131072` (AE STORESCP, started and
  listening before the clock starts) and `movescu -S -aem STORESCP`; time = movescu start to
  exit (Orthanc answers the final C-MOVE-RSP once storescp acknowledged the last C-STORE);
  storescp must then hold every instance.
- C-MOVE, PACS Bridge: as its C-GET, with "method": "c-move" (Orthanc sends to our receiver,
  AE PACSBRIDGE on a fixed port listed in Orthanc's DicomModalities).

The multi-study case: our side is one job for all its studies ("uids": [uid1, uid2, ...]),
timed and checked as above (every instance of every study); DCMTK's side runs its tool once per
study, one after the other, as above (getscu into one directory; movescu to the one storescp,
started before the first), and its time is the sum of those runs. Target: us/DCMTK >= 1.0 for
each method, printed PASS/MISS (it never changes the exit status).

For reference the header also gives the time of an IMAGE-level C-FIND of each study with
findscu (what a retrieve job may do first, to know what to expect and verify against).

Rates: instances/s and MB/s (MB = 2^20 bytes of the source files), medians over the rounds;
ratios us/DCMTK are medians of same-round ratios (the numbers to trust on a noisy machine).
Our time includes whatever the job does around the transfer (e.g. a C-FIND to learn what to
expect, the final check of the archive); the DCMTK tools do nothing of the kind. PACS Bridge
runs with its defaults (`[server] fsync = false`: journaled and renamed into place before the
C-STORE response, not synced) unless BENCH_BRIDGE_SERVER_TOML says otherwise ("fsync = true":
every instance durable first); getscu and storescp never fsync.

| variable | default | meaning |
| --- | --- | --- |
| BENCH_SMALL, BENCH_SMALL_BYTES | 500, 2048 | small study (0: none) |
| BENCH_CT, BENCH_CT_BYTES | 50, 524288 | CT study (0: none) |
| BENCH_MULTI | 2 | studies of BENCH_CT instances in the multi-study case (0 or BENCH_CT=0: none) |
| BENCH_ROUNDS | 5 | rounds |
| BENCH_METHODS | get,move | which retrieve methods |
| BENCH_SIDES | dcmtk,us (+base) | who is measured (dcmtk alone: no PACS Bridge needed) |
| BENCH_BASE_BIN | none | a second pacsbridge measured as side "base" in the same rounds (A/B of two builds: the report adds us/base) |
| BENCH_WARMUP | 1 | one unrecorded getscu of each study first (Orthanc's page cache) |
| PACSBRIDGE_BIN | build/release/pacsbridge (else build/pacsbridge) | binary under test |
| BENCH_BRIDGE_SERVER_TOML | none | extra lines for PACS Bridge's [server] table, e.g. "fsync = false" |
| BENCH_BASELINE_PDU | 131072 | max PDU of Orthanc, getscu, storescp |
| BENCH_TMPDIR | $TMPDIR or /var/tmp | work directory (dataset, storage, logs) |
| BENCH_KEEP | 0 | 1: keep the work directory |
| BENCH_JSON | none | also write every measurement to this JSON file |
| BENCH_JOB_TIMEOUT | 600 | seconds one retrieve may take |

Exit status: 0 when every measurement completed, 1 when something broke (a tool failed, a job
did not succeed, an instance is missing), 2 on bad usage, 130 when interrupted. Progress goes
to stderr, the report to stdout.
"""

import json
import os
import shutil
import sys
import time

import common  # bench/common.py: what the benchmarks share
from common import (PEER_MALLOC, BenchError, await_job, children_cpu_seconds, cpu_seconds, used, evict, bridge_studies, LIVE, MB, KB, OrthancPeer, count_files, env_num, fmt, free_port,
                    fs_type, http_json, listening, log, med, note, paired_ratio, rotate, run_timed,
                    spawn, start_bridge, stop, tail)

common.PROG = "retrieve"

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
METHOD_NAMES = {"get": "C-GET", "move": "C-MOVE"}
SIDE_NAMES = {"dcmtk": "DCMTK", "us": "PACS Bridge", "base": "PACS Bridge (base)"}
DCMTK_TOOLS = {"get": "getscu", "move": "movescu+storescp"}


# --------------------------------------------------------------------------- dataset

class Study:
    """A case: one study, or (parts) several retrieved together by one job of ours, one after
    the other by DCMTK."""

    def __init__(self, name, directory, files, study_uid, total_bytes, parts=None):
        self.name, self.dir, self.files = name, directory, files
        self.uid, self.count, self.total_bytes = study_uid, len(files), total_bytes
        self.parts = parts or [self]

    def describe(self):
        text = "%s %d x %.1f KB" % (self.name, self.count, self.total_bytes / self.count / KB)
        return text + (" in %d studies" % len(self.parts) if len(self.parts) > 1 else "")


def several(name, parts):
    """The multi-study case made of parts (studies of their own, each loaded into the PACS)."""
    return Study(name, None, [f for st in parts for f in st.files], None,
                 sum(st.total_bytes for st in parts), parts)


def generate(root, tmp, name, *, count, size, modality, series):
    sys.path.insert(0, os.path.join(root, "tools"))
    import dicomgen
    directory = os.path.join(tmp, "data", name)
    made = dicomgen.generate(directory, count, studies=1, series_per_study=series, size=size,
                             modality=modality, patient_id="BENCH-" + name.upper(),
                             patient_name="BENCH^" + name.upper())
    studies = {m[2] for m in made}
    if len(studies) != 1 or len({m[1] for m in made}) != count:
        raise BenchError("%s: expected one study of %d distinct instances" % (name, count))
    for path, _, _, _ in made[:1]:
        meta, _ = dicomgen.read_meta(path)
        if meta["TransferSyntaxUID"] != EXPLICIT_VR_LE:
            raise BenchError("%s: unexpected transfer syntax %s" % (name,
                                                                   meta["TransferSyntaxUID"]))
    total = sum(os.path.getsize(m[0]) for m in made)
    return Study(name, directory, [m[0] for m in made], studies.pop(), total)


# --------------------------------------------------------------------------- peers

class OrthancPacs(OrthancPeer):
    """The PACS: one Orthanc for the whole run, loaded once."""

    def __init__(self, cfg, work, storescp_port, bridge_port):
        os.makedirs(work)
        self.launch(cfg, work, "bench-retrieve-orthanc", modalities={
            "getscu": ["GETSCU", "127.0.0.1", 1],
            "movescu": ["MOVESCU", "127.0.0.1", 1],
            "findscu": ["FINDSCU", "127.0.0.1", 1],
            "storescp": ["STORESCP", "127.0.0.1", storescp_port],
            "pacsbridge": ["PACSBRIDGE", "127.0.0.1", bridge_port],
        }, env={"GLIBC_TUNABLES": PEER_MALLOC})
        deadline = time.monotonic() + cfg.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError("Orthanc exited (%s) while starting:\n%s"
                                 % (self.proc.returncode, tail(self.log_path)))
            if self.ready():
                return
            time.sleep(0.05)
        raise BenchError("Orthanc not ready after %d s:\n%s" % (cfg.start_timeout,
                                                                tail(self.log_path)))

    def alive(self):
        return self.proc.poll() is None


class Bridge:
    """A fresh pacsbridge serve per measurement (empty archive), receiver on a fixed port."""

    def __init__(self, cfg, work, dicom_port, pacs, bin_=None):
        self.cfg = cfg
        os.makedirs(work, exist_ok=True)
        self.http_port = free_port()
        self.port = dicom_port
        self.proc, self.log_path = start_bridge(cfg, work, self.http_port, dicom_port, bin_=bin_)
        deadline = time.monotonic() + cfg.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError("PACS Bridge exited (%s) while starting:\n%s"
                                 % (self.proc.returncode, tail(self.log_path)))
            if http_json("GET", self.url("/api/health"), timeout=2)[0] == 200 and \
                    listening(dicom_port):
                break
            if time.monotonic() > deadline:
                raise BenchError("PACS Bridge not ready after %d s:\n%s"
                                 % (cfg.start_timeout, tail(self.log_path)))
            time.sleep(0.05)
        status, body = http_json("POST", self.url("/api/nodes"), {
            "name": "orthanc", "ae_title": pacs.ae, "host": "127.0.0.1", "port": pacs.port,
            "queryable": True})
        if status != 201:
            raise BenchError("PACS Bridge POST /api/nodes answered %s: %r" % (status, body))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def counts(self):
        return {s.get("StudyInstanceUID"): int(s.get("instance_count", 0))
                for s in bridge_studies(self.http_port)}

    def stop(self):
        rc, killed = stop(self.proc, self.cfg.stop_timeout)
        if killed:
            note("PACS Bridge did not stop within %d s of SIGTERM (killed)"
                 % self.cfg.stop_timeout, key="bridge-kill")
        elif rc != 0:
            note("PACS Bridge exited with status %s after SIGTERM" % rc, key=("bridge-rc", rc))


# --------------------------------------------------------------------------- measuring

class Bench:
    def __init__(self, cfg, tmp, pacs, storescp_port, bridge_port):
        self.cfg, self.tmp, self.pacs = cfg, tmp, pacs
        self.storescp_port, self.bridge_port = storescp_port, bridge_port
        self.seq = 0

    def workdir(self, tag, study, method, side):
        self.seq += 1
        work = os.path.join(self.tmp, "runs", "%03d-%s-%s-%s-%s" % (self.seq, tag, study.name,
                                                                    method, side))
        os.makedirs(work)
        return work

    def measure(self, side, method, study, tag):
        work = self.workdir(tag, study, method, side)
        peer_cpu = cpu_seconds(self.pacs.proc.pid)
        if side == "dcmtk":
            tools_cpu = children_cpu_seconds()
            seconds = (self.getscu if method == "get" else self.movescu)(study, work)
            cpu = children_cpu_seconds() - tools_cpu
        else:
            seconds, cpu = self.bridge(method, study, work,
                                       self.cfg.base_bin if side == "base" else None)
        peer_cpu = used(peer_cpu, cpu_seconds(self.pacs.proc.pid))
        if not self.pacs.alive():
            raise BenchError("Orthanc died:\n%s" % tail(self.pacs.log_path))
        evict(work)  # written back and out of the page cache, as send.sh does
        if self.cfg.clean_between:
            shutil.rmtree(work, ignore_errors=True)
        return {"seconds": seconds, "instances": study.count, "bytes": study.total_bytes,
                "inst_per_s": study.count / seconds,
                "mb_per_s": study.total_bytes / MB / seconds, "cpu": cpu, "peer_cpu": peer_cpu}

    def query_args(self, study):
        return ["-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=%s" % study.uid]

    def run_tool(self, cmd, log_path, work):
        """(exit status, seconds from its start to its exit)"""
        return run_timed(cmd, env=self.cfg.env_nodelay, log_path=log_path, cwd=work,
                         timeout=self.cfg.job_timeout)

    def getscu(self, study, work):
        out = os.path.join(work, "out")
        os.mkdir(out)
        log_path = os.path.join(work, "getscu.log")
        seconds = 0.0
        for part in study.parts:  # one after the other, into one directory; time: their sum
            cmd = (["getscu", "-S", "+B", "-pdu", str(self.cfg.baseline_pdu), "-aet", "GETSCU",
                    "-aec", self.pacs.ae, "-od", out] + self.query_args(part)
                   + ["127.0.0.1", str(self.pacs.port)])
            rc, took = self.run_tool(cmd, log_path, work)
            seconds += took
            if rc != 0:
                raise BenchError("getscu exited with %s:\n%s" % (rc, tail(log_path)))
        n = count_files(out)
        if n != study.count:
            raise BenchError("getscu wrote %d files, the %s study has %d:\n%s"
                             % (n, study.name, study.count, tail(log_path)))
        return seconds

    def movescu(self, study, work):
        out = os.path.join(work, "storescp")
        os.mkdir(out)
        scp_log = os.path.join(work, "storescp.log")
        scp = spawn(["storescp", "--single-process", "+B", "-pdu", str(self.cfg.baseline_pdu),
                     "-aet", "STORESCP", "-od", out, str(self.storescp_port)],
                    env=self.cfg.env_nodelay, log_path=scp_log, cwd=work)
        try:
            deadline = time.monotonic() + self.cfg.start_timeout
            while not listening(self.storescp_port):
                if scp.poll() is not None or time.monotonic() > deadline:
                    raise BenchError("storescp did not start:\n%s" % tail(scp_log))
                time.sleep(0.02)
            log_path = os.path.join(work, "movescu.log")
            seconds = 0.0
            for part in study.parts:  # one after the other, to the one storescp; time: their sum
                cmd = (["movescu", "-S", "-aet", "MOVESCU", "-aec", self.pacs.ae, "-aem",
                        "STORESCP"] + self.query_args(part) + ["127.0.0.1", str(self.pacs.port)])
                rc, took = self.run_tool(cmd, log_path, work)
                seconds += took
                if rc != 0:
                    raise BenchError("movescu exited with %s:\n%s\nstorescp:\n%s"
                                     % (rc, tail(log_path), tail(scp_log)))
            with open(log_path, "rb") as f:
                text = f.read().decode(errors="replace")
            if "error status" in text or "Failed" in text:
                raise BenchError("movescu reported a failure:\n%s" % tail(log_path))
            deadline = time.monotonic() + 5
            while count_files(out) < study.count and time.monotonic() < deadline:
                time.sleep(0.05)
            n = count_files(out)
            if n != study.count:
                raise BenchError("storescp holds %d files after movescu, the %s study has %d"
                                 % (n, study.name, study.count))
        finally:
            stop(scp, 10)
        return seconds

    def findscu(self, study, work):
        """Reference: an IMAGE-level C-FIND listing the study's instances (what a retrieve job
        may do first to know what to expect)."""
        log_path = os.path.join(work, "findscu.log")
        cmd = ["findscu", "-S", "-aet", "FINDSCU", "-aec", self.pacs.ae,
               "-k", "QueryRetrieveLevel=IMAGE", "-k", "StudyInstanceUID=%s" % study.uid,
               "-k", "SeriesInstanceUID", "-k", "SOPInstanceUID", "-k", "SOPClassUID",
               "127.0.0.1", str(self.pacs.port)]
        rc, seconds = self.run_tool(cmd, log_path, work)
        if rc != 0:
            raise BenchError("findscu exited with %s:\n%s" % (rc, tail(log_path)))
        return seconds

    def bridge(self, method, study, work, bin_=None):
        srv = Bridge(self.cfg, work, self.bridge_port, self.pacs, bin_)
        try:
            os.sync()
            body = {"node": "orthanc", "level": "STUDY", "uids": [st.uid for st in study.parts],
                    "method": "c-get" if method == "get" else "c-move"}
            cpu = cpu_seconds(srv.proc.pid)
            t0 = time.perf_counter()
            status, answer = http_json("POST", srv.url("/api/retrieve"), body)
            if status != 202 or not isinstance(answer, dict) or "job_id" not in answer:
                raise BenchError("PACS Bridge POST /api/retrieve answered %s: %r%s" % (
                    status, answer, " (this binary has no retrieve API: build it, or set "
                    "PACSBRIDGE_BIN)" if status == 404 else ""))
            job_url = srv.url("/api/jobs/%s" % answer["job_id"])
            job = await_job(job_url, self.cfg.job_timeout,
                            "%s job of the %s study" % (METHOD_NAMES[method], study.name))
            seconds = time.perf_counter() - t0
            cpu = used(cpu, cpu_seconds(srv.proc.pid))
            progress = job.get("progress") or {}
            if job.get("state") != "succeeded" or progress.get("completed") != study.count:
                raise BenchError("PACS Bridge %s job of the %s study (%d instances) ended: %s\n%s"
                                 % (METHOD_NAMES[method], study.name, study.count,
                                    json.dumps(job), tail(srv.log_path)))
            wanted = "c-get" if method == "get" else "c-move"
            if job.get("method_used") not in (None, wanted):
                raise BenchError("job used %s, not %s: %s" % (job.get("method_used"), wanted,
                                                              json.dumps(job)))
            counts = srv.counts()
            short = ["%d of the %s study's %d" % (counts.get(st.uid, 0), st.name, st.count)
                     for st in study.parts if counts.get(st.uid, 0) != st.count]
            if short:
                raise BenchError("PACS Bridge lists, after the job, %s instances"
                                 % ", ".join(short))
        finally:
            srv.stop()
        return seconds, cpu


# --------------------------------------------------------------------------- report

def report(cfg, studies, results, header):
    def ratio(st, m, other="dcmtk"):
        return paired_ratio(results, (st.name, m, "us"), (st.name, m, other))

    out = common.report_start("PACS Bridge retrieve benchmark", header, cfg.rounds)
    p = out.append
    p("%-6s %-7s %-20s %10s %15s %9s %9s %7s %8s" % ("study", "method", "who", "inst/s",
                                                    "[min-max]", "MB/s", "s", "cpu s",
                                                    "peer cpu"))
    for st in studies:
        for m in cfg.methods:
            for side in ("dcmtk", "us", "base"):
                rs = list(results.get((st.name, m, side), {}).values())
                if not rs:
                    continue
                ips = [r["inst_per_s"] for r in rs]
                who = {"us": "PACS Bridge job", "base": "base build job"}.get(side) or DCMTK_TOOLS[m] + (
                    " x%d" % len(st.parts) if len(st.parts) > 1 else "")
                cpu = [r["cpu"] for r in rs if r.get("cpu") is not None]
                peer = [r["peer_cpu"] for r in rs if r.get("peer_cpu") is not None]
                p("%-6s %-7s %-20s %10.1f %15s %9.1f %9.2f %7s %8s" % (
                    st.name, METHOD_NAMES[m], who, med(ips),
                    "[%.0f-%.0f]" % (min(ips), max(ips)),
                    med([r["mb_per_s"] for r in rs]), med([r["seconds"] for r in rs]),
                    "%.2f" % med(cpu) if cpu else "-", "%.2f" % med(peer) if peer else "-"))
    p("(cpu s: user + system CPU seconds of the DCMTK tools, start-up included, or of our server "
      "from the POST to the job's end; peer cpu: Orthanc's over the same measurement; "
      "10 ms ticks)")
    p("")
    p("Ratios us/DCMTK (median of same-round ratios of instances/s; > 1: we are faster)%s"
      % ("; us/base: this build against BENCH_BASE_BIN" if "base" in cfg.sides else ""))
    p("%-6s %-7s %8s%s" % ("study", "method", "ratio", " %8s" % "us/base" if "base" in cfg.sides else ""))
    for st in studies:
        for m in cfg.methods:
            p("%-6s %-7s %8s%s" % (st.name, METHOD_NAMES[m], fmt(ratio(st, m), "%.2f"),
                                   " %8s" % fmt(ratio(st, m, "base"), "%.2f") if "base" in cfg.sides else ""))
    for st in studies:
        if len(st.parts) > 1:
            p("")
            p("Target: one job for %d studies vs DCMTK run once per study (PASS/MISS; it never "
              "changes the exit status)" % len(st.parts))
            for m in cfg.methods:
                p(common.target_line("%s %s us/DCMTK" % (st.name, METHOD_NAMES[m]),
                                     ratio(st, m), 1.0))
    common.report_finish(out)


# --------------------------------------------------------------------------- main

def parse_config(args):
    cfg = common.Config()
    cfg.small = env_num("BENCH_SMALL", 500, int, 0)
    cfg.small_bytes = env_num("BENCH_SMALL_BYTES", 2048, int, 512)
    cfg.ct = env_num("BENCH_CT", 50, int, 0)
    cfg.ct_bytes = env_num("BENCH_CT_BYTES", 512 * KB, int, 512)
    cfg.multi = env_num("BENCH_MULTI", 2, int, 0)
    cfg.rounds = env_num("BENCH_ROUNDS", 5, int, 1)
    methods = [m.strip().lower().replace("c-", "") for m in
               os.environ.get("BENCH_METHODS", "get,move").split(",") if m.strip()]
    for m in methods:
        if m not in METHOD_NAMES:
            raise SystemExit("retrieve: unknown method %r in BENCH_METHODS (get, move)" % m)
    if not methods:
        raise SystemExit("retrieve: BENCH_METHODS is empty")
    cfg.methods = methods
    cfg.base_bin = os.environ.get("BENCH_BASE_BIN") or None
    default_sides = "dcmtk,us,base" if cfg.base_bin else "dcmtk,us"
    sides = [x.strip().lower() for x in os.environ.get("BENCH_SIDES", default_sides).split(",")
             if x.strip()]
    if not sides or any(x not in SIDE_NAMES for x in sides):
        raise SystemExit("retrieve: BENCH_SIDES must list dcmtk, us and/or base")
    if "base" in sides and not (cfg.base_bin and os.access(cfg.base_bin, os.X_OK)):
        raise SystemExit("retrieve: the base side needs BENCH_BASE_BIN, an executable pacsbridge")
    cfg.sides = sides
    cfg.job_timeout = env_num("BENCH_JOB_TIMEOUT", 600, int, 1)
    cfg.clean_between = env_num("BENCH_CLEAN_BETWEEN", 0, int, 0)
    common.parse_common(cfg, args.root, "us" in sides, "build it or set PACSBRIDGE_BIN")
    return cfg


def run(cfg, root, tmp):
    started = time.monotonic()
    log("retrieve: work directory %s (%s)" % (tmp, fs_type(tmp)))
    t = time.monotonic()
    studies = []
    if cfg.small:
        studies.append(generate(root, tmp, "small", count=cfg.small, size=cfg.small_bytes,
                                modality="OT", series=2))
    if cfg.ct:
        studies.append(generate(root, tmp, "CT", count=cfg.ct, size=cfg.ct_bytes,
                                modality="CT", series=1))
    if not studies:
        raise SystemExit("retrieve: BENCH_SMALL and BENCH_CT are both 0")
    cases, loaded = list(studies), list(studies)  # what is measured; what the PACS holds
    if cfg.multi and cfg.ct:
        parts = [generate(root, tmp, "multi%d" % (i + 1), count=cfg.ct, size=cfg.ct_bytes,
                          modality="CT", series=1) for i in range(cfg.multi)]
        cases.append(several("multi", parts))
        loaded += parts
    if len({st.uid for st in loaded}) != len(loaded):
        raise BenchError("the generated studies' StudyInstanceUIDs are not distinct")
    os.sync()
    log("retrieve: dataset generated in %.1f s" % (time.monotonic() - t))

    storescp_port, bridge_port = free_port(), free_port()
    pacs = OrthancPacs(cfg, os.path.join(tmp, "orthanc"), storescp_port, bridge_port)
    t = time.monotonic()
    for st in loaded:
        log_path = os.path.join(tmp, "load-%s.log" % st.name)
        proc = spawn(["storescu", "-aet", "LOADER", "-aec", pacs.ae, "-xe", "+sd",
                      "127.0.0.1", str(pacs.port), st.dir], env=cfg.env_nodelay,
                     log_path=log_path, cwd=tmp)
        rc = proc.wait()
        LIVE.pop(proc.pid, None)
        if rc != 0:
            raise BenchError("loading the %s study into Orthanc failed (%s):\n%s"
                             % (st.name, rc, tail(log_path)))
    n = pacs.count()
    want = sum(st.count for st in loaded)
    if n != want:
        raise BenchError("Orthanc holds %d instances, %d were loaded" % (n, want))
    os.sync()
    log("retrieve: Orthanc loaded with %d instances in %.1f s" % (n, time.monotonic() - t))

    bench = Bench(cfg, tmp, pacs, storescp_port, bridge_port)
    header = [
        "studies: " + ", ".join(st.describe() for st in cases)
        + " (Explicit VR LE), in one Orthanc",
        "methods: %s; rounds: %d; max PDU %d for Orthanc, getscu, storescp"
        % (", ".join(METHOD_NAMES[m] for m in cfg.methods), cfg.rounds, cfg.baseline_pdu),
    ] + common.setup_header(cfg, tmp, "getscu")

    find_times = {}
    for st in studies:
        work = bench.workdir("ref", st, "find", "dcmtk")
        find_times[st.name] = med([bench.findscu(st, work) for _ in range(3)])
        log("reference: findscu IMAGE level, %s study: %.3f s" % (st.name, find_times[st.name]))
    header.append("reference, IMAGE-level C-FIND of each study with findscu (median of 3): "
                  + ", ".join("%s %.3f s" % (k, v) for k, v in find_times.items()))

    if cfg.warmup:
        for st in cases:
            r = bench.measure("dcmtk", "get", st, "warmup")
            log("warm-up  %-5s getscu %6.2f s %8.1f inst/s" % (st.name, r["seconds"],
                                                               r["inst_per_s"]))

    results = {}  # (study, method, side) -> {round: result}
    k = 0
    for rnd in range(cfg.rounds):
        for st in cases:
            for m in cfg.methods:
                for side in rotate(cfg.sides, k):
                    r = bench.measure(side, m, st, "r%d" % (rnd + 1))
                    results.setdefault((st.name, m, side), {})[rnd] = r
                    log("round %d  %-5s %-6s %-12s %5d inst %6.2f s %8.1f inst/s %7.1f MB/s"
                        % (rnd + 1, st.name, METHOD_NAMES[m], SIDE_NAMES[side], st.count,
                           r["seconds"], r["inst_per_s"], r["mb_per_s"]))
                k += 1

    header.append("total run time %.0f s" % (time.monotonic() - started))
    report(cfg, cases, results, header)
    common.write_json(cfg, {
        "config": {"rounds": cfg.rounds, "methods": cfg.methods,
                   "studies": {st.name: {"count": st.count, "bytes": st.total_bytes,
                                         "uids": [part.uid for part in st.parts]}
                               for st in cases},
                   "bridge_bin": cfg.bridge_bin},
        "results": [dict(r, study=s, method=m, side=side, round=rnd + 1)
                    for (s, m, side), by_round in results.items()
                    for rnd, r in by_round.items()],
    })
    return 0


if __name__ == "__main__":
    sys.exit(common.main(
        "PACS Bridge retrieve benchmark (C-GET / C-MOVE from Orthanc vs DCMTK)", parse_config,
        run, "pacsbridge-bench-retrieve.", epilog=__doc__))
