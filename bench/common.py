"""What the bench/*.py drivers share: messages and notes, settings from the
environment, child processes, ports and HTTP, the Orthanc and PACS Bridge peers, the report's
frame and the driver's main(). Python 3 standard library only.
"""

import argparse
import base64
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

MB = 1 << 20
KB = 1 << 10

PROG = "bench"  # the driver's name, first word of its messages; the driver sets it


class BenchError(Exception):
    """Something broke: the benchmark's numbers cannot be trusted."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


NOTES = []          # odd things seen during the run, printed with the report
_NOTE_KEYS = {}     # key -> index in NOTES, for notes that would repeat every measurement


def note(msg, key=None):
    """Record an odd observation; with a key, repeats only count up the first one."""
    if key is not None and key in _NOTE_KEYS:
        i = _NOTE_KEYS[key]
        text, n = NOTES[i]
        NOTES[i] = (text, n + 1)
        return
    if key is not None:
        _NOTE_KEYS[key] = len(NOTES)
    NOTES.append((msg, 1))
    log("note: " + msg)


def notes_text():
    return [text + (" (x%d)" % n if n > 1 else "") for text, n in NOTES]


def env_num(name, default, kind=int, minimum=None):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SystemExit("%s: %s=%r is not a number" % (PROG, name, raw))
    if minimum is not None and value < minimum:
        raise SystemExit("%s: %s must be >= %s" % (PROG, name, minimum))
    return value


# --------------------------------------------------------------------------- processes

LIVE = {}  # pid -> Popen of every process this script started and has not reaped


def spawn(cmd, *, env, log_path, cwd=None):
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    LIVE[proc.pid] = proc
    return proc


def stop(proc, timeout):
    """SIGTERM, wait up to timeout, then SIGKILL. Returns (returncode, killed)."""
    killed = False
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            killed = True
    LIVE.pop(proc.pid, None)
    return proc.returncode, killed


def wait_exit(proc, timeout):
    """proc's exit status, seen as the exit happens: a blocking wait, with a timer that kills
    the process group after timeout seconds (then subprocess.TimeoutExpired). Popen.wait(timeout)
    polls instead, sleeping up to 50 ms between looks, which added 0-50 ms to every timed tool
    run (the reference tools' times fell on 50 ms steps)."""
    expired = threading.Event()

    def expire():
        expired.set()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        rc = proc.wait()
    finally:
        timer.cancel()
    if expired.is_set():
        raise subprocess.TimeoutExpired(proc.args, timeout)
    return rc


def run_timed(cmd, *, env, log_path, cwd, timeout):
    """Runs cmd (spawn) to its exit: (exit status, seconds from its start to its exit); stops it
    and raises BenchError when it runs longer than timeout seconds."""
    t0 = time.perf_counter()
    proc = spawn(cmd, env=env, log_path=log_path, cwd=cwd)
    try:
        rc = wait_exit(proc, timeout)
    except subprocess.TimeoutExpired:
        stop(proc, 5)
        raise BenchError("%s did not finish in %d s:\n%s" % (cmd[0], timeout, tail(log_path)))
    seconds = time.perf_counter() - t0
    LIVE.pop(proc.pid, None)
    return rc, seconds


def stop_all_live():
    for proc in list(LIVE.values()):
        try:
            stop(proc, 10)
        except OSError:
            pass


def cpu_seconds(pid):
    """User + system CPU seconds a live process has used (None when it cannot be read)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def used(before, after):
    """after - before, or None when either reading failed."""
    return after - before if before is not None and after is not None else None


def children_cpu_seconds():
    """User + system CPU seconds of the waited-for children of this process so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def peak_rss_kb(pid):
    """VmHWM of a live process in KB (None when it cannot be read)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def tail(path, lines=15):
    try:
        with open(path, "rb") as f:
            data = f.read()[-8192:].decode("utf-8", "replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("    | " + l for l in data[-lines:]) or "    | (empty log)"


def tool_version(cmd):
    try:
        res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        return res.stdout.decode(errors="replace").strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "?"


# --------------------------------------------------------------------------- network

_USED_PORTS = set()


def free_port():
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _USED_PORTS:
            _USED_PORTS.add(port)
            return port
    raise BenchError("no free TCP port found")


def listening(port):
    """True when some socket of this network namespace listens on TCP port."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 3 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def isolated():
    """True inside a network namespace whose only interface is lo."""
    try:
        res = subprocess.run(["ip", "-o", "link", "show"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL)
    except OSError:
        return False
    names = [l.split(":")[1].strip() for l in res.stdout.decode().splitlines() if ":" in l]
    return names == ["lo"]


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


# The admin password of every PACS Bridge start_bridge starts, by HTTP port: http_get and
# http_json send it (HTTP basic) to those ports, unless the caller gives its own Authorization.
BRIDGE_PASSWORD = "bench-Admin-pw1"
_BRIDGE_PASSWORDS = {}


def _with_credentials(url, headers):
    hdrs = dict(headers or {})
    password = _BRIDGE_PASSWORDS.get(urllib.parse.urlsplit(url).port)
    if password is not None and "Authorization" not in hdrs:
        token = base64.b64encode(("admin:%s" % password).encode()).decode()
        hdrs["Authorization"] = "Basic " + token
    return hdrs


def http_get(url, headers=None, timeout=10):
    """(status, body); status 0 when the connection failed."""
    req = urllib.request.Request(url, headers=_with_credentials(url, headers))
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def evict(directory):
    """Writes the files under `directory` back and drops them from the page cache (they stay on
    disk): the page cache then stops growing by a study per measurement, which on a VM whose
    fresh memory is slow to fault in (2026-11: ~220 MB/s once ~1.5 GB more are cached) made
    every later measurement disk-bound."""
    os.sync()
    for root, _dirs, files in os.walk(directory):
        for name in files:
            try:
                fd = os.open(os.path.join(root, name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def await_job(job_url, timeout, what="job"):
    """The job at job_url once it has ended. Each GET asks the server to hold its answer until
    the job ends (?wait=, up to 30 s a call), so the end is seen as it happens, without a
    client polling on the server's CPU. BenchError on an error answer or after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        wait = max(0, min(30, int(deadline - time.monotonic())))
        asked = time.monotonic()
        status, job = http_json("GET", "%s?wait=%d" % (job_url, wait), timeout=wait + 30)
        if status != 200:
            raise BenchError("GET %s answered %s: %r" % (job_url, status, job))
        if isinstance(job, dict) and job.get("state") in ("succeeded", "partial", "failed",
                                                          "canceled"):
            return job
        if time.monotonic() > deadline:
            raise BenchError("%s not finished after %d s: %r" % (what, timeout, job))
        if wait == 0 or time.monotonic() < asked + wait - 1:
            time.sleep(0.01)  # answered early (the server had enough waiters): poll


def http_json(method, url, body=None, timeout=30):
    """(status, parsed JSON or None); status 0 when the connection failed."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers=_with_credentials(url, {"Content-Type": "application/json",
                                                                 "Accept": "application/json"}))
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            payload = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        payload, status = e.read(), e.code
    except (urllib.error.URLError, OSError):
        return 0, None
    try:
        return status, json.loads(payload.decode()) if payload else None
    except ValueError:
        return status, {"_unparsed": payload[:500].decode(errors="replace")}


def bridge_studies(http_port):
    """PACS Bridge's GET /api/studies as a list (BenchError when it does not answer one)."""
    status, body = http_json("GET", "http://127.0.0.1:%d/api/studies" % http_port, timeout=60)
    if status != 200 or not isinstance(body, list):
        raise BenchError("PACS Bridge GET /api/studies answered %s: %.300r" % (status, body))
    return body


# --------------------------------------------------------------------------- files

def fs_type(path):
    """'ext4 /dev/vda (rw,relatime,...)' for the mount holding path, from /proc/mounts."""
    path = os.path.realpath(path)
    best = None
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, typ, opts = line.split()[:4]
                mnt = mnt.replace("\\040", " ")
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and \
                        (best is None or len(mnt) >= len(best[1])):
                    best = (dev, mnt, typ, opts)
    except OSError:
        pass
    return "%s on %s, %s (%s)" % (best[2], best[1], best[0], best[3]) if best else "?"


def count_files(directory):
    return sum(len(files) for _, _, files in os.walk(directory))


# --------------------------------------------------------------------------- peers

# Orthanc's memory allocator made steady, for the retrieve benchmark's PACS: no trimming, blocks
# of up to 16 MB from the heap. With glibc's defaults an association's thread sometimes returned
# each instance's buffers to the kernel (madvise) and faulted them in again (memset, page
# faults): the same C-GET of 400 CT instances then took 1.6 s instead of 0.32 s, in some rounds
# and not others, whoever asked. Not for the DICOMweb peer: there it slowed Orthanc's STOW-RS
# ingest 1.4x (one arena as well: 1.6x), and the storage cache was that peer's noise.
PEER_MALLOC = ("glibc.malloc.trim_threshold=1073741824:"
               "glibc.malloc.mmap_threshold=16777216")


class OrthancPeer:
    """Orthanc with its own storage under a work directory, on free DICOM and HTTP ports."""

    ae = "ORTHANC"

    def launch(self, cfg, work, name, modalities=None, extra=None, env=None):
        """extra: entries merged into the configuration (e.g. Plugins and DicomWeb); env:
        variables added to Orthanc's environment (e.g. GLIBC_TUNABLES=PEER_MALLOC)."""
        storage = os.path.join(work, "storage")
        os.mkdir(storage)
        os.mkdir(os.path.join(work, "tmp"))
        self.port = free_port()
        self.http_port = free_port()
        config = {
            "Name": name,
            "StorageDirectory": storage,
            "IndexDirectory": storage,
            "TemporaryDirectory": os.path.join(work, "tmp"),
            "DicomAet": self.ae,
            "DicomPort": self.port,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "Plugins": [],
            "MaximumPduLength": cfg.baseline_pdu,
            "SaveJobs": False,
            # Orthanc's storage cache (128 MB) is smaller than a benchmark study: every read
            # misses and churns it, and Orthanc's CPU for the same WADO-RS request then varies
            # 1x to 3x at random (1.3 k against 33 k page faults), whoever asks. Off, each
            # request reads the page cache the same way and the rounds measure the clients.
            "MaximumStorageCacheSize": 0,
        }
        if modalities is not None:
            config["DicomModalities"] = modalities
        config.update(extra or {})
        path = os.path.join(work, "orthanc.json")
        with open(path, "w") as f:
            json.dump(config, f, indent=2)
        self.log_path = os.path.join(work, "orthanc.log")
        self.proc = spawn(["Orthanc", path], env=dict(cfg.env_nodelay, **(env or {})),
                          log_path=self.log_path, cwd=work)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.http_port, path)

    def ready(self):
        return listening(self.port) and http_get(self.url("/system"), timeout=2)[0] == 200

    def count(self):
        status, body = http_get(self.url("/statistics"))
        if status != 200:
            raise BenchError("Orthanc GET /statistics answered %d" % status)
        return int(json.loads(body)["CountInstances"])


def start_bridge(cfg, work, http_port, dicom_port, admin_password=BRIDGE_PASSWORD, receiver_toml="",
                 bin_=None, extra_toml="", data_dir=None, server_toml=""):
    """`pacsbridge serve` (cfg.bridge_bin, or bin_) with an empty data directory under work (or data_dir, shared
    by servers on one PostgreSQL database), its HTTP API on http_port, one receiver (AE PACSBRIDGE) on
    dicom_port, with receiver_toml's extra lines (e.g. "anonymize = true"), server_toml's [server] lines
    (e.g. instance_id) and extra_toml's tables (e.g. [database]); returns (process, log path)."""
    data = data_dir or os.path.join(work, "data")
    if not data_dir:
        os.mkdir(data)
    path = os.path.join(work, "pacsbridge.toml")
    auth = "[auth]\nadmin_password = \"%s\"\n\n" % admin_password
    _BRIDGE_PASSWORDS[http_port] = admin_password
    with open(path, "w") as f:
        f.write("[server]\n"
                "data_dir = %s\n"
                "http_listen = \"127.0.0.1:%d\"\n"
                "ae_title = \"PACSBRIDGE\"\n"
                "%s\n"
                "%s"
                "%s"
                "%s"
                "[[receivers]]\n"
                "ae_title = \"PACSBRIDGE\"\n"
                "port = %d\n"
                "bind = \"127.0.0.1\"\n"
                "%s"
                % (json.dumps(data), http_port, cfg.bridge_server_toml, server_toml, auth, extra_toml, dicom_port,
                   receiver_toml))
    log_path = os.path.join(work, "pacsbridge.log")
    # Deliberately without TCP_NODELAY: the server must turn Nagle off by itself.
    proc = spawn([bin_ or cfg.bridge_bin, "serve", "--config", path], env=cfg.env_plain,
                 log_path=log_path, cwd=work)
    return proc, log_path


def wait_bridge_ready(cfg, proc, log_path, http_port, dicom_port):
    """Waits until a started `pacsbridge serve` answers /api/health and its receiver listens;
    BenchError (with the log's tail) when it exits or is not ready within cfg.start_timeout."""
    deadline = time.monotonic() + cfg.start_timeout
    url = "http://127.0.0.1:%d/api/health" % http_port
    while True:
        if proc.poll() is not None:
            raise BenchError("PACS Bridge exited (%s) while starting:\n%s" % (proc.returncode, tail(log_path)))
        if http_json("GET", url, timeout=2)[0] == 200 and listening(dicom_port):
            return
        if time.monotonic() > deadline:
            raise BenchError("PACS Bridge not ready after %d s:\n%s" % (cfg.start_timeout, tail(log_path)))
        time.sleep(0.05)


# --------------------------------------------------------------------------- settings

class Config:
    pass


def parse_common(cfg, root, need_bridge, bridge_hint):
    """The settings both drivers have; need_bridge: whether PACS Bridge is measured (then its
    binary must exist; bridge_hint says what to do otherwise)."""
    cfg.baseline_pdu = env_num("BENCH_BASELINE_PDU", 131072, int, 4096)
    cfg.warmup = env_num("BENCH_WARMUP", 1, int, 0)
    cfg.start_timeout = env_num("BENCH_START_TIMEOUT", 60, int, 1)
    cfg.stop_timeout = env_num("BENCH_STOP_TIMEOUT", 60, int, 1)
    cfg.keep = env_num("BENCH_KEEP", 0, int, 0)
    cfg.json_out = os.environ.get("BENCH_JSON") or None
    # Extra lines for PACS Bridge's [server] table, e.g. "fsync = false" (not a contract key).
    cfg.bridge_server_toml = os.environ.get("BENCH_BRIDGE_SERVER_TOML", "").replace("\\n", "\n")
    cfg.tmp_parent = os.environ.get("BENCH_TMPDIR") or os.environ.get("TMPDIR") or "/var/tmp"
    bin_ = os.environ.get("PACSBRIDGE_BIN")
    if not bin_:
        bin_ = os.path.join(root, "build", "release", "pacsbridge")
        if not os.path.exists(bin_) and os.path.exists(os.path.join(root, "build", "pacsbridge")):
            bin_ = os.path.join(root, "build", "pacsbridge")
    cfg.bridge_bin = os.path.abspath(bin_)
    cfg.bridge = need_bridge
    if need_bridge and not os.access(cfg.bridge_bin, os.X_OK):
        raise SystemExit("%s: PACS Bridge binary %s not found (%s)" % (PROG, cfg.bridge_bin,
                                                                       bridge_hint))
    plain = dict(os.environ)
    for var in ("TCP_NODELAY", "PACSBENCH_NETNS_TRIED", "PYTHONDONTWRITEBYTECODE",
                "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        plain.pop(var, None)
    cfg.env_plain = plain
    cfg.env_nodelay = dict(plain, TCP_NODELAY="1")
    return cfg


# --------------------------------------------------------------------------- report

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec="%.1f", none="-"):
    return none if v is None else spec % v


def rotate(seq, k):
    k %= len(seq)
    return seq[k:] + seq[:k]


def paired_ratio(results, key_a, key_b):
    """Median over rounds of a[r]/b[r] in instances/s (only rounds where both were measured)."""
    a, b = results.get(key_a, {}), results.get(key_b, {})
    return med([a[r]["inst_per_s"] / b[r]["inst_per_s"] for r in a if r in b])


def target_line(label, value, limit):
    """A report's line for a ratio target: 'PASS  label: 1.23 >= 1.00' (MISS below it, n/a when
    the ratio was not measured)."""
    if value is None:
        return "n/a   %s (not measured)" % label
    return "%-5s %s: %.2f >= %.2f" % ("PASS" if value >= limit else "MISS", label, value, limit)


def setup_header(cfg, tmp, dcmtk_tool, orthanc=True, storage_extra=""):
    """The report header's lines on storage, tools, machine and the binary under test."""
    lines = [
        "storage: %s (%s)%s" % (tmp, fs_type(tmp), storage_extra),
        "%s; %s" % (tool_version([dcmtk_tool, "--version"]).replace("$", "").strip(),
                    tool_version(["Orthanc", "--version"]) if orthanc else "no Orthanc"),
        "%d CPU(s), %s" % (os.cpu_count() or 0, os.uname().release),
    ]
    if cfg.bridge:
        st = os.stat(cfg.bridge_bin)
        lines.append("PACS Bridge: %s (built %s)%s" % (
            cfg.bridge_bin, time.strftime("%Y-%m-%d %H:%M", time.localtime(st.st_mtime)),
            "; [server] extra: %s" % cfg.bridge_server_toml.replace("\n", "; ")
            if cfg.bridge_server_toml.strip() else ""))
    return lines


def report_start(title, header, rounds):
    """The report's first lines, up to the throughput table's title."""
    out = ["", "=" * 78, title]
    out.extend("  " + line for line in header)
    out += ["=" * 78, "",
            "Throughput (median of %d round(s); [min-max] of instances/s; MB = 2^20 bytes)"
            % rounds]
    return out


def report_finish(out):
    """Adds the notes and prints the report to stdout."""
    if NOTES:
        out += ["", "Notes"]
        out.extend("  - " + n for n in notes_text())
    out.append("")
    print("\n".join(out), flush=True)


def write_json(cfg, data):
    """BENCH_JSON: every measurement (data) and the notes."""
    if cfg.json_out:
        with open(cfg.json_out, "w") as f:
            json.dump(dict(data, notes=notes_text()), f, indent=2)


# --------------------------------------------------------------------------- main

def main(description, parse_config, run, tmp_prefix, epilog=None, add_arguments=None):
    """A driver's main(): parse_config(args) -> cfg, then run(cfg, root, tmp) -> exit status
    in a fresh work directory, removed at the end (unless BENCH_KEEP) with every process
    started; SIGTERM and SIGHUP count as an interrupt."""
    ap = argparse.ArgumentParser(description=description, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="repository root")
    if add_arguments:
        add_arguments(ap)
    args = ap.parse_args()
    if not isolated() and not os.environ.get("BENCH_ALLOW_SHARED_NETNS"):
        log("%s: not inside a private network namespace; run bench/%s.sh" % (PROG, PROG))
        return 2
    cfg = parse_config(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    os.makedirs(cfg.tmp_parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=tmp_prefix, dir=cfg.tmp_parent)
    status = 0
    try:
        status = run(cfg, args.root, tmp)
    except BenchError as e:
        log("\n%s: FAILED: %s" % (PROG, e))
        status = 1
    except KeyboardInterrupt:
        log("\n%s: interrupted" % PROG)
        status = 130
    except Exception:  # a bug of the driver: still clean up
        import traceback
        traceback.print_exc()
        status = 1
    finally:
        stop_all_live()
        if cfg.keep:
            log("%s: kept %s" % (PROG, tmp))
        else:
            log("%s: removing %s" % (PROG, tmp))
            shutil.rmtree(tmp, ignore_errors=True)
    return status
