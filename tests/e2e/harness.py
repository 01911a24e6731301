"""Shared helpers of the black-box end-to-end tests (Python 3 standard library only).

Run every test file from the repository root inside a private network namespace:

    scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_receiver.py

Environment:
    PACSBRIDGE_BIN        the binary under test (default build/debug/pacsbridge, relative
                          to the repository root; build/release/pacsbridge and
                          build/pacsbridge are tried next when it does not exist)
    PACSBRIDGE_KEEP_TMP=1 keep the temporary directories (their path is printed)
    PACSBRIDGE_E2E_DATABASE=postgresql
                          servers keep their index in PostgreSQL instead of SQLite: one
                          private server per test process (scripts/pg-test-server.sh, TCP on
                          127.0.0.1 with a password), one database per data directory
"""

import atexit
import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tools"))
import dicomgen  # noqa: E402  (tools/dicomgen.py)

EXPLICIT_VR_LE = dicomgen.EXPLICIT_VR_LE
IMPLICIT_VR_LE = dicomgen.IMPLICIT_VR_LE


# --------------------------------------------------------------------------- isolation

def _check_isolated_netns():
    try:
        out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise RuntimeError("cannot run `ip -o link show` to check the network namespace: %s"
                           % e)
    names = [line.split(":")[1].strip().split("@")[0]
             for line in out.splitlines() if line.count(":") >= 2]
    if names != ["lo"]:
        raise RuntimeError(
            "the end-to-end tests open sockets and start servers listening on every "
            "interface; they must run in a private network namespace that has only `lo` "
            "(found: %s). Run them as:\n    scripts/in-netns.sh python3 -m unittest -v "
            "tests/e2e/test_x.py" % ", ".join(names))


_check_isolated_netns()


# --------------------------------------------------------------------------- basics

def binary():
    """Path of the pacsbridge binary under test (may not exist yet)."""
    env = os.environ.get("PACSBRIDGE_BIN")
    if env:
        p = Path(env)
        return p if p.is_absolute() else REPO_ROOT / p
    for rel in ("build/debug/pacsbridge", "build/release/pacsbridge", "build/pacsbridge"):
        if (REPO_ROOT / rel).exists():
            return REPO_ROOT / rel
    return REPO_ROOT / "build/debug/pacsbridge"


def require_binary(testcase=None):
    b = binary()
    if not (b.exists() and os.access(b, os.X_OK)):
        msg = ("pacsbridge binary not found at %s (build it, or set PACSBRIDGE_BIN)" % b)
        if testcase is not None:
            testcase.fail(msg)
        raise AssertionError(msg)
    return b


_handed_out_ports = set()


def free_port():
    """A loopback TCP port nobody listens on (and not handed out before in this process)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out_ports:
            _handed_out_ports.add(port)
            return port
    raise RuntimeError("no free port found")


def peak_rss_kb(pid):
    """A process's peak resident memory (VmHWM), in KB. Writing "5" to /proc/PID/clear_refs
    sets it back to the current resident size."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM for %d" % pid)


def wait_until(predicate, timeout=10.0, interval=0.1):
    """Call predicate until it returns a truthy value or timeout passes; return last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def tool_env():
    env = dict(os.environ)
    env["TCP_NODELAY"] = "1"
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy",
              "ALL_PROXY"):
        env.pop(k, None)
    return env


def server_env():
    """Environment of pacsbridge itself: without TCP_NODELAY, as users run it (the server
    must turn Nagle off for its own connections whatever the environment says)."""
    env = tool_env()
    env.pop("TCP_NODELAY", None)
    return env


def run_tool(args, timeout=120, env=None, **kw):
    """Run a command (DCMTK tool, pacsbridge CLI) with TCP_NODELAY=1; CompletedProcess.
    env: variables added to tool_env()."""
    full = tool_env()
    full.update(env or {})
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=full, **kw)


def start_tool(args, **kw):
    """Start a command in the background (stdout/stderr piped as text)."""
    return subprocess.Popen([str(a) for a in args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=tool_env(), **kw)


def echoscu(port, called_ae, calling_ae="ECHOSCU", host="127.0.0.1", timeout=60):
    return run_tool(["echoscu", "-aet", calling_ae, "-aec", called_ae, "-to", "10",
                     "-ta", "10", "-td", "20", host, port], timeout=timeout)


def storescu_args(port, called_ae, files, calling_ae="STORESCU", host="127.0.0.1",
                  extra=()):
    return (["storescu", "-aet", calling_ae, "-aec", called_ae, "-to", "10", "-ta", "10",
             "-td", "60"] + list(extra) + [host, str(port)] + [str(f) for f in files])


def storescu(port, called_ae, files, timeout=300, **kw):
    return run_tool(storescu_args(port, called_ae, files, **kw), timeout=timeout)


def store_or_refused(testcase, server, path, calling_ae):
    """storescu of one file to the server's first receiver: True for Success, False for 0xA700
    (out of resources); anything else fails the test."""
    cp = storescu(server.dicom_port, server.dicom_ae, [path], calling_ae=calling_ae, extra=["-v"],
                  timeout=60)
    if cp.returncode == 0:
        return True
    out = cp.stdout + cp.stderr
    testcase.assertIsNotNone(re.search(r"A700|Out\s*Of\s*Resources", out, re.IGNORECASE),
                             "neither Success nor 0xA700:\n%s" % proc_output(cp))
    return False


def proc_output(cp):
    return "exit %s\n--- stdout:\n%s\n--- stderr:\n%s" % (cp.returncode, cp.stdout, cp.stderr)


# --------------------------------------------------------------------------- HTTP

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_request(method, url, body=None, headers=None, timeout=30, ssl_context=None):
    """Return (status, headers, body bytes); never raises for HTTP error statuses.

    body: bytes/str sent as is, anything else is JSON-encoded; ssl_context: for https URLs
    (e.g. one that trusts a test's own CA).
    """
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = json.dumps(body).encode("utf-8")
        hdrs.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    opener = _opener if ssl_context is None else urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl_context))
    try:
        with opener.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        try:
            payload = e.read()
        except Exception:
            payload = b""
        return e.code, e.headers, payload


class EventStream:
    """A Server-Sent Events response (text/event-stream) read as it comes: status, headers,
    then next_event() -> (event name, parsed JSON data), or None when the stream ended (or,
    given `until` (a time.monotonic() value), when a line arrives after it: a keep-alive)."""

    def __init__(self, url, headers=None, timeout=30):
        import http.client
        from urllib.parse import urlsplit
        u = urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        hdrs = {"Accept": "text/event-stream"}
        hdrs.update(headers or {})
        self.conn.request("GET", u.path + ("?" + u.query if u.query else ""), headers=hdrs)
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.headers = self.response.headers
        self.comments = 0  # comment lines seen (keep-alives)

    def next_event(self, until=None):
        name, data = "message", []
        while True:
            line = self.response.readline()
            if not line or (until is not None and time.monotonic() > until):
                return None
            line = line.decode("utf-8").rstrip("\r\n")
            if line == "":
                if data:
                    return name, json.loads("\n".join(data))
                name = "message"
                continue
            if line.startswith(":"):
                self.comments += 1
            elif line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())

    def close(self):
        self.conn.close()


def parse_json(payload):
    if not payload:
        return None
    try:
        return json.loads(payload.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return {"_unparsed": payload[:2000].decode("utf-8", "replace")}


def http_json(method, url, body=None, timeout=30, headers=None, ssl_context=None):
    """Return (status, parsed JSON or None)."""
    status, _, payload = http_request(method, url, body, headers=headers, timeout=timeout,
                                      ssl_context=ssl_context)
    return status, parse_json(payload)


def basic_auth(user, password):
    """The Authorization header of HTTP basic authentication."""
    token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode("ascii")
    return {"Authorization": "Basic " + token}


# The password of the "admin" account of servers started by the tests ([auth] admin_password).
ADMIN_PASSWORD = "e2e-Admin-pw1"


# --------------------------------------------------------------------------- TOML

def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s = %s" % (k, toml_value(x)) for k, x in v.items()) + "}"
    raise TypeError("cannot write %r as TOML" % (v,))


# --------------------------------------------------------------------------- PostgreSQL

E2E_DATABASE = os.environ.get("PACSBRIDGE_E2E_DATABASE", "sqlite")


class PostgresServer:
    """A private PostgreSQL cluster for this test process, reached over TCP on loopback with a
    password, as a site's would be. Started on first use, stopped when the process ends."""

    USER = "pb"

    def __init__(self, tmpfs_mb=None):
        """tmpfs_mb: `small_dir` is a tmpfs of that many MB, seen by the server alone (root
        only; pg-test-server.sh's PG_TEST_TMPFS_MB), for a tablespace that fills up."""
        self.dir = Path(tempfile.mkdtemp(prefix="pacsbridge-e2e-pg-"))
        os.chmod(self.dir, 0o755)  # the cluster's owner ("postgres" when we are root) enters it
        self.port = free_port()
        self.password = base64.urlsafe_b64encode(os.urandom(12)).decode()
        self.small_dir = self.dir / "cluster" / "small"
        env = dict(os.environ, PG_TEST_PORT=str(self.port), PG_TEST_PASSWORD=self.password)
        if tmpfs_mb:
            env["PG_TEST_TMPFS_MB"] = str(tmpfs_mb)
        cp = subprocess.run([str(REPO_ROOT / "scripts" / "pg-test-server.sh"), "start",
                             str(self.dir / "cluster")], env=env, capture_output=True,
                            text=True, timeout=120)
        if cp.returncode != 0:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise AssertionError("PostgreSQL did not start: %s" % cp.stderr)
        self.admin_url = cp.stdout.strip()  # the Unix socket, for creating databases
        atexit.register(self.stop)

    def _script(self, command):
        cp = subprocess.run([str(REPO_ROOT / "scripts" / "pg-test-server.sh"), command,
                             str(self.dir / "cluster")], capture_output=True, text=True,
                            timeout=120)
        if cp.returncode != 0:
            raise AssertionError("pg-test-server.sh %s: %s" % (command, cp.stderr))

    def stop(self):
        self._script("stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def pause(self):
        """Stops the server (fast shutdown: its connections are cut), keeping its data."""
        self._script("pause")

    def resume(self):
        """Starts it again on the same port, with the same data."""
        self._script("resume")

    def psql(self, sql, database="postgres"):
        url = self.admin_url + "&dbname=" + database
        cp = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-tAc", sql],
                            capture_output=True, text=True, timeout=60)
        if cp.returncode != 0:
            raise AssertionError("psql %r: %s" % (sql, cp.stderr))
        return cp.stdout.strip()

    def url(self, database, password=None):
        return "postgresql://%s:%s@127.0.0.1:%d/%s" % (
            self.USER, self.password if password is None else password, self.port, database)

    def database_for(self, data_dir):
        """The database of a data directory (created on first use): a server started again
        on the same data directory finds its index again."""
        name = "e2e_" + hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
        if not self.psql("SELECT 1 FROM pg_database WHERE datname = '%s'" % name):
            self.psql("CREATE DATABASE %s" % name)
        return name


_postgres = None


def postgres():
    """The process's PostgreSQL server (started on first call)."""
    global _postgres
    if _postgres is None:
        _postgres = PostgresServer()
    return _postgres


def toml_config(*, data_dir, http_port, ae_title="PACSBRIDGE", receivers=(), nodes=(),
                extra="", server_extra="", database_path=None, admin_password=None,
                database_url=None):
    """server_extra: lines added to [server] (e.g. "max_associations = 1");
    database_path: the SQLite index file (default: index.db inside data_dir);
    database_url: the [database] url as it is (a PostgreSQL server of the test's own);
    admin_password: written as [auth] admin_password unless `extra` has its own [auth]."""
    lines = ["[server]",
             "data_dir = %s" % toml_value(str(data_dir)),
             "http_listen = %s" % toml_value("127.0.0.1:%d" % http_port),
             "ae_title = %s" % toml_value(ae_title)]
    if server_extra:
        lines.append(server_extra.rstrip("\n"))
    if database_url is not None:
        url = database_url
    elif database_path is None and E2E_DATABASE == "postgresql":
        url = postgres().url(postgres().database_for(data_dir))
    else:
        db = Path(database_path) if database_path is not None else Path(data_dir) / "index.db"
        url = "sqlite:%s" % db
    lines += ["",
              "[database]",
              "url = %s" % toml_value(url),
              ""]
    for table, items in (("receivers", receivers), ("nodes", nodes)):
        for item in items:
            lines.append("[[%s]]" % table)
            lines += ["%s = %s" % (k, toml_value(v)) for k, v in item.items()]
            lines.append("")
    if admin_password is not None and "[auth]" not in extra:
        lines += ["[auth]", "admin_password = %s" % toml_value(admin_password), ""]
    if extra:
        lines.append(extra)
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- processes

class _Process:
    """A peer process started by a test; stopped by its PID only."""

    name = "process"

    def __init__(self, workdir):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.log_path = self.workdir / ("%s.log" % self.name)
        self.returncode = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=80):
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return "(no log at %s)" % self.log_path
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout=30):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                self.returncode = "killed with SIGKILL after %ss without exiting on SIGTERM" \
                    % timeout
                return self.returncode
        self.returncode = self.proc.returncode
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class Server(_Process):
    """pacsbridge serve --config FILE, with its own data directory and ports."""

    name = "pacsbridge"

    def __init__(self, workdir, *, receivers=None, nodes=(), ae_title="PACSBRIDGE",
                 extra_toml="", http_port=None, server_toml="", database_path=None,
                 admin_password=ADMIN_PASSWORD, database_url=None, data_dir=None):
        """server_toml: lines added to the [server] table; data_dir: the data directory
        (default: workdir/data; servers on one PostgreSQL index may share one); database_path: where the SQLite
        index lives (default: inside the data directory); admin_password: the initial
        password of "admin", which api(), raw() and cli() use (an [auth] table in extra_toml
        takes its place; its admin_password is then the one used)."""
        super().__init__(workdir)
        m = re.search(r'admin_password\s*=\s*"([^"]*)"', extra_toml)
        self.admin_password = m.group(1) if m else admin_password
        # (user, password) that api(), raw() and cli() send; None: no credentials.
        self.credentials = ("admin", self.admin_password) if self.admin_password else None
        self.http_port = http_port or free_port()
        if receivers is None:
            receivers = [{"ae_title": "PACSBRIDGE", "port": free_port(),
                          "bind": "127.0.0.1"}]
        self.receivers = list(receivers)
        self.nodes = list(nodes)
        self.data_dir = Path(data_dir) if data_dir else self.workdir / "data"
        self.config_path = self.workdir / "config.toml"
        self.config_path.write_text(toml_config(
            data_dir=self.data_dir, http_port=self.http_port, ae_title=ae_title,
            receivers=self.receivers, nodes=self.nodes, extra=extra_toml,
            server_extra=server_toml, database_path=database_path,
            admin_password=None if m else admin_password, database_url=database_url), "utf-8")

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.http_port

    @property
    def instance_folder(self):
        """Where this server keeps its temp files and journals: the data directory itself, or,
        on a PostgreSQL index (servers may share the directory), instances/<instance id>."""
        text = self.config_path.read_text("utf-8")
        if not re.search(r'^url = "postgres', text, re.M):
            return self.data_dir
        m = re.search(r'^instance_id = "([^"]+)"', text, re.M)
        ident = m.group(1) if m else re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()[:64])
        return self.data_dir / "instances" / ident

    @property
    def tmp_dir(self):
        return self.instance_folder / "tmp"

    @property
    def journal_dir(self):
        return self.instance_folder / "journal"

    @property
    def dicom_port(self):
        return self.receivers[0]["port"]

    @property
    def dicom_ae(self):
        return self.receivers[0]["ae_title"]

    def serve_argv(self):
        """The command line that start() runs (subclasses may wrap it, e.g. in unshare)."""
        return [str(require_binary()), "serve", "--config", str(self.config_path)]

    def start(self, timeout=30, env=None):
        """env: variables added to this start's environment (the server's test-only settings,
        e.g. {"PACSBRIDGE_TEST_INDEX_DELAY_MS": "1000"}); a later start() goes without them."""
        argv = self.serve_argv()
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(argv,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=str(self.workdir), env=dict(server_env(), **(env or {})))
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("pacsbridge serve exited with %s during start-up; log:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            try:
                status, body = http_json("GET", self.url + "/api/health", timeout=2,
                                         ssl_context=self.ssl_context)
                if status == 200 and isinstance(body, dict) and body.get("status") == "ok":
                    return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise AssertionError("pacsbridge did not answer GET /api/health with 200 "
                             "{\"status\":\"ok\"} within %ss; log:\n%s"
                             % (timeout, self.log_tail()))

    # For an https url (a subclass's): the context that trusts the test's certificate.
    ssl_context = None

    _DEFAULT = object()

    def _auth_headers(self, auth, headers=None):
        hdrs = dict(headers or {})
        creds = self.credentials if auth is Server._DEFAULT else auth
        if creds and "Authorization" not in hdrs:
            hdrs.update(basic_auth(*creds))
        return hdrs

    def api(self, method, path, body=None, timeout=30, auth=_DEFAULT, headers=None):
        """(status, parsed JSON) of a call to the REST API (path starts with /api), as the
        admin by HTTP basic unless auth says otherwise: (user, password), or None for none."""
        return http_json(method, self.url + path, body, timeout=timeout,
                         headers=self._auth_headers(auth, headers), ssl_context=self.ssl_context)

    def raw(self, method, path, body=None, headers=None, timeout=30, auth=_DEFAULT):
        """(status, headers, bytes) of a call to the REST API; credentials as for api(), and
        none added when headers has its own Authorization."""
        return http_request(method, self.url + path, body,
                            headers=self._auth_headers(auth, headers), timeout=timeout,
                            ssl_context=self.ssl_context)

    def events(self, path, timeout=30, auth=_DEFAULT):
        """An EventStream of GET path (plain HTTP), as the admin unless auth says otherwise."""
        return EventStream(self.url + path, headers=self._auth_headers(auth), timeout=timeout)

    def cli(self, *args, timeout=60, auth=_DEFAULT):
        """Run the pacsbridge CLI against this server (--server appended), as the admin
        ($PACSBRIDGE_USER / $PACSBRIDGE_PASSWORD) unless auth says otherwise."""
        creds = self.credentials if auth is Server._DEFAULT else auth
        env = {"PACSBRIDGE_USER": creds[0], "PACSBRIDGE_PASSWORD": creds[1]} if creds else {}
        return run_tool([require_binary()] + list(args) + ["--server", self.url],
                        timeout=timeout, env=env)

    def stop_and_check(self):
        """Stop with SIGTERM and assert exit code 0."""
        code = self.stop()
        if code not in (None, 0):
            raise AssertionError("pacsbridge serve (pid %s) exited with %s after SIGTERM, "
                                 "expected 0; log tail:\n%s"
                                 % (self.proc.pid, code, self.log_tail()))
        return code


class Orthanc(_Process):
    """The Debian Orthanc package with its own storage, ports and AE title ORTHANC."""

    name = "orthanc"

    DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

    def __init__(self, workdir, aet="ORTHANC", extra=None, dicomweb=False, users=None):
        """extra: entries merged into Orthanc's configuration (e.g. DicomModalities);
        dicomweb: load the DICOMweb plugin (Debian orthanc-dicomweb) with its root at
        /dicom-web/ (see dicomweb_url); users: {name: password} for HTTP basic authentication
        of the REST API and DICOMweb (AuthenticationEnabled; rest() and start() then send the
        first user's credentials)."""
        super().__init__(workdir)
        self.aet = aet
        self.users = dict(users or {})
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.config_path = self.workdir / "orthanc.json"
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        self.config_path.write_text(json.dumps({
            "Name": "pacsbridge-e2e",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "DicomAet": aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "DicomCheckCalledAet": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users,
            "Plugins": [self.DICOMWEB_PLUGIN] if dicomweb else [],
            **({"DicomWeb": {"Enable": True, "Root": "/dicom-web/"}} if dicomweb else {}),
            "LuaScripts": [],
            "DicomModalities": {},
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": True,
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            **(extra or {}),
        }, indent=2), "utf-8")

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.http_port

    @property
    def dicomweb_url(self):
        """The DICOMweb root (with dicomweb=True)."""
        return self.url + "/dicom-web/"

    def auth_headers(self, user=None, password=None):
        """An Authorization header for `user` (default: the first of `users`), or {}."""
        if user is None:
            if not self.users:
                return {}
            user, password = next(iter(self.users.items()))
        import base64
        token = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8")).decode("ascii")
        return {"Authorization": "Basic " + token}

    def rest(self, method, path, body=None, headers=None, timeout=30):
        """(status, headers, bytes) of a call to Orthanc's HTTP server, authenticated as the
        first of `users` when there are users."""
        hdrs = self.auth_headers()
        hdrs.update(headers or {})
        return http_request(method, self.url + path, body, headers=hdrs, timeout=timeout)

    def rest_json(self, method, path, body=None, timeout=30):
        status, _, payload = self.rest(method, path, body, timeout=timeout)
        return status, parse_json(payload)

    def upload(self, path):
        """POST /instances with the file's bytes; Orthanc's answer ({"ID", "Status", ...})."""
        data = Path(path).read_bytes()
        status, _, payload = self.rest("POST", "/instances", data,
                                       headers={"Content-Type": "application/dicom"})
        body = parse_json(payload)
        if status != 200 or not isinstance(body, dict) or "ID" not in body:
            raise AssertionError("POST %s/instances (%s) -> %s %r"
                                 % (self.url, path, status, body))
        return body

    def start(self, timeout=30):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(["Orthanc", str(self.config_path)],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         cwd=str(self.workdir), env=tool_env())
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("Orthanc exited with %s during start-up; log:\n%s"
                                     % (self.proc.returncode, self.log_tail()))
            try:
                status, _ = self.rest_json("GET", "/system", timeout=2)
                if status == 200:
                    # The DICOM port opens a little after HTTP in some versions.
                    if echoscu(self.dicom_port, self.aet, timeout=15).returncode == 0:
                        return self
            except (OSError, urllib.error.URLError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.2)
        raise AssertionError("Orthanc did not answer GET /system within %ss; log:\n%s"
                             % (timeout, self.log_tail()))


class DcmQRSCP(_Process):
    """DCMTK's dcmqrscp, a second Q/R SCP besides Orthanc (multi-process mode: in single-process
    mode -s, the Debian 3.6.7 build dies with SIGSEGV after the first association). AE title
    QRSCP, any caller; `destinations`: {AE title: port} on 127.0.0.1 it may C-MOVE to."""

    name = "dcmqrscp"

    def __init__(self, workdir, aet="QRSCP", destinations=None):
        super().__init__(workdir)
        self.aet = aet
        self.dicom_port = free_port()
        db = self.workdir / "db"
        db.mkdir(exist_ok=True)
        hosts = "".join("dest%d = (%s, 127.0.0.1, %d)\n" % (i, ae, port)
                        for i, (ae, port) in enumerate(sorted((destinations or {}).items())))
        self.config_path = self.workdir / "dcmqrscp.cfg"
        self.config_path.write_text(
            "NetworkTCPPort = %d\nMaxPDUSize = 16384\nMaxAssociations = 4\n"
            "HostTable BEGIN\n%sHostTable END\nVendorTable BEGIN\nVendorTable END\n"
            "AETable BEGIN\n%s %s RW (1000, 1024mb) ANY\nAETable END\n"
            % (self.dicom_port, hosts, aet, db), "utf-8")

    def start(self, timeout=20):
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                ["dcmqrscp", "-c", str(self.config_path), str(self.dicom_port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=str(self.workdir),
                env=tool_env())
        finally:
            log.close()
        up = wait_until(lambda: not self.running() or echoscu(
            self.dicom_port, self.aet, timeout=10).returncode == 0, timeout, 0.2)
        if not (up and self.running()):
            raise AssertionError("dcmqrscp did not answer C-ECHO within %ss; log:\n%s"
                                 % (timeout, self.log_tail()))
        return self


def make_cert(directory, name, san="IP:127.0.0.1,DNS:localhost"):
    """A self-signed certificate for CN=name and `san` (subject alternative names) and its key
    (mode 600), made by openssl."""
    key, cert = directory / (name + ".key"), directory / (name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=" + name,
                    "-addext", "subjectAltName=" + san],
                   check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return key, cert


def make_ca(directory, name="E2E Test CA"):
    """A self-signed CA certificate and key made by openssl: (key, cert) paths."""
    key, cert = directory / "ca.key", directory / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=" + name,
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                   check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return key, cert


def make_signed_cert(directory, name, ca, san="IP:127.0.0.1"):
    """A leaf certificate for CN=name and `san`, signed by ca = (ca key, ca cert) from make_ca:
    (key, cert) paths; the cert file holds the leaf only."""
    ca_key, ca_cert = ca
    key, csr, cert = (directory / (name + ".key"), directory / (name + ".csr"),
                      directory / (name + ".pem"))
    ext = directory / (name + ".ext")
    ext.write_text("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                   "extendedKeyUsage=serverAuth\n" % san, "utf-8")
    subprocess.run(["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(csr), "-subj", "/CN=" + name],
                   check=True, capture_output=True, timeout=60)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert),
                    "-CAkey", str(ca_key), "-CAcreateserial", "-out", str(cert), "-days", "2",
                    "-extfile", str(ext)], check=True, capture_output=True, timeout=60)
    key.chmod(0o600)
    return key, cert


class Forwarder:
    """A TCP forwarder on a free loopback port in front of 127.0.0.1:upstream_port.

    tls=(cert file, key file): it terminates TLS with that certificate (clients speak HTTPS to
    it, it speaks plain bytes to the upstream), e.g. an HTTPS front of Orthanc's HTTP server.
    record=True: it keeps every byte clients sent (client_bytes()), e.g. to count HTTP
    requests. handshake_errors lists the TLS handshakes that failed (str of the exception)."""

    def __init__(self, upstream_port, tls=None, record=False):
        import ssl
        self.upstream_port = upstream_port
        self.ctx = None
        if tls is not None:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(str(tls[0]), str(tls[1]))
        self.record = record
        self._sent = bytearray()
        self.handshake_errors = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def client_bytes(self):
        with self.lock:
            return bytes(self._sent)

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        import ssl
        with self.lock:
            self.conns.append(client)
        if self.ctx is not None:
            try:
                client.settimeout(10)
                client = self.ctx.wrap_socket(client, server_side=True)
                client.settimeout(None)
            except (OSError, ssl.SSLError) as e:
                with self.lock:
                    self.handshake_errors.append(str(e))
                try:
                    client.close()
                except OSError:
                    pass
                return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            upstream.settimeout(None)
        except OSError:
            client.close()
            return
        with self.lock:
            self.conns.append(upstream)
        self._relay(client, upstream)

    def _relay(self, client, upstream):
        """Both directions in one thread: an SSL socket must not be read and written by two
        threads at once. A TLS record that select() announced arrives whole soon after."""
        import select
        try:
            while not self.closed:
                ready = [client] if getattr(client, "pending", lambda: 0)() else []
                if not ready:
                    ready, _, _ = select.select([client, upstream], [], [], 1.0)
                for src in ready:
                    data = src.recv(65536)
                    if not data:
                        return
                    if src is client:
                        if self.record:
                            with self.lock:
                                self._sent += data
                        upstream.sendall(data)
                    else:
                        client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass

    def close(self):
        self.closed = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.conns:
                try:
                    s.close()
                except OSError:
                    pass


class ThrottledProxy:
    """A TCP proxy on 127.0.0.1 in front of upstream_port. Bytes in one direction are paced at
    `rate` bytes/s (None: as fast as possible; may be changed while running): throttle="download"
    paces upstream → client (a slow PACS sending to us), "upload" client → upstream (a slow peer
    receiving from us). When one side closes or fails, both sides are closed, so a SIGKILLed
    upstream looks to the client like a connection the peer dropped.
    port: listen on that port (default: a free one), e.g. one a node already points at.
    source: the local address the connections to upstream come from (default: the system's).
    record: keep every connection as a session {"up": client→upstream bytes, "down":
    upstream→client bytes}, in the order accepted (sessions(), session_count()).
    idle_for(): seconds since any byte went through; open_sessions(): connections alive.
    gate: a function (session index, command) -> None | "abort" | "close" that sees every DIMSE
    command going client → upstream (command = {(group, element): raw value}, as
    parse_implicit_command gives it); see _forward_gated. Without a gate the bytes go through
    untouched. With record, "up" keeps what the client sent, also what the gate held back, and
    "down" the A-ABORT the gate sent; `gated` lists the commands the gate stopped.
    refuse: a function (session index) -> bool asked as each connection is accepted; True
    closes it at once, before a byte is read and without connecting upstream (it still counts
    as a session, with nothing in it)."""

    def __init__(self, upstream_port, rate=None, throttle="download", source=None, port=0,
                 record=False, gate=None, refuse=None):
        self.upstream_port = upstream_port
        self.gate = gate
        self.refuse = refuse
        # What the gate stopped: [{"session": index, "command": {...}, "action": str}].
        self.gated = []
        self.source = source
        self.rate = rate
        self.upload = throttle == "upload"
        self.record = record
        self.closed = False
        self.conns = []
        self._sessions = []
        self._last = time.monotonic()
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            if self.refuse is not None:
                with self.lock:
                    index = len(self._sessions)  # only this thread adds sessions
                if self.refuse(index):
                    with self.lock:
                        self._sessions.append({"up": bytearray(), "down": bytearray(),
                                               "pumps": 0, "index": index})
                        self._last = time.monotonic()
                    client.close()
                    continue
            try:
                upstream = socket.create_connection(
                    ("127.0.0.1", self.upstream_port), timeout=10,
                    source_address=(self.source, 0) if self.source else None)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            session = {"up": bytearray(), "down": bytearray(), "pumps": 2}
            with self.lock:
                if self.closed:
                    client.close()
                    upstream.close()
                    return
                session["index"] = len(self._sessions)
                self.conns += [client, upstream]
                self._sessions.append(session)
                self._last = time.monotonic()
            threading.Thread(target=self._pump, args=(client, upstream, session, "up"),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, session, "down"),
                             daemon=True).start()

    def _pump(self, src, dst, session, direction):
        throttled = (direction == "up") == self.upload
        try:
            if direction == "up" and self.gate is not None:
                return self._forward_gated(src, dst, session, throttled)
            while True:
                data = src.recv(16384 if throttled else 65536)
                if not data:
                    break
                with self.lock:
                    if self.record:
                        session[direction] += data
                    self._last = time.monotonic()
                dst.sendall(data)
                rate = self.rate
                if throttled and rate:
                    time.sleep(len(data) / float(rate))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass
            with self.lock:
                session["pumps"] -= 1
                self._last = time.monotonic()

    # PS3.8 9.3.8: PDU type 07, length 4, source 0 (DICOM UL service-user), reason 0.
    A_ABORT = bytes([0x07, 0, 0, 0, 0, 0x04, 0, 0, 0, 0])

    def _forward_gated(self, client, upstream, session, throttled):
        """client → upstream PDU by PDU (PS3.8 9.3.1: type, reserved, 4-byte length). The PDUs
        of a DIMSE command (P-DATA-TF fragments with bit 0 of the message control header set,
        joined per presentation context until bit 1) are held until the command is whole, then
        given to the gate. None: they go on. "abort" or "close": nothing more of that message
        goes upstream; once the client has sent all of it (its data set's last fragment, when
        CommandDataSetType (0000,0800) is not 0x0101), "abort" answers it with an A-ABORT and
        waits up to 10 s for it to close the connection (the acceptor of an A-ABORT closes,
        PS3.8 9.2.3, AA-3), "close" just closes. Either way both connections are then closed.
        Acting only on a whole message means the client is reading, not writing, when the
        connection goes: what it sees is the abort or the close, not a failed write. Decisions
        are made per PDU: DCMTK sends a command in PDUs of its own."""
        buf, held, partial = bytearray(), [], {}
        cutting, message_done = None, False
        while True:
            data = client.recv(16384 if throttled else 65536)
            if not data:
                return
            with self.lock:
                if self.record:
                    session["up"] += data
                self._last = time.monotonic()
            buf += data
            while len(buf) >= 6:
                pdu_type, _, length = struct.unpack_from(">BBI", buf, 0)
                if len(buf) < 6 + length:
                    break
                pdu = bytes(buf[:6 + length])
                del buf[:6 + length]
                if pdu_type == 0x04:
                    p = 6
                    while p + 6 <= len(pdu):
                        item_len, pc_id, header = struct.unpack_from(">IBB", pdu, p)
                        fragment = pdu[p + 6:p + 4 + item_len]
                        p += 4 + item_len
                        if not header & 0x01:  # a data set fragment
                            if cutting and header & 0x02:
                                message_done = True
                            continue
                        command = partial.setdefault(pc_id, bytearray())
                        command += fragment
                        if not header & 0x02 or cutting:
                            continue
                        fields = parse_implicit_command(bytes(command))
                        del partial[pc_id]
                        action = self.gate(session["index"], fields)
                        if action:
                            if action not in ("abort", "close"):
                                raise ValueError("gate answered %r" % (action,))
                            cutting = action
                            with self.lock:
                                self.gated.append({"session": session["index"],
                                                   "command": fields, "action": action})
                            # CommandDataSetType 0x0101: no data set follows (PS3.7 E.1).
                            message_done = fields.get((0x0000, 0x0800), b"")[:2] == b"\x01\x01"
                elif cutting:
                    message_done = True  # anything else ends the message too
                if cutting:
                    held = []
                    if message_done:
                        if cutting == "abort":
                            self._abort_client(client, session)
                        return
                    continue
                held.append(pdu)
                if partial:
                    continue  # a command still incomplete: hold it
                for h in held:
                    upstream.sendall(h)
                held = []
                rate = self.rate
                if throttled and rate:
                    time.sleep(len(pdu) / float(rate))

    def _abort_client(self, client, session):
        # Sent from this thread while the other pump may relay the upstream's bytes: whole
        # only because the upstream is silent here (a PACS waits for the request held back).
        client.sendall(self.A_ABORT)
        with self.lock:
            if self.record:
                session["down"] += self.A_ABORT
        client.settimeout(10)
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    return
                with self.lock:
                    if self.record:
                        session["up"] += data
        except (socket.timeout, OSError):
            return

    def session_count(self):
        with self.lock:
            return len(self._sessions)

    def sessions(self, start=0, stop=None):
        """Copies of the recorded sessions [start:stop]: [{"up": bytes, "down": bytes}]."""
        with self.lock:
            return [{"up": bytes(s["up"]), "down": bytes(s["down"])}
                    for s in self._sessions[start:stop]]

    def open_sessions(self):
        with self.lock:
            return sum(1 for s in self._sessions if s["pumps"] > 0)

    def idle_for(self):
        with self.lock:
            return time.monotonic() - self._last

    def close(self):
        self.closed = True
        # shutdown() first: a plain close() leaves the socket listening while the accept
        # thread is blocked in accept() (then the port cannot be bound again).
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self.conns)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass


class SilentListener:
    """A TCP listener that accepts connections and never sends anything."""

    def __init__(self):
        import threading
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.closed = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()


# --------------------------------------------------------------------------- raw DICOM

VERIFICATION_SOP_CLASS = "1.2.840.10008.1.1"
APPLICATION_CONTEXT = "1.2.840.10008.3.1.1.1"
PDU_NAMES = {1: "A-ASSOCIATE-RQ", 2: "A-ASSOCIATE-AC", 3: "A-ASSOCIATE-RJ", 4: "P-DATA-TF",
             5: "A-RELEASE-RQ", 6: "A-RELEASE-RP", 7: "A-ABORT"}


def _ae_field(ae):
    raw = ae.encode("ascii")
    if not 0 < len(raw) <= 16:
        raise ValueError("AE title must be 1..16 characters: %r" % ae)
    return raw.ljust(16, b" ")


def _pdu_item(item_type, payload):
    return struct.pack(">BBH", item_type, 0, len(payload)) + payload


def _uid_bytes(uid):
    return uid.encode("ascii")  # UIDs in PDU items are not padded (PS3.8 9.3.2.2)


def associate_rq_pdu(called_ae, calling_ae, contexts=None, max_pdu=16384):
    """An A-ASSOCIATE-RQ PDU (PS3.8 9.3.2).

    contexts: list of (abstract syntax UID, [transfer syntax UIDs]); presentation context
    IDs 1, 3, 5, ... in that order. Default: Verification with implicit VR little endian.
    """
    if contexts is None:
        contexts = [(VERIFICATION_SOP_CLASS, [IMPLICIT_VR_LE])]
    items = _pdu_item(0x10, _uid_bytes(APPLICATION_CONTEXT))
    for i, (abstract, syntaxes) in enumerate(contexts):
        sub = _pdu_item(0x30, _uid_bytes(abstract))
        for ts in syntaxes:
            sub += _pdu_item(0x40, _uid_bytes(ts))
        items += _pdu_item(0x20, struct.pack(">BBBB", 2 * i + 1, 0, 0, 0) + sub)
    user = (_pdu_item(0x51, struct.pack(">I", max_pdu))
            + _pdu_item(0x52, _uid_bytes(dicomgen.IMPLEMENTATION_CLASS_UID))
            + _pdu_item(0x55, b"E2E_HARNESS"))
    items += _pdu_item(0x50, user)
    body = (struct.pack(">HH", 1, 0) + _ae_field(called_ae) + _ae_field(calling_ae)
            + b"\0" * 32 + items)
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def _implicit_element(group, elem, value):
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", group, elem, len(value)) + value


def echo_rq_command(message_id=1):
    """The command set of a C-ECHO-RQ, implicit VR little endian (PS3.7 9.3.5)."""
    body = (_implicit_element(0x0000, 0x0002, VERIFICATION_SOP_CLASS.encode("ascii"))
            + _implicit_element(0x0000, 0x0100, struct.pack("<H", 0x0030))
            + _implicit_element(0x0000, 0x0110, struct.pack("<H", message_id))
            + _implicit_element(0x0000, 0x0800, struct.pack("<H", 0x0101)))
    return _implicit_element(0x0000, 0x0000, struct.pack("<I", len(body))) + body


def parse_implicit_command(data):
    """{(group, element): raw value bytes} of an implicit VR little endian command set."""
    out, pos = {}, 0
    while pos + 8 <= len(data):
        group, elem, length = struct.unpack_from("<HHI", data, pos)
        pos += 8
        out[(group, elem)] = data[pos:pos + length]
        pos += length
    return out


class AssociationRejected(Exception):
    def __init__(self, result, source, reason):
        super().__init__("A-ASSOCIATE-RJ result=%d source=%d reason=%d"
                         % (result, source, reason))
        self.result, self.source, self.reason = result, source, reason


class DicomAssociation:
    """A minimal DICOM upper-layer client on a plain socket, for holding associations open,
    queueing them, and reading the raw A-ASSOCIATE-AC / -RJ / A-ABORT.

        a = DicomAssociation(port, "PACSBRIDGE")
        a.request()              # connect and send the A-ASSOCIATE-RQ only
        pdu_type, body = a.read_pdu(timeout=10)
        a.associate()            # both; returns the AC body, raises AssociationRejected
        a.echo()                 # C-ECHO over presentation context 1; returns the status
        a.release()              # A-RELEASE-RQ, waits for the A-RELEASE-RP
    """

    def __init__(self, port, called_ae, calling_ae="E2EPYSCU", host="127.0.0.1",
                 contexts=None, timeout=30):
        self.host, self.port = host, port
        self.called_ae, self.calling_ae = called_ae, calling_ae
        self.contexts = contexts
        self.timeout = timeout
        self.sock = None
        self.accepted = False
        self.reject = None  # (result, source, reason) once an A-ASSOCIATE-RJ was read

    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def request(self):
        if self.sock is None:
            self.connect()
        self.sock.sendall(associate_rq_pdu(self.called_ae, self.calling_ae, self.contexts))
        return self

    def _recv_exact(self, n, timeout):
        self.sock.settimeout(timeout)
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("peer closed the connection after %d of %d bytes"
                                      % (len(buf), n))
            buf += chunk
        return buf

    def read_pdu(self, timeout=None):
        """(PDU type, body bytes). socket.timeout if nothing arrives in time."""
        timeout = self.timeout if timeout is None else timeout
        pdu_type, _, length = struct.unpack(">BBI", self._recv_exact(6, timeout))
        return pdu_type, self._recv_exact(length, timeout)

    def nothing_received(self, timeout):
        """True if the peer sent nothing (and did not close) within timeout seconds."""
        self.sock.settimeout(timeout)
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except socket.timeout:
            return True
        return False  # data arrived, or the peer closed

    def read_associate_answer(self, timeout=None):
        """Read the answer to the A-ASSOCIATE-RQ: returns the AC body; raises
        AssociationRejected for an RJ and ConnectionError for an abort / anything else."""
        pdu_type, body = self.read_pdu(timeout)
        if pdu_type == 0x02:
            self.accepted = True
            return body
        if pdu_type == 0x03:
            self.reject = (body[1], body[2], body[3])
            raise AssociationRejected(*self.reject)
        raise ConnectionError("expected A-ASSOCIATE-AC or -RJ, got %s (%d bytes: %r)"
                              % (PDU_NAMES.get(pdu_type, hex(pdu_type)), len(body), body[:64]))

    def associate(self, timeout=None):
        self.request()
        return self.read_associate_answer(timeout)

    def echo(self, message_id=1, timeout=None):
        """Send a C-ECHO-RQ on presentation context 1; return the response status."""
        cmd = echo_rq_command(message_id)
        pdv = struct.pack(">IBB", len(cmd) + 2, 1, 0x03) + cmd  # command, last fragment
        self.sock.sendall(struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv)
        data = b""
        while True:
            pdu_type, body = self.read_pdu(timeout)
            if pdu_type != 0x04:
                raise ConnectionError("expected P-DATA-TF, got %s"
                                      % PDU_NAMES.get(pdu_type, hex(pdu_type)))
            pos, last = 0, False
            while pos + 6 <= len(body):
                length, _, header = struct.unpack_from(">IBB", body, pos)
                data += body[pos + 6:pos + 4 + length]
                pos += 4 + length
                last = last or (header & 0x03) == 0x03
            if last:
                break
        fields = parse_implicit_command(data)
        command = struct.unpack("<H", fields[(0x0000, 0x0100)])[0]
        if command != 0x8030:
            raise ConnectionError("expected C-ECHO-RSP, got command 0x%04x" % command)
        return struct.unpack("<H", fields[(0x0000, 0x0900)])[0]

    def release(self, timeout=None):
        """A-RELEASE-RQ, then wait for the A-RELEASE-RP; closes the socket."""
        self.sock.sendall(struct.pack(">BBI", 0x05, 0, 4) + b"\0" * 4)
        try:
            pdu_type, body = self.read_pdu(timeout)
            if pdu_type != 0x06:
                raise ConnectionError("expected A-RELEASE-RP, got %s (%r)"
                                      % (PDU_NAMES.get(pdu_type, hex(pdu_type)), body[:16]))
        finally:
            self.close()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None


# --------------------------------------------------------------------------- observation

def socket_bytes_acked(pid, port):
    """bytes_acked of the TCP connection of process pid to port (ss -ti), or None."""
    out = subprocess.run(["ss", "-tinpH", "state", "established",
                          "( dport = :%d )" % port], capture_output=True, text=True,
                         timeout=10).stdout
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if "pid=%d," % pid in line:
            info = " ".join(lines[i:i + 2])
            m = re.search(r"bytes_acked:(\d+)", info)
            return int(m.group(1)) if m else 0
    return None


def tcp_listeners(port):
    """How many sockets of this network namespace listen on TCP `port` (/proc/net/tcp and
    tcp6; no connection is made, so no peer logs anything)."""
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 3 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                n += 1
    return n


def files_under(directory):
    """Every file below directory (recursively); [] if it does not exist."""
    found = []
    for root, _, files in os.walk(str(directory)):
        found += [os.path.join(root, f) for f in files]
    return found


# --------------------------------------------------------------------------- test base

class E2ETestCase(unittest.TestCase):
    """Base class: a class temp dir, cleanup of peers by PID, log tails on failure."""

    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = Path(tempfile.mkdtemp(prefix="pacsbridge-e2e-%s-" % cls.__name__))
        cls._peers = []
        cls.addClassCleanup(cls._remove_tmp)

    @classmethod
    def _remove_tmp(cls):
        if os.environ.get("PACSBRIDGE_KEEP_TMP"):
            print("\n[e2e] keeping %s" % cls.tmp, file=sys.stderr)
            return
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def start_class_server(cls, **kw):
        """Start a pacsbridge server shared by the class; stopped (exit 0 asserted) at end."""
        require_binary()
        srv = Server(cls.tmp / ("server%d" % len(cls._peers)), **kw)
        cls._peers.append(srv)
        cls.addClassCleanup(srv.stop_and_check)
        srv.start()
        return srv

    @classmethod
    def start_class_orthanc(cls, **kw):
        orth = Orthanc(cls.tmp / ("orthanc%d" % len(cls._peers)), **kw)
        cls._peers.append(orth)
        cls.addClassCleanup(orth.stop)
        orth.start()
        return orth

    def start_server(self, env=None, **kw):
        """A server for this test only; stopped (exit 0 asserted) after the test. env: as
        Server.start's."""
        require_binary(self)
        srv = Server(tempfile.mkdtemp(prefix=self._testMethodName[:40] + "-",
                                      dir=str(self.tmp)), **kw)
        self._peers.append(srv)
        self.addCleanup(srv.stop_and_check)
        srv.start(env=env)
        return srv

    def mkdtemp(self, prefix="t"):
        return Path(tempfile.mkdtemp(prefix=prefix + "-", dir=str(self.tmp)))

    def run(self, result=None):
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for peer in getattr(type(self), "_peers", []):
                sys.stderr.write("\n----- tail of %s log (%s), after %s -----\n%s\n-----\n"
                                 % (peer.name, peer.log_path, self.id(), peer.log_tail()))
        return out

    # ---- assertions shared by several files

    def assertJsonError(self, status, body, field=None, expected_status=400):
        self.assertEqual(status, expected_status, "body: %r" % (body,))
        self.assertIsInstance(body, dict, "error answer is not a JSON object: %r" % (body,))
        self.assertIsInstance(body.get("error"), str, "no \"error\" string in %r" % (body,))
        self.assertTrue(body["error"].strip(), "empty \"error\" in %r" % (body,))
        if field is not None:
            self.assertEqual(body.get("field"), field, "wrong \"field\" in %r" % (body,))

    def assertHealthy(self, server, msg=None):
        """GET /api/health: 200, status ok, and every receiver that should listen does."""
        status, body = server.api("GET", "/api/health")
        self.assertEqual((status, body.get("status"), body.get("receivers_ok"),
                          body.get("receivers_not_listening")), (200, "ok", True, []),
                         "%s%r" % (msg + ": " if msg else "", body))

    def assertMatchesCI(self, pattern, text, msg=None):
        self.assertIsNotNone(re.search(pattern, text or "", re.IGNORECASE),
                             msg or "%r not found in %r" % (pattern, text))


def browse_labels(server, *labels):
    """GET /api/projects[/{p}/subjects[/{s}/sessions[/{e}/series]]] -> list ([] if not 200)."""
    path = "/api/projects"
    for label, child in zip(labels, ("subjects", "sessions", "series")):
        path += "/%s/%s" % (urllib.parse.quote(label, safe=""), child)
    status, body = server.api("GET", path)
    return body if status == 200 and isinstance(body, list) else []


def where_is(server, series_uids):
    """{(project, subject, session): {series uid: instance_count}} for the given series, as
    the archive files them by labels."""
    series_uids = set(series_uids)
    found = {}
    for p in browse_labels(server):
        for s in browse_labels(server, p["name"]):
            for e in browse_labels(server, p["name"], s["name"]):
                for row in browse_labels(server, p["name"], s["name"], e["name"]):
                    if row.get("SeriesInstanceUID") in series_uids:
                        found.setdefault((p["name"], s["name"], e["name"]), {})[
                            row["SeriesInstanceUID"]] = row.get("instance_count")
    return found


def text_of(elements, tag):
    """The text value of tag in dicomgen.read_elements() output (padding stripped), None if
    absent."""
    entry = elements.get(tag)
    if entry is None:
        return None
    value = entry[1]
    if value is None:
        return ""
    return value.rstrip(b"\0 ").decode("utf-8", "replace")


def archive_sops(server, study_uid):
    """SOP Instance UIDs of a study in a server's archive, through its API (repeats kept, so a
    test can see an instance listed twice); [] when the study is unknown."""
    status, series = server.api("GET", "/api/studies/%s/series" % study_uid)
    if status == 404:
        return []
    if status != 200:
        raise AssertionError("GET /api/studies/%s/series -> %s %r" % (study_uid, status, series))
    sops = []
    for s in series:
        status, inst = server.api("GET", "/api/series/%s/instances" % s["SeriesInstanceUID"])
        if status != 200:
            raise AssertionError("GET /api/series/%s/instances -> %s %r"
                                 % (s["SeriesInstanceUID"], status, inst))
        sops += [i.get("SOPInstanceUID") for i in inst]
    return sops


def studies_by_uid(server):
    status, body = server.api("GET", "/api/studies")
    if status != 200 or not isinstance(body, list):
        raise AssertionError("GET /api/studies -> %s %r" % (status, body))
    return {s.get("StudyInstanceUID"): s for s in body}


def archive_instances(server, query=""):
    """SOPInstanceUIDs the server's index lists, walking the API: GET /api/studies (with
    `query`, e.g. "PatientID=X"), each study's series, each series' instances."""
    status, studies = server.api("GET", "/api/studies" + ("?" + query if query else ""))
    if status != 200:
        raise AssertionError("GET /api/studies -> %s %r" % (status, studies))
    out = []
    for st in studies:
        status, series = server.api("GET", "/api/studies/%s/series" % st["StudyInstanceUID"])
        if status != 200:
            raise AssertionError("series of %s -> %s %r" % (st["StudyInstanceUID"], status, series))
        for se in series:
            status, rows = server.api("GET", "/api/series/%s/instances" % se["SeriesInstanceUID"])
            if status != 200:
                raise AssertionError("instances of %s -> %s %r" % (se["SeriesInstanceUID"], status,
                                                                   rows))
            out += [r["SOPInstanceUID"] for r in rows]
    return out


def wait_studies_indexed(server, expected, timeout=20):
    """Waits until GET /api/studies shows every study of `expected` ({StudyInstanceUID:
    instance count}) with that many instances; fails naming what it saw."""
    def indexed():
        got = studies_by_uid(server)
        return all(got.get(u, {}).get("instance_count") == c for u, c in expected.items())
    if not wait_until(indexed, timeout, 0.1):
        raise AssertionError("not every study indexed: expected %r, GET /api/studies: %r"
                             % (expected, studies_by_uid(server)))


# --------------------------------------------------------------------------- receivers via the API

def free_receiver_port():
    """A free TCP port in 20000..32000, for receivers created through the API (which must use
    1024..49151; free_port() may hand out ports above that). Below Linux's default range for
    outgoing connections (32768..60999), so no client socket takes it meanwhile. Bound on
    0.0.0.0 to check it, which fails when any local IPv4 address has the port."""
    import random
    rnd = random.SystemRandom()
    for _ in range(1000):
        port = rnd.randint(20000, 32000)
        if port in _handed_out_ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        _handed_out_ports.add(port)
        return port
    raise RuntimeError("no free port found in 20000..32000")


def SourceAddressProxy(upstream_port, source="127.0.0.2"):
    """A relay on a free 127.0.0.1 port to upstream_port whose outgoing connections come from
    `source`, so the upstream sees that peer address. DCMTK's tools cannot choose their source
    address, and on Linux a connection to 127.0.0.2 still comes from 127.0.0.1 (the loopback
    route's preferred source); any 127.x address can be bound, though."""
    return ThrottledProxy(upstream_port, source=source)


def find_bytes(paths, needles):
    """Which of the byte strings `needles` occur in which files: {needle: [path, ...]} for the
    needles found (case-sensitive). paths: files and directories (searched recursively)."""
    files = []
    for p in paths:
        p = str(p)
        files += files_under(p) if os.path.isdir(p) else [p]
    found = {}
    for f in files:
        try:
            with open(f, "rb") as fh:
                data = fh.read()
        except OSError:
            continue  # removed meanwhile
        for n in needles:
            if n in data:
                found.setdefault(n, []).append(f)
    return found


JOB_ENDED = ("succeeded", "partial", "failed", "canceled")


class JobHelpers:
    """Mixin for E2ETestCase subclasses: read and wait for jobs of `server` (default: the
    test's `server` attribute)."""

    def get_job(self, job_id, server=None):
        server = server or self.server
        status, job = server.api("GET", "/api/jobs/%s" % job_id)
        self.assertEqual(status, 200, "GET /api/jobs/%s -> %s %r" % (job_id, status, job))
        return job

    def wait_job(self, job_id, timeout=120, server=None):
        """Wait until the job ends (waiting for a retry or a window is not an end); return it.
        The server holds each read until the job ends (?wait=, at most 10 s per call here)."""
        server = server or self.server
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            wait = max(0, min(10, int(deadline - time.monotonic())))
            asked = time.monotonic()
            status, job = server.api("GET", "/api/jobs/%s?wait=%d" % (job_id, wait), timeout=wait + 30)
            self.assertEqual(status, 200, "GET /api/jobs/%s -> %s %r" % (job_id, status, job))
            if job.get("state") in JOB_ENDED:
                return job
            if wait == 0 or time.monotonic() < asked + wait - 1:
                time.sleep(0.1)  # answered early (the server had enough waiters): poll
        self.fail("job %s not finished after %ss: %s" % (job_id, timeout, job))

    def wait_progress(self, job_id, at_least, timeout=60, key="completed", server=None):
        """Poll until progress[key] >= at_least while the job runs; return the job."""
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.get_job(job_id, server=server)
            if job.get("state") in JOB_ENDED:
                self.fail("job %s ended too soon for this scenario: %s" % (job_id, job))
            if ((job.get("progress") or {}).get(key) or 0) >= at_least:
                return job
            time.sleep(0.05)
        self.fail("job %s: %s below %d after %ss: %s" % (job_id, key, at_least, timeout, job))
