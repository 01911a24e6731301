"""The web UI in a real browser: playwright-core (npm, ui/node_modules) driving Debian's
Chromium, headless, against the server and an Orthanc started here. The scenarios themselves
are in ui/tests/scenarios.mjs; this test starts the peers, prepares accounts, gives the
scenarios what they must find (the API's own words for an invalid AE title, fetched here), runs
them, and checks their effects through the API.

Screenshots: see ui_support.py."""
import io
import os
import re
import sys
import unittest
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ui_support  # noqa: E402
from harness import dicomgen  # noqa: E402

READER = ("reader-1", "reader-Pw-123")


def png_size(data):
    """(width, height) from a PNG's IHDR chunk (PNG specification, section 11.2.2)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    assert data[12:16] == b"IHDR", data[12:16]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def rows_columns(path):
    """Rows and Columns of a DICOM file, read by DCMTK's dcmdump (not by our code)."""
    cp = harness.run_tool(["dcmdump", "+P", "Rows", "+P", "Columns", str(path)])
    assert cp.returncode == 0, harness.proc_output(cp)
    values = [int(line.split()[2]) for line in cp.stdout.splitlines() if line.startswith("(0028,001")]
    return values[0], values[1]


class WebUiTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ui_support.require_ui()
        cls.orthanc = cls.start_class_orthanc(extra={"DicomAlwaysAllowFind": True})
        cls.server = cls.start_class_server()
        status, body = cls.server.api("POST", "/api/users", {
            "username": READER[0], "role": "read-only", "password": READER[1]})
        assert status == 201, body
        cls.shots = ui_support.screenshots_dir(cls.tmp)
        # A CT series of 3 images of about 190 x 190 pixels, received by our receiver.
        cls.ct = dicomgen.generate(cls.tmp / "ct", 3, size=74000, modality="CT",
                                   patient_name="THUMB^NAIL", patient_id="THUMB1",
                                   series_description="axial")
        cp = harness.storescu(cls.server.dicom_port, cls.server.dicom_ae, [c[0] for c in cls.ct])
        assert cp.returncode == 0, harness.proc_output(cp)
        study = cls.ct[0][2]
        assert harness.wait_until(lambda: any(
            s["StudyInstanceUID"] == study and s["instance_count"] == 3
            for s in cls.server.api("GET", "/api/studies")[1]), timeout=30)
        # Two instances held back by a staging receiver.
        status, cls.stager = cls.server.api("POST", "/api/receivers", {
            "ae_title": "STAGER", "port": harness.free_receiver_port(), "anonymize": False,
            "direct_archive": False, "staging_idle_seconds": 3600})
        assert status == 201, cls.stager
        cls.staged = dicomgen.generate(cls.tmp / "staged", 2, size=4000, patient_name="STAGED^ONE",
                                       patient_id="STAGED1")
        cp = harness.storescu(cls.stager["port"], "STAGER", [c[0] for c in cls.staged])
        assert cp.returncode == 0, harness.proc_output(cp)
        assert harness.wait_until(lambda: [
            s for s in cls.server.api("GET", "/api/staging")[1] if s["instance_count"] == 2], timeout=30)

    def run_scenarios(self, *names):
        # The API's own words for an AE title it refuses, asked here (a dry run changes nothing).
        invalid = "THIS_TITLE_IS_TOO_LONG"
        status, body = self.server.api("POST", "/api/nodes?dry_run=true", {
            "name": "probe", "type": "dimse", "ae_title": invalid, "host": "127.0.0.1", "port": 104})
        self.assertEqual((status, body.get("field")), (400, "ae_title"), body)
        env = {
            "PB_READER": READER[0], "PB_READER_PASSWORD": READER[1],
            "PB_ORTHANC_AET": self.orthanc.aet, "PB_ORTHANC_PORT": str(self.orthanc.dicom_port),
            "PB_INVALID_AE": invalid, "PB_INVALID_AE_MESSAGE": body["error"],
            "PB_SERIES": self.ct[0][3],
            # What routing's defaults make of the series: Study Description, else Accession
            # Number, is the project; Patient Name the subject; Patient ID the session.
            "PB_PROJECT": self.labels()[0], "PB_SUBJECT": "THUMB_NAIL", "PB_SESSION": "THUMB1",
            "PB_STAGED_ID": str(self.server.api("GET", "/api/staging")[1][0]["id"]),
        }
        ui_support.run_scenarios(self, self.server, "scenarios.mjs", names, env, self.shots)

    def labels(self):
        """The project the CT series is filed under, found by browsing the API."""
        for p in self.server.api("GET", "/api/projects")[1]:
            for sub in self.server.api("GET", "/api/projects/%s/subjects" % p["name"])[1]:
                if sub["name"] == "THUMB_NAIL":
                    return p["name"], sub["name"]
        self.fail("the CT series is under no project")

    def test_ui(self):
        self.run_scenarios("login", "nodes", "reader", "archive", "staging")
        # What the browser did, seen through the API.
        status, node = self.server.api("GET", "/api/nodes/orthanc-ui")
        self.assertEqual(status, 200, node)
        self.assertEqual((node["ae_title"], node["port"], node["queryable"]),
                         (self.orthanc.aet, self.orthanc.dicom_port, True))
        self.assertTrue(node["last_test"]["ok"], node["last_test"])
        status, audit = self.server.api("GET", "/api/audit?target_type=node&actor=admin")
        self.assertEqual(status, 200, audit)
        created = [a for a in audit if a["action"] == "node.create" and a["target"] == "orthanc-ui"]
        self.assertEqual(len(created), 1, audit)
        self.assertEqual(created[0]["via"], "session", "the UI works through its session")
        # The dry runs of the live validation stored nothing else.
        status, nodes = self.server.api("GET", "/api/nodes")
        self.assertEqual([n["name"] for n in nodes], ["orthanc-ui"])
        # The read-only account's browser showed no way to change nodes; the API refuses too.
        status, body = self.server.api("POST", "/api/nodes", {
            "name": "x", "type": "dimse", "ae_title": "X", "host": "127.0.0.1", "port": 104},
            auth=READER)
        self.assertEqual(status, 403, body)
        # The staged session was archived from the page: its instances are in the archive.
        self.assertEqual(self.server.api("GET", "/api/staging")[1], [])
        self.assertTrue(harness.wait_until(lambda: any(
            s["StudyInstanceUID"] == self.staged[0][2] and s["instance_count"] == 2
            for s in self.server.api("GET", "/api/studies")[1]), timeout=10))
        for name in ("login", "add-node-invalid", "connections", "jobs", "archive", "staging"):
            self.assertTrue((self.shots / ("%s.png" % name)).is_file(), name)

    def test_series_thumbnail(self):
        series = self.ct[0][3]
        status, headers, png = self.server.raw("GET", "/api/series/%s/thumbnail" % series)
        self.assertEqual(status, 200, png[:200])
        self.assertEqual(headers.get("Content-Type"), "image/png")
        # The middle image, scaled to 128 on its longer side, aspect kept.
        middle = sorted(self.ct, key=lambda c: c[0])[1][0]
        rows, cols = rows_columns(middle)
        f = 128 / max(rows, cols)
        self.assertEqual(png_size(png), (round(cols * f), round(rows * f)))
        status, _, small = self.server.raw("GET", "/api/series/%s/thumbnail?size=64" % series)
        self.assertEqual((status, max(png_size(small))), (200, 64))
        # Unchanged: 304 to the ETag.
        etag = headers.get("ETag")
        self.assertTrue(etag)
        status, _, body = self.server.raw("GET", "/api/series/%s/thumbnail" % series,
                                          headers={"If-None-Match": etag})
        self.assertEqual((status, body), (304, b""))
        self.assertEqual(self.server.raw("GET", "/api/series/%s/thumbnail?size=8" % series)[0], 400)
        self.assertEqual(self.server.raw("GET", "/api/series/1.2.3.4.5/thumbnail")[0], 404)
        self.assertEqual(self.server.raw("GET", "/api/series/%s/thumbnail" % series, auth=None)[0], 401)

    def test_series_zip(self):
        """The ZIP of a series, read by Python's zipfile (not by our code): every stored file,
        named by instance number, stored uncompressed, CRCs right, the data sets as sent."""
        series = self.ct[0][3]
        status, headers, payload = self.server.raw("GET", "/api/series/%s/zip" % series)
        self.assertEqual(status, 200, payload[:200])
        self.assertEqual(headers.get("Content-Type"), "application/zip")
        self.assertIn('filename="series-%s.zip"' % series, headers.get("Content-Disposition", ""))
        z = zipfile.ZipFile(io.BytesIO(payload))
        self.assertIsNone(z.testzip())
        by_sop = {sop: path for path, sop, _, _ in self.ct}
        names = z.namelist()
        self.assertEqual(len(names), 3, names)
        for name in names:
            m = re.fullmatch(r"%s/(\d{5})_([0-9.]+)\.dcm" % re.escape(series), name)
            self.assertTrue(m, name)
            self.assertEqual(z.getinfo(name).compress_type, zipfile.ZIP_STORED)
            data = z.read(name)
            meta, offset = dicomgen.read_meta(data)
            self.assertEqual(meta["MediaStorageSOPInstanceUID"], m.group(2))
            self.assertEqual(data[offset:], dicomgen.dataset_bytes(by_sop[m.group(2)]))
        self.assertEqual(self.server.raw("GET", "/api/series/1.2.3.4.5/zip")[0], 404)
        self.assertEqual(self.server.raw("GET", "/api/series/%s/zip" % series, auth=None)[0], 401)

    def test_the_page_loads_nothing_from_elsewhere(self):
        status, headers, page = self.server.raw("GET", "/", auth=None)
        self.assertEqual(status, 200)
        policy = headers.get("Content-Security-Policy", "")
        self.assertIn("default-src 'self'", policy)
        self.assertIn("frame-ancestors 'none'", policy)
        self.assertNotIn(b"http://", page)
        self.assertNotIn(b"https://", page)
        # Its scripts and styles are ours, and may be kept (their names change with them).
        for ref in re.findall(rb'(?:src|href)="(/assets/[^"]+)"', page):
            status, h, _ = self.server.raw("GET", ref.decode(), auth=None)
            self.assertEqual(status, 200, ref)
            self.assertIn("immutable", h.get("Cache-Control", ""))


if __name__ == "__main__":
    unittest.main()
