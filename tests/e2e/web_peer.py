"""A programmable DICOMweb peer for the end-to-end tests (Python 3 standard library only).

WebPeer is a threaded HTTP/1.1 server (keep-alive) on a free port of 0.0.0.0 that forwards
every request to an upstream DICOMweb server (Orthanc with its DICOMweb plugin) and records
each request in a thread-safe log. A test switches behaviours at run time:

    peer = WebPeer("http://127.0.0.1:%d" % orthanc.http_port)
    peer.url()                                  # http://127.0.0.1:<port>/dicom-web/
    peer.set_auth("bearer-static", token="s3cret")
    peer.set_auth("oauth2", client_id="pb", client_secret="pw", expires_in=2)
    peer.set_fault("close_after_bytes", count=1, bytes=20000)   # first WADO-RS request only
    peer.set_fault("qido_html")                                  # every QIDO-RS request
    peer.requests(kind="wado")                  # log entries (dicts), oldest first
    peer.clear()                                # no auth, no fault, empty log
    peer.close()

    WebPeer(upstream, accept_single_part=True, upstream_auth=("alice", "pw"))

Modes, fixed when the peer is made (clear() keeps them):
  accept_single_part           a STOW-RS request whose body is one `application/dicom`
                               instance (as some cloud archives accept; Orthanc answers 415)
                               is re-wrapped into a one-part multipart/related body and
                               forwarded; the upstream's answer is passed back. Its log entry
                               has "rewrapped": True.
  upstream_auth=(user, pw)     HTTP basic credentials for every forwarded request (for an
                               Orthanc with authentication on; the client's Authorization
                               header is never forwarded).

Faults (each applies to the first `count` requests of its kind, default: all of them):
  WADO-RS (GET .../studies/{uid}[/series/{uid}[/instances/{uid}]], not /metadata):
    stall_after_bytes(bytes)   forward that many body bytes, then send nothing, keep the
                               socket open until release() or the client closes it
    close_after_bytes(bytes)   forward that many body bytes, then close the connection
    wrong_boundary             the Content-Type's boundary names a string absent from the body
    non_dicom_part             the first part's content replaced by bytes that are not DICOM
    foreign_part(data)         an extra part (data: a DICOM Part 10 file, bytes) added first
    wrong_part_length(delta)   the second part's Content-Length (the first's when there is one
                               part) says `delta` bytes more than the part holds
  QIDO-RS (GET .../studies, .../series, .../instances):
    qido_204                   204 No Content
    qido_garbage               200 application/dicom+json whose body is not JSON
    qido_html                  200 text/html, a login page
    qido_error_json            400 with a JSON error document
  STOW-RS (POST .../studies[/{uid}]); every log entry also has "content_type" (the
  request's), "body_size" (bytes as received), "parts" (0 for a single-part body) and
  "sop_uids" (of each part, or of the single instance):
    stow_413_above(parts)      413 when the multipart body holds more than `parts` parts
    stow_partial(uid)          the part holding that SOP Instance UID is not forwarded; the
                               answer (202) lists it in FailedSOPSequence with reason 0xA700
    stow_429(retry_after)      429 Too Many Requests with Retry-After: <retry_after> (seconds)
  any DICOMweb request:
    redirect(host)             307 to the same path on http://<host>:<port> (default
                               127.0.0.2); requests that arrive on that host are forwarded

Request bodies are read whole (Content-Length or chunked) before forwarding: the tests' STOW
bodies are small and the STOW faults need to see every part. Responses are streamed: the
upstream's Content-Length is kept, a chunked or close-delimited upstream body is sent chunked
(so a cut-off transfer is visible as such to the client), except where a fault rewrites it.

The Host header is passed on unchanged, so the URLs Orthanc writes into its answers
(RetrieveURL) point at the peer, not around it.
"""

import base64
import http.client
import http.server
import json
import re
import secrets
import select
import socket
import socketserver
import struct
import threading
import time
import urllib.parse

LOGGED_HEADERS = ("authorization", "accept", "content-type", "content-length",
                  "transfer-encoding", "expect", "user-agent", "host")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
              "proxy-connection", "te", "trailer", "upgrade"}

WADO_RE = re.compile(r"/studies/[^/]+(?:/series/[^/]+(?:/instances/[^/]+)?)?/?$")
QIDO_RE = re.compile(r"/(?:studies|series|instances)/?$")
STOW_RE = re.compile(r"/studies(?:/[^/]+)?/?$")

WADO_FAULTS = ("stall_after_bytes", "close_after_bytes", "wrong_boundary", "non_dicom_part",
               "foreign_part", "wrong_part_length")
QIDO_FAULTS = ("qido_204", "qido_garbage", "qido_html", "qido_error_json")
STOW_FAULTS = ("stow_413_above", "stow_partial", "stow_429")
OTHER_FAULTS = ("redirect",)

FAILURE_PROCESSING = 0xA700  # PS3.18 / PS3.4 Annex B: Out of Resources (42752)

HTML_LOGIN = (b"<!DOCTYPE html>\n<html><head><title>Sign in</title></head><body>\n"
              b"<form method=\"post\" action=\"/login\"><input name=\"user\">"
              b"<input type=\"password\" name=\"password\"><button>Sign in</button></form>\n"
              b"</body></html>\n")
GARBAGE_JSON = b'[{"0020000D": {"vr": "UI", "Value": ["1.2.3" <<this is not JSON>> \x00\x01'
ERROR_JSON = {"error": "Invalid QIDO-RS query: unknown attribute", "status": 400,
              "errorCode": "BAD_QUERY"}
NON_DICOM = b"This is not a DICOM instance, just text standing in for one.\n" * 8


def classify(method, path):
    """'wado', 'qido', 'stow', 'metadata', 'token' or 'other' for a request."""
    if path == "/token":
        return "token"
    if method == "GET":
        if path.rstrip("/").endswith("/metadata"):
            return "metadata"
        if QIDO_RE.search(path):
            return "qido"
        if WADO_RE.search(path):
            return "wado"
    if method == "POST" and STOW_RE.search(path):
        return "stow"
    return "other"


def boundary_of(content_type):
    """The boundary parameter of a multipart Content-Type, or None."""
    m = re.search(r'boundary="?([^";]+)"?', content_type or "", re.IGNORECASE)
    return m.group(1) if m else None


def split_multipart(body, boundary):
    """[(raw header bytes, content bytes)] of a multipart body (RFC 2046); the preamble and
    epilogue are dropped. Raises ValueError when the body does not look like one."""
    delim = b"--" + boundary.encode("latin-1")
    pieces = body.split(b"\r\n" + delim)
    first = pieces[0]
    if first.startswith(delim):
        pieces[0] = first[len(delim):]
    else:
        pieces = pieces[1:]  # a preamble
    parts = []
    for piece in pieces:
        if piece.startswith(b"--"):
            break  # the close delimiter
        piece = piece.split(b"\r\n", 1)[1] if b"\r\n" in piece else b""
        head, sep, content = piece.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("a part without a blank line after its headers")
        parts.append((head, content))
    return parts


def join_multipart(parts, boundary):
    """The body of a multipart message made of [(raw header bytes, content)]; a part's
    Content-Length header, if any, is rewritten to the content's length."""
    delim = b"--" + boundary.encode("latin-1")
    out = []
    for head, content in parts:
        head = re.sub(rb"(?im)^content-length:[^\r\n]*", b"Content-Length: %d" % len(content),
                      head)
        out.append(delim + b"\r\n" + head + b"\r\n\r\n" + content + b"\r\n")
    return b"".join(out) + delim + b"--\r\n"


def is_single_part(content_type):
    """Whether a STOW-RS Content-Type is a single `application/dicom` instance."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/dicom"


def count_parts(body, boundary):
    """How many parts a multipart body holds, counted by its delimiter lines."""
    if not boundary:
        return 0
    delim = b"--" + boundary.encode("latin-1")
    n = 0
    for m in re.finditer(re.escape(delim) + rb"(--)?", body):
        at_line_start = m.start() == 0 or body[m.start() - 2:m.start()] == b"\r\n"
        if at_line_start and not m.group(1):
            n += 1
    return n


def part10_meta(data):
    """{tag: str} of the group 0002 elements of a DICOM Part 10 file (bytes); {} if none."""
    if len(data) < 132 or data[128:132] != b"DICM":
        return {}
    out, pos = {}, 132
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002:
            break
        vr = data[pos + 4:pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            length = struct.unpack_from("<I", data, pos + 8)[0]
            start = pos + 12
        else:
            length = struct.unpack_from("<H", data, pos + 6)[0]
            start = pos + 8
        out["%04X%04X" % (group, elem)] = data[start:start + length].rstrip(b"\0 ").decode(
            "ascii", "replace")
        pos = start + length
    return out


ORTHANC_DICOMWEB_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"


def orthanc_dicomweb_extra(**more):
    """Orthanc configuration entries that load its DICOMweb plugin at /dicom-web/."""
    extra = {"Plugins": [ORTHANC_DICOMWEB_PLUGIN],
             "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}}
    extra.update(more)
    return extra


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "web-peer/1"

    def log_message(self, fmt, *args):  # quiet: the test reads peer.requests()
        pass

    def setup(self):
        super().setup()
        self.server.peer._track(self.connection)

    # -- one request

    def _do(self):
        peer = self.server.peer
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        local_host = self.connection.getsockname()[0]
        entry = {
            "time": peer.now(), "local_host": local_host, "method": self.command,
            "path": path, "query": urllib.parse.parse_qs(url.query, keep_blank_values=True),
            "raw_query": url.query, "kind": classify(self.command, path),
            "headers": {k: self.headers.get(k) for k in LOGGED_HEADERS
                        if self.headers.get(k) is not None},
            "status": None, "fault": None, "body_size": 0, "bytes_sent": 0,
        }
        try:
            body = self._read_body()
        except ValueError as e:
            entry["error"] = str(e)
            self._reply(400, b"bad request body\n", "text/plain", entry, close=True)
            peer._log(entry)
            return
        entry["body_size"] = len(body)
        if entry["kind"] == "stow":
            ctype = self.headers.get("Content-Type")
            boundary = boundary_of(ctype)
            entry["content_type"] = ctype
            entry["parts"] = count_parts(body, boundary)
            try:
                if is_single_part(ctype):
                    entry["sop_uids"] = [part10_meta(body).get("00020003")]
                else:
                    entry["sop_uids"] = [part10_meta(c).get("00020003")
                                         for _, c in split_multipart(body, boundary)]
            except (ValueError, AttributeError, struct.error):
                entry["sop_uids"] = None
        try:
            self._dispatch(entry, url, body)
        finally:
            peer._log(entry)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _do

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ValueError("connection closed inside a chunked body")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(16)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self, entry, url, body):
        peer = self.server.peer
        kind = entry["kind"]
        if kind == "token":
            return self._token(entry, body)

        redirect = peer._take_fault("redirect", kind, entry["local_host"])
        if redirect is not None:
            host = redirect.get("host", "127.0.0.2")
            location = "http://%s:%d%s" % (host, peer.port, self.path)
            entry["fault"] = "redirect"
            entry["location"] = location
            return self._reply(307, b"moved\n", "text/plain", entry,
                               extra=[("Location", location)])

        if not self._authorized(entry):
            return

        fault = peer._take_fault(None, kind, entry["local_host"])
        name = fault["name"] if fault else None
        if name:
            entry["fault"] = name
        if name == "qido_204":
            return self._reply(204, b"", None, entry)
        if name == "qido_garbage":
            return self._reply(200, GARBAGE_JSON, "application/dicom+json", entry)
        if name == "qido_html":
            return self._reply(200, HTML_LOGIN, "text/html; charset=utf-8", entry)
        if name == "qido_error_json":
            return self._reply(400, json.dumps(ERROR_JSON).encode(), "application/json", entry)
        if name == "stow_413_above":
            if entry.get("parts", 0) > fault["parts"]:
                return self._reply(413, b"Payload Too Large: at most %d parts\n"
                                   % fault["parts"], "text/plain", entry)
            entry["fault"] = None
            peer._untake(fault)  # only 413s count against `count`
        if name == "stow_partial":
            return self._stow_partial(entry, url, body, fault)
        if name == "stow_429":
            return self._reply(429, b"Too Many Requests\n", "text/plain", entry,
                               extra=(("Retry-After", str(fault["retry_after"])),))
        if kind == "stow" and peer.accept_single_part and \
                is_single_part(self.headers.get("Content-Type")):
            return self._stow_single_part(entry, url, body)
        return self._forward(entry, url, body, fault)

    # -- authentication

    def _authorized(self, entry):
        peer = self.server.peer
        mode = peer.auth.get("mode")
        if mode in (None, "none"):
            return True
        got = self.headers.get("Authorization") or ""
        token = got[7:].strip() if got[:7].lower() == "bearer " else None
        entry["token"] = token
        if mode == "bearer-static":
            if token is not None and token == peer.auth.get("token"):
                return True
            challenge = 'Bearer realm="web-peer"'
        else:
            if token is not None and peer.token_valid(token):
                return True
            challenge = 'Bearer realm="web-peer", error="invalid_token"'
        entry["unauthorized"] = True
        self._reply(401, b'{"error": "unauthorized"}', "application/json", entry,
                    extra=[("WWW-Authenticate", challenge)])
        return False

    def _token(self, entry, body):
        peer = self.server.peer
        auth = peer.auth
        if self.command != "POST":
            return self._reply(405, b"POST only\n", "text/plain", entry)
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        one = {k: v[0] for k, v in form.items()}
        client_id, client_secret, via = one.get("client_id"), one.get("client_secret"), "body"
        basic = self.headers.get("Authorization") or ""
        if basic[:6].lower() == "basic ":
            try:
                raw = base64.b64decode(basic[6:].strip()).decode("utf-8")
                cid, _, csec = raw.partition(":")
                client_id = urllib.parse.unquote_plus(cid)
                client_secret = urllib.parse.unquote_plus(csec)
                via = "basic"
            except (ValueError, UnicodeDecodeError):
                via = "basic-unreadable"
        request = {"time": peer.now(), "client_id": client_id, "client_auth": via,
                   "grant_type": one.get("grant_type"), "scope": one.get("scope"),
                   "content_type": self.headers.get("Content-Type")}
        entry["token_request"] = request
        with peer.lock:
            peer.token_requests.append(request)
        if one.get("grant_type") != "client_credentials":
            return self._reply(400, json.dumps({"error": "unsupported_grant_type"}).encode(),
                               "application/json", entry)
        if auth.get("mode") != "oauth2" or client_id != auth.get("client_id") or \
                client_secret != auth.get("client_secret"):
            request["refused"] = "invalid_client"
            return self._reply(401, json.dumps({
                "error": "invalid_client",
                "error_description": "client authentication failed"}).encode(),
                "application/json", entry, extra=[("WWW-Authenticate", 'Basic realm="token"')])
        want = auth.get("scope")
        if want is not None and one.get("scope") != want:
            request["refused"] = "invalid_scope"
            return self._reply(400, json.dumps({"error": "invalid_scope"}).encode(),
                               "application/json", entry)
        token = secrets.token_urlsafe(24)
        now = peer.now()
        issued = {"token": token, "issued_at": now, "expires_at": now + auth["expires_in"],
                  "client_auth": via, "scope": one.get("scope")}
        with peer.lock:
            peer.tokens.append(issued)
        entry["issued_token"] = token
        return self._reply(200, json.dumps({
            "access_token": token, "token_type": "Bearer",
            "expires_in": auth["expires_in"]}).encode(), "application/json", entry,
            extra=[("Cache-Control", "no-store")])

    # -- answers

    def _reply(self, status, payload, content_type, entry, extra=(), close=False):
        entry["status"] = status
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in extra:
            self.send_header(k, v)
        if status != 204:
            self.send_header("Content-Length", str(len(payload)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if payload and self.command != "HEAD":
            self.wfile.write(payload)
            entry["bytes_sent"] = len(payload)
        self.wfile.flush()

    def _upstream(self, url, body, content_type=None):
        peer = self.server.peer
        conn = http.client.HTTPConnection(peer.upstream_host, peer.upstream_port, timeout=60)
        # The peer consumed the credentials and the Expect; identity bodies, so that the
        # faults can count and rewrite bytes.
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in HOP_BY_HOP
                   and k.lower() not in ("authorization", "expect", "accept-encoding")
                   and not (content_type is not None and k.lower() == "content-type")}
        if content_type is not None:
            headers["Content-Type"] = content_type
        if peer.upstream_auth is not None:
            raw = ("%s:%s" % peer.upstream_auth).encode("utf-8")
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode("ascii")
        if body or self.command in ("POST", "PUT"):
            headers["Content-Length"] = str(len(body))
        target = url.path + ("?" + url.query if url.query else "")
        conn.request(self.command, target, body=body or None, headers=headers)
        return conn, conn.getresponse()

    def _send_head(self, status, headers, framing, content_type=None):
        self.send_response(status)
        for k, v in headers:
            if k.lower() in HOP_BY_HOP or k.lower() == "date" or k.lower() == "server":
                continue
            if content_type is not None and k.lower() == "content-type":
                v = content_type
            self.send_header(k, v)
        if framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
        elif framing is not None:
            self.send_header("Content-Length", str(framing))
        self.end_headers()

    def _forward(self, entry, url, body, fault, content_type=None):
        peer = self.server.peer
        conn, resp = self._upstream(url, body, content_type)
        try:
            entry["status"] = resp.status
            entry["upstream_content_type"] = resp.getheader("Content-Type")
            name = fault["name"] if fault else None
            if name in ("wrong_boundary", "non_dicom_part", "foreign_part", "wrong_part_length"):
                return self._rewrite_wado(entry, resp, fault)
            length = resp.getheader("Content-Length")
            streamed = name in ("stall_after_bytes", "close_after_bytes")
            framing = "chunked" if (length is None or streamed) else int(length)
            if self.command == "HEAD" or resp.status in (204, 304):
                framing = None if resp.status in (204, 304) else framing
            self._send_head(resp.status, resp.getheaders(), framing)
            if self.command == "HEAD" or framing is None:
                self.wfile.flush()
                return
            limit = fault["bytes"] if streamed else None
            sent = 0
            while True:
                want = 65536 if limit is None else min(65536, limit - sent)
                data = resp.read(want) if want > 0 else b""
                if not data:
                    break
                self._write_body(data, framing == "chunked")
                sent += len(data)
            entry["bytes_sent"] = sent
            if name == "stall_after_bytes":
                self.wfile.flush()
                entry["stalled_at"] = peer.now()
                peer._stall(self.connection)
                entry["stall_ended"] = peer.now()
                self._abort()
                return
            if name == "close_after_bytes":
                self.wfile.flush()
                self._abort()
                return
            if framing == "chunked":
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            conn.close()

    def _write_body(self, data, chunked):
        if chunked:
            self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")
        else:
            self.wfile.write(data)

    def _abort(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _rewrite_wado(self, entry, resp, fault):
        body = resp.read()
        ctype = resp.getheader("Content-Type") or ""
        boundary = boundary_of(ctype)
        name = fault["name"]
        if resp.status != 200 or not boundary:
            entry["fault"] = None  # nothing to rewrite: pass the answer on
            self._send_head(resp.status, resp.getheaders(), len(body))
            self.wfile.write(body)
            return
        new_ctype = ctype
        if name == "wrong_boundary":
            fake = "not-the-boundary-" + secrets.token_hex(8)
            assert fake.encode() not in body
            new_ctype = ctype.replace(boundary, fake)
            entry["boundary"] = (boundary, fake)
        else:
            parts = split_multipart(body, boundary)
            if name == "non_dicom_part":
                head, original = parts[0]
                entry["replaced_sop"] = part10_meta(original).get("00020003")
                parts[0] = (head, NON_DICOM)
            elif name == "foreign_part":
                entry["foreign_sop"] = part10_meta(fault["data"]).get("00020003")
                head = b"Content-Type: application/dicom\r\nContent-Length: %d" \
                    % len(fault["data"])
                parts.insert(0, (head, fault["data"]))
            body = join_multipart(parts, boundary)
            entry["parts_sent"] = len(parts)
            if name == "wrong_part_length":
                which = 1 if len(parts) > 1 else 0
                entry["wrong_length_sop"] = part10_meta(parts[which][1]).get("00020003")
                entry["other_sops"] = [part10_meta(c).get("00020003") for i, (_, c) in
                                       enumerate(parts) if i != which]
                at = 0
                for i in range(which + 1):  # the part's Content-Length, past the earlier parts
                    at = body.index(b"--" + boundary.encode("latin-1") + b"\r\n", at) + 1
                m = re.compile(rb"(?im)^content-length: *(\d+)").search(body, at)
                wrong = int(m.group(1)) + fault.get("delta", 1000)
                entry["declared_length"] = wrong
                body = body[:m.start(1)] + b"%d" % wrong + body[m.end(1):]
        self._send_head(resp.status, resp.getheaders(), len(body), content_type=new_ctype)
        self.wfile.write(body)
        self.wfile.flush()
        entry["bytes_sent"] = len(body)

    def _stow_single_part(self, entry, url, body):
        """Forward a single-part `application/dicom` STOW-RS body as the one part of a
        multipart/related body, the instance's bytes unchanged; pass the answer back."""
        boundary = "web-peer-" + secrets.token_hex(12)
        assert boundary.encode("ascii") not in body
        wrapped = join_multipart([(b"Content-Type: application/dicom", body)], boundary)
        entry["rewrapped"] = True
        return self._forward(entry, url, wrapped, None, content_type=(
            'multipart/related; type="application/dicom"; boundary=%s' % boundary))

    def _stow_partial(self, entry, url, body, fault):
        """Withhold the part holding fault['uid'] from the upstream; answer as PS3.18 says for
        a partly stored request: 202, the others in ReferencedSOPSequence, that one in
        FailedSOPSequence with FailureReason 0xA700."""
        uid = fault["uid"].encode("ascii")
        boundary = boundary_of(self.headers.get("Content-Type"))
        parts = split_multipart(body, boundary) if boundary else []
        victim = [p for p in parts if uid in p[1]]
        if not victim:
            entry["fault"] = None
            self.server.peer._untake(fault)
            return self._forward(entry, url, body, None)
        keep = [p for p in parts if uid not in p[1]]
        meta = part10_meta(victim[0][1])
        failed = {"00081150": {"vr": "UI", "Value": [meta.get("00020002", "")]},
                  "00081155": {"vr": "UI", "Value": [fault["uid"]]},
                  "00081197": {"vr": "US", "Value": [FAILURE_PROCESSING]}}
        answer = {}
        if keep:
            conn, resp = self._upstream(url, join_multipart(keep, boundary))
            try:
                upstream_body = resp.read()
            finally:
                conn.close()
            entry["upstream_status"] = resp.status
            try:
                answer = json.loads(upstream_body.decode("utf-8"))
            except ValueError:
                answer = {}
            if resp.status >= 300 or not isinstance(answer, dict):
                self._send_head(resp.status, resp.getheaders(), len(upstream_body))
                self.wfile.write(upstream_body)
                entry["status"] = resp.status
                return
        answer.pop("00081196", None)  # a Warning Reason would not be ours to keep
        answer["00081198"] = {"vr": "SQ", "Value": [failed]}
        payload = json.dumps(answer).encode("utf-8")
        entry["withheld"] = fault["uid"]
        self._reply(202 if keep else 409, payload, "application/dicom+json", entry)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class WebPeer:
    """See the module docstring. Thread-safe; every setter may be called while it serves."""

    def __init__(self, upstream, bind="0.0.0.0", root="/dicom-web/", *,
                 accept_single_part=False, upstream_auth=None):
        u = urllib.parse.urlsplit(upstream)
        self.upstream_host, self.upstream_port = u.hostname, u.port or 80
        self.root = root
        self.accept_single_part = accept_single_part
        self.upstream_auth = tuple(upstream_auth) if upstream_auth else None
        self.lock = threading.Lock()
        self.entries = []
        self.tokens = []           # {"token", "issued_at", "expires_at", "client_auth", "scope"}
        self.token_requests = []   # every POST /token, refused ones too
        self.auth = {"mode": "none"}
        self.faults = {}           # name -> {"name", "remaining", ...params}
        self._release = threading.Event()
        self._conns = set()
        self._t0 = time.monotonic()
        self.httpd = _Server((bind, 0), _Handler)
        self.httpd.peer = self
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()

    # -- addresses and clock

    def url(self, host="127.0.0.1"):
        return "http://%s:%d%s" % (host, self.port, self.root)

    def token_url(self, host="127.0.0.1"):
        return "http://%s:%d/token" % (host, self.port)

    def now(self):
        """The peer's clock (seconds, monotonic) that token expiry is measured on."""
        return time.monotonic() - self._t0

    # -- behaviours

    def set_auth(self, mode="none", *, token=None, client_id=None, client_secret=None,
                 expires_in=3600, scope=None):
        """mode: "none", "bearer-static" (token) or "oauth2" (client_id, client_secret,
        expires_in seconds, scope: required scope or None for any)."""
        if mode not in ("none", "bearer-static", "oauth2"):
            raise ValueError("unknown auth mode %r" % mode)
        with self.lock:
            self.auth = {"mode": mode, "token": token, "client_id": client_id,
                         "client_secret": client_secret, "expires_in": expires_in,
                         "scope": scope}

    def set_fault(self, name, count=None, **params):
        """Switch a fault on for the first `count` requests it applies to (None: all).
        Parameters: bytes= (stall/close_after_bytes), data= (foreign_part), delta=
        (wrong_part_length, default 1000), parts= (stow_413_above), uid= (stow_partial),
        retry_after= (stow_429), host= (redirect)."""
        if name not in WADO_FAULTS + QIDO_FAULTS + STOW_FAULTS + OTHER_FAULTS:
            raise ValueError("unknown fault %r" % name)
        required = {"stall_after_bytes": "bytes", "close_after_bytes": "bytes",
                    "foreign_part": "data", "stow_413_above": "parts", "stow_partial": "uid",
                    "stow_429": "retry_after"}
        if name in required and required[name] not in params:
            raise ValueError("fault %s needs %s=" % (name, required[name]))
        with self.lock:
            for other in list(self.faults):
                if self._group(other) == self._group(name):
                    del self.faults[other]  # one fault per kind of request
            self.faults[name] = dict(params, name=name, remaining=count, applied=0)
        if name == "stall_after_bytes":
            self._release.clear()

    def clear_faults(self):
        with self.lock:
            self.faults = {}
        self.release()

    def clear(self):
        """No auth, no fault, empty logs."""
        self.clear_faults()
        self.set_auth("none")
        with self.lock:
            self.entries, self.tokens, self.token_requests = [], [], []

    def release(self):
        """Let stalled answers end (their connection is then closed)."""
        self._release.set()

    def fault_applied(self, name):
        with self.lock:
            f = self.faults.get(name)
            return f["applied"] if f else 0

    # -- what happened

    def requests(self, kind=None, host=None, status=None, fault=None):
        """Copies of the log entries, oldest first, filtered by kind ("wado", "qido", "stow",
        "metadata", "token", "other"), local host address, status, or fault name."""
        with self.lock:
            out = [dict(e) for e in self.entries]
        return [e for e in out if (kind is None or e["kind"] == kind)
                and (host is None or e["local_host"] == host)
                and (status is None or e["status"] == status)
                and (fault is None or e["fault"] == fault)]

    def issued_tokens(self):
        with self.lock:
            return [dict(t) for t in self.tokens]

    def token_valid(self, token):
        now = self.now()
        with self.lock:
            return any(t["token"] == token and now < t["expires_at"] for t in self.tokens)

    def describe(self, entries=None):
        """A short text of the log, for failure messages."""
        rows = []
        for e in self.requests() if entries is None else entries:
            rows.append("%7.3f %s %s %s%s -> %s%s" % (
                e["time"], e["local_host"], e["method"], e["path"],
                "?" + e["raw_query"] if e["raw_query"] else "", e["status"],
                " [%s]" % e["fault"] if e["fault"] else ""))
        return "\n".join(rows) or "(no requests)"

    def close(self):
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)

    # -- internals (called by the handler)

    @staticmethod
    def _group(name):
        for group in (WADO_FAULTS, QIDO_FAULTS, STOW_FAULTS, OTHER_FAULTS):
            if name in group:
                return group
        return None

    def _track(self, conn):
        with self.lock:
            self._conns = {c for c in self._conns if c.fileno() != -1}
            self._conns.add(conn)

    def _log(self, entry):
        with self.lock:
            self.entries.append(entry)

    def _take_fault(self, only, kind, local_host):
        """The fault to apply to a request of this kind (and count it), or None."""
        groups = {"wado": WADO_FAULTS, "qido": QIDO_FAULTS, "stow": STOW_FAULTS}
        with self.lock:
            for name, f in self.faults.items():
                if only is not None and name != only:
                    continue
                if name == "redirect":
                    if only != "redirect" or kind in ("token",) or \
                            local_host == f.get("host", "127.0.0.2"):
                        continue
                elif only is not None or name not in groups.get(kind, ()):
                    continue
                if f["remaining"] is not None:
                    if f["remaining"] <= 0:
                        continue
                    f["remaining"] -= 1
                f["applied"] += 1
                return f
        return None

    def _untake(self, f):
        with self.lock:
            f["applied"] -= 1
            if f["remaining"] is not None:
                f["remaining"] += 1

    def _stall(self, conn):
        """Block until release() or the client closed the connection."""
        while not self._release.wait(0.05):
            try:
                r, _, _ = select.select([conn], [], [], 0)
                if r and conn.recv(1, socket.MSG_PEEK) == b"":
                    return
            except OSError:
                return


if __name__ == "__main__":
    import argparse
    ap = argparse.ArgumentParser(description="run the DICOMweb test peer by hand")
    ap.add_argument("upstream", help="e.g. http://127.0.0.1:8042")
    ap.add_argument("--fault", action="append", default=[],
                    help="name[:count[:param=value]], e.g. close_after_bytes:1:bytes=5000")
    ap.add_argument("--bearer", help="require this static bearer token")
    args = ap.parse_args()
    p = WebPeer(args.upstream)
    if args.bearer:
        p.set_auth("bearer-static", token=args.bearer)
    for spec in args.fault:
        bits = spec.split(":")
        kw = dict(b.split("=", 1) for b in bits[2:])
        kw = {k: int(v) if v.isdigit() else v for k, v in kw.items()}
        p.set_fault(bits[0], int(bits[1]) if len(bits) > 1 and bits[1] else None, **kw)
    print(p.url(), flush=True)
    seen = 0
    try:
        while True:
            time.sleep(0.5)
            lines = p.describe().splitlines() if p.requests() else []
            for line in lines[seen:]:
                print(line, flush=True)
            seen = len(lines)
    except KeyboardInterrupt:
        p.close()
