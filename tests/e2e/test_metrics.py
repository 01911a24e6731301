"""GET /metrics after known traffic (issue 17): read with the Prometheus project's own parser of
the text format (Debian python3-prometheus-client), never with ours, and checked against what
the test itself sent, received and counted.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_metrics.py

One server (receiver PBMETRICS), one Orthanc (C-GET allowed) as the node `pacs`. The traffic:
a storescu association of 5 instances, an association refused for its called AE title, a
retrieve job of 4 instances from Orthanc by C-GET, a send job of the 5 received to Orthanc.
Every count is a difference between a scrape before and one after, so what the server did at
start (or another test) cannot make it pass. Node errors: a find on a node nothing listens for
(unreachable), a C-MOVE Orthanc aborts (aborted), one dcmqrscp refuses with 0xA801
(refused), and a retrieve of a study the PACS does not hold (no fault of the node: not
counted).
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import DcmQRSCP, dicomgen  # noqa: E402

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # a python3 other than Debian's first on PATH (e.g. pyenv)
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families

AE = "PBMETRICS"


class MetricsTests(harness.JobHelpers, harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = cls.start_class_orthanc(extra={
            "DicomAlwaysAllowGet": True, "DicomAlwaysAllowFind": True,
            "DicomAlwaysAllowStore": True})
        data = cls.tmp / "data"
        cls.received = dicomgen.generate(str(data / "received"), 5, size=3000, patient_id="MET1")
        cls.pacs_set = dicomgen.generate(str(data / "pacs"), 4, size=5000, patient_id="MET2")
        cp = harness.storescu(cls.orthanc.dicom_port, cls.orthanc.aet, [f[0] for f in cls.pacs_set])
        assert cp.returncode == 0, harness.proc_output(cp)
        cls.server = cls.start_class_server(
            receivers=[{"ae_title": AE, "port": harness.free_port(), "bind": "127.0.0.1"}])
        status, body = cls.server.api("POST", "/api/nodes", {
            "name": "pacs", "ae_title": cls.orthanc.aet, "host": "127.0.0.1",
            "port": cls.orthanc.dicom_port, "queryable": True, "storable": True})
        assert status == 201, (status, body)

    def scrape(self):
        """{(name, ((label, value), ...)): value} of every sample, as the Prometheus parser reads
        the answer (histograms give their _bucket, _sum and _count samples)."""
        status, headers, body = self.server.raw("GET", "/metrics")
        self.assertEqual(status, 200, body[:300])
        content_type = {k.lower(): v for k, v in dict(headers).items()}.get("content-type", "")
        self.assertTrue(content_type.startswith("text/plain; version=0.0.4"), content_type)
        text = body.decode("utf-8")
        out = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    @staticmethod
    def value(samples, name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def delta(self, before, after, name, **labels):
        return self.value(after, name, **labels) - self.value(before, name, **labels)

    def archive_bytes(self, sop_uids):
        """The sizes of our archived files, as GET /api/instances/{uid}/file gives them."""
        total = 0
        for sop in sop_uids:
            status, _, body = self.server.raw("GET", "/api/instances/%s/file" % sop)
            self.assertEqual(status, 200, sop)
            total += len(body)
        return total

    def test_metrics_need_an_account(self):
        status, _, _ = self.server.raw("GET", "/metrics", auth=None)
        self.assertEqual(status, 401)

    def test_counts_after_known_traffic(self):
        before = self.scrape()

        # A receiver: one association of 5 instances, one refused (unknown called AE title).
        cp = harness.storescu(self.server.dicom_port, AE, [f[0] for f in self.received])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        cp = harness.echoscu(self.server.dicom_port, "NOSUCHAE")
        self.assertNotEqual(cp.returncode, 0, "premise: an unknown called AE title is refused")

        # A retrieve by C-GET of the 4 instances Orthanc holds, then a send of the 5 received.
        status, job = self.server.api("POST", "/api/retrieve", {
            "node": "pacs", "level": "STUDY", "uids": [self.pacs_set[0][2]], "method": "c-get"})
        self.assertEqual(status, 202, job)
        retrieved = self.wait_job(job["job_id"])
        self.assertEqual(retrieved.get("state"), "succeeded", retrieved)
        status, job = self.server.api("POST", "/api/send", {
            "node": "pacs", "level": "STUDY", "uids": [self.received[0][2]]})
        self.assertEqual(status, 202, job)
        sent = self.wait_job(job["job_id"])
        self.assertEqual(sent.get("state"), "succeeded", sent)

        # Everything indexed and no association left open (conditions, then the scrape).
        self.assertTrue(harness.wait_until(
            lambda: self.value(self.scrape(), "pacsbridge_index_queue_depth") == 0
            and self.value(self.scrape(), "pacsbridge_associations_open", receiver=AE) == 0,
            10, 0.1))
        after = self.scrape()

        d = lambda name, **labels: self.delta(before, after, name, **labels)  # noqa: E731
        self.assertEqual(d("pacsbridge_associations_total", receiver=AE, outcome="accepted"), 1)
        # Refused before a receiver is chosen: counted under the port's AE title, never under
        # the called AE title the peer sent (a label value a peer could choose).
        self.assertEqual(d("pacsbridge_associations_total", receiver=AE, outcome="rejected"), 1)
        self.assertEqual(self.value(after, "pacsbridge_associations_total", receiver="NOSUCHAE",
                                    outcome="rejected"), 0)
        self.assertEqual(d("pacsbridge_receiver_instances_total", receiver=AE, outcome="stored"), 5)
        self.assertEqual(d("pacsbridge_receiver_instances_total", receiver=AE, outcome="refused"),
                         0)
        self.assertEqual(d("pacsbridge_receiver_store_seconds_count", receiver=AE), 5)
        self.assertEqual(d("pacsbridge_receiver_store_seconds_bucket", receiver=AE, le="+Inf"), 5)
        self.assertGreater(d("pacsbridge_receiver_store_seconds_sum", receiver=AE), 0)

        self.assertEqual(d("pacsbridge_node_instances_total", node="pacs", direction="retrieved"),
                         4)
        self.assertEqual(d("pacsbridge_node_bytes_total", node="pacs", direction="retrieved"),
                         self.archive_bytes([f[1] for f in self.pacs_set]))
        self.assertEqual(d("pacsbridge_node_instances_total", node="pacs", direction="sent"), 5)
        self.assertEqual(d("pacsbridge_node_bytes_total", node="pacs", direction="sent"),
                         self.archive_bytes([f[1] for f in self.received]))

        self.assertEqual(d("pacsbridge_jobs", state="succeeded"), 2)
        self.assertEqual(self.value(after, "pacsbridge_jobs", state="running"), 0)
        self.assertEqual(self.value(after, "pacsbridge_index_queue_depth"), 0)
        # Nothing failed on the node.
        self.assertEqual(sum(v for (name, labels), v in after.items()
                             if name == "pacsbridge_node_errors_total"
                             and ("node", "pacs") in labels)
                         - sum(v for (name, labels), v in before.items()
                               if name == "pacsbridge_node_errors_total"
                               and ("node", "pacs") in labels), 0)

    def test_node_errors_by_reason_and_the_database_pool(self):
        # A node nothing listens for. A study Orthanc holds but may not C-MOVE to us (it knows no
        # AE title of ours; Orthanc aborts such a C-MOVE), and one dcmqrscp holds but may not
        # C-MOVE to us either (it answers 0xA801 "move destination unknown", PS3.4 C.4.2.1.5: the
        # node refuses us, and asking again unchanged will not help).
        qr = DcmQRSCP(self.mkdtemp("qr"))
        self._peers.append(qr)
        self.addCleanup(qr.stop)
        qr.start()
        once = {"attempts": 1}
        for node in ({"name": "gone", "ae_title": "GONE", "port": harness.free_port()},
                     {"name": "pacs-move", "ae_title": self.orthanc.aet,
                      "port": self.orthanc.dicom_port},
                     {"name": "qr", "ae_title": qr.aet, "port": qr.dicom_port}):
            status, body = self.server.api("POST", "/api/nodes", dict(
                node, host="127.0.0.1", queryable=True, move_destination=AE, retry=once))
            self.assertEqual(status, 201, body)
        moved = dicomgen.generate(str(self.mkdtemp("moved")), 2, size=2000, patient_id="MET3")
        for port, aet in ((self.orthanc.dicom_port, self.orthanc.aet), (qr.dicom_port, qr.aet)):
            cp = harness.storescu(port, aet, [f[0] for f in moved])
            self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        before = self.scrape()

        status, body = self.server.api("POST", "/api/nodes/gone/find", {"level": "STUDY"})
        self.assertGreaterEqual(status, 500, body)
        for node, says in (("pacs-move", "aborted the association"), ("qr", "A801")):
            status, job = self.server.api("POST", "/api/retrieve", {
                "node": node, "level": "STUDY", "uids": [moved[0][2]], "method": "c-move"})
            self.assertEqual(status, 202, job)
            failed = self.wait_job(job["job_id"])
            self.assertEqual(failed.get("state"), "failed", failed)
            self.assertIn(says, failed.get("error", ""), failed)
        # Nothing to find is no fault of the node: not counted.
        status, job = self.server.api("POST", "/api/retrieve", {
            "node": "pacs", "level": "STUDY", "uids": ["1.2.3.999999.7"], "method": "c-get"})
        self.assertEqual(status, 202, job)
        self.assertEqual(self.wait_job(job["job_id"]).get("state"), "failed")
        after = self.scrape()

        d = lambda name, **labels: self.delta(before, after, name, **labels)  # noqa: E731
        self.assertEqual(d("pacsbridge_node_errors_total", node="gone", operation="find",
                           reason="unreachable"), 1)
        self.assertEqual(d("pacsbridge_node_errors_total", node="pacs-move", operation="retrieve",
                           reason="aborted"), 1)
        self.assertEqual(d("pacsbridge_node_errors_total", node="qr", operation="retrieve",
                           reason="refused"), 1)
        errors = {labels: v - before.get((name, labels), 0.0)
                  for (name, labels), v in after.items()
                  if name == "pacsbridge_node_errors_total"
                  and v != before.get((name, labels), 0.0)}
        self.assertEqual(len(errors), 3, errors)

        # The index's connections: 4 readers and the writer, used by the calls above.
        self.assertEqual(self.value(after, "pacsbridge_db_connections", pool="read"), 4)
        self.assertEqual(self.value(after, "pacsbridge_db_connections", pool="write"), 1)
        self.assertGreater(d("pacsbridge_db_connection_acquisitions_total", pool="read"), 0)
        self.assertGreater(d("pacsbridge_db_connection_acquisitions_total", pool="write"), 0)
        self.assertGreaterEqual(d("pacsbridge_db_connection_wait_seconds_total", pool="read"), 0)
        for pool, size in (("read", 4), ("write", 1)):
            self.assertLessEqual(self.value(after, "pacsbridge_db_connections_in_use", pool=pool),
                                 size)
            self.assertGreaterEqual(
                self.value(after, "pacsbridge_db_connections_waiting", pool=pool), 0)


if __name__ == "__main__":
    unittest.main()
