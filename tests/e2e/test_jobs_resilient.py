"""Jobs that survive faults (the job engine of issue 12): a retrieve or send cut by a SIGKILL or
a SIGTERM of our server resumes by itself at the next start (same job, only what is missing),
automatic retries with backoff after transient faults and none after a permanent one, the
history of runs, priorities and reordering with one worker, pause/resume, list filters; an
"auto" retrieve whose C-GET the PACS aborts falls back to C-MOVE in the same run; a send whose
association breaks mid-way reports the break.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_jobs_resilient.py

One Orthanc (DICOMweb plugin loaded, C-GET/C-FIND/C-MOVE allowed for any caller, no
DicomModalities: a C-MOVE to us names an unknown destination; (l) adds PBABORTGET, its own
server's receiver, through Orthanc's REST API for its duration) holds one study per scenario.
Scenarios that kill or restart our server, or need their own configuration, get their own
server on their own data directory; the others share one class server.

Slow transfers go through WireProxy (below): a TCP proxy like harness.ThrottledProxy that can
listen on a chosen port (for a peer that "comes up later") and keeps every byte of each
connection, so the DIMSE commands on the wire can be read back: which C-STORE-RQs went, and
which were answered with success, before and after the fault. That is how "nothing that had
arrived was fetched again" and "only what was not confirmed was sent again" are checked
independently of what the server says about itself. With a gate (harness.ThrottledProxy) it
also stops chosen DIMSE commands on their way to the PACS: an A-ABORT instead of a C-GET-RQ,
a closed connection instead of the 4th C-STORE-RQ.
"""

import datetime
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import unittest
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

TERMINAL = harness.JOB_ENDED

# Pacing of the slow paths (bytes/s). A 2 KB instance is ~2.5 KB on the wire (command, PDV
# headers): DIMSE_RATE gives ~20-25 instances/s, so 300 take ~13 s and a kill after ~20-30 of
# them leaves most of the work pending.
DIMSE_RATE = 60_000
UPLOAD_RATE = 60_000
WEB_RATE = 60_000
PRIO_RATE = 150_000  # each queued job of the priority scenario takes ~0.5 s

# A send resumed after SIGKILL may send again what the peer confirmed during the last ~100 ms
# (confirmations are saved about every 100 ms). At UPLOAD_RATE that is 2-3 instances. Under the
# debug build's sanitizers with another end-to-end suite beside it, a save was once seen ~370 ms
# late (9 resent, clean-clone CI of 2026-12-03); this allows for about five times the cadence.
# Without the saves the resumed run would resend everything confirmed (20-30 here).
RESEND_SLACK = 12

RETRY_FAST = {"attempts": 5, "first_delay_seconds": 1, "max_delay_seconds": 2}


# --------------------------------------------------------------------------- helpers

def dump(job):
    return json.dumps(job, indent=1)


def progress(job):
    return (job or {}).get("progress") or {}


def history(job):
    return (job or {}).get("history") or []


def outcomes(job):
    return [h.get("outcome") for h in history(job)]


def parse_utc(text):
    """An ISO 8601 UTC time of the API ("2026-12-02T16:45:20Z", fractions allowed) as an aware
    datetime; raises ValueError otherwise."""
    if not isinstance(text, str) or not text.endswith("Z"):
        raise ValueError("not an ISO 8601 UTC time: %r" % (text,))
    body = text[:-1]
    fmt = "%Y-%m-%dT%H:%M:%S.%f" if "." in body else "%Y-%m-%dT%H:%M:%S"
    return datetime.datetime.strptime(body, fmt).replace(tzinfo=datetime.timezone.utc)


def WireProxy(upstream_port, **kw):
    """harness.ThrottledProxy keeping the bytes of every connection (see its `record`)."""
    return harness.ThrottledProxy(upstream_port, record=True, **kw)


C_STORE_RQ, C_STORE_RSP = 0x0001, 0x8001
# PS3.7 E.1-1: Command Field (0000,0100) values.
C_GET_RQ, C_MOVE_RQ, C_MOVE_RSP = 0x0010, 0x0021, 0x8021
# PS3.4 Table B.5-1: Study Root Query/Retrieve Information Model - GET.
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"


def dimse_commands(stream):
    """The DIMSE command sets ({(group, element): raw value}) carried by one direction of an
    association: P-DATA-TF PDUs, command fragments (message control header bit 0) joined per
    presentation context until the last one (bit 1). An incomplete PDU at the end (the
    connection was cut) is ignored; other PDU types are skipped."""
    out, partial, pos = [], {}, 0
    while pos + 6 <= len(stream):
        pdu_type, _, length = struct.unpack_from(">BBI", stream, pos)
        if pos + 6 + length > len(stream):
            break
        body = stream[pos + 6:pos + 6 + length]
        pos += 6 + length
        if pdu_type != 0x04:
            continue
        p = 0
        while p + 6 <= len(body):
            item_len, pc_id, header = struct.unpack_from(">IBB", body, p)
            fragment = body[p + 6:p + 4 + item_len]
            p += 4 + item_len
            if not header & 0x01:
                continue  # a dataset fragment
            buf = partial.setdefault(pc_id, bytearray())
            buf += fragment
            if header & 0x02:
                out.append(harness.parse_implicit_command(bytes(buf)))
                partial[pc_id] = bytearray()
    return out


def _u16(fields, element):
    v = fields.get((0x0000, element))
    return struct.unpack("<H", v[:2])[0] if v is not None and len(v) >= 2 else None


def _uid(fields, element):
    v = fields.get((0x0000, element))
    return v.rstrip(b"\0 ").decode("ascii", "replace") if v is not None else None


def store_traffic(sessions, rq_direction):
    """C-STORE traffic of WireProxy sessions whose C-STORE-RQs go in rq_direction ("down" for
    a C-GET: the PACS sends to us; "up" for a send): (SOP Instance UIDs of the requests in
    order, repeats kept; set of SOP Instance UIDs answered with success or a warning)."""
    rsp_direction = "up" if rq_direction == "down" else "down"
    requested, acked = [], set()
    for session in sessions:
        by_message_id = {}
        for f in dimse_commands(session[rq_direction]):
            if _u16(f, 0x0100) == C_STORE_RQ:
                sop = _uid(f, 0x1000)
                requested.append(sop)
                by_message_id[_u16(f, 0x0110)] = sop
        for f in dimse_commands(session[rsp_direction]):
            if _u16(f, 0x0100) == C_STORE_RSP:
                status = _u16(f, 0x0900)
                if status is not None and (status == 0 or status & 0xF000 == 0xB000):
                    sop = by_message_id.get(_u16(f, 0x0120))
                    if sop:
                        acked.add(sop)
    return requested, acked


# --------------------------------------------------------------------------- tests

class ResilientJobsTests(harness.JobHelpers, harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = cls.start_class_orthanc(dicomweb=True, extra={
            "DicomAlwaysAllowGet": True, "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowMove": True})
        data = cls.tmp / "data"

        def gen(name, count, size=2048, **kw):
            return dicomgen.generate(str(data / name), count, size=size,
                                     patient_id="RJ" + name.upper().replace("_", ""), **kw)

        cls.sets = {
            "get300": gen("get300", 300),              # (a) and (d): one per server
            "web": gen("web", 120, size=4096),          # (c)
            "retry": gen("retry", 5),                   # (e)
            "cut": gen("cut", 60, size=4096),           # (f): one series
            "move": gen("move", 3),                     # (g)
            "quick": gen("quick", 3),                   # (g): the later job (twice)
            "wrong_ae": gen("wrong_ae", 2),             # (g): never fetched
            "block": gen("block", 40, size=4096),       # (h)
            "prio_high": gen("prio_high", 8, size=8192),
            "prio_normal1": gen("prio_normal1", 8, size=8192),
            "prio_normal2": gen("prio_normal2", 8, size=8192),
            "prio_low": gen("prio_low", 8, size=8192),
            "prio_paused": gen("prio_paused", 3),
            "pause": gen("pause", 80),                  # (i)
            "filt_a": gen("filt_a", 2),                 # (j)
            "filt_b": gen("filt_b", 2),
            "abort_get": gen("abort_get", 8, series_per_study=2),  # (l)
        }
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet,
                              [f[0] for v in cls.sets.values() for f in v], timeout=600)
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))
        # Never in Orthanc: sent there from our archive.
        cls.sets["send300"] = gen("send300", 300)   # (b)
        cls.sets["filt_send"] = gen("filt_send", 2)  # (j)
        cls.sets["send_break"] = gen("send_break", 40)  # (m): two associations of 20
        # Shared by (e), (f), (g), (i): nothing there kills or restarts it.
        cls.server = cls.start_class_server()

    # ------------------------------------------------------------------ servers and peers

    def new_server(self, name, **kw):
        """A server of this test that may be killed (cleanup: SIGKILL if still running)."""
        harness.require_binary(self)
        srv = harness.Server(self.mkdtemp(name), **kw)
        self._peers.append(srv)
        self.addCleanup(srv.kill)
        srv.start()
        return srv

    def restarted(self, srv):
        """A new server process on srv's data directory and receivers (stopped with exit 0
        checked after the test)."""
        again = harness.Server(srv.workdir, receivers=srv.receivers)
        self._peers.append(again)
        self.addCleanup(again.stop_and_check)
        again.start()
        return again

    def wire_proxy(self, upstream_port, **kw):
        proxy = WireProxy(upstream_port, **kw)
        self.addCleanup(proxy.close)
        return proxy

    def add_node(self, srv, body):
        status, answer = srv.api("POST", "/api/nodes", body)
        self.assertEqual(status, 201, "POST /api/nodes %r -> %s %r" % (body, status, answer))
        return answer

    def add_dimse_node(self, srv, name, port, **extra):
        body = {"name": name, "ae_title": self.orthanc.aet, "host": "127.0.0.1", "port": port,
                "queryable": True, "storable": True, "timeout_seconds": 20}
        body.update(extra)
        return self.add_node(srv, body)

    def load_archive(self, srv, files):
        cp = harness.storescu(srv.dicom_port, srv.dicom_ae, [f[0] for f in files])
        self.assertEqual(cp.returncode, 0, "loading our archive: " + harness.proc_output(cp))
        study = files[0][2]
        ok = harness.wait_until(
            lambda: harness.studies_by_uid(srv).get(study, {}).get("instance_count")
            == len(files), timeout=30, interval=0.2)
        self.assertTrue(ok, "our archive does not list the %d loaded instances: %r"
                        % (len(files), harness.studies_by_uid(srv).get(study)))

    # ------------------------------------------------------------------ jobs

    def start_job(self, srv, kind, body):
        status, answer = srv.api("POST", "/api/%s" % kind, body)
        self.assertEqual(status, 202, "POST /api/%s %r -> %s %r" % (kind, body, status, answer))
        self.assertIsInstance(answer, dict, answer)
        self.assertIn("job_id", answer, answer)
        return str(answer["job_id"])

    def retrieve(self, srv, node, study, method=None, **extra):
        body = {"node": node, "level": "STUDY", "uids": [study]}
        if method:
            body["method"] = method
        body.update(extra)
        return self.start_job(srv, "retrieve", body)

    def wait_state(self, srv, job_id, predicate, what, timeout=30, interval=0.05):
        job = {}

        def check():
            nonlocal job
            job = self.get_job(job_id, server=srv)
            return predicate(job)

        if not harness.wait_until(check, timeout=timeout, interval=interval):
            self.fail("job %s: not %s after %ss: %s" % (job_id, what, timeout, dump(job)))
        return job

    def archive_sops(self, srv, study):
        return harness.archive_sops(srv, study)

    def orthanc_sops(self, study):
        """SOP Instance UIDs Orthanc holds for a study (its REST API; one per instance)."""
        status, body = self.orthanc.rest_json("POST", "/tools/find", {
            "Level": "Instance", "Query": {"StudyInstanceUID": study}, "Expand": True})
        self.assertEqual(status, 200, "Orthanc /tools/find -> %s %r" % (status, body))
        return [i["MainDicomTags"]["SOPInstanceUID"] for i in body]

    def job_ids(self, srv, query=""):
        status, jobs = srv.api("GET", "/api/jobs" + query)
        self.assertEqual(status, 200, "GET /api/jobs%s -> %s %r" % (query, status, jobs))
        self.assertIsInstance(jobs, list, "GET /api/jobs%s -> %r" % (query, jobs))
        return sorted(str(j.get("id")) for j in jobs)

    # ------------------------------------------------------------------ shared assertions

    def assert_history_shape(self, job):
        """history: one entry per run, attempts numbered from 1, `attempts` = runs so far."""
        d = dump(job)
        h = history(job)
        self.assertIsInstance(job.get("history"), list, "no history list: " + d)
        self.assertEqual([e.get("attempt") for e in h], list(range(1, len(h) + 1)), d)
        self.assertEqual(job.get("attempts"), len(h), "attempts should count the runs: " + d)
        for e in h:
            for key in ("started_at", "ended_at"):
                parse_utc(e.get(key))  # raises on a missing or malformed time
            self.assertIn(e.get("outcome"), ("succeeded", "partial", "failed", "canceled",
                                             "interrupted", "paused"), d)
            self.assertIsInstance(e.get("transient"), bool, d)
            self.assertTrue(e.get("error") is None or isinstance(e.get("error"), str), d)

    def assert_history_counts(self, job):
        """Every history entry has "completed": n (a number, also for a run that was cut or
        never connected). Checked last in each scenario, so that the scenario's other
        findings show first."""
        bad = [e for e in history(job) if not isinstance(e.get("completed"), int)]
        self.assertEqual(bad, [], "history entries without a number in \"completed\": "
                         + dump(job))

    def assert_resumed_retrieve(self, srv, job, job_id, files, seen):
        """The job that was cut after `seen` instances had arrived was resumed by the server
        (no new job) and succeeded with each instance once, fetching only what was missing."""
        d = dump(job)
        n = len(files)
        self.assertEqual(job.get("state"), "succeeded", d)
        self.assertEqual(str(job.get("id")), job_id, d)
        self.assertIsNone(job.get("error"), d)
        self.assertIs(job.get("interrupted"), True,
                      "interrupted stays true once a run was cut: " + d)
        self.assert_history_shape(job)
        self.assertEqual(outcomes(job), ["interrupted", "succeeded"], d)
        self.assertIsNone(history(job)[-1].get("error"), d)
        p = progress(job)
        self.assertEqual(p.get("total"), n, d)
        self.assertEqual(p.get("completed"), n, d)
        self.assertEqual(p.get("failed"), 0, d)
        already = p.get("already_present")
        self.assertIsInstance(already, int, d)
        self.assertGreaterEqual(already, seen,
                                "%d instances had arrived before the cut; the resumed run "
                                "should have found them in the archive: %s" % (seen, d))
        self.assertEqual(p.get("arrived"), n - already,
                         "the resumed run should have brought exactly what was missing: " + d)
        stored = self.archive_sops(srv, files[0][2])
        self.assertEqual(len(stored), n, "instances listed for the study: %d (unique %d), "
                         "expected %d" % (len(stored), len(set(stored)), n))
        self.assertEqual(sorted(stored), sorted(f[1] for f in files))
        self.assertEqual(self.job_ids(srv), [job_id],
                         "a resume must not create a new job (the server's only job)")

    def assert_c_get_wire(self, proxy, first, job):
        """Sessions [0:first) are the cut run, the rest the resumed one: the PACS was not asked
        again for an instance our server had confirmed (C-STORE-RSP success) before the cut,
        nothing came twice, and what came is what the job counts as arrived."""
        _, confirmed = store_traffic(proxy.sessions(0, first), "down")
        resumed, _ = store_traffic(proxy.sessions(first), "down")
        self.assertTrue(confirmed, "no confirmed C-STORE sub-operation read on the wire before "
                        "the cut (wire parser or proxy broken?)")
        twice = sorted(s for s, c in Counter(resumed).items() if c > 1)
        self.assertEqual(twice, [], "the resumed run received these instances twice")
        again = sorted(set(resumed) & confirmed)
        self.assertEqual(again, [], "%d instances our server had confirmed before the cut were "
                         "fetched again by the resumed run (first: %s)"
                         % (len(again), again[:3]))
        self.assertEqual(len(resumed), progress(job).get("arrived"),
                         "C-STORE sub-operations of the resumed run vs progress.arrived: "
                         + dump(job))

    # ------------------------------------------------------------------ (a) SIGKILL, C-GET

    def test_a_sigkill_mid_c_get_resumes_the_same_job(self):
        self.c_get_cut_then_resumed("a-kill", "the kill", lambda srv: srv.kill())

    def c_get_cut_then_resumed(self, tag, what, stop):
        """A slow C-GET of 300 instances, stopped by stop(server) with work provably pending,
        then a new server on the same data: the same job must finish by itself, fetching only
        what had not arrived."""
        files = self.sets["get300"]
        study, n = files[0][2], len(files)
        srv = self.new_server(tag)
        proxy = self.wire_proxy(self.orthanc.dicom_port, rate=DIMSE_RATE)
        self.add_dimse_node(srv, "slow-get", proxy.port)
        job_id = self.retrieve(srv, "slow-get", study, method="c-get")
        seen = progress(self.wait_progress(job_id, 20, server=srv))["completed"]
        self.assertGreater(seen, 0)
        self.assertLess(seen, n, "everything arrived before %s: the proxy is too fast" % what)
        stop(srv)
        first = proxy.session_count()
        proxy.rate = None
        again = self.restarted(srv)
        # Nobody calls retry: the same job must finish by itself.
        job = self.wait_job(job_id, timeout=120, server=again)
        self.assert_resumed_retrieve(again, job, job_id, files, seen)
        self.assert_c_get_wire(proxy, first, job)
        self.assert_history_counts(job)

    # ------------------------------------------------------------------ (b) SIGKILL, send

    def test_b_sigkill_mid_send_resumes_and_sends_only_the_unconfirmed(self):
        files = self.sets["send300"]
        study, n = files[0][2], len(files)
        all_sops = {f[1] for f in files}
        srv = self.new_server("b-kill")
        self.load_archive(srv, files)
        proxy = self.wire_proxy(self.orthanc.dicom_port, rate=UPLOAD_RATE, throttle="upload")
        self.add_dimse_node(srv, "slow-orthanc", proxy.port)
        job_id = self.start_job(srv, "send", {"node": "slow-orthanc", "level": "STUDY",
                                              "uids": [study]})
        seen = progress(self.wait_progress(job_id, 30, server=srv))["completed"]
        self.assertGreater(seen, 0)
        self.assertLess(seen, n, "everything was sent before the kill: the proxy is too fast")
        srv.kill()
        first = proxy.session_count()
        proxy.rate = None
        again = self.restarted(srv)
        job = self.wait_job(job_id, timeout=120, server=again)
        d = dump(job)
        self.assertEqual(job.get("state"), "succeeded", d)
        self.assertEqual(str(job.get("id")), job_id, d)
        self.assertIsNone(job.get("error"), d)
        self.assertIs(job.get("interrupted"), True, d)
        self.assert_history_shape(job)
        self.assertEqual(outcomes(job), ["interrupted", "succeeded"], d)
        p = progress(job)
        self.assertEqual(p.get("total"), n, d)
        self.assertEqual(p.get("completed"), n,
                         "completed should include what the cut run had confirmed: " + d)
        self.assertEqual(p.get("failed"), 0, d)
        self.assertEqual(self.job_ids(again), [job_id], "a resume must not create a new job")
        held = self.orthanc_sops(study)
        self.assertEqual(len(held), n, "Orthanc holds %d instances of the study, expected %d"
                         % (len(held), n))
        self.assertEqual(set(held), all_sops)

        # On the wire: what the resumed run sent vs what Orthanc had confirmed before the kill.
        _, acked_before = store_traffic(proxy.sessions(0, first), "up")
        resumed, _ = store_traffic(proxy.sessions(first), "up")
        self.assertGreaterEqual(len(acked_before), seen,
                                "our server reported %d confirmations, the wire shows Orthanc "
                                "confirming only %d (wire parser broken?)"
                                % (seen, len(acked_before)))
        twice = sorted(s for s, c in Counter(resumed).items() if c > 1)
        self.assertEqual(twice, [], "the resumed run sent these instances twice")
        self.assertEqual(sorted(all_sops - acked_before - set(resumed)), [],
                         "never confirmed before the kill and not sent by the resumed run")
        resent = set(resumed) & acked_before
        self.assertLessEqual(len(resent), RESEND_SLACK,
                             "the resumed run sent %d instances again that Orthanc had "
                             "confirmed before the kill (%d confirmed then; only those of the "
                             "last ~100 ms may go twice)" % (len(resent), len(acked_before)))
        self.assertLessEqual(len(resumed), n - seen + RESEND_SLACK,
                             "the resumed run sent %d instances; %d of %d had been confirmed "
                             "before the kill" % (len(resumed), seen, n))
        self.assert_history_counts(job)

    # ------------------------------------------------------------------ (c) SIGKILL, WADO-RS

    def test_c_sigkill_mid_wado_rs_resumes_the_same_job(self):
        files = self.sets["web"]
        study, n = files[0][2], len(files)
        srv = self.new_server("c-kill")
        proxy = self.wire_proxy(self.orthanc.http_port, rate=WEB_RATE)
        self.add_node(srv, {"name": "slow-web", "type": "dicomweb",
                            "url": "http://127.0.0.1:%d/dicom-web/" % proxy.port,
                            "queryable": True, "storable": True})
        job_id = self.retrieve(srv, "slow-web", study)
        seen = progress(self.wait_progress(job_id, 10, server=srv))["completed"]
        self.assertGreater(seen, 0)
        self.assertLess(seen, n, "everything arrived before the kill: the proxy is too fast")
        srv.kill()
        proxy.rate = None
        again = self.restarted(srv)
        job = self.wait_job(job_id, timeout=120, server=again)
        self.assert_resumed_retrieve(again, job, job_id, files, seen)
        self.assert_history_counts(job)

    # ------------------------------------------------------------------ (d) SIGTERM, C-GET

    def test_d_sigterm_mid_c_get_exits_promptly_and_the_job_resumes(self):
        def sigterm(srv):
            t0 = time.monotonic()
            srv.stop_and_check()  # SIGTERM; exit status 0 asserted
            elapsed = time.monotonic() - t0
            self.assertLess(elapsed, 15, "SIGTERM with a running retrieve took %.1fs" % elapsed)
        self.c_get_cut_then_resumed("d-term", "the stop", sigterm)

    # ------------------------------------------------------------------ (e) retries

    def test_e_refused_connection_is_retried_with_backoff_until_the_peer_is_up(self):
        files = self.sets["retry"]
        study, n = files[0][2], len(files)
        srv = self.server
        port = harness.free_receiver_port()  # nothing listens there yet
        self.add_dimse_node(srv, "retry-e", port, retry=RETRY_FAST)
        status, node = srv.api("GET", "/api/nodes/retry-e")
        self.assertEqual(status, 200, node)
        self.assertEqual(node.get("retry"), RETRY_FAST, "GET should show the node's retry: %r"
                         % (node,))
        job_id = self.retrieve(srv, "retry-e", study, method="c-get")
        waiting = []  # snapshots taken while the job waited for its next attempt

        def two_failed_runs():
            job = self.get_job(job_id, server=srv)
            if job.get("state") == "waiting":
                waiting.append(job)
            if job.get("state") in TERMINAL or len(history(job)) >= 2:
                return job
            return None

        job = harness.wait_until(two_failed_runs, timeout=30, interval=0.05)
        self.assertTrue(job, "no two runs within 30 s: %s" % dump(self.get_job(job_id, server=srv)))
        # The peer comes up (the third attempt is due 1-2 s after the second).
        self.wire_proxy(self.orthanc.dicom_port, port=port)
        d = dump(job)
        self.assertNotIn(job.get("state"), TERMINAL, "the job ended instead of retrying: " + d)
        self.assertEqual(len(history(job)), 2, "a third run came before we could look: " + d)
        for e in history(job):
            self.assertEqual(e.get("outcome"), "failed", d)
            self.assertIs(e.get("transient"), True, "connection refused is transient: " + d)
            self.assertTrue(e.get("error"), d)
        self.assertTrue(waiting, "never seen `waiting` between the runs")
        for w in waiting:
            wd = dump(w)
            self.assertTrue(w.get("next_attempt"), "a waiting job shows next_attempt: " + wd)
            self.assertFalse(w.get("paused"), wd)
            k = len(history(w))  # the k-th retry is due
            self.assertGreaterEqual(k, 1, wd)
            delay = min(RETRY_FAST["max_delay_seconds"],
                        RETRY_FAST["first_delay_seconds"] * 2 ** (k - 1))
            gap = (parse_utc(w["next_attempt"])
                   - parse_utc(history(w)[-1]["ended_at"])).total_seconds()
            # delay x [0.5, 1.0] jitter; both times may be truncated to whole seconds.
            self.assertGreaterEqual(gap, 0.5 * delay - 1.01, wd)
            self.assertLessEqual(gap, delay + 1.01, "retry %d should come %s-%s s after the "
                                 "failed run: %s" % (k, 0.5 * delay, delay, wd))

        job = self.wait_job(job_id, timeout=60, server=srv)
        d = dump(job)
        self.assertEqual(job.get("state"), "succeeded", d)
        self.assertEqual(str(job.get("id")), job_id, d)
        self.assert_history_shape(job)
        self.assertEqual(outcomes(job), ["failed", "failed", "succeeded"], d)
        self.assertEqual([e.get("transient") for e in history(job)[:2]], [True, True], d)
        self.assertFalse(job.get("next_attempt"), "a finished job has no next attempt: " + d)
        self.assertEqual(progress(job).get("completed"), n, d)
        self.assertEqual(sorted(self.archive_sops(srv, study)), sorted(f[1] for f in files))
        status, jobs = srv.api("GET", "/api/jobs")
        self.assertEqual(status, 200, jobs)
        self.assertEqual([str(j["id"]) for j in jobs if j.get("node") == "retry-e"], [job_id],
                         "automatic retries must not create new jobs")
        self.assert_history_counts(job)

    # ------------------------------------------------------------------ (f) partial, retry

    def test_f_cut_mid_c_get_then_the_automatic_retry_fetches_the_rest(self):
        files = self.sets["cut"]
        study, n = files[0][2], len(files)
        srv = self.server
        port = harness.free_receiver_port()
        proxy = WireProxy(self.orthanc.dicom_port, port=port, rate=DIMSE_RATE)
        self.addCleanup(proxy.close)
        self.add_dimse_node(srv, "cut-f", port, retry=RETRY_FAST)
        job_id = self.retrieve(srv, "cut-f", study, method="c-get")
        seen = progress(self.wait_progress(job_id, 5, key="arrived", server=srv))["arrived"]
        self.assertLess(seen, n, "everything arrived before the cut: the proxy is too fast")
        proxy.close()  # the association is cut mid C-GET...
        # ...and the retry reaches Orthanc at full speed (a new listener on the same port).
        direct = self.wire_proxy(self.orthanc.dicom_port, port=port)
        job = self.wait_job(job_id, timeout=90, server=srv)
        d = dump(job)
        self.assertEqual(job.get("state"), "succeeded", d)
        self.assertEqual(str(job.get("id")), job_id, d)
        self.assert_history_shape(job)
        self.assertEqual(len(history(job)), 2, "one cut run, then one retry: " + d)
        self.assertIn(history(job)[0].get("outcome"), ("partial", "failed"), d)
        self.assertIs(history(job)[0].get("transient"), True,
                      "an association cut mid-way is transient: " + d)
        self.assertTrue(history(job)[0].get("error"), d)
        self.assertEqual(history(job)[1].get("outcome"), "succeeded", d)
        p = progress(job)
        self.assertEqual(p.get("total"), n, d)
        self.assertEqual(p.get("completed"), n, d)
        already = p.get("already_present")
        self.assertIsInstance(already, int, d)
        self.assertGreaterEqual(already, seen, "%d had arrived before the cut: %s" % (seen, d))
        self.assertEqual(p.get("arrived"), n - already, d)
        stored = self.archive_sops(srv, study)
        self.assertEqual(sorted(stored), sorted(f[1] for f in files),
                         "each instance once in the archive")
        # On the wire: the retry did not ask for what our server had confirmed.
        _, confirmed = store_traffic(proxy.sessions(), "down")
        resumed, _ = store_traffic(direct.sessions(), "down")
        self.assertTrue(confirmed, "nothing confirmed on the wire before the cut?")
        self.assertEqual(sorted(set(resumed) & confirmed), [],
                         "the retry fetched instances that had arrived before the cut")
        self.assertEqual(len(resumed), p.get("arrived"), d)
        self.assert_history_counts(job)

    # ------------------------------------------------------------------ (g) permanent error

    def test_g_unknown_move_destination_is_not_retried(self):
        self.add_dimse_node(self.server, "move-g", self.orthanc.dicom_port,
                            retrieve_method="c-move", retry=RETRY_FAST)
        job = self.assert_not_retried("move-g", self.sets["move"], "c-move")
        self.assertIn("PACSBRIDGE", job.get("error") or "",
                      "the error should name the move destination: " + dump(job))

    def test_g_called_ae_title_not_recognised_is_not_retried(self):
        """Orthanc (DicomCheckCalledAet) rejects an association to another AE title: a
        permanent rejection (called AE title not recognised)."""
        self.add_dimse_node(self.server, "wrong-ae-g", self.orthanc.dicom_port,
                            ae_title="NOTORTHANC", retry=RETRY_FAST)
        self.add_dimse_node(self.server, "right-ae-g", self.orthanc.dicom_port)
        job = self.assert_not_retried("wrong-ae-g", self.sets["wrong_ae"], "c-get",
                                      later_node="right-ae-g")
        self.assertIn("NOTORTHANC", job.get("error") or "", dump(job))

    def assert_not_retried(self, node, files, method, later_node=None):
        """A retrieve from `node` (retry: 5 attempts, first delay 1 s) that meets a permanent
        fault ends `failed` after one run and is not tried again: checked after a later job
        (on later_node, default the same node) has run and more than 3 s have passed (a retry
        would be due within 0.5-1 s). Returns the job."""
        srv = self.server
        study = files[0][2]
        job_id = self.retrieve(srv, node, study, method=method)
        states = []

        def ended():
            job = self.get_job(job_id, server=srv)
            states.append(job.get("state"))
            return job if job.get("state") in TERMINAL else None

        job = harness.wait_until(ended, timeout=90, interval=0.05)
        t_end = time.monotonic()
        self.assertTrue(job, "not ended after 90 s: %s" % dump(self.get_job(job_id, server=srv)))
        d = dump(job)
        self.assertEqual(job.get("state"), "failed", d)
        self.assertNotIn("waiting", states, "a permanent fault must not wait for a retry: " + d)
        self.assertTrue(job.get("error"), d)
        self.assertFalse(job.get("next_attempt"), d)
        self.assertEqual(job.get("attempts"), 1, d)
        self.assert_history_shape(job)
        self.assertEqual(outcomes(job), ["failed"], d)
        self.assertIs(history(job)[0].get("transient"), False,
                      "the fault is permanent, not transient: " + d)
        self.assertEqual(self.archive_sops(srv, study), [])

        # A later job runs and ends...
        quick = self.sets["quick"]
        later = self.wait_job(self.retrieve(srv, later_node or node, quick[0][2],
                                                 method="c-get"), timeout=60, server=srv)
        self.assertEqual(later.get("state"), "succeeded", dump(later))

        # ...and more than 3 s pass after the failure: watch for any change of the failed job
        # until then.
        def retried():
            j = self.get_job(job_id, server=srv)
            if (j.get("state") != "failed" or len(history(j)) != 1 or j.get("attempts") != 1
                    or j.get("next_attempt")):
                return j
            return None

        changed = harness.wait_until(retried, timeout=max(0.0, 3.5 - (time.monotonic() - t_end)),
                                     interval=0.1)
        self.assertIsNone(changed, "the failed job was tried again: %s" % dump(changed))
        self.assertGreater(time.monotonic() - t_end, 3.0)
        self.assert_history_counts(job)
        return job

    # ------------------------------------------------------------------ (h) priorities

    def test_h_priorities_and_reorder_with_one_worker(self):
        srv = self.start_server(extra_toml="[jobs]\nworkers = 1\n")
        block_proxy = self.wire_proxy(self.orthanc.dicom_port, rate=30_000)
        prio_proxy = self.wire_proxy(self.orthanc.dicom_port, rate=PRIO_RATE)
        self.add_dimse_node(srv, "block", block_proxy.port)
        self.add_dimse_node(srv, "prio", prio_proxy.port)
        self.add_dimse_node(srv, "direct", self.orthanc.dicom_port)

        status, body = srv.api("POST", "/api/retrieve", {
            "node": "prio", "level": "STUDY", "uids": [self.sets["prio_low"][0][2]],
            "method": "c-get", "priority": "urgent"})
        self.assertJsonError(status, body, "priority")

        blocker = self.retrieve(srv, "block", self.sets["block"][0][2], method="c-get")
        job = self.wait_progress(blocker, 1, server=srv)
        self.assertEqual(job.get("priority"), "normal", "the default priority: " + dump(job))

        ids = {}
        for name, prio in (("low", "low"), ("normal1", "normal"), ("high", "high"),
                           ("normal2", "normal")):
            body = {"node": "prio", "level": "STUDY", "method": "c-get", "priority": prio,
                    "uids": [self.sets["prio_" + name][0][2]]}
            status, answer = srv.api("POST", "/api/retrieve", body)
            self.assertEqual(status, 202, "POST /api/retrieve %r -> %s %r"
                             % (body, status, answer))
            self.assertEqual(answer.get("priority"), prio, dump(answer))
            ids[name] = str(answer["job_id"])
        paused = self.retrieve(srv, "direct", self.sets["prio_paused"][0][2], method="c-get",
                               priority="high")
        for name, job_id in list(ids.items()) + [("paused", paused)]:
            job = self.get_job(job_id, server=srv)
            self.assertEqual(job.get("state"), "queued",
                             "%s should wait behind the running job (1 worker): %s"
                             % (name, dump(job)))

        status, answer = srv.api("POST", "/api/jobs/%s/reorder" % ids["normal2"],
                                 {"position": "first"})
        self.assertEqual(status, 200, "reorder -> %s %r" % (status, answer))
        self.assertEqual(str(answer.get("id")), ids["normal2"], answer)
        status, answer = srv.api("POST", "/api/jobs/%s/reorder" % blocker,
                                 {"position": "first"})
        self.assertEqual(status, 409, "reorder of a running job -> %s %r" % (status, answer))

        # A queued job paused: waiting + paused at once, and it does not run while paused
        # (although it is high priority).
        status, answer = srv.api("POST", "/api/jobs/%s/pause" % paused)
        self.assertEqual(status, 200, "pause -> %s %r" % (status, answer))
        self.assertEqual((answer.get("state"), answer.get("paused")), ("waiting", True),
                         dump(answer))

        block_proxy.rate = None
        expected = [ids["high"], ids["normal2"], ids["normal1"], ids["low"]]
        names = {v: k for k, v in ids.items()}
        order, problems = [], []

        def all_four_ended():
            status, jobs = srv.api("GET", "/api/jobs")
            self.assertEqual(status, 200, jobs)
            by_id = {str(j["id"]): j for j in jobs}
            started = [i for i in expected if by_id[i]["state"] != "queued"]
            for i in started:
                if i not in order:
                    order.append(i)
            if started != expected[:len(started)]:
                problems.append("started %s while %s still queued"
                                % ([names[i] for i in started],
                                   [names[i] for i in expected if i not in started]))
            running = [str(j["id"]) for j in jobs if j.get("state") == "running"]
            if len(running) > 1:
                problems.append("%d jobs running at once with 1 worker: %s"
                                % (len(running), running))
            if by_id[paused].get("state") != "waiting":
                problems.append("the paused job is %s" % by_id[paused].get("state"))
            return all(by_id[i]["state"] in TERMINAL for i in expected)

        done = harness.wait_until(all_four_ended, timeout=120, interval=0.03)
        self.assertTrue(done, "the four queued jobs did not end: %s"
                        % [self.get_job(i, server=srv).get("state") for i in expected])
        self.assertEqual(problems[:5], [])
        self.assertEqual([names[i] for i in order], ["high", "normal2", "normal1", "low"],
                         "priority first (high, normal, low), then queue order, with normal2 "
                         "moved first among the normals")
        for job_id in expected + [blocker]:
            job = self.get_job(job_id, server=srv)
            self.assertEqual(job.get("state"), "succeeded", dump(job))

        # The worker is idle now: a paused job would start at once if it were runnable.
        ran = harness.wait_until(
            lambda: self.get_job(paused, server=srv).get("state") != "waiting", timeout=1.5)
        self.assertFalse(ran, "the paused job left `waiting` by itself: %s"
                         % dump(self.get_job(paused, server=srv)))
        status, answer = srv.api("POST", "/api/jobs/%s/resume" % paused)
        self.assertEqual(status, 200, "resume -> %s %r" % (status, answer))
        job = self.wait_job(paused, timeout=60, server=srv)
        self.assertEqual(job.get("state"), "succeeded", dump(job))
        self.assertFalse(job.get("paused"), dump(job))

    # ------------------------------------------------------------------ (i) pause / resume

    def test_i_pause_a_running_retrieve_then_resume_it(self):
        files = self.sets["pause"]
        study, n = files[0][2], len(files)
        srv = self.server
        proxy = self.wire_proxy(self.orthanc.dicom_port, rate=DIMSE_RATE // 2)
        self.add_dimse_node(srv, "pause-i", proxy.port)
        job_id = self.retrieve(srv, "pause-i", study, method="c-get")
        self.wait_progress(job_id, 5, server=srv)
        status, answer = srv.api("POST", "/api/jobs/%s/pause" % job_id)
        self.assertEqual(status, 200, "pause -> %s %r" % (status, answer))
        self.assertEqual(str(answer.get("id")), job_id, answer)
        self.assertIs(answer.get("pause_requested"), True, dump(answer))
        job = self.wait_state(srv, job_id, lambda j: j.get("state") == "waiting"
                              and j.get("paused") is True, "waiting + paused", timeout=20)
        d = dump(job)
        self.assertEqual(outcomes(job), ["paused"], d)
        self.assertFalse(job.get("next_attempt"), "a paused job has no next attempt: " + d)

        # Caught up: the PACS no longer sends (its connections closed, or not a byte for 1 s
        # although the proxy lets ~12 instances a second through while it sends).
        quiet = harness.wait_until(
            lambda: proxy.open_sessions() == 0 or proxy.idle_for() > 1.0, timeout=15)
        self.assertTrue(quiet, "the PACS still sends while the job says it is paused")
        held = len(self.archive_sops(srv, study))
        job = self.get_job(job_id, server=srv)
        self.assertEqual(progress(job).get("completed"), held,
                         "progress and archive disagree while paused: " + dump(job))
        self.assertGreater(held, 0)
        self.assertLess(held, n, "everything arrived before the pause took effect")

        def moved():
            j = self.get_job(job_id, server=srv)
            if j.get("state") != "waiting" or not j.get("paused"):
                return "state %s paused %s" % (j.get("state"), j.get("paused"))
            count = len(self.archive_sops(srv, study))
            return "%d instances in the archive, %d at the pause" % (count, held) \
                if count != held else None

        change = harness.wait_until(moved, timeout=2.0, interval=0.2)
        self.assertIsNone(change, "while paused: %s" % change)

        proxy.rate = None
        status, answer = srv.api("POST", "/api/jobs/%s/resume" % job_id)
        self.assertEqual(status, 200, "resume -> %s %r" % (status, answer))
        self.assertIn(answer.get("state"), ("queued", "running"), dump(answer))
        self.assertFalse(answer.get("paused"), dump(answer))
        job = self.wait_job(job_id, timeout=90, server=srv)
        d = dump(job)
        self.assertEqual(job.get("state"), "succeeded", d)
        self.assertEqual(str(job.get("id")), job_id, d)
        self.assert_history_shape(job)
        self.assertEqual(outcomes(job), ["paused", "succeeded"], d)
        p = progress(job)
        self.assertEqual(p.get("completed"), n, d)
        self.assertGreaterEqual(p.get("already_present") or 0, held,
                                "the resumed run should go on where it was: " + d)
        self.assertEqual(p.get("arrived"), n - (p.get("already_present") or 0), d)
        stored = self.archive_sops(srv, study)
        self.assertEqual(sorted(stored), sorted(f[1] for f in files),
                         "each instance once in the archive")
        status, answer = srv.api("POST", "/api/jobs/%s/pause" % job_id)
        self.assertEqual(status, 409, "pause of a finished job -> %s %r" % (status, answer))
        status, answer = srv.api("POST", "/api/jobs/%s/resume" % job_id)
        self.assertEqual(status, 409, "resume of a job not paused -> %s %r" % (status, answer))
        self.assert_history_counts(job)

    # ------------------------------------------------------------------ (j) filters

    def test_j_list_filters(self):
        srv = self.start_server()
        self.load_archive(srv, self.sets["filt_send"])
        self.add_dimse_node(srv, "fj-a", self.orthanc.dicom_port)
        self.add_dimse_node(srv, "fj-b", self.orthanc.dicom_port)
        self.add_dimse_node(srv, "fj-dead", harness.free_receiver_port(),
                            retry={"attempts": 1, "first_delay_seconds": 1,
                                   "max_delay_seconds": 2})
        r1 = self.retrieve(srv, "fj-a", self.sets["filt_a"][0][2], method="c-get")
        sd = self.start_job(srv, "send", {"node": "fj-a", "level": "STUDY",
                                          "uids": [self.sets["filt_send"][0][2]]})
        r2 = self.retrieve(srv, "fj-b", self.sets["filt_b"][0][2], method="c-get")
        f1 = self.retrieve(srv, "fj-dead", self.sets["filt_a"][0][2], method="c-get")
        for job_id, state in ((r1, "succeeded"), (sd, "succeeded"), (r2, "succeeded"),
                              (f1, "failed")):
            job = self.wait_job(job_id, timeout=60, server=srv)
            self.assertEqual(job.get("state"), state, dump(job))
        everything = sorted([r1, sd, r2, f1])
        self.assertEqual(self.job_ids(srv), everything)

        today = datetime.datetime.now(datetime.timezone.utc).date()
        tomorrow = (today + datetime.timedelta(days=1)).isoformat()
        yesterday = (today - datetime.timedelta(days=1)).isoformat()
        for query, want in (
                ("?type=send", [sd]),
                ("?type=retrieve", [r1, r2, f1]),
                ("?node=fj-a", [r1, sd]),
                ("?node=fj-dead", [f1]),
                ("?state=succeeded", [r1, sd, r2]),
                ("?state=failed", [f1]),
                ("?state=waiting", []),
                ("?node=fj-a&type=retrieve&state=succeeded", [r1]),
                ("?since=" + tomorrow, []),
                ("?since=%sT00:00:00Z" % tomorrow, []),
                ("?since=" + yesterday, everything),
                ("?until=" + yesterday, []),
                ("?until=" + tomorrow, everything),
                ("?since=%s&until=%s" % (yesterday, tomorrow), everything)):
            self.assertEqual(self.job_ids(srv, query), sorted(want), "GET /api/jobs" + query)
        for param, value in (("since", "bogus"), ("until", "bogus"), ("since", "12/01/2026"),
                             ("until", "2026-13-01")):
            status, body = srv.api("GET", "/api/jobs?%s=%s" % (param, value))
            self.assertJsonError(status, body, param)

    def test_k_get_job_waits_for_its_end_across_a_retry(self):
        srv = self.start_server()
        self.add_dimse_node(srv, "fk-dead", harness.free_receiver_port(),
                            retry={"attempts": 2, "first_delay_seconds": 1,
                                   "max_delay_seconds": 2})
        job_id = self.retrieve(srv, "fk-dead", self.sets["filt_a"][0][2], method="c-get")
        # One call answers once the job has ended: after its retry, not at the first failure.
        status, job = srv.api("GET", "/api/jobs/%s?wait=30" % job_id, timeout=60)
        self.assertEqual(status, 200, dump(job))
        self.assertEqual(job.get("state"), "failed", dump(job))
        self.assertEqual(len(job.get("history") or []), 2, dump(job))
        # wait=0 is an ordinary read; out of range or not a number is refused, naming the field.
        status, again = srv.api("GET", "/api/jobs/%s?wait=0" % job_id)
        self.assertEqual((status, again.get("state")), (200, "failed"))
        for value in ("61", "-1", "soon", "1.5"):
            status, body = srv.api("GET", "/api/jobs/%s?wait=%s" % (job_id, value))
            self.assertJsonError(status, body, "wait")
        status, body = srv.api("GET", "/api/jobs/999999?wait=5")
        self.assertJsonError(status, body, "id", expected_status=404)

    # ------------------------------------------------------------------ (l) C-GET aborted

    def test_l_auto_retrieve_falls_back_to_c_move_when_the_pacs_aborts_the_c_get(self):
        """Some PACS take the association and then abort it on a C-GET-RQ they will not serve,
        instead of refusing the C-GET context. With method "auto" and nothing arrived, the same
        run must ask again by C-MOVE, on the same node address. The abort is made by a proxy
        (PS3.8 A-ABORT, service-user) as the C-GET-RQ arrives, never forwarded, so it does not
        depend on Orthanc, which would serve the C-GET (DicomAlwaysAllowGet)."""
        files = self.sets["abort_get"]
        study, n = files[0][2], len(files)
        # A server of its own, whose receiver is Orthanc's C-MOVE destination for this test
        # only: (g) needs the class server's receiver (PACSBRIDGE) unknown to Orthanc.
        dest = "PBABORTGET"
        srv = self.start_server(receivers=[{"ae_title": dest, "port": harness.free_port(),
                                            "bind": "127.0.0.1"}])
        status, body = self.orthanc.rest_json("PUT", "/modalities/pbabortget", {
            "AET": dest, "Host": "127.0.0.1", "Port": srv.dicom_port})
        self.assertEqual(status, 200, "Orthanc PUT /modalities/pbabortget -> %s %r"
                         % (status, body))
        self.addCleanup(self.orthanc.rest, "DELETE", "/modalities/pbabortget")

        def gate(session, command):
            return "abort" if _u16(command, 0x0100) == C_GET_RQ else None

        proxy = self.wire_proxy(self.orthanc.dicom_port, gate=gate)
        # One attempt: a C-GET abort the fallback did not catch would end the job (failed)
        # instead of leaving it waiting for a retry that meets the same abort.
        self.add_dimse_node(srv, "abort-get-l", proxy.port, move_destination=dest,
                            retry={"attempts": 1})
        job_id = self.retrieve(srv, "abort-get-l", study, method="auto")
        job = self.wait_job(job_id, timeout=90, server=srv)
        d = dump(job)

        # On the wire first (independent of what the server says): one C-GET-RQ, aborted...
        sessions = proxy.sessions()
        self.assertEqual([(g["action"], _u16(g["command"], 0x0100)) for g in proxy.gated],
                         [("abort", C_GET_RQ)], "the proxy should have aborted exactly one "
                         "C-GET-RQ (the auto retrieve's first try): %r" % proxy.gated)
        aborted = proxy.gated[0]["session"]
        self.assertEqual(_uid(proxy.gated[0]["command"], 0x0002), STUDY_ROOT_GET)
        self.assertTrue(sessions[aborted]["down"].endswith(harness.ThrottledProxy.A_ABORT),
                        "the aborted association should end on the A-ABORT PDU")
        gets = [i for i, s in enumerate(sessions) for f in dimse_commands(s["up"])
                if _u16(f, 0x0100) == C_GET_RQ]
        self.assertEqual(gets, [aborted], "C-GET-RQs by session (only the aborted one)")
        # ...then one C-MOVE-RQ to our receiver, on an association opened after the abort,
        # answered with success (0x0000) and every instance moved.
        moves = [(i, f) for i, s in enumerate(sessions) for f in dimse_commands(s["up"])
                 if _u16(f, 0x0100) == C_MOVE_RQ]
        self.assertEqual(len(moves), 1, "C-MOVE-RQs on the wire: %d (sessions %s)"
                         % (len(moves), [i for i, _ in moves]))
        moved_in, move_rq = moves[0]
        self.assertGreater(moved_in, aborted, "the C-MOVE should follow the aborted C-GET")
        self.assertEqual(_uid(move_rq, 0x0600), dest, "Move Destination (0000,0600)")
        finals = [f for f in dimse_commands(sessions[moved_in]["down"])
                  if _u16(f, 0x0100) == C_MOVE_RSP and _u16(f, 0x0900) != 0xFF00]
        self.assertEqual([(_u16(f, 0x0900), _u16(f, 0x1021)) for f in finals], [(0x0000, n)],
                         "the final C-MOVE-RSP (status, completed sub-operations)")

        # The job: one run that succeeded by C-MOVE, with every instance in our archive.
        self.assertEqual(job.get("state"), "succeeded", d)
        self.assertIsNone(job.get("error"), d)
        self.assertEqual(job.get("method_used"), "c-move", d)
        self.assert_history_shape(job)
        self.assertEqual(outcomes(job), ["succeeded"], "the fallback is part of the run, not a "
                         "retry: " + d)
        p = progress(job)
        self.assertEqual((p.get("total"), p.get("completed"), p.get("failed")), (n, n, 0), d)
        self.assertEqual(sorted(self.archive_sops(srv, study)), sorted(f[1] for f in files),
                         "each instance once in the archive")
        # The node remembers that C-MOVE works with it (the next "auto" goes there first).
        status, node = srv.api("GET", "/api/nodes/abort-get-l")
        self.assertEqual(status, 200, node)
        self.assertEqual(node.get("retrieve_method_learned"), "c-move", node)
        # Why C-GET was left: in the job (the abort and the peer), and in the log.
        self.assertTrue(str(job.get("fallback_reason")).startswith(
            "C-GET not possible: 127.0.0.1:%d aborted the association during the C-GET"
            % proxy.port), d)
        why = "C-GET not possible (127.0.0.1:%d aborted the association during the C-GET" \
            % proxy.port
        logged = harness.wait_until(
            lambda: why in srv.log_path.read_text("utf-8", "replace"), 5, 0.1)
        self.assertTrue(logged, "no %r in the server's log" % why)
        self.assert_history_counts(job)

    # ------------------------------------------------------------------ (m) send cut

    SEND_CUT_AFTER = 3

    def test_m_send_cut_mid_transfer_reports_the_broken_association(self):
        """A send of 40 instances over two associations (20 each; node max_associations 2):
        the proxy lets one association through and closes it once it has forwarded 3 C-STORE-RQs
        and our server has sent the 4th (never forwarded), and it closes the other connection
        as soon as it is accepted, so that association never opens. The job's error must be
        the break (the instance on the wire when it happened, naming the peer), not the
        association that could not open, nor "not sent"; not_confirmed lists exactly what the
        peer did not confirm."""
        files = self.sets["send_break"]
        study, n = files[0][2], len(files)
        all_sops = {f[1] for f in files}
        cut_after = self.SEND_CUT_AFTER
        srv = self.server
        self.load_archive(srv, files)
        stores = Counter()

        def gate(session, command):
            if _u16(command, 0x0100) != C_STORE_RQ:
                return None
            stores[session] += 1
            return "close" if stores[session] == cut_after + 1 else None

        proxy = self.wire_proxy(self.orthanc.dicom_port, gate=gate,
                                refuse=lambda session: session > 0)
        # One attempt: what the first run reports is what the job ends with.
        self.add_dimse_node(srv, "break-send-m", proxy.port, max_associations=2,
                            retry={"attempts": 1})
        job_id = self.start_job(srv, "send", {"node": "break-send-m", "level": "STUDY",
                                              "uids": [study]})
        job = self.wait_job(job_id, timeout=90, server=srv)
        d = dump(job)

        # On the wire: the passed association carried 3 confirmed C-STORE-RQs and a 4th that
        # was cut; the other connection carried nothing.
        sessions = proxy.sessions()
        self.assertEqual(len(sessions), 2, "two connections expected (one per association)")
        self.assertEqual(sessions[1], {"up": b"", "down": b""}, "the refused connection")
        requested, acked = store_traffic(sessions, "up")
        self.assertEqual(len(requested), cut_after + 1, requested)
        self.assertEqual(acked, set(requested[:cut_after]),
                         "the peer should have confirmed exactly the forwarded C-STORE-RQs")
        on_the_wire = requested[cut_after]
        self.assertEqual([(g["action"], _uid(g["command"], 0x1000)) for g in proxy.gated],
                         [("close", on_the_wire)])
        self.assertEqual(set(self.orthanc_sops(study)), acked,
                         "Orthanc should hold what it confirmed and nothing else")

        p = progress(job)
        self.assertEqual(p.get("associations"), 2, "the scenario needs two associations: " + d)
        self.assertEqual(job.get("state"), "partial", d)
        self.assertEqual((p.get("total"), p.get("completed"), p.get("failed")),
                         (n, cut_after, 0), d)
        error = job.get("error") or ""
        peer = "127.0.0.1:%d" % proxy.port
        self.assertTrue(error.startswith("the association with %s broke: " % peer),
                        "the error should start with the broken association and its peer "
                        "(not with the association that never opened): " + d)
        self.assertFalse(error.startswith("not sent"), d)
        self.assertIn("%d instance(s) not confirmed" % (n - cut_after), error, d)
        self.assert_history_shape(job)
        self.assertEqual(outcomes(job), ["partial"], d)
        self.assertEqual(history(job)[0].get("error"), error, d)
        self.assertIs(history(job)[0].get("transient"), True,
                      "a broken association may pass: " + d)

        not_confirmed = job.get("not_confirmed")
        self.assertIsInstance(not_confirmed, list, d)
        self.assertEqual(job.get("failed_instances"), [], d)
        self.assertEqual(len(not_confirmed), len(set(not_confirmed)), "listed twice: " + d)
        self.assertEqual(set(not_confirmed), all_sops - acked,
                         "not_confirmed should be everything the peer did not confirm")
        self.assertIn(on_the_wire, not_confirmed, d)
        # The association that never opened is not the job's error; the log says it (which of
        # the two lanes connected first is a race, so either number).
        lane = r"send job %s: association [12] of 2 to node break-send-m sent none of its 20 " \
            r"instance\(s\): " % job_id
        self.assertTrue(harness.wait_until(lambda: re.search(lane, srv.log_path.read_text(
            "utf-8", "replace")), 5, 0.1), "no log line %r:\n%s" % (lane, srv.log_tail(20)))
        self.assertEqual(sorted(set(not_confirmed) & acked), [],
                         "instances the peer confirmed on the wire listed as not confirmed")
        self.assert_history_counts(job)


if __name__ == "__main__":
    unittest.main()
