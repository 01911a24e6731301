"""Our DICOMweb server and accounts limited to projects (docs/security.md): an account created
with "projects": ["LAB-A"] sees, through /dicom-web, only what is filed in LAB-A. QIDO-RS at
every level finds only LAB-A's patients, studies, series and instances; WADO-RS (study,
series, instance), metadata, frames, rendered images and thumbnails of a LAB-B study answer
404 to it and 200 for LAB-A's; its API token carries the same limit; the admin (no projects)
sees both; a revoked token opens nothing (401). Changing the account's projects (PUT /api/users) takes effect on its next request,
for its password and its token alike; an empty list means every project. A project list that
is not labels is refused (400, field "projects"), and the account's JSON shows its projects.

Test data: two studies written by dicomgen, Study Description "LAB-A" and "LAB-B" (the
default routing rules file a study by its Study Description when nothing else names a
project, docs/receivers.md), one CT series of two instances each, stored with storescu into
the server's receiver. Expected UIDs come from the generated files.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_dicomweb_projects.py
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

LAB, LAB_PASSWORD = "lab-a-reader", "Lab-a-Reader-pw5"
ADMIN = object()


def uid_of(item, tag):
    return item[tag]["Value"][0]


class DicomwebProjectsTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        uid = dicomgen.make_uids()
        cls.studies = {}
        files = []
        for n, project in enumerate(("LAB-A", "LAB-B"), 1):
            study = {"uid": uid("study", n), "series": uid("series", n, 1), "sops": []}
            for i in (1, 2):
                sop = uid("instance", n * 10 + i)
                path = cls.tmp / "data" / ("%s-%d.dcm" % (project, i))
                path.parent.mkdir(parents=True, exist_ok=True)
                dicomgen.write_instance(path, sop_uid=sop, study_uid=study["uid"], series_uid=study["series"],
                                        patient_name="PROJ^%s" % project.replace("-", ""),
                                        patient_id="P" + project, modality="CT", instance_number=i,
                                        study_description=project, size=6000)
                study["sops"].append(sop)
                files.append(path)
            cls.studies[project] = study
        cls.server = cls.start_class_server()
        cp = harness.storescu(cls.server.dicom_port, cls.server.dicom_ae, files)
        if cp.returncode != 0:
            raise AssertionError("storescu failed:\n%s" % harness.proc_output(cp))
        harness.wait_studies_indexed(cls.server, {s["uid"]: 2 for s in cls.studies.values()})
        status, body = cls.server.api("POST", "/api/users", {
            "username": LAB, "role": "read-only", "password": LAB_PASSWORD, "projects": ["LAB-A"]})
        if status != 201:
            raise AssertionError("POST /api/users -> %s %r" % (status, body))
        cls.account = body
        cls.lab = (LAB, LAB_PASSWORD)

    def get(self, path, auth, headers=None):
        """GET /dicom-web{path} as `auth` ((user, password); ADMIN: the admin)."""
        kw = {} if auth is ADMIN else {"auth": auth}
        status, _, payload = self.server.raw("GET", "/dicom-web" + path, headers=headers, **kw)
        return status, payload

    def study_uids(self, auth, level_path="/studies", tag="0020000D"):
        status, payload = self.get(level_path, auth)
        self.assertEqual(status, 200, payload[:300])
        return sorted({uid_of(item, tag) for item in json.loads(payload)})

    def resources(self, project):
        st = self.studies[project]
        inst = "/studies/%s/series/%s/instances/%s" % (st["uid"], st["series"], st["sops"][0])
        return ["/studies/" + st["uid"], "/studies/%s/series/%s" % (st["uid"], st["series"]), inst,
                "/studies/%s/metadata" % st["uid"], "/studies/%s/series/%s/metadata" % (st["uid"], st["series"]),
                inst + "/metadata", inst + "/frames/1", inst + "/rendered", inst + "/thumbnail",
                "/studies/%s/thumbnail" % st["uid"], "/studies/%s/series" % st["uid"],
                "/studies/%s/instances" % st["uid"]]

    def test_the_account_shows_its_projects_and_labels_are_checked(self):
        self.assertEqual(self.account.get("projects"), ["LAB-A"])
        status, body = self.server.api("POST", "/api/users", {
            "username": "bad-labels", "role": "read-only", "password": "Bad-labels-pw1", "projects": ["LAB A!"]})
        self.assertEqual((status, body.get("field")), (400, "projects"), body)
        status, body = self.server.api("PUT", "/api/users/" + LAB, {"projects": "LAB-A"})
        self.assertEqual((status, body.get("field")), (400, "projects"), body)

    def test_searches_find_only_the_accounts_projects(self):
        a, b = self.studies["LAB-A"], self.studies["LAB-B"]
        self.assertEqual(self.study_uids(ADMIN), sorted([a["uid"], b["uid"]]))  # the admin: both
        self.assertEqual(self.study_uids(self.lab), [a["uid"]])
        self.assertEqual(self.study_uids(self.lab, "/series", "0020000E"), [a["series"]])
        self.assertEqual(self.study_uids(self.lab, "/instances", "00080018"), sorted(a["sops"]))
        self.assertEqual(self.study_uids(self.lab, "/studies?PatientName=PROJ*", "0020000D"), [a["uid"]])
        status, payload = self.get("/studies/%s/series" % b["uid"], self.lab)
        self.assertEqual((status, json.loads(payload)), (200, []))

    def test_retrieves_of_another_project_are_not_found(self):
        for path in self.resources("LAB-B"):
            status, payload = self.get(path, self.lab)
            expected = 200 if path.endswith("/series") or path.endswith("/instances") else 404
            self.assertEqual(status, expected, "%s -> %s %r" % (path, status, payload[:200]))
            if expected == 200:
                self.assertEqual(json.loads(payload), [], path)
        for path in self.resources("LAB-A"):
            status, payload = self.get(path, self.lab)
            self.assertEqual(status, 200, "%s -> %s %r" % (path, status, payload[:200]))
        for path in self.resources("LAB-B"):  # the admin sees it
            self.assertEqual(self.get(path, ADMIN)[0], 200, path)

    def test_a_token_carries_the_limit_and_a_change_applies_at_once(self):
        status, token = self.server.api("POST", "/api/tokens", {"name": "lab"}, auth=self.lab)
        self.assertEqual(status, 201, token)
        bearer = {"Authorization": "Bearer " + token["token"]}
        b = self.studies["LAB-B"]
        status, _, payload = self.server.raw("GET", "/dicom-web/studies/%s/metadata" % b["uid"], auth=None,
                                             headers=bearer)
        self.assertEqual(status, 404, payload[:200])
        try:
            status, body = self.server.api("PUT", "/api/users/" + LAB, {"projects": ["LAB-B"]})
            self.assertEqual((status, body.get("projects")), (200, ["LAB-B"]), body)
            self.assertEqual(self.study_uids(self.lab), [b["uid"]])
            status, _, payload = self.server.raw("GET", "/dicom-web/studies/%s/metadata" % b["uid"], auth=None,
                                                 headers=bearer)
            self.assertEqual(status, 200, payload[:200])
            status, body = self.server.api("PUT", "/api/users/" + LAB, {"projects": []})
            self.assertEqual(status, 200, body)
            self.assertEqual(self.study_uids(self.lab), sorted(s["uid"] for s in self.studies.values()))
        finally:
            self.server.api("PUT", "/api/users/" + LAB, {"projects": ["LAB-A"]})
        # A token that no longer holds (revoked; an expired one is the same refusal, checked
        # with a manual clock in the accounts' unit tests) opens nothing.
        status, body = self.server.api("DELETE", "/api/tokens/" + token["id"], auth=self.lab)
        self.assertEqual(status, 204, body)
        status, _, payload = self.server.raw("GET", "/dicom-web/studies", auth=None, headers=bearer)
        self.assertEqual(status, 401, payload[:200])


if __name__ == "__main__":
    unittest.main()
