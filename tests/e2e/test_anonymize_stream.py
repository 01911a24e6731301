"""An anonymizing receiver holds no instance whole in memory (issue: hardening).

The attributes of an incoming data set are received into memory and anonymized there; once
the data set outgrows the memory budget (4 MB), its pixel data streams to a spill file in the
data directory's tmp/ and is copied from there when the anonymized instance is written. So a
large image needs the budget, not its size, and what reaches the disk before anonymization
is pixel data only, never the attributes that identify.

The sender is paced through a proxy (40 MB/s) so the test can look at the data directory
while the pixel data arrives: the spill file must be there, growing, and no byte of the
patient's identity anywhere on disk. Afterwards: the stored instance is anonymized, its pixel
data is the sent pixel data byte for byte, tmp/ is empty, and the server's peak resident
memory grew by far less than the instance (the old path held it whole: it grew by more).

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_anonymize_stream.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

SIZE = 100 * 1000 * 1000  # bytes of the instance, nearly all pixel data
RATE = 40 * 1000 * 1000  # bytes/s through the proxy: ~2.5 s of arrival to look at
NAME, PID = "Streamqwerty^Bigimage", "PIDSTREAM4711"


def pixel_value(payload):
    vr, value = dicomgen.read_elements(payload)[(0x7FE0, 0x0010)]
    return value


class AnonymizeStreamTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.server = cls.start_class_server()
        cls.port = harness.free_receiver_port()
        status, cls.receiver = cls.server.api("POST", "/api/receivers", {
            "ae_title": "ANONSTREAM", "port": cls.port, "bind": "127.0.0.1"})
        assert status == 201, cls.receiver
        assert cls.receiver.get("anonymize") is True, cls.receiver  # the API's default

    def test_large_instance_streams_its_pixel_data_and_nothing_that_identifies(self):
        src = self.tmp / "src"
        path, sop, study, series = dicomgen.generate(src, 1, size=SIZE, patient_name=NAME,
                                                     patient_id=PID)[0]
        sent = harness.Path(path).read_bytes()
        head = pixel_value(sent)[:4096]
        needles = [NAME.encode(), PID.encode(), sop.encode(), study.encode()]
        self.assertTrue(all(n in sent for n in needles))
        tmp = self.server.tmp_dir
        # Warm up (first association, DCMTK's dictionary, the index) with a small instance,
        # so that the peak measured next is the large instance's.
        small = dicomgen.generate(self.tmp / "small", 1, size=20000, patient_name=NAME,
                                  patient_id=PID)[0][0]
        cp = harness.storescu(self.port, "ANONSTREAM", [small], calling_ae="STREAMSCU")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        before = harness.peak_rss_kb(self.server.pid)

        proxy = harness.ThrottledProxy(self.port, rate=RATE, throttle="upload")
        self.addCleanup(proxy.close)
        scu = harness.start_tool(harness.storescu_args(proxy.port, "ANONSTREAM", [path],
                                                       calling_ae="STREAMSCU"))
        self.addCleanup(lambda: scu.poll() is None and scu.kill())
        spill = {}

        def spilling():
            # The spill file: the pixel data's bytes as sent, without header or preamble (an
            # anonymized instance being written would start with its preamble).
            for p in tmp.iterdir():
                try:
                    with open(p, "rb") as f:
                        start = f.read(len(head))
                except FileNotFoundError:
                    continue
                if start == head:
                    spill["path"] = p
                    return True
            return False
        self.assertTrue(harness.wait_until(spilling, timeout=30, interval=0.02),
                        "no spill file in tmp/ while the pixel data arrived: %r"
                        % sorted(p.name for p in tmp.iterdir()))
        # While it arrives: nothing that identifies is on disk (the spill file included).
        found = harness.find_bytes([self.server.data_dir], needles)
        self.assertEqual(found, {}, "identifying values on disk before anonymization")
        out, err = scu.communicate(timeout=120)
        self.assertEqual(scu.returncode, 0, "storescu failed:\n%s%s" % (out, err))

        self.assertTrue(harness.wait_until(lambda: not any(tmp.iterdir()), timeout=10),
                        "tmp/ not emptied: %r" % sorted(p.name for p in tmp.iterdir()))
        growth_mb = (harness.peak_rss_kb(self.server.pid) - before) / 1024
        print("\n[e2e] peak resident memory grew by %.1f MB for a %.0f MB instance"
              % (growth_mb, SIZE / 1e6), file=sys.stderr)
        self.assertLess(growth_mb, SIZE / 2 / 1e6,
                        "peak resident memory grew by %.0f MB for a %.0f MB instance"
                        % (growth_mb, SIZE / 1e6))

        status, studies = self.server.api("GET", "/api/studies")
        self.assertEqual(status, 200, studies)
        stored = None
        for st in studies:
            status, series_rows = self.server.api("GET", "/api/studies/%s/series" % st["StudyInstanceUID"])
            for se in series_rows if status == 200 else []:
                status, rows = self.server.api("GET", "/api/series/%s/instances" % se["SeriesInstanceUID"])
                for row in rows if status == 200 else []:
                    status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % row["SOPInstanceUID"])
                    if status == 200 and len(payload) > SIZE / 2:
                        stored = payload
        self.assertIsNotNone(stored, "the large instance is not in the archive")
        for n in needles:
            self.assertNotIn(n, stored, "%r kept in the stored instance" % n)
        el = dicomgen.read_elements(stored)
        self.assertEqual(harness.text_of(el, (0x0012, 0x0062)), "YES")  # PatientIdentityRemoved
        self.assertEqual(pixel_value(stored), pixel_value(sent), "pixel data changed on the way")
        self.assertEqual(harness.find_bytes([self.server.data_dir, self.server.log_path], needles), {})


if __name__ == "__main__":
    unittest.main()
