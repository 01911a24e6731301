"""The series viewer in a real browser (ui/tests/viewer.mjs): opened from the Archive page, it
scrolls a CT series (one instance of three frames among single-frame ones, stored out of
order) with the keyboard, the wheel and the slider, loads the next images ahead, sets the
window by preset, by dragging and by typing, and passes axe-core; errors of the server (a series
the archive lacks: 404; an instance without an image: 406) are shown in the page in the server's
words.

The images are drawn by the server (WADO-RS rendered); what the viewer must show is worked out
here from the generated files, read by DCMTK's dcmdump (not by our code): the number of images
is the sum of the instances' frames, in Instance Number order.

Screenshots: see ui_support.py (viewer.png, viewer-lung.png, viewer-error.png)."""
import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ui_support  # noqa: E402
from harness import dicomgen  # noqa: E402

READER = ("viewer-reader", "viewer-Pw-123")
# Instance numbers of the single-frame CT images, in the order they are stored (not theirs).
SINGLE = [7, 3, 11, 5, 9]
MULTI = 6  # the instance number of the 3-frame instance
FRAMES = 3


def dump(path, *keys):
    """{keyword: value text} of the file's top-level elements KEYS, read by dcmdump."""
    args = ["dcmdump", "-q", "-M"]
    for k in keys:
        args += ["+P", k]
    cp = harness.run_tool(args + [str(path)])
    assert cp.returncode == 0, harness.proc_output(cp)
    out = {}
    for line in cp.stdout.splitlines():
        # (0028,0010) US 192     #   2, 1 Rows   /   (0020,0013) IS [7]    #   2, 1 InstanceNumber
        if not line.startswith("("):
            continue
        value, _, comment = line[14:].partition("#")
        keyword = comment.split()[-1]
        value = value.strip()
        if value.startswith("["):
            value = value[1:value.rindex("]")]
        out[keyword] = value
    return out


def modify(path, *edits):
    cp = harness.run_tool(["dcmodify", "-nb"] + list(edits) + [str(path)])
    assert cp.returncode == 0, harness.proc_output(cp)


class ViewerPageTest(harness.E2ETestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        ui_support.require_ui()
        cls.server = cls.start_class_server()
        status, body = cls.server.api("POST", "/api/users", {
            "username": READER[0], "role": "read-only", "password": READER[1]})
        assert status == 201, body
        cls.shots = ui_support.screenshots_dir(cls.tmp)
        uid = dicomgen.make_uids()
        cls.study, cls.series, cls.noimage_series = uid("study", 1), uid("series", 1, 1), uid("series", 1, 2)
        common = dict(study_uid=cls.study, patient_name="VIEWER^CT", patient_id="VIEW1",
                      study_date="20240321", study_description="viewer study")
        ct = cls.tmp / "ct"
        ct.mkdir()
        files = []

        def ct_image(n, index, size):
            z = "%.1f" % (-50 + 2.5 * n)
            path = ct / ("%02d.dcm" % n)
            dicomgen.write_instance(
                path, sop_uid=uid("instance", index), series_uid=cls.series, modality="CT",
                size=size, instance_number=n, series_description="viewer axial", **common,
                extra_elements=[(0x0020, 0x0032, "DS", "-120\\-110.5\\" + z),
                                (0x0020, 0x1041, "DS", z),
                                (0x0028, 0x1050, "DS", "1500"), (0x0028, 0x1051, "DS", "3000")])
            return path

        # Small images but the last, which is larger than the viewer's stage (about 900 x 900).
        for i, n in enumerate(SINGLE):
            files.append(ct_image(n, i + 1, 1_600_000 if n == max(SINGLE) else 30000))
        # The 3-frame instance: a single-frame one whose rows divide by 3, cut into 3 frames of
        # a third of the rows each (the pixel bytes stay the same).
        size = 60000
        while True:
            multi = ct_image(MULTI, 100, size)
            rows = int(dump(multi, "Rows")["Rows"])
            if rows % FRAMES == 0:
                break
            size += 300
        modify(multi, "-i", "(0028,0008)=%d" % FRAMES, "-m", "(0028,0010)=%d" % (rows // FRAMES))
        files.insert(2, multi)
        # A second series of the study: an image, then an instance without pixel data.
        other = cls.tmp / "noimage"
        other.mkdir()
        for n in (1, 2):
            dicomgen.write_instance(other / ("%d.dcm" % n), sop_uid=uid("instance", 200 + n),
                                    series_uid=cls.noimage_series, modality="OT", size=8000,
                                    instance_number=n, series_number=2,
                                    series_description="no image", **common)
        modify(other / "2.dcm", "-e", "(7fe0,0010)")
        cls.noimage_sop = uid("instance", 202)
        cp = harness.storescu(cls.server.dicom_port, cls.server.dicom_ae,
                              files + [other / "1.dcm", other / "2.dcm"])
        assert cp.returncode == 0, harness.proc_output(cp)

        # The images the viewer must show, from the files as DCMTK reads them: each instance
        # in Instance Number order, each of its frames.
        cls.slots = []
        instances = []
        for f in files:
            d = dump(f, "SOPInstanceUID", "InstanceNumber", "NumberOfFrames", "Rows",
                     "Columns", "SliceLocation")
            instances.append(d)
        for d in sorted(instances, key=lambda d: int(d["InstanceNumber"])):
            frames = int(d.get("NumberOfFrames", "1"))
            for frame in range(1, frames + 1):
                cls.slots.append({"sop": d["SOPInstanceUID"], "frame": frame, "frames": frames,
                                  "instance": int(d["InstanceNumber"]),
                                  "slice": float(d["SliceLocation"]),
                                  "rows": int(d["Rows"]), "columns": int(d["Columns"])})
        multi_dump = dump(multi, "NumberOfFrames", "Rows", "Columns", "BitsAllocated")
        assert int(multi_dump["NumberOfFrames"]) == FRAMES, multi_dump
        assert len(cls.slots) == len(SINGLE) + FRAMES, cls.slots
        assert harness.wait_until(lambda: any(
            s["StudyInstanceUID"] == cls.study and s["instance_count"] == len(SINGLE) + 1 + 2
            for s in cls.server.api("GET", "/api/studies")[1]), timeout=30)

    def run_scenarios(self, *names):
        env = {
            "PB_READER": READER[0], "PB_READER_PASSWORD": READER[1],
            "PB_VIEWER_STUDY": self.study, "PB_VIEWER_SERIES": self.series,
            "PB_VIEWER_SLOTS": json.dumps(self.slots),
            "PB_NOIMAGE_SERIES": self.noimage_series, "PB_NOIMAGE_SOP": self.noimage_sop,
        }
        ui_support.run_scenarios(self, self.server, "viewer.mjs", names, env, self.shots)

    def test_the_images_the_viewer_asks_for(self):
        """The premise of the scenarios, without a browser: every image of the series is one
        frame URL the server renders; a frame beyond the instance's is 404, an instance without
        pixel data 406."""
        base = "/dicom-web/studies/%s/series/%s/instances/" % (self.study, self.series)
        for s in self.slots:
            status, headers, body = self.server.raw(
                "GET", base + "%s/frames/%d/rendered?window=-600,1500" % (s["sop"], s["frame"]))
            self.assertEqual((status, headers.get("Content-Type")), (200, "image/jpeg"), body[:200])
            self.assertEqual(body[:2], b"\xff\xd8")
        multi = [s for s in self.slots if s["frames"] > 1][0]
        status, _, body = self.server.raw("GET", base + "%s/frames/%d/rendered" % (multi["sop"], FRAMES + 1))
        self.assertEqual(status, 404, body)
        status, _, body = self.server.raw("GET", "/dicom-web/studies/%s/series/%s/instances/%s/frames/1/rendered"
                                          % (self.study, self.noimage_series, self.noimage_sop))
        self.assertEqual(status, 406, body)
        # The metadata lists the instances in the order the viewer shows them.
        status, meta = self.server.api("GET", "/dicom-web/studies/%s/series/%s/metadata" % (self.study, self.series))
        self.assertEqual(status, 200, meta)
        self.assertEqual([m["00200013"]["Value"][0] for m in meta], sorted(SINGLE + [MULTI]))

    def test_viewer(self):
        self.run_scenarios("viewer", "errors")
        for name in ("viewer", "viewer-lung", "viewer-error"):
            self.assertTrue((self.shots / ("%s.png" % name)).is_file(), name)


if __name__ == "__main__":
    unittest.main()
