"""Accounts, log-in and security (docs/security.md).

Every call to the REST API needs an account but /api/health, /api/ready, the OpenAPI document
and POST /api/auth/login. Accounts have a role (admin, user, read-only) that the OpenAPI
document states for each operation (x-role) and the server enforces (403 naming the role).
Three ways in: HTTP basic, API tokens (Bearer pbt_...) and web sessions (cookie + X-CSRF-Token);
a POST/PUT/DELETE from another origin is refused. The first start makes "admin" with the
configured or a random password (shown once, kept in DATA_DIR/initial-admin-password until
changed); failed log-ins slow the name down; changes and log-ins go to the audit log without
secrets; HTTPS with [server] https_cert_file / https_key_file; HTTP may listen anywhere (with
a warning about clear text). The CLI takes --user/--password/--token or $PACSBRIDGE_*.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_auth.py
"""

import datetime
import json
import os
import re
import ssl
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ROLES = ("admin", "user", "read-only")
METHODS = ("get", "put", "post", "delete", "patch")
COOKIE = "pacsbridge_session"
WRONG_LOGIN = "wrong user name or password"
CHALLENGE = 'Basic realm="PACS Bridge"'
UTC = datetime.timezone.utc

# The operations open to everyone (docs/security.md, first paragraph).
OPEN_OPERATIONS = {("GET", "/api/health"), ("GET", "/api/ready"), ("GET", "/api/openapi.json"),
                   ("GET", "/api/openapi.yaml"), ("POST", "/api/auth/login")}
# The role the OpenAPI document must state for these operations (the table of roles; path
# parameters written {}). Every GET not listed is checked separately: read-only, except users
# and the audit log (admin).
EXPECTED_ROLES = {
    ("POST", "/api/nodes"): "admin",
    ("PUT", "/api/nodes/{}"): "admin",
    ("DELETE", "/api/nodes/{}"): "admin",
    ("POST", "/api/nodes/{}/echo"): "user",
    ("POST", "/api/nodes/{}/find"): "user",
    ("POST", "/api/retrieve"): "user",
    ("POST", "/api/send"): "user",
    ("POST", "/api/imports"): "user",
    ("POST", "/api/jobs/{}/cancel"): "user",
    ("POST", "/api/staging/{}/archive"): "user",
    ("DELETE", "/api/staging/{}"): "user",
    ("POST", "/api/receivers"): "admin",
    ("PUT", "/api/receivers/{}"): "admin",
    ("DELETE", "/api/receivers/{}"): "admin",
    ("PUT", "/api/routing"): "admin",
    ("PUT", "/api/projects/{}/anonymization"): "admin",
    ("GET", "/api/users"): "admin",
    ("POST", "/api/users"): "admin",
    ("GET", "/api/users/{}"): "admin",
    ("PUT", "/api/users/{}"): "admin",
    ("DELETE", "/api/users/{}"): "admin",
    ("GET", "/api/audit"): "admin",
    ("GET", "/api/tokens"): "read-only",
    ("POST", "/api/tokens"): "read-only",
    ("DELETE", "/api/tokens/{}"): "read-only",
    ("PUT", "/api/auth/password"): "read-only",
    ("GET", "/api/auth/me"): "read-only",
}


def template(path):
    """/api/users/{username} -> /api/users/{}"""
    return re.sub(r"\{[^}]*\}", "{}", path)


def parse_time(text):
    """An ISO 8601 time as an aware datetime (UTC when it names no zone)."""
    t = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def session_cookie(headers):
    """(value, [attributes, lower case]) of the pacsbridge_session cookie a response sets, or
    (None, [])."""
    for value in (headers.get_all("Set-Cookie") if headers is not None else None) or []:
        parts = [p.strip() for p in value.split(";")]
        name, _, val = parts[0].partition("=")
        if name.strip() == COOKIE:
            return val, [p.lower().replace(" ", "") for p in parts[1:] if p]
    return None, []


def bearer(token):
    return {"Authorization": "Bearer " + token}


def error_of(body):
    return body.get("error", "") if isinstance(body, dict) else ""


class Session:
    """A web session: the cookie's value and the CSRF token of its log-in."""

    def __init__(self, user, cookie, csrf_token, answer, cookie_attributes):
        self.user, self.cookie, self.csrf_token = user, cookie, csrf_token
        self.answer, self.cookie_attributes = answer, cookie_attributes


class AuthHelpers:
    """Mixin of E2ETestCase classes with a shared `server` (admin by HTTP basic)."""

    server = None

    def add_user(self, name, role, password=None, server=None):
        """Create an account as the admin; (name, password)."""
        server = server or self.server
        password = password or "pw-%s-Secret9" % name
        status, body = server.api("POST", "/api/users",
                                  {"username": name, "role": role, "password": password})
        self.assertEqual(status, 201, "POST /api/users %s -> %s %r" % (name, status, body))
        return name, password

    def set_user(self, name, body, server=None):
        status, answer = (server or self.server).api("PUT", "/api/users/%s" % name, body)
        self.assertEqual(status, 200, "PUT /api/users/%s %r -> %s %r"
                      % (name, body, status, answer))
        return answer

    def user_role(self, name, server=None):
        status, body = (server or self.server).api("GET", "/api/users/%s" % name)
        self.assertEqual(status, 200, body)
        return body.get("role")

    def login(self, user, password, server=None, headers=None):
        """POST /api/auth/login without other credentials: (status, headers, JSON)."""
        status, hdrs, payload = (server or self.server).raw(
            "POST", "/api/auth/login", {"username": user, "password": password},
            auth=None, headers=headers)
        return status, hdrs, harness.parse_json(payload)

    def open_session(self, user, password, server=None):
        status, headers, body = self.login(user, password, server=server)
        self.assertEqual(status, 200, "log-in of %s -> %s %r" % (user, status, body))
        cookie, attributes = session_cookie(headers)
        self.assertTrue(cookie, "no %s cookie set by the log-in: %r"
                        % (COOKIE, headers.get_all("Set-Cookie")))
        self.assertIsInstance(body.get("csrf_token"), str, body)
        self.assertTrue(body["csrf_token"], body)
        return Session(user, cookie, body["csrf_token"], body, attributes)

    def with_session(self, session, method, path, body=None, csrf=True, headers=None,
                     server=None):
        """A call with the session's cookie only (and its X-CSRF-Token when csrf is True and
        the method changes something): (status, headers, JSON)."""
        hdrs = {"Cookie": "%s=%s" % (COOKIE, session.cookie)}
        if csrf is True and method != "GET":
            hdrs["X-CSRF-Token"] = session.csrf_token
        elif isinstance(csrf, str):
            hdrs["X-CSRF-Token"] = csrf
        hdrs.update(headers or {})
        status, h, payload = (server or self.server).raw(method, path, body, headers=hdrs,
                                                         auth=None)
        return status, h, harness.parse_json(payload)

    def assertRefused(self, status, body, role, what=""):
        """403 whose error names the role the call needs."""
        self.assertEqual(status, 403, "%s: %r" % (what, body))
        self.assertIn(role, error_of(body), "%s: the 403 does not name the role %r: %r"
                      % (what, role, body))

    def assertNoSecrets(self, payload, secrets, what=""):
        for secret in secrets:
            self.assertNotIn(secret.encode("utf-8"), payload,
                             "%s shows the secret %r" % (what, secret))
        self.assertNotIn(b"$argon2", payload, "%s shows a password hash" % what)

    def pb(self, *args, user=None, password=None, token=None, env=None, server=None):
        """The CLI against the server, with no $PACSBRIDGE_* of the caller's environment;
        user/password/token go to $PACSBRIDGE_USER / _PASSWORD / _TOKEN when given."""
        full = harness.tool_env()
        for k in ("PACSBRIDGE_USER", "PACSBRIDGE_PASSWORD", "PACSBRIDGE_TOKEN",
                  "PACSBRIDGE_SERVER"):
            full.pop(k, None)
        for k, v in (("PACSBRIDGE_USER", user), ("PACSBRIDGE_PASSWORD", password),
                     ("PACSBRIDGE_TOKEN", token)):
            if v is not None:
                full[k] = v
        full.update(env or {})
        return subprocess.run([str(harness.require_binary())] + [str(a) for a in args]
                              + ["--server", (server or self.server).url],
                              capture_output=True, text=True, timeout=60, env=full)


def _class_setup_call(server, method, path, body, expected):
    status, answer = server.api(method, path, body)
    if status != expected:
        raise AssertionError("%s %s -> %s %r (expected %s)" % (method, path, status, answer,
                                                               expected))
    return answer


# =========================================================================== access and roles

class AccessTests(AuthHelpers, harness.E2ETestCase):
    """What needs an account, the 401 challenge, roles in the OpenAPI document and in
    practice, and cross-origin refusal. One server; accounts ro (read-only) and usr (user)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.start_class_server()
        cls.ro = ("ro-1", "ro-1-Secret-pw")
        cls.usr = ("usr-1", "usr-1-Secret-pw")
        for (name, password), role in ((cls.ro, "read-only"), (cls.usr, "user")):
            _class_setup_call(cls.server, "POST", "/api/users",
                              {"username": name, "role": role, "password": password}, 201)
        # A DIMSE node where nothing listens (the test's network namespace has only lo).
        _class_setup_call(cls.server, "POST", "/api/nodes",
                          {"name": "n1", "type": "dimse", "ae_title": "N1",
                           "host": "127.0.0.1", "port": 104}, 201)
        status, cls.doc = cls.server.api("GET", "/api/openapi.json", auth=None)
        if status != 200 or not isinstance(cls.doc, dict):
            raise AssertionError("GET /api/openapi.json -> %s %r" % (status, cls.doc))

    def operations(self):
        """{(METHOD, path): operation} of the OpenAPI document."""
        ops = {}
        for path, item in self.doc.get("paths", {}).items():
            for method, op in item.items():
                if method in METHODS:
                    ops[(method.upper(), path)] = op
        return ops

    def test_open_endpoints_answer_without_credentials(self):
        status, body = self.server.api("GET", "/api/health", auth=None)
        # Without credentials: whether the receivers listen, not which.
        self.assertEqual((status, body), (200, {"status": "ok", "receivers_ok": True}))
        status, body = self.server.api("GET", "/api/health", auth=self.ro)
        self.assertEqual(status, 200, body)
        self.assertEqual(body.get("receivers_not_listening"), [], body)
        status, body = self.server.api("GET", "/api/ready", auth=None)
        self.assertEqual((status, body), (200, {"status": "ready"}))
        status, _, payload = self.server.raw("GET", "/api/openapi.yaml", auth=None)
        self.assertEqual(status, 200, payload[:200])
        self.assertTrue(payload.startswith(b"openapi: 3"), payload[:40])
        self.assertIn(b"/api/auth/login", payload)
        # The log-in is open (a wrong password is a 401 of the log-in, not "authentication
        # required").
        status, _, body = self.login("nobody-at-all", "whatever-Pw-1")
        self.assertEqual(status, 401, body)
        self.assertNotIn("authentication required", error_of(body))

    def test_missing_or_refused_credentials_get_401_with_a_challenge(self):
        for path in ("/api/nodes", "/api/system", "/api/auth/me", "/api/studies"):
            status, headers, payload = self.server.raw("GET", path, auth=None)
            body = harness.parse_json(payload)
            self.assertEqual(status, 401, "%s: %r" % (path, body))
            self.assertIn(CHALLENGE, headers.get("WWW-Authenticate") or "", path)
            self.assertIn("authentication required", error_of(body), path)
        # A POST without credentials changes nothing.
        status, headers, _ = self.server.raw("POST", "/api/nodes", {
            "name": "anon", "type": "dimse", "ae_title": "ANON", "host": "127.0.0.1",
            "port": 104}, auth=None)
        self.assertEqual(status, 401)
        self.assertEqual(self.server.api("GET", "/api/nodes/anon")[0], 404)

        # The web UI says X-Requested-With: no challenge, so the browser shows no dialog.
        status, headers, payload = self.server.raw(
            "GET", "/api/nodes", auth=None, headers={"X-Requested-With": "XMLHttpRequest"})
        self.assertEqual(status, 401)
        self.assertIsNone(headers.get("WWW-Authenticate"), dict(headers))
        self.assertIn("authentication required", error_of(harness.parse_json(payload)))
        # Nor for an image of a page (the viewer's, the archive's): an <img> cannot say
        # X-Requested-With, and browsers say what loads it (Sec-Fetch-Dest).
        status, headers, payload = self.server.raw(
            "GET", "/dicom-web/studies/1.2.3/thumbnail", auth=None, headers={"Sec-Fetch-Dest": "image"})
        self.assertEqual(status, 401, payload[:200])
        self.assertIsNone(headers.get("WWW-Authenticate"), dict(headers))
        status, headers, _ = self.server.raw("GET", "/dicom-web/studies/1.2.3/thumbnail", auth=None)
        self.assertEqual(status, 401)
        self.assertIn(CHALLENGE, headers.get("WWW-Authenticate") or "")

        # Refused credentials of every kind: 401 with the challenge.
        name, _ = self.add_user("wrong-1", "user")
        refused = {"a wrong password": harness.basic_auth(name, "not-the-Password-1"),
                   "an unknown user": harness.basic_auth("nobody-here", "not-the-Password-1"),
                   "an unknown token": bearer("pbt_" + "A" * 40),
                   "a made-up session": {"Cookie": "%s=%s" % (COOKIE, "B" * 43)}}
        for what, hdrs in refused.items():
            status, headers, payload = self.server.raw("GET", "/api/nodes", headers=hdrs,
                                                       auth=None)
            self.assertEqual(status, 401, "%s: %r" % (what, payload[:300]))
            self.assertIn(CHALLENGE, headers.get("WWW-Authenticate") or "", what)
            self.assertNotIn(b"n1", payload, what)

    def test_openapi_states_the_role_of_every_operation(self):
        ops = self.operations()
        self.assertIn(("POST", "/api/auth/login"), ops, "the log-in is not documented")
        open_ops, roles, neither = set(), {}, []
        for key, op in ops.items():
            if op.get("security") == []:
                open_ops.add(key)
            elif op.get("x-role") in ROLES:
                roles[(key[0], template(key[1]))] = op["x-role"]
            else:
                neither.append("%s %s: x-role %r" % (key[0], key[1], op.get("x-role")))
        self.assertEqual(neither, [], "operations with neither a role nor security: []")
        self.assertLessEqual(open_ops, OPEN_OPERATIONS, "open operations beyond the spec's")
        self.assertLessEqual({("GET", "/api/health"), ("GET", "/api/ready"),
                              ("POST", "/api/auth/login")}, open_ops)
        wrong = ["%s %s: %r, expected %r" % (m, p, roles.get((m, p)), role)
                 for (m, p), role in sorted(EXPECTED_ROLES.items()) if roles.get((m, p)) != role]
        self.assertEqual(wrong, [], "\n".join(wrong))
        # A read-only account reads every GET a user may make: all but users and the audit.
        for (method, path), role in sorted(roles.items()):
            if method == "GET":
                admin_only = path.startswith("/api/users") or path.startswith("/api/audit")
                self.assertEqual(role, "admin" if admin_only else "read-only",
                                 "GET %s" % path)

    def test_the_server_enforces_the_documented_roles(self):
        """Each operation called as the read-only and as the user account: a role too low is
        refused with 403 naming the role; a GET is refused to no one. Paths with parameters are
        filled with names of nothing (GETs only); a refused call changes nothing."""
        calls = 0
        for (method, path), op in sorted(self.operations().items()):
            role = op.get("x-role")
            if op.get("security") == [] or role not in ROLES:
                continue
            url = re.sub(r"\{([^}]*)\}", lambda m: "no-such-" + m.group(1).replace("_", "-"),
                         path)
            if method == "GET" and op.get("x-stream"):  # an event stream: its answer's status
                for who in (self.ro, self.usr):
                    stream = self.server.events(url, auth=who)
                    stream.close()
                    calls += 1
                    self.assertEqual(stream.status, 200, "GET %s as %s" % (url, who[0]))
                continue
            if method == "GET":
                for who in ((self.ro, self.usr) if role != "admin" else ()):
                    status, body = self.server.api("GET", url, auth=who)
                    calls += 1
                    self.assertNotIn(status, (401, 403), "GET %s as %s: %r" % (url, who[0], body))
                if role == "admin":
                    for who in (self.ro, self.usr):
                        status, body = self.server.api("GET", url, auth=who)
                        calls += 1
                        # The gate answers before anything is looked up.
                        self.assertRefused(status, body, "admin", "GET %s as %s" % (url, who[0]))
                continue
            if role == "read-only":
                continue
            for who in (self.ro, self.usr):
                allowed = role == "user" and who is self.usr
                status, body = self.server.api(method, url, {}, auth=who)
                calls += 1
                what = "%s %s as %s" % (method, url, who[0])
                if allowed:
                    self.assertNotIn(status, (401, 403), "%s: %r" % (what, body))
                else:
                    self.assertRefused(status, body, role, what)
        self.assertGreater(calls, 40)

    def test_each_role_does_what_the_table_says(self):
        ro, usr = self.ro, self.usr
        for who, role in ((ro, "read-only"), (usr, "user")):
            status, me = self.server.api("GET", "/api/auth/me", auth=who)
            self.assertEqual(status, 200, me)
            self.assertEqual((me.get("username"), me.get("role"), me.get("via")),
                             (who[0], role, "basic"), me)
            self.assertNotIn("csrf_token", me)
            status, nodes = self.server.api("GET", "/api/nodes", auth=who)
            self.assertEqual(status, 200, nodes)
            self.assertIn("n1", [n.get("name") for n in nodes])
            status, body = self.server.api("GET", "/api/receivers", auth=who)
            self.assertEqual(status, 200, body)
            # Admin only: nodes, receivers, users, the audit log.
            status, body = self.server.api("POST", "/api/nodes", {
                "name": "by-" + who[0], "type": "dimse", "ae_title": "X", "host": "127.0.0.1",
                "port": 104}, auth=who)
            self.assertRefused(status, body, "admin", "POST /api/nodes as " + who[0])
            status, body = self.server.api("PUT", "/api/nodes/n1", {"description": "x"},
                                           auth=who)
            self.assertRefused(status, body, "admin", "PUT /api/nodes/n1 as " + who[0])
            status, body = self.server.api("DELETE", "/api/nodes/n1", auth=who)
            self.assertRefused(status, body, "admin", "DELETE /api/nodes/n1 as " + who[0])
            status, body = self.server.api("POST", "/api/receivers", {
                "ae_title": "RCVX", "port": harness.free_receiver_port(), "bind": "127.0.0.1"},
                auth=who)
            self.assertRefused(status, body, "admin", "POST /api/receivers as " + who[0])
            for path in ("/api/users", "/api/users/" + who[0], "/api/audit"):
                status, body = self.server.api("GET", path, auth=who)
                self.assertRefused(status, body, "admin", "GET %s as %s" % (path, who[0]))
        status, node = self.server.api("GET", "/api/nodes/n1")
        self.assertEqual(status, 200, "a refused DELETE removed the node: %r" % (node,))
        self.assertNotEqual(node.get("description"), "x", "a refused PUT changed the node")
        for who in (ro, usr):
            self.assertEqual(self.server.api("GET", "/api/nodes/by-" + who[0])[0], 404)

        # Testing connections and finding: user, not read-only.
        status, body = self.server.api("POST", "/api/nodes/n1/echo", auth=ro)
        self.assertRefused(status, body, "user", "echo as read-only")
        status, body = self.server.api("POST", "/api/nodes/n1/find", {"level": "STUDY"},
                                       auth=ro)
        self.assertRefused(status, body, "user", "find as read-only")
        status, body = self.server.api("POST", "/api/nodes/n1/echo", auth=usr)
        self.assertEqual(status, 200, body)
        self.assertIs(body.get("ok"), False, body)  # nothing listens on port 104
        status, body = self.server.api("POST", "/api/nodes/n1/find", {"level": "STUDY"},
                                       auth=usr)
        self.assertNotIn(status, (401, 403), body)

        # A read-only account keeps its own password and tokens.
        name, password = self.add_user("ro-2", "read-only")
        status, body = self.server.api("PUT", "/api/auth/password", {
            "current_password": password, "new_password": "ro-2-New-pw-9"}, auth=(name, password))
        self.assertEqual(status, 204, body)
        self.assertEqual(self.server.api("GET", "/api/auth/me", auth=(name, "ro-2-New-pw-9"))[0], 200)
        status, token = self.server.api("POST", "/api/tokens", {"name": "ro-token"},
                                        auth=(name, "ro-2-New-pw-9"))
        self.assertEqual(status, 201, token)
        self.assertEqual(token.get("role"), "read-only", token)
        status, body = self.server.api("POST", "/api/nodes/n1/echo", auth=None,
                                       headers=bearer(token["token"]))
        self.assertRefused(status, body, "user", "echo with a read-only token")

    def test_another_origin_cannot_change_anything(self):
        node = {"name": "xo1", "type": "dimse", "ae_title": "XO1", "host": "127.0.0.1",
                "port": 104}
        here = "http://127.0.0.1:%d" % self.server.http_port
        elsewhere = ("http://evil.example", "http://127.0.0.1:%d" % harness.free_port(),
                     "http://localhost.evil.example:%d" % self.server.http_port,
                     "null", "file://")
        for origin in elsewhere:
            status, body = self.server.api("POST", "/api/nodes", node, headers={"Origin": origin})
            self.assertEqual(status, 403, "%s: %r" % (origin, body))
            self.assertIn("cross-origin", error_of(body), origin)
        self.assertEqual(self.server.api("GET", "/api/nodes/xo1")[0], 404,
                         "a cross-origin POST created the node")
        status, body = self.server.api("POST", "/api/nodes", node, headers={"Origin": here})
        self.assertEqual(status, 201, body)

        status, body = self.server.api("PUT", "/api/nodes/xo1", {"description": "evil"},
                                       headers={"Origin": elsewhere[0]})
        self.assertEqual(status, 403, body)
        self.assertIn("cross-origin", error_of(body))
        status, body = self.server.api("DELETE", "/api/nodes/xo1",
                                       headers={"Origin": elsewhere[0]})
        self.assertEqual(status, 403, body)
        self.assertIn("cross-origin", error_of(body))
        status, shown = self.server.api("GET", "/api/nodes/xo1", headers={"Origin": elsewhere[0]})
        self.assertEqual(status, 200, "a cross-origin DELETE removed the node, or a GET was refused")
        self.assertNotEqual(shown.get("description"), "evil")

        # With a session too (cookie and CSRF token right, origin wrong).
        session = self.open_session(*self.usr)
        status, _, body = self.with_session(session, "POST", "/api/nodes/n1/echo",
                                            headers={"Origin": elsewhere[0]})
        self.assertEqual(status, 403, body)
        self.assertIn("cross-origin", error_of(body))
        status, _, body = self.with_session(session, "POST", "/api/nodes/n1/echo",
                                            headers={"Origin": here})
        self.assertEqual(status, 200, body)

        # The log-in too: a page elsewhere cannot log a browser in.
        status, headers, body = self.login(*self.usr, headers={"Origin": elsewhere[0]})
        self.assertEqual(status, 403, body)
        self.assertIn("cross-origin", error_of(body))
        self.assertIsNone(session_cookie(headers)[0], "a cross-origin log-in set a cookie")
        status, _, body = self.login(*self.usr, headers={"Origin": here})
        self.assertEqual(status, 200, body)

        status, body = self.server.api("DELETE", "/api/nodes/xo1", headers={"Origin": here})
        self.assertEqual(status, 204, body)


# =========================================================================== accounts

class AccountTests(AuthHelpers, harness.E2ETestCase):
    """Users, passwords, sessions, tokens, the log-in throttle, the audit log and the CLI, on
    one server. Each test uses accounts of its own."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.start_class_server()
        _class_setup_call(cls.server, "POST", "/api/nodes",
                          {"name": "n1", "type": "dimse", "ae_title": "N1",
                           "host": "127.0.0.1", "port": 104}, 201)

    # ---- users

    def test_admins_manage_users(self):
        before = datetime.datetime.now(UTC).replace(microsecond=0)
        password = "alice-Secret-pw1"
        status, user = self.server.api("POST", "/api/users", {
            "username": "alice-1", "role": "user", "password": password})
        self.assertEqual(status, 201, user)
        self.assertEqual((user.get("username"), user.get("role")), ("alice-1", "user"), user)
        for key in ("created_at", "last_login_at"):
            self.assertIn(key, user)
        self.assertLessEqual(before, parse_time(user["created_at"]))
        # Neither the password nor its hash (password_changed_at is a date).
        self.assertFalse([k for k in user if k in ("password", "password_hash") or "hash" in k], user)
        self.assertNotIn(password, json.dumps(user))
        self.assertNotIn("$argon2", json.dumps(user))

        status, body = self.server.api("POST", "/api/users", {
            "username": "alice-1", "role": "user", "password": "another-Pw-1"})
        self.assertEqual(status, 409, body)
        status, body = self.server.api("POST", "/api/users", {
            "username": "boss-1", "role": "boss", "password": "boss-Secret-1"})
        self.assertJsonError(status, body, field="role")
        status, body = self.server.api("POST", "/api/users", {
            "username": "short-1", "role": "user", "password": "7chars!"})
        self.assertJsonError(status, body, field="password")
        status, body = self.server.api("POST", "/api/users", {
            "username": "same-as-name", "role": "user", "password": "same-as-name"})
        self.assertJsonError(status, body, field="password")
        status, body = self.server.api("POST", "/api/users", {
            "username": "", "role": "user", "password": "empty-Name-pw1"})
        self.assertJsonError(status, body, field="username")
        for name in ("boss-1", "short-1", "same-as-name"):
            self.assertEqual(self.server.api("GET", "/api/users/" + name)[0], 404, name)

        status, headers, payload = self.server.raw("GET", "/api/users")
        self.assertEqual(status, 200, payload[:300])
        users = harness.parse_json(payload)
        by_name = {u.get("username"): u for u in users}
        self.assertEqual(by_name.get("admin", {}).get("role"), "admin", users)
        self.assertEqual(by_name.get("alice-1", {}).get("role"), "user", users)
        for u in users:
            self.assertLessEqual({"username", "role", "created_at", "last_login_at"}, set(u), u)
            self.assertFalse([k for k in u if k in ("password", "password_hash") or "hash" in k], u)
        self.assertNoSecrets(payload, [password, harness.ADMIN_PASSWORD], "GET /api/users")

        # A log-in is noted.
        session = self.open_session("alice-1", password)
        status, shown = self.server.api("GET", "/api/users/alice-1")
        self.assertEqual(status, 200, shown)
        self.assertTrue(shown.get("last_login_at"), shown)
        self.assertLessEqual(before, parse_time(shown["last_login_at"]))

        self.set_user("alice-1", {"role": "read-only"})
        self.assertEqual(self.user_role("alice-1"), "read-only")
        status, body = self.server.api("PUT", "/api/users/alice-1", {"role": "boss"})
        self.assertJsonError(status, body, field="role")
        self.assertEqual(self.user_role("alice-1"), "read-only")

        # Deleting an account ends its access at once (remembered password, session).
        self.assertEqual(self.server.api("GET", "/api/nodes", auth=("alice-1", password))[0], 200)
        status, body = self.server.api("DELETE", "/api/users/alice-1")
        self.assertEqual(status, 204, body)
        self.assertEqual(self.server.api("GET", "/api/users/alice-1")[0], 404)
        self.assertEqual(self.server.api("GET", "/api/nodes", auth=("alice-1", password))[0], 401)
        self.assertEqual(self.with_session(session, "GET", "/api/auth/me")[0], 401)
        self.assertEqual(self.server.api("DELETE", "/api/users/alice-1")[0], 404)

    def test_the_last_admin_stays(self):
        # Leave "admin" the only admin (other tests of this class may have made some).
        status, users = self.server.api("GET", "/api/users")
        self.assertEqual(status, 200, users)
        for u in users:
            if u["role"] == "admin" and u["username"] != "admin":
                self.assertEqual(self.server.api("DELETE", "/api/users/" + u["username"])[0], 204)

        status, body = self.server.api("DELETE", "/api/users/admin")
        self.assertEqual(status, 409, body)
        status, body = self.server.api("PUT", "/api/users/admin", {"role": "user"})
        self.assertEqual(status, 409, body)
        status, body = self.server.api("PUT", "/api/users/admin", {"role": "read-only"})
        self.assertEqual(status, 409, body)
        self.assertEqual(self.user_role("admin"), "admin")

        # With a second admin, that one may go.
        self.add_user("admin-2", "admin")
        self.set_user("admin-2", {"role": "user"})
        self.assertEqual(self.user_role("admin-2"), "user")
        self.set_user("admin-2", {"role": "admin"})
        self.assertEqual(self.server.api("DELETE", "/api/users/admin-2")[0], 204)
        status, body = self.server.api("DELETE", "/api/users/admin")
        self.assertEqual(status, 409, body)
        self.assertEqual(self.server.api("GET", "/api/auth/me")[1].get("role"), "admin")

    # ---- passwords

    def test_changing_a_password_ends_the_old_one_and_other_sessions(self):
        name, first = self.add_user("carol-long-1", "user")
        second, third = "carol-Second-pw2", "carol-Third-pw3"
        # The password is verified (and remembered) before it changes.
        self.assertEqual(self.server.api("GET", "/api/auth/me", auth=(name, first))[0], 200)
        a = self.open_session(name, first)
        b = self.open_session(name, first)

        status, body = self.server.api("PUT", "/api/auth/password", {
            "current_password": "not-the-Current-1", "new_password": second},
            auth=(name, first))
        self.assertJsonError(status, body, field="current_password")
        status, body = self.server.api("PUT", "/api/auth/password", {
            "current_password": first, "new_password": "7chars!"}, auth=(name, first))
        self.assertJsonError(status, body, field="new_password")
        status, body = self.server.api("PUT", "/api/auth/password", {
            "current_password": first, "new_password": name}, auth=(name, first))
        self.assertJsonError(status, body, field="new_password")
        status, body = self.server.api("PUT", "/api/auth/password", {
            "current_password": first, "new_password": "x" * 1025}, auth=(name, first))
        self.assertJsonError(status, body, field="new_password")
        self.assertEqual(self.server.api("GET", "/api/auth/me", auth=(name, first))[0], 200,
                         "a refused change changed the password")

        # Changed through session a (with its CSRF token): b ends, a goes on.
        status, _, body = self.with_session(a, "PUT", "/api/auth/password", {
            "current_password": first, "new_password": second})
        self.assertEqual(status, 204, body)
        self.assertEqual(self.server.api("GET", "/api/auth/me", auth=(name, first))[0], 401,
                         "the old password still opens the account (remembered?)")
        self.assertEqual(self.server.api("GET", "/api/auth/me", auth=(name, second))[0], 200)
        self.assertEqual(self.with_session(a, "GET", "/api/auth/me")[0], 200)
        self.assertEqual(self.with_session(b, "GET", "/api/auth/me")[0], 401)

        # An admin sets it: every session of that user ends.
        status, body = self.server.api("PUT", "/api/users/" + name, {"password": "7chars!"})
        self.assertJsonError(status, body, field="password")
        self.assertEqual(self.server.api("GET", "/api/auth/me", auth=(name, second))[0], 200)
        self.set_user(name, {"password": third})
        self.assertEqual(self.with_session(a, "GET", "/api/auth/me")[0], 401)
        self.assertEqual(self.server.api("GET", "/api/auth/me", auth=(name, second))[0], 401)
        self.assertEqual(self.server.api("GET", "/api/auth/me", auth=(name, third))[0], 200)
        self.assertEqual(self.user_role(name), "user", "setting the password changed the role")

    # ---- sessions

    def test_log_in_session_csrf_and_log_out(self):
        name, password = self.add_user("dave-1", "user")
        status, headers, body = self.login(name, "not-the-Password-1")
        self.assertEqual(status, 401, body)
        self.assertEqual(error_of(body), WRONG_LOGIN)
        self.assertEqual(session_cookie(headers)[0], None, "a refused log-in set a cookie")
        status, _, body = self.login("no-such-user-1", "not-the-Password-1")
        self.assertEqual(status, 401, body)
        self.assertEqual(error_of(body), WRONG_LOGIN, "an unknown name is told apart")

        now = datetime.datetime.now(UTC)
        status, headers, body = self.login(name, password)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("Cache-Control"), "no-store", "the answer holds a CSRF token")
        s = self.open_session(name, password)
        self.assertEqual((s.answer.get("username"), s.answer.get("role")), (name, "user"),
                         s.answer)
        expires = parse_time(s.answer.get("expires_at"))
        # Idle end (480 min) or absolute end (168 h), whichever the answer gives.
        self.assertLess(now + datetime.timedelta(hours=7), expires, s.answer)
        self.assertLessEqual(expires, now + datetime.timedelta(hours=168, minutes=2), s.answer)
        for attribute in ("httponly", "samesite=strict", "path=/"):
            self.assertIn(attribute, s.cookie_attributes, s.cookie_attributes)
        self.assertNotIn("secure", s.cookie_attributes, "Secure on plain HTTP: the browser "
                                                        "would never send the cookie back")
        self.assertNotIn(s.csrf_token, s.cookie, "the CSRF token is the cookie")

        status, _, me = self.with_session(s, "GET", "/api/auth/me")
        self.assertEqual(status, 200, me)
        self.assertEqual((me.get("username"), me.get("role"), me.get("via"), me.get("csrf_token")),
                         (name, "user", "session", s.csrf_token), me)
        status, _, nodes = self.with_session(s, "GET", "/api/nodes")
        self.assertEqual(status, 200, nodes)
        self.assertIn("n1", [n.get("name") for n in nodes])

        # A change with the cookie needs the CSRF token.
        for csrf in (False, "wrong-" + s.csrf_token, ""):
            status, _, body = self.with_session(s, "POST", "/api/nodes/n1/echo", csrf=csrf)
            self.assertEqual(status, 403, "csrf %r: %r" % (csrf, body))
            self.assertIn("X-CSRF-Token", error_of(body))
        status, _, body = self.with_session(s, "POST", "/api/nodes/n1/echo")
        self.assertEqual(status, 200, body)
        self.assertIs(body.get("ok"), False, body)
        # The role holds in a session too.
        status, _, body = self.with_session(s, "DELETE", "/api/nodes/n1")
        self.assertRefused(status, body, "admin", "DELETE /api/nodes/n1 in a user's session")

        # Another session of the same user has its own token.
        other = self.open_session(name, password)
        self.assertNotEqual(other.cookie, s.cookie)
        status, _, body = self.with_session(other, "POST", "/api/nodes/n1/echo",
                                            csrf=s.csrf_token)
        self.assertEqual(status, 403, "one session's CSRF token opens another: %r" % (body,))

        # Log-out (a change too: the CSRF token is needed) ends this session only.
        status, _, body = self.with_session(s, "POST", "/api/auth/logout", csrf=False)
        self.assertEqual(status, 403, body)
        self.assertEqual(self.with_session(s, "GET", "/api/auth/me")[0], 200)
        status, _, body = self.with_session(s, "POST", "/api/auth/logout")
        self.assertEqual(status, 204, body)
        status, headers, body = self.with_session(s, "GET", "/api/auth/me")
        self.assertEqual(status, 401, body)
        self.assertIn(CHALLENGE, headers.get("WWW-Authenticate") or "")
        status, headers, body = self.with_session(
            s, "GET", "/api/nodes", headers={"X-Requested-With": "XMLHttpRequest"})
        self.assertEqual(status, 401, body)
        self.assertIsNone(headers.get("WWW-Authenticate"))
        self.assertEqual(self.with_session(other, "GET", "/api/auth/me")[0], 200)

    # ---- tokens

    def test_api_tokens(self):
        owner = self.add_user("tok-user-1", "user")
        before = datetime.datetime.now(UTC).replace(microsecond=0)
        status, headers, payload = self.server.raw("POST", "/api/tokens", {"name": "ci"}, auth=owner)
        ci = harness.parse_json(payload)
        self.assertEqual(status, 201, ci)
        self.assertEqual(headers.get("Cache-Control"), "no-store", "the answer holds the secret")
        self.assertLessEqual({"id", "name", "role", "token", "created_at", "expires_at"}, set(ci))
        self.assertEqual(ci["name"], "ci")
        self.assertEqual(ci["role"], "user", "a token's role defaults to its owner's")
        self.assertTrue(ci["token"].startswith("pbt_"), ci)
        self.assertGreaterEqual(len(ci["token"]), 24, ci)
        self.assertIsNone(ci["expires_at"], "no expiry asked: %r" % (ci,))
        self.assertLessEqual(before, parse_time(ci["created_at"]))

        # Used as a Bearer token; a change needs no CSRF token.
        status, me = self.server.api("GET", "/api/auth/me", auth=None, headers=bearer(ci["token"]))
        self.assertEqual(status, 200, me)
        self.assertEqual((me.get("username"), me.get("role"), me.get("via")),
                         (owner[0], "user", "token"), me)
        status, body = self.server.api("POST", "/api/nodes/n1/echo", auth=None,
                                       headers=bearer(ci["token"]))
        self.assertEqual(status, 200, body)
        status, body = self.server.api("POST", "/api/nodes", {
            "name": "by-token", "type": "dimse", "ae_title": "X", "host": "127.0.0.1",
            "port": 104}, auth=None, headers=bearer(ci["token"]))
        self.assertRefused(status, body, "admin", "POST /api/nodes with a user's token")

        # No higher than the owner's role; a lower one holds.
        status, body = self.server.api("POST", "/api/tokens", {"name": "up", "role": "admin"},
                                       auth=owner)
        self.assertJsonError(status, body, field="role")
        status, body = self.server.api("POST", "/api/tokens", {"name": "odd", "role": "boss"},
                                       auth=owner)
        self.assertJsonError(status, body, field="role")
        now = datetime.datetime.now(UTC)
        status, ro = self.server.api("POST", "/api/tokens", {
            "name": "ro", "role": "read-only", "expires_days": 1}, auth=owner)
        self.assertEqual(status, 201, ro)
        self.assertEqual(ro["role"], "read-only")
        left = parse_time(ro["expires_at"]) - now
        self.assertTrue(datetime.timedelta(hours=23) < left <= datetime.timedelta(hours=25),
                        ro)
        status, body = self.server.api("POST", "/api/nodes/n1/echo", auth=None,
                                       headers=bearer(ro["token"]))
        self.assertRefused(status, body, "user", "echo with a read-only token")
        status, body = self.server.api("GET", "/api/nodes", auth=None, headers=bearer(ro["token"]))
        self.assertEqual(status, 200, body)

        # Listed without the secret: one's own; all of them for an admin who asks.
        status, _, payload = self.server.raw("GET", "/api/tokens", auth=owner)
        self.assertEqual(status, 200, payload[:300])
        listed = harness.parse_json(payload)
        self.assertEqual({t.get("id") for t in listed}, {ci["id"], ro["id"]}, listed)
        for t in listed:
            self.assertNotIn("token", t)
        self.assertNoSecrets(payload, [ci["token"], ro["token"]], "GET /api/tokens")
        status, admin_tok = self.server.api("POST", "/api/tokens", {"name": "admin-tok"})
        self.assertEqual(status, 201, admin_tok)
        self.assertEqual(admin_tok["role"], "admin")
        status, body = self.server.api("GET", "/api/users", auth=None,
                                       headers=bearer(admin_tok["token"]))
        self.assertEqual(status, 200, body)
        status, mine = self.server.api("GET", "/api/tokens")
        self.assertEqual(status, 200, mine)
        ids = {t.get("id") for t in mine}
        self.assertIn(admin_tok["id"], ids)
        self.assertFalse(ids & {ci["id"], ro["id"]}, "the admin's own list shows others' tokens")
        status, _, payload = self.server.raw("GET", "/api/tokens?all=true")
        self.assertEqual(status, 200, payload[:300])
        everyone = {t.get("id"): t for t in harness.parse_json(payload)}
        self.assertEqual(everyone.get(ci["id"], {}).get("username"), owner[0], everyone)
        self.assertEqual(everyone.get(admin_tok["id"], {}).get("username"), "admin")
        self.assertNoSecrets(payload, [ci["token"], ro["token"], admin_tok["token"]],
                             "GET /api/tokens?all=true")
        status, _, payload = self.server.raw("GET", "/api/tokens", auth=owner)
        self.assertNotIn(admin_tok["id"], {t.get("id") for t in harness.parse_json(payload)})

        # Never above the owner's current role.
        self.set_user(owner[0], {"role": "read-only"})
        status, body = self.server.api("POST", "/api/nodes/n1/echo", auth=None,
                                       headers=bearer(ci["token"]))
        self.assertRefused(status, body, "user", "echo with a user token of a demoted owner")
        self.set_user(owner[0], {"role": "user"})

        # Revoked: refused at once.
        status, body = self.server.api("DELETE", "/api/tokens/%s" % ci["id"], auth=owner)
        self.assertEqual(status, 204, body)
        status, headers, _ = self.server.raw("GET", "/api/nodes", auth=None,
                                             headers=bearer(ci["token"]))
        self.assertEqual(status, 401)
        self.assertEqual(self.server.api("DELETE", "/api/tokens/%s" % ci["id"], auth=owner)[0], 404)
        self.assertEqual(self.server.api("DELETE", "/api/tokens/no-such-token")[0], 404)
        status, body = self.server.api("GET", "/api/nodes", auth=None, headers=bearer(ro["token"]))
        self.assertEqual(status, 200, "revoking one token revoked another: %r" % (body,))
        self.assertEqual(self.server.api("DELETE", "/api/tokens/%s" % admin_tok["id"])[0], 204)

    # ---- throttle

    def test_failed_log_ins_slow_the_name_down(self):
        name, password = self.add_user("slow-1", "user")
        for i in range(5):
            status, _, body = self.login(name, "wrong-Password-%d" % i)
            self.assertEqual(status, 401, "failure %d: %r" % (i + 1, body))
        fifth_sent = time.monotonic()  # (an upper bound of when the fifth failure was sent)
        # The sixth attempt within 2 s: 429 even with the right password.
        status, headers, body = self.login(name, password)
        self.assertEqual(status, 429, body)
        retry_after = headers.get("Retry-After")
        self.assertIsNotNone(retry_after, dict(headers))
        self.assertRegex(retry_after.strip(), r"^\d+$")
        self.assertTrue(1 <= int(retry_after) <= 2, retry_after)
        self.assertIsNone(session_cookie(headers)[0])

        answers = []

        def let_in():
            status, headers, body = self.login(name, password)
            answers.append(status)
            return status != 429

        self.assertTrue(harness.wait_until(let_in, timeout=int(retry_after) + 5, interval=0.2),
                        "still 429 %ss after Retry-After %s" % (int(retry_after) + 5, retry_after))
        self.assertEqual(answers[-1], 200, answers)
        self.assertGreaterEqual(time.monotonic() - fifth_sent, 1.0,
                                "let in again well before the 2 s after the fifth failure")
        # A success reset the count: one failure is a plain 401, the password works again.
        self.assertEqual(self.login(name, "wrong-Password-x")[0], 401)
        self.assertEqual(self.login(name, password)[0], 200)

        # A name without an account is slowed down the same way.
        for i in range(5):
            status, _, body = self.login("ghost-1", "wrong-Password-%d" % i)
            self.assertEqual((status, error_of(body)), (401, WRONG_LOGIN), body)
        self.assertEqual(self.login("ghost-1", "wrong-Password-5")[0], 429)
        # The name's case does not matter, nor the way the password comes (HTTP basic here).
        self.assertEqual(self.login("GHOST-1", "wrong-Password-6")[0], 429)
        status, headers, body = self.server.raw("GET", "/api/nodes", auth=("Ghost-1", "wrong-Password-7"))
        self.assertEqual(status, 429, body)
        self.assertRegex(headers.get("Retry-After", ""), r"^\d+$")
        # ... and one name's failures do not slow another down.
        self.assertEqual(self.login(name, password)[0], 200)

    # ---- audit

    def test_audit_log_of_changes_and_log_ins(self):
        aud = self.add_user("auditor-1", "admin")
        secrets = ["topsecret-1", aud[1], "wrong-Audit-pw1"]

        dw = {"name": "dw1", "type": "dicomweb", "url": "http://127.0.0.1:9/dicom-web",
              "auth": {"type": "basic", "username": "u", "password": "topsecret-1"}}
        status, body = self.server.api("POST", "/api/nodes", dw, auth=aud)
        self.assertEqual(status, 201, body)
        status, body = self.server.api("PUT", "/api/nodes/dw1", {"description": "x"}, auth=aud)
        self.assertEqual(status, 200, body)
        status, body = self.server.api("DELETE", "/api/nodes/dw1", auth=aud)
        self.assertEqual(status, 204, body)

        self.assertEqual(self.login(aud[0], "wrong-Audit-pw1")[0], 401)
        session = self.open_session(*aud)
        port = harness.free_receiver_port()
        status, _, receiver = self.with_session(session, "POST", "/api/receivers", {
            "ae_title": "RCV2", "port": port, "bind": "127.0.0.1"})
        self.assertEqual(status, 201, receiver)
        status, _, body = self.with_session(session, "DELETE",
                                            "/api/receivers/%s" % receiver["id"])
        self.assertEqual(status, 204, body)

        status, tok = self.server.api("POST", "/api/tokens", {"name": "audit-tok"}, auth=aud)
        self.assertEqual(status, 201, tok)
        secrets.append(tok["token"])
        status, body = self.server.api("POST", "/api/nodes", {
            "name": "n-aud", "type": "dimse", "ae_title": "NAUD", "host": "127.0.0.1",
            "port": 104}, auth=None, headers=bearer(tok["token"]))
        self.assertEqual(status, 201, body)
        status, body = self.server.api("DELETE", "/api/tokens/%s" % tok["id"], auth=aud)
        self.assertEqual(status, 204, body)

        audited = self.add_user("audited-1", "user")[0]
        secrets.append("pw-audited-1-Secret9")
        # (created by the admin; now by auditor-1)
        status, body = self.server.api("PUT", "/api/users/" + audited,
                                       {"password": "audited-New-pw2"}, auth=aud)
        self.assertEqual(status, 200, body)
        secrets.append("audited-New-pw2")

        status, _, payload = self.server.raw("GET", "/api/audit?actor=auditor-1&limit=1000")
        self.assertEqual(status, 200, payload[:300])
        entries = harness.parse_json(payload)
        self.assertIsInstance(entries, list)
        for e in entries:
            self.assertLessEqual({"id", "at", "actor", "via", "client", "request_id", "action",
                                  "target_type", "target", "before", "after"}, set(e), e)
            self.assertEqual(e["actor"], "auditor-1", e)
            if not e["action"].startswith("auth."):
                self.assertIn(e["via"], ("session", "token", "basic"), e)
            for side in ("before", "after"):
                self.assertTrue(e[side] is None or isinstance(e[side], dict), e)

        dw1 = [e for e in entries if e["target"] == "dw1" and e["action"].startswith("node.")]
        self.assertEqual([e["action"] for e in dw1], ["node.delete", "node.update", "node.create"],
                         "newest first")
        delete, update, create = dw1
        self.assertIsNone(create["before"])
        self.assertEqual(create["after"].get("name"), "dw1", create)
        self.assertEqual(create["via"], "basic")
        self.assertIn("127.0.0.1", create["client"])
        self.assertTrue(create["request_id"], create)
        self.assertEqual(len({e["request_id"] for e in dw1}), 3, "one request id per request")
        self.assertNotEqual(update["before"].get("description"), "x", update)
        self.assertEqual(update["after"].get("description"), "x", update)
        self.assertEqual(delete["before"].get("name"), "dw1", delete)
        self.assertIsNone(delete["after"])
        self.assertLessEqual(parse_time(create["at"]), parse_time(delete["at"]))
        # The node's password: "***" or absent.
        shown = (create["after"].get("auth") or {}).get("password")
        self.assertIn(shown, (None, "***"), create)

        actions = [(e["action"], e["target"], e["via"]) for e in entries]
        rc = [e for e in entries if e["action"] == "receiver.create"]
        self.assertEqual(len(rc), 1, actions)
        self.assertEqual(rc[0]["via"], "session")
        self.assertEqual(rc[0]["after"].get("ae_title"), "RCV2", rc[0])
        self.assertIn(("node.create", "n-aud", "token"), actions)
        self.assertIn("token.create", [a for a, _, _ in actions])
        self.assertIn("token.revoke", [a for a, _, _ in actions])
        self.assertIn(("user.password", audited), [(a, t) for a, t, _ in actions])
        token_create = [e for e in entries if e["action"] == "token.create"][0]
        self.assertIn((token_create["after"] or {}).get("token"), (None, "***"), token_create)

        # Log-ins, failed ones too.
        status, logins = self.server.api("GET", "/api/audit?action=auth.login&limit=1000")
        self.assertEqual(status, 200, logins)
        self.assertTrue(logins, "no auth.login entry")
        self.assertTrue(all(e["action"] == "auth.login" for e in logins), logins)
        self.assertIn("auditor-1", [e["actor"] for e in logins])
        status, failed = self.server.api("GET", "/api/audit?action=auth.login_failed&limit=1000")
        self.assertEqual(status, 200, failed)
        self.assertTrue(all(e["action"] == "auth.login_failed" for e in failed), failed)
        self.assertTrue([e for e in failed if "auditor-1" in (e["actor"], e["target"])], failed)

        # The admin's creation of a user, and no secret anywhere in the log.
        status, _, payload = self.server.raw("GET", "/api/audit?limit=1000")
        self.assertEqual(status, 200)
        everything = harness.parse_json(payload)
        made = [e for e in everything if e["action"] == "user.create" and e["target"] == audited]
        self.assertEqual(len(made), 1, [e["action"] for e in everything])
        self.assertEqual((made[0]["actor"], made[0]["after"].get("role")), ("admin", "user"))
        self.assertNoSecrets(payload, secrets, "GET /api/audit")

        # Filters.
        status, one = self.server.api("GET", "/api/audit?limit=1")
        self.assertEqual(status, 200, one)
        self.assertEqual(len(one), 1)
        # The newest: that of the last full read, or one made since.
        older = [e["id"] for e in everything[1:]]
        self.assertNotIn(one[0]["id"], older, "limit=1 is not the newest entry")
        status, creates = self.server.api("GET", "/api/audit?action=node.create&limit=1000")
        self.assertEqual(status, 200, creates)
        self.assertTrue(all(e["action"] == "node.create" for e in creates), creates)
        self.assertLessEqual({"dw1", "n-aud", "n1"}, {e["target"] for e in creates})
        kind = create["target_type"]
        status, same = self.server.api("GET", "/api/audit?limit=1000&target_type=" + kind)
        self.assertEqual(status, 200, same)
        self.assertTrue(all(e["target_type"] == kind for e in same), same)
        self.assertIn(create["id"], [e["id"] for e in same])
        self.assertNotIn(rc[0]["id"], [e["id"] for e in same])
        for bad in ("0", "1001", "x"):
            status, body = self.server.api("GET", "/api/audit?limit=" + bad)
            self.assertJsonError(status, body, field="limit")
        # Time bounds, inclusive, against the entries' own times.
        at = create["at"]
        status, since = self.server.api("GET", "/api/audit?limit=1000&since=" + at)
        self.assertEqual(status, 200, since)
        self.assertTrue(since and all(parse_time(e["at"]) >= parse_time(at) for e in since), since)
        self.assertIn(create["id"], [e["id"] for e in since])
        status, until = self.server.api("GET", "/api/audit?limit=1000&until=" + at)
        self.assertEqual(status, 200, until)
        self.assertTrue(all(parse_time(e["at"]) <= parse_time(at) for e in until), until)
        self.assertIn(create["id"], [e["id"] for e in until])
        status, later = self.server.api("GET", "/api/audit?since=2199-01-01")
        self.assertEqual((status, later), (200, []))
        for bad in ("yesterday", "2999-01-01"):  # past what a time point holds: refused, not wrapped
            status, body = self.server.api("GET", "/api/audit?since=" + bad)
            self.assertJsonError(status, body, field="since")

    # ---- CLI

    def test_cli_credentials_tokens_users_and_audit(self):
        cp = self.pb("nodes", "list")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("authentication required", cp.stderr)
        cp = self.pb("nodes", "list", "--json", password=harness.ADMIN_PASSWORD)  # user: admin
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("n1", [n["name"] for n in json.loads(cp.stdout)])

        name, password = self.add_user("cli-1", "user")
        cp = self.pb("nodes", "list", "--user", name, "--password", password)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        cp = self.pb("nodes", "list", "--user", name, "--password", "not-the-Password-1")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        cp = self.pb("nodes", "list", user=name, password=password)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))

        # Tokens: created (the secret alone on the first line), used, listed, revoked.
        cp = self.pb("tokens", "create", "cli-tok", "--role", "read-only", "--expires-days", "2",
                     user=name, password=password)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        token = cp.stdout.splitlines()[0].strip() if cp.stdout.strip() else ""
        self.assertRegex(token, r"^pbt_\S+$", cp.stdout)
        cp = self.pb("nodes", "list", "--token", token)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        cp = self.pb("nodes", "list", token=token)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        cp = self.pb("users", "list", "--token", token)
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("admin", cp.stderr)
        status, me = self.server.api("GET", "/api/auth/me", auth=None, headers=bearer(token))
        self.assertEqual((status, me.get("username"), me.get("role")), (200, name, "read-only"))

        cp = self.pb("tokens", "list", "--json", user=name, password=password)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertNotIn(token, cp.stdout)
        listed = [t for t in json.loads(cp.stdout) if t.get("name") == "cli-tok"]
        self.assertEqual(len(listed), 1, cp.stdout)
        self.assertEqual(listed[0].get("role"), "read-only")
        cp = self.pb("tokens", "revoke", listed[0]["id"], user=name, password=password)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        cp = self.pb("nodes", "list", "--token", token)
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))

        # Users, as the admin.
        admin = {"user": "admin", "password": harness.ADMIN_PASSWORD}
        cp = self.pb("users", "add", "cli-2", "--role", "user", "--new-password", "cli-2-First-pw",
                     **admin)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        cp = self.pb("users", "list", "--json", **admin)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertNotIn("cli-2-First-pw", cp.stdout)
        self.assertNotIn("$argon2", cp.stdout)
        roles = {u["username"]: u["role"] for u in json.loads(cp.stdout)}
        self.assertEqual((roles.get("cli-2"), roles.get("admin")), ("user", "admin"), roles)
        cp = self.pb("users", "set", "cli-2", "--role", "read-only", **admin)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(self.user_role("cli-2"), "read-only")
        cp = self.pb("users", "set", "cli-2", "--new-password", "cli-2-Second-pw", **admin)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(self.server.api("GET", "/api/auth/me", auth=("cli-2", "cli-2-Second-pw"))[0],
                         200)
        cp = self.pb("users", "add", "cli-3", "--role", "boss", "--new-password", "cli-3-First-pw",
                     **admin)
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(self.server.api("GET", "/api/users/cli-3")[0], 404)
        cp = self.pb("users", "remove", "cli-2", **admin)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        cp = self.pb("audit", "--limit", "3", "--json", **admin)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        newest = json.loads(cp.stdout)
        self.assertTrue(1 <= len(newest) <= 3, newest)
        self.assertIn("cli-2", [e.get("target") for e in newest], newest)
        self.assertEqual(self.server.api("GET", "/api/users/cli-2")[0], 404)
        cp = self.pb("users", "list", user=name, password=password)
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("admin", cp.stderr)


# =========================================================================== start-up

class HttpsServer(harness.Server):
    """A server whose API speaks HTTPS only, trusting `cafile` to reach it."""

    def __init__(self, workdir, cafile, **kw):
        super().__init__(workdir, **kw)
        self.cafile = cafile
        self.ssl_context = ssl.create_default_context(cafile=str(cafile))

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.http_port

    def request(self, method, path, body=None, headers=None, auth=harness.Server._DEFAULT):
        return self.raw(method, path, body, headers=headers, auth=auth)


class StartupTests(AuthHelpers, harness.E2ETestCase):
    """The first admin account, HTTPS and where HTTP listens: a server per test."""

    CREATED = re.compile(r'created the account "admin" with the password ([A-Za-z0-9]{20}) '
                         r'\(shown once: change it after logging in')

    def log_text(self, server):
        return server.log_path.read_text("utf-8", "replace")

    def own_server(self, server):
        """Start a Server made here; stopped (exit 0 asserted) after the test."""
        self._peers.append(server)
        self.addCleanup(server.stop_and_check)
        server.start()
        return server

    def test_first_start_without_a_configured_password(self):
        srv = self.start_server(admin_password=None)
        found = harness.wait_until(lambda: self.CREATED.search(self.log_text(srv)), timeout=10)
        self.assertTrue(found, "no line with the random password in the log:\n" + srv.log_tail())
        password = found.group(1)
        kept = srv.data_dir / "initial-admin-password"
        self.assertTrue(kept.is_file(), "%s missing" % kept)
        self.assertEqual(kept.read_text("utf-8").rstrip("\r\n"), password)
        self.assertEqual(stat.S_IMODE(kept.stat().st_mode), 0o600, oct(kept.stat().st_mode))

        self.assertEqual(srv.api("GET", "/api/nodes", auth=None)[0], 401)
        self.assertEqual(srv.api("GET", "/api/nodes", auth=("admin", "not-the-Password-1"))[0], 401)
        status, me = srv.api("GET", "/api/auth/me", auth=("admin", password))
        self.assertEqual((status, me.get("username"), me.get("role")), (200, "admin", "admin"), me)
        status, users = srv.api("GET", "/api/users", auth=("admin", password))
        self.assertEqual([u.get("username") for u in users], ["admin"], users)

        new = "admin-Chosen-pw1"
        status, body = srv.api("PUT", "/api/auth/password", {
            "current_password": password, "new_password": new}, auth=("admin", password))
        self.assertEqual(status, 204, body)
        self.assertFalse(kept.exists(), "the initial password is still kept after the change")
        self.assertEqual(srv.api("GET", "/api/nodes", auth=("admin", password))[0], 401)
        self.assertEqual(srv.api("GET", "/api/nodes", auth=("admin", new))[0], 200)

        # A restart makes no new account and shows no password.
        srv.credentials = ("admin", new)
        srv.stop_and_check()
        srv.start()
        self.assertEqual(srv.api("GET", "/api/nodes", auth=("admin", new))[0], 200)
        log = self.log_text(srv)
        self.assertEqual(len(self.CREATED.findall(log)), 1, log)
        self.assertEqual(log.count(password), 1, "the random password is shown more than once")
        self.assertNotIn(new, log)
        self.assertFalse(kept.exists())

    def test_configured_password_is_only_the_initial_one(self):
        srv = self.start_server()  # [auth] admin_password = harness.ADMIN_PASSWORD
        self.assertFalse((srv.data_dir / "initial-admin-password").exists(),
                         "a configured password is kept in a file")
        self.assertIsNone(self.CREATED.search(self.log_text(srv)), "a random password was made")
        self.assertNotIn(harness.ADMIN_PASSWORD, self.log_text(srv))
        status, me = srv.api("GET", "/api/auth/me")
        self.assertEqual((status, me.get("username"), me.get("role")), (200, "admin", "admin"), me)
        new = "admin-Changed-pw2"
        status, body = srv.api("PUT", "/api/auth/password", {
            "current_password": harness.ADMIN_PASSWORD, "new_password": new})
        self.assertEqual(status, 204, body)
        self.assertNotIn("only the initial password", self.log_text(srv))

        # Restarted with the same configuration: the account keeps its password, the log says
        # the configured one no longer opens it (once).
        srv.credentials = ("admin", new)
        srv.stop_and_check()
        srv.start()
        self.assertTrue(harness.wait_until(
            lambda: "only the initial password" in self.log_text(srv), timeout=10),
            srv.log_tail())
        self.assertEqual(srv.api("GET", "/api/nodes", auth=("admin", harness.ADMIN_PASSWORD))[0],
                         401)
        self.assertEqual(srv.api("GET", "/api/nodes", auth=("admin", new))[0], 200)
        self.assertEqual(srv.api("GET", "/api/nodes", auth=("admin", new))[0], 200)
        self.assertEqual(self.log_text(srv).count("only the initial password"), 1,
                         srv.log_tail())
        self.assertNotIn(harness.ADMIN_PASSWORD, self.log_text(srv))

    def test_https_only(self):
        certs = self.mkdtemp("certs")
        key, cert = harness.make_cert(certs, "pacsbridge-e2e", san="IP:127.0.0.1")
        srv = self.own_server(HttpsServer(
            self.mkdtemp("https"), cafile=cert,
            server_toml="https_cert_file = %s\nhttps_key_file = %s"
                        % (harness.toml_value(str(cert)), harness.toml_value(str(key)))))

        status, _, payload = srv.request("GET", "/api/health", auth=None)
        self.assertEqual((status, harness.parse_json(payload)),
                         (200, {"status": "ok", "receivers_ok": True}))
        # Plain HTTP on that port gets no API answer.
        try:
            status, _, payload = harness.http_request(
                "GET", "http://127.0.0.1:%d/api/health" % srv.http_port, timeout=5)
        except Exception as e:  # OSError, URLError, http.client.BadStatusLine, ...
            status, payload = None, repr(e).encode()
        self.assertNotEqual(status, 200, "plain HTTP answered: %r" % payload[:200])
        self.assertNotIn(b'"receivers_ok"', payload)

        status, headers, _ = srv.request("GET", "/api/nodes", auth=None)
        self.assertEqual(status, 401)
        self.assertIn(CHALLENGE, headers.get("WWW-Authenticate") or "")
        status, _, payload = srv.request("GET", "/api/nodes")
        self.assertEqual(status, 200, payload[:300])

        status, headers, payload = srv.request("POST", "/api/auth/login", {
            "username": "admin", "password": harness.ADMIN_PASSWORD}, auth=None)
        self.assertEqual(status, 200, payload[:300])
        cookie, attributes = session_cookie(headers)
        self.assertTrue(cookie, headers.get_all("Set-Cookie"))
        for attribute in ("secure", "httponly", "samesite=strict", "path=/"):
            self.assertIn(attribute, attributes, attributes)
        status, _, payload = srv.request("GET", "/api/auth/me", auth=None,
                                         headers={"Cookie": "%s=%s" % (COOKIE, cookie)})
        me = harness.parse_json(payload)
        self.assertEqual((status, me.get("username"), me.get("via")), (200, "admin", "session"))

    def test_https_certificate_without_key_is_refused_at_start(self):
        certs = self.mkdtemp("certs")
        _, cert = harness.make_cert(certs, "pacsbridge-e2e", san="IP:127.0.0.1")
        srv = harness.Server(self.mkdtemp("nokey"),
                             server_toml="https_cert_file = %s" % harness.toml_value(str(cert)))
        try:
            cp = subprocess.run(srv.serve_argv(), stdin=subprocess.DEVNULL, capture_output=True,
                                text=True, timeout=20, cwd=str(srv.workdir),
                                env=harness.server_env())
        except subprocess.TimeoutExpired:  # (run() killed it)
            self.fail("pacsbridge serve with https_cert_file and no https_key_file still runs "
                      "after 20 s")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("https_key_file", cp.stderr, harness.proc_output(cp))

    def test_http_may_listen_on_every_address_with_a_warning(self):
        srv = harness.Server(self.mkdtemp("anyaddr"))
        config = srv.config_path.read_text("utf-8")
        loopback = 'http_listen = "127.0.0.1:%d"' % srv.http_port
        self.assertIn(loopback, config)
        srv.config_path.write_text(
            config.replace(loopback, 'http_listen = "0.0.0.0:%d"' % srv.http_port), "utf-8")
        self.own_server(srv)
        self.assertTrue(harness.wait_until(lambda: "clear text" in self.log_text(srv), timeout=10),
                        "no warning about clear text in the log:\n" + srv.log_tail())
        status, headers, _ = srv.raw("GET", "/api/nodes", auth=None)
        self.assertEqual(status, 401)
        self.assertIn(CHALLENGE, headers.get("WWW-Authenticate") or "")
        self.assertEqual(srv.api("GET", "/api/nodes")[0], 200)


if __name__ == "__main__":
    unittest.main()
