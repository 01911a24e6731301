"""max_associations: a busy worker pool queues new associations; a full queue rejects them
with A-ASSOCIATE-RJ "temporary congestion" (PS3.8 9.3.4: result 2 rejected-transient,
source 3 service-provider presentation-related, reason 1 temporary-congestion).

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_congestion.py
"""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

RJ_TRANSIENT, RJ_SOURCE_PROVIDER_PRESENTATION, RJ_TEMPORARY_CONGESTION = 2, 3, 1
QUEUE_WAIT_LIMIT = 20  # seconds a queued association may wait for a worker


class CongestionTests(harness.E2ETestCase):
    """One server per test, each with max_associations = 1 (one worker, a queue of one)."""

    def setUp(self):
        self.server = self.start_server(server_toml="max_associations = 1")

    # ------------------------------------------------------------------ helpers

    def association(self, calling_ae="E2EPYSCU"):
        a = harness.DicomAssociation(self.server.dicom_port, self.server.dicom_ae,
                                     calling_ae=calling_ae, timeout=30)
        self.addCleanup(a.close)
        return a

    def hold_worker(self):
        """An accepted association that keeps the only worker busy."""
        a = self.association("HOLDER")
        a.associate(timeout=10)
        self.assertEqual(a.echo(timeout=10), 0x0000, "C-ECHO on the held association failed")
        return a

    def queue_one(self):
        """A second association whose A-ASSOCIATE-RQ waits in the queue (no answer yet)."""
        b = self.association("QUEUED")
        b.request()
        self.assertTrue(b.nothing_received(0.7),
                        "the second association got an answer although the only worker is "
                        "busy; it should wait in the queue")
        return b

    def assertCongestionReject(self, assoc, timeout=10):
        t0 = time.monotonic()
        try:
            assoc.read_associate_answer(timeout=timeout)
        except harness.AssociationRejected as e:
            self.assertEqual((e.result, e.source, e.reason),
                             (RJ_TRANSIENT, RJ_SOURCE_PROVIDER_PRESENTATION,
                              RJ_TEMPORARY_CONGESTION),
                             "A-ASSOCIATE-RJ is not transient / provider (presentation) / "
                             "temporary congestion")
            return
        except socket.timeout:
            self.fail("no answer to the A-ASSOCIATE-RQ within %.1f s (expected an "
                      "A-ASSOCIATE-RJ for temporary congestion)" % (time.monotonic() - t0))
        self.fail("association was accepted, expected an A-ASSOCIATE-RJ (temporary "
                  "congestion)")

    def assertEchoOk(self, what):
        cp = harness.echoscu(self.server.dicom_port, self.server.dicom_ae)
        self.assertEqual(cp.returncode, 0, "echoscu %s:\n%s" % (what, harness.proc_output(cp)))

    # ------------------------------------------------------------------ scenarios

    def test_a_waiting_storescu_is_served_once_the_worker_is_free(self):
        path, sop, study, _ = dicomgen.generate(self.mkdtemp("small"), 1, size=2048,
                                                patient_id="QUEUED1")[0]
        holder = self.hold_worker()
        proc = harness.start_tool(harness.storescu_args(
            self.server.dicom_port, self.server.dicom_ae, [path], calling_ae="WAITING"))
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        time.sleep(2.0)
        if proc.poll() is not None:
            out, err = proc.communicate(timeout=10)
            self.fail("storescu ended (exit %s) while its association was queued:\n%s\n%s"
                      % (proc.returncode, out, err))
        status, _, _ = self.server.raw("GET", "/api/instances/%s/file" % sop)
        self.assertEqual(status, 404, "instance stored although the only worker was busy")

        holder.release(timeout=10)
        try:
            out, err = proc.communicate(timeout=30)
        except Exception:
            proc.kill()
            out, err = proc.communicate()
        self.assertEqual(proc.returncode, 0, "storescu after the worker was freed: exit %s\n%s\n%s"
                         % (proc.returncode, out, err))
        studies = harness.wait_until(
            lambda: (lambda s: s if study in s else None)(harness.studies_by_uid(self.server)),
            timeout=10)
        self.assertIsNotNone(studies, "study %s not listed by GET /api/studies" % study)
        self.assertEqual(studies[study].get("instance_count"), 1, studies[study])
        status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % sop)
        self.assertEqual(status, 200)
        self.assertEqual(payload[dicomgen.read_meta(payload)[1]:], dicomgen.dataset_bytes(path))

    def test_b_full_queue_rejects_with_temporary_congestion(self):
        holder = self.hold_worker()
        queued = self.queue_one()

        # echoscu: worker busy, queue full -> rejected, not left hanging.
        t0 = time.monotonic()
        cp = harness.echoscu(self.server.dicom_port, self.server.dicom_ae)
        elapsed = time.monotonic() - t0
        self.assertNotEqual(cp.returncode, 0, "echoscu succeeded although worker and queue "
                            "were full:\n%s" % harness.proc_output(cp))
        self.assertMatchesCI(r"temporary\s*congestion", cp.stdout + cp.stderr,
                             "echoscu does not report temporary congestion:\n%s"
                             % harness.proc_output(cp))
        self.assertMatchesCI(r"rejected\s*transient", cp.stdout + cp.stderr)
        self.assertLess(elapsed, 5, "the reject took %.1f s" % elapsed)

        # The raw A-ASSOCIATE-RJ, read by our own client (which closes right away after).
        third = self.association("THIRD")
        third.request()
        self.assertCongestionReject(third)
        third.close()

        # The queued association was not disturbed: it is served once the worker is free.
        self.assertTrue(queued.nothing_received(0.2), "the queued association got an answer "
                        "while the worker was still busy")
        holder.release(timeout=10)
        queued.read_associate_answer(timeout=10)
        self.assertEqual(queued.echo(timeout=10), 0x0000)
        queued.release(timeout=10)

        self.assertEchoOk("once the congestion is over")
        self.assertHealthy(self.server)

    def test_c_rejected_peer_that_keeps_its_socket_open_blocks_nobody(self):
        """PS3.8: after an A-ASSOCIATE-RJ the requestor should close the connection; one that
        does not must not stall the server for everybody else (nor its shutdown)."""
        holder = self.hold_worker()
        queued = self.queue_one()
        rude = self.association("RUDE")
        rude.request()
        self.assertCongestionReject(rude)
        # `rude` keeps its socket open (closed only at clean-up, before the server stops).

        # Worker and queue are still full: the next peer must be told so at once.
        other = self.association("OTHER")
        other.request()
        try:
            self.assertCongestionReject(other, timeout=5)
        except AssertionError as e:
            raise AssertionError("%s -- while an earlier rejected peer keeps its connection "
                                 "open, nobody else gets an answer" % e) from None
        other.close()

        holder.release(timeout=10)
        queued.read_associate_answer(timeout=10)
        queued.release(timeout=10)
        t0 = time.monotonic()
        probe = self.association("AFTER")
        try:
            probe.associate(timeout=5)
        except socket.timeout:
            self.fail("no answer to an A-ASSOCIATE-RQ within 5 s while a rejected peer keeps "
                      "its connection open (after %.1f s)" % (time.monotonic() - t0))
        probe.release(timeout=10)

    def test_d_association_queued_too_long_is_rejected(self):
        holder = self.hold_worker()
        queued = self.queue_one()
        time.sleep(QUEUE_WAIT_LIMIT + 1.5 - 0.7)
        self.assertTrue(queued.nothing_received(0.1))
        holder.release(timeout=10)
        self.assertCongestionReject(queued, timeout=10)
        queued.close()
        self.assertEchoOk("after a queued association timed out")


if __name__ == "__main__":
    unittest.main(verbosity=2)
