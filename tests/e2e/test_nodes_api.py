"""Remote nodes: REST CRUD, validation, defaults, locked config nodes, and the CLI.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_nodes_api.py
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CONFIG_NODE = {"name": "hospital-pacs", "type": "dimse", "ae_title": "HOSPITAL",
               "host": "127.0.0.1", "port": 4242, "queryable": True, "storable": True}


def node(name, ae_title="PACS1", host="127.0.0.1", port=11112, **extra):
    body = {"name": name, "type": "dimse", "ae_title": ae_title, "host": host, "port": port}
    body.update(extra)
    return body


class NodesApiTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.start_class_server(nodes=[CONFIG_NODE])

    def api(self, method, path, body=None):
        return self.server.api(method, path, body)

    def create(self, body, expected=201):
        status, answer = self.api("POST", "/api/nodes", body)
        self.assertEqual(status, expected, "POST /api/nodes %r -> %r" % (body, answer))
        return answer

    def node_names(self):
        status, body = self.api("GET", "/api/nodes")
        self.assertEqual(status, 200, body)
        self.assertIsInstance(body, list, repr(body))
        return [n.get("name") for n in body]

    # ------------------------------------------------------------------ CRUD

    def test_create_get_update_delete_node(self):
        created = self.create(node("crud-a", ae_title="CRUDA", port=11112,
                                   description="first"))
        for key, value in (("name", "crud-a"), ("type", "dimse"), ("ae_title", "CRUDA"),
                           ("host", "127.0.0.1"), ("port", 11112)):
            self.assertEqual(created.get(key), value, "%s in %r" % (key, created))
        self.assertIs(created.get("locked"), False, repr(created))

        status, got = self.api("GET", "/api/nodes/crud-a")
        self.assertEqual(status, 200, got)
        self.assertEqual((got.get("ae_title"), got.get("port")), ("CRUDA", 11112))
        self.assertIn("crud-a", self.node_names())

        status, got = self.api("PUT", "/api/nodes/crud-a",
                               node("crud-a", ae_title="CRUDA", port=11113,
                                    description="second"))
        self.assertEqual(status, 200, got)
        self.assertEqual(got.get("port"), 11113, repr(got))
        status, got = self.api("GET", "/api/nodes/crud-a")
        self.assertEqual((status, got.get("port"), got.get("description")),
                         (200, 11113, "second"), repr(got))

        status, body = self.api("DELETE", "/api/nodes/crud-a")
        self.assertEqual(status, 204, body)
        status, body = self.api("GET", "/api/nodes/crud-a")
        self.assertEqual(status, 404, body)
        self.assertNotIn("crud-a", self.node_names())
        status, body = self.api("DELETE", "/api/nodes/crud-a")
        self.assertEqual(status, 404, body)

    def test_get_put_unknown_node_is_404(self):
        status, body = self.api("GET", "/api/nodes/never-created")
        self.assertEqual(status, 404, body)
        status, body = self.api("PUT", "/api/nodes/never-created", node("never-created"))
        self.assertEqual(status, 404, body)

    def test_duplicate_name_conflicts(self):
        self.create(node("dup-name", ae_title="DUPA", port=11120))
        status, body = self.api("POST", "/api/nodes", node("dup-name", ae_title="DUPB",
                                                           port=11121))
        self.assertEqual(status, 409, body)
        status, got = self.api("GET", "/api/nodes/dup-name")
        self.assertEqual(got.get("ae_title"), "DUPA", "the first node was changed: %r" % got)

    # ------------------------------------------------------------------ validation

    def test_rejects_ae_title_longer_than_16(self):
        status, body = self.api("POST", "/api/nodes", node("long-ae", ae_title="A" * 17))
        self.assertJsonError(status, body, field="ae_title")
        self.assertNotIn("long-ae", self.node_names())

    def test_accepts_ae_title_of_16(self):
        created = self.create(node("ae-16", ae_title="A" * 16, port=11130))
        self.assertEqual(created.get("ae_title"), "A" * 16)

    def test_rejects_url_as_host(self):
        status, body = self.api("POST", "/api/nodes", node("url-host",
                                                           host="http://pacs.example"))
        self.assertJsonError(status, body, field="host")
        self.assertMatchesCI(r"bare host", body["error"])

    def test_dicomweb_url_is_parsed_and_the_type_is_fixed_at_creation(self):
        status, body = self.server.api("POST", "/api/nodes", {
            "name": "web-bad", "type": "dicomweb", "url": "pacs.example/dicom-web"})
        self.assertJsonError(status, body, "url")
        self.assertIn("does not start with http:// or https://", body["error"])
        self.assertIn("http://host:8042/dicom-web/ (Orthanc)", body["error"])
        status, body = self.server.api("POST", "/api/nodes", {
            "name": "web-creds", "type": "dicomweb", "url": "https://u:pw-Secret9@pacs/dicom-web"})
        self.assertJsonError(status, body, "url")
        self.assertNotIn("pw-Secret9", body["error"])
        status, body = self.server.api("POST", "/api/nodes", {
            "name": "dimse-fixed", "type": "dimse", "ae_title": "FIXED", "host": "127.0.0.1",
            "port": 104})
        self.assertEqual(status, 201, body)
        status, body = self.server.api("PUT", "/api/nodes/dimse-fixed", {
            "type": "dicomweb", "url": "https://pacs/dicom-web"})
        self.assertJsonError(status, body, "type")
        self.assertIn("chosen when it is created", body["error"])
        status, body = self.server.api("GET", "/api/nodes/dimse-fixed")
        self.assertEqual(body.get("type"), "dimse", body)

    def test_rejects_port_out_of_range(self):
        for port in (0, 70000):
            with self.subTest(port=port):
                status, body = self.api("POST", "/api/nodes", node("bad-port-%d" % port,
                                                                   port=port))
                self.assertJsonError(status, body, field="port")

    def test_rejects_default_query_retrieve_on_non_queryable_node(self):
        status, body = self.api("POST", "/api/nodes",
                                node("not-queryable", queryable=False,
                                     default_query_retrieve=True))
        self.assertJsonError(status, body, field="default_query_retrieve")

    def test_rejects_invalid_json_body(self):
        status, _, payload = self.server.raw("POST", "/api/nodes", b'{"name": "x", ',
                                             headers={"Content-Type": "application/json"})
        body = harness.parse_json(payload)
        self.assertJsonError(status, body)

    def test_rejects_unknown_field(self):
        status, body = self.api("POST", "/api/nodes", dict(node("bogus-node"), bogus=1))
        self.assertJsonError(status, body, field="bogus")
        self.assertNotIn("bogus-node", self.node_names())

    # ------------------------------------------------------------------ defaults, warnings

    def test_second_default_storage_clears_the_first(self):
        self.create(node("store-a", ae_title="STOREA", port=11140, storable=True,
                         default_storage=True))
        status, a = self.api("GET", "/api/nodes/store-a")
        self.assertIs(a.get("default_storage"), True, repr(a))
        self.create(node("store-b", ae_title="STOREB", port=11141, storable=True,
                         default_storage=True))
        status, a = self.api("GET", "/api/nodes/store-a")
        self.assertEqual(status, 200, a)
        self.assertIs(a.get("default_storage"), False, repr(a))
        status, b = self.api("GET", "/api/nodes/store-b")
        self.assertIs(b.get("default_storage"), True, repr(b))

    def test_same_ae_title_on_other_port_is_accepted_with_warning(self):
        self.create(node("twin-a", ae_title="TWINAE", port=11150))
        created = self.create(node("twin-b", ae_title="TWINAE", port=11151))
        warnings = created.get("warnings")
        self.assertIsInstance(warnings, list, repr(created))
        self.assertTrue(warnings, "no warning about the shared AE title: %r" % created)

    # ------------------------------------------------------------------ locked nodes

    def test_config_file_node_is_locked(self):
        status, nodes = self.api("GET", "/api/nodes")
        self.assertEqual(status, 200, nodes)
        byname = {n.get("name"): n for n in nodes}
        self.assertIn("hospital-pacs", byname)
        locked = byname["hospital-pacs"]
        self.assertIs(locked.get("locked"), True, repr(locked))
        self.assertEqual((locked.get("ae_title"), locked.get("port")), ("HOSPITAL", 4242))

        status, body = self.api("PUT", "/api/nodes/hospital-pacs",
                                dict(CONFIG_NODE, port=4243))
        self.assertJsonError(status, body, expected_status=403)
        self.assertMatchesCI(r"config", body["error"])
        status, body = self.api("DELETE", "/api/nodes/hospital-pacs")
        self.assertJsonError(status, body, expected_status=403)
        self.assertMatchesCI(r"config", body["error"])

        status, got = self.api("GET", "/api/nodes/hospital-pacs")
        self.assertEqual(status, 200, got)
        self.assertEqual(got.get("port"), 4242, "a locked node was modified: %r" % got)

    # ------------------------------------------------------------------ CLI

    def test_cli_nodes_list_prints_a_table(self):
        self.create(node("cli-table", ae_title="CLITABLE", port=11160))
        cp = self.server.cli("nodes", "list")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        for name in ("hospital-pacs", "cli-table"):
            self.assertIn(name, cp.stdout, harness.proc_output(cp))
        self.assertIn("CLITABLE", cp.stdout)

    def test_cli_nodes_list_json(self):
        self.create(node("cli-json", ae_title="CLIJSON", port=11161))
        cp = self.server.cli("nodes", "list", "--json")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        try:
            listed = json.loads(cp.stdout)
        except ValueError as e:
            self.fail("nodes list --json printed no JSON (%s):\n%s" % (e, cp.stdout))
        self.assertIsInstance(listed, list)
        names = [n.get("name") for n in listed]
        self.assertIn("cli-json", names)
        self.assertIn("hospital-pacs", names)

    def test_cli_nodes_add_show_remove(self):
        cp = self.server.cli("nodes", "add", "cli-added", "--aet", "CLIADDED", "--host",
                             "127.0.0.1", "--port", "11170")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        status, got = self.api("GET", "/api/nodes/cli-added")
        self.assertEqual(status, 200, got)
        self.assertEqual((got.get("ae_title"), got.get("host"), got.get("port")),
                         ("CLIADDED", "127.0.0.1", 11170))

        cp = self.server.cli("nodes", "show", "cli-added", "--json")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        try:
            shown = json.loads(cp.stdout)
        except ValueError as e:
            self.fail("nodes show --json printed no JSON (%s):\n%s" % (e, cp.stdout))
        self.assertEqual((shown.get("name"), shown.get("ae_title"), shown.get("port")),
                         ("cli-added", "CLIADDED", 11170))

        cp = self.server.cli("nodes", "remove", "cli-added")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        status, _ = self.api("GET", "/api/nodes/cli-added")
        self.assertEqual(status, 404)

        cp = self.server.cli("nodes", "show", "cli-added", "--json")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertTrue(cp.stderr.strip(), "no reason on stderr: %s" % harness.proc_output(cp))

    def test_cli_nodes_add_invalid_fails_with_reason(self):
        cp = self.server.cli("nodes", "add", "cli-bad", "--aet", "A" * 17, "--host",
                             "127.0.0.1", "--port", "11171")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertMatchesCI(r"ae_title|ae title|aet", cp.stderr, harness.proc_output(cp))
        self.assertNotIn("cli-bad", self.node_names())


    # ------------------------------------------------------------------ DICOMweb nodes

    def test_dicomweb_node_through_the_api_keeps_its_secret(self):
        body = {"name": "web-api", "type": "dicomweb", "url": "http://127.0.0.1:8042/dicom-web/",
                "queryable": True, "storable": True, "wado_root": "http://127.0.0.1:8043/wado/",
                "auth": {"type": "basic", "username": "bridge", "password": "pw-Web-Secret1"},
                "headers": [{"name": "X-Tenant", "value": "research"}],
                "ae_title": "CLOUD", "calling_ae_header": "X-Calling-AE",
                "called_ae_header": "X-Called-AE", "stow_batch_instances": 10,
                "stow_batch_mb": 16, "query_timeout_seconds": 15,
                "retrieve_timeout_seconds": 90, "proxy": "socks5h://127.0.0.1:1080",
                "allow_redirects": True, "max_results": 200, "max_associations": 3,
                "preferred_transfer_syntax": "1.2.840.10008.1.2.1"}
        created = self.create(body)
        self.assertNotIn("pw-Web-Secret1", json.dumps(created))
        for key, value in body.items():
            if key != "auth":
                self.assertEqual(created.get(key), value, "%s in %r" % (key, created))
        self.assertEqual(created["auth"]["username"], "bridge")
        self.assertIs(created["auth"]["has_password"], True, created)
        self.assertNotIn("password", created["auth"])
        self.assertEqual((created["qido_root"], created["stow_root"]), ("", ""))
        self.assertIs(created["offers_import"], True, created)
        self.assertIs(created["offers_export"], True, created)
        self.assertEqual(created["effective_calling_ae_title"], "PACSBRIDGE", created)

        # A partial PUT, then one that sends back what GET gave: the password stays.
        status, got = self.api("PUT", "/api/nodes/web-api",
                               {"description": "second", "wado": False,
                                "auth": {"username": "bridge2"}})
        self.assertEqual(status, 200, got)
        self.assertEqual((got["description"], got["auth"]["username"]), ("second", "bridge2"))
        self.assertIs(got["auth"]["has_password"], True, got)
        self.assertIs(got["offers_import"], False, "wado is off: %r" % got)
        status, got = self.api("GET", "/api/nodes/web-api")
        self.assertEqual(status, 200, got)
        got["stow_batch_mb"] = 32
        status, put = self.api("PUT", "/api/nodes/web-api", got)
        self.assertEqual(status, 200, put)
        self.assertEqual(put["stow_batch_mb"], 32)
        self.assertIs(put["auth"]["has_password"], True, put)
        status, listed = self.api("GET", "/api/nodes")
        self.assertNotIn("pw-Web-Secret1", json.dumps(listed))

        # The capability that is off refuses the retrieve, naming the node and the flag.
        status, answer = self.api("POST", "/api/retrieve", {
            "node": "web-api", "level": "STUDY", "uids": ["1.2.3"]})
        self.assertJsonError(status, answer, field="node", expected_status=409)
        self.assertIn("node 'web-api' cannot be retrieved from: its wado capability is off "
                      "(set wado to true)", answer["error"])

    def test_dicomweb_invalid_fields_are_named(self):
        base = {"type": "dicomweb", "url": "https://pacs.example/dicomweb/"}
        cases = [
            ({"qido_root": "pacs.example/qido"}, "qido_root"),
            ({"headers": [{"name": "X-A", "value": "1"}, {"name": "Bad Name", "value": "2"}]},
             "headers[1].name"),
            ({"headers": [{"name": "Content-Type", "value": "text/plain"}]}, "headers[0].name"),
            ({"headers": [{"name": "X-A", "value": "1\r\nHost: evil"}]}, "headers[0].value"),
            ({"auth": {"type": "bearer"}}, "auth.token"),
            ({"auth": {"type": "basic"}}, "auth.username"),
            ({"auth": {"type": "oauth2", "client_id": "c", "client_secret": "s",
                       "token_url": "https://id:pw-Leak7@login/token"}}, "auth.token_url"),
            ({"proxy": "ftp://proxy:21"}, "proxy"),
            ({"stow_batch_mb": 0}, "stow_batch_mb"),
            ({"query_timeout_seconds": 3601}, "query_timeout_seconds"),
            ({"called_ae_header": "X-Called-AE"}, "called_ae_header"),
            ({"calling_ae_header": "X Calling"}, "calling_ae_header"),
        ]
        for i, (extra, field) in enumerate(cases):
            with self.subTest(field=field, extra=extra):
                body = dict(base, name="web-bad-%d" % i, **extra)
                status, answer = self.api("POST", "/api/nodes", body)
                self.assertJsonError(status, answer, field=field)
                self.assertIn(field.split("[")[0].split(".")[0], answer["error"])
                self.assertNotIn("pw-Leak7", answer["error"])
        self.assertIn("between 1 and 4096", self.api("POST", "/api/nodes", dict(
            base, name="web-range", stow_batch_mb=0))[1]["error"])
        self.assertFalse([n for n in self.node_names() if n.startswith("web-bad-")])

    def test_cli_dicomweb_node_add_show_update(self):
        token_file = self.mkdtemp("secret") / "token"
        token_file.write_text("tok-Cli-Secret2\nsecond line is ignored\n")
        cp = self.server.cli("nodes", "add", "web-cli", "--type", "dicomweb",
                             "--url", "http://127.0.0.1:8080/dcm4chee-arc/aets/DCM4CHEE/rs/",
                             "--queryable", "true", "--stow", "false",
                             "--auth-type", "bearer", "--token-file", str(token_file),
                             "--header", "X-Tenant: research", "--header", "X-Api-Key:abc",
                             "--stow-batch-instances", "25", "--stow-batch-mb", "8",
                             "--query-timeout", "20", "--retrieve-timeout", "60",
                             "--proxy", "http://127.0.0.1:3128", "--allow-redirects", "true",
                             "--calling-ae-header", "X-Calling-AE", "--calling-aet", "BRIDGE",
                             "--stow-multipart", "false", "--qido-root",
                             "http://127.0.0.1:8080/qido/")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertNotIn("tok-Cli-Secret2", cp.stdout + cp.stderr)
        status, got = self.api("GET", "/api/nodes/web-cli")
        self.assertEqual(status, 200, got)
        expected = {"type": "dicomweb", "stow": False, "stow_multipart": False,
                    "stow_batch_instances": 25, "stow_batch_mb": 8,
                    "query_timeout_seconds": 20, "retrieve_timeout_seconds": 60,
                    "proxy": "http://127.0.0.1:3128", "allow_redirects": True,
                    "calling_ae_header": "X-Calling-AE", "calling_ae_title": "BRIDGE",
                    "qido_root": "http://127.0.0.1:8080/qido/",
                    "headers": [{"name": "X-Tenant", "value": "research"},
                                {"name": "X-Api-Key", "value": "abc"}]}
        for key, value in expected.items():
            self.assertEqual(got.get(key), value, "%s in %r" % (key, got))
        self.assertEqual(got["auth"]["type"], "bearer")
        self.assertIs(got["auth"]["has_token"], True, got)
        self.assertIs(got["offers_export"], False, got)

        cp = self.server.cli("nodes", "show", "web-cli")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertNotIn("tok-Cli-Secret2", cp.stdout)
        lines = cp.stdout.splitlines()
        for line in ("auth.token: set", "auth.password: not set", "header: X-Tenant: research",
                     "stow_batch_mb: 8", "proxy: http://127.0.0.1:3128",
                     "calling_ae_title: BRIDGE (this node's setting)"):
            self.assertIn(line, lines, cp.stdout)

        cp = self.server.cli("nodes", "update", "web-cli", "--description", "cloud",
                             "--stow", "true")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        status, got = self.api("GET", "/api/nodes/web-cli")
        self.assertEqual((got["description"], got["stow"]), ("cloud", True), got)
        self.assertIs(got["auth"]["has_token"], True, "the update lost the token: %r" % got)

        cp = self.server.cli("nodes", "update", "web-cli", "--header", "Bad Name: 1")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("headers[0].name", cp.stderr, harness.proc_output(cp))
        cp = self.server.cli("nodes", "update", "web-cli", "--header", "no colon")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("Name: value", cp.stderr, harness.proc_output(cp))
        status, got = self.api("GET", "/api/nodes/web-cli")
        self.assertEqual(len(got["headers"]), 2, got)


if __name__ == "__main__":
    unittest.main(verbosity=2)
