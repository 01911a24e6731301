#!/usr/bin/env python3
"""Throttle benchmark: the rate PACS Bridge's jobs achieve under a node's max_bytes_per_second,
for C-GET retrieves, C-STORE sends and WADO-RS retrieves (STOW-RS sends on request), each at
several limits, against one Orthanc. Fails the run when a transfer at the checked limit (5 MB/s)
misses it by more than 10 %. Python 3 standard library only.

    bench/throttle.sh                          # 1, 5, 20 MB/s over 10, 50, 100 MB (~3 minutes)
    BENCH_TRANSFERS=get bench/throttle.sh      # C-GET only
    BENCH_LIMITS_MB=5 BENCH_VOLUMES_MB=100 bench/throttle.sh
    BENCH_TRANSFERS=get,store,wado,stow bench/throttle.sh
    PACSBRIDGE_BIN=build/debug/pacsbridge bench/throttle.sh

MB here is 10^6 bytes, the unit of the limit (max_bytes_per_second). The data
(tools/dicomgen.py): for each limit, a study of CT instances (512 x 512 x 16 bits, ~0.5 MB
each, Explicit VR Little Endian) of at least that limit's volume (BENCH_VOLUMES_MB, in the
order of BENCH_LIMITS_MB): by default 10 MB at 1 MB/s, 50 MB at 5 MB/s (the issue's "a 50 MB
retrieve at a 5 MB/s limit takes 10 s +-10 %"), 100 MB at 20 MB/s, each about 5 to 10 s.

The peer is one Orthanc for the whole run (Debian packages orthanc + orthanc-dicomweb: its
DICOMweb plugin at /dicom-web/, HTTP compression off; max PDU BENCH_BASELINE_PDU; C-GET and
C-FIND allowed for any AE; otherwise its defaults, e.g. SyncStorageArea on), loaded with every
study through its DICOM port (storescu, not timed). Each measurement uses a node of its own,
created with max_bytes_per_second = the limit (so a fresh token bucket, full: a quarter second
of burst):
- C-GET and WADO-RS: a fresh `pacsbridge serve` with an empty data directory (started, node
  registered, `sync`, all before the clock starts), POST /api/retrieve {"node", "level":
  "STUDY", "uids": [study]} ("method": "c-get" for the DIMSE node);
- C-STORE and STOW-RS: one `pacsbridge serve` for the run, loaded with every study through its
  receiver (not timed); the study is deleted from Orthanc before each send (not timed), then
  POST /api/send {"node", "level": "STUDY", "uids": [study]} to a DIMSE or DICOMweb node.
Timed: from the POST until GET /api/jobs/ID?wait=30 (answered when the job ends) shows the job
finished. It must end
"succeeded" with every instance; then the archive (retrieve) or Orthanc (send) must hold every
instance, BENCH_VERIFY of them, picked at random, byte-identical to the source below the meta
header.

Achieved rate = the study's file bytes / seconds; deviation = (achieved - limit) / limit. The
job's time includes what is not paced: the job's start, a C-FIND or QIDO-RS listing, the
association or connection set-up, the final checks; and the bucket lets the first quarter
second of bytes through at once: a job may end up a few per cent above its limit. The bytes
paced are the wire's (PDU headers, multipart delimiters), a little more than the files' minus
their meta headers. With BENCH_REFERENCE, each transfer is first measured once unthrottled
(max_bytes_per_second 0) with the smallest study: the machine's ceiling, not checked.

| variable | default | meaning |
| --- | --- | --- |
| BENCH_LIMITS_MB | 1,5,20 | limits measured, MB/s (10^6 bytes/s) |
| BENCH_VOLUMES_MB | 10,50,100 | bytes moved at each limit (MB, one per limit, in that order) |
| BENCH_CHECK_MB | 5 | the limit whose measurements decide the exit status |
| BENCH_TOLERANCE | 10 | % of deviation allowed at that limit |
| BENCH_TRANSFERS | get,store,wado | get (C-GET), store (C-STORE), wado (WADO-RS), stow (STOW-RS) |
| BENCH_REFERENCE | 1 | 1: each transfer once unthrottled first (smallest study) |
| BENCH_ROUNDS | 1 | rounds (every transfer at every limit once per round) |
| BENCH_CT_BYTES | 525312 | approximate size of one instance |
| BENCH_VERIFY | 1 | instances byte-compared after each measurement |
| PACSBRIDGE_BIN | build/release/pacsbridge (else build/pacsbridge) | binary under test |
| BENCH_BRIDGE_SERVER_TOML | none | extra lines for PACS Bridge's [server] table, e.g. "fsync = true" |
| BENCH_BASELINE_PDU | 131072 | Orthanc's max PDU |
| BENCH_TMPDIR | $TMPDIR or /var/tmp | work directory (dataset, storage, logs) |
| BENCH_KEEP | 0 | 1: keep the work directory |
| BENCH_JSON | none | also write every measurement to this JSON file |
| BENCH_JOB_TIMEOUT | 600 | seconds one transfer may take beyond volume / limit |

Exit status: 0 when every measurement completed and those at BENCH_CHECK_MB stayed within
BENCH_TOLERANCE of it; 1 when one did not, or something broke (a tool or a job failed, an
instance is missing or differs); 2 on bad usage; 130 when interrupted. Progress goes to stderr,
the report to stdout.
"""

import json
import math
import os
import random
import shutil
import sys
import time
import urllib.request

import common  # bench/common.py: what the benchmarks share
from common import (BenchError, await_job, LIVE, OrthancPeer, bridge_studies, env_num, free_port,
                    fs_type, http_get, http_json, listening, log, note, spawn,
                    start_bridge, stop, tail)

common.PROG = "throttle"

MEGA = 1000 * 1000  # the limit's MB: 10^6 bytes
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
TRANSFERS = ("get", "store", "wado", "stow")
NAMES = {"get": "C-GET", "store": "C-STORE", "wado": "WADO-RS", "stow": "STOW-RS"}
SENDS = ("store", "stow")
WEB = ("wado", "stow")

dicomgen = None  # tools/dicomgen.py, imported in run()


# --------------------------------------------------------------------------- dataset

class Study:
    def __init__(self, name, directory, made):
        self.name, self.dir = name, directory
        self.uid = made[0][2]
        self.source = {m[1]: m[0] for m in made}  # SOP Instance UID -> source file
        self.count = len(made)
        self.total_bytes = sum(os.path.getsize(m[0]) for m in made)


def generate(tmp, name, volume_mb, size):
    """One study of CT instances of ~size bytes holding at least volume_mb MB in all."""
    count = max(1, math.ceil(volume_mb * MEGA / size))
    directory = os.path.join(tmp, "data", name)
    while True:
        made = dicomgen.generate(directory, count, studies=1, series_per_study=1, size=size,
                                 modality="CT", patient_id="BENCH-THROTTLE-" + name.upper(),
                                 patient_name="BENCH^THROTTLE" + name.upper())
        if len({m[2] for m in made}) != 1 or len({m[1] for m in made}) != count:
            raise BenchError("%s: expected one study of %d distinct instances" % (name, count))
        study = Study(name, directory, made)
        if study.total_bytes >= volume_mb * MEGA:
            break
        # dicomgen's size is approximate: a few more instances, a fresh study.
        count += math.ceil((volume_mb * MEGA - study.total_bytes) / (study.total_bytes / count))
        shutil.rmtree(directory)
    ts = dicomgen.read_meta(made[0][0])[0]["TransferSyntaxUID"]
    if ts != EXPLICIT_VR_LE:
        raise BenchError("%s: unexpected transfer syntax %s" % (name, ts))
    return study


def same_dataset(data, source_path):
    return dicomgen.dataset_bytes(data) == dicomgen.dataset_bytes(source_path)


def load_with_storescu(cfg, port, called_ae, study, tmp, who):
    log_path = os.path.join(tmp, "load-%s-%s.log" % (who, study.name))
    proc = spawn(["storescu", "-aet", "LOADER", "-aec", called_ae, "-xe", "+sd",
                  "127.0.0.1", str(port), study.dir], env=cfg.env_nodelay,
                 log_path=log_path, cwd=tmp)
    rc = proc.wait()
    LIVE.pop(proc.pid, None)
    if rc != 0:
        raise BenchError("loading the %s study into %s failed (%s):\n%s"
                         % (study.name, who, rc, tail(log_path)))


# --------------------------------------------------------------------------- peers

class Orthanc(OrthancPeer):
    """The PACS: one Orthanc for the whole run, with its DICOMweb plugin."""

    def __init__(self, cfg, work, web):
        os.makedirs(work)
        self.cfg = cfg
        extra = {"DicomAlwaysAllowGet": True, "DicomAlwaysAllowFind": True,
                 "DicomAlwaysAllowStore": True, "HttpCompressionEnabled": False}
        if web:
            extra.update({"Plugins": [DICOMWEB_PLUGIN],
                          "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}})
        self.launch(cfg, work, "bench-throttle-orthanc", extra=extra)
        deadline = time.monotonic() + cfg.start_timeout
        while not self.ready():
            self.alive()
            if time.monotonic() > deadline:
                raise BenchError("Orthanc not ready after %d s:\n%s" % (cfg.start_timeout,
                                                                        tail(self.log_path)))
            time.sleep(0.05)
        self.root = self.url("/dicom-web/")
        self.plugin_version = None
        if web:
            status, body = http_get(self.url("/plugins/dicom-web"))
            if status != 200:
                raise BenchError("Orthanc has no DICOMweb plugin (GET /plugins/dicom-web: %d; "
                                 "Debian: orthanc-dicomweb):\n%s" % (status, tail(self.log_path)))
            self.plugin_version = json.loads(body).get("Version", "?")

    def alive(self):
        if self.proc.poll() is not None:
            raise BenchError("Orthanc died (%s):\n%s" % (self.proc.returncode,
                                                         tail(self.log_path)))

    def study_id(self, uid):
        req = urllib.request.Request(self.url("/tools/lookup"), data=uid.encode(),
                                     method="POST")
        try:
            with common._OPENER.open(req, timeout=30) as resp:
                found = json.loads(resp.read().decode())
        except OSError as e:
            raise BenchError("Orthanc POST /tools/lookup failed: %s" % e)
        ids = [x["ID"] for x in found if x.get("Type") == "Study"]
        return ids[0] if ids else None

    def instances(self, uid):
        """{SOP Instance UID: Orthanc instance ID} of a study (empty when absent)."""
        sid = self.study_id(uid)
        if sid is None:
            return {}
        status, body = http_json("GET", self.url("/studies/%s/instances" % sid), timeout=120)
        if status != 200 or not isinstance(body, list):
            raise BenchError("Orthanc GET /studies/%s/instances answered %s" % (sid, status))
        return {x["MainDicomTags"]["SOPInstanceUID"]: x["ID"] for x in body}

    def delete_study(self, uid):
        sid = self.study_id(uid)
        if sid is None:
            return
        status, body = http_json("DELETE", self.url("/studies/%s" % sid), timeout=300)
        if status != 200 or self.study_id(uid) is not None:
            raise BenchError("Orthanc DELETE /studies/%s answered %s: %r" % (sid, status, body))

    def check(self, study, what):
        """Orthanc holds exactly the study's instances; BENCH_VERIFY of them byte-identical."""
        got = self.instances(study.uid)
        if set(got) != set(study.source):
            raise BenchError("%s: Orthanc holds %d instances of the %s study (%d of ours), "
                             "it has %d:\n%s" % (what, len(got), study.name,
                                                 len(set(got) & set(study.source)),
                                                 study.count, tail(self.log_path)))
        for sop in random.sample(sorted(got), min(self.cfg.verify, len(got))):
            status, body = http_get(self.url("/instances/%s/file" % got[sop]), timeout=300)
            if status != 200 or not same_dataset(body, study.source[sop]):
                raise BenchError("%s: Orthanc's copy of %s (%d) differs from %s below the "
                                 "meta header" % (what, sop, status, study.source[sop]))


class Bridge:
    """pacsbridge serve with an empty data directory."""

    def __init__(self, cfg, work):
        self.cfg = cfg
        os.makedirs(work)
        self.work = work
        self.http_port = free_port()
        self.port = free_port()
        self.proc, self.log_path = start_bridge(cfg, work, self.http_port, self.port)
        common.wait_bridge_ready(cfg, self.proc, self.log_path, self.http_port, self.port)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def add_node(self, body):
        status, answer = http_json("POST", self.url("/api/nodes"), body)
        if status != 201:
            raise BenchError("PACS Bridge POST /api/nodes %s answered %s: %r"
                             % (body["name"], status, answer))
        if not isinstance(answer, dict) or \
                answer.get("max_bytes_per_second") != body["max_bytes_per_second"]:
            raise BenchError("PACS Bridge POST /api/nodes %s: max_bytes_per_second %s asked, "
                             "the node says %r (a binary without the throttle?)"
                             % (body["name"], body["max_bytes_per_second"],
                                answer.get("max_bytes_per_second")
                                if isinstance(answer, dict) else answer))

    def count(self, study):
        return sum(int(s.get("instance_count", 0)) for s in bridge_studies(self.http_port)
                   if s.get("StudyInstanceUID") == study.uid)

    def wait_count(self, study, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            n = self.count(study)
            if n == study.count:
                return
            if time.monotonic() > deadline:
                raise BenchError("PACS Bridge lists %d instances of the %s study %s, expected "
                                 "%d" % (n, study.name, what, study.count))
            time.sleep(0.1)

    def verify(self, study, what):
        for sop in random.sample(sorted(study.source), min(self.cfg.verify, study.count)):
            status, body = http_get(self.url("/api/instances/%s/file" % sop), timeout=300)
            if status != 200 or not same_dataset(body, study.source[sop]):
                raise BenchError("%s: our archived %s (%d) differs from %s below the meta "
                                 "header" % (what, sop, status, study.source[sop]))

    def run_job(self, path, body, study, what, timeout):
        """POST a job, await its end (GET ?wait=); returns (seconds, job). Fails unless
        it succeeded with every instance."""
        t0 = time.perf_counter()
        status, answer = http_json("POST", self.url(path), body)
        if status != 202 or not isinstance(answer, dict) or "job_id" not in answer:
            raise BenchError("PACS Bridge POST %s answered %s: %r" % (path, status, answer))
        job_url = self.url("/api/jobs/%s" % answer["job_id"])
        job = await_job(job_url, timeout, what)
        seconds = time.perf_counter() - t0
        progress = job.get("progress") or {}
        if job.get("state") != "succeeded" or progress.get("completed") != study.count:
            short = {k: v for k, v in job.items() if k not in ("missing", "not_confirmed")}
            raise BenchError("%s of the %s study (%d instances) ended: %s\n%s"
                             % (what, study.name, study.count, json.dumps(short),
                                tail(self.log_path)))
        return seconds, job

    def stop(self):
        rc, killed = stop(self.proc, self.cfg.stop_timeout)
        if killed:
            note("PACS Bridge did not stop within %d s of SIGTERM (killed)"
                 % self.cfg.stop_timeout, key="bridge-kill")
        elif rc != 0:
            note("PACS Bridge exited with status %s after SIGTERM" % rc, key=("bridge-rc", rc))


# --------------------------------------------------------------------------- measuring

class Bench:
    def __init__(self, cfg, tmp, orthanc, sender):
        self.cfg, self.tmp, self.orthanc, self.sender = cfg, tmp, orthanc, sender
        self.seq = 0

    def node(self, kind, name, limit_bps):
        if kind in WEB:
            return {"name": name, "type": "dicomweb", "url": self.orthanc.root,
                    "queryable": True, "storable": True, "max_bytes_per_second": limit_bps}
        return {"name": name, "ae_title": self.orthanc.ae, "host": "127.0.0.1",
                "port": self.orthanc.port, "queryable": True, "storable": True,
                "timeout_seconds": 60, "max_bytes_per_second": limit_bps}

    def measure(self, kind, study, limit_mb, tag):
        """One transfer of the study at limit_mb MB/s (0: unthrottled); a result dict."""
        self.seq += 1
        self.orthanc.alive()
        limit_bps = int(round(limit_mb * MEGA))
        name = "orthanc-%s-%d" % (kind, self.seq)
        what = "%s %s job at %s MB/s" % (tag, NAMES[kind], limit_mb or "unlimited")
        timeout = self.cfg.job_timeout + (study.total_bytes / limit_bps if limit_bps else 0)
        if kind in SENDS:
            srv = self.sender
            self.orthanc.delete_study(study.uid)
            srv.add_node(self.node(kind, name, limit_bps))
            os.sync()
            seconds, job = srv.run_job("/api/send", {"node": name, "level": "STUDY",
                                                     "uids": [study.uid]}, study, what, timeout)
            self.orthanc.check(study, what)
        else:
            work = os.path.join(self.tmp, "runs", "%03d-%s-%s-%s" % (self.seq, tag, kind,
                                                                  study.name))
            srv = Bridge(self.cfg, work)
            try:
                srv.add_node(self.node(kind, name, limit_bps))
                os.sync()
                body = {"node": name, "level": "STUDY", "uids": [study.uid]}
                if kind == "get":
                    body["method"] = "c-get"
                seconds, job = srv.run_job("/api/retrieve", body, study, what, timeout)
                wanted = "c-get" if kind == "get" else "wado-rs"
                if job.get("method_used") not in (None, wanted):
                    raise BenchError("%s used %s: %s" % (what, job.get("method_used"),
                                                         json.dumps(job)[:2000]))
                srv.wait_count(study, 30, "after the job")
                srv.verify(study, what)
            finally:
                srv.stop()
            if not self.cfg.keep:
                shutil.rmtree(work, ignore_errors=True)
        job_bytes = (job.get("progress") or {}).get("bytes")
        if not job_bytes or abs(job_bytes - study.total_bytes) > 0.02 * study.total_bytes:
            note("%s job's progress.bytes %s, the study's files %d bytes"
                 % (NAMES[kind], job_bytes, study.total_bytes), key=("bytes", kind))
        rate = study.total_bytes / seconds
        return {"transfer": kind, "limit_mb_per_s": limit_mb, "study": study.name,
                "instances": study.count, "bytes": study.total_bytes, "job_bytes": job_bytes,
                "seconds": seconds, "mb_per_s": rate / MEGA,
                "deviation_pct": (rate / limit_bps - 1) * 100 if limit_bps else None}


# --------------------------------------------------------------------------- report

def report(cfg, results, header):
    out = ["", "=" * 78, "PACS Bridge throttle benchmark (node max_bytes_per_second)"]
    out.extend("  " + line for line in header)
    out += ["=" * 78, ""]
    p = out.append
    p("Achieved rates (MB = 10^6 bytes; rate = the study's file bytes / seconds from the POST "
      "until the job is seen finished)")
    rounds = cfg.rounds > 1
    p("%-8s %10s %10s %9s %9s %10s %7s%s" % ("transfer", "limit MB/s", "MB", "bytes", "seconds",
                                          "achieved", "dev %", "  round" if rounds else ""))
    ok = True
    for kind in cfg.transfers:
        for r in [r for r in results if r["transfer"] == kind]:
            checked = r["limit_mb_per_s"] == cfg.check_mb and r["deviation_pct"] is not None
            verdict = ""
            if checked:
                good = abs(r["deviation_pct"]) <= cfg.tolerance
                ok = ok and good
                verdict = "  %s (within +-%g %%)" % ("PASS" if good else "FAIL", cfg.tolerance)
            p("%-8s %10s %10.1f %9d %9.2f %10.2f %7s%s%s" % (
                NAMES[kind], "%g" % r["limit_mb_per_s"] if r["limit_mb_per_s"] else "none",
                r["bytes"] / MEGA, r["bytes"], r["seconds"], r["mb_per_s"],
                "%+.1f" % r["deviation_pct"] if r["deviation_pct"] is not None else "-",
                "  %5d" % r["round"] if rounds else "", verdict))
    p("(limit none: unthrottled reference, the machine's ceiling; dev %: (achieved - limit) / "
      "limit)")
    p("")
    checked = [r for r in results if r["limit_mb_per_s"] == cfg.check_mb]
    if checked:
        worst = max(checked, key=lambda r: abs(r["deviation_pct"]))
        p("%-5s every transfer at %g MB/s within +-%g %% of the limit (worst: %s %+.1f %%)"
          % ("PASS" if ok else "FAIL", cfg.check_mb, cfg.tolerance, NAMES[worst["transfer"]],
             worst["deviation_pct"]))
    else:
        p("n/a   no measurement at the checked limit (BENCH_CHECK_MB=%g)" % cfg.check_mb)
    common.report_finish(out)
    return ok


# --------------------------------------------------------------------------- main

def num_list(name, default):
    raw = os.environ.get(name) or default
    try:
        values = [float(x) for x in raw.split(",") if x.strip()]
    except ValueError:
        raise SystemExit("throttle: %s=%r is not a list of numbers" % (name, raw))
    if not values or any(v <= 0 for v in values):
        raise SystemExit("throttle: %s must list numbers > 0" % name)
    return values


def parse_config(args):
    cfg = common.Config()
    cfg.limits = num_list("BENCH_LIMITS_MB", "1,5,20")
    cfg.volumes = num_list("BENCH_VOLUMES_MB", "10,50,100")
    if len(cfg.volumes) != len(cfg.limits):
        raise SystemExit("throttle: BENCH_VOLUMES_MB needs one volume per limit of "
                         "BENCH_LIMITS_MB (%d)" % len(cfg.limits))
    cfg.check_mb = env_num("BENCH_CHECK_MB", 5.0, float, 0)
    cfg.tolerance = env_num("BENCH_TOLERANCE", 10.0, float, 0)
    transfers = [t.strip().lower().replace("c-", "").replace("-rs", "") for t in
                 os.environ.get("BENCH_TRANSFERS", "get,store,wado").split(",") if t.strip()]
    if not transfers or any(t not in TRANSFERS for t in transfers):
        raise SystemExit("throttle: BENCH_TRANSFERS must list some of %s" % ", ".join(TRANSFERS))
    cfg.transfers = [t for t in TRANSFERS if t in transfers]
    cfg.reference = env_num("BENCH_REFERENCE", 1, int, 0)
    cfg.rounds = env_num("BENCH_ROUNDS", 1, int, 1)
    cfg.ct_bytes = env_num("BENCH_CT_BYTES", 512 * 512 * 2 + 1024, int, 1024)
    cfg.verify = env_num("BENCH_VERIFY", 1, int, 0)
    cfg.job_timeout = env_num("BENCH_JOB_TIMEOUT", 600, int, 1)
    if any(t in WEB for t in cfg.transfers) and not os.path.exists(DICOMWEB_PLUGIN):
        raise SystemExit("throttle: %s is missing (Debian: orthanc-dicomweb); or set "
                         "BENCH_TRANSFERS=get,store" % DICOMWEB_PLUGIN)
    common.parse_common(cfg, args.root, True, "build it or set PACSBRIDGE_BIN")
    return cfg


def run(cfg, root, tmp):
    global dicomgen
    sys.path.insert(0, os.path.join(root, "tools"))
    import dicomgen as _dicomgen
    dicomgen = _dicomgen

    started = time.monotonic()
    log("throttle: work directory %s (%s)" % (tmp, fs_type(tmp)))
    t = time.monotonic()
    studies = [generate(tmp, "%gMB" % v, v, cfg.ct_bytes) for v in cfg.volumes]
    os.sync()
    log("throttle: %d studies (%.0f MB) generated in %.1f s"
        % (len(studies), sum(s.total_bytes for s in studies) / MEGA, time.monotonic() - t))

    web = any(t in WEB for t in cfg.transfers)
    orthanc = Orthanc(cfg, os.path.join(tmp, "orthanc"), web)
    t = time.monotonic()
    for st in studies:
        load_with_storescu(cfg, orthanc.port, orthanc.ae, st, tmp, "Orthanc")
        got = orthanc.instances(st.uid)
        if set(got) != set(st.source):
            raise BenchError("Orthanc holds %d of the %s study's %d instances after loading"
                             % (len(got), st.name, st.count))
    os.sync()
    log("throttle: Orthanc loaded in %.1f s" % (time.monotonic() - t))

    sender = None
    results = []
    try:
        if any(t in SENDS for t in cfg.transfers):
            t = time.monotonic()
            sender = Bridge(cfg, os.path.join(tmp, "pacsbridge-sender"))
            for st in studies:
                load_with_storescu(cfg, sender.port, "PACSBRIDGE", st, tmp, "PACS Bridge")
                sender.wait_count(st, 120, "after loading")
            os.sync()
            log("throttle: PACS Bridge (sender) loaded in %.1f s" % (time.monotonic() - t))
        bench = Bench(cfg, tmp, orthanc, sender)

        if cfg.reference:
            smallest = min(studies, key=lambda s: s.total_bytes)
            for kind in cfg.transfers:
                r = bench.measure(kind, smallest, 0, "reference")
                r["round"] = 0
                results.append(r)
                log("reference %-8s unthrottled   %7.1f MB %7.2f s %8.2f MB/s"
                    % (NAMES[kind], r["bytes"] / MEGA, r["seconds"], r["mb_per_s"]))
        for rnd in range(cfg.rounds):
            for limit, st in zip(cfg.limits, studies):
                for kind in cfg.transfers:
                    r = bench.measure(kind, st, limit, "r%d" % (rnd + 1))
                    r["round"] = rnd + 1
                    results.append(r)
                    log("round %d  %-8s %5g MB/s   %7.1f MB %7.2f s %8.2f MB/s %+6.1f %%"
                        % (rnd + 1, NAMES[kind], limit, r["bytes"] / MEGA, r["seconds"],
                           r["mb_per_s"], r["deviation_pct"]))
    finally:
        if sender is not None:
            sender.stop()

    header = [
        "studies, one per limit: " + ", ".join(
            "%g MB/s: %d x %.0f KB = %.1f MB" % (limit, st.count, st.total_bytes / st.count / 1000,
                                                 st.total_bytes / MEGA)
            for limit, st in zip(cfg.limits, studies)) + " (CT, Explicit VR LE)",
        "transfers: %s; rounds: %d; a node of its own per measurement (a fresh bucket, a "
        "quarter second of burst)" % (", ".join(NAMES[t] for t in cfg.transfers), cfg.rounds),
        "peer: Orthanc%s, max PDU %d, HTTP compression off; retrieves into a fresh server, "
        "sends from one loaded server (the study deleted from Orthanc first)"
        % (" + DICOMweb plugin %s" % orthanc.plugin_version if web else "", cfg.baseline_pdu),
        "checked: every transfer at %g MB/s within +-%g %% of the limit (exit status 1 "
        "otherwise)" % (cfg.check_mb, cfg.tolerance),
    ] + common.setup_header(cfg, tmp, "storescu")
    header.append("total run time %.0f s" % (time.monotonic() - started))
    ok = report(cfg, results, header)
    common.write_json(cfg, {
        "config": {"limits_mb_per_s": cfg.limits, "volumes_mb": cfg.volumes,
                   "transfers": cfg.transfers, "rounds": cfg.rounds,
                   "check_mb_per_s": cfg.check_mb, "tolerance_pct": cfg.tolerance,
                   "bridge_bin": cfg.bridge_bin},
        "results": results,
    })
    if not ok:
        log("throttle: FAILED: a transfer at %g MB/s deviated more than %g %% from the limit"
            % (cfg.check_mb, cfg.tolerance))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(common.main(
        "PACS Bridge throttle benchmark (achieved rate under a node's max_bytes_per_second)",
        parse_config, run, "pacsbridge-bench-throttle.", epilog=__doc__))
