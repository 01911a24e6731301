"""Faults of a DICOMweb peer and what the transport makes of them: WADO-RS cut off, stalled,
with a wrong boundary, a part that is not DICOM or one nobody asked for; QIDO-RS answering
204, garbage, a login page or a JSON error; STOW-RS refusing large requests (413) or storing
all but one instance; a redirect to another host. Each ends in a clear error naming the node
and nothing half-ingested; a retry fetches or sends only what is missing.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_dicomweb_faults.py

DicomwebFaultTests: one Orthanc (DICOMweb plugin) behind the programmable peer
(web_peer.WebPeer), one pacsbridge server, one study per scenario.
WebPeerSelfCheck: the peer's faults as curl sees them (no pacsbridge needed), so a failure of
the first class can be told apart from a broken peer.
"""

import datetime
import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import web_peer  # noqa: E402
from harness import dicomgen  # noqa: E402

NODE = "web-faults"
# A cut, a stall, a 0xA700 (and, as the server judges them, a malformed WADO-RS answer) is a
# transient fault: the job would wait for an automatic retry (30 s by default). Scenarios about
# the job such a fault ends, and a retry by hand, turn the automatic retries off on their node.
NO_AUTO_RETRY = {"attempts": 1}
INSTANCE_URL = re.compile(r"/studies/([^/]+)/series/([^/]+)/instances/([^/]+)/?$")
SERIES_URL = re.compile(r"/studies/([^/]+)/series/([^/]+)/?$")
STUDY_URL = re.compile(r"/studies/([^/]+)/?$")


def utc(text):
    """A job's UTC time ("2026-12-02T10:00:00Z")."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")


def dump(job):
    return json.dumps(job, indent=1)


def job_field(job, key):
    """A result field of a job: flattened into the job (today) or under "result"."""
    if key in job:
        return job[key]
    return (job.get("result") or {}).get(key)


def orthanc_sops(orthanc, patient_id):
    """SOP Instance UIDs Orthanc holds for a patient (its REST API)."""
    status, body = harness.http_json("POST", orthanc.url + "/tools/find", {
        "Level": "Instance", "Query": {"PatientID": patient_id}, "Expand": True})
    if status != 200:
        raise AssertionError("Orthanc /tools/find -> %s %r" % (status, body))
    return sorted(i["MainDicomTags"]["SOPInstanceUID"] for i in body)


def orthanc_file(orthanc, sop):
    status, body = harness.http_json("POST", orthanc.url + "/tools/lookup", sop)
    ids = [x["ID"] for x in body or [] if x.get("Type") == "Instance"]
    if status != 200 or len(ids) != 1:
        raise AssertionError("Orthanc /tools/lookup %s -> %s %r" % (sop, status, body))
    status, _, payload = harness.http_request("GET", orthanc.url + "/instances/%s/file" % ids[0])
    if status != 200:
        raise AssertionError("Orthanc file of %s -> %s" % (sop, status))
    return payload


class DicomwebFaultTests(harness.JobHelpers, harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = cls.start_class_orthanc(extra=web_peer.orthanc_dicomweb_extra())
        data = cls.tmp / "data"
        gen = dicomgen.generate
        # One study per scenario (distinct patients), ~40 KB instances so a cut lands mid-study.
        cls.sets = {
            "cut": gen(str(data / "cut"), 6, series_per_study=2, size=40000, patient_id="DWCUT"),
            "stall": gen(str(data / "stall"), 4, size=40000, patient_id="DWSTALL"),
            "boundary": gen(str(data / "boundary"), 3, size=8000, patient_id="DWBOUND"),
            "nondicom": gen(str(data / "nondicom"), 3, size=8000, patient_id="DWNONDCM"),
            "foreign": gen(str(data / "foreign"), 3, size=8000, patient_id="DWFOREIGN"),
            "partlen": gen(str(data / "partlen"), 3, size=8000, patient_id="DWPARTLEN"),
            "qido": gen(str(data / "qido"), 2, size=4000, patient_id="DWQIDO"),
        }
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet,
                              [f[0] for v in cls.sets.values() for f in v])
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))
        # Not loaded anywhere: the instance the peer slips into an answer.
        cls.stray = gen(str(data / "stray"), 1, size=6000, patient_id="DWSTRAY")[0]
        # Sent from our archive to the peer (STOW-RS): loaded into our server below.
        cls.sets["stow413"] = gen(str(data / "stow413"), 6, size=6000, patient_id="DWSTOW413")
        cls.sets["stowpart"] = gen(str(data / "stowpart"), 4, size=6000, patient_id="DWSTOWPART")
        cls.sets["stow429"] = gen(str(data / "stow429"), 2, size=6000, patient_id="DWSTOW429")

        cls.peer = web_peer.WebPeer(cls.orthanc.url)
        cls.addClassCleanup(cls.peer.close)
        cls.server = cls.start_class_server()
        cp = harness.storescu(cls.server.dicom_port, cls.server.dicom_ae,
                              [f[0] for k in ("stow413", "stowpart", "stow429") for f in cls.sets[k]])
        if cp.returncode != 0:
            raise AssertionError("loading our server failed:\n" + harness.proc_output(cp))

    def setUp(self):
        self.peer.clear()

    # ------------------------------------------------------------------ helpers

    def add_node(self, name, url=None, **extra):
        body = {"name": name, "type": "dicomweb", "url": url or self.peer.url(),
                "queryable": True, "storable": True}
        body.update(extra)
        status, answer = self.server.api("POST", "/api/nodes", body)
        self.assertEqual(status, 201, "POST /api/nodes %r -> %s %r" % (body, status, answer))
        self.addCleanup(self.server.api, "DELETE", "/api/nodes/%s" % name)
        return answer

    def start_job(self, kind, node, uids, level="STUDY"):
        body = {"node": node, "level": level, "uids": list(uids)}
        status, answer = self.server.api("POST", "/api/%s" % kind, body)
        self.assertEqual(status, 202, "POST /api/%s %r -> %s %r" % (kind, body, status, answer))
        return str(answer["job_id"])

    def retry(self, job_id):
        status, answer = self.server.api("POST", "/api/jobs/%s/retry" % job_id)
        self.assertEqual(status, 202, "retry %s -> %s %r" % (job_id, status, answer))
        return str(answer.get("job_id") or job_id)

    def find(self, node, patient_id):
        return self.server.api("POST", "/api/nodes/%s/find" % node,
                               {"level": "STUDY", "query": {"PatientID": patient_id}},
                               timeout=60)

    def archive_sops(self, study):
        return harness.archive_sops(self.server, study)

    def tmp_files(self):
        return harness.files_under(self.server.data_dir / "tmp")

    def assertOnlyCompleteInstances(self, files, allowed=None):
        """Our archive holds, of this study, only instances we asked for, each once and
        byte-identical (dataset) to what Orthanc serves; the study's counts agree; no temp
        file is left behind. Returns the SOP UIDs present."""
        study = files[0][2]
        allowed = set(allowed if allowed is not None else (f[1] for f in files))
        present = self.archive_sops(study)
        self.assertEqual(len(present), len(set(present)), "an instance is indexed twice: %s"
                         % present)
        self.assertLessEqual(set(present), allowed, "instances we did not ask for")
        for sop in present:
            status, _, stored = self.server.raw("GET", "/api/instances/%s/file" % sop)
            self.assertEqual(status, 200, sop)
            served = orthanc_file(self.orthanc, sop)
            self.assertEqual(dicomgen.dataset_bytes(stored), dicomgen.dataset_bytes(served),
                             "%s: the archived dataset differs from Orthanc's" % sop)
        listed = harness.studies_by_uid(self.server).get(study)
        if present:
            self.assertIsNotNone(listed, "instances of %s but no study row" % study)
            self.assertEqual(listed.get("instance_count"), len(present), listed)
        else:
            self.assertIsNone(listed, "a study row without instances: %r" % (listed,))
        empty = harness.wait_until(lambda: not self.tmp_files(), timeout=10)
        self.assertTrue(empty, "left in %s/tmp: %s" % (self.server.data_dir, self.tmp_files()))
        return set(present)

    def assertNamesNode(self, text, node):
        self.assertIn(node, text or "", "the error does not name the node %r: %r"
                      % (node, text))

    def wado_requests(self, since=0):
        return [e for e in self.peer.requests()[since:] if e["kind"] == "wado"]

    def covered(self, entries, files):
        """{SOP UID: times asked} for WADO-RS requests, a series or study URL counting for
        every instance of it in `files`."""
        asked = {}
        for e in entries:
            path = e["path"]
            m = INSTANCE_URL.search(path)
            if m:
                sops = [m.group(3)]
            elif SERIES_URL.search(path):
                sops = [f[1] for f in files if f[3] == SERIES_URL.search(path).group(2)]
            else:
                sops = [f[1] for f in files if f[2] == STUDY_URL.search(path).group(1)]
            for s in sops:
                asked[s] = asked.get(s, 0) + 1
        return asked

    # ------------------------------------------------------------------ WADO-RS

    def test_wado_cut_mid_study_then_retry_fetches_only_the_rest(self):
        files = self.sets["cut"]
        study = files[0][2]
        all_sops = {f[1] for f in files}
        self.add_node(NODE, retry=NO_AUTO_RETRY)
        self.peer.set_fault("close_after_bytes", count=1, bytes=100000)
        job_id = self.start_job("retrieve", NODE, [study])
        job = self.wait_job(job_id, timeout=60)
        d = dump(job) + "\npeer:\n" + self.peer.describe()
        self.assertEqual(self.peer.fault_applied("close_after_bytes"), 1, d)
        cut = self.peer.requests(fault="close_after_bytes")[0]
        # 100000 bytes is mid-study (6 x ~40 KB) or mid-series, not past a single instance:
        # a transport that asks instance by instance from the start is never cut here.
        self.assertEqual(cut["bytes_sent"], 100000, "the first WADO-RS answer was not cut "
                         "(shorter than 100000 bytes: %s): %s" % (cut["path"], d))
        self.assertIn(job.get("state"), ("partial", "failed"), d)
        self.assertEqual([(h.get("outcome"), h.get("transient")) for h in job.get("history") or []],
                         [(job["state"], True)], "one run, the cut judged transient: " + d)
        self.assertNamesNode(job.get("error"), NODE)
        self.assertEqual(job_field(job, "method_used"), "wado-rs", d)

        present = self.assertOnlyCompleteInstances(files)
        missing = set(job_field(job, "missing") or [])
        self.assertTrue(missing, d)
        self.assertEqual(missing | present, all_sops, "missing + present is not the study: " + d)
        self.assertFalse(missing & present, d)
        self.assertEqual(job.get("state"), "partial" if present else "failed", d)
        sys.stderr.write("[cut after 100000 bytes: %d of %d arrived] "
                         % (len(present), len(files)))

        mark = len(self.peer.requests())
        retry_id = self.retry(job_id)
        retry = self.wait_job(retry_id, timeout=60)
        rd = dump(retry) + "\npeer:\n" + self.peer.describe(self.peer.requests()[mark:])
        self.assertEqual(retry.get("state"), "succeeded", rd)
        self.assertEqual(job_field(retry, "missing") or [], [], rd)
        self.assertEqual(sorted(self.assertOnlyCompleteInstances(files)), sorted(all_sops))
        again = self.wado_requests(mark)
        self.assertTrue(again, "the retry fetched nothing: " + rd)
        asked = self.covered(again, files)
        self.assertEqual(set(asked), missing, "the retry should ask for exactly the missing "
                         "instances: " + rd)
        self.assertEqual(set(asked.values()), {1}, "an instance asked twice: " + rd)
        if present:
            self.assertEqual([e["path"] for e in again if STUDY_URL.search(e["path"])], [],
                             "the whole study asked again: " + rd)

    def test_wado_stall_ends_on_the_retrieve_timeout(self):
        files = self.sets["stall"]
        node = NODE + "-stall"
        self.add_node(node, retrieve_timeout_seconds=2, retry=NO_AUTO_RETRY)
        # Every WADO-RS request stalls, so a transport that retries within the job still ends.
        self.peer.set_fault("stall_after_bytes", bytes=20000)  # inside the first instance
        self.addCleanup(self.peer.release)
        t0 = time.monotonic()
        job_id = self.start_job("retrieve", node, [files[0][2]])
        # The log has a request once it ended: the live fault counter says it began.
        stalled = harness.wait_until(lambda: self.peer.fault_applied("stall_after_bytes"),
                                     timeout=20)
        self.assertEqual(stalled, 1, "no WADO-RS request reached the stall:\n%s\njob: %s"
                         % (self.peer.describe(), dump(self.get_job(job_id))))
        self.assertNotIn(self.get_job(job_id).get("state"), harness.JOB_ENDED,
                         "the job ended before the stall could time out")
        job = self.wait_job(job_id, timeout=45)
        elapsed = time.monotonic() - t0
        d = dump(job) + "\npeer:\n" + self.peer.describe()
        entry = harness.wait_until(lambda: self.peer.requests(fault="stall_after_bytes"),
                                   timeout=10)
        self.assertTrue(entry, "the stalled connection is still open after the job ended "
                        "(the transport did not close it)\n" + d)
        entry = entry[0]
        self.assertEqual(entry["bytes_sent"], 20000, d)
        self.assertGreaterEqual(entry["stall_ended"] - entry["stalled_at"], 1.5,
                                "the connection was dropped before 2 s without bytes: " + d)
        self.assertLess(elapsed, 30, "the job took %.1fs for a 2 s timeout: %s" % (elapsed, d))
        self.assertNotEqual(job.get("state"), "succeeded", d)
        self.assertEqual([(h.get("outcome"), h.get("transient")) for h in job.get("history") or []],
                         [(job["state"], True)], "one run, the timeout judged transient: " + d)
        self.assertMatchesCI(r"time(d)?[ -]?out|no data|stalled|without (data|bytes)",
                             job.get("error"), d)
        self.assertNamesNode(job.get("error"), node)
        self.assertOnlyCompleteInstances(files)

    def _malformed_wado(self, key, fault, **params):
        files = self.sets[key]
        # These scenarios are about the error and what is archived after one run. The server
        # judges a malformed answer transient (as a cut could look the same): no automatic retry.
        self.add_node(NODE, retry=NO_AUTO_RETRY)
        self.peer.set_fault(fault, **params)  # every WADO-RS answer of this job
        job_id = self.start_job("retrieve", NODE, [files[0][2]])
        job = self.wait_job(job_id, timeout=60)
        d = dump(job) + "\npeer:\n" + self.peer.describe()
        self.assertEqual([h.get("outcome") for h in job.get("history") or []], [job["state"]],
                         "one run: " + d)
        self.assertGreaterEqual(self.peer.fault_applied(fault), 1, d)
        self.peer.clear_faults()
        return files, job, d

    def test_wado_wrong_boundary(self):
        files, job, d = self._malformed_wado("boundary", "wrong_boundary")
        self.assertIn(job.get("state"), ("failed", "partial"), d)
        self.assertNamesNode(job.get("error"), NODE)
        self.assertMatchesCI(r"boundary|multipart", job.get("error"), d)
        self.assertOnlyCompleteInstances(files)

    def test_wado_part_that_is_not_dicom(self):
        files, job, d = self._malformed_wado("nondicom", "non_dicom_part")
        replaced = {e.get("replaced_sop") for e in self.peer.requests(fault="non_dicom_part")}
        self.assertIn(job.get("state"), ("failed", "partial"), d)
        self.assertNamesNode(job.get("error"), NODE)
        self.assertMatchesCI(r"not (a )?DICOM|DICM|invalid DICOM|parse|malformed", job.get("error"),
                             d)
        present = self.assertOnlyCompleteInstances(files)
        self.assertFalse(present & replaced, "an instance whose bytes were replaced is "
                         "archived: %s" % (present & replaced))
        self.assertLessEqual(replaced, set(job_field(job, "missing") or []), d)

    def test_wado_part_whose_content_length_lies(self):
        # Orthanc gives each part's Content-Length, and we take a part by it: one that says more
        # than the part holds swallows the delimiter, which must then be missing where the
        # length ends. The parts before it are complete and kept; that one is never archived.
        files, job, d = self._malformed_wado("partlen", "wrong_part_length", delta=1000)
        entry = self.peer.requests(fault="wrong_part_length")[0]
        self.assertEqual(job.get("state"), "partial", d)
        self.assertNamesNode(job.get("error"), NODE)
        self.assertMatchesCI(r"part 2: its Content-Length \(%d\) does not end at a boundary"
                             % entry["declared_length"], job.get("error"), d)
        present = self.assertOnlyCompleteInstances(files)
        self.assertEqual(present, {entry["other_sops"][0]}, "the first part, and only it: " + d)
        self.assertIn(entry["wrong_length_sop"], set(job_field(job, "missing") or []), d)

    def test_wado_foreign_part_is_not_archived(self):
        path, sop, stray_study, _ = self.stray
        files, job, d = self._malformed_wado("foreign", "foreign_part",
                                             data=harness.Path(path).read_bytes())
        self.assertEqual({e.get("foreign_sop") for e in self.peer.requests(
            fault="foreign_part")}, {sop}, d)
        status, _, _ = self.server.raw("GET", "/api/instances/%s/file" % sop)
        self.assertEqual(status, 404, "the instance nobody asked for is in our archive")
        self.assertNotIn(stray_study, harness.studies_by_uid(self.server))
        self.assertOnlyCompleteInstances(files)
        # Said somewhere in the job: as its error (not succeeded), or a note/warning.
        text = json.dumps(job)
        self.assertMatchesCI(r"not (requested|asked)|unrequested|unexpected|foreign|%s"
                             % re.escape(sop), text, "the job does not mention the stray "
                             "instance: " + d)
        if job.get("state") != "succeeded":
            self.assertNamesNode(job.get("error"), NODE)

    # ------------------------------------------------------------------ QIDO-RS

    def test_qido_204_is_an_empty_answer(self):
        self.add_node(NODE)
        study = self.sets["qido"][0][2]
        status, body = self.find(NODE, "DWQIDO")  # negative check: it does match
        self.assertEqual(status, 200, body)
        self.assertEqual([r.get("StudyInstanceUID") for r in body["results"]], [study], body)
        self.peer.set_fault("qido_204")
        status, body = self.find(NODE, "DWQIDO")
        self.assertEqual(self.peer.fault_applied("qido_204"), 1, self.peer.describe())
        self.assertEqual(status, 200, "%r\n%s" % (body, self.peer.describe()))
        self.assertEqual((body.get("results"), body.get("truncated")), ([], False), body)

    def _qido_error(self, fault):
        self.add_node(NODE)
        self.peer.set_fault(fault)
        status, body = self.find(NODE, "DWQIDO")
        self.assertGreaterEqual(self.peer.fault_applied(fault), 1, self.peer.describe())
        self.assertGreaterEqual(status, 400, body)
        self.assertJsonError(status, body, expected_status=status)
        self.assertNamesNode(body["error"], NODE)
        return body["error"]

    def test_qido_garbage_json(self):
        error = self._qido_error("qido_garbage")
        self.assertMatchesCI(r"JSON|pars", error)

    def test_qido_html_login_page(self):
        error = self._qido_error("qido_html")
        self.assertMatchesCI(r"text/html|HTML|content[- ]type|login", error)

    def test_qido_error_json_carries_the_status(self):
        error = self._qido_error("qido_error_json")
        self.assertMatchesCI(r"\b400\b", error)

    # ------------------------------------------------------------------ STOW-RS

    def test_stow_413_halves_the_batches(self):
        files = self.sets["stow413"]
        sops = sorted(f[1] for f in files)
        self.assertEqual(orthanc_sops(self.orthanc, "DWSTOW413"), [])  # negative check
        node = NODE + "-stow"
        self.add_node(node, stow_batch_instances=8)
        self.peer.set_fault("stow_413_above", parts=2)
        job = self.wait_job(self.start_job("send", node, [files[0][2]]), timeout=60)
        stow = self.peer.requests(kind="stow")
        d = dump(job) + "\npeer:\n" + "\n".join(
            "%s parts=%s %s" % (e["status"], e["parts"], e.get("sop_uids")) for e in stow)
        self.assertEqual(job.get("state"), "succeeded", d)
        self.assertTrue(stow, d)
        self.assertEqual((stow[0]["parts"], stow[0]["status"]), (6, 413), d)
        self.assertLessEqual(stow[1]["parts"], 3, "the batch after a 413 should be at most "
                             "half as large: " + d)
        accepted = [e for e in stow if e["status"] in (200, 202)]
        self.assertTrue(all(e["parts"] <= 2 for e in accepted), d)
        self.assertEqual(sorted(s for e in accepted for s in e["sop_uids"]), sops,
                         "each instance stored exactly once: " + d)
        self.assertTrue(all(e["status"] in (200, 202, 413) for e in stow), d)
        self.assertEqual(orthanc_sops(self.orthanc, "DWSTOW413"), sops)

    def test_stow_partial_then_retry_sends_only_the_failed_one(self):
        files = self.sets["stowpart"]
        victim = files[2][1]
        node = NODE + "-stowpart"
        self.add_node(node, retry=NO_AUTO_RETRY)
        self.peer.set_fault("stow_partial", count=1, uid=victim)
        job_id = self.start_job("send", node, [files[0][2]])
        job = self.wait_job(job_id, timeout=60)
        d = dump(job) + "\npeer:\n" + self.peer.describe()
        self.assertEqual(self.peer.fault_applied("stow_partial"), 1, d)
        self.assertEqual(job.get("state"), "partial", d)
        self.assertEqual([(h.get("outcome"), h.get("transient")) for h in job.get("history") or []],
                         [("partial", True)], "one run, 0xA700 judged transient: " + d)
        failed = job_field(job, "failed_instances") or []
        self.assertEqual([f.get("sop_uid") for f in failed], [victim], d)
        reason = "%s %s" % (failed[0].get("status"), failed[0].get("reason"))
        self.assertMatchesCI(r"a700|42752|out of resources", reason, d)
        self.assertEqual(orthanc_sops(self.orthanc, "DWSTOWPART"),
                         sorted(f[1] for f in files if f[1] != victim))

        mark = len(self.peer.requests())
        retry = self.wait_job(self.retry(job_id), timeout=60)
        rd = dump(retry) + "\npeer:\n" + self.peer.describe(self.peer.requests()[mark:])
        self.assertEqual(retry.get("state"), "succeeded", rd)
        again = [e for e in self.peer.requests()[mark:] if e["kind"] == "stow"]
        self.assertEqual([(e["parts"], e["sop_uids"]) for e in again], [(1, [victim])], rd)
        self.assertEqual(orthanc_sops(self.orthanc, "DWSTOWPART"), sorted(f[1] for f in files))

    def test_stow_429_waits_at_least_its_retry_after(self):
        # The node would retry after 1 s (0.5-1 s with jitter); the peer's Retry-After says 4 s:
        # the next attempt waits for that.
        files = self.sets["stow429"]
        node = NODE + "-stow429"
        self.add_node(node, retry={"attempts": 3, "first_delay_seconds": 1, "max_delay_seconds": 1})
        self.peer.set_fault("stow_429", count=1, retry_after=4)
        job_id = self.start_job("send", node, [files[0][2]])
        waiting = harness.wait_until(
            lambda: (lambda j: j if j.get("next_attempt") else None)(self.get_job(job_id)), 30, 0.05)
        d = dump(waiting) + "\npeer:\n" + self.peer.describe()
        self.assertTrue(waiting, "the job never waited for a retry: " + dump(self.get_job(job_id)))
        self.assertEqual(self.peer.fault_applied("stow_429"), 1, d)
        ended = utc(waiting["history"][0]["ended_at"])
        delay = (utc(waiting["next_attempt"]) - ended).total_seconds()
        self.assertGreaterEqual(delay, 4, "the next attempt comes before the Retry-After: " + d)
        self.assertTrue(waiting["history"][0].get("transient"), d)
        job = self.wait_job(job_id, timeout=60)
        d = dump(job) + "\npeer:\n" + self.peer.describe()
        self.assertEqual(job.get("state"), "succeeded", d)
        self.assertEqual([h.get("outcome") for h in job.get("history") or []], ["failed", "succeeded"], d)
        self.assertEqual(orthanc_sops(self.orthanc, "DWSTOW429"), sorted(f[1] for f in files))

    # ------------------------------------------------------------------ redirect

    def test_redirect_to_another_host_refused_unless_allowed(self):
        study = self.sets["qido"][0][2]
        self.add_node(NODE)
        self.peer.set_fault("redirect", host="127.0.0.2")
        status, body = self.find(NODE, "DWQIDO")
        # The peer logs a request once its answer is written: the client may be done first.
        self.assertTrue(harness.wait_until(lambda: self.peer.requests(status=307), timeout=5),
                        "%s %r\npeer:\n%s" % (status, body, self.peer.describe()))
        d = "%s %r\npeer:\n%s" % (status, body, self.peer.describe())
        self.assertGreaterEqual(status, 400, d)
        self.assertJsonError(status, body, expected_status=status)
        self.assertNamesNode(body["error"], NODE)
        self.assertMatchesCI(r"redirect", body["error"])
        self.assertMatchesCI(r"127\.0\.0\.2|another host|other host|different host",
                             body["error"])
        self.assertEqual(self.peer.requests(host="127.0.0.2"), [], d)

        allowed = NODE + "-redirects"
        self.add_node(allowed, allow_redirects=True)
        status, body = self.find(allowed, "DWQIDO")
        d = "%s %r\npeer:\n%s" % (status, body, self.peer.describe())
        self.assertEqual(status, 200, d)
        self.assertEqual([r.get("StudyInstanceUID") for r in body["results"]], [study], d)
        # Logged once the answer is written, which the client may have read first.
        self.assertTrue(harness.wait_until(lambda: self.peer.requests(host="127.0.0.2", status=200), timeout=5),
                        "%s %r\npeer:\n%s" % (status, body, self.peer.describe()))


class WebPeerSelfCheck(harness.E2ETestCase):
    """The peer's behaviours seen by curl, straight against Orthanc (no pacsbridge)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.orthanc = cls.start_class_orthanc(extra=web_peer.orthanc_dicomweb_extra())
        cls.files = dicomgen.generate(str(cls.tmp / "d"), 4, series_per_study=2, size=20000,
                                      patient_id="SELF")
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet, [f[0] for f in cls.files])
        if cp.returncode != 0:
            raise AssertionError(harness.proc_output(cp))
        cls.study = cls.files[0][2]
        cls.peer = web_peer.WebPeer(cls.orthanc.url)
        cls.addClassCleanup(cls.peer.close)

    def setUp(self):
        self.peer.clear()

    def curl(self, *args, timeout=30):
        out = self.tmp / "curl.out"
        hdr = self.tmp / "curl.hdr"
        cp = harness.run_tool(["curl", "-sS", "--noproxy", "*", "-o", out, "-D", hdr,
                               "-w", "%{http_code}"] + list(args), timeout=timeout)
        return cp.returncode, cp.stdout, out.read_bytes() if out.exists() else b"", \
            hdr.read_text("latin-1") if hdr.exists() else ""

    def wado(self):
        return self.peer.url() + "studies/" + self.study

    def test_forwarding_and_log(self):
        rc, code, body, hdr = self.curl(self.wado())
        self.assertEqual((rc, code), (0, "200"))
        self.assertEqual(len(web_peer.split_multipart(body, web_peer.boundary_of(
            re.search(r"(?im)^content-type:(.*)$", hdr).group(1)))), 4)
        rc, code, body, _ = self.curl(self.peer.url() + "studies?PatientID=SELF")
        self.assertEqual(json.loads(body)[0]["0020000D"]["Value"], [self.study])
        # Orthanc's RetrieveURL points at the peer (the Host header is passed on).
        self.assertIn("127.0.0.1:%d" % self.peer.port, json.loads(body)[0]["00081190"]["Value"][0])
        self.assertEqual([e["kind"] for e in self.peer.requests()], ["wado", "qido"])

    def test_wado_faults(self):
        self.peer.set_fault("close_after_bytes", count=1, bytes=30000)
        rc, _, body, _ = self.curl(self.wado())
        self.assertEqual((rc, len(body)), (18, 30000))  # transfer closed with data remaining
        self.assertEqual(self.curl(self.wado())[0], 0)  # count=1: the next one is whole

        self.peer.set_fault("stall_after_bytes", count=1, bytes=30000)
        rc, _, body, _ = self.curl("-m", "2", self.wado())
        self.assertEqual((rc, len(body)), (28, 30000))  # timed out
        ended = harness.wait_until(lambda: self.peer.requests(fault="stall_after_bytes"), 5)
        self.assertTrue(ended, "the stall did not end when curl closed the connection")

        self.peer.set_fault("wrong_boundary", count=1)
        rc, _, body, hdr = self.curl(self.wado())
        boundary = web_peer.boundary_of(re.search(r"(?im)^content-type:(.*)$", hdr).group(1))
        self.assertTrue(boundary.startswith("not-the-boundary-"))
        self.assertNotIn(boundary.encode(), body)

        self.peer.set_fault("non_dicom_part", count=1)
        rc, _, body, hdr = self.curl(self.wado())
        parts = web_peer.split_multipart(body, web_peer.boundary_of(
            re.search(r"(?im)^content-type:(.*)$", hdr).group(1)))
        self.assertEqual(parts[0][1], web_peer.NON_DICOM)
        self.assertIn(b"Content-Length: %d" % len(web_peer.NON_DICOM), parts[0][0])
        self.assertEqual([p[1][128:132] for p in parts[1:]], [b"DICM"] * 3)

        stray = dicomgen.generate(str(self.tmp / "stray"), 1, size=3000, patient_id="X")[0]
        self.peer.set_fault("foreign_part", count=1, data=harness.Path(stray[0]).read_bytes())
        rc, _, body, hdr = self.curl(self.wado())
        parts = web_peer.split_multipart(body, web_peer.boundary_of(
            re.search(r"(?im)^content-type:(.*)$", hdr).group(1)))
        self.assertEqual(len(parts), 5)
        self.assertEqual(web_peer.part10_meta(parts[0][1])["00020003"], stray[1])

    def test_qido_faults_and_redirect(self):
        url = self.peer.url() + "studies?PatientID=SELF"
        expected = {"qido_204": ("204", b""), "qido_garbage": ("200", web_peer.GARBAGE_JSON),
                    "qido_html": ("200", web_peer.HTML_LOGIN),
                    "qido_error_json": ("400", json.dumps(web_peer.ERROR_JSON).encode())}
        for fault, want in expected.items():
            self.peer.set_fault(fault)
            self.assertEqual(self.curl(url)[1:3], want, fault)
        self.peer.clear_faults()
        self.peer.set_fault("redirect")
        rc, code, _, hdr = self.curl(url)
        self.assertEqual(code, "307")
        self.assertIn("Location: http://127.0.0.2:%d/dicom-web/studies?PatientID=SELF"
                      % self.peer.port, hdr)
        self.assertEqual(self.curl("-L", url)[1], "200")
        self.assertEqual([(e["local_host"], e["status"]) for e in self.peer.requests()[-3:]],
                         [("127.0.0.1", 307), ("127.0.0.1", 307), ("127.0.0.2", 200)])

    def test_auth(self):
        url = self.peer.url() + "studies"
        self.peer.set_auth("bearer-static", token="abc")
        rc, code, _, hdr = self.curl(url)
        self.assertEqual(code, "401")
        self.assertIn('WWW-Authenticate: Bearer realm="web-peer"', hdr)
        self.assertEqual(self.curl("-H", "Authorization: Bearer abc", url)[1], "200")

        self.peer.set_auth("oauth2", client_id="c", client_secret="s", expires_in=1, scope="r")
        rc, code, body, _ = self.curl("-u", "c:s", "-d", "grant_type=client_credentials&scope=r",
                                      self.peer.token_url())
        answer = json.loads(body)
        self.assertEqual((code, answer["token_type"], answer["expires_in"]), ("200", "Bearer", 1))
        rc, code, body, _ = self.curl("-d", "grant_type=client_credentials&client_id=c&"
                                      "client_secret=bad&scope=r", self.peer.token_url())
        self.assertEqual((code, json.loads(body)["error"]), ("401", "invalid_client"))
        self.assertEqual([r["client_auth"] for r in self.peer.token_requests], ["basic", "body"])
        bearer = "Authorization: Bearer " + answer["access_token"]
        self.assertEqual(self.curl("-H", bearer, url)[1], "200")
        harness.wait_until(lambda: self.peer.now() > self.peer.issued_tokens()[0]["expires_at"],
                           5, 0.05)
        rc, code, _, hdr = self.curl("-H", bearer, url)
        self.assertEqual(code, "401")
        self.assertIn('error="invalid_token"', hdr)

    def test_stow_faults(self):
        files = dicomgen.generate(str(self.tmp / "stow"), 5, size=3000, patient_id="SELFSTOW")
        b = "SELFBOUNDARY"
        body = b"".join(b"--%s\r\nContent-Type: application/dicom\r\n\r\n%s\r\n"
                        % (b.encode(), harness.Path(f[0]).read_bytes()) for f in files)
        body += b"--%s--\r\n" % b.encode()
        (self.tmp / "stow.bin").write_bytes(body)
        ctype = 'Content-Type: multipart/related; type="application/dicom"; boundary=' + b
        post = ["-H", ctype, "--data-binary", "@%s" % (self.tmp / "stow.bin"),
                self.peer.url() + "studies"]
        self.peer.set_fault("stow_413_above", parts=2)
        self.assertEqual(self.curl(*post)[1], "413")
        self.peer.set_fault("stow_partial", count=1, uid=files[1][1])
        rc, code, answer, _ = self.curl(*post)
        self.assertEqual(code, "202")
        answer = json.loads(answer)
        failed = answer["00081198"]["Value"]
        self.assertEqual([(f["00081155"]["Value"], f["00081197"]["Value"]) for f in failed],
                         [([files[1][1]], [0xA700])])
        self.assertEqual(len(answer["00081199"]["Value"]), 4)
        self.assertEqual(orthanc_sops(self.orthanc, "SELFSTOW"),
                         sorted(f[1] for f in files if f is not files[1]))
        self.assertEqual([(e["parts"], e["sop_uids"]) for e in self.peer.requests(kind="stow")],
                         [(5, [f[1] for f in files])] * 2)

    def test_stow_single_part_refused_or_rewrapped(self):
        path, sop = dicomgen.generate(str(self.tmp / "single"), 1, size=3000,
                                      patient_id="SELFSINGLE")[0][:2]
        data = harness.Path(path).read_bytes()
        post = ["-H", "Content-Type: application/dicom", "-H", "Accept: application/dicom+json",
                "--data-binary", "@%s" % path]
        # Passed on as it is, Orthanc refuses it.
        rc, code, answer, _ = self.curl(*post, self.peer.url() + "studies")
        self.assertEqual((rc, code), (0, "415"), answer)
        self.assertEqual(orthanc_sops(self.orthanc, "SELFSINGLE"), [])
        # An archive that accepts single parts: re-wrapped for Orthanc, the same bytes stored.
        accepting = web_peer.WebPeer(self.orthanc.url, accept_single_part=True)
        self.addCleanup(accepting.close)
        rc, code, answer, _ = self.curl(*post, accepting.url() + "studies")
        self.assertEqual((rc, code), (0, "200"), answer)
        self.assertEqual(json.loads(answer)["00081199"]["Value"][0]["00081155"]["Value"], [sop])
        self.assertEqual(orthanc_file(self.orthanc, sop), data)
        logged = [(e["content_type"], e["body_size"], e["sop_uids"], e.get("rewrapped"),
                   e["status"]) for e in self.peer.requests(kind="stow")
                  + accepting.requests(kind="stow")]
        self.assertEqual(logged, [("application/dicom", len(data), [sop], None, 415),
                                  ("application/dicom", len(data), [sop], True, 200)])


if __name__ == "__main__":
    unittest.main(verbosity=2)
