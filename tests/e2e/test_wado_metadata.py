"""Our DICOMweb server, WADO-RS beyond whole instances (PS3.18 10.4): metadata, frames and bulk
data.

Metadata (PS3.18 10.4.1.1.2, Annex F): GET /dicom-web/studies/{s}/metadata, .../series/{se}/
metadata and .../instances/{i}/metadata answer 200 application/dicom+json, a JSON array with one
DICOM JSON object per instance the path selects, grouped by series and in InstanceNumber order
within a series (the instances are stored in another order). Each object holds exactly the
file's top-level elements (group lengths aside), each with the file's VR (for an Implicit VR
file: the VR its Explicit twin, written by dicomgen with the same arguments, has) and its value
in the JSON form of PS3.18 F.2: strings without padding and split at backslashes, PN as
component groups, DS/IS/US/FD as JSON numbers, AT as 8 hex digits, SQ items as nested objects,
no "Value" for an empty element, null for an empty value among several (F.2.5); text converted
to UTF-8 from the file's ISO_IR 100 ("Müller^Jürgen", also in an LT). Pixel Data, and any
top-level binary value (OB/OW/...) longer than 1024 bytes, is a "BulkDataURI"
<root>/studies/S/series/SE/instances/I/bulk/<tag in 8 upper-case hex digits>; smaller binary
values come as "InlineBinary" (base64 of the file's bytes; 64 and 1024 bytes inline, 1026 as a
URI, and a 60-byte Pixel Data still as a URI). <root> is scheme://Host/dicom-web of the request
(also a Host the client chose), or [dicomweb] public_root (its trailing slash removed) on a
second server configured with one. With Accept-Encoding: gzip an answer over 4 KB comes with
Content-Encoding: gzip and decompresses to the plain answer; without it, or under 4 KB, it is
not compressed. Written ahead (on a server with duplicates = "overwrite"): once the index holds
every instance's metadata (observed read-only in the server's SQLite file, table
instance_metadata: the writer has no API), a replaced file (same UIDs and size, another Patient
ID) is answered with its new values, and the answer stays the same with the archive's files
moved away (while their bulk data, read from the files, is gone). 404 for a study/series/
instance not held (also a series under another study), 400 for a path segment that is no UID,
401 without credentials.

Independent oracle: the same files stored in Orthanc 1.10.1 with its DICOMweb plugin 1.7, whose
/dicom-web/studies/{s}/metadata must hold, per instance, the same top-level tags with the same
vr and Value. Known differences, measured and not compared: Orthanc keeps the source's Specific
Character Set ("ISO_IR 100") beside its UTF-8 strings where we (like DCMTK's dcm2json) give
"ISO_IR 192" -- both conventions are in use (DICOM CP-2518), each is accepted against the file;
Orthanc gives every binary value as a BulkDataURI (no InlineBinary) with its own paths, so for
binary values only the vr is compared with Orthanc (the file is the source of their bytes);
Orthanc leaves encapsulated Pixel Data out, so ours of the JPEG instances is checked against
the file only.

Frames (PS3.18 10.4.1.1.4, 8.7.3): GET .../instances/{i}/frames/{list}, frame numbers from 1.
multipart/related; type="application/octet-stream" (also with transfer-syntax=
1.2.840.10008.1.2.1 or *) gives one part per frame asked, uncompressed little endian, each part
"application/octet-stream; transfer-syntax=1.2.840.10008.1.2.1" -- from a native 3-frame
instance its frames, from a 3-frame and a single-frame JPEG lossless (.70) instance their frames
decoded, equal to the uncompressed originals' frames. type="image/jpeg" on the JPEG instances
gives the frames' compressed bytes as stored (each starts with FFD8 and equals its fragment in
the file, read here from the encapsulated Pixel Data). A bare Accept: application/octet-stream
for one frame is a single-part body; no Accept or */* gives frames as stored (JPEG stays JPEG,
native is octet-stream). 404 (field "frames") for a frame beyond Number of Frames, 400 for "0",
"a", "1,,2", 406 (field "Accept") for image/jls on the JPEG instance and for application/dicom.

Bulk data (PS3.18 10.4.1.1.3): each BulkDataURI of the metadata, followed, gives the file's
value of that tag as one part of multipart/related; type="application/octet-stream" (the bare
application/octet-stream gives it single-part); the Pixel Data of the JPEG instances as its
frames (decoded with octet-stream, as stored with image/jpeg). 404 for a tag the instance does
not have (or that is not binary), 400 for a malformed tag.

Value forms and robustness: decimal and integer strings in every form PS3.5 6.2 allows ("1.",
"1.E2", ".5", "+1.5E2", "01.5", " 400", IS "007") come as JSON numbers equal to the file's and to
Orthanc's, the instance not left out; a Host header that is no host (a quote, a backslash) is
400 (RFC 7230 5.4) or still gives valid DICOM JSON, never lets the Host add elements.

Test data (dicomgen, stored with storescu into the server's receiver in their own syntaxes):
study MET of "Müller^Jürgen" (ISO_IR 100) with a CT series in Explicit VR LE (one instance with
a Referenced Image Sequence, multi-valued DS and FD, an AT, a Latin-1 LT, OW values of 64, 1024
and 1026 bytes and a 2834-byte OB Encapsulated Document; one with 60 bytes of Pixel Data) stored
as instances 3, 1, 2, and an MR series in Implicit VR LE stored as 2, 1; study FRM with a native
3-frame CT (a dicomgen file with Number of Frames 3 and Rows divided by 3, made by dcmodify and
checked with dcmdump) and a series of DCMTK dcmcjpeg +e1 (JPEG lossless SV1) copies of a
3-frame and a single-frame file; study NUM with one instance of those decimal and integer
strings. Every expected value (UIDs, elements, VRs, frame bytes split at
Rows*Columns*SamplesPerPixel*BitsAllocated/8, fragments) comes from those files, never from the
server's answers. Multipart bodies are parsed with the standard library (test_wado_server's
RFC 2046 parser), independently of the server's code.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_wado_metadata.py
"""

import base64
import gzip
import json
import os
import shutil
import sqlite3
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_wado_server as wado  # noqa: E402  (split_params, multipart_parts: RFC 2046 parsing)
from harness import dicomgen  # noqa: E402

EXPLICIT = dicomgen.EXPLICIT_VR_LE
IMPLICIT = dicomgen.IMPLICIT_VR_LE
JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
SYNTAX = {"explicit": EXPLICIT, "implicit": IMPLICIT, "jpeg": JPEG_LOSSLESS_SV1}

READER, READER_PASSWORD = "meta-reader", "meta-Reader-pw7"

PATIENT_NAME = "Müller^Jürgen"
PUBLIC_ROOT = "https://proxy.example/pacs/dicom-web"

OCTETS = 'multipart/related; type="application/octet-stream"'
JPEG_PARTS = 'multipart/related; type="image/jpeg"'
OCTETS_PART_TYPE = "application/octet-stream; transfer-syntax=" + EXPLICIT
JPEG_PART_TYPE = "image/jpeg; transfer-syntax=" + JPEG_LOSSLESS_SV1

PIXEL_DATA = (0x7FE0, 0x0010)
SPECIFIC_CHARACTER_SET = (0x0008, 0x0005)
BULK_THRESHOLD = 1024

# PS3.5 Table 6.2-1, by how PS3.18 F.2.3 writes them.
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
NUMBER_VRS = {"US": "<H", "SS": "<h", "UL": "<I", "SL": "<i", "FL": "<f", "FD": "<d",
              "UV": "<Q", "SV": "<q"}
SINGLE_VALUED_TEXT = {"LT", "ST", "UT", "UR"}

# What the Referenced Image Sequence of MET's rich instance names.
REFERENCED_SOP = "1.2.826.0.1.3680043.9.7133.99.1"


def _explicit(group, elem, vr, value):
    """One Explicit VR LE element (for the sequence item written here)."""
    value = value.encode("ascii") if isinstance(value, str) else value
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HH2sH", group, elem, vr.encode("ascii"), len(value)) + value


def rich_elements():
    item = (_explicit(0x0008, 0x1150, "UI", dicomgen.CT_IMAGE_STORAGE)
            + _explicit(0x0008, 0x1155, "UI", REFERENCED_SOP))
    sequence = struct.pack("<HHI", 0xFFFE, 0xE000, len(item)) + item
    return [
        (0x0008, 0x1140, "SQ", sequence),                   # Referenced Image Sequence
        (0x0018, 0x0050, "DS", "1.25"),                      # Slice Thickness
        (0x0020, 0x4000, "LT", "Notes of Müller, kept"),     # Image Comments (LT, Latin-1)
        (0x0018, 0x9089, "FD", struct.pack("<3d", 0.0, 1.0, -0.5)),  # Diffusion Gradient Or.
        (0x0028, 0x0009, "AT", struct.pack("<HH", 0x0018, 0x1063)),  # Frame Increment Pointer
        (0x0028, 0x0030, "DS", "0.5\\0.625"),                # Pixel Spacing
        (0x0028, 0x1201, "OW", bytes(range(64))),            # 64 bytes: inline
        (0x0028, 0x1202, "OW", bytes(range(256)) * 4),       # 1024 bytes: still inline
        (0x0028, 0x1203, "OW", bytes(range(255, -1, -1)) * 4 + b"\x01\x02"),  # 1026: a URI
        (0x0042, 0x0011, "OB", b"%PDF-1.4\n" + bytes(range(256)) * 11 + b"%%EOF\n\n\n"),
    ]


def number_elements():
    """Decimal and integer strings in forms PS3.5 6.2 allows (DS: fixed point with an optional
    sign and decimal point, or a floating point number of ANSI X3.9 -- "1." and "1.E2" among
    them; leading/trailing spaces; IS with leading zeros) and an empty value among several
    (PS3.18 F.2.5: null)."""
    return [
        (0x0018, 0x0050, "DS", "1."),             # Slice Thickness
        (0x0018, 0x0088, "DS", "1.E2"),           # Spacing Between Slices
        (0x0018, 0x1063, "DS", ".5"),             # Frame Time
        (0x0020, 0x0012, "IS", "007"),            # Acquisition Number
        (0x0028, 0x0030, "DS", "+1.5E2\\01.5"),   # Pixel Spacing
        (0x0028, 0x1050, "DS", "40\\\\-0"),       # Window Center: 40, (empty), -0
        (0x0028, 0x1051, "DS", " 400"),           # Window Width
    ]


EXTRA = {"rich": rich_elements, "numbers": number_elements}

# (key, PatientID, name, charset, [(modality, stored as, [(instance number, size, kind)])])
# kind: "rich" (rich_elements), "numbers" (number_elements), "plain", "multiframe" (3
# frames); series numbered 1.. in this order, instances stored in the order listed.
DATA = [
    ("MET", "WMETA1", PATIENT_NAME, "ISO_IR 100", [
        ("CT", "explicit", [(3, 3000, "plain"), (1, 12000, "rich"), (2, 900, "plain")]),
        ("MR", "implicit", [(2, 2000, "plain"), (1, 2000, "plain")]),
    ]),
    ("FRM", "WFRAME2", "FRAMES^TEST", "", [
        ("CT", "explicit", [(1, 20000, "multiframe")]),
        ("CT", "jpeg", [(1, 24000, "multiframe"), (2, 6000, "plain")]),
    ]),
    ("NUM", "WNUM3", "NUMBERS^TEST", "", [("CT", "explicit", [(1, 2000, "numbers")])]),
]
FRAMES = 3


def run_ok(args):
    cp = harness.run_tool(args)
    if cp.returncode != 0:
        raise AssertionError("%s failed:\n%s" % (args[0], harness.proc_output(cp)))
    return cp


def us_value(elements, tag):
    return struct.unpack("<H", elements[tag][1][:2])[0]


def make_multiframe(path, frames, size, **kw):
    """A dicomgen file made into `frames` frames: Number of Frames inserted and Rows divided
    by `frames` (DCMTK dcmodify), so the same Pixel Data holds them; checked with dcmdump."""
    for attempt in range(200):  # a size whose Rows (dicomgen's geometry) `frames` divides
        dicomgen.write_instance(path, size=size + 64 * attempt, **kw)
        rows = us_value(dicomgen.read_elements(str(path)), (0x0028, 0x0010))
        if rows % frames == 0:
            break
    else:
        raise AssertionError("no size near %d gives Rows divisible by %d" % (size, frames))
    run_ok(["dcmodify", "-nb", "-i", "(0028,0008)=%d" % frames,
            "-m", "(0028,0010)=%d" % (rows // frames), path])
    dump = run_ok(["dcmdump", path]).stdout
    for line in ("(0028,0008) IS [%d]" % frames, "(0028,0010) US %d" % (rows // frames)):
        if line not in dump:
            raise AssertionError("dcmodify: %r not in dcmdump's output:\n%s" % (line, dump))


def jpeg_copy(src, dst):
    """A JPEG lossless (process 14, SV1) copy of src with the same UIDs (DCMTK dcmcjpeg)."""
    run_ok(["dcmcjpeg", "+e1", src, dst])
    meta, _ = dicomgen.read_meta(str(dst))
    if meta["TransferSyntaxUID"] != JPEG_LOSSLESS_SV1:
        raise AssertionError("dcmcjpeg wrote %r" % meta)
    return dst


def build_data(directory):
    """Write DATA; {"studies": {key: study}, "instances": {sop: instance}}. An instance:
    {"sop", "number", "path" (the file stored), "original" (the uncompressed file a JPEG copy
    was made from, else the same), "twin" (an Explicit file written with the same arguments,
    for the VRs of an Implicit one, else the same), "syntax", "frames", "study", "series"};
    a study: {"key", "uid", "series": [{"uid", "instances" (in InstanceNumber order)}],
    "stored": [instances in the order stored]}."""
    uid = dicomgen.make_uids()
    directory.mkdir(parents=True, exist_ok=True)
    studies, instances = {}, {}
    n = 0
    for st_index, (key, pid, name, charset, series_list) in enumerate(DATA, 1):
        study = {"key": key, "uid": uid("study", st_index), "series": [], "stored": []}
        studies[key] = study
        for se_index, (modality, stored, items) in enumerate(series_list, 1):
            series = {"uid": uid("series", st_index, se_index), "instances": []}
            study["series"].append(series)
            for number, size, kind in items:
                n += 1
                sop = uid("instance", n)
                args = dict(sop_uid=sop, study_uid=study["uid"], series_uid=series["uid"],
                            patient_name=name, patient_id=pid, charset=charset,
                            modality=modality, instance_number=number,
                            series_number=se_index, study_id=key,
                            extra_elements=EXTRA[kind]() if kind in EXTRA else None)
                path = directory / ("%06d.dcm" % n)
                syntax = "implicit" if stored == "implicit" else "explicit"
                if kind == "multiframe":
                    make_multiframe(path, FRAMES, size, syntax=syntax, **args)
                else:
                    dicomgen.write_instance(path, size=size, syntax=syntax, **args)
                twin = path
                if stored == "implicit":
                    twin = directory / ("%06d.explicit-twin.dcm" % n)
                    dicomgen.write_instance(twin, size=size, syntax="explicit", **args)
                original = path
                if stored == "jpeg":
                    path = jpeg_copy(original, directory / ("%06d.jpeg.dcm" % n))
                inst = {"sop": sop, "number": number, "path": path, "original": original,
                        "twin": twin, "syntax": SYNTAX[stored],
                        "frames": FRAMES if kind == "multiframe" else 1,
                        "study": study, "series": series}
                series["instances"].append(inst)
                study["stored"].append(inst)
                instances[sop] = inst
            series["instances"].sort(key=lambda i: i["number"])
    return {"studies": studies, "instances": instances}


# ------------------------------------------------------------------------------ the files

def frame_bytes(inst):
    """The uncompressed frames of an instance, from its (original) file's Pixel Data split at
    Rows*Columns*SamplesPerPixel*BitsAllocated/8."""
    el = dicomgen.read_elements(str(inst["original"]))
    size = (us_value(el, (0x0028, 0x0010)) * us_value(el, (0x0028, 0x0011))
            * us_value(el, (0x0028, 0x0002)) * us_value(el, (0x0028, 0x0100)) // 8)
    pixels = el[PIXEL_DATA][1]
    if len(pixels) != size * inst["frames"]:
        raise AssertionError("%s: %d bytes of Pixel Data, not %d frames of %d"
                             % (inst["original"], len(pixels), inst["frames"], size))
    return [pixels[i * size:(i + 1) * size] for i in range(inst["frames"])]


def fragments(path):
    """The items of a file's encapsulated Pixel Data (PS3.5 A.4), Basic Offset Table first,
    read from the file's bytes here (Explicit VR Little Endian data set, defined lengths
    before the Pixel Data)."""
    data = dicomgen.dataset_bytes(str(path))
    pos = 0
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4:pos + 6].decode("ascii")
        if vr in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV"):
            length, vpos = struct.unpack_from("<I", data, pos + 8)[0], pos + 12
        else:
            length, vpos = struct.unpack_from("<H", data, pos + 6)[0], pos + 8
        if (group, elem) == PIXEL_DATA:
            if length != 0xFFFFFFFF:
                raise AssertionError("%s: Pixel Data not encapsulated" % path)
            items, pos = [], vpos
            while True:
                g, e, n = struct.unpack_from("<HHI", data, pos)
                pos += 8
                if (g, e) == (0xFFFE, 0xE0DD):
                    return items
                if (g, e) != (0xFFFE, 0xE000):
                    raise AssertionError("%s: (%04X,%04X) in the pixel sequence" % (path, g, e))
                items.append(data[pos:pos + n])
                pos += n
        if length == 0xFFFFFFFF:
            raise AssertionError("%s: undefined length before the Pixel Data" % path)
        pos = vpos + length
    raise AssertionError("%s: no Pixel Data" % path)


def stored_frames(inst):
    """The JPEG frames of an instance as its file holds them: one fragment per frame
    (dcmcjpeg's way; checked)."""
    items = fragments(inst["path"])
    if len(items) - 1 != inst["frames"]:
        raise AssertionError("%s: %d fragments for %d frames" % (inst["path"], len(items) - 1,
                                                                  inst["frames"]))
    return items[1:]


def sequence_items(raw):
    """The items of a defined-length SQ value (Explicit VR LE) as element maps."""
    items, pos = [], 0
    while pos + 8 <= len(raw):
        g, e, n = struct.unpack_from("<HHI", raw, pos)
        if (g, e) != (0xFFFE, 0xE000):
            raise AssertionError("(%04X,%04X) in a sequence" % (g, e))
        items.append(dicomgen.read_elements(raw[pos + 8:pos + 8 + n], explicit=True))
        pos += 8 + n
    return items


def tag_key(tag):
    return "%04X%04X" % tag


def charset_of(inst):
    el = dicomgen.read_elements(str(inst["path"]))
    raw = el.get(SPECIFIC_CHARACTER_SET, (None, b""))[1] or b""
    return raw.decode("ascii").strip(" \0")


def expected_object(elements, vrs, charset):
    """What the DICOM JSON object of a data set must say (PS3.18 F.2), from the file's own
    elements: {key: (vr, kind, value)}, kind "Value" (the JSON Value list), "empty" (no Value),
    "binary" (the raw bytes: InlineBinary or BulkDataURI by size), "SQ" (a list of item
    expectations). vrs: {tag: VR} (an Implicit file's from its Explicit twin)."""
    out = {}
    for tag, (_, raw) in sorted(elements.items()):
        if tag[1] == 0x0000 or tag[0] == 0x0002:
            continue  # group lengths and the meta header are not part of the model
        vr = vrs[tag]
        key = tag_key(tag)
        if vr == "SQ":
            out[key] = (vr, "SQ", [expected_object(item, {t: v for t, (v, _) in item.items()},
                                                   charset) for item in sequence_items(raw)])
        elif vr in BINARY_VRS:
            out[key] = (vr, "binary", raw)
        elif not raw:
            out[key] = (vr, "empty", None)
        elif vr == "AT":
            out[key] = (vr, "Value", ["%04X%04X" % struct.unpack_from("<HH", raw, i)
                                      for i in range(0, len(raw), 4)])
        elif vr in NUMBER_VRS:
            fmt = NUMBER_VRS[vr]
            size = struct.calcsize(fmt)
            out[key] = (vr, "Value", [struct.unpack_from(fmt, raw, i)[0]
                                      for i in range(0, len(raw), size)])
        else:
            text = dicomgen.decode_text(raw, charset) if vr in dicomgen.TEXT_VRS else \
                raw.decode("ascii")
            text = text.rstrip(" \0")
            values = [text] if vr in SINGLE_VALUED_TEXT else text.split("\\")
            # An empty value among several: null (PS3.18 F.2.5).
            if vr == "PN":
                values = [dict(zip(("Alphabetic", "Ideographic", "Phonetic"), v.split("=")))
                          if v else None for v in values]
            elif vr == "DS":
                values = [float(v) if v.strip() else None for v in values]
            elif vr == "IS":
                values = [int(v) if v.strip() else None for v in values]
            else:
                values = [v if v else None for v in values]
            out[key] = (vr, "Value", values)
    return out


def same_number(a, b):
    return (isinstance(a, (int, float)) and not isinstance(a, bool)
            and isinstance(b, (int, float)) and not isinstance(b, bool) and float(a) == float(b))


def same_values(a, b):
    """JSON Value lists equal (numbers by value: 1.25 == 1.25, 0 == 0.0)."""
    if not (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)):
        return False
    for x, y in zip(a, b):
        if x is None:
            if y is not None:
                return False
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            if not same_number(x, y):
                return False
        elif x != y:
            return False
    return True


class WadoMetadataTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.data = build_data(cls.tmp / "data")
        cls.server = cls.start_class_server()
        cls.store(cls.server, [i for s in cls.data["studies"].values() for i in s["stored"]])
        status, body = cls.server.api("POST", "/api/users", {
            "username": READER, "role": "read-only", "password": READER_PASSWORD})
        if status != 201:
            raise AssertionError("POST /api/users -> %s %r" % (status, body))
        cls.reader = (READER, READER_PASSWORD)
        # The oracle: the same files in Orthanc with its DICOMweb plugin.
        cls.orthanc = cls.start_class_orthanc(dicomweb=True)
        for inst in cls.data["instances"].values():
            cls.orthanc.upload(inst["path"])

    @classmethod
    def store(cls, server, instances):
        """storescu, in the order given, each file in its own syntax (-xi Implicit, -xs JPEG
        lossless SV1: otherwise storescu would convert them); waits until indexed."""
        extra = {EXPLICIT: [], IMPLICIT: ["-xi"], JPEG_LOSSLESS_SV1: ["-xs"]}
        for inst in instances:  # one by one: the archive's arrival order is the order given
            cp = harness.storescu(server.dicom_port, server.dicom_ae, [inst["path"]],
                                  extra=extra[inst["syntax"]])
            if cp.returncode != 0:
                raise AssertionError("storescu failed:\n%s" % harness.proc_output(cp))
        expected = {}
        for inst in instances:
            expected[inst["study"]["uid"]] = expected.get(inst["study"]["uid"], 0) + 1
        harness.wait_studies_indexed(server, expected)

    # ------------------------------------------------------------------ helpers

    def study(self, key):
        return self.data["studies"][key]

    def inst(self, key, series_index, number):
        for i in self.study(key)["series"][series_index]["instances"]:
            if i["number"] == number:
                return i
        raise KeyError((key, series_index, number))

    def instances_of(self, key, series_index=None):
        s = self.study(key)
        series = s["series"] if series_index is None else [s["series"][series_index]]
        return [i for se in series for i in se["instances"]]

    def path_of(self, inst=None, series=None, study=None):
        """The WADO-RS route (below the server's URL) of an instance, a series or a study."""
        if inst is not None:
            return "/dicom-web/studies/%s/series/%s/instances/%s" % (
                inst["study"]["uid"], inst["series"]["uid"], inst["sop"])
        if series is not None:
            return "/dicom-web/studies/%s/series/%s" % (study["uid"], series["uid"])
        return "/dicom-web/studies/%s" % study["uid"]

    def bulk_prefix(self, inst, root):
        return "%s/studies/%s/series/%s/instances/%s/bulk/" % (
            root, inst["study"]["uid"], inst["series"]["uid"], inst["sop"])

    def get(self, path, accept=None, headers=None, server=None, auth=None):
        """GET path on the class server as the read-only account, on another server as its
        admin (auth False: none), with that Accept (None: no Accept header): (status, headers,
        body bytes)."""
        server = server or self.server
        hdrs = dict(headers or {})
        if accept is not None:
            hdrs["Accept"] = accept
        creds = auth or (self.reader if server is self.server else server.credentials)
        return server.raw("GET", path, headers=hdrs, auth=None if auth is False else creds,
                          timeout=60)

    def metadata(self, path, headers=None, server=None):
        """GET path (a .../metadata route): must be 200 application/dicom+json, a JSON array
        in UTF-8, not gzip-compressed unless asked; returns (the array, the body bytes)."""
        status, hdrs, body = self.get(path, "application/dicom+json", headers, server)
        self.assertEqual(status, 200, "GET %s -> %s %r" % (path, status, body[:500]))
        media, _ = wado.split_params(hdrs.get("Content-Type") or "")
        self.assertEqual(media, "application/dicom+json", "GET %s: Content-Type %r"
                         % (path, hdrs.get("Content-Type")))
        if "gzip" not in (headers or {}).get("Accept-Encoding", ""):
            self.assertIsNone(hdrs.get("Content-Encoding"), "GET %s: compressed unasked" % path)
        try:
            answer = json.loads(body.decode("utf-8"))  # strict: invalid UTF-8 fails here
        except (UnicodeDecodeError, ValueError) as e:
            self.fail("GET %s: not JSON in UTF-8 (%s): %r" % (path, e, body[:300]))
        self.assertIsInstance(answer, list, "GET %s" % path)
        return answer, body

    def expected(self, inst):
        """expected_object of an instance's stored file, VRs from its Explicit twin (the
        original's, for a JPEG copy: the same elements but Pixel Data, which is OB there)."""
        elements = dicomgen.read_elements(str(inst["path"]))
        vrs = {t: v for t, (v, _) in dicomgen.read_elements(str(inst["twin"])).items()}
        if inst["syntax"] == JPEG_LOSSLESS_SV1:
            vrs = {t: v for t, (v, _) in elements.items()}
        return expected_object(elements, vrs, charset_of(inst))

    def assertObjectMatches(self, got, expected, where, bulk_prefix, charset=None):
        """A DICOM JSON object holds exactly the expected elements (expected_object), binary
        values inline or as BulkDataURI bulk_prefix + tag by the 1024-byte rule."""
        self.assertIsInstance(got, dict, where)
        self.assertEqual(sorted(got), sorted(expected), "%s: the object's tags" % where)
        for key, (vr, kind, value) in expected.items():
            ctx = "%s, %s" % (where, key)
            element = got[key]
            self.assertEqual(element.get("vr"), vr, "%s: vr (%r)" % (ctx, element))
            if key == tag_key(SPECIFIC_CHARACTER_SET):
                # The strings are UTF-8 now: "ISO_IR 192", or the source's term (CP-2518).
                self.assertIn(element.get("Value"), (["ISO_IR 192"], value), ctx)
            elif kind == "binary":
                # value None: encapsulated (undefined length), pixel data
                bulk = key == tag_key(PIXEL_DATA) or value is None or len(value) > BULK_THRESHOLD
                if bulk:
                    self.assertEqual(element, {"vr": vr, "BulkDataURI": bulk_prefix + key},
                                     "%s: %s bytes: a BulkDataURI"
                                     % (ctx, "encapsulated" if value is None else len(value)))
                else:
                    self.assertEqual(sorted(element), ["InlineBinary", "vr"],
                                     "%s: %d bytes: inline" % (ctx, len(value)))
                    self.assertEqual(base64.b64decode(element["InlineBinary"], validate=True),
                                     value, "%s: InlineBinary" % ctx)
            elif kind == "empty":
                self.assertEqual(element, {"vr": vr}, "%s: empty, no Value (F.2.5)" % ctx)
            elif kind == "SQ":
                items = element.get("Value")
                self.assertIsInstance(items, list, ctx)
                self.assertEqual(len(items), len(value), ctx)
                for n, (g, e) in enumerate(zip(items, value), 1):
                    self.assertObjectMatches(g, e, "%s item %d" % (ctx, n), None)
            else:
                self.assertEqual(sorted(element), ["Value", "vr"], ctx)
                self.assertTrue(same_values(value, element["Value"]),
                                "%s: Value %r, the file's %r" % (ctx, element["Value"], value))

    def assertMetadataOf(self, answer, instances, where, root):
        """The answer holds the instances' objects, in that order, each matching its file."""
        sops = [((o.get("00080018") or {}).get("Value") or [None])[0] for o in answer]
        self.assertEqual(sops, [i["sop"] for i in instances], "%s: instances / order" % where)
        for obj, inst in zip(answer, instances):
            self.assertObjectMatches(obj, self.expected(inst), "%s, instance %s" % (where,
                                                                                     inst["sop"]),
                                     self.bulk_prefix(inst, root))

    def assertOrdered(self, answer, study, where):
        """Grouped by series, InstanceNumber ascending within each (the series' order is the
        archive's; the instances of each were stored in another order)."""
        got = [(o["0020000E"]["Value"][0], o["00200013"]["Value"][0]) for o in answer]
        series_seen = []
        for se, _ in got:
            if not series_seen or series_seen[-1] != se:
                series_seen.append(se)
        self.assertEqual(sorted(series_seen), sorted(s["uid"] for s in study["series"]),
                         "%s: each series once, together: %r" % (where, got))
        order = []
        for se in series_seen:
            series = next(s for s in study["series"] if s["uid"] == se)
            order += series["instances"]
        return order

    def parts(self, status, hdrs, body, where, media_type):
        """A 200 multipart/related answer of `media_type` parts: [(part headers, payload)]."""
        self.assertEqual(status, 200, "%s -> %s %r" % (where, status, body[:300]))
        ctype = hdrs.get("Content-Type") or ""
        media, params = wado.split_params(ctype)
        self.assertEqual(media, "multipart/related", "%s: Content-Type %r" % (where, ctype))
        self.assertEqual(dict(params).get("type", "").lower(), media_type,
                         "%s: Content-Type %r" % (where, ctype))
        return wado.multipart_parts(ctype, body)

    def assertFrames(self, parts, expected, part_type, where):
        self.assertEqual(len(parts), len(expected), "%s: parts" % where)
        for n, ((phdrs, payload), frame) in enumerate(zip(parts, expected), 1):
            self.assertEqual(phdrs.get("content-type", "").replace('"', ""), part_type,
                             "%s: part %d's Content-Type" % (where, n))
            self.assertTrue(payload == frame, "%s: part %d: %d bytes, not the expected %d"
                            % (where, n, len(payload), len(frame)))

    # ================================================================== 1. metadata

    def test_01_study_series_and_instance_metadata_hold_the_files_elements(self):
        root = self.server.url + "/dicom-web"
        for key in ("MET", "FRM"):
            study = self.study(key)
            with self.subTest("study", key=key):
                answer, _ = self.metadata(self.path_of(study=study) + "/metadata")
                order = self.assertOrdered(answer, study, "study %s" % key)
                self.assertMetadataOf(answer, order, "study %s" % key, root)
            for n, series in enumerate(study["series"]):
                with self.subTest("series", key=key, series=n + 1):
                    answer, _ = self.metadata(self.path_of(series=series, study=study)
                                              + "/metadata")
                    self.assertMetadataOf(answer, series["instances"], "series %d" % (n + 1),
                                          root)
            for inst in self.instances_of(key):
                with self.subTest("instance", key=key, sop=inst["sop"]):
                    answer, _ = self.metadata(self.path_of(inst=inst) + "/metadata")
                    self.assertMetadataOf(answer, [inst], "instance", root)

    def test_02_latin1_name_arrives_as_utf8(self):
        for inst in self.instances_of("MET"):
            raw = dicomgen.read_elements(str(inst["path"]))[(0x0010, 0x0010)][1]
            self.assertIn("Müller^Jürgen".encode("latin-1"), raw)  # premise: Latin-1 in the file
        answer, body = self.metadata(self.path_of(study=self.study("MET")) + "/metadata")
        # The body is strict UTF-8 (metadata() decodes it so); the name in it as UTF-8 bytes,
        # or as JSON \u escapes (both are UTF-8 JSON, RFC 8259 7), never as Latin-1 bytes.
        self.assertNotIn("Müller".encode("latin-1"), body)
        self.assertTrue("Müller^Jürgen".encode("utf-8") in body
                        or b"M\\u00fcller^J\\u00fcrgen" in body, "the name in the body")
        for obj in answer:
            self.assertEqual(obj["00100010"], {"vr": "PN", "Value": [{"Alphabetic": PATIENT_NAME}]})
        # LT (no PN groups): also converted.
        rich = self.inst("MET", 0, 1)
        answer, _ = self.metadata(self.path_of(inst=rich) + "/metadata")
        self.assertEqual(answer[0]["00204000"], {"vr": "LT", "Value": ["Notes of Müller, kept"]})

    def test_03_binary_values_inline_or_bulk_data_uri_by_size(self):
        """The boundary by name: 64 and 1024 bytes inline, 1026 and 2834 bytes and any Pixel
        Data (60 bytes in instance 2) as BulkDataURIs with the tag in upper-case hex."""
        root = self.server.url + "/dicom-web"
        rich, small = self.inst("MET", 0, 1), self.inst("MET", 0, 2)
        pixels = dicomgen.read_elements(str(small["path"]))[PIXEL_DATA][1]
        self.assertLess(len(pixels), BULK_THRESHOLD)  # premise
        (obj,), _ = self.metadata(self.path_of(inst=rich) + "/metadata")
        self.assertEqual(sorted(obj["00281201"]), ["InlineBinary", "vr"])
        self.assertEqual(len(base64.b64decode(obj["00281202"]["InlineBinary"])), 1024)
        for key in ("00281203", "00420011", "7FE00010"):
            self.assertEqual(obj[key]["BulkDataURI"], self.bulk_prefix(rich, root) + key)
        (obj,), _ = self.metadata(self.path_of(inst=small) + "/metadata")
        self.assertEqual(obj["7FE00010"], {"vr": "OW", "BulkDataURI":
                                           self.bulk_prefix(small, root) + "7FE00010"})

    def test_04_orthanc_gives_the_same_tags_vrs_and_values(self):
        for key in ("MET", "FRM"):
            self.assertStudySameAsOrthanc(key)

    def assertStudySameAsOrthanc(self, key):
        study = self.study(key)
        path = "/dicom-web/studies/%s/metadata" % study["uid"]
        status, _, body = self.orthanc.rest("GET", path,
                                            headers={"Accept": "application/dicom+json"})
        self.assertEqual(status, 200, "Orthanc %s -> %s %r" % (path, status, body[:300]))
        theirs = {o["00080018"]["Value"][0]: o for o in json.loads(body.decode("utf-8"))}
        ours, _ = self.metadata(path)
        ours = {o["00080018"]["Value"][0]: o for o in ours}
        self.assertEqual(sorted(theirs), sorted(i["sop"] for i in self.instances_of(key)),
                         "premise: Orthanc holds study %s" % key)
        self.assertEqual(sorted(ours), sorted(theirs), "study %s: instances" % key)
        for sop, obj in ours.items():
            with self.subTest(study=key, sop=sop):
                self.assertSameAsOrthanc(obj, theirs[sop], "study %s, %s" % (key, sop),
                                         self.data["instances"][sop]["syntax"]
                                         == JPEG_LOSSLESS_SV1)

    def assertSameAsOrthanc(self, ours, theirs, where, encapsulated=False):
        ours = dict(ours)
        if encapsulated:
            # Orthanc leaves encapsulated Pixel Data out of its metadata (measured): ours is
            # checked against the file only (test_01, test_05).
            self.assertNotIn("7FE00010", theirs, where)
            ours.pop("7FE00010", None)
        self.assertEqual(sorted(ours), sorted(theirs), "%s: tags (ours vs Orthanc's)" % where)
        for key, element in ours.items():
            other = theirs[key]
            ctx = "%s, %s: ours %r, Orthanc's %r" % (where, key, element, other)
            self.assertEqual(element.get("vr"), other.get("vr"), ctx)
            if key == tag_key(SPECIFIC_CHARACTER_SET):
                continue  # ISO_IR 192 vs the source's term: see the module docstring
            if element.get("vr") in BINARY_VRS:
                # Orthanc: always a BulkDataURI of its own; the bytes are checked against the
                # file (test_03, test_05).
                self.assertTrue("BulkDataURI" in other or "InlineBinary" in other, ctx)
                continue
            if element.get("vr") == "SQ":
                self.assertEqual(len(element.get("Value", [])), len(other.get("Value", [])), ctx)
                for a, b in zip(element.get("Value", []), other.get("Value", [])):
                    self.assertSameAsOrthanc(a, b, "%s item" % ctx)
                continue
            self.assertEqual("Value" in element, "Value" in other, ctx)
            if "Value" in element:
                self.assertTrue(same_values(element["Value"], other["Value"]), ctx)

    # ================================================================== 2. bulk data

    def test_05_bulk_data_uris_give_the_files_values(self):
        root = self.server.url + "/dicom-web"
        for key in ("MET", "FRM"):
            answer, _ = self.metadata(self.path_of(study=self.study(key)) + "/metadata")
            for obj in answer:
                inst = self.data["instances"][obj["00080018"]["Value"][0]]
                elements = dicomgen.read_elements(str(inst["path"]))
                uris = {k: e["BulkDataURI"] for k, e in obj.items() if "BulkDataURI" in e}
                self.assertIn("7FE00010", uris, inst["sop"])
                for tag_hex, uri in sorted(uris.items()):
                    where = "GET %s" % uri
                    self.assertTrue(uri.startswith(root + "/"), where)
                    path = uri[len(self.server.url):]
                    tag = (int(tag_hex[:4], 16), int(tag_hex[4:], 16))
                    with self.subTest(uri=uri):
                        if inst["syntax"] == JPEG_LOSSLESS_SV1 and tag == PIXEL_DATA:
                            # Its frames: decoded with octet-stream, as stored with image/jpeg.
                            self.assertFrames(self.parts(*self.get(path, OCTETS), where,
                                                         "application/octet-stream"),
                                              frame_bytes(inst), OCTETS_PART_TYPE, where)
                            self.assertFrames(self.parts(*self.get(path, JPEG_PARTS), where,
                                                         "image/jpeg"),
                                              stored_frames(inst), JPEG_PART_TYPE, where)
                            continue
                        value = elements[tag][1]
                        parts = self.parts(*self.get(path, OCTETS), where,
                                           "application/octet-stream")
                        self.assertEqual(len(parts), 1, where)
                        self.assertEqual(parts[0][0].get("content-type"),
                                         "application/octet-stream", where)
                        self.assertTrue(parts[0][1] == value, "%s: %d bytes, the file's %d"
                                        % (where, len(parts[0][1]), len(value)))
                        status, hdrs, body = self.get(path, "application/octet-stream")
                        self.assertEqual((status, hdrs.get("Content-Type")),
                                         (200, "application/octet-stream"), where)
                        self.assertTrue(body == value, "%s: single part" % where)
        # A single-frame JPEG instance's Pixel Data with the bare octet-stream: one body.
        inst = self.inst("FRM", 1, 2)
        status, hdrs, body = self.get(self.path_of(inst=inst) + "/bulk/7FE00010",
                                      "application/octet-stream")
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(wado.split_params(hdrs.get("Content-Type") or "")[0],
                         "application/octet-stream")
        self.assertTrue(body == frame_bytes(inst)[0], "decoded single frame as the body")

    def test_06_bulk_data_errors(self):
        rich, plain = self.inst("MET", 0, 1), self.inst("MET", 0, 3)
        for label, path, status in (
                ("a tag the instance does not have", self.path_of(inst=plain) + "/bulk/00281203",
                 404),
                ("a tag no instance has", self.path_of(inst=rich) + "/bulk/00091001", 404),
                ("a text value (PN), not bulk data", self.path_of(inst=rich) + "/bulk/00100010",
                 404),
                ("seven hex digits", self.path_of(inst=rich) + "/bulk/7FE0001", 400),
                ("nine hex digits", self.path_of(inst=rich) + "/bulk/7FE000100", 400),
                ("not hex", self.path_of(inst=rich) + "/bulk/7FE0001G", 400),
                ("a keyword", self.path_of(inst=rich) + "/bulk/PixelData", 400)):
            with self.subTest(label):
                got, _, body = self.get(path, OCTETS)
                self.assertJsonError(got, harness.parse_json(body), None, status)

    def test_07_public_root_and_host_name_the_bulk_data_uris(self):
        rich = self.inst("MET", 0, 1)
        # The request's Host, whatever it is.
        answer, _ = self.metadata(self.path_of(inst=rich) + "/metadata",
                                  headers={"Host": "viewer.example:8042"})
        self.assertMetadataOf(answer, [rich], "Host viewer.example:8042",
                              "http://viewer.example:8042/dicom-web")
        # [dicomweb] public_root (given with a trailing slash) on a second server.
        b = self.start_server(extra_toml='[dicomweb]\npublic_root = "%s/"\n' % PUBLIC_ROOT)
        self.store(b, [rich])
        for headers in (None, {"Host": "viewer.example:8042"}):
            answer, _ = self.metadata(self.path_of(inst=rich) + "/metadata", server=b,
                                      headers=headers)
            self.assertMetadataOf(answer, [rich], "public_root, Host %r" % headers, PUBLIC_ROOT)
        # The route below the public root is served (a proxy strips its prefix).
        uri = answer[0]["00420011"]["BulkDataURI"]
        path = "/dicom-web" + uri[len(PUBLIC_ROOT):]
        status, hdrs, body = b.raw("GET", path, headers={"Accept": "application/octet-stream"})
        self.assertEqual(status, 200, body[:300])
        self.assertTrue(body == dicomgen.read_elements(str(rich["path"]))[(0x0042, 0x0011)][1])

    # ================================================================== 3. gzip

    def test_08_gzip_when_accepted_and_over_4_kb(self):
        path = self.path_of(study=self.study("MET")) + "/metadata"
        plain, plain_body = self.metadata(path)
        self.assertGreater(len(plain_body), 4096)  # premise
        status, hdrs, body = self.get(path, "application/dicom+json",
                                      {"Accept-Encoding": "gzip, deflate"})
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(hdrs.get("Content-Encoding"), "gzip")
        self.assertEqual(wado.split_params(hdrs.get("Content-Type") or "")[0],
                         "application/dicom+json")
        unpacked = gzip.decompress(body)
        self.assertEqual(json.loads(unpacked.decode("utf-8")), plain)
        # Under 4 KB: not compressed even when accepted.
        small = self.path_of(inst=self.inst("MET", 0, 2)) + "/metadata"
        _, small_body = self.metadata(small)
        self.assertLess(len(small_body), 4096)  # premise
        status, hdrs, body = self.get(small, "application/dicom+json",
                                      {"Accept-Encoding": "gzip"})
        self.assertEqual((status, hdrs.get("Content-Encoding")), (200, None))
        self.assertEqual(body, small_body)

    # ================================================================== 4. frames

    def test_09_frames_of_a_native_multiframe_instance(self):
        inst = self.inst("FRM", 0, 1)
        frames = frame_bytes(inst)
        self.assertEqual(len(set(frames)), FRAMES)  # premise: the frames differ
        base = self.path_of(inst=inst) + "/frames/"
        for accept in (OCTETS, OCTETS + "; transfer-syntax=" + EXPLICIT,
                       OCTETS + "; transfer-syntax=*", None, "*/*"):
            for frame_list, numbers in (("1,3", [1, 3]), ("2", [2]), ("1,2,3", [1, 2, 3])):
                where = "GET %s%s, Accept %r" % (base, frame_list, accept)
                with self.subTest(accept=accept, frames=frame_list):
                    self.assertFrames(self.parts(*self.get(base + frame_list, accept), where,
                                                 "application/octet-stream"),
                                      [frames[n - 1] for n in numbers], OCTETS_PART_TYPE, where)
        status, hdrs, body = self.get(base + "2", "application/octet-stream")
        self.assertEqual(status, 200, body[:300])
        self.assertEqual(hdrs.get("Content-Type", "").replace('"', ""), OCTETS_PART_TYPE)
        self.assertTrue(body == frames[1], "single-part frame 2")

    def test_10_frames_of_jpeg_instances_decoded_or_as_stored(self):
        for inst in (self.inst("FRM", 1, 1), self.inst("FRM", 1, 2)):
            decoded, stored = frame_bytes(inst), stored_frames(inst)
            for f in stored:
                self.assertEqual(f[:2], b"\xff\xd8")  # premise: JPEG streams
            base = self.path_of(inst=inst) + "/frames/"
            asked = [1, 3] if inst["frames"] == 3 else [1]
            frame_list = ",".join(str(n) for n in asked)
            where = "GET %s%s" % (base, frame_list)
            with self.subTest("decoded", frames=inst["frames"]):
                self.assertFrames(self.parts(*self.get(base + frame_list, OCTETS), where,
                                             "application/octet-stream"),
                                  [decoded[n - 1] for n in asked], OCTETS_PART_TYPE, where)
            for accept in (JPEG_PARTS, JPEG_PARTS + "; transfer-syntax=" + JPEG_LOSSLESS_SV1,
                           None, "*/*"):
                with self.subTest("as stored", frames=inst["frames"], accept=accept):
                    parts = self.parts(*self.get(base + frame_list, accept), where, "image/jpeg")
                    self.assertFrames(parts, [stored[n - 1] for n in asked], JPEG_PART_TYPE,
                                      "%s, Accept %r" % (where, accept))
                    for _, payload in parts:
                        self.assertEqual(payload[:2], b"\xff\xd8", where)
            status, hdrs, body = self.get(base + "1", "application/octet-stream")
            with self.subTest("single part", frames=inst["frames"]):
                self.assertEqual(status, 200, body[:300])
                self.assertEqual(hdrs.get("Content-Type", "").replace('"', ""), OCTETS_PART_TYPE)
                self.assertTrue(body == decoded[0], "single-part frame 1 decoded")

    def test_11_frame_errors(self):
        native, jpeg, single = (self.inst("FRM", 0, 1), self.inst("FRM", 1, 1),
                                self.inst("FRM", 1, 2))
        for label, inst, frames, status, field, accept in (
                ("frame 4 of 3", native, "4", 404, "frames", OCTETS),
                ("frames 1 and 4 of 3", jpeg, "1,4", 404, "frames", OCTETS),
                ("frame 2 of 1", single, "2", 404, "frames", OCTETS),
                ("frame 0", native, "0", 400, "frames", OCTETS),
                ("a letter", native, "a", 400, "frames", OCTETS),
                ("an empty item", native, "1,,2", 400, "frames", OCTETS),
                ("JPEG-LS of a JPEG instance", jpeg, "1", 406, "Accept",
                 'multipart/related; type="image/jls"'),
                ("application/dicom", jpeg, "1", 406, "Accept",
                 'multipart/related; type="application/dicom"'),
                ("application/dicom of a native instance", native, "1", 406, "Accept",
                 'multipart/related; type="application/dicom"')):
            with self.subTest(label):
                got, _, body = self.get(self.path_of(inst=inst) + "/frames/" + frames, accept)
                self.assertJsonError(got, harness.parse_json(body), field, status)

    # ================================================================== 5. errors

    def test_12_metadata_not_held_is_404_and_no_uid_is_400(self):
        met, frm = self.study("MET"), self.study("FRM")
        se = met["series"][0]["uid"]
        ghost = dicomgen.make_uids()
        for label, path, status in (
                ("unknown study", "/dicom-web/studies/%s/metadata" % ghost("study", 9), 404),
                ("unknown series", "/dicom-web/studies/%s/series/%s/metadata"
                 % (met["uid"], ghost("series", 9, 9)), 404),
                ("unknown instance", "/dicom-web/studies/%s/series/%s/instances/%s/metadata"
                 % (met["uid"], se, ghost("instance", 99)), 404),
                ("a series of another study", "/dicom-web/studies/%s/series/%s/metadata"
                 % (met["uid"], frm["series"][0]["uid"]), 404),
                ("frames of an unknown instance",
                 "/dicom-web/studies/%s/series/%s/instances/%s/frames/1"
                 % (met["uid"], se, ghost("instance", 99)), 404),
                ("bulk data of an unknown instance",
                 "/dicom-web/studies/%s/series/%s/instances/%s/bulk/7FE00010"
                 % (met["uid"], se, ghost("instance", 99)), 404),
                ("study not a UID", "/dicom-web/studies/not-a-uid/metadata", 400),
                ("series not a UID", "/dicom-web/studies/%s/series/1.2.abc/metadata"
                 % met["uid"], 400),
                ("instance not a UID", "/dicom-web/studies/%s/series/%s/instances/1.2-3/metadata"
                 % (met["uid"], se), 400),
                ("study longer than 64", "/dicom-web/studies/%s/metadata" % ("1" * 65), 400)):
            with self.subTest(label):
                got, _, body = self.get(path, "application/dicom+json")
                self.assertJsonError(got, harness.parse_json(body), None, status)

    def test_13_credentials_required(self):
        inst = self.inst("FRM", 0, 1)
        for path in (self.path_of(study=self.study("FRM")) + "/metadata",
                     self.path_of(inst=inst) + "/metadata", self.path_of(inst=inst) + "/frames/1",
                     self.path_of(inst=inst) + "/bulk/7FE00010"):
            with self.subTest(path=path):
                status, _, body = self.get(path, auth=False)
                self.assertEqual(status, 401, body[:300])
                self.assertNotIn(b"7FE00010", body)

    # ================================================================== 6. written ahead

    def test_14_written_ahead_renewed_on_replace_and_served_without_the_files(self):
        """A server with duplicates = "overwrite": the metadata, once written ahead, follows a
        replaced file (same UIDs, same size, another Patient ID), and is answered from the
        index with the archive's files moved away."""
        b = self.start_server(server_toml='duplicates = "overwrite"')
        instances = self.instances_of("MET", 1)  # the Implicit MR series
        self.store(b, instances)
        self.assertTrue(harness.wait_until(lambda: self.rows_written(b) >= len(instances),
                                           20, 0.1),
                        "the writer did not write the metadata of %d instances ahead"
                        % len(instances))
        study = self.study("MET")
        path = self.path_of(series=study["series"][1], study=study) + "/metadata"
        root = b.url + "/dicom-web"
        answer, _ = self.metadata(path, server=b)
        self.assertMetadataOf(answer, instances, "written ahead", root)

        # The first instance again: same UIDs and size, Patient ID WMETA1 -> WMETA9.
        first = dict(instances[0])
        directory = self.mkdtemp("replaced")
        args = dict(sop_uid=first["sop"], study_uid=study["uid"],
                    series_uid=first["series"]["uid"], patient_name=PATIENT_NAME,
                    patient_id="WMETA9", charset="ISO_IR 100", modality="MR",
                    instance_number=first["number"], series_number=2, study_id="MET",
                    size=2000)
        first["path"] = first["original"] = directory / "v2.dcm"
        first["twin"] = directory / "v2.explicit-twin.dcm"
        dicomgen.write_instance(first["path"], syntax="implicit", **args)
        dicomgen.write_instance(first["twin"], syntax="explicit", **args)
        self.assertEqual(os.path.getsize(first["path"]), os.path.getsize(instances[0]["path"]))
        cp = harness.storescu(b.dicom_port, b.dicom_ae, [first["path"]], extra=["-xi"])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        v2 = dicomgen.dataset_bytes(str(first["path"]))

        def replaced():
            status, _, payload = b.raw("GET", "/api/instances/%s/file" % first["sop"])
            return status == 200 and dicomgen.dataset_bytes(payload) == v2
        self.assertTrue(harness.wait_until(replaced, 20, 0.1), "premise: the file replaced")
        answer, _ = self.metadata(path, server=b)
        self.assertEqual(answer[0]["00100020"], {"vr": "LO", "Value": ["WMETA9"]},
                         "the metadata of the replaced file")
        self.assertMetadataOf(answer, [first, instances[1]], "after the replace", root)
        self.assertTrue(harness.wait_until(lambda: self.rows_written(b) >= len(instances),
                                           20, 0.1), "premise: written again")

        # Move the archive's DICOM files away: the metadata still comes, from the index.
        moved = self.mkdtemp("moved-away")
        for f in harness.files_under(b.data_dir):
            with open(f, "rb") as fh:
                dicom = fh.read(132)[128:] == b"DICM"
            if dicom:
                shutil.move(f, str(moved / os.path.basename(f)))
        self.assertEqual(len(harness.files_under(moved)), len(instances), "files moved away")
        answer, _ = self.metadata(path, server=b)
        self.assertMetadataOf(answer, [first, instances[1]], "files gone", root)
        # Premise that the files are gone for the server: what is read from them fails.
        status, _, _ = self.get(self.path_of(inst=instances[1]) + "/bulk/7FE00010", OCTETS,
                                server=b)
        self.assertNotEqual(status, 200)

    def rows_written(self, server):
        """How many instances' metadata the server's index holds (read-only look into its
        SQLite file: the writer has no API of its own)."""
        con = sqlite3.connect("file:%s?mode=ro" % (server.data_dir / "index.db"), uri=True,
                              timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM instance_metadata").fetchone()[0]
        except sqlite3.OperationalError:
            return 0
        finally:
            con.close()

    # ================================================================== 7. value forms

    def test_15_decimal_strings_in_every_valid_form(self):
        """DS "1." and "1.E2" are valid (PS3.5 6.2) and must become JSON numbers (PS3.18
        F.2.3.1), not leave the instance out of the study's metadata."""
        inst = self.inst("NUM", 0, 1)
        path = self.path_of(study=self.study("NUM")) + "/metadata"
        status, hdrs, body = self.get(path, "application/dicom+json")
        self.assertEqual(status, 200, body[:300])
        self.assertIsNone(hdrs.get("Warning"), "GET %s: instances left out (Warning %r)"
                          % (path, hdrs.get("Warning")))
        answer = json.loads(body.decode("utf-8"))
        self.assertMetadataOf(answer, [inst], "study NUM", self.server.url + "/dicom-web")
        self.assertStudySameAsOrthanc("NUM")

    def test_16_a_host_that_is_no_host_never_breaks_the_json(self):
        """RFC 7230 5.4: a Host that is no valid host is 400. Anything else must still be the
        instance's DICOM JSON: a quote or a backslash of the Host copied unescaped into a
        BulkDataURI makes the answer invalid JSON, or lets the Host add elements."""
        inst = self.inst("MET", 0, 1)
        for host in ('viewer"example', "viewer\\example", 'h"},"00100010":{"vr":"PN'):
            with self.subTest(host=host):
                status, _, body = self.get(self.path_of(inst=inst) + "/metadata",
                                           "application/dicom+json", {"Host": host})
                if status == 400:
                    continue
                self.assertEqual(status, 200, body[:300])
                try:
                    answer = json.loads(body.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as e:
                    self.fail("Host %r: %s with a body that is no JSON (%s): ...%r..."
                              % (host, status, e, body[body.find(b"BulkDataURI"):][:120]))
                # Valid JSON: then the file's elements, the Host escaped in the URIs (the third
                # Host, copied raw, would replace the Patient Name).
                self.assertMetadataOf(answer, [inst], "Host %r" % host,
                                      "http://%s/dicom-web" % host)


if __name__ == "__main__":
    unittest.main()
