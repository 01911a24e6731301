#!/usr/bin/env python3
"""Send benchmark: how fast PACS Bridge's send jobs (C-STORE SCU from its archive) deliver a
study to a PACS, next to DCMTK's storescu sending the same files to the same peer in the same
run. Python 3 standard library only.

    bench/send.sh                     # 500 small + 500 CT instances, 8 rounds, plain and TLS
                                      # (~1.5 min on 2 cores)
    BENCH_TLS=0 bench/send.sh         # plain only (~45 s)
    BENCH_CT=0 BENCH_ROUNDS=5 bench/send.sh
    PACSBRIDGE_BIN=build/debug/pacsbridge bench/send.sh

The peer is DCMTK's storescp (`+B` bit-preserving, `-pdu BENCH_BASELINE_PDU`, `--fork` so that
parallel associations are served in parallel, TCP_NODELAY=1), started fresh with an empty
output directory for every measurement, on the same port all run long. The data: a "small"
study (BENCH_SMALL instances of ~BENCH_SMALL_BYTES, Secondary Capture, 2 series) and a "CT"
study (BENCH_CT instances of ~BENCH_CT_BYTES, 1 series), Explicit VR Little Endian
(tools/dicomgen.py). One `pacsbridge serve` (empty data directory, no TCP_NODELAY: it must
turn Nagle off by itself) holds both studies: they are loaded with storescu into its receiver
before anything is timed, and two nodes point at storescp: max_associations 1 and 2.

Per round, for each study, three sends are measured, in an order that rotates:
- storescu: `storescu -xe +sd` of the study's directory, one association; time = process
  start to exit; it must exit 0;
- PACS Bridge, 1 association: POST /api/send {"node": "storescp-1", "level": "STUDY",
  "uids": [study]}, then GET /api/jobs/ID?wait=30 (answered when the job ends); time = from
  the POST until the job is seen finished; it must end "succeeded" with progress.completed == the study's size;
- PACS Bridge, 2 associations: the same to node "storescp-2" (max_associations 2).
With BENCH_TLS (on by default) two more, over TLS, in the same rotation (see TLS below).
Then storescp must hold every instance (one file each), and a few of them, picked at random,
must be byte-identical to the source below the meta header. Its output is kept until the end,
or deleted after each measurement (outside the time) when the disk is short: deleting
hundreds of MB between measurements slows the next ones down on ext4 mounted with discard.
Kept files are written back and dropped from the page cache after each measurement
(BENCH_EVICT, outside the time): on a VM whose fresh memory is slow to fault in, a page cache
growing by a study per measurement made later measurements disk-bound (~150 MB/s for
everyone). `sync` runs before each measurement.

Rates: instances/s and MB/s (MB = 2^20 bytes of the source files), medians over the rounds;
ratios are medians of same-round ratios of instances/s (the numbers to trust on a noisy
machine). Targets (PASS/MISS, they never change the exit status): at least 1.0x storescu on
one association and 1.5x storescu with two, for each study. Our time includes what storescu
does not do: the job's set-up (finding the study's instances in the index) and its
bookkeeping. storescu reads its files from the page cache (they were just generated and
loaded); so does our server, most likely (its archive was just written).

TLS (BENCH_TLS=1, the default; needs openssl and a DCMTK built with OpenSSL): the cost of
DICOM TLS on each side. openssl makes a self-signed certificate (RSA 2048, CN=localhost,
subjectAltName IP:127.0.0.1; key mode 600) in the work directory; the peer is then
`storescp +tls KEY CERT -ic` (no client certificate asked for; otherwise as above), and in
every round, for each study, two more sends join the rotation, one association each:
- storescu TLS: `storescu +tla +cf CERT -xe +sd ...` (anonymous TLS client, the peer's
  certificate checked against CERT);
- PACS Bridge TLS: a send job to node "storescp-tls" (max_associations 1, "tls":
  {"enabled": true, "ca_file": CERT}; verify_peer and verify_hostname stay on: host 127.0.0.1
  matches the certificate's IP alternative name).
Both use DCMTK's default BCP 195 non-downgrading profile; both are checked as above (exit 0 /
job "succeeded" with every instance; all files at storescp, a few byte-identical; a plain
association to the TLS port would fail). Reported: TLS instances/s and MB/s per side, the
TLS/plain ratio of each side from the same rounds (median of same-round ratios; < 1: TLS
costs), and ours TLS / storescu TLS.

| variable | default | meaning |
| --- | --- | --- |
| BENCH_SMALL, BENCH_SMALL_BYTES | 500, 2048 | small study (0: none) |
| BENCH_CT, BENCH_CT_BYTES | 500, 524288 | CT study (0: none) |
| BENCH_ROUNDS | 8 | rounds (a measurement takes well under a second: many rounds, not big sets) |
| BENCH_SIDES | storescu,us1,us2 | what is measured (storescu alone: no PACS Bridge needed) |
| BENCH_TLS | 1 | 1: also storescu and us1 over TLS (for those in BENCH_SIDES); 0: plain only |
| BENCH_WARMUP | 1 | one unrecorded send of the small study by each side with 1 assoc first |
| BENCH_STORESCP_FORK | 1 | 1: storescp --fork (parallel associations served in parallel); 0: single process |
| BENCH_CLEAN_BETWEEN | auto | 1: delete storescp's output after each measurement (default: only if the disk is short) |
| BENCH_EVICT | 1 | 1: drop storescp's kept output from the page cache after each measurement |
| BENCH_VERIFY | 3 | instances compared byte for byte after each measurement |
| PACSBRIDGE_BIN | build/release/pacsbridge (else build/pacsbridge) | binary under test |
| BENCH_BRIDGE_SERVER_TOML | none | extra lines for PACS Bridge's [server] table |
| BENCH_BASELINE_PDU | 131072 | storescp's max receive PDU (limits what both sides send) |
| BENCH_TMPDIR | $TMPDIR or /var/tmp | work directory (dataset, archive, storescp output, logs) |
| BENCH_KEEP | 0 | 1: keep the work directory |
| BENCH_JSON | none | also write every measurement to this JSON file |
| BENCH_JOB_TIMEOUT | 600 | seconds one send may take |

Exit status: 0 when every measurement completed, 1 when something broke (a tool failed, a job
did not succeed, an instance is missing or differs), 2 on bad usage, 130 when interrupted.
Progress goes to stderr, the report to stdout.
"""

import os
import random
import shutil
import subprocess
import sys
import time

import common  # bench/common.py: what the benchmarks share
from common import (BenchError, await_job, evict, bridge_studies, LIVE, MB, KB, count_files, env_num, fmt, free_port, fs_type,
                    http_json, listening, log, med, note, paired_ratio, rotate, run_timed,
                    spawn, start_bridge, stop, tail)

common.PROG = "send"

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
SIDES = ("storescu", "us1", "us2")             # the plain sides (BENCH_SIDES)
TLS_SIDES = {"storescu": "storescu-tls", "us1": "us1-tls"}  # plain side -> its TLS twin
SIDE_NAMES = {"storescu": "storescu", "us1": "PACS Bridge send job",
              "us2": "PACS Bridge send job", "storescu-tls": "storescu TLS",
              "us1-tls": "PACS Bridge send job TLS"}
SIDE_ASSOCS = {"storescu": 1, "us1": 1, "us2": 2, "storescu-tls": 1, "us1-tls": 1}
SIDE_NODES = {"us1": "storescp-1", "us2": "storescp-2", "us1-tls": "storescp-tls"}

dicomgen = None  # tools/dicomgen.py, imported in run()


# --------------------------------------------------------------------------- dataset

class Study:
    def __init__(self, name, directory, made, total_bytes):
        self.name, self.dir = name, directory
        self.uid = made[0][2]
        self.source = {m[1]: m[0] for m in made}  # SOP Instance UID -> source file
        self.count, self.total_bytes = len(made), total_bytes


def generate(tmp, name, *, count, size, modality, series):
    directory = os.path.join(tmp, "data", name)
    made = dicomgen.generate(directory, count, studies=1, series_per_study=series, size=size,
                             modality=modality, patient_id="BENCH-SEND-" + name.upper(),
                             patient_name="BENCH^SEND" + name.upper())
    if len({m[2] for m in made}) != 1 or len({m[1] for m in made}) != count:
        raise BenchError("%s: expected one study of %d distinct instances" % (name, count))
    ts = dicomgen.read_meta(made[0][0])[0]["TransferSyntaxUID"]
    if ts != EXPLICIT_VR_LE:
        raise BenchError("%s: unexpected transfer syntax %s" % (name, ts))
    total = sum(os.path.getsize(m[0]) for m in made)
    return Study(name, directory, made, total)


# --------------------------------------------------------------------------- peers

class Tls:
    """The run's self-signed certificate (CN=localhost, subjectAltName IP:127.0.0.1) and its
    key (mode 600), made by openssl under tmp/tls: storescp's identity, and what storescu and
    our node trust."""

    def __init__(self, tmp):
        directory = os.path.join(tmp, "tls")
        os.makedirs(directory)
        self.key = os.path.join(directory, "storescp.key")
        self.cert = os.path.join(directory, "storescp.pem")
        log_path = os.path.join(directory, "openssl.log")
        cmd = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
               "-out", self.cert, "-days", "2", "-subj", "/CN=localhost",
               "-addext", "subjectAltName=IP:127.0.0.1"]
        with open(log_path, "wb") as out:
            res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, timeout=60)
        if res.returncode != 0 or not os.path.exists(self.cert):
            raise BenchError("openssl could not make the certificate (%s):\n%s"
                             % (res.returncode, tail(log_path)))
        os.chmod(self.key, 0o600)


class Storescp:
    """A fresh storescp (+B) writing into work/out, on the run's fixed port."""

    ae = "STORESCP"

    def __init__(self, cfg, work, port, tls=None):
        """tls: None (plain) or the run's Tls (then `+tls KEY CERT -ic`)."""
        self.cfg, self.port = cfg, port
        self.out = os.path.join(work, "out")
        os.makedirs(self.out)
        self.log_path = os.path.join(work, "storescp.log")
        cmd = ["storescp", "--fork" if cfg.fork else "--single-process", "+B",
               "-pdu", str(cfg.baseline_pdu), "-aet", self.ae, "-od", self.out]
        if tls is not None:
            cmd += ["+tls", tls.key, tls.cert, "-ic"]
        cmd.append(str(port))
        self.proc = spawn(cmd, env=cfg.env_nodelay, log_path=self.log_path, cwd=work)
        deadline = time.monotonic() + cfg.start_timeout
        while not listening(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("storescp%s did not start listening on %d:\n%s"
                                 % (" +tls" if tls else "", port, tail(self.log_path)))
            time.sleep(0.01)

    def stop(self):
        rc, killed = stop(self.proc, self.cfg.stop_timeout)
        if killed:
            note("storescp did not stop within %d s of SIGTERM (killed)" % self.cfg.stop_timeout,
                 key="scp-kill")
        # A SIGTERMed storescp ends with the signal's status; nothing to report there.

    def check(self, study, what):
        """Every instance once, and BENCH_VERIFY of them byte-identical below the meta."""
        deadline = time.monotonic() + 5  # --fork: a child may still be closing its file
        while count_files(self.out) < study.count and time.monotonic() < deadline:
            time.sleep(0.02)
        names = os.listdir(self.out)
        got = {n.split(".", 1)[1]: os.path.join(self.out, n) for n in names if "." in n}
        if len(names) != study.count or set(got) != set(study.source):
            raise BenchError("%s: storescp holds %d files (%d of the study's instances), the %s "
                             "study has %d:\n%s" % (what, len(names),
                                                    len(set(got) & set(study.source)),
                                                    study.name, study.count,
                                                    tail(self.log_path)))
        for sop in random.sample(sorted(got), min(self.cfg.verify, len(got))):
            if dicomgen.dataset_bytes(got[sop]) != dicomgen.dataset_bytes(study.source[sop]):
                raise BenchError("%s: storescp's copy of %s differs from %s below the meta "
                                 "header" % (what, sop, study.source[sop]))


class Bridge:
    """One pacsbridge serve for the whole run: both studies in its archive, two nodes."""

    def __init__(self, cfg, work, scp_port, tls=None):
        self.cfg = cfg
        os.makedirs(work)
        self.http_port = free_port()
        self.port = free_port()
        self.proc, self.log_path = start_bridge(cfg, work, self.http_port, self.port)
        common.wait_bridge_ready(cfg, self.proc, self.log_path, self.http_port, self.port)
        nodes = [{"name": "storescp-%d" % n, "max_associations": n} for n in (1, 2)]
        if tls is not None:
            # verify_peer and verify_hostname stay on (defaults): 127.0.0.1 is in the SAN.
            nodes.append({"name": "storescp-tls", "max_associations": 1,
                          "tls": {"enabled": True, "ca_file": tls.cert}})
        for node in nodes:
            body = dict(node, ae_title=Storescp.ae, host="127.0.0.1", port=scp_port,
                        storable=True, timeout_seconds=60)
            status, answer = http_json("POST", self.url("/api/nodes"), body)
            if status != 201:
                raise BenchError("PACS Bridge POST /api/nodes %s answered %s: %r%s" % (
                    node["name"], status, answer, " (does this binary know node TLS? set "
                    "BENCH_TLS=0 or PACSBRIDGE_BIN)" if "tls" in node else ""))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def counts(self):
        return {s.get("StudyInstanceUID"): int(s.get("instance_count", 0))
                for s in bridge_studies(self.http_port)}

    def load(self, studies, tmp):
        t = time.monotonic()
        for st in studies:
            log_path = os.path.join(tmp, "load-%s.log" % st.name)
            proc = spawn(["storescu", "-aet", "LOADER", "-aec", "PACSBRIDGE", "-xe", "+sd",
                          "127.0.0.1", str(self.port), st.dir], env=self.cfg.env_nodelay,
                         log_path=log_path, cwd=tmp)
            rc = proc.wait()
            LIVE.pop(proc.pid, None)
            if rc != 0:
                raise BenchError("loading the %s study into PACS Bridge failed (%s):\n%s"
                                 % (st.name, rc, tail(log_path)))
        deadline = time.monotonic() + 60
        while True:
            counts = self.counts()
            if all(counts.get(st.uid) == st.count for st in studies):
                break
            if time.monotonic() > deadline:
                raise BenchError("PACS Bridge lists %r instances after loading, expected %r"
                                 % ([counts.get(st.uid) for st in studies],
                                    [st.count for st in studies]))
            time.sleep(0.1)
        log("send: PACS Bridge loaded with %d instances in %.1f s"
            % (sum(st.count for st in studies), time.monotonic() - t))

    def stop(self):
        rc, killed = stop(self.proc, self.cfg.stop_timeout)
        if killed:
            note("PACS Bridge did not stop within %d s of SIGTERM (killed)"
                 % self.cfg.stop_timeout, key="bridge-kill")
        elif rc != 0:
            note("PACS Bridge exited with status %s after SIGTERM" % rc, key=("bridge-rc", rc))


# --------------------------------------------------------------------------- measuring

class Bench:
    def __init__(self, cfg, tmp, bridge, scp_port, tls=None):
        self.cfg, self.tmp, self.bridge, self.scp_port = cfg, tmp, bridge, scp_port
        self.tls = tls
        self.seq = 0

    def measure(self, side, study, tag):
        self.seq += 1
        work = os.path.join(self.tmp, "runs", "%03d-%s-%s-%s" % (self.seq, tag, study.name, side))
        os.makedirs(work)
        tls = self.tls if side.endswith("-tls") else None
        scp = Storescp(self.cfg, work, self.scp_port, tls)
        extra = {}
        try:
            os.sync()
            if side.startswith("storescu"):
                seconds = self.storescu(study, work, tls)
            else:
                seconds, extra = self.ours(side, study)
        finally:
            scp.stop()
        scp.check(study, "%s %s %s" % (tag, study.name, side))
        if self.cfg.clean_between:
            shutil.rmtree(scp.out, ignore_errors=True)
        elif self.cfg.evict:
            evict(scp.out)
        return dict(extra, seconds=seconds, inst_per_s=study.count / seconds,
                    mb_per_s=study.total_bytes / MB / seconds)

    def storescu(self, study, work, tls=None):
        log_path = os.path.join(work, "storescu.log")
        cmd = ["storescu", "-aet", "STORESCU", "-aec", Storescp.ae, "-xe", "+sd"]
        if tls is not None:
            cmd += ["+tla", "+cf", tls.cert]  # anonymous client; the peer's cert is checked
        cmd += ["127.0.0.1", str(self.scp_port), study.dir]
        rc, seconds = run_timed(cmd, env=self.cfg.env_nodelay, log_path=log_path, cwd=work,
                                timeout=self.cfg.job_timeout)
        if rc != 0:
            raise BenchError("storescu exited with %s:\n%s" % (rc, tail(log_path)))
        return seconds

    def ours(self, side, study):
        b = self.bridge
        nassoc = SIDE_ASSOCS[side]
        body = {"node": SIDE_NODES[side], "level": "STUDY", "uids": [study.uid]}
        t0 = time.perf_counter()
        status, answer = http_json("POST", b.url("/api/send"), body)
        if status != 202 or not isinstance(answer, dict) or "job_id" not in answer:
            raise BenchError("PACS Bridge POST /api/send answered %s: %r%s" % (
                status, answer, " (this binary has no send API: build it, or set "
                "PACSBRIDGE_BIN)" if status in (404, 405) else ""))
        job_url = b.url("/api/jobs/%s" % answer["job_id"])
        job = await_job(job_url, self.cfg.job_timeout, "send job")
        seconds = time.perf_counter() - t0
        progress = job.get("progress") or {}
        if job.get("state") != "succeeded" or progress.get("completed") != study.count:
            short = {k: v for k, v in job.items() if k not in ("not_confirmed",)}
            raise BenchError("PACS Bridge send of the %s study (%d instances, %d "
                             "association(s)%s) ended: %r\n%s" % (study.name, study.count, nassoc,
                                                ", TLS" if side.endswith("-tls") else "", short,
                                                tail(b.log_path)))
        return seconds, {"associations_used": progress.get("associations")}


# --------------------------------------------------------------------------- report

def report(cfg, studies, results, header):
    out = common.report_start("PACS Bridge send benchmark", header, cfg.rounds)
    p = out.append
    p("%-6s %-22s %5s %9s %15s %8s %7s %6s" % ("study", "who", "assoc", "inst/s", "[min-max]",
                                              "MB/s", "s", "used"))
    for st in studies:
        for side in cfg.sides:
            rs = list(results.get((st.name, side), {}).values())
            if not rs:
                continue
            ips = [r["inst_per_s"] for r in rs]
            used = [r.get("associations_used") for r in rs if r.get("associations_used")]
            p("%-6s %-22s %5d %9.1f %15s %8.1f %7.2f %6s" % (
                st.name, SIDE_NAMES[side], SIDE_ASSOCS[side], med(ips),
                "[%.0f-%.0f]" % (min(ips), max(ips)), med([r["mb_per_s"] for r in rs]),
                med([r["seconds"] for r in rs]),
                ("%d" % max(used)) if used else "-"))
    p("(used: the most associations the job reported in progress.associations, if it does)")
    p("")
    p("Ratios (median of same-round ratios of instances/s; > 1: we are faster)")
    p("%-6s %22s %22s %14s" % ("study", "us 1 assoc / storescu", "us 2 assoc / storescu",
                               "us 2 / us 1"))
    targets = []
    for st in studies:
        r1 = paired_ratio(results, (st.name, "us1"), (st.name, "storescu"))
        r2 = paired_ratio(results, (st.name, "us2"), (st.name, "storescu"))
        r21 = paired_ratio(results, (st.name, "us2"), (st.name, "us1"))
        p("%-6s %22s %22s %14s" % (st.name, fmt(r1, "%.2f"), fmt(r2, "%.2f"), fmt(r21, "%.2f")))
        targets.append(("%s, 1 assoc: us/storescu" % st.name, r1, 1.0))
        targets.append(("%s, 2 assoc: us/storescu (1 assoc)" % st.name, r2, 1.5))
    p("")
    p("Targets")
    for label, value, limit in targets:
        p(common.target_line(label, value, limit))
    if cfg.tls_sides:
        report_tls(cfg, studies, results, p)
    common.report_finish(out)


def report_tls(cfg, studies, results, p):
    p("")
    p("TLS (storescp +tls KEY CERT -ic; 1 association; the same rounds as above)")
    p("(plain: that side's plain median above; TLS/plain: median of same-round ratios of "
      "instances/s, < 1: TLS costs)")
    p("%-6s %-24s %9s %15s %8s %7s %9s %9s" % ("study", "who", "inst/s", "[min-max]", "MB/s",
                                              "s", "plain", "TLS/plain"))
    for st in studies:
        for plain, side in TLS_SIDES.items():
            rs = list(results.get((st.name, side), {}).values())
            if not rs:
                continue
            ips = [r["inst_per_s"] for r in rs]
            plain_ips = [r["inst_per_s"] for r in results.get((st.name, plain), {}).values()]
            p("%-6s %-24s %9.1f %15s %8.1f %7.2f %9s %9s" % (
                st.name, SIDE_NAMES[side], med(ips), "[%.0f-%.0f]" % (min(ips), max(ips)),
                med([r["mb_per_s"] for r in rs]), med([r["seconds"] for r in rs]),
                fmt(med(plain_ips)),
                fmt(paired_ratio(results, (st.name, side), (st.name, plain)), "%.2f")))
    p("%-6s %22s %22s" % ("study", "us TLS / storescu TLS", "us plain / storescu"))
    for st in studies:
        p("%-6s %22s %22s" % (
            st.name, fmt(paired_ratio(results, (st.name, "us1-tls"), (st.name, "storescu-tls")),
                         "%.2f"),
            fmt(paired_ratio(results, (st.name, "us1"), (st.name, "storescu")), "%.2f")))


# --------------------------------------------------------------------------- main

def parse_config(args):
    cfg = common.Config()
    cfg.small = env_num("BENCH_SMALL", 500, int, 0)
    cfg.small_bytes = env_num("BENCH_SMALL_BYTES", 2048, int, 512)
    cfg.ct = env_num("BENCH_CT", 500, int, 0)
    cfg.ct_bytes = env_num("BENCH_CT_BYTES", 512 * KB, int, 512)
    cfg.rounds = env_num("BENCH_ROUNDS", 8, int, 1)
    cfg.fork = env_num("BENCH_STORESCP_FORK", 1, int, 0) != 0
    cfg.verify = env_num("BENCH_VERIFY", 3, int, 0)
    cfg.job_timeout = env_num("BENCH_JOB_TIMEOUT", 600, int, 1)
    cfg.clean_between = os.environ.get("BENCH_CLEAN_BETWEEN")
    cfg.evict = env_num("BENCH_EVICT", 1, int, 0) != 0
    sides = [s.strip().lower() for s in
             os.environ.get("BENCH_SIDES", ",".join(SIDES)).split(",") if s.strip()]
    if not sides or any(s not in SIDES for s in sides):
        raise SystemExit("send: BENCH_SIDES must list some of %s" % ", ".join(SIDES))
    cfg.sides = [s for s in SIDES if s in sides]
    tls = os.environ.get("BENCH_TLS", "")
    if tls not in ("", "0", "1"):
        raise SystemExit("send: BENCH_TLS must be 0 or 1")
    cfg.tls_sides = []
    if tls != "0":
        why = None
        if not shutil.which("openssl"):
            why = "no openssl (Debian: openssl)"
        elif "+tls" not in subprocess.run(["storescu", "--help"], stdout=subprocess.PIPE,
                                          stderr=subprocess.STDOUT).stdout.decode(errors="replace"):
            why = "this DCMTK has no TLS (built without OpenSSL)"
        if why is None:
            cfg.tls_sides = [TLS_SIDES[s] for s in cfg.sides if s in TLS_SIDES]
        elif tls == "1":
            raise SystemExit("send: BENCH_TLS=1 but %s" % why)
        else:
            note("TLS part skipped: %s" % why)
    if not cfg.small and not cfg.ct:
        raise SystemExit("send: BENCH_SMALL and BENCH_CT are both 0")
    common.parse_common(cfg, args.root, any(not s.startswith("storescu") for s in cfg.sides),
                        "build it or set PACSBRIDGE_BIN")
    return cfg


def run(cfg, root, tmp):
    global dicomgen
    sys.path.insert(0, os.path.join(root, "tools"))
    import dicomgen as _dicomgen
    dicomgen = _dicomgen

    started = time.monotonic()
    log("send: work directory %s (%s)" % (tmp, fs_type(tmp)))
    t = time.monotonic()
    studies = []
    if cfg.small:
        studies.append(generate(tmp, "small", count=cfg.small, size=cfg.small_bytes,
                                modality="OT", series=2))
    if cfg.ct:
        studies.append(generate(tmp, "CT", count=cfg.ct, size=cfg.ct_bytes, modality="CT",
                                series=1))
    os.sync()
    log("send: dataset generated in %.1f s" % (time.monotonic() - t))

    # storescp's output: kept until the end if the disk has room (deleting hundreds of MB
    # between measurements slows the next ones down on ext4 with discard), else deleted
    # after each measurement.
    per_run = sum(st.total_bytes for st in studies) * len(cfg.sides + cfg.tls_sides) * \
        (cfg.rounds + 1)
    need = int(per_run * 1.2) + 512 * MB
    if cfg.clean_between is None or cfg.clean_between == "":
        cfg.clean_between = shutil.disk_usage(tmp).free < need
        if cfg.clean_between:
            note("only %.1f GB free under %s, %.1f GB needed to keep storescp's output until "
                 "the end: deleting it after each measurement instead"
                 % (shutil.disk_usage(tmp).free / 1e9, tmp, need / 1e9))
    else:
        cfg.clean_between = cfg.clean_between not in ("0", "no", "false")

    tls = Tls(tmp) if cfg.tls_sides else None
    scp_port = free_port()
    bridge = None
    if cfg.bridge:
        bridge = Bridge(cfg, os.path.join(tmp, "pacsbridge"), scp_port, tls)
        bridge.load(studies, tmp)
        os.sync()
    bench = Bench(cfg, tmp, bridge, scp_port, tls)
    sides = cfg.sides + cfg.tls_sides  # rotated together, round by round
    header = [
        "studies: " + ", ".join("%s %d x %.1f KB" % (st.name, st.count,
                                                    st.total_bytes / st.count / KB)
                                for st in studies) + " (Explicit VR LE)",
        "peer: storescp %s +B -pdu %d (TCP_NODELAY=1), fresh for each measurement; rounds: %d"
        % ("--fork" if cfg.fork else "--single-process", cfg.baseline_pdu, cfg.rounds),
        "sides: %s" % ", ".join("%s (%d assoc)" % (SIDE_NAMES[s], SIDE_ASSOCS[s])
                                for s in sides),
    ] + (["TLS: self-signed RSA 2048 certificate (CN=localhost, SAN IP:127.0.0.1); storescu "
          "+tla +cf CERT; our node tls.ca_file=CERT, verify_hostname on"]
         if cfg.tls_sides else []) + common.setup_header(cfg, tmp, "storescu", orthanc=False)

    try:
        if cfg.warmup and studies:
            st = studies[0]
            for side in [s for s in ("storescu", "us1", "storescu-tls", "us1-tls")
                         if s in sides]:
                r = bench.measure(side, st, "warmup")
                log("warm-up  %-5s %-24s %6.2f s %8.1f inst/s" % (st.name, SIDE_NAMES[side],
                                                                  r["seconds"], r["inst_per_s"]))
        results = {}  # (study, side) -> {round: result}
        k = 0
        for rnd in range(cfg.rounds):
            for st in studies:
                for side in rotate(sides, k):
                    r = bench.measure(side, st, "r%d" % (rnd + 1))
                    results.setdefault((st.name, side), {})[rnd] = r
                    log("round %d  %-5s %-24s %d assoc %5d inst %6.2f s %8.1f inst/s %7.1f MB/s"
                        % (rnd + 1, st.name, SIDE_NAMES[side], SIDE_ASSOCS[side], st.count,
                           r["seconds"], r["inst_per_s"], r["mb_per_s"]))
                k += 1
    finally:
        if bridge is not None:
            bridge.stop()

    header.append("total run time %.0f s" % (time.monotonic() - started))
    report(cfg, studies, results, header)
    common.write_json(cfg, {
        "config": {"rounds": cfg.rounds, "sides": sides, "fork": cfg.fork,
                   "studies": {st.name: {"count": st.count, "bytes": st.total_bytes}
                               for st in studies},
                   "bridge_bin": cfg.bridge_bin if cfg.bridge else None},
        "results": [dict(r, study=s, side=side, assocs=SIDE_ASSOCS[side],
                         tls=side.endswith("-tls"), round=rnd + 1)
                    for (s, side), by_round in results.items()
                    for rnd, r in by_round.items()],
    })
    return 0


if __name__ == "__main__":
    sys.exit(common.main(
        "PACS Bridge send benchmark (C-STORE to storescp: storescu vs our send jobs)",
        parse_config, run, "pacsbridge-bench-send.", epilog=__doc__))
