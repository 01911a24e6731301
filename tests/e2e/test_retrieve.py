"""Retrieve jobs (C-GET / C-MOVE) against Orthanc (Debian package): studies and series by
either method, byte-identical datasets (Explicit, Implicit and JPEG-lossless stored instances),
auto fallback to C-MOVE when the PACS refuses C-GET, an unknown move destination explained,
the PACS killed mid C-GET then retry, our server killed mid job, cancel, the CLI.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_retrieve.py

Two Orthancs are shared by the class:
  - "main": DicomModalities lists our receiver as PACSBRIDGE (may C-GET, C-FIND, C-MOVE) and
    PBNOGET (same host/port, "AllowGet": false: Orthanc aborts the association on a C-GET-RQ);
  - "strict": C-GET allowed for everybody (DicomAlwaysAllowGet), only PBQUERY listed, so a
    C-MOVE to PACSBRIDGE names an unknown destination (Orthanc answers 0xC000, no comment);
    this one is SIGKILLed and restarted on its storage by the fault scenario.
Slow transfers (to kill, cancel or restart something mid-job) go through a throttling TCP
proxy in front of Orthanc: a full C-GET straight from Orthanc of 300 x 200 KB takes 0.4 s.
"""

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

TERMINAL = ("succeeded", "partial", "failed", "canceled")
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"


# --------------------------------------------------------------------------- helpers

def load_into(orthanc, files, extra=()):
    cp = harness.storescu(orthanc.dicom_port, orthanc.aet, files, extra=list(extra))
    if cp.returncode != 0:
        raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))


def add_series(outdir, study_uid, count, *, syntax="explicit", modality="OT", size=4096,
               patient_id="PID1", patient_name="TEST^PATIENT"):
    """count instances in a new series of an existing study; [(path, sop, study, series)]."""
    uid = dicomgen.make_uids()
    series_uid = uid("series", 9)
    os.makedirs(str(outdir), exist_ok=True)
    out = []
    for i in range(count):
        sop = uid("instance", 9000 + i)
        path = os.path.join(str(outdir), "%s-%06d.dcm" % (syntax, i))
        dicomgen.write_instance(path, sop_uid=sop, study_uid=study_uid, series_uid=series_uid,
                                syntax=syntax, modality=modality, size=size,
                                instance_number=i + 1, series_number=9,
                                patient_id=patient_id, patient_name=patient_name)
        out.append((path, sop, study_uid, series_uid))
    return out


def jpeg_copy(src, dst):
    """A JPEG lossless (process 14 SV1) copy of src with the same UIDs (DCMTK dcmcjpeg)."""
    cp = harness.run_tool(["dcmcjpeg", "+e1", src, dst])
    if cp.returncode != 0:
        raise AssertionError("dcmcjpeg failed:\n" + harness.proc_output(cp))
    meta, _ = dicomgen.read_meta(dst)
    assert meta["TransferSyntaxUID"] == JPEG_LOSSLESS_SV1, meta
    return dst


def orthanc_modalities(server_port):
    return {
        "pacsbridge": ["PACSBRIDGE", "127.0.0.1", server_port],
        "pbnoget": {"AET": "PBNOGET", "Host": "127.0.0.1", "Port": server_port,
                    "AllowGet": False},
    }


class RetrieveTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        # Our server first (not started): Orthanc must know our receiver's port.
        cls.server = harness.Server(cls.tmp / "srv")
        cls._peers.append(cls.server)

        cls.orthanc = harness.Orthanc(cls.tmp / "orthanc-main", extra={
            "DicomModalities": orthanc_modalities(cls.server.dicom_port)})
        cls._peers.append(cls.orthanc)
        cls.addClassCleanup(cls.orthanc.stop)
        cls.orthanc.start()

        cls.strict = harness.Orthanc(cls.tmp / "orthanc-strict", extra={
            "DicomModalities": {"pbquery": ["PBQUERY", "127.0.0.1", 9]},
            "DicomAlwaysAllowGet": True, "DicomAlwaysAllowFind": True})
        cls._peers.append(cls.strict)
        cls.addClassCleanup(cls.strict.stop)
        cls.strict.start()

        data = cls.tmp / "data"
        gen = dicomgen.generate
        # One study per scenario, so that no scenario finds another's instances already here.
        cls.sets = {
            "get_study": gen(data / "get_study", 10, series_per_study=2, modality="CT",
                             size=20000, patient_id="GETSTUDY"),
            "get_series": gen(data / "get_series", 8, series_per_study=2, size=6000,
                              patient_id="GETSERIES"),
            "move_study": gen(data / "move_study", 10, series_per_study=2, modality="CT",
                              size=20000, patient_id="MOVESTUDY"),
            "move_series": gen(data / "move_series", 8, series_per_study=2, size=6000,
                               patient_id="MOVESERIES"),
            "auto_fallback": gen(data / "auto_fallback", 6, series_per_study=2, size=6000,
                                 patient_id="AUTOFB"),
            "auto_plain": gen(data / "auto_plain", 4, size=6000, patient_id="AUTOPLAIN"),
            "cli": gen(data / "cli", 5, size=6000, patient_id="CLI"),
            "cli_json": gen(data / "cli_json", 2, size=6000, patient_id="CLIJSON"),
            "jobs_a": gen(data / "jobs_a", 2, size=6000, patient_id="JOBSA"),
            "move_one": gen(data / "move_one", 4, size=6000, patient_id="MOVEONE"),
            "jobs_b": gen(data / "jobs_b", 2, size=6000, patient_id="JOBSB"),
            "cancel": gen(data / "cancel", 80, series_per_study=2, modality="CT",
                          size=100000, patient_id="CANCEL"),
            "restart": gen(data / "restart", 80, modality="CT", size=100000,
                           patient_id="RESTART"),
        }
        # Mixed transfer syntaxes in one study: Explicit, Implicit, JPEG lossless.
        ts_expl = gen(data / "ts", 3, modality="CT", size=20000, patient_id="TSMIX")
        ts_study = ts_expl[0][2]
        ts_impl = add_series(data / "ts-impl", ts_study, 3, syntax="implicit",
                             patient_id="TSMIX")
        ts_jpeg = [(jpeg_copy(path, path + ".jpeg.dcm"), sop, st, se) for path, sop, st, se
                   in add_series(data / "ts-jsrc", ts_study, 2, modality="CT", size=20000,
                                 patient_id="TSMIX")]
        cls.sets["ts_mix"] = ts_expl + ts_impl + ts_jpeg
        # The uncompressed mix again for C-MOVE (another study).
        mv_expl = gen(data / "tsm", 3, modality="CT", size=20000, patient_id="TSMIXMOVE")
        mv_impl = add_series(data / "tsm-impl", mv_expl[0][2], 3, syntax="implicit",
                             patient_id="TSMIXMOVE")
        cls.sets["ts_mix_move"] = mv_expl + mv_impl

        uncompressed = [f[0] for k, v in cls.sets.items() for f in v
                        if k != "ts_mix"] + [f[0] for f in ts_expl + ts_impl]
        load_into(cls.orthanc, uncompressed)
        load_into(cls.orthanc, [f[0] for f in ts_jpeg], extra=["-xs"])
        cls.sets["unknown_dest"] = gen(data / "unknown_dest", 3, size=6000,
                                       patient_id="UNKDEST")
        cls.sets["fault"] = gen(data / "fault", 150, series_per_study=3, modality="CT",
                                size=100000, patient_id="FAULT")
        load_into(cls.strict, [f[0] for f in cls.sets["unknown_dest"] + cls.sets["fault"]])

        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()
        cls.proxies = []
        cls.main_proxy = cls.make_proxy(cls.orthanc.dicom_port, rate=1_500_000)
        cls.fault_proxy = cls.make_proxy(cls.strict.dicom_port, rate=3_000_000)
        cls.add_node(cls.server, "orthanc", cls.orthanc.dicom_port)
        cls.add_node(cls.server, "orthanc-noget", cls.orthanc.dicom_port,
                     calling_ae_title="PBNOGET", move_destination="PACSBRIDGE")
        cls.add_node(cls.server, "orthanc-slow", cls.main_proxy.port)
        cls.add_node(cls.server, "strict-move", cls.strict.dicom_port,
                     calling_ae_title="PBQUERY", move_destination="PACSBRIDGE")
        # The fault scenario is about the job a transient fault ends and a retry by hand: no
        # automatic retry on this node (the default would leave the job waiting 30 s and more).
        cls.add_node(cls.server, "strict-get", cls.fault_proxy.port, retrieve_method="c-get",
                     retry={"attempts": 1})
        cls.add_node(cls.server, "not-queryable", cls.orthanc.dicom_port, queryable=False)
        # One association at a time: a C-MOVE's counts cannot be asked alongside it.
        cls.add_node(cls.server, "orthanc-one", cls.orthanc.dicom_port, max_associations=1,
                     retry={"attempts": 1})

    @classmethod
    def make_proxy(cls, port, rate):
        proxy = harness.ThrottledProxy(port, rate)
        cls.proxies.append(proxy)
        cls.addClassCleanup(proxy.close)
        return proxy

    @classmethod
    def add_node(cls, server, name, port, **extra):
        body = {"name": name, "ae_title": "ORTHANC", "host": "127.0.0.1", "port": port,
                "queryable": True, "timeout_seconds": 20}
        body.update(extra)
        status, answer = server.api("POST", "/api/nodes", body)
        if status != 201:
            raise AssertionError("POST /api/nodes %r -> %s %r" % (body, status, answer))
        return answer

    # ------------------------------------------------------------------ job helpers

    def start_retrieve(self, node, level, uids, method="auto", server=None, **extra):
        server = server or self.server
        body = {"node": node, "level": level, "uids": list(uids), "method": method}
        body.update(extra)
        status, answer = server.api("POST", "/api/retrieve", body)
        self.assertEqual(status, 202, "POST /api/retrieve %r -> %s %r" % (body, status, answer))
        self.assertIsInstance(answer, dict, answer)
        self.assertIn("job_id", answer, answer)
        return str(answer["job_id"])

    def get_job(self, job_id, server=None):
        server = server or self.server
        status, job = server.api("GET", "/api/jobs/%s" % job_id)
        self.assertEqual(status, 200, "GET /api/jobs/%s -> %s %r" % (job_id, status, job))
        return job

    def wait_job(self, job_id, timeout=60, server=None):
        """Poll until the job reaches a terminal state; return the job JSON."""
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.get_job(job_id, server)
            if job.get("state") in TERMINAL:
                return job
            time.sleep(0.1)
        self.fail("job %s not finished after %ss: %s" % (job_id, timeout,
                                                         json.dumps(job, indent=1)))

    def wait_progress(self, job_id, at_least, timeout=30, server=None):
        """Poll until progress.completed >= at_least while the job runs; return the job."""
        deadline = time.monotonic() + timeout
        job = None
        while time.monotonic() < deadline:
            job = self.get_job(job_id, server)
            done = (job.get("progress") or {}).get("completed") or 0
            if job.get("state") in TERMINAL:
                self.fail("job %s finished before %d instances had arrived (too fast for "
                          "this scenario, or it failed): %s"
                          % (job_id, at_least, json.dumps(job, indent=1)))
            if done >= at_least:
                return job
            time.sleep(0.02)
        self.fail("job %s: fewer than %d instances after %ss: %s"
                  % (job_id, at_least, timeout, json.dumps(job, indent=1)))

    def archive_instances(self, study_uid, server=None):
        return harness.archive_sops(server or self.server, study_uid)

    def assert_identical(self, files, server=None):
        """Each stored file's dataset is byte-identical to the source's (below the meta);
        every difference is listed."""
        server = server or self.server
        problems = []
        for path, sop, _, _ in files:
            status, _, payload = server.raw("GET", "/api/instances/%s/file" % sop)
            if status != 200:
                problems.append("%s: GET /api/instances/.../file -> %s" % (sop, status))
                continue
            meta, offset = dicomgen.read_meta(payload)
            src_meta, _ = dicomgen.read_meta(path)
            ours, theirs = meta.get("TransferSyntaxUID"), src_meta["TransferSyntaxUID"]
            if meta.get("MediaStorageSOPInstanceUID") != sop:
                problems.append("%s: stored file says SOP %s"
                                % (sop, meta.get("MediaStorageSOPInstanceUID")))
            elif ours != theirs:
                problems.append("%s: stored as %s, the PACS has it as %s (transcoded on the "
                                "way: see /tmp/retrieve-facts.md a.)" % (sop, ours, theirs))
            elif payload[offset:] != dicomgen.dataset_bytes(path):
                problems.append("%s: dataset differs from %s (%d vs %d bytes)"
                                % (sop, path, len(payload) - offset,
                                   len(dicomgen.dataset_bytes(path))))
        self.assertEqual(problems, [], "%d of %d instances not byte-identical:\n  %s"
                         % (len(problems), len(files), "\n  ".join(problems)))

    def assert_succeeded(self, job, files, method_used=None):
        """A finished retrieve that brought exactly `files` (each once)."""
        dump = json.dumps(job, indent=1)
        self.assertEqual(job.get("state"), "succeeded", dump)
        self.assertEqual(job.get("type"), "retrieve", dump)
        if method_used:
            self.assertEqual(job.get("method_used"), method_used, dump)
        self.assertEqual(job.get("missing"), [], dump)
        self.assertIsNone(job.get("error"), dump)
        self.assertFalse(job.get("interrupted"), dump)
        p = job.get("progress") or {}
        n = len(files)
        if p.get("total") is not None:
            self.assertEqual(p["total"], n, dump)
        self.assertEqual(p.get("completed"), n, dump)
        self.assertEqual(p.get("failed"), 0, dump)
        self.assertEqual(p.get("remaining"), 0, dump)
        for key in ("created_at", "started_at", "finished_at"):
            self.assertTrue(job.get(key), "%s empty: %s" % (key, dump))
        studies = {f[2] for f in files}
        stored = []
        for st in studies:
            stored += self.archive_instances(st)
        self.assertEqual(sorted(stored), sorted(set(stored)), "an instance is listed twice")
        self.assertTrue({f[1] for f in files} <= set(stored),
                        "missing from the archive: %s" % ({f[1] for f in files} - set(stored)))
        self.assert_identical(files)

    # ------------------------------------------------------------------ scenarios

    def test_c_get_study(self):
        files = self.sets["get_study"]
        job_id = self.start_retrieve("orthanc", "STUDY", [files[0][2]], method="c-get")
        job = self.wait_job(job_id)
        self.assert_succeeded(job, files, method_used="c-get")
        self.assertEqual(job.get("node"), "orthanc")
        self.assertEqual(job.get("level"), "STUDY")
        self.assertEqual(job.get("uids"), [files[0][2]])
        self.assertEqual(job["progress"]["completed"], len(files), json.dumps(job))
        self.assertGreater(job["progress"].get("bytes") or 0, 0, json.dumps(job))
        self.assertEqual(str(job.get("id")), job_id)

    def test_c_get_series(self):
        files = self.sets["get_series"]
        series = sorted({f[3] for f in files})
        wanted = [f for f in files if f[3] == series[0]]
        job_id = self.start_retrieve("orthanc", "SERIES", [series[0]], method="c-get",
                                     study_uid=files[0][2])
        job = self.wait_job(job_id)
        self.assert_succeeded(job, wanted, method_used="c-get")
        self.assertEqual(job["progress"]["completed"], len(wanted), json.dumps(job))
        stored = self.archive_instances(files[0][2])
        self.assertEqual(sorted(stored), sorted(f[1] for f in wanted),
                         "only the asked series should have been retrieved")

    def test_c_move_study(self):
        files = self.sets["move_study"]
        job_id = self.start_retrieve("orthanc", "STUDY", [files[0][2]], method="c-move")
        job = self.wait_job(job_id)
        self.assert_succeeded(job, files, method_used="c-move")
        self.assertEqual(job["progress"]["completed"], len(files), json.dumps(job))
        # Checked against the study's count, asked while the data flowed.
        self.assertEqual(job.get("verification"), "counts", json.dumps(job))
        self.assertEqual(job["progress"].get("total"), len(files), json.dumps(job))

    def test_c_move_study_on_a_node_of_one_association_counts_first(self):
        files = self.sets["move_one"]
        job_id = self.start_retrieve("orthanc-one", "STUDY", [files[0][2]], method="c-move")
        job = self.wait_job(job_id)
        self.assert_succeeded(job, files, method_used="c-move")
        self.assertEqual(job.get("verification"), "counts", json.dumps(job))
        self.assertEqual(job["progress"].get("total"), len(files), json.dumps(job))

    def test_a_study_the_pacs_does_not_have_fails_saying_so(self):
        missing = "1.2.826.0.1.3680043.9.7133.404.1"
        for node, method in (("orthanc", "c-move"), ("orthanc", "c-get"),
                             ("orthanc-one", "c-move")):
            job = self.wait_job(self.start_retrieve(node, "STUDY", [missing], method=method))
            self.assertEqual(job.get("state"), "failed", json.dumps(job))
            self.assertIn("has no study %s" % missing, job.get("error") or "", json.dumps(job))
            self.assertEqual(len(job.get("history") or []), 1, json.dumps(job))

    def test_c_move_series(self):
        files = self.sets["move_series"]
        series = sorted({f[3] for f in files})
        wanted = [f for f in files if f[3] == series[1]]
        job_id = self.start_retrieve("orthanc", "SERIES", [series[1]], method="c-move",
                                     study_uid=files[0][2])
        job = self.wait_job(job_id)
        self.assert_succeeded(job, wanted, method_used="c-move")
        stored = self.archive_instances(files[0][2])
        self.assertEqual(sorted(stored), sorted(f[1] for f in wanted),
                         "only the asked series should have been retrieved")

    def test_c_get_keeps_implicit_and_jpeg_instances_unchanged(self):
        """Orthanc sends an instance unchanged only on a context whose TS is the one it has
        it in; with [Explicit, Implicit] in one context it takes Explicit and transcodes."""
        files = self.sets["ts_mix"]
        job_id = self.start_retrieve("orthanc", "STUDY", [files[0][2]], method="c-get")
        job = self.wait_job(job_id)
        self.assert_succeeded(job, files, method_used="c-get")

    def test_c_move_keeps_implicit_instances_unchanged(self):
        files = self.sets["ts_mix_move"]
        job_id = self.start_retrieve("orthanc", "STUDY", [files[0][2]], method="c-move")
        job = self.wait_job(job_id)
        self.assert_succeeded(job, files, method_used="c-move")

    def test_c_get_image_level_list(self):
        files = self.sets["get_study"]
        # A fresh server keeps this independent of the other scenarios.
        srv = self.start_server()
        self.add_node(srv, "orthanc", self.orthanc.dicom_port)
        pick = [f for f in files if f[3] == files[0][3]][:3]
        job_id = self.start_retrieve("orthanc", "IMAGE", [f[1] for f in pick], method="c-get",
                                     server=srv, study_uid=pick[0][2], series_uid=pick[0][3])
        job = self.wait_job(job_id, server=srv)
        self.assertEqual(job.get("state"), "succeeded", json.dumps(job, indent=1))
        self.assertEqual(job.get("missing"), [], json.dumps(job, indent=1))
        stored = self.archive_instances(pick[0][2], server=srv)
        self.assertEqual(sorted(stored), sorted(f[1] for f in pick), json.dumps(job, indent=1))
        self.assert_identical(pick, server=srv)

    def test_auto_falls_back_to_c_move_when_c_get_is_refused(self):
        files = self.sets["auto_fallback"]
        job_id = self.start_retrieve("orthanc-noget", "STUDY", [files[0][2]], method="auto")
        job = self.wait_job(job_id)
        self.assert_succeeded(job, files, method_used="c-move")
        # Orthanc with AllowGet false aborts the association on the C-GET-RQ: the job says so.
        self.assertRegex(str(job.get("fallback_reason")),
                         r"^C-GET not possible: 127\.0\.0\.1:\d+ aborted the association during the C-GET",
                         json.dumps(job))
        status, node = self.server.api("GET", "/api/nodes/orthanc-noget")
        self.assertEqual(status, 200, node)
        self.assertEqual(node.get("retrieve_method_learned"), "c-move", node)

    def test_auto_uses_what_works_and_remembers_it(self):
        files = self.sets["auto_plain"]
        job_id = self.start_retrieve("orthanc", "STUDY", [files[0][2]], method="auto")
        job = self.wait_job(job_id)
        self.assert_succeeded(job, files)
        self.assertIn(job.get("method_used"), ("c-get", "c-move"), json.dumps(job))
        if job["method_used"] == "c-get":
            self.assertNotIn("fallback_reason", job, json.dumps(job))
        status, node = self.server.api("GET", "/api/nodes/orthanc")
        self.assertEqual(status, 200, node)
        self.assertEqual(node.get("retrieve_method_learned"), job["method_used"], node)

    def test_unknown_move_destination_is_explained(self):
        files = self.sets["unknown_dest"]
        job_id = self.start_retrieve("strict-move", "STUDY", [files[0][2]], method="c-move")
        job = self.wait_job(job_id, timeout=60)
        dump = json.dumps(job, indent=1)
        self.assertEqual(job.get("state"), "failed", dump)
        error = job.get("error") or ""
        sys.stderr.write("[job error: %s] " % error)
        self.assertIn("PACSBRIDGE", error, dump)
        self.assertIn("127.0.0.1", error, dump)
        self.assertIn(str(self.server.dicom_port), error, dump)
        self.assertEqual(sorted(job.get("missing") or []), sorted(f[1] for f in files), dump)
        self.assertEqual(self.archive_instances(files[0][2]), [])

    def test_peer_killed_mid_c_get_then_retry_fetches_the_rest(self):
        files = self.sets["fault"]
        study = files[0][2]
        all_sops = {f[1] for f in files}
        proxy = self.fault_proxy
        proxy.rate = 3_000_000
        try:
            job_id = self.start_retrieve("strict-get", "STUDY", [study], method="c-get")
            self.wait_progress(job_id, 15, timeout=60)
            self.strict.kill()
            job = self.wait_job(job_id, timeout=90)
        finally:
            proxy.rate = None
            if not self.strict.running():
                self.strict.start()
        dump = json.dumps(job, indent=1)
        self.assertIn(job.get("state"), ("partial", "failed"), dump)
        self.assertTrue(job.get("error"), dump)
        # One run, its fault judged transient: only the node's retry.attempts 1 ended it.
        self.assertEqual([(h.get("outcome"), h.get("transient")) for h in job.get("history") or []],
                         [(job["state"], True)], dump)
        # A fresh retrieve is checked against the study's count; its instance list is asked
        # only when the count does not add up, and the PACS is gone: what is missing is counted.
        arrived = self.archive_instances(study)
        self.assertEqual(len(arrived), len(set(arrived)), "an instance is listed twice")
        self.assertGreaterEqual(len(arrived), 15, dump)
        self.assertEqual(job.get("verification"), "counts", dump)
        self.assertEqual(job.get("missing_count"), len(all_sops) - len(arrived), dump)
        self.assertRegex(job.get("note") or "", r"did not list", dump)
        self.assertTrue(set(arrived) <= all_sops, dump)
        missing = all_sops - set(arrived)
        p = job.get("progress") or {}
        self.assertEqual(p.get("completed"), len(arrived), dump)

        # Orthanc is back on the same storage: the retry fetches exactly what is missing.
        status, answer = self.server.api("POST", "/api/jobs/%s/retry" % job_id)
        self.assertEqual(status, 202, answer)
        retry_id = str(answer["job_id"])
        self.assertNotEqual(retry_id, job_id)
        retry = self.wait_job(retry_id, timeout=90)
        rdump = json.dumps(retry, indent=1)
        self.assertEqual(retry.get("state"), "succeeded", rdump)
        self.assertEqual(retry.get("missing"), [], rdump)
        self.assertEqual(retry.get("node"), "strict-get", rdump)
        self.assertEqual(retry.get("level"), "STUDY", rdump)
        self.assertEqual(retry.get("uids"), [study], rdump)
        rp = retry.get("progress") or {}
        self.assertEqual(rp.get("completed"), len(files), rdump)
        self.assertEqual(rp.get("already_present"), len(files) - len(missing),
                         "the retry should find the %d instances that had arrived and fetch "
                         "only the %d missing ones: %s"
                         % (len(files) - len(missing), len(missing), rdump))
        if "arrived" in rp:
            self.assertEqual(rp["arrived"], len(missing), rdump)
        stored = self.archive_instances(study)
        self.assertEqual(len(stored), len(files), "instances listed for the study: %d, "
                         "unique %d, expected %d" % (len(stored), len(set(stored)), len(files)))
        self.assertEqual(set(stored), all_sops)
        self.assert_identical(files[::10])

    def test_cancel_keeps_what_arrived(self):
        files = self.sets["cancel"]
        study = files[0][2]
        job_id = self.start_retrieve("orthanc-slow", "STUDY", [study], method="c-get")
        self.wait_progress(job_id, 3, timeout=60)
        status, job = self.server.api("POST", "/api/jobs/%s/cancel" % job_id)
        self.assertEqual(status, 200, job)
        self.assertEqual(str(job.get("id")), job_id, job)
        t0 = time.monotonic()
        job = self.wait_job(job_id, timeout=30)
        dump = json.dumps(job, indent=1)
        self.assertEqual(job.get("state"), "canceled", dump)
        self.assertLess(time.monotonic() - t0, 15, "cancel took too long: " + dump)
        arrived = self.archive_instances(study)
        self.assertGreaterEqual(len(arrived), 3, dump)
        self.assertLess(len(arrived), len(files), dump)
        self.assertEqual(len(arrived), len(set(arrived)))
        self.assert_identical([f for f in files if f[1] in set(arrived)][:5])
        # Nothing arrives after the job said it is canceled.
        time.sleep(1.0)
        self.assertEqual(sorted(self.archive_instances(study)), sorted(arrived))

    def test_server_killed_mid_job_resumes_it_by_itself(self):
        """SIGKILL mid C-GET: at the next start the same job resumes by itself (nobody calls
        retry), fetches only what is missing and ends succeeded, each instance once and
        byte-identical. (test_jobs_resilient.py checks the wire, SIGTERM, WADO-RS and send.)"""
        files = self.sets["restart"]
        study = files[0][2]
        srv = harness.Server(self.mkdtemp("restart"))
        self._peers.append(srv)
        self.addCleanup(srv.kill)
        srv.start()
        proxy = harness.ThrottledProxy(self.orthanc.dicom_port, rate=1_000_000)
        self.addCleanup(proxy.close)
        self.add_node(srv, "slow", proxy.port)
        job_id = self.start_retrieve("slow", "STUDY", [study], method="c-get", server=srv)
        seen = self.wait_progress(job_id, 2, timeout=60, server=srv)["progress"]["completed"]
        self.assertLess(seen, len(files), "everything arrived before the kill")
        srv.kill()
        proxy.rate = None

        again = harness.Server(srv.workdir, receivers=srv.receivers)
        self._peers.append(again)
        self.addCleanup(again.stop_and_check)
        again.start()
        job = self.wait_job(job_id, timeout=90, server=again)
        dump = json.dumps(job, indent=1)
        self.assertEqual(job.get("state"), "succeeded", dump)
        self.assertEqual(str(job.get("id")), job_id, dump)
        self.assertEqual(job.get("missing"), [], dump)
        self.assertIs(job.get("interrupted"), True, dump)
        self.assertEqual([h.get("outcome") for h in job.get("history") or []],
                         ["interrupted", "succeeded"], dump)
        p = job.get("progress") or {}
        self.assertEqual(p.get("completed"), len(files), dump)
        self.assertGreaterEqual(p.get("already_present") or 0, seen, dump)
        self.assertEqual(p.get("arrived"), len(files) - (p.get("already_present") or 0), dump)
        status, jobs = again.api("GET", "/api/jobs")
        self.assertEqual(status, 200, jobs)
        self.assertEqual([str(j.get("id")) for j in jobs], [job_id],
                         "the resume must not create another job")
        stored = self.archive_instances(study, server=again)
        self.assertEqual(sorted(stored), sorted(f[1] for f in files))
        self.assert_identical(files[::20], server=again)

    def test_cli_retrieve_follow(self):
        files = self.sets["cli"]
        cp = self.server.cli("retrieve", "orthanc", "--study", files[0][2], "--method", "c-get",
                             "--follow", timeout=120)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        # The final summary goes to stdout (progress to stderr): "job N (...): succeeded".
        m = re.search(r"job (\d+)\b.*\bsucceeded", cp.stdout)
        self.assertIsNotNone(m, "stdout should end with the job's final state:\n"
                             + harness.proc_output(cp))
        self.assertTrue(cp.stderr.strip(), "--follow should show progress on stderr:\n"
                        + harness.proc_output(cp))
        stored = self.archive_instances(files[0][2])
        self.assertEqual(sorted(stored), sorted(f[1] for f in files))

        cp = self.server.cli("jobs", "--json")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        jobs = json.loads(cp.stdout)
        self.assertIsInstance(jobs, list, cp.stdout)
        mine = [j for j in jobs if j.get("uids") == [files[0][2]]]
        self.assertEqual(len(mine), 1, cp.stdout[:3000])
        job_id = str(mine[0]["id"])
        self.assertEqual(job_id, m.group(1))
        self.assertEqual(mine[0].get("state"), "succeeded", mine[0])
        cp = self.server.cli("jobs", "show", job_id)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("succeeded", cp.stdout, harness.proc_output(cp))
        cp = self.server.cli("jobs")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn(job_id, cp.stdout, harness.proc_output(cp))

    def test_cli_retrieve_json_and_failure_exit_status(self):
        files = self.sets["unknown_dest"]
        cp = self.server.cli("retrieve", "strict-move", "--study", files[0][2],
                             "--method", "c-move", "--follow", timeout=120)
        self.assertNotEqual(cp.returncode, 0, "a failed job must not exit 0:\n"
                            + harness.proc_output(cp))
        cp = self.server.cli("retrieve", "orthanc", "--study", self.sets["cli_json"][0][2],
                             "--json")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        answer = json.loads(cp.stdout)
        self.assertIn("job_id", answer, cp.stdout)
        job = self.wait_job(str(answer["job_id"]))
        self.assert_succeeded(job, self.sets["cli_json"])

    def test_jobs_list_is_newest_first(self):
        a = self.start_retrieve("orthanc", "STUDY", [self.sets["jobs_a"][0][2]])
        b = self.start_retrieve("orthanc", "STUDY", [self.sets["jobs_b"][0][2]])
        self.wait_job(a)
        self.wait_job(b)
        status, jobs = self.server.api("GET", "/api/jobs")
        self.assertEqual(status, 200, jobs)
        ids = [str(j.get("id")) for j in jobs]
        self.assertIn(a, ids)
        self.assertIn(b, ids)
        self.assertLess(ids.index(b), ids.index(a), ids)
        numeric = [int(i) for i in ids]
        self.assertEqual(numeric, sorted(numeric, reverse=True), ids)

    def test_request_errors_name_the_field(self):
        study = self.sets["get_study"][0][2]
        ok = {"node": "orthanc", "level": "STUDY", "uids": [study], "method": "auto"}

        def post(**changes):
            body = dict(ok)
            body.update(changes)
            body = {k: v for k, v in body.items() if v is not None}
            return self.server.api("POST", "/api/retrieve", body)

        status, body = post(node="no-such-node")
        self.assertJsonError(status, body, "node", 404)
        status, body = post(node="not-queryable")
        self.assertEqual(status, 409, body)
        self.assertIn("error", body)
        for field, value in (("level", "PATIENT"), ("level", "VOLUME"), ("method", "c-find"),
                             ("uids", []), ("uids", ["not a uid"]), ("uids", "1.2.3")):
            status, body = post(**{field: value})
            self.assertJsonError(status, body, None, 400)
            self.assertTrue(str(body.get("field", "")).startswith(field),
                            "%s=%r: field should name %s: %r" % (field, value, field, body))
        status, body = self.server.api("GET", "/api/jobs/987654321")
        self.assertEqual(status, 404, body)
        status, body = self.server.api("POST", "/api/jobs/987654321/cancel")
        self.assertEqual(status, 404, body)


if __name__ == "__main__":
    unittest.main()
