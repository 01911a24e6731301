"""The per-node transfer throttle (node field max_bytes_per_second): it engages on each of the
four paced transfers, against Orthanc (Debian package; with its DICOMweb plugin for the
DICOMweb half): C-GET retrieve and C-STORE send (DIMSE node), WADO-RS retrieve and STOW-RS
send (DICOMweb node).

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_throttle.py

Each test moves one study of STUDY_INSTANCES CT instances of ~0.5 MB (512 x 512 x 16 bits;
~4.2 MB in all) twice through one node of its own:
  - with max_bytes_per_second = LIMIT (1 MB/s, set by POST /api/nodes): the job, timed from
    the POST to the poll (every 50 ms) that sees it finished, must take at least
    SLACK x bytes / LIMIT seconds, bytes being what the job moved (the study's files, and
    progress.bytes must say as much). That is a lower bound only: however slow the machine,
    a throttled transfer cannot beat it (the bucket's burst, a quarter second of bytes, and
    the 0.7 leave room for the bytes we do not count). How close the rate comes to the limit
    is measured by bench/throttle.sh, not here;
  - then with the limit back at 0 (PUT /api/nodes/NAME, the same node, so the same bucket is
    dropped), a twin study of the same size: it must be faster than that bound, which shows
    that the bound is not met by a slow machine alone. (Unthrottled, 4 MB over loopback take
    a fraction of a second here.)
Twin studies rather than the same one twice: a retrieve fetches only what the archive does
not hold yet, and a PACS keeps one copy of a SOP Instance UID.

Not covered here (not paced, by design): C-MOVE (the PACS opens the association to our
receiver), DIMSE over TLS, queries and echoes.
"""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

LIMIT = 1_000_000          # bytes per second while throttled
SLACK = 0.7                # the bound: SLACK x bytes / LIMIT seconds
STUDY_INSTANCES = 8
INSTANCE_BYTES = 512 * 512 * 2 + 1024  # ~0.5 MB: 512 x 512 pixels of 16 bits
POLL = 0.05
JOB_TIMEOUT = 60


def dump(job):
    return json.dumps(job, indent=1)


def make_studies(directory, count, patient_id):
    """`count` studies of STUDY_INSTANCES CT instances each: [(study UID, files, bytes)]."""
    made = dicomgen.generate(str(directory), count * STUDY_INSTANCES, studies=count,
                             size=INSTANCE_BYTES, modality="CT", patient_id=patient_id,
                             patient_name="THROTTLE^" + patient_id)
    studies = []
    for uid in sorted({m[2] for m in made}):
        files = [m for m in made if m[2] == uid]
        studies.append((uid, files, sum(os.path.getsize(m[0]) for m in files)))
    assert [len(s[1]) for s in studies] == [STUDY_INSTANCES] * count, studies
    return studies


class ThrottleCase(harness.JobHelpers, harness.E2ETestCase):
    """self.server: the class's pacsbridge; the class sets node_body(name) for its peer."""

    @classmethod
    def load_archive(cls, studies):
        """Our archive gets these studies through our receiver (storescu)."""
        files = [f[0] for _, fs, _ in studies for f in fs]
        cp = harness.storescu(cls.server.dicom_port, cls.server.dicom_ae, files)
        if cp.returncode != 0:
            raise AssertionError("loading our archive failed:\n" + harness.proc_output(cp))
        ok = harness.wait_until(lambda: all(
            harness.studies_by_uid(cls.server).get(uid, {}).get("instance_count")
            == STUDY_INSTANCES for uid, _, _ in studies), timeout=30, interval=0.1)
        if not ok:
            raise AssertionError("our archive does not list every loaded instance")

    def add_limited_node(self, name):
        body = dict(self.node_body(name), max_bytes_per_second=LIMIT)
        status, answer = self.server.api("POST", "/api/nodes", body)
        self.assertEqual(status, 201, "POST /api/nodes %r -> %s %r" % (body, status, answer))
        self.assertEqual(answer.get("max_bytes_per_second"), LIMIT, answer)

    def unlimit(self, name):
        status, answer = self.server.api("PUT", "/api/nodes/%s" % name,
                                         {"max_bytes_per_second": 0})
        self.assertEqual(status, 200, "PUT /api/nodes/%s -> %s %r" % (name, status, answer))
        self.assertEqual(answer.get("max_bytes_per_second"), 0, answer)

    def timed_job(self, path, body):
        """POST a job; poll every 50 ms until it ends: (job, seconds from POST to seen)."""
        t0 = time.monotonic()
        status, answer = self.server.api("POST", path, body)
        self.assertEqual(status, 202, "POST %s %r -> %s %r" % (path, body, status, answer))
        job_id = str(answer["job_id"])
        deadline = t0 + JOB_TIMEOUT
        while True:
            job = self.get_job(job_id)
            if job.get("state") in harness.JOB_ENDED:
                return job, time.monotonic() - t0
            if time.monotonic() > deadline:
                self.fail("job %s not finished after %d s: %s" % (job_id, JOB_TIMEOUT, dump(job)))
            time.sleep(POLL)

    def transfer(self, path, body, study, what, method_used=None):
        """Run one job moving `study`; check that it moved all of it; its seconds."""
        uid, files, nbytes = study
        job, seconds = self.timed_job(path, body)
        d = dump(job)
        self.assertEqual(job.get("state"), "succeeded", "%s: %s" % (what, d))
        progress = job.get("progress") or {}
        self.assertEqual(progress.get("completed"), len(files), "%s: %s" % (what, d))
        if method_used is not None:
            self.assertEqual(job.get("method_used"), method_used, "%s: %s" % (what, d))
        moved = progress.get("bytes") or 0
        self.assertGreaterEqual(moved, 0.9 * nbytes,
                                "%s: progress.bytes %s, the study's files hold %d bytes: %s"
                                % (what, moved, nbytes, d))
        return seconds

    def check_engages(self, node, path, make_body, limited, unlimited, method_used=None):
        """`limited` with the node at LIMIT, then `unlimited` with the node at 0."""
        self.add_limited_node(node)
        bound = SLACK * limited[2] / LIMIT
        slow = self.transfer(path, make_body(node, limited[0]), limited,
                             "throttled %s" % path, method_used)
        self.unlimit(node)
        fast = self.transfer(path, make_body(node, unlimited[0]), unlimited,
                             "unthrottled %s" % path, method_used)
        fast_bound = SLACK * unlimited[2] / LIMIT
        report = ("%s of %d bytes at max_bytes_per_second %d took %.2f s (at least %.2f s "
                  "expected); %d bytes unthrottled took %.2f s (the bound: %.2f s)"
                  % (path, limited[2], LIMIT, slow, bound, unlimited[2], fast, fast_bound))
        sys.stderr.write("\n[throttle] %s: %s\n" % (self._testMethodName, report))
        self.assertGreaterEqual(slow, bound, "the throttle did not engage: " + report)
        self.assertLess(fast, fast_bound, "unthrottled, the transfer is not faster than the "
                        "bound, which then proves nothing: " + report)


def retrieve_body(method):
    def body(node, uid):
        return {"node": node, "level": "STUDY", "uids": [uid], "method": method} \
            if method else {"node": node, "level": "STUDY", "uids": [uid]}
    return body


def send_body(node, uid):
    return {"node": node, "level": "STUDY", "uids": [uid]}


# --------------------------------------------------------------------------- DIMSE

class DimseThrottleTests(ThrottleCase):
    """A DIMSE node on Orthanc (plain TCP): C-GET retrieve (the data comes on our association)
    and C-STORE send (our association)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = cls.start_class_orthanc(extra={"DicomAlwaysAllowGet": True,
                                                     "DicomAlwaysAllowFind": True})
        cls.server = cls.start_class_server()
        data = cls.tmp / "data"
        cls.get_studies = make_studies(data / "get", 2, "THROTTLEGET")
        cls.store_studies = make_studies(data / "store", 2, "THROTTLESTORE")
        files = [f[0] for _, fs, _ in cls.get_studies for f in fs]
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet, files)
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))
        cls.load_archive(cls.store_studies)

    def node_body(self, name):
        return {"name": name, "ae_title": self.orthanc.aet, "host": "127.0.0.1",
                "port": self.orthanc.dicom_port, "queryable": True, "storable": True,
                "timeout_seconds": 20}

    def test_c_get_retrieve_is_throttled(self):
        self.check_engages("orthanc-get", "/api/retrieve", retrieve_body("c-get"),
                           *self.get_studies, method_used="c-get")

    def test_c_store_send_is_throttled(self):
        self.check_engages("orthanc-store", "/api/send", send_body, *self.store_studies)


# --------------------------------------------------------------------------- DICOMweb

class DicomWebThrottleTests(ThrottleCase):
    """A DICOMweb node on Orthanc's DICOMweb plugin (HTTP compression off): WADO-RS retrieve
    and STOW-RS send bodies."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = cls.start_class_orthanc(dicomweb=True,
                                              extra={"HttpCompressionEnabled": False})
        cls.server = cls.start_class_server()
        data = cls.tmp / "data"
        cls.wado_studies = make_studies(data / "wado", 2, "THROTTLEWADO")
        cls.stow_studies = make_studies(data / "stow", 2, "THROTTLESTOW")
        for _, files, _ in cls.wado_studies:
            for path, _, _, _ in files:
                cls.orthanc.upload(path)
        cls.load_archive(cls.stow_studies)

    def node_body(self, name):
        return {"name": name, "type": "dicomweb", "url": self.orthanc.dicomweb_url,
                "queryable": True, "storable": True}

    def test_wado_rs_retrieve_is_throttled(self):
        self.check_engages("web-wado", "/api/retrieve", retrieve_body(None),
                           *self.wado_studies, method_used="wado-rs")

    def test_stow_rs_send_is_throttled(self):
        self.check_engages("web-stow", "/api/send", send_body, *self.stow_studies)


if __name__ == "__main__":
    unittest.main()
