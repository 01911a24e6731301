#!/usr/bin/env python3
"""Generate valid DICOM Part 10 files for tests -- Python 3 standard library only.

Command line:

    python3 tools/dicomgen.py OUTDIR --count N [--size BYTES] [--studies S]
        [--series-per-study K] [--uid-root ROOT] [--seed SEED]
        [--patient-name NAME] [--patient-id ID] [--syntax explicit|implicit]
        [--modality CT|MR|OT] [--charset "ISO_IR 100"|"ISO_IR 192"|"\\ISO 2022 IR 87"|...]

writes OUTDIR/000001.dcm ... OUTDIR/00000N.dcm: N instances spread (round robin) over
S studies x K series. --size is the approximate total size of each file; the bulk is
PixelData (OW, 16 bits allocated, 12 stored), written in chunks so that files of
hundreds of megabytes never sit in memory. --charset writes (0008,0005) Specific Character
Set and encodes the text values (PN, LO, SH, ST, LT, UC, UT) in it; by default a file gets
ISO_IR 192 when one of its texts is not ASCII, and no (0008,0005) otherwise.

As a module (tests put tools/ on sys.path):

    import dicomgen
    dicomgen.write_instance(path, sop_uid=..., study_uid=..., series_uid=..., size=2048)
    for path, sop, study, series in dicomgen.generate(outdir, 10, studies=2): ...
    meta, offset = dicomgen.read_meta(path_or_bytes)   # parse group 0002 of a file
    dicomgen.dataset_bytes(path_or_bytes)              # the bytes after the meta header
    dicomgen.read_elements(path_or_bytes)              # {(group, elem): (vr, raw bytes)}
    dicomgen.encode_text("Yamada^Tarou=山田^太郎", "\\ISO 2022 IR 87")   # -> bytes
    dicomgen.decode_text(raw_bytes, charset)           # -> str (checks the encoding rules)

Character sets (CHARSETS lists them): ISO_IR 6 (ASCII), the single-byte ISO_IR 100, 101,
109, 110, 126, 127, 138, 144, 148, 166, ISO_IR 192 (UTF-8), GB18030, GBK, and the ISO 2022
code extensions with G0 = ASCII ("\\ISO 2022 IR 87" Japanese kanji, "\\ISO 2022 IR 149"
Korean, "\\ISO 2022 IR 58" simplified Chinese, possibly combined: "\\ISO 2022 IR 87\\ISO 2022
IR 149"). ISO 2022 values are written per PS3.5 6.1.2.5 and Annexes H and I:
  - JIS X 0208 (IR 87) is invoked in G0 with ESC $ B and left with ESC ( B before any ASCII
    character (so before the PN delimiters ^ and =) and at the end of the value:
    Yamada^Tarou=ESC$B;3ED ESC(B^ESC$BB@O: ESC(B=...
  - the G1 sets (IR 149: ESC $ ) C, IR 58: ESC $ ) A) are designated before the first
    character of theirs in each PN component, value and line (after ^ = \\ CR LF), and their
    characters are written in GR (high bit set), as in PS3.5 Example I.2-1:
    Hong^Gildong=ESC$)C<FB F3>^ESC$)C<D1 CE D4 D7>=...
"""

import argparse
import math
import os
import random
import struct
import sys

DEFAULT_UID_ROOT = "1.2.826.0.1.3680043.9.7133"

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
IMPLICIT_VR_LE = "1.2.840.10008.1.2"
SYNTAXES = {"explicit": EXPLICIT_VR_LE, "implicit": IMPLICIT_VR_LE}

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE_STORAGE = "1.2.840.10008.5.1.4.1.1.7"
SOP_CLASSES = {"CT": CT_IMAGE_STORAGE, "MR": MR_IMAGE_STORAGE, "OT": SECONDARY_CAPTURE_STORAGE}

IMPLEMENTATION_CLASS_UID = DEFAULT_UID_ROOT + ".0.1"
IMPLEMENTATION_VERSION_NAME = "DICOMGEN_1"

# VRs whose explicit encoding has 2 reserved bytes and a 32-bit length.
_LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
_UI_VRS = {"UI"}
_BINARY_VRS = {"US", "UL", "SS", "SL", "FL", "FD", "AT", "OB", "OW", "OD", "OF", "OL",
               "OV", "SV", "UV", "UN"}

CHUNK = 1 << 20  # pixel data is written in pieces of this many bytes

# VRs whose values are encoded in the Specific Character Set (PS3.5 6.1.2.3).
TEXT_VRS = {"SH", "LO", "ST", "LT", "UC", "UT", "PN"}


# --------------------------------------------------------------------------- character sets

# (0008,0005) defined terms without code extensions -> Python codec.
_SINGLE_CHARSETS = {
    "ISO_IR 6": "ascii", "ISO_IR 100": "latin_1", "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3", "ISO_IR 110": "iso8859_4", "ISO_IR 144": "iso8859_5",
    "ISO_IR 127": "iso8859_6", "ISO_IR 126": "iso8859_7", "ISO_IR 138": "iso8859_8",
    "ISO_IR 148": "iso8859_9", "ISO_IR 166": "tis_620", "ISO_IR 192": "utf-8",
    "GB18030": "gb18030", "GBK": "gbk",
}

ESC = b"\x1b"
_TO_ASCII = ESC + b"(B"  # ISO 2022 IR 6 (ASCII) into G0

# Multi-byte ISO 2022 code extensions: defined term -> (designation escape sequence,
# area, EUC codec whose 2-byte GR form is the set's code points | 0x8080).
_ISO2022_SETS = {
    "ISO 2022 IR 87": (ESC + b"$B", "G0", "euc_jp"),    # JIS X 0208 (Japanese kanji, kana)
    "ISO 2022 IR 149": (ESC + b"$)C", "G1", "euc_kr"),  # KS X 1001 (Hangul and Hanja)
    "ISO 2022 IR 58": (ESC + b"$)A", "G1", "gb2312"),   # GB 2312 (simplified Chinese)
}

# Characters after which a G1 set is designated again (PS3.5 Example I.2-1 and I.3-1).
_G1_RESET = set("^=\\\r\n\f")

CHARSETS = sorted(_SINGLE_CHARSETS) + ["\\" + t for t in sorted(_ISO2022_SETS)]


def _parse_charset(charset, value1_multibyte=False):
    """(single codec or None, [ISO 2022 defined terms]) for a (0008,0005) value.
    value1_multibyte: accept a multi-byte ISO 2022 term as value 1 (returned first)."""
    if charset is None or charset.strip() == "":
        return "ascii", []
    values = [v.strip() for v in charset.split("\\")]
    if len(values) == 1 and values[0] in _SINGLE_CHARSETS:
        return _SINGLE_CHARSETS[values[0]], []
    if value1_multibyte and values[0] in _ISO2022_SETS:
        values.insert(0, "")
    if values[0] not in ("", "ISO 2022 IR 6"):
        raise ValueError("unsupported Specific Character Set %r (known: %s; ISO 2022 code "
                         "extensions only with ASCII as value 1)" % (charset, ", ".join(CHARSETS)))
    ext = [v for v in values[1:] if v != "ISO 2022 IR 6"]
    for v in ext:
        if v not in _ISO2022_SETS:
            raise ValueError("unsupported Specific Character Set value %r in %r (known: %s)"
                             % (v, charset, ", ".join(CHARSETS)))
    if not ext:
        return "ascii", []
    return None, ext


def _gr_bytes(ch, codec):
    """The two GR bytes of ch in the 94x94 set behind codec, or None."""
    try:
        b = ch.encode(codec)
    except UnicodeEncodeError:
        return None
    if len(b) == 2 and b[0] >= 0xA1 and b[1] >= 0xA1 and b[0] != 0xFF and b[1] != 0xFF:
        return b
    return None


def encode_text(text, charset):
    """text (str) encoded as a DICOM text value in Specific Character Set charset (its
    (0008,0005) value, e.g. "ISO_IR 100" or "\\\\ISO 2022 IR 87"; None or "" = ASCII).
    Raises ValueError when a character cannot be written in that character set."""
    single, ext = _parse_charset(charset)
    if single is not None:
        try:
            return text.encode(single)
        except UnicodeEncodeError as e:
            raise ValueError("%r cannot be written in %s: %s"
                             % (text, charset or "the default repertoire (ASCII)", e))
    out = bytearray()
    g0 = None        # multi-byte set invoked in G0 (None: ASCII)
    g1 = None        # set designated to G1 since the last reset point
    for ch in text:
        if ord(ch) < 0x80:
            if g0 is not None:
                out += _TO_ASCII
                g0 = None
            out += ch.encode("ascii")
            if ch in _G1_RESET:
                g1 = None
            continue
        for term in ext:
            esc, area, codec = _ISO2022_SETS[term]
            gr = _gr_bytes(ch, codec)
            if gr is None:
                continue
            if area == "G0":
                if g0 != term:
                    out += esc
                    g0 = term
                out += bytes(x & 0x7F for x in gr)
            else:
                if g0 is not None:
                    out += _TO_ASCII
                    g0 = None
                if g1 != term:
                    out += esc
                    g1 = term
                out += gr
            break
        else:
            raise ValueError("%r: character %r cannot be written in %s" % (text, ch, charset))
    if g0 is not None:
        out += _TO_ASCII
    return bytes(out)


def decode_text(raw, charset):
    """Decode a DICOM text value (bytes) written in Specific Character Set charset; an
    independent reference for checking what a peer sent. ISO 2022 values are checked
    against PS3.5 6.1.2.5.3: G0 must be back to ASCII before control characters, spaces and
    the end of the value, and G1 bytes need a designated G1 set (ValueError otherwise).
    Like the peers that write it (Orthanc 1.10 sends "ISO 2022 IR 149" and "ISO 2022 IR 87"
    as single values), a multi-byte term as value 1 is accepted: a G1 set there (IR 149,
    IR 58) counts as designated from the start of the value; G0 starts as ASCII.
    Trailing padding spaces are kept."""
    single, ext = _parse_charset(charset, value1_multibyte=True)
    if single is not None:
        return bytes(raw).decode(single)
    designations = {}
    for term in ext:
        designations[_ISO2022_SETS[term][0]] = term
    out = []
    g0 = None
    first = charset.split("\\")[0].strip()
    g1 = first if first in _ISO2022_SETS and _ISO2022_SETS[first][1] == "G1" else None
    i = 0
    raw = bytes(raw)
    while i < len(raw):
        b = raw[i]
        if b == 0x1B:
            for esc, term in list(designations.items()) + [(_TO_ASCII, None)]:
                if raw.startswith(esc, i):
                    if term is None or _ISO2022_SETS[term][1] == "G0":
                        g0 = term
                    else:
                        g1 = term
                    i += len(esc)
                    break
            else:
                raise ValueError("unknown escape sequence %r at %d in %r" % (raw[i:i + 4], i, raw))
            continue
        if b >= 0x80:
            if g1 is None or i + 1 >= len(raw):
                raise ValueError("byte 0x%02X at %d without a G1 set designated in %r"
                                 % (b, i, raw))
            out.append(raw[i:i + 2].decode(_ISO2022_SETS[g1][2]))
            i += 2
            continue
        if g0 is not None:
            if b < 0x21 or i + 1 >= len(raw):
                raise ValueError("control character, space or end of value while %s is in G0 "
                                 "(ESC ( B missing) at %d in %r" % (g0, i, raw))
            out.append(bytes([raw[i] | 0x80, raw[i + 1] | 0x80]).decode(_ISO2022_SETS[g0][2]))
            i += 2
            continue
        out.append(chr(b))
        i += 1
    if g0 is not None:
        raise ValueError("value ends with %s still in G0 (ESC ( B missing): %r" % (g0, raw))
    return "".join(out)


# --------------------------------------------------------------------------- encoding

def _pad(value, vr):
    """Return value (str or bytes) as bytes padded to even length the way DICOM wants."""
    if isinstance(value, str):
        value = value.encode("utf-8")
    if len(value) % 2:
        value += b"\0" if (vr in _UI_VRS or vr in _BINARY_VRS) else b" "
    return value


def _element(group, elem, vr, value, explicit):
    """Encode one data element (value already bytes or str; padded here)."""
    value = _pad(value, vr)
    return _header(group, elem, vr, len(value), explicit) + value


def _header(group, elem, vr, length, explicit):
    tag = struct.pack("<HH", group, elem)
    if not explicit:
        return tag + struct.pack("<I", length)
    if vr in _LONG_VRS:
        return tag + vr.encode("ascii") + b"\0\0" + struct.pack("<I", length)
    if length > 0xFFFF:
        raise ValueError("value of (%04X,%04X) too long for VR %s" % (group, elem, vr))
    return tag + vr.encode("ascii") + struct.pack("<H", length)


def _us(n):
    return struct.pack("<H", n)


def _check_uid(uid):
    if not uid or len(uid) > 64:
        raise ValueError("invalid UID (empty or longer than 64 characters): %r" % uid)
    for comp in uid.split("."):
        if not comp.isdigit() or (len(comp) > 1 and comp[0] == "0"):
            raise ValueError("invalid UID component %r in %r" % (comp, uid))
    return uid


def meta_header(sop_class_uid, sop_uid, transfer_syntax):
    """Preamble + 'DICM' + group 0002 (always explicit VR little endian)."""
    body = b"".join([
        _element(0x0002, 0x0001, "OB", b"\x00\x01", True),
        _element(0x0002, 0x0002, "UI", sop_class_uid, True),
        _element(0x0002, 0x0003, "UI", sop_uid, True),
        _element(0x0002, 0x0010, "UI", transfer_syntax, True),
        _element(0x0002, 0x0012, "UI", IMPLEMENTATION_CLASS_UID, True),
        _element(0x0002, 0x0013, "SH", IMPLEMENTATION_VERSION_NAME, True),
    ])
    group_length = _element(0x0002, 0x0000, "UL", struct.pack("<I", len(body)), True)
    return b"\0" * 128 + b"DICM" + group_length + body


def pixel_geometry(pixel_bytes):
    """rows, columns with rows*columns*2 close to pixel_bytes (both <= 65535)."""
    npix = max(1, int(pixel_bytes) // 2)
    cols = max(1, min(65535, int(math.isqrt(npix))))
    rows = max(1, min(65535, npix // cols))
    return rows, cols


def _pixel_block(instance_number):
    """64 KiB of 12-bit little-endian samples, different per instance."""
    rnd = random.Random(instance_number * 7919 + 17)
    raw = bytearray(rnd.getrandbits(8) for _ in range(4096))
    for i in range(1, len(raw), 2):
        raw[i] &= 0x0F  # keep values within BitsStored = 12
    return bytes(raw) * 16


def write_instance(path, *, sop_uid, study_uid, series_uid, patient_name="TEST^PATIENT",
                   patient_id="PID1", size=2048, syntax="explicit", modality="OT",
                   instance_number=1, series_number=1, study_id="1",
                   accession_number="ACC1", study_date="20240115", study_time="101500",
                   patient_birth_date="19700101", patient_sex="O",
                   study_description=None, series_description=None,
                   extra_elements=None, sop_class=None, charset=None):
    """Write one DICOM Part 10 file; returns the total number of bytes written.

    size: approximate total file size in bytes (PixelData takes what the header leaves).
    syntax: 'explicit' / 'implicit' or a transfer syntax UID of either.
    modality: CT, MR (their image storage SOP classes) or anything else (Secondary Capture).
    extra_elements: optional list of (group, element, vr, value str|bytes) added in tag order;
        str values of text VRs are encoded in the character set like the others, bytes are
        written as they are.
    sop_class: SOP Class UID (default: from the modality), e.g. a private storage class.
    charset: the Specific Character Set (0008,0005) to write and encode the text values in,
        e.g. "ISO_IR 100", "ISO_IR 192", "\\ISO 2022 IR 87", "\\ISO 2022 IR 149" (see
        encode_text); "" writes no (0008,0005) (texts must then be ASCII); None (default):
        ISO_IR 192 if a text is not ASCII, else no (0008,0005).
    """
    ts = SYNTAXES.get(syntax, syntax)
    if ts not in (EXPLICIT_VR_LE, IMPLICIT_VR_LE):
        raise ValueError("syntax must be explicit or implicit, not %r" % syntax)
    explicit = ts == EXPLICIT_VR_LE
    modality = modality.upper()
    sop_class = sop_class or SOP_CLASSES.get(modality, SECONDARY_CAPTURE_STORAGE)
    for uid in (sop_uid, study_uid, series_uid):
        _check_uid(uid)

    texts = [patient_name, patient_id, study_description or "", series_description or ""]
    texts += [v for _, _, vr, v in (extra_elements or ()) if vr in TEXT_VRS and isinstance(v, str)]
    if charset is None:
        non_ascii = any(ord(c) > 127 for t in texts for c in t)
        charset = "ISO_IR 192" if non_ascii else ""
    _parse_charset(charset)  # unsupported character sets fail before anything is written

    elems = []  # (group, element, vr, value)
    if charset:
        elems.append((0x0008, 0x0005, "CS", charset))
    if modality in ("CT", "MR"):
        elems.append((0x0008, 0x0008, "CS", "ORIGINAL\\PRIMARY\\AXIAL"))
    elems += [
        (0x0008, 0x0016, "UI", sop_class),
        (0x0008, 0x0018, "UI", sop_uid),
        (0x0008, 0x0020, "DA", study_date),
        (0x0008, 0x0030, "TM", study_time),
        (0x0008, 0x0050, "SH", accession_number),
        (0x0008, 0x0060, "CS", modality),
    ]
    if modality not in ("CT", "MR"):
        elems.append((0x0008, 0x0064, "CS", "WSD"))  # ConversionType (SC)
    elems.append((0x0008, 0x0090, "PN", ""))  # ReferringPhysicianName
    if study_description is not None:
        elems.append((0x0008, 0x1030, "LO", study_description))
    if series_description is not None:
        elems.append((0x0008, 0x103E, "LO", series_description))
    elems += [
        (0x0010, 0x0010, "PN", patient_name),
        (0x0010, 0x0020, "LO", patient_id),
        (0x0010, 0x0030, "DA", patient_birth_date),
        (0x0010, 0x0040, "CS", patient_sex),
    ]
    if modality == "MR":
        elems += [  # MR Image Module, type 1 and 2 attributes
            (0x0018, 0x0020, "CS", "SE"),      # ScanningSequence
            (0x0018, 0x0021, "CS", "NONE"),    # SequenceVariant
            (0x0018, 0x0022, "CS", ""),        # ScanOptions
            (0x0018, 0x0023, "CS", "2D"),      # MRAcquisitionType
            (0x0018, 0x0080, "DS", "500"),     # RepetitionTime
            (0x0018, 0x0081, "DS", "20"),      # EchoTime
            (0x0018, 0x0091, "IS", "1"),       # EchoTrainLength
        ]
    elems += [
        (0x0020, 0x000D, "UI", study_uid),
        (0x0020, 0x000E, "UI", series_uid),
        (0x0020, 0x0010, "SH", study_id),
        (0x0020, 0x0011, "IS", str(series_number)),
        (0x0020, 0x0013, "IS", str(instance_number)),
        (0x0028, 0x0002, "US", _us(1)),
        (0x0028, 0x0004, "CS", "MONOCHROME2"),
    ]
    if extra_elements:
        elems += list(extra_elements)
    elems = [(g, e, vr, encode_text(v, charset) if vr in TEXT_VRS and isinstance(v, str) else v)
             for g, e, vr, v in elems]

    # Dataset without the image pixel geometry, to estimate how much room PixelData gets.
    def encode(rows, cols):
        all_elems = elems + [
            (0x0028, 0x0010, "US", _us(rows)),
            (0x0028, 0x0011, "US", _us(cols)),
            (0x0028, 0x0100, "US", _us(16)),
            (0x0028, 0x0101, "US", _us(12)),
            (0x0028, 0x0102, "US", _us(11)),
            (0x0028, 0x0103, "US", _us(0)),
        ]
        if modality == "CT":
            all_elems += [(0x0028, 0x1052, "DS", "0"), (0x0028, 0x1053, "DS", "1")]
        all_elems.sort(key=lambda e: (e[0], e[1]))
        seen = set()
        for g, e, _, _ in all_elems:
            if (g, e) in seen:
                raise ValueError("duplicate element (%04X,%04X)" % (g, e))
            seen.add((g, e))
        return b"".join(_element(g, e, vr, v, explicit) for g, e, vr, v in all_elems)

    meta = meta_header(sop_class, sop_uid, ts)
    head_guess = len(meta) + len(encode(1, 1)) + 12
    rows, cols = pixel_geometry(max(2, int(size) - head_guess))
    dataset = encode(rows, cols)
    pixel_len = rows * cols * 2
    pixel_header = _header(0x7FE0, 0x0010, "OW", pixel_len, explicit)

    block = _pixel_block(instance_number)
    tmp = str(path) + ".part"
    with open(tmp, "wb") as f:
        f.write(meta)
        f.write(dataset)
        f.write(pixel_header)
        remaining = pixel_len
        while remaining > 0:
            n = min(remaining, CHUNK)
            if n == CHUNK:
                f.write(block * (CHUNK // len(block)))
            else:
                reps, rest = divmod(n, len(block))
                f.write(block * reps + block[:rest])
            remaining -= n
    os.replace(tmp, path)
    return len(meta) + len(dataset) + len(pixel_header) + pixel_len


# --------------------------------------------------------------------------- UIDs

def run_component(seed=None):
    """The per-run UID component: random, or derived from seed."""
    rnd = random.Random(seed) if seed is not None else random.SystemRandom()
    return str(rnd.randint(10**8, 10**12 - 1))


def make_uids(uid_root=DEFAULT_UID_ROOT, seed=None):
    """Return a function kind, *indices -> UID under uid_root.run."""
    root = uid_root.rstrip(".")
    _check_uid(root)
    run = run_component(seed)
    kinds = {"study": "1", "series": "2", "instance": "3"}

    def uid(kind, *indices):
        return _check_uid(".".join([root, run, kinds[kind]] + [str(int(i)) for i in indices]))
    return uid


def generate(outdir, count, *, studies=1, series_per_study=1, size=2048,
             uid_root=DEFAULT_UID_ROOT, seed=None, patient_name="TEST^PATIENT",
             patient_id="PID1", syntax="explicit", modality="OT", first_index=1,
             **instance_kwargs):
    """Write count instances into outdir, spread round robin over studies x series.

    Returns a list of (path, sop_uid, study_uid, series_uid).
    """
    if count < 0 or studies < 1 or series_per_study < 1:
        raise ValueError("count >= 0, studies >= 1 and series_per_study >= 1 are required")
    os.makedirs(outdir, exist_ok=True)
    uid = make_uids(uid_root, seed)
    accession = instance_kwargs.pop("accession_number", None)
    nseries = studies * series_per_study
    per_series_count = {}
    out = []
    for i in range(count):
        slot = i % nseries
        st, se = divmod(slot, series_per_study)
        st += 1
        se += 1
        inum = per_series_count.get(slot, 0) + 1
        per_series_count[slot] = inum
        index = first_index + i
        study_uid = uid("study", st)
        series_uid = uid("series", st, se)
        sop_uid = uid("instance", index)
        path = os.path.join(outdir, "%06d.dcm" % index)
        write_instance(path, sop_uid=sop_uid, study_uid=study_uid, series_uid=series_uid,
                       patient_name=patient_name, patient_id=patient_id, size=size,
                       syntax=syntax, modality=modality, instance_number=inum,
                       series_number=se, study_id=str(st),
                       accession_number=accession or "ACC%d" % st, **instance_kwargs)
        out.append((path, sop_uid, study_uid, series_uid))
    return out


# --------------------------------------------------------------------------- reading

def _read_source(src, limit=None):
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src)
    with open(src, "rb") as f:
        return f.read() if limit is None else f.read(limit)


def read_meta(src):
    """Parse the file meta information of a Part 10 file (path or bytes).

    Returns (meta, dataset_offset): meta maps 'gggg,eeee' (upper-case hex) to the value
    (str for text/UI with padding stripped, bytes otherwise), plus the keyword aliases
    MediaStorageSOPClassUID, MediaStorageSOPInstanceUID, TransferSyntaxUID,
    ImplementationClassUID; dataset_offset is where the dataset starts.
    Raises ValueError when the file is not Part 10.
    """
    data = _read_source(src, 1 << 16)
    if len(data) < 132 or data[128:132] != b"DICM":
        raise ValueError("no DICM prefix at offset 128")
    pos = 132
    meta = {}
    end = None
    while pos + 8 <= len(data):
        group, elem = struct.unpack_from("<HH", data, pos)
        if group != 0x0002 or (end is not None and pos >= end):
            break
        vr = data[pos + 4:pos + 6].decode("ascii", "replace")
        if vr in _LONG_VRS:
            length = struct.unpack_from("<I", data, pos + 8)[0]
            vpos = pos + 12
        else:
            length = struct.unpack_from("<H", data, pos + 6)[0]
            vpos = pos + 8
        value = data[vpos:vpos + length]
        if len(value) != length:
            raise ValueError("meta header truncated")
        key = "%04X,%04X" % (group, elem)
        if vr in _BINARY_VRS:
            meta[key] = value
        else:
            meta[key] = value.rstrip(b"\0 ").decode("utf-8", "replace")
        if elem == 0x0000:
            end = vpos + length + struct.unpack("<I", value)[0]
        pos = vpos + length
    if end is not None and pos != end:
        raise ValueError("group length (0002,0000) says meta ends at %d, elements end at %d"
                         % (end, pos))
    for key, name in (("0002,0002", "MediaStorageSOPClassUID"),
                      ("0002,0003", "MediaStorageSOPInstanceUID"),
                      ("0002,0010", "TransferSyntaxUID"),
                      ("0002,0012", "ImplementationClassUID")):
        if key in meta:
            meta[name] = meta[key]
    return meta, pos


def dataset_bytes(src):
    """The bytes of a Part 10 file after its meta header."""
    data = _read_source(src)
    _, offset = read_meta(data)
    return data[offset:]


def _skip_undefined(data, pos, explicit):
    """Position after the sequence delimitation item of an undefined-length SQ / item list
    that starts at pos."""
    while pos + 8 <= len(data):
        group, elem, length = struct.unpack_from("<HHI", data, pos)
        pos += 8
        if (group, elem) == (0xFFFE, 0xE0DD):
            return pos
        if (group, elem) != (0xFFFE, 0xE000):
            raise ValueError("expected an item in a sequence at %d" % (pos - 8))
        if length != 0xFFFFFFFF:
            pos += length
            continue
        while True:  # item of undefined length: its elements, up to (FFFE,E00D)
            g, e = struct.unpack_from("<HH", data, pos)
            if (g, e) == (0xFFFE, 0xE00D):
                pos += 8
                break
            _, _, _, pos = _next_element(data, pos, explicit)
    raise ValueError("sequence without its delimitation item")


def _next_element(data, pos, explicit):
    """(tag, vr or None, value bytes or None for an undefined-length SQ, next position)."""
    group, elem = struct.unpack_from("<HH", data, pos)
    vr = None
    if explicit and group != 0xFFFE:
        vr = data[pos + 4:pos + 6].decode("ascii", "replace")
        if vr in _LONG_VRS:
            length = struct.unpack_from("<I", data, pos + 8)[0]
            vpos = pos + 12
        else:
            length = struct.unpack_from("<H", data, pos + 6)[0]
            vpos = pos + 8
    else:
        length = struct.unpack_from("<I", data, pos + 4)[0]
        vpos = pos + 8
    if length == 0xFFFFFFFF:
        return (group, elem), vr or "SQ", None, _skip_undefined(data, vpos, explicit)
    if vpos + length > len(data):
        raise ValueError("element (%04X,%04X) truncated" % (group, elem))
    return (group, elem), vr, data[vpos:vpos + length], vpos + length


def read_elements(src, explicit=None):
    """The top-level elements of a Part 10 file or of a bare dataset (path or bytes), in
    little endian: {(group, element): (vr, raw value bytes)}; vr is None in implicit VR,
    undefined-length sequences map to ("SQ", None). explicit: the VR encoding of a bare
    dataset (default: guessed from its first element); for a Part 10 file it comes from the
    transfer syntax. Values are left as they are (padding and character set included): decode
    text with decode_text(value, charset)."""
    data = _read_source(src)
    pos = 0
    if len(data) >= 132 and data[128:132] == b"DICM":
        meta, pos = read_meta(data)
        explicit = meta.get("TransferSyntaxUID") != IMPLICIT_VR_LE
    elif explicit is None:
        explicit = len(data) >= 6 and data[4:6].isalpha() and data[4:6].isupper()
    out = {}
    while pos + 8 <= len(data):
        tag, vr, value, pos = _next_element(data, pos, explicit)
        out[tag] = (vr, value)
    return out


# --------------------------------------------------------------------------- CLI

def main(argv=None):
    p = argparse.ArgumentParser(description="Write synthetic DICOM Part 10 files.")
    p.add_argument("outdir")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--size", type=int, default=2048,
                   help="approximate size of each file in bytes (default 2048)")
    p.add_argument("--studies", type=int, default=1)
    p.add_argument("--series-per-study", type=int, default=1)
    p.add_argument("--uid-root", default=DEFAULT_UID_ROOT)
    p.add_argument("--seed", type=int, default=None,
                   help="make the UIDs reproducible (default: random per run)")
    p.add_argument("--patient-name", default="TEST^PATIENT")
    p.add_argument("--patient-id", default="PID1")
    p.add_argument("--syntax", choices=sorted(SYNTAXES), default="explicit")
    p.add_argument("--modality", choices=sorted(SOP_CLASSES), default="OT")
    p.add_argument("--first-index", type=int, default=1,
                   help="number of the first file / instance UID index (default 1)")
    p.add_argument("--charset", default=None,
                   help="Specific Character Set (0008,0005) to write the texts in, e.g. "
                        "'ISO_IR 100', 'ISO_IR 192', '\\ISO 2022 IR 87', '\\ISO 2022 IR 149' "
                        "(default: ISO_IR 192 when a text is not ASCII; '' for none)")
    a = p.parse_args(argv)
    try:
        out = generate(a.outdir, a.count, studies=a.studies,
                       series_per_study=a.series_per_study, size=a.size,
                       uid_root=a.uid_root, seed=a.seed, patient_name=a.patient_name,
                       patient_id=a.patient_id, syntax=a.syntax, modality=a.modality,
                       first_index=a.first_index, charset=a.charset)
    except (ValueError, OSError) as e:
        print("dicomgen: %s" % e, file=sys.stderr)
        return 2
    total = sum(os.path.getsize(o[0]) for o in out)
    print("dicomgen: wrote %d instances (%d studies x %d series, %s VR LE, %s, %d bytes total)"
          " to %s" % (len(out), a.studies, a.series_per_study, a.syntax, a.modality, total,
                      a.outdir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
