"""The OpenAPI document is the API: served as YAML and as the same JSON, and every operation it
lists answers only with status codes it documents. (That every route of the server is
documented, and every documented operation routed, the server checks itself at start: a
difference stops it, so every end-to-end test would fail.)"""
import json
import os
import sys
import unittest
from pathlib import Path

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

METHODS = ("get", "put", "post", "delete", "patch")


class OpenApiTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.start_class_server()
        status, _, payload = cls.server.raw("GET", "/api/openapi.json")
        assert status == 200, payload
        cls.doc = json.loads(payload)

    def test_json_and_yaml_are_the_same_document(self):
        status, headers, payload = self.server.raw("GET", "/api/openapi.yaml")
        self.assertEqual(status, 200)
        self.assertEqual(yaml.safe_load(payload), self.doc)
        status, headers, _ = self.server.raw("GET", "/api/openapi.json")
        self.assertIn("application/json", headers.get("Content-Type", ""))
        repo = Path(__file__).resolve().parents[2]
        with open(repo / "docs" / "openapi.yaml", encoding="utf-8") as f:
            self.assertEqual(yaml.safe_load(f), self.doc)  # the build embeds the current file

    def test_every_operation_answers_with_a_documented_status(self):
        """Each operation is called with parameters that name nothing and an empty JSON body:
        what comes back (404, 400, 200, ...) must be among its documented responses."""
        undocumented = []
        calls = 0
        for path, item in sorted(self.doc["paths"].items()):
            for method, op in item.items():
                if method not in METHODS:
                    continue
                url = path
                for name in ("name", "id", "project", "subject", "session", "uid", "sop_instance_uid",
                             "username", "study", "series", "instance", "frames", "tag"):
                    url = url.replace("{%s}" % name, "no-such-" + name.replace("_", "-"))
                self.assertNotIn("{", url, "a parameter this test does not fill: %s" % path)
                body = {} if method in ("post", "put", "patch") else None
                if op.get("x-stream"):  # an event stream: its status and headers only
                    stream = self.server.events(url)
                    status, payload = stream.status, b""
                    stream.close()
                else:
                    status, _, payload = self.server.raw(method.upper(), url, body=body)
                calls += 1
                documented = set(op.get("responses", {}))
                if str(status) not in documented and "default" not in documented:
                    undocumented.append("%s %s -> %d %s (documented: %s)"
                                        % (method.upper(), path, status, payload[:120],
                                           ", ".join(sorted(documented))))
        self.assertGreater(calls, 30)
        self.assertEqual(undocumented, [], "\n".join(undocumented))


if __name__ == "__main__":
    unittest.main()
