"""Authentication of the DICOMweb transport: a static bearer token and OAuth2 client
credentials (token reused while valid, refreshed once expired, a refusal explained), and
secrets that never show in the API or the server's log.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_dicomweb_auth.py

One Orthanc with its DICOMweb plugin holds a small study; the programmable peer
(web_peer.WebPeer) stands in front of it and plays the authorization server: it checks the
Authorization header of every DICOMweb request and issues tokens at /token.
"""

import json
import os
import secrets
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import web_peer  # noqa: E402
from harness import dicomgen  # noqa: E402

PATIENT_ID = "DWAUTH"


class DicomwebAuthTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = cls.start_class_orthanc(extra=web_peer.orthanc_dicomweb_extra())
        cls.files = dicomgen.generate(str(cls.tmp / "data"), 3, size=4000,
                                      patient_id=PATIENT_ID, patient_name="AUTH^DICOMWEB")
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet, [f[0] for f in cls.files])
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))
        cls.study = cls.files[0][2]
        cls.peer = web_peer.WebPeer(cls.orthanc.url)
        cls.addClassCleanup(cls.peer.close)
        cls.server = cls.start_class_server()

    def setUp(self):
        self.peer.clear()

    # ------------------------------------------------------------------ helpers

    def add_node(self, name, auth, **extra):
        body = {"name": name, "type": "dicomweb", "url": self.peer.url(), "queryable": True,
                "storable": True, "auth": auth}
        body.update(extra)
        status, answer = self.server.api("POST", "/api/nodes", body)
        self.assertEqual(status, 201, "POST /api/nodes %r -> %s %r" % (body, status, answer))
        self.addCleanup(self.server.api, "DELETE", "/api/nodes/%s" % name)
        return answer

    def echo(self, name):
        status, body = self.server.api("POST", "/api/nodes/%s/echo" % name, timeout=60)
        self.assertEqual(status, 200, "echo %s -> %s %r" % (name, status, body))
        self.assertIsInstance(body, dict, body)
        self.assertNotRegex(body.get("message") or "", r"(?i)not supported|no transport",
                            "the binary has no DICOMweb transport yet: %r" % body)
        return body

    def find(self, name):
        return self.server.api("POST", "/api/nodes/%s/find" % name,
                               {"level": "STUDY", "query": {"PatientID": PATIENT_ID}},
                               timeout=60)

    def assertFindsTheStudy(self, name):
        status, body = self.find(name)
        self.assertEqual(status, 200, "find on %s -> %s %r\npeer:\n%s"
                         % (name, status, body, self.peer.describe()))
        self.assertEqual([r.get("StudyInstanceUID") for r in body.get("results") or []],
                         [self.study], body)
        self.assertEqual(body.get("truncated"), False, body)

    def dicomweb_requests(self, since=0):
        """The peer's log of DICOMweb requests (everything but /token), from index `since`."""
        return [e for e in self.peer.requests()[since:] if e["kind"] != "token"]

    # ------------------------------------------------------------------ bearer

    def test_bearer_right_token_connects_and_finds(self):
        token = "static-" + secrets.token_hex(12)
        self.peer.set_auth("bearer-static", token=token)
        node = self.add_node("web-bearer", {"type": "bearer", "token": token})
        self.assertNotIn(token, json.dumps(node), "the token is echoed back on creation")

        answer = self.echo("web-bearer")
        self.assertEqual((answer.get("ok"), answer.get("message")),
                         (True, "Connection established"),
                         "%r\npeer:\n%s" % (answer, self.peer.describe()))
        self.assertFindsTheStudy("web-bearer")

        sent = self.dicomweb_requests()
        self.assertTrue(sent, "nothing reached the peer")
        self.assertEqual([e["headers"].get("authorization") for e in sent],
                         ["Bearer " + token] * len(sent), self.peer.describe())
        self.assertEqual([e for e in sent if e["status"] == 401], [], self.peer.describe())
        status, shown = self.server.api("GET", "/api/nodes/web-bearer")
        self.assertEqual(status, 200, shown)
        self.assertNotIn(token, json.dumps(shown), "GET /api/nodes/{name} shows the token")

    def test_bearer_wrong_token_fails_naming_401_and_bearer(self):
        self.peer.set_auth("bearer-static", token="the-right-one")
        self.add_node("web-bearer-wrong", {"type": "bearer", "token": "not-the-right-one"})

        answer = self.echo("web-bearer-wrong")
        self.assertIs(answer.get("ok"), False, answer)
        message = answer.get("message") or ""
        self.assertTrue(message.startswith("Connection failed"), answer)
        self.assertMatchesCI(r"\b401\b", message)
        self.assertMatchesCI(r"bearer", message)
        refused = self.peer.requests(status=401)
        self.assertTrue(refused, "the peer refused nothing: the echo did not reach it?\n"
                        + self.peer.describe())
        self.assertEqual({e["headers"].get("authorization") for e in refused},
                         {"Bearer not-the-right-one"}, self.peer.describe())

        # A find says the same, as an error that names the node.
        status, body = self.find("web-bearer-wrong")
        self.assertGreaterEqual(status, 400, body)
        self.assertJsonError(status, body, expected_status=status)
        self.assertIn("web-bearer-wrong", body["error"])
        self.assertMatchesCI(r"\b401\b|unauthori[sz]ed|refused the bearer", body["error"])

    # ------------------------------------------------------------------ OAuth2

    def oauth2_node(self, name, secret, scope="pacs.read"):
        auth = {"type": "oauth2", "token_url": self.peer.token_url(),
                "client_id": "pacsbridge-e2e", "client_secret": secret}
        if scope is not None:
            auth["scope"] = scope
        return self.add_node(name, auth)

    def test_oauth2_token_reused_while_valid_then_refreshed(self):
        secret = "cs-" + secrets.token_hex(16)
        self.peer.set_auth("oauth2", client_id="pacsbridge-e2e", client_secret=secret,
                           expires_in=2, scope="pacs.read")
        self.oauth2_node("web-oauth", secret)

        # Two finds well within the first token's lifetime: one token.
        self.assertFindsTheStudy("web-oauth")
        self.assertFindsTheStudy("web-oauth")
        tokens = self.peer.issued_tokens()
        self.assertEqual(len(tokens), 1, "two finds within a token's lifetime should share "
                         "it: %r\npeer:\n%s" % (tokens, self.peer.describe()))
        first = tokens[0]
        # The peer logs a request once its answer is sent: the client may have it first.
        harness.wait_until(lambda: len(self.dicomweb_requests()) >= 2, timeout=5, interval=0.02)
        used = self.dicomweb_requests()
        self.assertLess(used[-1]["time"], first["expires_at"],
                        "the machine was too slow for this check (the second find ended after "
                        "the token expired)")
        self.assertEqual({e["headers"].get("authorization") for e in used},
                         {"Bearer " + first["token"]}, self.peer.describe())
        self.assertEqual([e for e in used if e["status"] == 401], [], self.peer.describe())
        request = self.peer.token_requests[0]
        self.assertEqual((request["grant_type"], request["client_id"], request["scope"]),
                         ("client_credentials", "pacsbridge-e2e", "pacs.read"), request)
        self.assertIn(request["client_auth"], ("basic", "body"), request)
        sys.stderr.write("[client credentials sent as: %s] " % request["client_auth"])

        # Negative check first: the token is still valid right now; then wait it out.
        mark = len(self.peer.requests())
        expired = harness.wait_until(lambda: self.peer.now() > first["expires_at"], timeout=10,
                                     interval=0.05)
        self.assertTrue(expired)
        self.assertFalse(self.peer.token_valid(first["token"]))

        self.assertFindsTheStudy("web-oauth")
        tokens = self.peer.issued_tokens()
        self.assertEqual(len(tokens), 2, "an expired token should be refreshed once: %r\n%s"
                         % (tokens, self.peer.describe()))
        second = tokens[1]
        self.assertNotEqual(second["token"], first["token"])
        after = harness.wait_until(lambda: self.dicomweb_requests(mark), timeout=5, interval=0.02)
        self.assertTrue(after, self.peer.describe())
        # The expired token may have been tried once (401) before the refresh; the request that
        # answered the find carried the new token.
        last_ok = [e for e in after if e["status"] != 401]
        self.assertTrue(last_ok, self.peer.describe())
        self.assertEqual({e["headers"].get("authorization") for e in last_ok},
                         {"Bearer " + second["token"]}, self.peer.describe())
        refused = [e for e in after if e["status"] == 401]
        self.assertLessEqual(len(refused), 1, "more than one 401 after expiry: the transport "
                             "should refresh and retry once\n" + self.peer.describe())
        for e in refused:
            self.assertEqual(e["headers"].get("authorization"), "Bearer " + first["token"],
                             self.peer.describe())
            self.assertLess(e["time"], second["issued_at"], self.peer.describe())

    def test_oauth2_expired_token_refused_is_fetched_again_and_retried(self):
        """The peer revokes tokens early (expires_in says 60 s, but every token is refused once
        its real 1 s are up): the transport's cached token is refused with 401; it must fetch
        a new one and retry once, and the find still succeeds."""
        secret = "cs-" + secrets.token_hex(16)
        self.peer.set_auth("oauth2", client_id="pacsbridge-e2e", client_secret=secret,
                           expires_in=60, scope="pacs.read")
        self.oauth2_node("web-oauth-revoked", secret)
        self.assertFindsTheStudy("web-oauth-revoked")
        tokens = self.peer.issued_tokens()
        self.assertEqual(len(tokens), 1, self.peer.describe())
        with self.peer.lock:
            self.peer.tokens[0]["expires_at"] = self.peer.now()  # revoked from now on
        self.assertFalse(self.peer.token_valid(tokens[0]["token"]))
        mark = len(self.peer.requests())

        self.assertFindsTheStudy("web-oauth-revoked")
        after = self.dicomweb_requests(mark)
        refused = [e for e in after if e["status"] == 401]
        self.assertEqual(len(refused), 1, "the revoked token should be tried once, then a new "
                         "one fetched\n" + self.peer.describe())
        tokens = self.peer.issued_tokens()
        self.assertEqual(len(tokens), 2, self.peer.describe())
        self.assertEqual(after[-1]["headers"].get("authorization"), "Bearer " + tokens[1]["token"])
        self.assertEqual(after[-1]["status"], 200, self.peer.describe())

    def test_oauth2_wrong_secret_names_the_token_endpoint_refusal(self):
        self.peer.set_auth("oauth2", client_id="pacsbridge-e2e", client_secret="the-real-one",
                           expires_in=60)
        self.oauth2_node("web-oauth-wrong", "a-wrong-secret", scope=None)
        answer = self.echo("web-oauth-wrong")
        self.assertIs(answer.get("ok"), False, answer)
        message = answer.get("message") or ""
        self.assertTrue(message.startswith("Connection failed"), answer)
        self.assertMatchesCI(r"token", message)
        self.assertMatchesCI(r"\b401\b|invalid_client|refused|rejected|denied", message)
        refused = [r for r in self.peer.token_requests if r.get("refused")]
        self.assertTrue(refused, "the token endpoint was not asked: %r" % self.peer.token_requests)
        self.assertEqual(self.peer.issued_tokens(), [])
        # Without a token, no DICOMweb request should carry one.
        for e in self.dicomweb_requests():
            self.assertNotRegex(e["headers"].get("authorization") or "", r"(?i)^bearer \S",
                                self.peer.describe())

    def test_secrets_never_shown_nor_logged(self):
        secret = "cs-never-show-" + secrets.token_hex(16)
        token = "bt-never-show-" + secrets.token_hex(16)
        self.peer.set_auth("oauth2", client_id="pacsbridge-e2e", client_secret=secret,
                           expires_in=60)
        self.oauth2_node("web-secret", secret, scope=None)
        self.add_node("web-secret-bearer", {"type": "bearer", "token": token})
        self.assertFindsTheStudy("web-secret")
        self.echo("web-secret-bearer")  # refused (the peer wants OAuth2 tokens): logged somehow
        # The same node with a wrong secret: errors are where secrets tend to leak.
        status, _ = self.server.api("PUT", "/api/nodes/web-secret", {
            "name": "web-secret", "type": "dicomweb", "url": self.peer.url(),
            "queryable": True, "storable": True,
            "auth": {"type": "oauth2", "token_url": self.peer.token_url(),
                     "client_id": "pacsbridge-e2e", "client_secret": secret + "-wrong"}})
        self.assertEqual(status, 200)
        self.assertIs(self.echo("web-secret").get("ok"), False)

        for path in ("/api/nodes/web-secret", "/api/nodes/web-secret-bearer", "/api/nodes"):
            status, body = self.server.api("GET", path)
            self.assertEqual(status, 200, body)
            text = json.dumps(body)
            self.assertNotIn(secret, text, "%s shows the client secret" % path)
            self.assertNotIn(token, text, "%s shows the bearer token" % path)
        status, shown = self.server.api("GET", "/api/nodes/web-secret")
        self.assertEqual((shown.get("auth") or {}).get("client_id"), "pacsbridge-e2e", shown)

        issued = [t["token"] for t in self.peer.issued_tokens()]
        self.assertTrue(issued)
        log = self.server.log_path.read_bytes()
        leaks = [name for name, value in [("client secret", secret), ("bearer token", token)]
                 + [("issued access token", t) for t in issued] if value.encode() in log]
        self.assertEqual(leaks, [], "found in the server's log %s" % self.server.log_path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
