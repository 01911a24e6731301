#!/usr/bin/env python3
"""Writes the seed inputs of one fuzz target into a directory: valid examples of what the
target parses (made here, by tools/dicomgen.py for DICOM data), from which libFuzzer mutates.

fuzz/seeds.py TARGET DIRECTORY
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import dicomgen  # noqa: E402

EXPLICIT, IMPLICIT = "1.2.840.10008.1.2.1", "1.2.840.10008.1.2"


def dicom_files(tmp):
    """(file bytes, data set bytes, syntax) of a few small instances, both Little Endian syntaxes."""
    uid = dicomgen.make_uids()
    out = []
    for n, (syntax, name, charset) in enumerate([("explicit", "DOE^JANE", None),
                                                 ("implicit", "Yamada^Tarou=山田^太郎", "\\ISO 2022 IR 87"),
                                                 ("explicit", "Müller^Hans", "ISO_IR 100")]):
        path = os.path.join(tmp, "seed%d.dcm" % n)
        dicomgen.write_instance(path, sop_uid=uid("instance", n), study_uid=uid("study", n),
                                series_uid=uid("series", n, 1), patient_name=name, syntax=syntax,
                                size=600, modality="CT", study_description="LAB-A study",
                                charset=charset)
        with open(path, "rb") as f:
            whole = f.read()
        os.remove(path)
        out.append((whole, dicomgen.dataset_bytes(whole), EXPLICIT if syntax == "explicit" else IMPLICIT))
    return out


def provided(*fields):
    """Fields as libFuzzer's FuzzedDataProvider reads them with ConsumeRandomLengthString (a
    backslash is written twice; a backslash and another character end a field); the last one
    is the rest of the input."""
    out = b""
    for f in fields[:-1]:
        out += f.encode("utf-8").replace(b"\\", b"\\\\") + b"\\|"
    return out + fields[-1].encode("utf-8")


def multipart(boundary, parts):
    body = b""
    for headers, payload in parts:
        body += b"--" + boundary + b"\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + payload + b"\r\n"
    return b"preamble\r\n" + body + b"--" + boundary + b"--\r\nepilogue"


def association(called, calling, contexts, messages, release=True, scp_roles=()):
    """What a peer sends on a receiver's port (PS3.8 9.3): an A-ASSOCIATE-RQ proposing
    `contexts` [(abstract syntax, [transfer syntaxes])] (and the SCP role for the SOP classes in
    `scp_roles`, PS3.7 D.3.3.4, as a C-GET needs), P-DATA-TF PDUs with `messages` [(context
    id, command set, data set or None)], then an A-RELEASE-RQ."""
    import struct

    def uid(u):
        b = u.encode()
        return b + b"\0" if len(b) % 2 else b

    def item(kind, payload):
        return struct.pack(">BBH", kind, 0, len(payload)) + payload
    body = struct.pack(">HH", 1, 0) + called.ljust(16).encode() + calling.ljust(16).encode() + b"\0" * 32
    body += item(0x10, b"1.2.840.10008.3.1.1.1")
    for n, (abstract, syntaxes) in enumerate(contexts):
        body += item(0x20, struct.pack(">BBBB", 2 * n + 1, 0, 0, 0) + item(0x30, abstract.encode()) +
                     b"".join(item(0x40, t.encode()) for t in syntaxes))
    roles = b"".join(item(0x54, struct.pack(">H", len(u)) + u.encode() + b"\x00\x01") for u in scp_roles)
    body += item(0x50, item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.826.0.1.3680043.9.7133.1") +
                 roles + item(0x55, b"PB_FUZZ"))
    out = struct.pack(">BBI", 0x01, 0, len(body)) + body
    for context, command, dataset in messages:
        for payload, flags in ((command, 0x03), (dataset, 0x02)):
            if payload is None:
                continue
            pdv = struct.pack(">IB", len(payload) + 2, context) + bytes([flags]) + payload
            out += struct.pack(">BBI", 0x04, 0, len(pdv)) + pdv
    if release:
        out += struct.pack(">BBII", 0x05, 0, 4, 0)
    return out


def command(fields):
    """A DIMSE command set (Implicit VR Little Endian, PS3.7 E.1) from [(element of group 0000,
    value)]: str values are UIs or AEs, int values US, with the group length first."""
    import struct
    body = b""
    for element, value in fields:
        raw = value.encode() if isinstance(value, str) else struct.pack("<H", value)
        if len(raw) % 2:
            raw += b"\0" if element != 0x0600 else b" "
        body += struct.pack("<HHI", 0, element, len(raw)) + raw
    return struct.pack("<HHII", 0, 0, 4, len(body)) + body


def explicit(*elements):
    """A data set in Explicit VR Little Endian from (group, element, VR, value) of short VRs."""
    import struct
    out = b""
    for g, e, vr, value in elements:
        raw = value.encode() if isinstance(value, str) else value
        if len(raw) % 2:
            raw += b"\0" if vr == "UI" else b" "
        out += struct.pack("<HH2sH", g, e, vr.encode(), len(raw)) + raw
    return out


def seeds(target, directory):
    os.makedirs(directory, exist_ok=True)
    items = []
    if target == "multipart":
        files = dicom_files(directory)
        b = b"pb-fuzz-boundary"
        items.append(multipart(b, [([b"Content-Type: application/dicom"], f[0]) for f in files]))
        items.append(multipart(b, [([b"Content-Type: application/dicom+json", b"Content-Location: x"], b"[{}]")]))
        items.append(multipart(b, [([], b"")]))
        # Parts that give their length, as Orthanc writes them (taken by count, not searched).
        items.append(multipart(b, [([b"Content-Type: application/dicom", b"Content-Length: %d" % len(f[0]),
                                     b"MIME-Version: 1.0"], f[0]) for f in files]))
        items.append(multipart(b, [([b"Content-Length: 0"], b""), ([b"Content-Length: 3"], b"abc")]))
    elif target == "header":
        for whole, dataset, syntax in dicom_files(directory):
            flags = (1 if len(dataset) < 4096 else 0) | (2 if syntax == IMPLICIT else 0)
            items.append(bytes([flags]) + dataset)
            items.append(bytes([flags | 1]) + whole)
    elif target == "split":
        import struct

        def el(g, e, vr, value):
            if vr in ("OB", "OW", "SQ", "UN", "UT"):
                return struct.pack("<HH2sHI", g, e, vr.encode(), 0, len(value)) + value
            return struct.pack("<HH2sH", g, e, vr.encode(), len(value)) + value

        def undefined(g, e, vr):
            return struct.pack("<HH2sHI", g, e, vr.encode(), 0, 0xFFFFFFFF)

        def item(payload, length=None):
            return struct.pack("<HHI", 0xFFFE, 0xE000, len(payload) if length is None else length) + payload
        end_item, end_seq = struct.pack("<HHI", 0xFFFE, 0xE00D, 0), struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
        for whole, dataset, syntax in dicom_files(directory):
            items.append(bytes([(1 if syntax == IMPLICIT else 0) | (4 << 2), 61]) + dataset)
        # encapsulated pixel data (JPEG baseline: syntax 2) after a nested sequence and a UN one
        sop = el(0x0008, 0x0018, "UI", b"1.2.3.4.5.67")
        nested = undefined(0x0008, 0x1115, "SQ") + item(el(0x0020, 0x000E, "UI", b"1.2.3.4") +
                                                         undefined(0x0008, 0x114A, "SQ") + end_seq, 0xFFFFFFFF) + end_item + end_seq
        unknown = (el(0x0009, 0x0010, "LO", b"ACME") + undefined(0x0009, 0x1001, "UN") +
                   item(struct.pack("<HHI", 0x0009, 0x1002, 8) + b"12345678", 0xFFFFFFFF) + end_item + end_seq)
        pixels = undefined(0x7FE0, 0x0010, "OB") + item(b"") + item(b"\xff\xd8" + b"a" * 98) + item(b"b" * 50) + end_seq
        items.append(bytes([2 | (1 << 2), 7]) + sop + nested + unknown + pixels + el(0xFFFC, 0xFFFC, "OB", b"\0\0"))
    elif target == "routing":
        items += [provided("(0008,1030):^LAB-(\\w+)\n(0010,0020):^([A-Z]+)-(\\d+):2", "LAB-A study"),
                  provided("# comment\n(0010,4000):(?i)project: *(\\S+)", "Project: X"),
                  provided("(0008,0050):(.*):0", "ACC-7")]
    elif target == "whitelist":
        items += [provided("STORESCU\n127.0.0.1\n10.0.0.0/8\n::1\nMODALITY@192.168.1.0/24", "STORESCU", "127.0.0.1"),
                  provided("*@fe80::/10\nCT1", "CT1", "fe80::1")]
    elif target == "import_sheet":
        items += [("Patient_ID;study date;Modality;PatientName;AccessionNumber\r\n"
                   "P1;20240101-20240131;CT;DOE^JANE;A1\r\n").encode(),
                  b"Accession Number,Project,Subject,Session\nACC1,LAB-A,S1,E1\n\"A,2\",\"LAB \"\"B\"\"\",,\n",
                  "Study Instance UID\tPATIENT ID\n1.2.3\tP1\n".encode("utf-8")]
    elif target == "settings":
        with open(os.path.join(HERE, "..", "docs", "configuration.md"), encoding="utf-8") as f:
            text = f.read()
        start = text.find("```toml\n")
        if start >= 0:
            items.append(text[start + 8:text.find("```", start + 8)].encode())
        items.append(b'[server]\ndata_dir = "var"\nhttp_listen = "127.0.0.1:8080"\n\n[[receivers]]\n'
                     b'ae_title = "R1"\nport = 11112\n\n[[nodes]]\nname = "pacs"\nae_title = "PACS"\n'
                     b'host = "127.0.0.1"\nport = 4242\n')
    elif target == "rest_json":
        items += [json.dumps(j).encode() for j in (
            {"name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 4242, "storable": True,
             "retry": {"attempts": 3}, "schedule": [{"days": "mon-fri", "from": "20:00", "to": "06:00"}]},
            {"name": "web", "type": "dicomweb", "url": "http://127.0.0.1:8042/dicom-web/",
             "auth": {"type": "basic", "username": "u", "password": "p"}},
            {"ae_title": "R1", "port": 11112, "whitelist": ["STORESCU@127.0.0.1"],
             "routing": {"project": "(0008,1030):(.*)"}, "anonymize": True},
            {"project": "(0008,1030):^(\\w+)", "subject": ["(0010,0010):(.*)"]},
            {"level": "SERIES", "uids": ["1.2.3"], "study_uid": "1.2"})]
    elif target == "dicom_json":
        items += [json.dumps(j).encode() for j in (
            [{"0020000D": {"vr": "UI", "Value": ["1.2.3"]},
              "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Yamada^Tarou", "Ideographic": "山田^太郎"}]},
              "00080061": {"vr": "CS", "Value": ["CT", "MR"]}, "00201208": {"vr": "IS", "Value": [3]}}],
            {"00081199": {"vr": "SQ", "Value": [{"00081150": {"vr": "UI", "Value": ["1.2"]},
                                                 "00081155": {"vr": "UI", "Value": ["1.2.3"]}}]},
             "00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.4"]},
                                                 "00081197": {"vr": "US", "Value": [272]}}]}},
            {"00400252": {"vr": "CS", "Value": ["IN PROGRESS"]},
             "00400270": {"vr": "SQ", "Value": [{"00400009": {"vr": "SH", "Value": ["S1"]}}]}})]
    elif target == "index_query":
        items += [b"\x00" * 64, b"DOE*\x00Yamada^Tarou\x0020240101-20240131\x001.2.0\\1.2.1\x00CT\\MR" * 2]
    elif target == "association":
        verification, ct = "1.2.840.10008.1.1", "1.2.840.10008.5.1.4.1.1.2"
        find, get, move = ("1.2.840.10008.5.1.4.1.2.2.%d" % n for n in (1, 3, 2))
        mpps = "1.2.840.10008.3.1.2.3.3"
        both = [EXPLICIT, IMPLICIT]
        echo = command([(0x0002, verification), (0x0100, 0x0030), (0x0110, 1), (0x0800, 0x0101)])
        files = dicom_files(directory)

        def store(n):
            whole, dataset, syntax = files[n]
            elements = dicomgen.read_elements(whole)
            sop_class = elements[(0x0008, 0x0016)][1].rstrip(b"\0").decode()
            sop = elements[(0x0008, 0x0018)][1].rstrip(b"\0").decode()
            return sop_class, syntax, command([(0x0002, sop_class), (0x0100, 0x0001), (0x0110, 2 + n), (0x0700, 0),
                                               (0x0800, 0x0000), (0x1000, sop)]), dataset
        study_keys = explicit((0x0008, 0x0052, "CS", "STUDY"), (0x0010, 0x0010, "PN", "DOE*"),
                              (0x0020, 0x000D, "UI", ""), (0x0020, 0x1208, "IS", ""))
        # the study of the first instance, which the first receiver (no anonymization) keeps
        study = dicomgen.read_elements(files[0][0])[(0x0020, 0x000D)][1].rstrip(b"\0").decode()
        retrieve_keys = explicit((0x0008, 0x0052, "CS", "STUDY"), (0x0020, 0x000D, "UI", study))
        items.append(association("FUZZSCP", "FUZZSCU", [(verification, both)], [(1, echo, None)]))
        for n, called in enumerate(["FUZZSCP", "QRSCP", "STAGESCP"]):
            sop_class, syntax, rq, dataset = store(n)
            items.append(association(called, "FUZZSCU", [(verification, both), (sop_class, [syntax])],
                                     [(1, echo, None), (3, rq, dataset)]))
        items.append(association("QRSCP", "VIEWER", [(find, [EXPLICIT]), (get, [EXPLICIT]), (move, [EXPLICIT]),
                                                     (ct, both)], [
            (1, command([(0x0002, find), (0x0100, 0x0020), (0x0110, 7), (0x0700, 0), (0x0800, 0)]), study_keys),
            (3, command([(0x0002, get), (0x0100, 0x0010), (0x0110, 8), (0x0700, 0), (0x0800, 0)]), retrieve_keys),
            (5, command([(0x0002, move), (0x0100, 0x0021), (0x0110, 9), (0x0600, "ELSEWHERE"), (0x0700, 0),
                         (0x0800, 0)]), retrieve_keys)], scp_roles=[ct]))
        step = "1.2.826.0.1.3680043.9.7133.77"
        items.append(association("QRSCP", "MODALITY", [(mpps, [EXPLICIT])], [
            (1, command([(0x0002, mpps), (0x0100, 0x0140), (0x0110, 10), (0x0800, 0), (0x1000, step)]),
             explicit((0x0008, 0x0060, "CS", "CT"), (0x0010, 0x0010, "PN", "DOE^JANE"),
                      (0x0040, 0x0252, "CS", "IN PROGRESS"))),
            (1, command([(0x0003, mpps), (0x0100, 0x0120), (0x0110, 11), (0x0800, 0), (0x1001, step)]),
             explicit((0x0040, 0x0252, "CS", "COMPLETED")))]))
        items.append(association("FUZZSCP", "STRANGER", [(verification, both)], [(1, echo, None)]))
        items.append(association("NOBODY", "FUZZSCU", [(verification, both)], [(1, echo, None)]))
        items.append(association("FUZZSCP", "FUZZSCU", [(verification, both)], [], release=False)[:40])
    else:
        raise SystemExit("unknown fuzz target %r" % target)
    for n, data in enumerate(items):
        with open(os.path.join(directory, "seed-%02d" % n), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    seeds(sys.argv[1], sys.argv[2])
