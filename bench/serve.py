#!/usr/bin/env python3
"""Serving benchmark: PACS Bridge serving its archive as a PACS, next to Orthanc (with its
DICOMweb plugin) serving the same data, asked by the same client tools in the same run.
Python 3 standard library only.

    bench/serve.sh                    # 100,000-instance archives, 5 rounds (~8-10 min)
    bench/serve.sh --quick            # 10,000 instances, smaller images, 2 rounds (~3 min)
    BENCH_ARCHIVE=30000 BENCH_ROUNDS=3 bench/serve.sh
    BENCH_ROWS=find,meta bench/serve.sh

The two servers, each started once for the run with its own empty storage and then filled
through its DICOM port by `storescu` (not timed; both at once, BENCH_LOAD_ASSOCS associations
each):
- PACS Bridge: `pacsbridge serve` (PACSBRIDGE_BIN) with one receiver, AE PACSBRIDGE, with
  `query_retrieve = true`; its DICOMweb server at /dicom-web on its HTTP port, asked with an
  API token (`Authorization: Bearer`, made through POST /api/tokens before the clock starts).
- Orthanc (Debian orthanc + orthanc-dicomweb): DicomModalities FINDSCU and GETSCU (Orthanc
  answers C-FIND and C-GET only to listed AE titles), the DICOMweb plugin with "DicomWeb":
  {"Enable": true, "Root": "/dicom-web/", "StudiesMetadata": "Full", "SeriesMetadata": "Full"}
  (the plugin's defaults: metadata read from every instance's file), no authentication, HTTP
  compression off, storage cache off, everything else its defaults (SyncStorageArea on unless
  BENCH_ORTHANC_SYNC=0). For rows 1 to 4 it runs with glibc's allocator made steady (as the
  retrieve benchmark's PACS, common.PEER_MALLOC: otherwise a C-GET sometimes takes 5x longer at
  random); for STOW-RS it is restarted on the same storage with glibc's defaults (the steady
  allocator slows its STOW-RS ingest ~1.4x, dicomweb benchmark).

The archive (tools/dicomgen.py, Explicit VR Little Endian, CT Image Storage), the same in both:
- filler: BENCH_ARCHIVE minus the two studies below, small CT-like instances of ~BENCH_BULK_BYTES
  (64 x 64 pixels by default) in studies of BENCH_BULK_SERIES series x BENCH_BULK_PER_SERIES
  instances, BENCH_STUDIES_PER_PATIENT studies per patient, with study dates spread over as many
  days as make about BENCH_FIND_MATCHES studies per day;
- the "get" study: BENCH_GET instances of ~BENCH_CT_BYTES (512 x 512 x 16 bits by default) in
  BENCH_GET_SERIES series;
- the "meta" study: BENCH_META instances of ~BENCH_CT_BYTES in BENCH_META_SERIES series;
- STOW-RS sets (sent during the run, not loaded): one study of BENCH_STOW instances of
  ~BENCH_CT_BYTES per round (and one for the warm-up), each with UIDs of its own.
Generated files are cached under BENCH_DATA_DIR (default BENCH_TMPDIR/pacsbridge-bench-serve-data),
one directory per part named by its parameters: a rerun with the same parameters skips the
generation. The servers are filled by C-STORE in every run (a filled data directory is not
reused: the binary under test may have changed its index).

After filling, the run waits until both servers are idle (each under 5 % of a core for 3 s in
a row, at most BENCH_IDLE_TIMEOUT s: our background writer of WADO-RS metadata turns every newly
indexed instance into DICOM JSON, Orthanc may still be writing back), and before every measured
run until both are under 10 % of a core for 0.2 s (at most BENCH_IDLE_TIMEOUT_OP s). The binary
under test is copied into the work directory at the start and run from there, so a rebuild
during the run changes nothing.

Rows, each side once per round in an order that alternates (Orthanc first in odd rounds),
after one unrecorded warm-up of each side (BENCH_WARMUP); time = client process start to exit:
- 1a find-study: `findscu -S`, QueryRetrieveLevel STUDY, StudyDate = the filler's first day
  (~BENCH_FIND_MATCHES matches), asking PatientName, PatientID, PatientBirthDate, PatientSex,
  StudyInstanceUID, StudyTime, AccessionNumber, StudyID, StudyDescription, ModalitiesInStudy,
  NumberOfStudyRelatedSeries, NumberOfStudyRelatedInstances; both must answer every match.
- 1b find-image: `findscu -S`, IMAGE level, StudyInstanceUID + SeriesInstanceUID of the meta
  study's first series, asking SOPInstanceUID, SOPClassUID, InstanceNumber.
- 2 get: `getscu -S +B -pdu BENCH_BASELINE_PDU` of the get study at STUDY level into a fresh
  directory; every instance must arrive.
- 3 wado: curl GET /dicom-web/studies/{meta}/series/{first series} with Accept:
  multipart/related; type="application/dicom"; transfer-syntax=* (each instance as stored:
  Explicit VR Little Endian for both, no conversion), body to a file; every instance must be in
  it, BENCH_VERIFY of them byte-identical to the source below the meta header.
- 4a meta-study: curl GET /dicom-web/studies/{meta}/metadata (Accept: application/dicom+json);
  the answer must list every instance of the study.
- 4b meta-series: the same for /studies/{meta}/series/{first series}/metadata.
- 5 stow: curl POST /dicom-web/studies of the round's set, multipart/related;
  type="application/dicom" bodies of BENCH_STOW_BATCH instances each (built before the run),
  `-H "Expect:"`, BENCH_STOW_PARALLEL requests at a time (curl --parallel) in one process; every
  answer must be 200 without a FailedSOPSequence, and the server must then hold the whole set.
A route of ours that answers 404 or 405 (not there yet) makes its row `n/a (HTTP 404)`;
Orthanc's side is still measured. For STOW-RS this is asked first with an empty multipart body
(nothing to store), since a size limit may answer 413 to a large body whether the route exists
or not. A side that fails (wrong answer, tool error) is `FAILED` for that row; the other side
and the other rows still run, and the exit status is 1.

Ratios: Orthanc's time / ours, the median of same-round pairs (> 1: we are faster). Targets,
PASS/MISS (they never change the exit status): 1a and 1b > 1 (faster than Orthanc), 2 and 3
>= 1.0, 4a >= 5.0, 5 >= 2.0; 4b has none.

| variable | default (--quick) | meaning |
| --- | --- | --- |
| BENCH_ARCHIVE | 100000 (10000) | instances each server holds before the rows (filler + get + meta) |
| BENCH_BULK_BYTES | 9000 | approximate size of a filler instance |
| BENCH_BULK_SERIES, BENCH_BULK_PER_SERIES | 2, 50 | filler studies: series, instances per series |
| BENCH_STUDIES_PER_PATIENT | 4 | filler studies per patient |
| BENCH_FIND_MATCHES | 100 | filler studies per study date (the STUDY-level query's matches) |
| BENCH_CT_BYTES | 525312 (132096) | approximate size of a get, meta or STOW instance |
| BENCH_GET, BENCH_GET_SERIES | 500, 2 | the C-GET study |
| BENCH_META, BENCH_META_SERIES | 2000, 4 | the metadata study (its first series: rows 1b, 3, 4b) |
| BENCH_STOW, BENCH_STOW_BATCH, BENCH_STOW_PARALLEL | 500, 50, 2 | STOW-RS: instances, per request, requests at a time |
| BENCH_ROUNDS | 5 (2) | rounds of rows 2 to 5 |
| BENCH_FIND_ROUNDS | 15 (5) | rounds of rows 1a and 1b |
| BENCH_ROWS | find,get,wado,meta,stow | rows to measure |
| BENCH_WARMUP | 1 | one unrecorded run of each side per row first |
| BENCH_VERIFY | 2 | WADO-RS parts byte-compared per measurement |
| BENCH_LOAD_ASSOCS | 2 | storescu associations per server while filling |
| BENCH_ORTHANC_SYNC | 1 | Orthanc's SyncStorageArea (its default: on) |
| BENCH_DATA_DIR | BENCH_TMPDIR/pacsbridge-bench-serve-data | cache of generated data sets |
| PACSBRIDGE_BIN | build/release/pacsbridge (else build/pacsbridge) | binary under test |
| BENCH_BRIDGE_SERVER_TOML | none | extra lines for PACS Bridge's [server] table, e.g. "fsync = true" |
| BENCH_BASELINE_PDU | 131072 | max PDU of Orthanc and getscu |
| BENCH_TMPDIR | $TMPDIR or /var/tmp | work directory (servers' storage, outputs, logs) |
| BENCH_KEEP | 0 | 1: keep the work directory |
| BENCH_JSON | none | also write every measurement to this JSON file |
| BENCH_LOAD_TIMEOUT | 3600 | seconds filling the servers may take |
| BENCH_IDLE_TIMEOUT | 900 | seconds to wait after filling for both servers to be idle |
| BENCH_IDLE_TIMEOUT_OP | 30 | the same before each measured run |
| BENCH_OP_TIMEOUT | 600 | seconds one measured operation may take |

Exit status: 0 when every row completed or is n/a; 1 when something broke (a tool failed, an
answer was wrong or incomplete, a server died); 2 on bad usage; 130 when interrupted. Progress
goes to stderr, the report to stdout.
"""

import datetime
import json
import math
import mmap
import os
import random
import shutil
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import common  # bench/common.py: what the benchmarks share
from common import (PEER_MALLOC, BenchError, KB, LIVE, MB, OrthancPeer, children_cpu_seconds,
                    count_files, cpu_seconds, env_num, evict, fmt, free_port, fs_type, http_get,
                    http_json, listening, log, med, note, rotate, run_timed, spawn, start_bridge,
                    stop, tail, used)
# The DICOMweb benchmark's multipart helpers (importing it names its messages "dicomweb":
# named back below).
from dicomweb import build_stow_bodies, multipart_parts, sop_uid_of

common.PROG = "serve"

DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
JSON_ACCEPT = "application/dicom+json"
FAILED_SOP_SEQUENCE = "00081198"
SIDES = ("orthanc", "us")
SIDE_NAMES = {"orthanc": "Orthanc", "us": "PACS Bridge"}
ROW_GROUPS = ("find", "get", "wado", "meta", "stow")
ROWS = [  # (id, group, label, target ratio or None)
    ("find-study", "find", "1a", 1.0),
    ("find-image", "find", "1b", 1.0),
    ("get", "get", "2", 1.0),
    ("wado", "wado", "3", 1.0),
    ("meta-study", "meta", "4a", 5.0),
    ("meta-series", "meta", "4b", None),
    ("stow", "stow", "5", 2.0),
]
LOAD_DIRS = 8  # the filler is split into this many directories (whole studies each)
STUDY_KEYS = ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID",
              "StudyTime", "AccessionNumber", "StudyID", "StudyDescription", "ModalitiesInStudy",
              "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"]
IMAGE_KEYS = ["SOPInstanceUID", "SOPClassUID", "InstanceNumber"]

dicomgen = None  # tools/dicomgen.py, imported in run()


class NotThere(Exception):
    """Our route answered 404 or 405: the row is n/a."""

    def __init__(self, code):
        super().__init__("HTTP %s" % code)
        self.code = code


# --------------------------------------------------------------------------- dataset

def cached_part(cfg, key, build):
    """(directory, manifest, was cached): the part `key` under BENCH_DATA_DIR, built by
    build(directory) -> manifest when it is not there yet (into a temporary name, renamed
    once complete, so an interrupted generation is never taken for a cached one)."""
    final = os.path.join(cfg.data_dir, key)
    manifest_path = os.path.join(final, "manifest.json")
    if os.path.exists(manifest_path):
        with open(manifest_path) as f:
            return final, json.load(f), True
    os.makedirs(cfg.data_dir, exist_ok=True)
    for name in os.listdir(cfg.data_dir):  # what an interrupted run left of this part
        if name.startswith(key + ".partial-") or name == key:
            shutil.rmtree(os.path.join(cfg.data_dir, name), ignore_errors=True)
    tmp = "%s.partial-%d" % (final, os.getpid())
    os.makedirs(tmp)
    try:
        manifest = build(tmp)
        manifest["key"] = key
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final, manifest, False


def build_filler(cfg, directory):
    uid = dicomgen.make_uids()
    per_study = cfg.bulk_series * cfg.bulk_per_series
    nstudies = int(math.ceil(cfg.filler / per_study))
    ndates = max(1, int(round(nstudies / float(cfg.find_matches))))
    base = datetime.date(2024, 1, 1)
    dirs = ["d%02d" % i for i in range(LOAD_DIRS)]
    for d in dirs:
        os.mkdir(os.path.join(directory, d))
    index = 0
    for j in range(nstudies):
        date = (base + datetime.timedelta(days=j % ndates)).strftime("%Y%m%d")
        patient = j // cfg.studies_per_patient
        sub = os.path.join(directory, dirs[j % LOAD_DIRS])
        for k in range(min(per_study, cfg.filler - index)):
            se = k // cfg.bulk_per_series
            index += 1
            dicomgen.write_instance(
                os.path.join(sub, "%07d.dcm" % index), sop_uid=uid("instance", index),
                study_uid=uid("study", j + 1), series_uid=uid("series", j + 1, se + 1),
                patient_name="BENCH^PATIENT%05d" % patient, patient_id="BSP%05d" % patient,
                patient_birth_date="19%02d0%d15" % (40 + patient % 50, 1 + patient % 9),
                patient_sex="FM"[patient % 2], size=cfg.bulk_bytes, modality="CT",
                instance_number=k % cfg.bulk_per_series + 1, series_number=se + 1,
                study_id=str(j + 1), accession_number="BSA%07d" % (j + 1), study_date=date,
                study_time="%02d%02d00" % (8 + j % 10, j % 60),
                study_description="CT CHEST %d" % (j % 7),
                series_description="AXIAL %d" % (se + 1))
    first_day = base.strftime("%Y%m%d")
    return {"dirs": dirs, "count": index, "studies": nstudies, "days": ndates,
            "query_date": first_day,
            "query_matches": len([j for j in range(nstudies) if j % ndates == 0])}


def build_study(cfg, directory, name, count, nseries, date):
    """One study of `count` CT instances of ~BENCH_CT_BYTES in `nseries` series (filled one after
    the other). Manifest: {"study", "series": [{"uid", "sops": {sop: file}}]}."""
    uid = dicomgen.make_uids()
    study = uid("study", 1)
    os.mkdir(os.path.join(directory, "files"))
    per_series = int(math.ceil(count / float(nseries)))
    series = []
    for i in range(count):
        se, k = divmod(i, per_series)
        if se == len(series):
            series.append({"uid": uid("series", 1, se + 1), "sops": {}})
        sop = uid("instance", i + 1)
        rel = os.path.join("files", "%06d.dcm" % (i + 1))  # beside manifest.json, which
        # storescu +sd must not see
        dicomgen.write_instance(
            os.path.join(directory, rel), sop_uid=sop, study_uid=study,
            series_uid=series[se]["uid"], patient_name="BENCH^%s" % name.upper(),
            patient_id="BS-%s" % name.upper(), size=cfg.ct_bytes, modality="CT",
            instance_number=k + 1, series_number=se + 1, study_id="1",
            accession_number="BS-%s" % name.upper()[:12], study_date=date,
            study_description="CT ABDOMEN %s" % name.upper(),
            series_description="AXIAL %d" % (se + 1))
        series[se]["sops"][sop] = rel
    return {"study": study, "series": series, "count": count}


class Study:
    """A generated study: UIDs, files and sizes."""

    def __init__(self, name, directory, manifest):
        self.name, self.dir = name, os.path.join(directory, "files")
        self.uid = manifest["study"]
        self.series = [s["uid"] for s in manifest["series"]]
        self.sources = {}          # SOP Instance UID -> file
        self.series_sops = []      # [[SOP Instance UID]] per series
        for s in manifest["series"]:
            self.series_sops.append(sorted(s["sops"]))
            for sop, rel in s["sops"].items():
                self.sources[sop] = os.path.join(directory, rel)
        self.files = sorted(self.sources.values())
        self.count = len(self.files)
        self.total_bytes = sum(os.path.getsize(f) for f in self.files)

    def series_bytes(self, i):
        return sum(os.path.getsize(self.sources[s]) for s in self.series_sops[i])


def make_data(cfg):
    """The filler, the get and meta studies and the STOW-RS sets, from the cache or made."""
    t = time.monotonic()
    made = []

    def part(key, build):
        directory, manifest, cached = cached_part(cfg, key, build)
        if not cached:
            made.append(key)
        return directory, manifest

    filler_dir, filler = part(
        "filler-n%d-b%d-%dx%d-p%d-m%d" % (cfg.filler, cfg.bulk_bytes, cfg.bulk_series,
                                          cfg.bulk_per_series, cfg.studies_per_patient,
                                          cfg.find_matches),
        lambda d: build_filler(cfg, d))
    get = Study("get", *part("get-n%d-s%d-b%d" % (cfg.get, cfg.get_series, cfg.ct_bytes),
                             lambda d: build_study(cfg, d, "get", cfg.get, cfg.get_series,
                                                   "20230301")))
    meta = Study("meta", *part("meta-n%d-s%d-b%d" % (cfg.meta, cfg.meta_series, cfg.ct_bytes),
                               lambda d: build_study(cfg, d, "meta", cfg.meta, cfg.meta_series,
                                                     "20230302")))
    stow_sets = []
    if "stow" in cfg.groups:
        for k in range(cfg.rounds + (1 if cfg.warmup else 0)):
            stow_sets.append(Study("stow%d" % k, *part(
                "stow%d-n%d-b%d" % (k, cfg.stow, cfg.ct_bytes),
                lambda d, k=k: build_study(cfg, d, "stow%d" % k, cfg.stow, 1, "20230401"))))
    log("serve: data sets %s in %.1f s (cache %s)"
        % ("made (%s)" % ", ".join(made) if made else "all cached", time.monotonic() - t,
           cfg.data_dir))
    filler["dirs"] = [os.path.join(filler_dir, d) for d in filler["dirs"]]
    return filler, get, meta, stow_sets


# --------------------------------------------------------------------------- servers

class Orthanc(OrthancPeer):
    """Orthanc with its DICOMweb plugin, one storage for the run."""

    def __init__(self, cfg, work):
        os.makedirs(work)
        self.cfg, self.work = cfg, work
        self.launch(cfg, work, "bench-serve-orthanc", modalities={
            "findscu": ["FINDSCU", "127.0.0.1", 1],
            "getscu": ["GETSCU", "127.0.0.1", 1],
        }, extra={
            "Plugins": [DICOMWEB_PLUGIN],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "StudiesMetadata": "Full",
                         "SeriesMetadata": "Full"},
            "HttpCompressionEnabled": False,
            "SyncStorageArea": bool(cfg.orthanc_sync),
        }, env={"GLIBC_TUNABLES": PEER_MALLOC})
        self.config_path = os.path.join(work, "orthanc.json")
        self.malloc = "steady"
        self.wait_ready()
        status, body = http_get(self.url("/plugins/dicom-web"))
        if status != 200:
            raise BenchError("Orthanc has no DICOMweb plugin (GET /plugins/dicom-web: %d; "
                             "Debian: orthanc-dicomweb):\n%s" % (status, tail(self.log_path)))
        self.plugin_version = json.loads(body).get("Version", "?")
        self.root = self.url("/dicom-web/")

    def wait_ready(self):
        deadline = time.monotonic() + self.cfg.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise BenchError("Orthanc exited (%s) while starting:\n%s"
                                 % (self.proc.returncode, tail(self.log_path)))
            if self.ready():
                return
            if time.monotonic() > deadline:
                raise BenchError("Orthanc not ready after %d s:\n%s"
                                 % (self.cfg.start_timeout, tail(self.log_path)))
            time.sleep(0.05)

    def restart_default_malloc(self):
        """Stopped and started again on the same storage, with glibc's default allocator."""
        rc, killed = stop(self.proc, self.cfg.stop_timeout)
        if killed or rc != 0:
            note("Orthanc exited with %s%s when restarted for STOW-RS"
                 % (rc, " (killed)" if killed else ""))
        self.proc = spawn(["Orthanc", self.config_path], env=self.cfg.env_nodelay,
                          log_path=self.log_path, cwd=self.work)
        self.malloc = "default"
        self.wait_ready()

    def alive(self):
        if self.proc.poll() is not None:
            raise BenchError("Orthanc died (%s):\n%s" % (self.proc.returncode,
                                                         tail(self.log_path)))

    def study_count(self, uid):
        """Instances Orthanc holds of the study (0 when it has none)."""
        req_status, body = _post_raw(self.url("/tools/lookup"), uid.encode())
        if req_status != 200:
            raise BenchError("Orthanc POST /tools/lookup answered %s" % req_status)
        ids = [x["ID"] for x in json.loads(body.decode()) if x.get("Type") == "Study"]
        if not ids:
            return 0
        status, stats = http_json("GET", self.url("/studies/%s/statistics" % ids[0]), timeout=60)
        if status != 200 or not isinstance(stats, dict):
            raise BenchError("Orthanc GET /studies/%s/statistics answered %s" % (ids[0], status))
        return int(stats.get("CountInstances", 0))


def _post_raw(url, data, timeout=60):
    """(status, body) of a POST of raw bytes (Orthanc's /tools/lookup takes a bare UID)."""
    req = urllib.request.Request(url, data=data, method="POST")
    try:
        with common._OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


class Bridge:
    """pacsbridge serve with a receiver that has Query/Retrieve on, one data directory for the
    run, and an API token for curl."""

    ae = "PACSBRIDGE"

    def __init__(self, cfg, work):
        self.cfg = cfg
        os.makedirs(work)
        self.http_port = free_port()
        self.port = free_port()
        self.proc, self.log_path = start_bridge(cfg, work, self.http_port, self.port,
                                                receiver_toml="query_retrieve = true\n")
        common.wait_bridge_ready(cfg, self.proc, self.log_path, self.http_port, self.port)
        status, answer = http_json("POST", self.url("/api/tokens"), {"name": "bench-serve"})
        if status != 201 or not isinstance(answer, dict) or not answer.get("token"):
            raise BenchError("PACS Bridge POST /api/tokens answered %s: %r" % (status, answer))
        self.auth = "Authorization: Bearer " + answer["token"]
        self.root = self.url("/dicom-web/")

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def alive(self):
        if self.proc.poll() is not None:
            raise BenchError("PACS Bridge died (%s):\n%s" % (self.proc.returncode,
                                                             tail(self.log_path)))

    def total_count(self):
        """Instances in our index: the sum of instance_count over GET /api/studies, paged."""
        total, offset, limit = 0, 0, 1000
        while True:
            status, body = http_json("GET", self.url("/api/studies?limit=%d&offset=%d"
                                                     % (limit, offset)), timeout=120)
            if status != 200 or not isinstance(body, list):
                raise BenchError("PACS Bridge GET /api/studies answered %s: %.300r"
                                 % (status, body))
            total += sum(int(s.get("instance_count", 0)) for s in body)
            if len(body) < limit:
                return total
            offset += limit

    def study_count(self, uid):
        status, body = http_json("GET", self.url("/api/studies?StudyInstanceUID=%s"
                                                 % urllib.parse.quote(uid)), timeout=60)
        if status != 200 or not isinstance(body, list):
            raise BenchError("PACS Bridge GET /api/studies answered %s: %.300r" % (status, body))
        return sum(int(s.get("instance_count", 0)) for s in body)

    def stop(self):
        rc, killed = stop(self.proc, self.cfg.stop_timeout)
        if killed:
            note("PACS Bridge did not stop within %d s of SIGTERM (killed)"
                 % self.cfg.stop_timeout)
        elif rc != 0:
            note("PACS Bridge exited with status %s after SIGTERM" % rc)


def fill(cfg, tmp, servers, dirs, expected):
    """storescu of every directory to each server (BENCH_LOAD_ASSOCS associations per server,
    all servers at once); then waits until each server's index holds `expected` instances."""
    t = time.monotonic()
    procs = []
    for name, srv in servers.items():
        for i in range(cfg.load_assocs):
            mine = dirs[i::cfg.load_assocs]
            if not mine:
                continue
            log_path = os.path.join(tmp, "load-%s-%d.log" % (name, i))
            proc = spawn(["storescu", "-aet", "LOADER", "-aec", srv.ae, "-xe", "+sd",
                          "127.0.0.1", str(srv.port)] + mine, env=cfg.env_nodelay,
                         log_path=log_path, cwd=tmp)
            procs.append((name, proc, log_path))
    deadline = time.monotonic() + cfg.load_timeout
    pending = {name: [p for n, p, _ in procs if n == name] for name in servers}
    took = {}
    while pending:
        for name in list(pending):
            for proc in list(pending[name]):
                rc = proc.poll()
                if rc is None:
                    continue
                LIVE.pop(proc.pid, None)
                pending[name].remove(proc)
                if rc != 0:
                    log_path = [l for n, p, l in procs if p is proc][0]
                    raise BenchError("storescu to %s exited with %s:\n%s"
                                     % (SIDE_NAMES[name], rc, tail(log_path)))
            if pending[name]:
                continue
            # every storescu to this server ended: it is filled once its index holds them all
            srv = servers[name]
            n = srv.count() if name == "orthanc" else srv.total_count()
            if n == expected:
                took[name] = time.monotonic() - t
                del pending[name]
            elif time.monotonic() > deadline:
                raise BenchError("%s holds %d instances after filling, %d were sent"
                                 % (SIDE_NAMES[name], n, expected))
        if time.monotonic() > deadline:
            raise BenchError("filling the servers took more than %d s (BENCH_LOAD_TIMEOUT)"
                             % cfg.load_timeout)
        time.sleep(0.2)
    return took


# --------------------------------------------------------------------------- measuring

def wait_idle(servers, window, limit, calm, timeout):
    """Waits until every server used at most `limit` CPU seconds in each of `calm` consecutive
    windows of `window` seconds (e.g. our background writer of WADO-RS metadata, which turns every
    newly indexed instance into DICOM JSON, has caught up), at most `timeout` seconds. Returns
    (seconds waited, idle or not)."""
    t0 = time.monotonic()
    streak = 0
    while True:
        before = {n: cpu_seconds(s.proc.pid) for n, s in servers.items()}
        time.sleep(window)
        busy = [used(before[n], cpu_seconds(s.proc.pid)) for n, s in servers.items()]
        streak = streak + 1 if all(b is not None and b <= limit for b in busy) else 0
        waited = time.monotonic() - t0
        if streak >= calm:
            return waited, True
        if waited > timeout:
            return waited, False


class Bench:
    def __init__(self, cfg, tmp, servers, filler, get, meta):
        self.cfg, self.tmp, self.servers = cfg, tmp, servers
        self.filler, self.get, self.meta = filler, get, meta
        self.seq = 0
        self.tool_cpu = None

    def workdir(self, tag, row, side):
        self.seq += 1
        work = os.path.join(self.tmp, "runs", "%04d-%s-%s-%s" % (self.seq, tag, row, side))
        os.makedirs(work)
        return work

    def measure(self, row, side, tag, stow_set=None):
        srv = self.servers[side]
        srv.alive()
        work = self.workdir(tag, row, side)
        waited, idle = wait_idle(self.servers, 0.2, 0.02, 1, self.cfg.idle_timeout_op)
        if not idle:
            note("a server was still busy %.0f s after the previous measurement (measured "
                 "anyway)" % waited, key="busy")
        before = cpu_seconds(srv.proc.pid)
        fn = {"find-study": self.find_study, "find-image": self.find_image, "get": self.getscu,
              "wado": self.wado, "meta-study": self.meta_study, "meta-series": self.meta_series,
              "stow": self.stow}[row]
        r = fn(side, srv, work) if row != "stow" else fn(side, srv, work, stow_set)
        r["server_cpu"] = used(before, cpu_seconds(srv.proc.pid))
        r["client_cpu"] = self.tool_cpu
        srv.alive()
        if row in ("get", "wado", "stow"):
            evict(work)
        return r

    # ---- tools

    def run_tool(self, cmd, work, name, env=None):
        """(exit status, seconds, log path) of cmd, timed from its start to its exit."""
        log_path = os.path.join(work, name + ".log")
        if os.path.exists(log_path):
            os.remove(log_path)
        cpu = children_cpu_seconds()
        rc, seconds = run_timed(cmd, env=env or self.cfg.env_nodelay, log_path=log_path,
                                cwd=work, timeout=self.cfg.op_timeout)
        self.tool_cpu = children_cpu_seconds() - cpu
        return rc, seconds, log_path

    def findscu(self, srv, work, keys, expected, what):
        out = os.path.join(work, "responses.xml")
        cmd = ["findscu", "-S", "-aet", "FINDSCU", "-aec", srv.ae, "-Xs", out]
        for k in keys:
            cmd += ["-k", k]
        cmd += ["127.0.0.1", str(srv.port)]
        rc, seconds, log_path = self.run_tool(cmd, work, "findscu")
        if rc != 0:
            raise BenchError("findscu (%s) exited with %s:\n%s" % (what, rc, tail(log_path)))
        try:
            with open(out, "rb") as f:
                text = f.read()
        except OSError:
            text = b""
        n = text.count(b"<data-set")
        if n != expected:
            raise BenchError("findscu (%s) got %d answers, %d expected:\n%s"
                             % (what, n, expected, tail(log_path)))
        return {"seconds": seconds, "matches": n}

    def find_study(self, side, srv, work):
        keys = ["QueryRetrieveLevel=STUDY", "StudyDate=%s" % self.filler["query_date"]]
        keys += STUDY_KEYS
        return self.findscu(srv, work, keys, self.filler["query_matches"],
                            "STUDY level at %s" % SIDE_NAMES[side])

    def find_image(self, side, srv, work):
        keys = ["QueryRetrieveLevel=IMAGE", "StudyInstanceUID=%s" % self.meta.uid,
                "SeriesInstanceUID=%s" % self.meta.series[0]] + IMAGE_KEYS
        return self.findscu(srv, work, keys, len(self.meta.series_sops[0]),
                            "IMAGE level at %s" % SIDE_NAMES[side])

    def getscu(self, side, srv, work):
        st = self.get
        out = os.path.join(work, "out")
        os.mkdir(out)
        cmd = ["getscu", "-S", "+B", "-pdu", str(self.cfg.baseline_pdu), "-aet", "GETSCU",
               "-aec", srv.ae, "-od", out, "-k", "QueryRetrieveLevel=STUDY",
               "-k", "StudyInstanceUID=%s" % st.uid, "127.0.0.1", str(srv.port)]
        rc, seconds, log_path = self.run_tool(cmd, work, "getscu")
        if rc != 0:
            raise BenchError("getscu from %s exited with %s:\n%s" % (SIDE_NAMES[side], rc,
                                                                     tail(log_path)))
        n = count_files(out)
        if n != st.count:
            raise BenchError("getscu from %s wrote %d files, the study has %d:\n%s"
                             % (SIDE_NAMES[side], n, st.count, tail(log_path)))
        return {"seconds": seconds, "instances": st.count, "bytes": st.total_bytes}

    def curl(self, side, srv, work, name, args):
        """curl with args (and our token for our server); (seconds, [write-out lines])."""
        cmd = ["curl", "-q", "--no-progress-meter", "--noproxy", "*"]
        if side == "us":
            cmd += ["-H", srv.auth]
        rc, seconds, log_path = self.run_tool(cmd + args, work, name, env=self.cfg.env_plain)
        with open(log_path, "rb") as f:
            text = f.read().decode(errors="replace")
        if rc != 0:
            raise BenchError("curl (%s, %s) exited with %s:\n%s" % (name, SIDE_NAMES[side], rc,
                                                                  tail(log_path)))
        return seconds, [l[len("RESULT "):] for l in text.splitlines()
                         if l.startswith("RESULT ")]

    @staticmethod
    def check_status(side, what, code, body_path=None):
        if side == "us" and code in ("404", "405"):
            raise NotThere(code)
        if code != "200":
            detail = ""
            if body_path and os.path.exists(body_path):
                with open(body_path, "rb") as f:
                    detail = f.read(500).decode(errors="replace")
            raise BenchError("%s at %s answered HTTP %s %s" % (what, SIDE_NAMES[side], code,
                                                                detail))

    def wado(self, side, srv, work):
        st = self.meta
        sops = st.series_sops[0]
        out = os.path.join(work, "series.multipart")
        url = srv.root + "studies/%s/series/%s" % (st.uid, st.series[0])
        seconds, results = self.curl(side, srv, work, "curl-wado", [
            "-H", "Accept: " + WADO_ACCEPT, "-o", out,
            "-w", "RESULT %{http_code} %{size_download} %{content_type}\\n", url])
        if len(results) != 1:
            raise BenchError("curl WADO-RS at %s: no result line" % SIDE_NAMES[side])
        code, size, ctype = (results[0].split(" ", 2) + ["", ""])[:3]
        self.check_status(side, "WADO-RS of the series", code, out)
        params = {}
        for item in ctype.split(";")[1:]:
            if "=" in item:
                k, v = item.strip().split("=", 1)
                params[k.lower()] = v.strip('"')
        if not ctype.lower().startswith("multipart/related") or "boundary" not in params:
            raise BenchError("WADO-RS at %s: unexpected Content-Type %r" % (SIDE_NAMES[side],
                                                                          ctype))
        parts = multipart_parts(out, params["boundary"])
        if len(parts) != len(sops):
            raise BenchError("WADO-RS at %s: %d parts, the series has %d"
                             % (SIDE_NAMES[side], len(parts), len(sops)))
        with open(out, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            seen = {sop_uid_of(m[s:min(e, s + 64 * KB)]) for s, e in parts}
            if seen != set(sops):
                raise BenchError("WADO-RS at %s: %d of the series' %d instances in the body"
                                 % (SIDE_NAMES[side], len(seen & set(sops)), len(sops)))
            for s, e in random.sample(parts, min(self.cfg.verify, len(parts))):
                data = m[s:e]
                sop = sop_uid_of(data[:64 * KB])
                if dicomgen.dataset_bytes(data) != dicomgen.dataset_bytes(st.sources[sop]):
                    raise BenchError("WADO-RS at %s: %s differs from %s below the meta header"
                                     % (SIDE_NAMES[side], sop, st.sources[sop]))
        os.remove(out)  # one file: cheap to delete, and 250 MB each time
        return {"seconds": seconds, "instances": len(sops), "bytes": st.series_bytes(0),
                "answer_bytes": int(size)}

    def metadata(self, side, srv, work, path, sops, what):
        out = os.path.join(work, "metadata.json")
        seconds, results = self.curl(side, srv, work, "curl-metadata", [
            "-H", "Accept: " + JSON_ACCEPT, "-o", out,
            "-w", "RESULT %{http_code} %{size_download}\\n", srv.root + path])
        if len(results) != 1:
            raise BenchError("curl metadata at %s: no result line" % SIDE_NAMES[side])
        code, size = results[0].split()[:2]
        self.check_status(side, what, code, out)
        try:
            with open(out, "rb") as f:
                items = json.loads(f.read().decode())
        except (OSError, ValueError) as e:
            raise BenchError("%s at %s: not JSON: %s" % (what, SIDE_NAMES[side], e))
        got = set()
        for item in items if isinstance(items, list) else []:
            try:
                got.add(item["00080018"]["Value"][0])
            except (KeyError, IndexError, TypeError):
                pass
        if got != set(sops) or len(items) != len(sops):
            raise BenchError("%s at %s: %d items, %d of the %d instances"
                             % (what, SIDE_NAMES[side], len(items) if isinstance(items, list)
                                else -1, len(got & set(sops)), len(sops)))
        os.remove(out)
        return {"seconds": seconds, "instances": len(sops), "answer_bytes": int(size)}

    def meta_study(self, side, srv, work):
        st = self.meta
        return self.metadata(side, srv, work, "studies/%s/metadata" % st.uid,
                             [s for ss in st.series_sops for s in ss], "study metadata")

    def meta_series(self, side, srv, work):
        st = self.meta
        return self.metadata(side, srv, work, "studies/%s/series/%s/metadata"
                             % (st.uid, st.series[0]), st.series_sops[0], "series metadata")

    def stow_route_missing(self):
        """Our POST /dicom-web/studies with an empty multipart body (nothing to store): its HTTP
        status when it is 404 or 405 (the route is not there), else None. A size limit of the
        server could otherwise answer 413 for a missing route as for a present one."""
        srv = self.servers["us"]
        boundary = "pacsbridge-bench-probe"
        req = urllib.request.Request(
            srv.root + "studies", data=("--%s--\r\n" % boundary).encode(), method="POST",
            headers={"Content-Type": 'multipart/related; type="application/dicom"; '
                                     'boundary=%s' % boundary,
                     "Accept": JSON_ACCEPT,
                     "Authorization": srv.auth.split(": ", 1)[1]})
        try:
            with common._OPENER.open(req, timeout=30) as resp:
                code = resp.status
        except urllib.error.HTTPError as e:
            code = e.code
        except (urllib.error.URLError, OSError) as e:
            raise BenchError("PACS Bridge POST /dicom-web/studies (probe) failed: %s" % e)
        log("serve: STOW-RS probe (empty multipart body) at PACS Bridge: HTTP %d" % code)
        return code if code in (404, 405) else None

    def stow(self, side, srv, work, st):
        if srv.study_count(st.uid) != 0:
            raise BenchError("%s holds the STOW-RS set %s before it is sent"
                             % (SIDE_NAMES[side], st.name))
        os.sync()
        ctype = 'Content-Type: multipart/related; type="application/dicom"; boundary=%s' \
            % st.boundary
        args = []
        if self.cfg.stow_parallel > 1:
            args += ["--parallel", "--parallel-max", str(self.cfg.stow_parallel),
                     "--parallel-immediate"]
        for i, body in enumerate(st.bodies):
            if i:
                args.append("--next")
                if side == "us":
                    args += ["-H", srv.auth]  # --next starts afresh
            args += ["-X", "POST", "-T", body, "-H", "Expect:", "-H", ctype,
                     "-H", "Accept: " + JSON_ACCEPT,
                     "-o", os.path.join(work, "answer-%03d.json" % (i + 1)),
                     "-w", "RESULT %{http_code} %{filename_effective}\\n",
                     srv.root + "studies"]
        seconds, results = self.curl(side, srv, work, "curl-stow", args)
        t_end = time.monotonic()
        # with --parallel, curl writes its lines as the transfers end: matched by file name
        by_file = {}
        for line in results:
            code, _, name = line.partition(" ")
            by_file[name] = code
        paths = [os.path.join(work, "answer-%03d.json" % (i + 1)) for i in range(len(st.bodies))]
        codes = [by_file.get(path) for path in paths]
        if None in codes:
            raise BenchError("curl STOW-RS at %s: %d answers for %d bodies (%r)"
                             % (SIDE_NAMES[side], len(results), len(st.bodies), results[:3]))
        if side == "us" and all(c in ("404", "405") for c in codes):
            raise NotThere(codes[0])
        for i, (code, path) in enumerate(zip(codes, paths)):
            if code != "200":
                detail = ""
                if os.path.exists(path):
                    with open(path, "rb") as f:
                        detail = f.read(500).decode(errors="replace")
                hint = ""
                if code == "413":
                    hint = (" (a request of %d instances, %.1f MB; BENCH_STOW_BATCH sets the "
                            "instances per request)" % (
                                len(st.files[i * self.cfg.stow_batch:
                                             (i + 1) * self.cfg.stow_batch]),
                                os.path.getsize(st.bodies[i]) / MB))
                raise BenchError("STOW-RS request %d at %s answered HTTP %s%s %s"
                                 % (i + 1, SIDE_NAMES[side], code, hint, detail.strip()))
            try:
                with open(path, "rb") as f:
                    answer = json.loads(f.read().decode())
            except (OSError, ValueError) as e:
                raise BenchError("STOW-RS at %s: answer %d is no DICOM JSON: %s"
                                 % (SIDE_NAMES[side], i + 1, e))
            if isinstance(answer, dict) and (answer.get(FAILED_SOP_SEQUENCE) or {}).get("Value"):
                raise BenchError("STOW-RS at %s: answer %d lists failed instances (%s)"
                                 % (SIDE_NAMES[side], i + 1, path))
        lag = None
        deadline = time.monotonic() + 60
        while True:
            n = srv.study_count(st.uid)
            if n == st.count:
                lag = time.monotonic() - t_end
                break
            if time.monotonic() > deadline:
                raise BenchError("%s holds %d of the %d instances sent by STOW-RS"
                                 % (SIDE_NAMES[side], n, st.count))
            time.sleep(0.05)
        if lag > 0.5:
            note("%s listed the STOW-RS set %.1f s after the last answer" % (SIDE_NAMES[side],
                                                                              lag),
                 key=("stow-lag", side))
        return {"seconds": seconds, "instances": st.count, "bytes": st.total_bytes}


# --------------------------------------------------------------------------- report

def row_label(row, bench, cfg):
    f, m, g = bench.filler, bench.meta, bench.get
    return {
        "find-study": "C-FIND STUDY, %d matches" % f["query_matches"],
        "find-image": "C-FIND IMAGE, %d matches" % len(m.series_sops[0]),
        "get": "C-GET study, %d inst" % g.count,
        "wado": "WADO-RS series, %d inst" % len(m.series_sops[0]),
        "meta-study": "metadata study, %d inst" % m.count,
        "meta-series": "metadata series, %d inst" % len(m.series_sops[0]),
        "stow": "STOW-RS %d inst, %d/request" % (cfg.stow, cfg.stow_batch),
    }[row]


def speedup(results, row):
    """Median over rounds of Orthanc's seconds / ours (rounds where both were measured)."""
    a, b = results.get((row, "orthanc"), {}), results.get((row, "us"), {})
    return med([a[r]["seconds"] / b[r]["seconds"] for r in a if r in b])


def side_cell(rs):
    if not rs:
        return "-"
    s = med([r["seconds"] for r in rs])
    if rs[0].get("instances") and ("bytes" in rs[0]):
        return "%.3f s %6.0f/s" % (s, med([r["instances"] / r["seconds"] for r in rs]))
    return "%.3f s" % s


def short_status(text):
    """A row's cell for a side that was not measured (None when it was)."""
    if not text:
        return None
    return "FAILED (see below)" if text.startswith("FAILED") else text


def report(cfg, bench, results, status, header):
    out = common.report_start("PACS Bridge serving benchmark (us vs Orthanc, same data, same "
                              "clients)", header, cfg.rounds)
    out[-1] = ("Rows (median of each side's runs; time = client start to exit; ratio = "
               "Orthanc's time / ours, median of same-round pairs: > 1, we are faster)")
    p = out.append
    p("%-3s %-33s %-20s %-20s %7s  %s" % ("row", "what", "Orthanc", "PACS Bridge", "ratio",
                                         "target"))
    for row, group, label, target in ROWS:
        if group not in cfg.groups:
            continue
        o = list(results.get((row, "orthanc"), {}).values())
        u = list(results.get((row, "us"), {}).values())
        st = status.get((row, "us")) or status.get((row, "orthanc"))
        ratio = speedup(results, row)
        us_cell = short_status(status.get((row, "us"))) or side_cell(u)
        o_cell = short_status(status.get((row, "orthanc"))) or side_cell(o)
        ratio_cell = "n/a" if st else fmt(ratio, "%.2f")
        if target is None:
            tgt = "(none)"
        elif ratio is None or st:
            tgt = "n/a  (>= %.1f)" % target
        elif row.startswith("find"):
            tgt = "%s > %.1f" % ("PASS" if ratio > target else "MISS", target)
        else:
            tgt = "%s >= %.1f" % ("PASS" if ratio >= target else "MISS", target)
        p("%-3s %-33s %-20s %-20s %7s  %s" % (label, row_label(row, bench, cfg), o_cell,
                                              us_cell, ratio_cell, tgt))
    p("")
    p("Details (medians; [min-max] of seconds; cpu: the client's and the server's CPU seconds "
      "per run; answer: body size)")
    p("%-3s %-12s %5s %9s %19s %9s %8s %8s %8s %9s" % ("row", "who", "runs", "s", "[min-max]",
                                                     "inst/s", "MB/s", "cli cpu", "srv cpu",
                                                     "answer"))
    for row, group, label, target in ROWS:
        if group not in cfg.groups:
            continue
        for side in SIDES:
            rs = list(results.get((row, side), {}).values())
            if not rs:
                continue
            secs = [r["seconds"] for r in rs]
            ips = [r["instances"] / r["seconds"] for r in rs if r.get("instances")]
            mbs = [r["bytes"] / MB / r["seconds"] for r in rs if r.get("bytes")]
            ans = [r["answer_bytes"] for r in rs if r.get("answer_bytes") is not None]
            p("%-3s %-12s %5d %9.3f %19s %9s %8s %8s %8s %9s" % (
                label, SIDE_NAMES[side], len(rs), med(secs),
                "[%.3f-%.3f]" % (min(secs), max(secs)),
                fmt(med(ips), "%.0f"), fmt(med(mbs), "%.1f"),
                fmt(med([r.get("client_cpu") for r in rs]), "%.2f"),
                fmt(med([r.get("server_cpu") for r in rs]), "%.2f"),
                "%.0f KB" % (med(ans) / KB) if ans else "-"))
    failed = [(k, v) for k, v in status.items() if v.startswith("FAILED")]
    if failed:
        p("")
        p("Failed")
        for (row, side), text in failed:
            p("  %s, %s: %s" % (row, SIDE_NAMES[side], text))
    common.report_finish(out)


# --------------------------------------------------------------------------- main

def usage_error(msg):
    log(msg)
    raise SystemExit(2)


def add_arguments(ap):
    ap.add_argument("--quick", action="store_true",
                    help="10,000 instances, 256 x 256 CT images, 2 rounds (5 for C-FIND)")


def parse_config(args):
    cfg = common.Config()
    quick = args.quick or os.environ.get("BENCH_QUICK") == "1"
    cfg.quick = quick
    cfg.archive = env_num("BENCH_ARCHIVE", 10000 if quick else 100000, int, 1)
    cfg.bulk_bytes = env_num("BENCH_BULK_BYTES", 9000, int, 1024)
    cfg.bulk_series = env_num("BENCH_BULK_SERIES", 2, int, 1)
    cfg.bulk_per_series = env_num("BENCH_BULK_PER_SERIES", 50, int, 1)
    cfg.studies_per_patient = env_num("BENCH_STUDIES_PER_PATIENT", 4, int, 1)
    cfg.find_matches = env_num("BENCH_FIND_MATCHES", 100, int, 1)
    cfg.ct_bytes = env_num("BENCH_CT_BYTES", (256 * 256 * 2 + 1024) if quick
                           else (512 * 512 * 2 + 1024), int, 1024)
    cfg.get = env_num("BENCH_GET", 500, int, 1)
    cfg.get_series = env_num("BENCH_GET_SERIES", 2, int, 1)
    cfg.meta = env_num("BENCH_META", 2000, int, 1)
    cfg.meta_series = env_num("BENCH_META_SERIES", 4, int, 1)
    cfg.stow = env_num("BENCH_STOW", 500, int, 1)
    cfg.stow_batch = env_num("BENCH_STOW_BATCH", 50, int, 1)
    cfg.stow_parallel = env_num("BENCH_STOW_PARALLEL", 2, int, 1)
    cfg.rounds = env_num("BENCH_ROUNDS", 2 if quick else 5, int, 1)
    cfg.find_rounds = env_num("BENCH_FIND_ROUNDS", 5 if quick else 15, int, 1)
    cfg.verify = env_num("BENCH_VERIFY", 2, int, 0)
    cfg.load_assocs = env_num("BENCH_LOAD_ASSOCS", 2, int, 1)
    cfg.orthanc_sync = env_num("BENCH_ORTHANC_SYNC", 1, int, 0)
    cfg.load_timeout = env_num("BENCH_LOAD_TIMEOUT", 3600, int, 1)
    cfg.op_timeout = env_num("BENCH_OP_TIMEOUT", 600, int, 1)
    cfg.idle_timeout = env_num("BENCH_IDLE_TIMEOUT", 900, int, 0)
    cfg.idle_timeout_op = env_num("BENCH_IDLE_TIMEOUT_OP", 30, int, 0)
    groups = [g.strip().lower() for g in os.environ.get("BENCH_ROWS", ",".join(ROW_GROUPS))
              .split(",") if g.strip()]
    if not groups or any(g not in ROW_GROUPS for g in groups):
        usage_error("serve: BENCH_ROWS lists %s" % ", ".join(ROW_GROUPS))
    cfg.groups = groups
    if cfg.get_series > cfg.get or cfg.meta_series > cfg.meta:
        usage_error("serve: a study cannot have more series than instances")
    cfg.filler = cfg.archive - cfg.get - cfg.meta
    if cfg.filler < 1:
        usage_error("serve: BENCH_ARCHIVE (%d) must exceed BENCH_GET + BENCH_META (%d)"
                         % (cfg.archive, cfg.get + cfg.meta))
    if not os.path.exists(DICOMWEB_PLUGIN):
        usage_error("serve: %s is missing (Debian: orthanc-dicomweb)" % DICOMWEB_PLUGIN)
    common.parse_common(cfg, args.root, True, "build it (make build) or set PACSBRIDGE_BIN")
    cfg.data_dir = os.path.abspath(os.environ.get("BENCH_DATA_DIR") or os.path.join(
        cfg.tmp_parent, "pacsbridge-bench-serve-data"))
    return cfg


def run(cfg, root, tmp):
    global dicomgen
    sys.path.insert(0, os.path.join(root, "tools"))
    import dicomgen as _dicomgen
    dicomgen = _dicomgen

    started = time.monotonic()
    log("serve: work directory %s (%s)" % (tmp, fs_type(tmp)))
    # The binary is copied first: a rebuild during the run (make build in another shell)
    # then changes nothing under the running server.
    original_bin = cfg.bridge_bin_original = cfg.bridge_bin
    cfg.bridge_bin = os.path.join(tmp, "pacsbridge-under-test")
    try:
        shutil.copy2(original_bin, cfg.bridge_bin)
    except OSError as e:
        raise BenchError("cannot copy %s: %s" % (original_bin, e))
    filler, get, meta, stow_sets = make_data(cfg)
    for st in stow_sets:
        st.bodies, st.boundary = build_stow_bodies(st, os.path.join(tmp, "stow-bodies",
                                                                    st.name), cfg.stow_batch)

    orthanc = Orthanc(cfg, os.path.join(tmp, "orthanc"))
    bridge = Bridge(cfg, os.path.join(tmp, "pacsbridge"))
    servers = {"orthanc": orthanc, "us": bridge}
    try:
        dirs = filler["dirs"] + [get.dir, meta.dir]
        log("serve: filling both servers with %d instances (%d storescu associations each)"
            % (cfg.archive, cfg.load_assocs))
        took = fill(cfg, tmp, servers, dirs, cfg.archive)
        os.sync()
        log("serve: filled: Orthanc %.0f s, PACS Bridge %.0f s (at the same time); waiting for "
            "both to be idle" % (took["orthanc"], took["us"]))
        idle_s, idle = wait_idle(servers, 1.0, 0.05, 3, cfg.idle_timeout)
        if not idle:
            note("a server was still busy %.0f s after filling (BENCH_IDLE_TIMEOUT); measured "
                 "anyway" % idle_s)
        log("serve: %s after %.0f s" % ("idle" if idle else "still busy", idle_s))

        bench = Bench(cfg, tmp, servers, filler, get, meta)
        results, status = {}, {}
        header = [
            "archive in each server: %d instances: filler %d x %.1f KB in %d studies (%d x %d) "
            "over %d day(s); get study %d x %.0f KB (%d series); meta study %d x %.0f KB "
            "(%d series of %d); CT Image Storage, Explicit VR LE; data cache %s"
            % (cfg.archive, filler["count"], cfg.bulk_bytes / KB, filler["studies"],
               cfg.bulk_series, cfg.bulk_per_series, filler["days"], get.count,
               get.total_bytes / get.count / KB, len(get.series), meta.count,
               meta.total_bytes / meta.count / KB, len(meta.series),
               len(meta.series_sops[0]), cfg.data_dir),
            "filled by storescu (%d associations per server, both at once, not timed): "
            "Orthanc %.0f s, PACS Bridge %.0f s; both idle %.0f s later (< 5%% CPU for 3 s; "
            "before each run: < 10%% for 0.2 s)"
            % (cfg.load_assocs, took["orthanc"], took["us"], idle_s),
            "Orthanc %s, DICOMweb plugin %s (StudiesMetadata/SeriesMetadata Full, "
            "SyncStorageArea %s, no auth); PACS Bridge receiver query_retrieve = true, "
            "DICOMweb with an API token (Bearer)"
            % (common.tool_version(["Orthanc", "--version"]).split()[-1],
               orthanc.plugin_version, "on" if cfg.orthanc_sync else "off"),
            "rounds: %d (C-FIND %d), sides alternating (Orthanc first in odd rounds), %s"
            % (cfg.rounds, cfg.find_rounds,
               "one unrecorded warm-up per side and row" if cfg.warmup else "no warm-up"),
            "WADO-RS Accept: %s; metadata Accept: %s; STOW-RS: %d requests of %d, %d at a time "
            "(curl --parallel), -H 'Expect:'"
            % (WADO_ACCEPT, JSON_ACCEPT, int(math.ceil(cfg.stow / float(cfg.stow_batch))),
               cfg.stow_batch, cfg.stow_parallel),
        ]
        setup = [line.replace(cfg.bridge_bin, "%s (copied at start)" % original_bin)
                 for line in common.setup_header(cfg, tmp, "findscu")]
        setup[1] += "; " + " ".join(common.tool_version(["curl", "--version"]).split()[:2])
        header += setup

        def one_row(row, group, nrounds, stow=False):
            if group not in cfg.groups:
                return
            sides_on = list(SIDES)

            def drop(side, text, tag):
                status[(row, side)] = text
                sides_on.remove(side)
                log("%-8s %-11s %-11s %s" % (tag, row, SIDE_NAMES[side], text))

            if stow:
                code = bench.stow_route_missing()
                if code:
                    drop("us", "n/a (HTTP %s)" % code, "probe")

            def attempt(side, tag, st):
                try:
                    return bench.measure(row, side, tag, st)
                except NotThere as e:
                    drop(side, "n/a (HTTP %s)" % e.code, tag)
                except BenchError as e:
                    log("serve: %s at %s FAILED: %s" % (row, SIDE_NAMES[side], e))
                    drop(side, "FAILED: %s" % str(e).splitlines()[0][:300], tag)
                return None

            if cfg.warmup:
                for side in list(sides_on):
                    r = attempt(side, "warm-up", stow_sets[0] if stow else None)
                    if r is not None:
                        log("warm-up  %-11s %-11s %7.3f s" % (row, SIDE_NAMES[side],
                                                               r["seconds"]))
            for rnd in range(nrounds):
                st = stow_sets[rnd + (1 if cfg.warmup else 0)] if stow else None
                for side in rotate(list(SIDES), rnd):
                    if side not in sides_on:
                        continue
                    r = attempt(side, "round %d" % (rnd + 1), st)
                    if r is None:
                        continue
                    results.setdefault((row, side), {})[rnd] = r
                    log("round %-2d %-11s %-11s %7.3f s%s"
                        % (rnd + 1, row, SIDE_NAMES[side], r["seconds"],
                           "  %6.0f inst/s" % (r["instances"] / r["seconds"])
                           if r.get("instances") and r.get("bytes") else ""))

        one_row("find-study", "find", cfg.find_rounds)
        one_row("find-image", "find", cfg.find_rounds)
        one_row("get", "get", cfg.rounds)
        one_row("wado", "wado", cfg.rounds)
        one_row("meta-study", "meta", cfg.rounds)
        one_row("meta-series", "meta", cfg.rounds)
        if "stow" in cfg.groups:
            orthanc.restart_default_malloc()
            one_row("stow", "stow", cfg.rounds, stow=True)
    finally:
        bridge.stop()
        stop(orthanc.proc, cfg.stop_timeout)

    header.append("total run time %.0f s" % (time.monotonic() - started))
    report(cfg, bench, results, status, header)
    common.write_json(cfg, {
        "config": {k: getattr(cfg, k) for k in (
            "archive", "filler", "bulk_bytes", "ct_bytes", "get", "meta", "meta_series",
            "stow", "stow_batch", "stow_parallel", "rounds", "find_rounds", "groups",
            "bridge_bin_original", "data_dir")},
        "status": {"%s/%s" % k: v for k, v in status.items()},
        "results": [dict(r, row=row, side=side, round=rnd + 1)
                    for (row, side), by_round in results.items()
                    for rnd, r in by_round.items()],
    })
    return 1 if any(v.startswith("FAILED") for v in status.values()) else 0


if __name__ == "__main__":
    sys.exit(common.main(
        "PACS Bridge serving benchmark (C-FIND, C-GET, WADO-RS, metadata, STOW-RS: us vs "
        "Orthanc)", parse_config, run, "pacsbridge-bench-serve.", epilog=__doc__,
        add_arguments=add_arguments))
