#!/usr/bin/env python3
"""DICOMweb benchmark: PACS Bridge's send job over STOW-RS and its retrieve job over WADO-RS,
next to curl doing the same HTTP transfers against the same Orthanc in the same run, and our
server's peak RSS while retrieving one big instance by WADO-RS. Python 3 standard library only.

    bench/dicomweb.sh                      # 500 CT instances, 3 rounds, 200 MB instance (~1.5 min)
    BENCH_BIG_MB=0 BENCH_ROUNDS=5 bench/dicomweb.sh
    BENCH_SIDES=curl bench/dicomweb.sh     # the reference alone: no PACS Bridge needed
    PACSBRIDGE_BIN=build/debug/pacsbridge bench/dicomweb.sh

The peer is one Orthanc for the whole run (Debian packages orthanc + orthanc-dicomweb, plugin
/usr/share/orthanc/plugins/libOrthancDicomWeb.so, "DicomWeb": {"Enable": true, "Root":
"/dicom-web/"}, no authentication, HTTP compression off, everything else default, e.g.
SyncStorageArea on). The data (tools/dicomgen.py): a CT study of BENCH_CT instances (one
series, 512 x 512 x 16 bits, ~0.5 MB each, Explicit VR Little Endian) and, in a study of its
own, one big CT instance of BENCH_BIG_MB MB.

STOW-RS, per round, both sides in an order that alternates (curl first in odd rounds), each
into an Orthanc that does not hold the study (it is deleted with DELETE /studies/{id} and
`sync` runs before each measurement, outside the time):
- curl: one `curl` process, `-X POST -T BODY -H "Expect:"` per batch to /dicom-web/studies,
  `--parallel --parallel-max P --parallel-immediate` when BENCH_PARALLEL P > 1 (otherwise
  the batches go one after another on one kept-alive connection). The bodies are
  multipart/related; type="application/dicom" files of BENCH_STOW_BATCH instances each, built
  before the run from the generated files (not timed); curl streams them from the page cache.
  Time = process start to exit; every answer must be 200 without a FailedSOPSequence.
- PACS Bridge: one `pacsbridge serve` for the STOW part, loaded beforehand through its DICOM
  receiver (storescu, not timed), with node {"type": "dicomweb", "url":
  "http://127.0.0.1:PORT/dicom-web/", "storable": true, "queryable": true,
  "stow_batch_instances": B, "max_associations": P}; POST /api/send {"node", "level": "STUDY",
  "uids": [study]}, then GET /api/jobs/ID?wait=30 (answered when the job ends); time = from
  the POST until the job is seen finished; it must end "succeeded" with progress.completed == the study's size.
Then Orthanc must list exactly the study's SOP Instance UIDs, and BENCH_VERIFY of them, picked
at random, must be byte-identical to the source below the meta header.

WADO-RS, per round, alternating the same way, from the Orthanc holding the study:
- curl: GET /dicom-web/studies/{uid} with Accept: multipart/related; type="application/dicom";
  transfer-syntax=* into a file; time = process start to exit; the body must be 200 and hold
  every instance (parts counted afterwards, BENCH_VERIFY of them byte-compared);
- PACS Bridge: a fresh `pacsbridge serve` with an empty data directory (started, node
  registered, `sync`, all before the clock starts), POST /api/retrieve {"node", "level":
  "STUDY", "uids": [study]}; time = from the POST until the job is seen finished; it must end
  "succeeded" with every instance, GET /api/studies must list them all, and BENCH_VERIFY of
  them (GET /api/instances/{uid}/file) must be byte-identical to the source below the meta.
  Our time includes what curl does not do: whatever the job asks before the transfer (e.g. a
  QIDO-RS listing), writing every instance through the ingest path (journal, rename; not
  synced with the default `[server] fsync = false`), indexing and the final check. curl only writes one file, never synced.
Outputs stay on disk until the end (deleting hundreds of MB between measurements slows the
next ones down on ext4 with discard) but are dropped from the page cache after each
measurement.

Big instance (BENCH_BIG_MB > 0): loaded into Orthanc through its REST API (POST /instances,
not timed); then once with curl (GET of its study, as above) and once with a fresh PACS
Bridge retrieving the study; its peak RSS is VmHWM from /proc/PID/status read after the job
succeeded (the main process). A peak RSS at or above BENCH_RSS_LIMIT_MB fails the run.

Rates: instances/s and MB/s (MB = 2^20 bytes of the source files), medians over the rounds;
ratios us/curl are medians of same-round ratios (higher is better for us; the numbers to
trust on a noisy machine). Targets, printed PASS/MISS next to the ratios (they do not change
the exit status): us/curl >= 1.0 for STOW-RS and for WADO-RS.

| variable | default | meaning |
| --- | --- | --- |
| BENCH_CT, BENCH_CT_BYTES | 500, 525312 | the study: instances, approximate file size (512 x 512 pixels) |
| BENCH_BIG_MB | 200 | the big instance in MB (0: skip it and the RSS check) |
| BENCH_ROUNDS | 3 | rounds (each side once per round and transfer) |
| BENCH_STOW_BATCH | 50 | instances per STOW-RS request (node stow_batch_instances; curl's bodies) |
| BENCH_PARALLEL | 2 | parallel requests: node max_associations; curl --parallel-max (1: sequential) |
| BENCH_SIDES | curl,us | who is measured (curl alone: no PACS Bridge needed) |
| BENCH_WARMUP | 1 | one unrecorded STOW-RS and WADO-RS by each side first |
| BENCH_SETTLE | 35 | seconds between the STOW-RS rounds (which delete studies in Orthanc) and the WADO-RS rounds: ext4 without a journal skips recently freed inodes on every file it creates, for ~30 s |
| BENCH_VERIFY | 2 | instances byte-compared after each measurement |
| BENCH_RSS_LIMIT_MB | 64 | the big retrieve fails the run at or above this peak RSS |
| PACSBRIDGE_BIN | build/release/pacsbridge (else build/pacsbridge) | binary under test |
| BENCH_BRIDGE_SERVER_TOML | none | extra lines for PACS Bridge's [server] table, e.g. "fsync = false" |
| BENCH_TMPDIR | $TMPDIR or /var/tmp | work directory (dataset, bodies, storage, outputs, logs) |
| BENCH_KEEP | 0 | 1: keep the work directory |
| BENCH_JSON | none | also write every measurement to this JSON file |
| BENCH_JOB_TIMEOUT | 600 | seconds one transfer may take |

Exit status: 0 when every measurement completed and the peak RSS stayed below the limit; 1
when something broke (a tool or a job failed, an instance is missing or differs) or the peak
RSS reached the limit; 2 on bad usage; 130 when interrupted. Progress goes to stderr, the
report to stdout.
"""

import json
import mmap
import os
import random
import sys
import time
import urllib.request

import common  # bench/common.py: what the benchmarks share
from common import (BenchError, await_job, evict, LIVE, MB, KB, OrthancPeer, bridge_studies, env_num, fmt,
                    free_port, fs_type, http_get, http_json, listening, log, med, note,
                    paired_ratio, peak_rss_kb, cpu_seconds, children_cpu_seconds, used, rotate, run_timed, spawn, start_bridge, stop,
                    tail)

common.PROG = "dicomweb"

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
SIDES = ("curl", "us")
SIDE_NAMES = {"curl": "curl", "us": "PACS Bridge job"}
WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
NODE = "orthanc-web"
FAILED_SOP_SEQUENCE = "00081198"

dicomgen = None  # tools/dicomgen.py, imported in run()


# --------------------------------------------------------------------------- dataset

class Study:
    def __init__(self, name, made):
        self.name = name
        self.uid = made[0][2]
        self.files = [m[0] for m in made]
        self.source = {m[1]: m[0] for m in made}  # SOP Instance UID -> source file
        self.count = len(made)
        self.total_bytes = sum(os.path.getsize(m[0]) for m in made)


def generate(tmp, name, *, count, size):
    made = dicomgen.generate(os.path.join(tmp, "data", name), count, studies=1,
                             series_per_study=1, size=size, modality="CT",
                             patient_id="BENCH-DICOMWEB-" + name.upper(),
                             patient_name="BENCH^DICOMWEB" + name.upper())
    if len({m[2] for m in made}) != 1 or len({m[1] for m in made}) != count:
        raise BenchError("%s: expected one study of %d distinct instances" % (name, count))
    ts = dicomgen.read_meta(made[0][0])[0]["TransferSyntaxUID"]
    if ts != EXPLICIT_VR_LE:
        raise BenchError("%s: unexpected transfer syntax %s" % (name, ts))
    return Study(name, made)


def geometry(path):
    el = dicomgen.read_elements(path)
    rows, cols, bits = (int.from_bytes(el[(0x0028, e)][1][:2], "little")
                        for e in (0x0010, 0x0011, 0x0100))
    return "%d x %d x %d bits" % (rows, cols, bits)


def build_stow_bodies(study, directory, batch):
    """multipart/related bodies of `batch` consecutive instances each (RFC 2387, PS3.18 STOW-RS);
    returns ([paths], boundary)."""
    os.makedirs(directory)
    boundary = "pacsbridge-bench-%016x" % random.getrandbits(64)
    delim = ("--%s\r\nContent-Type: application/dicom\r\n\r\n" % boundary).encode()
    bodies = []
    files = sorted(study.files)
    for i in range(0, len(files), batch):
        path = os.path.join(directory, "batch-%03d.mpr" % (i // batch + 1))
        with open(path, "wb") as out:
            for src in files[i:i + batch]:
                out.write(delim)
                with open(src, "rb") as f:
                    while True:
                        chunk = f.read(4 * MB)
                        if not chunk:
                            break
                        out.write(chunk)
                out.write(b"\r\n")
            out.write(("--%s--\r\n" % boundary).encode())
        bodies.append(path)
    return bodies, boundary


def multipart_parts(path, boundary):
    """(start, end) offsets of each part's body in a multipart file (headers skipped)."""
    delim = b"--" + boundary.encode()
    parts = []
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return parts
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            pos = m.find(delim)
            while pos >= 0:
                after = pos + len(delim)
                if m[after:after + 2] == b"--":
                    break
                head_end = m.find(b"\r\n\r\n", after)
                nxt = m.find(b"\r\n" + delim, head_end)
                if head_end < 0 or nxt < 0:
                    raise BenchError("%s: truncated multipart body after %d parts"
                                     % (path, len(parts)))
                parts.append((head_end + 4, nxt))
                pos = nxt + 2
    return parts


def same_dataset(data, source_path):
    return dicomgen.dataset_bytes(data) == dicomgen.dataset_bytes(source_path)


def sop_uid_of(head):
    """The SOP Instance UID (0008,0018) of an Explicit VR Little Endian file, from its first
    bytes (the header, up to PixelData)."""
    pos = head.find(b"\x08\x00\x18\x00UI", 132)
    if pos < 0:
        raise BenchError("a retrieved instance has no SOP Instance UID in its first %d bytes"
                         % len(head))
    length = int.from_bytes(head[pos + 6:pos + 8], "little")
    return head[pos + 8:pos + 8 + length].rstrip(b"\0 ").decode()


# --------------------------------------------------------------------------- peers

class OrthancWeb(OrthancPeer):
    """Orthanc with its DICOMweb plugin, one for the whole run."""

    def __init__(self, cfg, work):
        os.makedirs(work)
        self.cfg = cfg
        self.launch(cfg, work, "bench-dicomweb-orthanc", extra={
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "HttpCompressionEnabled": False,
        })
        deadline = time.monotonic() + cfg.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError("Orthanc exited (%s) while starting:\n%s"
                                 % (self.proc.returncode, tail(self.log_path)))
            if self.ready():
                break
            if time.monotonic() > deadline:
                raise BenchError("Orthanc not ready after %d s:\n%s" % (cfg.start_timeout,
                                                                        tail(self.log_path)))
            time.sleep(0.05)
        status, body = http_get(self.url("/plugins/dicom-web"))
        if status != 200:
            raise BenchError("Orthanc has no DICOMweb plugin (GET /plugins/dicom-web: %d; "
                             "Debian: orthanc-dicomweb):\n%s" % (status, tail(self.log_path)))
        self.plugin_version = json.loads(body).get("Version", "?")
        self.root = self.url("/dicom-web/")

    def alive(self):
        if self.proc.poll() is not None:
            raise BenchError("Orthanc died (%s):\n%s" % (self.proc.returncode,
                                                         tail(self.log_path)))

    def study_id(self, uid):
        """Orthanc's ID of the study with this Study Instance UID (None when absent)."""
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

    def file(self, instance_id):
        status, body = http_get(self.url("/instances/%s/file" % instance_id), timeout=300)
        if status != 200:
            raise BenchError("Orthanc GET /instances/%s/file answered %d" % (instance_id,
                                                                             status))
        return body

    def delete_study(self, uid):
        sid = self.study_id(uid)
        if sid is None:
            return False
        status, body = http_json("DELETE", self.url("/studies/%s" % sid), timeout=300)
        if status != 200:
            raise BenchError("Orthanc DELETE /studies/%s answered %s: %r" % (sid, status, body))
        if self.study_id(uid) is not None:
            raise BenchError("Orthanc still lists study %s after DELETE" % uid)
        return True

    def upload(self, path):
        """POST /instances of one file, streamed."""
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            req = urllib.request.Request(self.url("/instances"), data=f, method="POST",
                                         headers={"Content-Type": "application/dicom",
                                                  "Content-Length": str(size)})
            try:
                with common._OPENER.open(req, timeout=self.cfg.job_timeout) as resp:
                    answer = json.loads(resp.read().decode())
            except OSError as e:
                raise BenchError("Orthanc POST /instances of %s failed: %s\n%s"
                                 % (path, e, tail(self.log_path)))
        if answer.get("Status") not in ("Success", "AlreadyStored"):
            raise BenchError("Orthanc POST /instances answered %r" % answer)

    def check(self, study, what, verify):
        """Orthanc holds exactly the study's instances; `verify` of them byte-identical."""
        got = self.instances(study.uid)
        if set(got) != set(study.source):
            raise BenchError("%s: Orthanc holds %d instances of the study (%d of ours), the "
                             "study has %d:\n%s" % (what, len(got),
                                                    len(set(got) & set(study.source)),
                                                    study.count, tail(self.log_path)))
        for sop in random.sample(sorted(got), min(verify, len(got))):
            if not same_dataset(self.file(got[sop]), study.source[sop]):
                raise BenchError("%s: Orthanc's copy of %s differs from %s below the meta "
                                 "header" % (what, sop, study.source[sop]))


class Bridge:
    """pacsbridge serve with an empty data directory and the DICOMweb node."""

    def __init__(self, cfg, work, orthanc):
        self.cfg = cfg
        os.makedirs(work)
        self.http_port = free_port()
        self.port = free_port()
        self.proc, self.log_path = start_bridge(cfg, work, self.http_port, self.port)
        common.wait_bridge_ready(cfg, self.proc, self.log_path, self.http_port, self.port)
        status, answer = http_json("POST", self.url("/api/nodes"), cfg.node(orthanc))
        if status != 201:
            raise BenchError("PACS Bridge POST /api/nodes (DICOMweb node) answered %s: %r"
                             % (status, answer))

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def echo_problem(self):
        """None when the node's test connection (POST /api/nodes/NAME/echo) passes, else what
        it answered: a binary without DICOMweb support says so there."""
        status, answer = http_json("POST", self.url("/api/nodes/%s/echo" % NODE), {},
                                   timeout=120)
        if status == 200 and isinstance(answer, dict) and answer.get("ok") is True:
            return None
        return "%s %s" % (status, json.dumps(answer)[:500])

    def load(self, study, tmp):
        log_path = os.path.join(tmp, "load-%s.log" % study.name)
        proc = spawn(["storescu", "-aet", "LOADER", "-aec", "PACSBRIDGE", "-xe", "+sd",
                      "127.0.0.1", str(self.port), os.path.dirname(study.files[0])],
                     env=self.cfg.env_nodelay, log_path=log_path, cwd=tmp)
        rc = proc.wait()
        LIVE.pop(proc.pid, None)
        if rc != 0:
            raise BenchError("loading the %s study into PACS Bridge failed (%s):\n%s"
                             % (study.name, rc, tail(log_path)))
        self.wait_count(study, 60, "after loading")

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

    def verify(self, study, k, what):
        for sop in random.sample(sorted(study.source), min(k, study.count)):
            status, body = http_get(self.url("/api/instances/%s/file" % sop), timeout=300)
            if status != 200:
                raise BenchError("%s: PACS Bridge GET /api/instances/%s/file answered %d"
                                 % (what, sop, status))
            if not same_dataset(body, study.source[sop]):
                raise BenchError("%s: our archived %s differs from %s below the meta header"
                                 % (what, sop, study.source[sop]))

    def run_job(self, path, body, study, what):
        """POST a job, poll it until it ends; returns (seconds, job). Fails unless it
        succeeded with every instance."""
        t0 = time.perf_counter()
        status, answer = http_json("POST", self.url(path), body)
        if status != 202 or not isinstance(answer, dict) or "job_id" not in answer:
            raise BenchError("PACS Bridge POST %s answered %s: %r" % (path, status, answer))
        job_url = self.url("/api/jobs/%s" % answer["job_id"])
        job = await_job(job_url, self.cfg.job_timeout, what)
        seconds = time.perf_counter() - t0
        progress = job.get("progress") or {}
        if job.get("state") != "succeeded" or progress.get("completed") != study.count:
            short = {k: v for k, v in job.items() if k not in ("not_confirmed",)}
            raise BenchError("%s of the %s study (%d instances) ended: %s\n%s"
                             % (what, study.name, study.count, json.dumps(short)[:2000],
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

def rates(study, seconds, **extra):
    return dict(extra, seconds=seconds, inst_per_s=study.count / seconds,
                mb_per_s=study.total_bytes / MB / seconds)


class Bench:
    def __init__(self, cfg, tmp, orthanc, bodies, boundary):
        self.cfg, self.tmp, self.orthanc = cfg, tmp, orthanc
        self.bodies, self.boundary = bodies, boundary
        self.source_bridge = None  # the STOW part's server, holding the study
        self.seq = 0

    def workdir(self, tag, what, side):
        self.seq += 1
        work = os.path.join(self.tmp, "runs", "%03d-%s-%s-%s" % (self.seq, tag, what, side))
        os.makedirs(work)
        return work

    def run_curl(self, args, work, name):
        """curl with args; returns (seconds, [write-out lines])."""
        log_path = os.path.join(work, name + ".log")
        if os.path.exists(log_path):
            os.remove(log_path)  # spawn appends; the write-out lines must be this run's
        cmd = ["curl", "-q", "--no-progress-meter", "--noproxy", "*"] + args
        cpu = children_cpu_seconds()
        rc, seconds = run_timed(cmd, env=self.cfg.env_plain, log_path=log_path, cwd=work,
                                timeout=self.cfg.job_timeout)
        self.curl_cpu = children_cpu_seconds() - cpu
        with open(log_path, "rb") as f:
            text = f.read().decode(errors="replace")
        if rc != 0:
            raise BenchError("curl exited with %s:\n%s" % (rc, tail(log_path)))
        return seconds, [l[len("RESULT "):] for l in text.splitlines()
                         if l.startswith("RESULT ")]

    # ---- STOW-RS

    def stow(self, side, study, tag):
        self.orthanc.alive()
        if self.orthanc.delete_study(study.uid):
            os.sync()
        work = self.workdir(tag, "stow", side)
        os.sync()
        peer_cpu = cpu_seconds(self.orthanc.proc.pid)
        if side == "curl":
            seconds, connections = self.stow_curl(work)
            r = rates(study, seconds, connections=connections, cpu=self.curl_cpu)
        else:
            cpu = cpu_seconds(self.source_bridge.proc.pid)
            seconds, job = self.source_bridge.run_job(
                "/api/send", {"node": NODE, "level": "STUDY", "uids": [study.uid]}, study,
                "PACS Bridge STOW-RS send job")
            r = rates(study, seconds, connections=(job.get("progress") or {}).get("associations"),
                      cpu=used(cpu, cpu_seconds(self.source_bridge.proc.pid)))
        r["peer_cpu"] = used(peer_cpu, cpu_seconds(self.orthanc.proc.pid))
        self.orthanc.alive()
        self.orthanc.check(study, "%s STOW-RS %s" % (tag, side), self.cfg.verify)
        return r

    def stow_curl(self, work):
        """Returns (seconds, connections curl opened)."""
        url = self.orthanc.root + "studies"
        ctype = 'Content-Type: multipart/related; type="application/dicom"; boundary=%s' \
            % self.boundary
        args = []
        if self.cfg.parallel > 1:
            args += ["--parallel", "--parallel-max", str(self.cfg.parallel),
                     "--parallel-immediate"]
        for i, body in enumerate(self.bodies):
            if i:
                args.append("--next")
            args += ["-X", "POST", "-T", body, "-H", "Expect:", "-H", ctype,
                     "-H", "Accept: application/dicom+json",
                     "-o", os.path.join(work, "answer-%03d.json" % (i + 1)),
                     "-w", "RESULT %{http_code} %{num_connects}\\n", url]
        seconds, results = self.run_curl(args, work, "curl-stow")
        codes = [r.split()[0] for r in results]
        if len(codes) != len(self.bodies) or any(c != "200" for c in codes):
            raise BenchError("curl STOW-RS: HTTP status %s for %d bodies"
                             % (" ".join(codes), len(self.bodies)))
        for i in range(len(self.bodies)):
            path = os.path.join(work, "answer-%03d.json" % (i + 1))
            try:
                with open(path, "rb") as f:
                    answer = json.loads(f.read().decode())
            except (OSError, ValueError) as e:
                raise BenchError("curl STOW-RS: Orthanc's answer %d is no DICOM JSON: %s"
                                 % (i + 1, e))
            if (answer.get(FAILED_SOP_SEQUENCE) or {}).get("Value"):
                raise BenchError("curl STOW-RS: Orthanc's answer %d lists failed instances "
                                 "(%s)" % (i + 1, path))
        return seconds, sum(int(r.split()[1]) for r in results)

    def qido_curl(self, study, work):
        """Reference: a QIDO-RS listing of the study's instances with curl (what a retrieve job
        may ask first, to know what to expect and verify against); returns seconds."""
        out = os.path.join(work, "instances.json")
        seconds, results = self.run_curl(
            ["-H", "Accept: application/dicom+json", "-o", out, "-w", "RESULT %{http_code}\\n",
             self.orthanc.root + "studies/%s/instances" % study.uid], work, "curl-qido")
        with open(out, "rb") as f:
            rows = json.loads(f.read().decode() or "[]")
        if results != ["200"] or len(rows) != study.count:
            raise BenchError("curl QIDO-RS of the study: %r, %d rows, the study has %d"
                             % (results, len(rows), study.count))
        return seconds

    # ---- WADO-RS

    def wado(self, side, study, tag, what="wado"):
        self.orthanc.alive()
        work = self.workdir(tag, what, side)
        if side == "curl":
            peer_cpu = cpu_seconds(self.orthanc.proc.pid)
            seconds = self.wado_curl(study, work, tag)
            r = rates(study, seconds, cpu=self.curl_cpu,
                      peer_cpu=used(peer_cpu, cpu_seconds(self.orthanc.proc.pid)))
        else:
            srv = Bridge(self.cfg, os.path.join(work, "pacsbridge"), self.orthanc)
            try:
                os.sync()
                peer_cpu = cpu_seconds(self.orthanc.proc.pid)
                cpu = cpu_seconds(srv.proc.pid)
                seconds, job = srv.run_job(
                    "/api/retrieve", {"node": NODE, "level": "STUDY", "uids": [study.uid]},
                    study, "PACS Bridge WADO-RS retrieve job")
                cpu = used(cpu, cpu_seconds(srv.proc.pid))
                peer_cpu = used(peer_cpu, cpu_seconds(self.orthanc.proc.pid))
                rss = peak_rss_kb(srv.proc.pid)
                srv.wait_count(study, 0, "right after the job")
                srv.verify(study, self.cfg.verify, "%s WADO-RS %s" % (tag, study.name))
            finally:
                srv.stop()
            r = rates(study, seconds, peak_rss_mb=rss / 1024.0 if rss is not None else None,
                      cpu=cpu, peer_cpu=peer_cpu)
        self.orthanc.alive()
        evict(work)
        return r

    def wado_curl(self, study, work, tag):
        out = os.path.join(work, "study.multipart")
        url = self.orthanc.root + "studies/" + study.uid
        seconds, results = self.run_curl(
            ["-H", "Accept: " + WADO_ACCEPT, "-o", out,
             "-w", "RESULT %{http_code} %{size_download} %{content_type}\\n", url],
            work, "curl-wado")
        if len(results) != 1 or results[0].split()[0] != "200":
            raise BenchError("curl WADO-RS answered %r" % results)
        ctype = results[0].split(" ", 2)[2]
        params = {}
        for item in ctype.split(";")[1:]:
            if "=" in item:
                k, v = item.strip().split("=", 1)
                params[k.lower()] = v.strip('"')
        if not ctype.lower().startswith("multipart/related") or "boundary" not in params:
            raise BenchError("curl WADO-RS: unexpected Content-Type %r" % ctype)
        parts = multipart_parts(out, params["boundary"])
        if len(parts) != study.count:
            raise BenchError("%s curl WADO-RS: %d parts, the %s study has %d"
                             % (tag, len(parts), study.name, study.count))
        with open(out, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            seen = set()
            for start, end in parts:
                seen.add(sop_uid_of(m[start:min(end, start + 64 * KB)]))
            if seen != set(study.source):
                raise BenchError("%s curl WADO-RS: %d of the study's %d instances in the body"
                                 % (tag, len(seen & set(study.source)), study.count))
            for start, end in random.sample(parts, min(self.cfg.verify, len(parts))):
                data = m[start:end]
                sop = sop_uid_of(data[:64 * KB])
                if not same_dataset(data, study.source[sop]):
                    raise BenchError("%s curl WADO-RS: %s differs from %s below the meta header"
                                     % (tag, sop, study.source[sop]))
        return seconds


# --------------------------------------------------------------------------- report

def report(cfg, study, results, big, big_results, header):
    out = common.report_start("PACS Bridge DICOMweb benchmark", header, cfg.rounds)
    p = out.append
    p("%-8s %-16s %9s %15s %8s %7s %5s %6s %8s" % ("transfer", "who", "inst/s", "[min-max]",
                                                   "MB/s", "s", "conn", "cpu s", "peer cpu"))
    for kind in ("stow", "wado"):
        for side in cfg.sides:
            rs = list(results.get((kind, side), {}).values())
            if not rs:
                continue
            ips = [r["inst_per_s"] for r in rs]
            conns = [r["connections"] for r in rs if r.get("connections")]
            cpu = [r["cpu"] for r in rs if r.get("cpu") is not None]
            peer = [r["peer_cpu"] for r in rs if r.get("peer_cpu") is not None]
            p("%-8s %-16s %9.1f %15s %8.1f %7.2f %5s %6s %8s" % (
                "STOW-RS" if kind == "stow" else "WADO-RS", SIDE_NAMES[side], med(ips),
                "[%.0f-%.0f]" % (min(ips), max(ips)), med([r["mb_per_s"] for r in rs]),
                med([r["seconds"] for r in rs]), "%d" % max(conns) if conns else "-",
                "%.2f" % med(cpu) if cpu else "-", "%.2f" % med(peer) if peer else "-"))
    p("(conn: connections curl opened, or the parallel lanes our send job reported in "
      "progress.associations; cpu s: user + system CPU seconds of curl or of our server during "
      "the transfer; peer cpu: Orthanc's)")
    p("")
    p("Ratios us/curl (median of same-round ratios; > 1: we are faster) and targets")
    for kind in ("stow", "wado"):
        ratio = paired_ratio(results, (kind, "us"), (kind, "curl"))
        p(common.target_line("%s us/curl" % ("STOW-RS" if kind == "stow" else "WADO-RS"), ratio,
                             1.0))
    rss_ok = True
    if big is not None:
        p("")
        p("Big instance (%.0f MB, one instance, WADO-RS of its study, measured once)"
          % (big.total_bytes / MB))
        for side in cfg.sides:
            r = big_results.get(side)
            if r:
                p("  %-16s %7.2f s %8.1f MB/s%s" % (
                    SIDE_NAMES[side], r["seconds"], r["mb_per_s"],
                    "   peak RSS %s MB" % fmt(r.get("peak_rss_mb"), "%.1f")
                    if side == "us" else ""))
        r = big_results.get("us")
        if r:
            rss = r.get("peak_rss_mb")
            rss_ok = rss is not None and rss < cfg.rss_limit_mb
            p("%-5s our peak RSS (VmHWM) retrieving it: %s MB < %d MB" % (
                "PASS" if rss_ok else "FAIL", fmt(rss, "%.1f", "unknown"), cfg.rss_limit_mb))
    common.report_finish(out)
    return rss_ok


# --------------------------------------------------------------------------- main

def parse_config(args):
    cfg = common.Config()
    cfg.ct = env_num("BENCH_CT", 500, int, 1)
    cfg.ct_bytes = env_num("BENCH_CT_BYTES", 512 * 512 * 2 + 1024, int, 1024)
    cfg.big_mb = env_num("BENCH_BIG_MB", 200, float, 0)
    cfg.settle = env_num("BENCH_SETTLE", 35, int, 0)
    cfg.rounds = env_num("BENCH_ROUNDS", 3, int, 1)
    cfg.batch = env_num("BENCH_STOW_BATCH", 50, int, 1)
    cfg.parallel = env_num("BENCH_PARALLEL", 2, int, 1)
    cfg.verify = env_num("BENCH_VERIFY", 2, int, 0)
    cfg.rss_limit_mb = env_num("BENCH_RSS_LIMIT_MB", 64, int, 1)
    cfg.job_timeout = env_num("BENCH_JOB_TIMEOUT", 600, int, 1)
    sides = [s.strip().lower() for s in os.environ.get("BENCH_SIDES", "curl,us").split(",")
             if s.strip()]
    if not sides or any(s not in SIDES for s in sides):
        raise SystemExit("dicomweb: BENCH_SIDES must list curl and/or us")
    cfg.sides = [s for s in SIDES if s in sides]
    if not os.path.exists(DICOMWEB_PLUGIN):
        raise SystemExit("dicomweb: %s is missing (Debian: orthanc-dicomweb)" % DICOMWEB_PLUGIN)
    common.parse_common(cfg, args.root, "us" in cfg.sides, "build it or set PACSBRIDGE_BIN")
    return cfg


def node_json(cfg, orthanc):
    return {"name": NODE, "type": "dicomweb", "url": orthanc.root, "storable": True,
            "queryable": True, "stow_batch_instances": cfg.batch,
            "max_associations": cfg.parallel}


def run(cfg, root, tmp):
    global dicomgen
    sys.path.insert(0, os.path.join(root, "tools"))
    import dicomgen as _dicomgen
    dicomgen = _dicomgen
    cfg.node = lambda orthanc: node_json(cfg, orthanc)

    started = time.monotonic()
    log("dicomweb: work directory %s (%s)" % (tmp, fs_type(tmp)))
    t = time.monotonic()
    study = generate(tmp, "CT", count=cfg.ct, size=cfg.ct_bytes)
    big = generate(tmp, "big", count=1, size=int(cfg.big_mb * MB)) if cfg.big_mb > 0 else None
    bodies, boundary = build_stow_bodies(study, os.path.join(tmp, "stow-bodies"), cfg.batch)
    os.sync()
    log("dicomweb: dataset and %d STOW-RS bodies made in %.1f s"
        % (len(bodies), time.monotonic() - t))

    orthanc = OrthancWeb(cfg, os.path.join(tmp, "orthanc"))
    bench = Bench(cfg, tmp, orthanc, bodies, boundary)
    curl_version = common.tool_version(["curl", "--version"])
    header = [
        "study: %d CT instances x %.1f KB (%s, Explicit VR LE), %.1f MB in all"
        % (study.count, study.total_bytes / study.count / KB, geometry(study.files[0]),
           study.total_bytes / MB),
        "peer: Orthanc with its DICOMweb plugin %s (HTTP compression off), one for the run; "
        "rounds: %d, sides alternating (curl first in odd rounds)"
        % (orthanc.plugin_version, cfg.rounds),
        "STOW-RS: %d requests of <= %d instances, %s; curl: -T BODY -H 'Expect:'%s; "
        "our node: stow_batch_instances %d, max_associations %d"
        % (len(bodies), cfg.batch,
           "%d in parallel" % cfg.parallel if cfg.parallel > 1 else "one after another",
           ", --parallel --parallel-max %d --parallel-immediate (one process)" % cfg.parallel
           if cfg.parallel > 1 else " (one process, one kept-alive connection)",
           cfg.batch, cfg.parallel),
        "timed: curl process start to exit; our POST /api/send or /api/retrieve until the job "
        "is answered finished (GET ?wait=)",
        "not timed: generating, building the STOW-RS bodies, loading our archive, deleting the "
        "study from Orthanc before each STOW, starting our server, checks after each transfer",
        "WADO-RS: curl GET studies/{uid}, Accept: %s, one connection, body to one file (not "
        "synced); ours: fresh server, empty archive, stored with the server's defaults (fsync "
        "false unless BENCH_BRIDGE_SERVER_TOML says otherwise), indexed, verified" % WADO_ACCEPT,
    ]
    setup = common.setup_header(cfg, tmp, "storescu")
    setup[1] += "; " + " ".join(curl_version.split()[:2])  # the tools' versions
    header += setup

    results = {}      # (kind, side) -> {round: result}
    big_results = {}  # side -> result
    try:
        if "us" in cfg.sides:
            t = time.monotonic()
            src = Bridge(cfg, os.path.join(tmp, "pacsbridge-source"), orthanc)
            bench.source_bridge = src
            why = src.echo_problem()
            if why:
                raise BenchError("PACS Bridge (%s) cannot reach Orthanc through its DICOMweb "
                                 "node (POST /api/nodes/%s/echo: %s); BENCH_SIDES=curl measures "
                                 "the reference alone" % (cfg.bridge_bin, NODE, why))
            src.load(study, tmp)
            os.sync()
            log("dicomweb: PACS Bridge loaded with %d instances in %.1f s"
                % (study.count, time.monotonic() - t))

        if cfg.warmup:
            for side in cfg.sides:
                r = bench.stow(side, study, "warmup")
                log("warm-up  STOW-RS %-16s %6.2f s" % (SIDE_NAMES[side], r["seconds"]))
        for rnd in range(cfg.rounds):
            for side in rotate(list(cfg.sides), rnd):
                r = bench.stow(side, study, "r%d" % (rnd + 1))
                results.setdefault(("stow", side), {})[rnd] = r
                log("round %d  STOW-RS %-16s %5d inst %6.2f s %8.1f inst/s %7.1f MB/s"
                    % (rnd + 1, SIDE_NAMES[side], study.count, r["seconds"], r["inst_per_s"],
                       r["mb_per_s"]))
        if bench.source_bridge is not None:
            bench.source_bridge.stop()
            bench.source_bridge = None
        orthanc.check(study, "before WADO-RS", 0)  # the last STOW left the study there
        if cfg.settle > 0:
            # Each STOW round deleted a study's files in Orthanc's storage; ext4 without a
            # journal skips every inode freed in the last ~30 s on each file it creates, which
            # charges the side that creates one file per instance for what the set-up deleted.
            log("dicomweb: %d s for the inodes the STOW rounds freed to age (BENCH_SETTLE)" % cfg.settle)
            time.sleep(cfg.settle)
        work = bench.workdir("ref", "qido", "curl")
        qido = med([bench.qido_curl(study, work) for _ in range(3)])
        header.append("reference: QIDO-RS of the study's %d instances with curl (median of 3): "
                      "%.3f s" % (study.count, qido))
        log("reference: QIDO-RS instances of the study %.3f s" % qido)

        if cfg.warmup:
            for side in cfg.sides:
                r = bench.wado(side, study, "warmup")
                log("warm-up  WADO-RS %-16s %6.2f s" % (SIDE_NAMES[side], r["seconds"]))
        for rnd in range(cfg.rounds):
            for side in rotate(list(cfg.sides), rnd):
                r = bench.wado(side, study, "r%d" % (rnd + 1))
                results.setdefault(("wado", side), {})[rnd] = r
                log("round %d  WADO-RS %-16s %5d inst %6.2f s %8.1f inst/s %7.1f MB/s"
                    % (rnd + 1, SIDE_NAMES[side], study.count, r["seconds"], r["inst_per_s"],
                       r["mb_per_s"]))

        if big is not None:
            t = time.monotonic()
            orthanc.upload(big.files[0])
            orthanc.check(big, "big instance upload", 0)
            os.sync()
            log("dicomweb: big instance (%.0f MB) loaded into Orthanc in %.1f s"
                % (big.total_bytes / MB, time.monotonic() - t))
            for side in cfg.sides:
                r = bench.wado(side, big, "big", what="big")
                big_results[side] = r
                log("big      WADO-RS %-16s %6.2f s %7.1f MB/s%s"
                    % (SIDE_NAMES[side], r["seconds"], r["mb_per_s"],
                       "  peak RSS %s MB" % fmt(r.get("peak_rss_mb"), "%.1f")
                       if side == "us" else ""))
    finally:
        if bench.source_bridge is not None:
            bench.source_bridge.stop()

    header.append("total run time %.0f s" % (time.monotonic() - started))
    rss_ok = report(cfg, study, results, big, big_results, header)
    common.write_json(cfg, {
        "config": {"rounds": cfg.rounds, "sides": cfg.sides, "stow_batch": cfg.batch,
                   "parallel": cfg.parallel, "instances": study.count,
                   "bytes": study.total_bytes, "big_bytes": big.total_bytes if big else None,
                   "rss_limit_mb": cfg.rss_limit_mb,
                   "bridge_bin": cfg.bridge_bin if cfg.bridge else None},
        "results": [dict(r, transfer=kind, side=side, round=rnd + 1)
                    for (kind, side), by_round in results.items()
                    for rnd, r in by_round.items()],
        "big": [dict(r, side=side) for side, r in big_results.items()],
    })
    if not rss_ok:
        log("dicomweb: FAILED: peak RSS at or above %d MB while retrieving the big instance"
            % cfg.rss_limit_mb)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(common.main(
        "PACS Bridge DICOMweb benchmark (STOW-RS and WADO-RS with Orthanc: curl vs our jobs)",
        parse_config, run, "pacsbridge-bench-dicomweb.", epilog=__doc__))
