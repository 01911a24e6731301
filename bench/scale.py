"""bench/scale.sh's driver: does ingest stay flat as the index grows, on SQLite and on PostgreSQL?

For each engine of BENCH_SCALE_ENGINES (default "sqlite,postgresql"), one server's index is
filled in steps to each size of BENCH_SCALE_SIZES (default "0,100000,1000000" instances already
indexed): rows written straight into the tables with the server stopped, in the layout of
bench/find_scale.py (studies of 2 series of 50 instances, 100 studies a day). Then, with the
server started again:
    ingest  storescu sends BENCH_SCALE_INGEST (default 1000) small instances (2 KB) over one
            association, BENCH_SCALE_ROUNDS (default 3) times, each round new studies; timed
            from storescu's start until GET /api/studies shows every one of them indexed.
    C-FIND  STUDY level on one date (100 matches), per-query latency over one association
            (bench/find_scale.py's method: findscu -q, the target's figure; and findscu -v,
            printing and counting every answer, beside it).
Targets: at every size, the ingest rate within 20 % of the empty index's (ratio >= 0.8); the
C-FIND under 20 ms at the largest size.

PostgreSQL is a private server (scripts/pg-test-server.sh with PG_TEST_DURABLE=1: PostgreSQL's
own defaults, each commit flushed to disk), reached over TCP on 127.0.0.1 with a password, as a
site's would be. SQLite runs as the server runs it (WAL, synchronous=NORMAL).

Two instances (PostgreSQL, at the largest size): two storescu streams, one to each of two
servers (one database, one shared data directory), against the same two streams into one server.
Target: >= 1.6.

The anchors, in the same run: Orthanc with its index on PostgreSQL (engine "orthanc-postgresql",
Debian's orthanc-postgresql plugin, on the same PostgreSQL server, the plugin's defaults) and,
when asked, with its own SQLite index ("orthanc-sqlite"). Orthanc's tables cannot be filled from
outside, so Orthanc is filled through its DICOM port (four storescu associations at once, small
instances made in chunks and deleted after), up to the sizes of BENCH_SCALE_SIZES that are at
most BENCH_SCALE_ORTHANC_MAX (default 100000; the fill runs at Orthanc's own rate). Its ingest
is measured as ours: the same sets, one association, timed until storescu ends (Orthanc has
indexed an instance when it answers it) and its statistics count them all. No C-FIND row (the
fill's studies are not ours).
"""
import os
import shutil
import subprocess
import sqlite3
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import find_scale  # noqa: E402
from common import BenchError, env_num, free_port, log  # noqa: E402
from find_scale import PER_SERIES, SERIES_PER_STUDY, STUDIES_PER_DATE, STUDIES_PER_PATIENT, ROOT_UID, study_date  # noqa: E402,E501

common.PROG = "scale"
NOW = "2026-01-01T00:00:00Z"
PG_PASSWORD = "scale-bench-Pw1"
ENGINES = ("sqlite", "postgresql", "orthanc-postgresql", "orthanc-sqlite")
ORTHANC_PG_PLUGIN = "/usr/share/orthanc/plugins/libOrthancPostgreSQLIndex.so"
ORTHANC_FILL_CHUNK = 4000  # instances made, sent and deleted at a time
ORTHANC_FILL_STREAMS = 4


def parse_config(args):
    cfg = common.parse_common(common.Config(), args.root, True, "build it with: make build")
    cfg.root = args.root
    cfg.engines = [e.strip() for e in os.environ.get("BENCH_SCALE_ENGINES",
                                                     "sqlite,postgresql,orthanc-postgresql").split(",")
                   if e.strip()]
    for e in cfg.engines:
        if e not in ENGINES:
            raise SystemExit("scale: BENCH_SCALE_ENGINES: unknown engine %r (%s)" % (e, ", ".join(ENGINES)))
    if "orthanc-postgresql" in cfg.engines and not os.path.exists(ORTHANC_PG_PLUGIN):
        log("scale: no %s (Debian package orthanc-postgresql: make deps-test): the orthanc-postgresql "
            "anchor is left out" % ORTHANC_PG_PLUGIN)
        cfg.engines.remove("orthanc-postgresql")
    cfg.orthanc_max = env_num("BENCH_SCALE_ORTHANC_MAX", 100000, int, 0)
    try:
        cfg.sizes = sorted({int(s) for s in os.environ.get("BENCH_SCALE_SIZES", "0,100000,1000000").split(",")})
    except ValueError:
        raise SystemExit("scale: BENCH_SCALE_SIZES must be numbers separated by commas")
    if cfg.sizes[0] != 0:
        cfg.sizes.insert(0, 0)
    cfg.ingest = env_num("BENCH_SCALE_INGEST", 1000, int, 10)
    cfg.rounds = env_num("BENCH_SCALE_ROUNDS", 3, int, 1)
    cfg.queries = env_num("BENCH_SCALE_QUERIES", 20, int, 2)
    return cfg


# --------------------------------------------------------------------------- filling the index

def key(x):
    """The key of the fill's row number x: negative, so the rows the server writes itself (keys
    from its maximum up, or its identity) never meet the rows a later fill step adds."""
    return -(x + 1)


def rows(s0, s1):
    """The rows of studies [s0, s1): (patients, studies, series, instances), each a list of
    tuples in the tables' column order below, with explicit keys."""
    pats, sts, ses, ins = [], [], [], []
    for s in range(s0, s1):
        if s % STUDIES_PER_PATIENT == 0:
            p = s // STUDIES_PER_PATIENT
            pats.append((key(p), "PID%07d" % p, "SCALE^PATIENT%07d" % p, "19700101", "O"))
        sts.append((key(s), key(s // STUDIES_PER_PATIENT), "%s.1.%d" % (ROOT_UID, s), study_date(s), "101500",
                    "ACC%08d" % s, "SCALE STUDY", NOW, NOW))
        for k in range(SERIES_PER_STUDY):
            se = s * SERIES_PER_STUDY + k
            ses.append((key(se), key(s), "%s.2.%d.%d" % (ROOT_UID, s, k), ("CT", "SR")[k], str(k + 1), "SCALE"))
            for i in range(PER_SERIES):
                n = se * PER_SERIES + i
                ins.append((key(n), key(se), "%s.3.%d" % (ROOT_UID, n), "1.2.840.10008.5.1.4.1.1.2", str(i + 1),
                            "1.2.840.10008.1.2.1", "absent/%d.dcm" % n, 1000, NOW))
    return pats, sts, ses, ins


def metadata_range(s0, s1):
    """The instance keys of studies [s0, s1) as a SQL condition."""
    first, last = s0 * SERIES_PER_STUDY * PER_SERIES, s1 * SERIES_PER_STUDY * PER_SERIES
    return "pk <= %d AND pk >= %d" % (key(first), key(last - 1))


TABLES = (("patients", "pk, patient_id, patient_name, birth_date, sex"),
          ("studies", "pk, patient_pk, study_uid, study_date, study_time, accession_number, description, "
                      "created_at, updated_at"),
          ("series", "pk, study_pk, series_uid, modality, series_number, project"),
          ("instances", "pk, series_pk, sop_uid, sop_class_uid, instance_number, transfer_syntax_uid, file_path, "
                        "file_size, received_at"))

def fill_sqlite(path, s0, s1):
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous=OFF")
    step = 2000
    with con:
        for a in range(s0, s1, step):
            for (table, cols), data in zip(TABLES, rows(a, min(s1, a + step))):
                marks = ",".join("?" * len(cols.split(",")))
                con.executemany("INSERT INTO %s(%s) VALUES(%s)" % (table, cols, marks), data)
        con.execute("INSERT INTO instance_metadata(instance_pk, json) SELECT pk, '{}' FROM instances WHERE "
                    + metadata_range(s0, s1))
    con.execute("ANALYZE")
    con.close()


def psql(url, sql, stdin=None):
    cp = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-q", "-tA", "-c", sql], input=stdin,
                        capture_output=True, text=True)
    if cp.returncode != 0:
        raise BenchError("psql: %s" % cp.stderr[-1000:])
    return cp.stdout.strip()


def fill_postgres(url, s0, s1):
    step = 20000
    for a in range(s0, s1, step):
        for (table, cols), data in zip(TABLES, rows(a, min(s1, a + step))):
            text = "".join("\t".join(str(v) for v in r) + "\n" for r in data)
            psql(url, "COPY %s(%s) FROM STDIN" % (table, cols), stdin=text)
    psql(url, "INSERT INTO instance_metadata(instance_pk, json) SELECT pk, '{}' FROM instances WHERE "
         + metadata_range(s0, s1))
    # What autovacuum does after a bulk load (its visit comes within a minute or so; the index's
    # own settings make it come after 1 % of inserts): statistics, and pages marked all-visible,
    # without which the count columns' index-only scans read the table for every row.
    psql(url, "VACUUM ANALYZE")


# --------------------------------------------------------------------------- servers

class Bridge:
    def __init__(self, cfg, work, name, extra_toml, data_dir=None):
        """data_dir: another server's, shared (one PostgreSQL database); each server is instance `name`."""
        self.cfg, self.work = cfg, os.path.join(work, name)
        os.makedirs(self.work)
        self.http_port, self.port = free_port(), free_port()
        self.proc, self.log_path = common.start_bridge(cfg, self.work, self.http_port, self.port,
                                                       receiver_toml="query_retrieve = true\n",
                                                       extra_toml=extra_toml, data_dir=data_dir,
                                                       server_toml="instance_id = \"%s\"\n" % name)
        self.data_dir = data_dir or os.path.join(self.work, "data")
        common.wait_bridge_ready(cfg, self.proc, self.log_path, self.http_port, self.port)
        self.starts = 1

    def stop(self):
        common.stop(self.proc, self.cfg.stop_timeout)

    def start(self):
        self.starts += 1
        path = "%s.%d" % (self.log_path, self.starts)
        self.proc = common.spawn([self.cfg.bridge_bin, "serve", "--config", os.path.join(self.work, "pacsbridge.toml")],
                                 env=self.cfg.env_plain, log_path=path, cwd=self.work)
        common.wait_bridge_ready(self.cfg, self.proc, path, self.http_port, self.port)

    def indexed(self, patient_id):
        status, body = common.http_json("GET", "http://127.0.0.1:%d/api/studies?PatientID=%s&limit=1000"
                                        % (self.http_port, patient_id), timeout=60)
        if status != 200 or not isinstance(body, list):
            raise BenchError("GET /api/studies answered %s: %.300r" % (status, body))
        return sum(s.get("instance_count", 0) for s in body)


class OrthancIndexed:
    """Orthanc with its index on PostgreSQL (`pg`: (port, database)) or on its own SQLite."""

    def __init__(self, cfg, work, name, pg=None):
        self.cfg, self.work = cfg, os.path.join(work, name)
        os.makedirs(self.work)
        extra = {}
        if pg:
            extra = {"Plugins": [ORTHANC_PG_PLUGIN],
                     "PostgreSQL": {"EnableIndex": True, "EnableStorage": False, "Host": "127.0.0.1",
                                    "Port": pg[0], "Database": pg[1], "Username": "pb", "Password": PG_PASSWORD,
                                    "Lock": False}}
        self.peer = common.OrthancPeer()
        self.peer.launch(cfg, self.work, "scale-" + name, extra=extra)
        deadline = time.monotonic() + 120
        while not self.peer.ready():
            if self.peer.proc.poll() is not None or time.monotonic() > deadline:
                raise BenchError("Orthanc (%s) did not start: %s" % (name, common.tail(self.peer.log_path)))
            time.sleep(0.1)

    def stop(self):
        common.stop(self.peer.proc, self.cfg.stop_timeout)

    def send(self, directories):
        """storescu of each directory at once, one association each."""
        procs = [subprocess.Popen(["storescu", "-aec", self.peer.ae, "+sd", "127.0.0.1", str(self.peer.port), d],
                                  env=self.cfg.env_nodelay, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True) for d in directories]
        for p in procs:
            _, err = p.communicate(timeout=3600)
            if p.returncode != 0:
                raise BenchError("storescu to Orthanc failed: %s" % err[-1500:])

    def fill(self, tmp, target):
        """Through its DICOM port until it holds `target` instances; returns instances per second
        (while sending: making the files is not counted)."""
        have, sending, sent, chunk = self.peer.count(), 0.0, 0, 0
        while have < target:
            chunk += 1
            n = min(ORTHANC_FILL_CHUNK, target - have)
            dirs = []
            for k in range(ORTHANC_FILL_STREAMS):
                part = n // ORTHANC_FILL_STREAMS + (1 if k < n % ORTHANC_FILL_STREAMS else 0)
                if part == 0:
                    continue
                d = os.path.join(tmp, "orthanc-fill-%d-%d" % (chunk, k))
                make_fill(d, part)
                dirs.append(d)
            t0 = time.monotonic()
            self.send(dirs)
            sending += time.monotonic() - t0
            for d in dirs:
                shutil.rmtree(d)
            sent += n
            have = self.peer.count()
            if chunk % 5 == 0:
                log("scale: Orthanc holds %d instances (%.0f/s)" % (have, sent / sending))
        return sent / sending if sent else None

    def ingest(self, directory):
        before, n = self.peer.count(), len(os.listdir(directory))
        start = time.perf_counter()
        self.send([directory])
        deadline = time.monotonic() + 120
        while self.peer.count() < before + n:
            if time.monotonic() > deadline:
                raise BenchError("Orthanc did not count the %d instances sent within 120 s" % n)
            time.sleep(0.02)
        return time.perf_counter() - start


def make_fill(d, count):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    import dicomgen
    dicomgen.generate(d, count, studies=max(1, count // 100), series_per_study=2, size=2048,
                      patient_id="FILL", uid_root=ROOT_UID + ".8")


def make_set(tmp, tag, count):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
    import dicomgen
    d = os.path.join(tmp, "set-" + tag)
    dicomgen.generate(d, count, studies=max(1, count // 100), series_per_study=1, size=2048,
                      patient_id="RUN" + tag, uid_root=ROOT_UID + ".9")
    return d


def store(cfg, bridges_and_dirs, patient_ids, timeout=600):
    """storescu of each directory to its server, all at once; seconds until every instance is
    indexed (polled through each server's API)."""
    start = time.perf_counter()
    procs = []
    for (bridge, directory) in bridges_and_dirs:
        procs.append(subprocess.Popen(["storescu", "-aec", "PACSBRIDGE", "-xe", "+sd", "127.0.0.1", str(bridge.port),
                                       directory], env=cfg.env_nodelay, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=timeout)
        if p.returncode != 0:
            raise BenchError("storescu failed: %s" % err[-1500:])
    want = [(b, pid, len(os.listdir(d))) for (b, d), pid in zip(bridges_and_dirs, patient_ids)]
    deadline = time.monotonic() + 120
    while not all(b.indexed(pid) >= n for b, pid, n in want):
        if time.monotonic() > deadline:
            raise BenchError("instances not indexed within 120 s")
        time.sleep(0.02)
    return time.perf_counter() - start


def find_latency(cfg, tmp, bridge, date, expect):
    query = find_scale.query_file(tmp, "study-%d" % bridge.port, "STUDY", [
        ("0008,0020", "DA", date), ("0020,000d", "UI", ""), ("0010,0010", "PN", ""), ("0010,0020", "LO", ""),
        ("0008,0061", "CS", ""), ("0020,1208", "IS", "")])
    quiet, printing = find_scale.per_query(cfg, bridge.port, query, expect, False, 3)
    return common.med(quiet), common.med(printing)


# --------------------------------------------------------------------------- run

def run(cfg, root, tmp):
    results = {}  # engine -> list of (size, rate, find_ms)
    two = None
    seq = [0]

    def next_tag():
        seq[0] += 1
        return "%04d" % seq[0]

    pg_dir = None
    fills = {}  # Orthanc engine -> its fill rate (instances/s)
    try:
        if any(e in ("postgresql", "orthanc-postgresql") for e in cfg.engines):
            pg_dir = os.path.join(tmp, "pg")
            os.chmod(tmp, 0o755)  # the cluster's owner ("postgres" when we are root) enters it
            port = free_port()
            env = dict(os.environ, PG_TEST_PORT=str(port), PG_TEST_PASSWORD=PG_PASSWORD, PG_TEST_DURABLE="1")
            cp = subprocess.run([os.path.join(root, "scripts", "pg-test-server.sh"), "start", pg_dir], env=env,
                                capture_output=True, text=True)
            if cp.returncode != 0:
                raise BenchError("PostgreSQL did not start: %s" % cp.stderr[-1500:])
            admin = cp.stdout.strip()
        for engine in cfg.engines:
            extra = ""
            url = None
            if engine.startswith("orthanc-"):
                pg = None
                if engine == "orthanc-postgresql":
                    psql(admin, "CREATE DATABASE orthanc")
                    pg = (port, "orthanc")
                orthanc = OrthancIndexed(cfg, tmp, engine, pg)
                rows_out = []
                try:
                    for size in [s for s in cfg.sizes if s <= cfg.orthanc_max]:
                        if size:
                            log("scale: %s: filling Orthanc to %d instances through its DICOM port ..."
                                % (engine, size))
                            rate = orthanc.fill(tmp, size)
                            if rate:
                                fills.setdefault(engine, []).append(rate)
                        rates = []
                        for _ in range(cfg.rounds):
                            d = make_set(tmp, next_tag(), cfg.ingest)
                            rates.append(cfg.ingest / orthanc.ingest(d))
                            shutil.rmtree(d)
                        rows_out.append((size, common.med(rates), min(rates), max(rates), None, None))
                        log("scale: %s at %d: %.0f instances/s" % (engine, size, common.med(rates)))
                finally:
                    orthanc.stop()
                results[engine] = rows_out
                continue
            if engine == "postgresql":
                psql(admin, "CREATE DATABASE scale")
                url = "postgresql://pb:%s@127.0.0.1:%d/scale" % (PG_PASSWORD, port)
                fill_url = admin + "&dbname=scale"
                extra = "[database]\nurl = \"%s\"\n\n" % url
            bridge = Bridge(cfg, tmp, engine, extra)
            filled = 0  # studies
            rows_out = []
            for size in cfg.sizes:
                studies = size // (SERIES_PER_STUDY * PER_SERIES)
                if studies > filled:
                    bridge.stop()
                    t0 = time.monotonic()
                    log("scale: %s: filling the index to %d instances ..." % (engine, size))
                    if engine == "sqlite":
                        fill_sqlite(os.path.join(bridge.work, "data", "index.db"), filled, studies)
                    else:
                        fill_postgres(fill_url, filled, studies)
                    log("scale: %s: filled in %.0f s" % (engine, time.monotonic() - t0))
                    filled = studies
                    bridge.start()
                rates = []
                for _ in range(cfg.rounds):
                    tag = next_tag()
                    d = make_set(tmp, tag, cfg.ingest)
                    took = store(cfg, [(bridge, d)], ["RUN" + tag])
                    rates.append(cfg.ingest / took)
                find_ms = printing_ms = None
                if filled:
                    # The day of the middle study: 100 studies, fewer on a small index's last day.
                    day = (filled // 2) // STUDIES_PER_DATE
                    expect = min(STUDIES_PER_DATE, filled - day * STUDIES_PER_DATE)
                    quiet, printing = find_latency(cfg, tmp, bridge, study_date(filled // 2), expect)
                    find_ms, printing_ms = quiet * 1000, printing * 1000
                rows_out.append((size, common.med(rates), min(rates), max(rates), find_ms, printing_ms))
                log("scale: %s at %d: %.0f instances/s, C-FIND %s ms (printing %s)"
                    % (engine, size, common.med(rates), common.fmt(find_ms), common.fmt(printing_ms)))
            if engine == "postgresql":
                # Two streams into one server, then one stream into each of two servers.
                second = Bridge(cfg, tmp, "postgresql-2", extra, data_dir=bridge.data_dir)
                one_rates, two_rates = [], []
                for _ in range(cfg.rounds):
                    a, b = next_tag(), next_tag()
                    da, db = make_set(tmp, a, cfg.ingest), make_set(tmp, b, cfg.ingest)
                    one_rates.append(2 * cfg.ingest / store(cfg, [(bridge, da), (bridge, db)], ["RUN" + a, "RUN" + b]))
                    a, b = next_tag(), next_tag()
                    da, db = make_set(tmp, a, cfg.ingest), make_set(tmp, b, cfg.ingest)
                    two_rates.append(2 * cfg.ingest / store(cfg, [(bridge, da), (second, db)], ["RUN" + a, "RUN" + b]))
                second.stop()
                two = (common.med(one_rates), common.med(two_rates))
            bridge.stop()
            results[engine] = rows_out
    finally:
        if pg_dir:
            subprocess.run([os.path.join(root, "scripts", "pg-test-server.sh"), "stop", pg_dir], capture_output=True)

    out = ["", "Ingest as the index grows: %d small instances (2 KB) over one association, median of %d rounds; "
               "C-FIND STUDY with 100 matches" % (cfg.ingest, cfg.rounds),
           "%-18s %10s %12s %15s %10s %12s %12s" % ("engine", "indexed", "inst/s", "[min-max]", "vs empty",
                                                      "C-FIND ms", "printing ms")]
    ok = True
    for engine, rs in results.items():
        empty = rs[0][1]
        for size, rate, lo, hi, find_ms, printing_ms in rs:
            out.append("%-18s %10d %12.0f %15s %10.2f %12s %12s" % (engine, size, rate, "[%.0f-%.0f]" % (lo, hi),
                                                                     rate / empty, common.fmt(find_ms),
                                                                     common.fmt(printing_ms)))
        worst = min(r[1] / empty for r in rs)
        if engine.startswith("orthanc-"):
            fill = fills.get(engine)
            out.append("  anchor: %s at %d instances: %.2f of its empty index's rate%s"
                       % (engine, rs[-1][0], rs[-1][1] / empty,
                          "; filled through its DICOM port at %.0f inst/s (4 associations)" % common.med(fill)
                          if fill else ""))
            continue
        ok = ok and worst >= 0.8
        out.append("  target: %s ingest within 20 %% of the empty index at every size: %s (worst %.2f)"
                   % (engine, "PASS" if worst >= 0.8 else "MISS", worst))
        last = rs[-1][4]
        if last is not None:
            ok = ok and last < 20
            out.append("  target: %s C-FIND STUDY at %d instances under 20 ms: %s (%.1f ms)"
                       % (engine, rs[-1][0], "PASS" if last < 20 else "MISS", last))
    # Side by side at each size both have: ours against each other, and against the anchors.
    pairs = [("sqlite", "postgresql"), ("postgresql", "orthanc-postgresql"), ("sqlite", "orthanc-sqlite"),
             ("sqlite", "orthanc-postgresql")]
    for a, b in pairs:
        if a in results and b in results:
            at_b = {r[0]: r[1] for r in results[b]}
            common_sizes = [(r[0], r[1] / at_b[r[0]]) for r in results[a] if r[0] in at_b]
            if common_sizes:
                out.append("%s / %s ingest: %s" % (a, b, ", ".join("%.2f at %d" % (v, s) for s, v in common_sizes)))
    if two:
        ratio = two[1] / two[0]
        ok = ok and ratio >= 1.6
        out.append("PostgreSQL, two streams: into one server %.0f inst/s, one into each of two servers %.0f inst/s: "
                   "%.2fx" % (two[0], two[1], ratio))
        out.append("  target: two instances >= 1.6x one: %s" % ("PASS" if ratio >= 1.6 else "MISS"))
    print("\n".join(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(common.main("Ingest rate as the index grows, SQLite and PostgreSQL", parse_config, run,
                         "pacsbridge-bench-scale."))
