"""Our DICOMweb server and accounts limited to projects (docs/security.md): an account created
with "projects": ["LAB-A"] sees, through /dicom-web, only what is filed in LAB-A. QIDO-RS at
every level finds only LAB-A's patients, studies, series and instances; WADO-RS (study,
series, instance), metadata, frames, rendered images and thumbnails of a LAB-B study answer
404 to it and 200 for LAB-A's; its API token carries the same limit; the admin (no projects)
sees both; a revoked token opens nothing (401). Changing the account's projects (PUT /api/users) takes effect on its next request,
for its password and its token alike; an empty list means every project. A project list that
is not labels is refused (400, field "projects"), and the account's JSON shows its projects.

The same limit holds on the /api archive pages (projects and their labels, studies with
counts over the visible series only, series, instances, thumbnails, ZIP, instance and file:
what lies outside is 404 as if unknown), on sends from the archive (an account with the user
role sends only the series of its projects; a study with a series in each project sends one
series; "projects" in the request narrows an admin's send), and on STOW-RS writes: an instance
the routing would file in another project is refused with FailureReason 0x0124 (Refused: Not
Authorized, PS3.7 C.4.1) and not stored, while one of its own project is stored (HTTP 202).

Test data: two studies written by dicomgen, Study Description "LAB-A" and "LAB-B" (the
default routing rules file a study by its Study Description when nothing else names a
project, docs/receivers.md), one CT series of two instances each, stored with storescu into
the server's receiver, and a third study MIX with one series described LAB-A and one LAB-B
(the rule reads each instance, so its series are filed apart). Expected UIDs come from the
generated files. The send peer is DCMTK's storescp.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_dicomweb_projects.py
"""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402
from test_send import StoreSCP  # noqa: E402
from test_stow_server import dicom_parts, multipart_body, new_boundary, stow_type  # noqa: E402

LAB, LAB_PASSWORD = "lab-a-reader", "Lab-a-Reader-pw5"
WRITER, WRITER_PASSWORD = "lab-a-writer", "Lab-a-Writer-pw5"
NOT_AUTHORIZED = 0x0124  # PS3.7 C.4.1: Refused: Not Authorized
ADMIN = object()


def uid_of(item, tag):
    return item[tag]["Value"][0]


class DicomwebProjectsTest(harness.E2ETestCase, harness.JobHelpers):
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
        mix = {"uid": uid("study", 3), "series": {}, "sops": {}}
        for k, project in enumerate(("LAB-A", "LAB-B"), 1):
            series, sop = uid("series", 3, k), uid("instance", 30 + k)
            path = cls.tmp / "data" / ("MIX-%s.dcm" % project)
            dicomgen.write_instance(path, sop_uid=sop, study_uid=mix["uid"], series_uid=series,
                                    patient_name="PROJ^MIX", patient_id="PMIX", modality="MR",
                                    instance_number=1, series_number=k, study_description=project,
                                    size=6000)
            mix["series"][project], mix["sops"][project] = series, sop
            files.append(path)
        cls.mix = mix
        cls.server = cls.start_class_server()
        cp = harness.storescu(cls.server.dicom_port, cls.server.dicom_ae, files)
        if cp.returncode != 0:
            raise AssertionError("storescu failed:\n%s" % harness.proc_output(cp))
        expected = {s["uid"]: 2 for s in cls.studies.values()}
        expected[mix["uid"]] = 2
        harness.wait_studies_indexed(cls.server, expected)
        for name, role, password in ((LAB, "read-only", LAB_PASSWORD), (WRITER, "user", WRITER_PASSWORD)):
            status, body = cls.server.api("POST", "/api/users", {
                "username": name, "role": role, "password": password, "projects": ["LAB-A"]})
            if status != 201:
                raise AssertionError("POST /api/users -> %s %r" % (status, body))
            if name == LAB:
                cls.account = body
        cls.lab = (LAB, LAB_PASSWORD)
        cls.writer = (WRITER, WRITER_PASSWORD)

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
        a, b, mix = self.studies["LAB-A"], self.studies["LAB-B"], self.mix
        self.assertEqual(self.study_uids(ADMIN), sorted([a["uid"], b["uid"], mix["uid"]]))  # the admin: all
        self.assertEqual(self.study_uids(self.lab), sorted([a["uid"], mix["uid"]]))
        self.assertEqual(self.study_uids(self.lab, "/series", "0020000E"),
                         sorted([a["series"], mix["series"]["LAB-A"]]))
        self.assertEqual(self.study_uids(self.lab, "/instances", "00080018"),
                         sorted(a["sops"] + [mix["sops"]["LAB-A"]]))
        self.assertEqual(self.study_uids(self.lab, "/studies?PatientName=PROJ*", "0020000D"),
                         sorted([a["uid"], mix["uid"]]))
        self.assertEqual(self.study_uids(self.lab, "/studies?PatientName=PROJ%5ELABA", "0020000D"), [a["uid"]])
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
            self.assertEqual(self.study_uids(self.lab), sorted([b["uid"], self.mix["uid"]]))
            status, _, payload = self.server.raw("GET", "/dicom-web/studies/%s/metadata" % b["uid"], auth=None,
                                                 headers=bearer)
            self.assertEqual(status, 200, payload[:200])
            status, body = self.server.api("PUT", "/api/users/" + LAB, {"projects": []})
            self.assertEqual(status, 200, body)
            self.assertEqual(self.study_uids(self.lab),
                             sorted([s["uid"] for s in self.studies.values()] + [self.mix["uid"]]))
        finally:
            self.server.api("PUT", "/api/users/" + LAB, {"projects": ["LAB-A"]})
        # A token that no longer holds (revoked; an expired one is the same refusal, checked
        # with a manual clock in the accounts' unit tests) opens nothing.
        status, body = self.server.api("DELETE", "/api/tokens/" + token["id"], auth=self.lab)
        self.assertEqual(status, 204, body)
        status, _, payload = self.server.raw("GET", "/dicom-web/studies", auth=None, headers=bearer)
        self.assertEqual(status, 401, payload[:200])

    # ------------------------------------------------------------------ /api archive pages

    def api_get(self, path, auth):
        kw = {} if auth is ADMIN else {"auth": auth}
        status, _, payload = self.server.raw("GET", path, **kw)
        return status, payload

    def test_api_archive_pages_show_only_the_accounts_projects(self):
        a, b, mix = self.studies["LAB-A"], self.studies["LAB-B"], self.mix
        status, body = self.server.api("GET", "/api/projects", auth=self.lab)
        self.assertEqual(status, 200, body)
        self.assertEqual(sorted(p["name"] for p in body), ["LAB-A"])
        status, body = self.server.api("GET", "/api/projects")
        self.assertTrue({"LAB-A", "LAB-B"} <= {p["name"] for p in body}, body)  # the admin: both
        status, body = self.server.api("GET", "/api/projects/LAB-B/subjects", auth=self.lab)
        self.assertEqual(status, 404, body)
        status, subjects = self.server.api("GET", "/api/projects/LAB-A/subjects", auth=self.lab)
        self.assertEqual(status, 200, subjects)
        status, body = self.server.api("GET", "/api/projects/LAB-B/subjects")
        self.assertEqual(status, 200, body)
        subject = body[0]["name"]
        status, body = self.server.api("GET", "/api/projects/LAB-B/subjects/%s/sessions" % subject,
                                       auth=self.lab)
        self.assertEqual(status, 404, body)
        status, sessions = self.server.api("GET", "/api/projects/LAB-B/subjects/%s/sessions" % subject)
        self.assertEqual(status, 200, sessions)
        status, body = self.server.api("GET", "/api/projects/LAB-B/subjects/%s/sessions/%s/series"
                                       % (subject, sessions[0]["name"]), auth=self.lab)
        self.assertEqual(status, 404, body)

        # Studies: the MIX study counts its LAB-A series only; LAB-B's study is not there.
        status, body = self.server.api("GET", "/api/studies", auth=self.lab)
        self.assertEqual(status, 200, body)
        seen = {s["StudyInstanceUID"]: s for s in body}
        self.assertEqual(sorted(seen), sorted([a["uid"], mix["uid"]]))
        self.assertEqual((seen[mix["uid"]]["series_count"], seen[mix["uid"]]["instance_count"]), (1, 1))
        self.assertEqual((seen[a["uid"]]["series_count"], seen[a["uid"]]["instance_count"]), (1, 2))
        status, body = self.server.api("GET", "/api/studies?ModalitiesInStudy=MR", auth=self.lab)
        self.assertEqual([s["StudyInstanceUID"] for s in body], [mix["uid"]])
        status, body = self.server.api("GET", "/api/studies")
        admin_mix = [s for s in body if s["StudyInstanceUID"] == mix["uid"]]
        self.assertEqual((admin_mix[0]["series_count"], admin_mix[0]["instance_count"]), (2, 2))
        status, body = self.server.api("GET", "/api/studies/%s/series" % mix["uid"], auth=self.lab)
        self.assertEqual([s["SeriesInstanceUID"] for s in body], [mix["series"]["LAB-A"]])

        hidden = ["/api/studies/%s/series" % b["uid"], "/api/series/%s/instances" % b["series"],
                  "/api/series/%s/thumbnail" % b["series"], "/api/series/%s/zip" % b["series"],
                  "/api/instances/%s" % b["sops"][0], "/api/instances/%s/file" % b["sops"][0],
                  "/api/series/%s/instances" % mix["series"]["LAB-B"],
                  "/api/instances/%s/file" % mix["sops"]["LAB-B"]]
        shown = ["/api/studies/%s/series" % a["uid"], "/api/series/%s/instances" % a["series"],
                 "/api/series/%s/thumbnail" % a["series"], "/api/series/%s/zip" % a["series"],
                 "/api/instances/%s" % a["sops"][0], "/api/instances/%s/file" % a["sops"][0],
                 "/api/instances/%s/file" % mix["sops"]["LAB-A"]]
        for path in hidden:
            status, payload = self.api_get(path, self.lab)
            self.assertEqual(status, 404, "%s -> %s %r" % (path, status, payload[:200]))
            self.assertEqual(self.api_get(path, ADMIN)[0], 200, path)
        for path in shown:
            status, payload = self.api_get(path, self.lab)
            self.assertEqual(status, 200, "%s -> %s %r" % (path, status, payload[:200]))

    # ------------------------------------------------------------------ sends

    def send_peer(self):
        scp = StoreSCP(self.mkdtemp("scp"))
        self.addCleanup(scp.stop)
        scp.start()
        name = "scp%d" % scp.port
        status, body = self.server.api("POST", "/api/nodes", {
            "name": name, "ae_title": "STORESCP", "host": "127.0.0.1", "port": scp.port,
            "storable": True, "timeout_seconds": 20})
        self.assertEqual(status, 201, body)
        return scp, name

    def received(self, scp):
        return sorted(p.name.split(".", 1)[1] for p in scp.out_dir.iterdir() if p.is_file())

    def test_a_limited_account_sends_only_its_projects_series(self):
        scp, node = self.send_peer()
        mix, b = self.mix, self.studies["LAB-B"]
        status, body = self.server.api("POST", "/api/send", {"node": node, "level": "STUDY", "uids": [b["uid"]]},
                                       auth=self.writer)
        self.assertEqual(status, 404, body)
        status, body = self.server.api("POST", "/api/send", {"node": node, "level": "STUDY", "uids": [mix["uid"]],
                                                             "projects": ["LAB-B"]}, auth=self.writer)
        self.assertEqual((status, body.get("field")), (404, "projects"), body)
        status, body = self.server.api("POST", "/api/send", {"node": node, "level": "IMAGE",
                                                             "uids": [mix["sops"]["LAB-B"]]}, auth=self.writer)
        self.assertEqual(status, 404, body)
        status, job = self.server.api("POST", "/api/send", {"node": node, "level": "STUDY", "uids": [mix["uid"]]},
                                      auth=self.writer)
        self.assertEqual(status, 202, job)
        done = self.wait_job(job["job_id"])
        self.assertEqual(done["state"], "succeeded", done)
        self.assertEqual(self.received(scp), [mix["sops"]["LAB-A"]])
        # The admin's send narrowed by "projects": the other series alone.
        status, job = self.server.api("POST", "/api/send", {"node": node, "level": "STUDY", "uids": [mix["uid"]],
                                                             "projects": ["LAB-B"]})
        self.assertEqual(status, 202, job)
        self.assertEqual(self.wait_job(job["job_id"])["state"], "succeeded")
        self.assertEqual(self.received(scp), sorted(mix["sops"].values()))
        status, body = self.server.api("POST", "/api/send", {"node": node, "level": "STUDY", "uids": [mix["uid"]],
                                                             "projects": "LAB-B"})
        self.assertEqual((status, body.get("field")), (400, "projects"), body)

    # ------------------------------------------------------------------ STOW-RS

    def test_stow_files_only_into_the_accounts_projects(self):
        uid = dicomgen.make_uids()
        study = uid("study", 9)
        inst = {}
        for k, project in enumerate(("LAB-A", "LAB-B"), 1):
            sop = uid("instance", 90 + k)
            path = self.tmp / "stow" / ("%s.dcm" % project)
            path.parent.mkdir(parents=True, exist_ok=True)
            dicomgen.write_instance(path, sop_uid=sop, study_uid=study, series_uid=uid("series", 9, k),
                                    patient_name="PROJ^STOW", patient_id="PSTOW", modality="CT",
                                    instance_number=1, study_description=project, size=3000)
            inst[project] = (sop, path)
        boundary = new_boundary()
        parts = dicom_parts([{"path": inst["LAB-A"][1]}, {"path": inst["LAB-B"][1]}])
        status, _, payload = self.server.raw(
            "POST", "/dicom-web/studies", multipart_body(parts, boundary), auth=self.writer,
            headers={"Content-Type": stow_type(boundary), "Accept": "application/dicom+json"})
        self.assertEqual(status, 202, payload[:400])
        answer = json.loads(payload)
        stored = [uid_of(i, "00081155") for i in answer["00081199"]["Value"]]
        self.assertEqual(stored, [inst["LAB-A"][0]])
        failed = answer["00081198"]["Value"]
        self.assertEqual([(uid_of(i, "00081155"), uid_of(i, "00081197")) for i in failed],
                         [(inst["LAB-B"][0], NOT_AUTHORIZED)])
        self.assertEqual(self.api_get("/api/instances/%s" % inst["LAB-A"][0], ADMIN)[0], 200)
        self.assertEqual(self.api_get("/api/instances/%s" % inst["LAB-B"][0], ADMIN)[0], 404)
        tmp = self.server.data_dir / "tmp"
        self.assertTrue(harness.wait_until(lambda: not harness.files_under(tmp), 5, 0.1), harness.files_under(tmp))


if __name__ == "__main__":
    unittest.main()
