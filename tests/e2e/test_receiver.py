"""The DICOM receiver: C-ECHO, called AE check, parallel C-STORE, archive API, fidelity.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_receiver.py
"""

import os
import sys
import time
import unittest
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

N_INSTANCES = 200
N_STUDIES = 4
SERIES_PER_STUDY = 3
N_PROCESSES = 4


class ReceiverTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.start_class_server()
        cls.bulk = dicomgen.generate(cls.tmp / "bulk", N_INSTANCES, studies=N_STUDIES,
                                     series_per_study=SERIES_PER_STUDY, size=4096,
                                     patient_name="BULK^RECEIVER", patient_id="BULK1")
        cls._bulk_result = None

    # ------------------------------------------------------------------ helpers

    def store_bulk_once(self):
        """storescu the 200 instances over 4 parallel associations (once per class)."""
        cls = type(self)
        if cls._bulk_result is None:
            files = [b[0] for b in cls.bulk]
            chunk = len(files) // N_PROCESSES
            procs = []
            t0 = time.monotonic()
            for i in range(N_PROCESSES):
                part = files[i * chunk:(i + 1) * chunk] if i < N_PROCESSES - 1 \
                    else files[i * chunk:]
                procs.append(harness.start_tool(harness.storescu_args(
                    self.server.dicom_port, self.server.dicom_ae, part,
                    calling_ae="STORESCU%d" % i)))
            results = []
            for p in procs:
                try:
                    out, err = p.communicate(timeout=180)
                except Exception:
                    p.kill()
                    out, err = p.communicate()
                results.append((p.returncode, out, err))
            cls._bulk_result = (results, time.monotonic() - t0)
        results, _ = cls._bulk_result
        for i, (rc, out, err) in enumerate(results):
            self.assertEqual(rc, 0, "storescu #%d of %d failed:\n%s\n%s"
                             % (i, N_PROCESSES, out, err[-3000:]))
        return cls._bulk_result

    def expected_hierarchy(self):
        studies = defaultdict(lambda: defaultdict(set))
        for _, sop, study, series in self.bulk:
            studies[study][series].add(sop)
        return studies

    def wait_for_counts(self, expected_instances_per_study, timeout=15):
        def done():
            got = harness.studies_by_uid(self.server)
            return all(got.get(uid, {}).get("instance_count") == n
                       for uid, n in expected_instances_per_study.items()) and got
        harness.wait_until(done, timeout=timeout, interval=0.25)
        return harness.studies_by_uid(self.server)

    def fetch_file(self, sop_uid):
        status, headers, payload = self.server.raw(
            "GET", "/api/instances/%s/file" % sop_uid, timeout=60)
        return status, headers, payload

    def assertStoredFileMatches(self, sop_uid, source_path, transfer_syntax, sender="STORESCU"):
        """sender: the sending tool's calling AE title (or its prefix, for STORESCU0..3)."""
        status, headers, payload = self.fetch_file(sop_uid)
        self.assertEqual(status, 200, "GET /api/instances/%s/file" % sop_uid)
        ctype = headers.get("Content-Type", "")
        self.assertEqual(ctype.split(";")[0].strip().lower(), "application/dicom",
                         "Content-Type of %s" % sop_uid)
        meta, offset = dicomgen.read_meta(payload)
        self.assertEqual(meta.get("MediaStorageSOPInstanceUID"), sop_uid,
                         "MediaStorageSOPInstanceUID of the stored file")
        self.assertEqual(meta.get("TransferSyntaxUID"), transfer_syntax,
                         "TransferSyntaxUID of the stored file of %s" % sop_uid)
        # The rest of the meta header a receiver writes (PS3.10 7.1; read_meta checked the
        # group length): version 00\01, the SOP Class of the sent file, the sender's AE.
        self.assertEqual(meta.get("0002,0001"), b"\x00\x01", "FileMetaInformationVersion")
        self.assertEqual(meta.get("MediaStorageSOPClassUID"),
                         dicomgen.read_meta(source_path)[0].get("MediaStorageSOPClassUID"))
        self.assertTrue(str(meta.get("0002,0016", "")).startswith(sender),
                        "SourceApplicationEntityTitle: %r" % meta.get("0002,0016"))
        sent = dicomgen.dataset_bytes(source_path)
        got = payload[offset:]
        if got != sent:
            first = next((i for i, (a, b) in enumerate(zip(got, sent)) if a != b),
                         min(len(got), len(sent)))
            self.fail("dataset of %s differs from the sent one: %d vs %d bytes, first "
                      "difference at dataset offset %d" % (sop_uid, len(got), len(sent), first))

    # ------------------------------------------------------------------ C-ECHO

    def test_echo_with_right_called_ae_succeeds(self):
        cp = harness.echoscu(self.server.dicom_port, self.server.dicom_ae)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))

    def test_rejects_wrong_called_ae(self):
        cp = harness.echoscu(self.server.dicom_port, "NOTUS")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertMatchesCI(r"Called AE Title Not Recognized", cp.stdout + cp.stderr,
                             "echoscu did not report the rejection reason:\n%s"
                             % harness.proc_output(cp))

    # ------------------------------------------------------------------ bulk C-STORE

    def test_parallel_storescu_all_succeed(self):
        results, elapsed = self.store_bulk_once()
        self.assertEqual(len(results), N_PROCESSES)
        sys.stderr.write("[200 instances over %d associations in %.1fs] "
                         % (N_PROCESSES, elapsed))

    def test_studies_list_shows_instance_and_series_counts(self):
        self.store_bulk_once()
        expected = self.expected_hierarchy()
        self.assertEqual(len(expected), N_STUDIES)
        want = {uid: sum(len(s) for s in series.values()) for uid, series in expected.items()}
        got = self.wait_for_counts(want)
        for study_uid, series in expected.items():
            self.assertIn(study_uid, got, "study %s missing from GET /api/studies" % study_uid)
            entry = got[study_uid]
            self.assertEqual(entry.get("instance_count"), want[study_uid],
                             "instance_count of %s: %r" % (study_uid, entry))
            self.assertEqual(entry.get("series_count"), len(series),
                             "series_count of %s: %r" % (study_uid, entry))
            self.assertEqual(entry.get("PatientID"), "BULK1", repr(entry))
            self.assertEqual(entry.get("PatientName"), "BULK^RECEIVER", repr(entry))
            self.assertEqual(entry.get("StudyDate"), "20240115", repr(entry))

    def test_series_and_instances_are_listed(self):
        self.store_bulk_once()
        expected = self.expected_hierarchy()
        want = {uid: sum(len(s) for s in series.values()) for uid, series in expected.items()}
        self.wait_for_counts(want)
        for study_uid, series in expected.items():
            status, body = self.server.api("GET", "/api/studies/%s/series" % study_uid)
            self.assertEqual(status, 200, body)
            self.assertIsInstance(body, list)
            listed = {s.get("SeriesInstanceUID"): s for s in body}
            self.assertEqual(set(listed), set(series),
                             "series of study %s" % study_uid)
            for series_uid, sops in series.items():
                self.assertEqual(listed[series_uid].get("instance_count"), len(sops),
                                 "instance_count of series %s: %r"
                                 % (series_uid, listed[series_uid]))
                status, body = self.server.api("GET", "/api/series/%s/instances" % series_uid)
                self.assertEqual(status, 200, body)
                self.assertIsInstance(body, list)
                uids = [i.get("SOPInstanceUID") for i in body]
                self.assertEqual(Counter(uids), Counter(sops),
                                 "instances of series %s" % series_uid)

    def test_every_stored_file_is_byte_identical(self):
        self.store_bulk_once()
        want = {}
        for _, _, study, _ in self.bulk:
            want[study] = want.get(study, 0) + 1
        self.wait_for_counts(want)
        for path, sop, _, _ in self.bulk:
            self.assertStoredFileMatches(sop, path, harness.EXPLICIT_VR_LE)

    def test_unknown_instance_file_is_404(self):
        status, _, _ = self.fetch_file("1.2.3.4.5.6.7.8.9.404")
        self.assertEqual(status, 404)

    # ------------------------------------------------------------------ duplicates, syntax

    def test_duplicate_instance_is_indexed_once(self):
        gen = dicomgen.generate(self.mkdtemp("dup"), 1, patient_id="DUP1", size=3000)
        path, sop, study, series = gen[0]
        for attempt in (1, 2):
            cp = harness.storescu(self.server.dicom_port, self.server.dicom_ae, [path])
            self.assertEqual(cp.returncode, 0, "send #%d:\n%s"
                             % (attempt, harness.proc_output(cp)))
            got = self.wait_for_counts({study: 1})
            self.assertIn(study, got, "after send #%d" % attempt)
            self.assertEqual(got[study].get("instance_count"), 1,
                             "after send #%d: %r" % (attempt, got[study]))
        time.sleep(1.0)  # give a late second indexing a chance to show up
        got = harness.studies_by_uid(self.server)
        self.assertEqual(got[study].get("instance_count"), 1, repr(got[study]))
        self.assertEqual(got[study].get("series_count"), 1, repr(got[study]))
        status, body = self.server.api("GET", "/api/series/%s/instances" % series)
        self.assertEqual(status, 200, body)
        self.assertEqual([i.get("SOPInstanceUID") for i in body], [sop])
        status, body = self.server.api("GET", "/api/studies")
        self.assertEqual([s.get("StudyInstanceUID") for s in body].count(study), 1)
        self.assertStoredFileMatches(sop, path, harness.EXPLICIT_VR_LE)

    def test_implicit_vr_instance_is_stored_as_implicit(self):
        gen = dicomgen.generate(self.mkdtemp("implicit"), 2, syntax="implicit",
                                modality="CT", patient_id="IMPL1", size=5000)
        # -xi: propose Implicit VR Little Endian only, so that is what gets negotiated.
        cp = harness.storescu(self.server.dicom_port, self.server.dicom_ae,
                              [g[0] for g in gen], extra=["-xi"])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.wait_for_counts({gen[0][2]: 2})
        for path, sop, _, _ in gen:
            self.assertStoredFileMatches(sop, path, harness.IMPLICIT_VR_LE)

    def test_private_sop_class_is_accepted(self):
        d = self.mkdtemp("private")
        path = d / "private.dcm"
        sop = "1.2.826.0.1.3680043.9.7133.55.1.1"
        study = "1.2.826.0.1.3680043.9.7133.55.1"
        dicomgen.write_instance(path, sop_uid=sop, study_uid=study,
                                series_uid="1.2.826.0.1.3680043.9.7133.55.1.2",
                                patient_id="PRIVATE1", sop_class="1.2.826.0.1.3680043.9.7133.99.1")
        # storescu refuses SOP classes DCMTK does not know; dcmsend proposes what the file has.
        cp = harness.run_tool(["dcmsend", "-aec", self.server.dicom_ae, "-nuc", "127.0.0.1",
                               str(self.server.dicom_port), str(path)])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.wait_for_counts({study: 1})
        self.assertStoredFileMatches(sop, path, harness.EXPLICIT_VR_LE, sender="DCMSEND")

    def test_meta_header_is_the_one_dcmtk_writes_for_a_received_instance(self):
        # The file meta header of a received instance must be what DCMTK's bit-preserving
        # receiver writes: storescp +B, sent the same file by the same caller, is the reference
        # (the Source AE is the caller's).
        from test_send import StoreSCP
        d = self.mkdtemp("storescp-meta")
        path, sop = dicomgen.generate(d / "in", 1, size=4096, patient_id="META1")[0][:2]
        scp = StoreSCP(d).start()
        self.addCleanup(scp.stop)
        for port, ae in ((scp.port, scp.aet), (self.server.dicom_port, self.server.dicom_ae)):
            cp = harness.storescu(port, ae, [path], calling_ae="METACHECK")
            self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertTrue(harness.wait_until(lambda: sop in scp.files(), 10), scp.log_tail())
        theirs = dicomgen.read_meta(scp.files()[sop])[0]
        status, _, payload = self.fetch_file(sop)
        self.assertEqual(status, 200)
        ours = dicomgen.read_meta(payload)[0]
        self.assertIn("0002,0000", ours, "no group length")
        self.assertEqual({k: v for k, v in ours.items() if k.startswith("0002,")},
                         {k: v for k, v in theirs.items() if k.startswith("0002,")})

    def test_query_sop_class_is_not_accepted(self):
        # A C-FIND-only association must not be accepted as if we were a query SCP.
        cp = harness.run_tool(["findscu", "-S", "-aec", self.server.dicom_ae, "-k",
                               "QueryRetrieveLevel=STUDY", "127.0.0.1",
                               str(self.server.dicom_port)])
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("no acceptable presentation contexts", harness.proc_output(cp).lower())

    def test_non_ascii_patient_name_is_reported_in_utf8(self):
        gen = dicomgen.generate(self.mkdtemp("utf8"), 1, patient_id="UTF8PID",
                                patient_name="Müller^Jörg", size=2048)
        path, sop, study, _ = gen[0]
        cp = harness.storescu(self.server.dicom_port, self.server.dicom_ae, [path])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        got = self.wait_for_counts({study: 1})
        self.assertIn(study, got)
        self.assertEqual(got[study].get("PatientName"), "Müller^Jörg", repr(got[study]))
        self.assertStoredFileMatches(sop, path, harness.EXPLICIT_VR_LE)


if __name__ == "__main__":
    unittest.main(verbosity=2)
