"""C-FIND answers in the character sets PACS really answer in, decoded to exact UTF-8.

Orthanc (Debian, 1.10) keeps main DICOM tags in UTF-8 and writes every C-FIND answer in its
DefaultEncoding -- whatever the stored instance's character set and whatever (0008,0005) the
query carries (measured; OrthancFindRequestHandler / DicomFindAnswers do so): Latin1 ->
"ISO_IR 100", Utf8 -> "ISO_IR 192", JapaneseKanji -> "ISO 2022 IR 87" (a single value;
ESC $ B ... ESC ( B), Korean -> "ISO 2022 IR 149" (a single value; KS X 1001 bytes in GR
without any ESC $ ) C). Characters the encoding lacks are dropped by Orthanc. The Orthanc
tests switch its encoding (PUT /tools/default-encoding), check with findscu's raw answers
(-X) that Orthanc really answered in that character set, decode those bytes with
dicomgen.decode_text (an independent reference), and demand the same UTF-8 from our REST API
and CLI.

DCMTK's dcmqrscp answers in the stored instance's own character set when it cannot convert
to the one asked for (always the case for a query without (0008,0005) and ISO 2022 data):
that is the standard form, "\\ISO 2022 IR 87" and "\\ISO 2022 IR 149" with the escape
sequences of PS3.5 Examples H.3-1 and I.2-1, byte for byte as dicomgen writes them.

The stored instances are written by dicomgen in ISO_IR 100, ISO_IR 192, \\ISO 2022 IR 87
and \\ISO 2022 IR 149 (CT and MR); Orthanc's own reading of them is checked too.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_find_charsets.py
"""

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

JP_NAME = "Yamada^Tarou=山田^太郎=やまだ^たろう"
KR_NAME = "Hong^Gildong=洪^吉洞=홍^길동"

# PatientID -> (name, character set of the stored instance, modality)
PATIENTS = {
    "MUL1": ("Müller^Hans", "ISO_IR 100", "CT"),
    "YAM8": ("山田^太郎", "ISO_IR 192", "MR"),
    "YAMJ": (JP_NAME, "\\ISO 2022 IR 87", "CT"),
    "HONG": (KR_NAME, "\\ISO 2022 IR 149", "MR"),
}

ESC = b"\x1b"

# PatientName as dicomgen writes it (PS3.5 Example H.3-1 and Example I.2-1).
JP_BYTES = (b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^"
            b"\x1b$B$?$m$&\x1b(B")
KR_BYTES = (b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7=\x1b$)C\xc8\xab^"
            b"\x1b$)C\xb1\xe6\xb5\xbf")


def raw_study_answers(testcase, port, called_ae, charset=None, **keys):
    """A peer's STUDY-level C-FIND answers exactly as sent (findscu -X, calling AE title
    FINDSCU): a list of {(group, element): raw value bytes}. charset: the query's (0008,0005)
    (None: no (0008,0005), like a node with query_charset "none")."""
    out = testcase.mkdtemp("rsp")
    args = ["findscu", "-S", "-aet", "FINDSCU", "-aec", called_ae, "-to", "10", "-X",
            "-od", out, "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientName",
            "-k", "StudyInstanceUID"]
    if charset is not None:
        args += ["-k", "SpecificCharacterSet=" + charset]
    for k, v in keys.items():
        args += ["-k", "%s=%s" % (k, v)]
    cp = harness.run_tool(args + ["127.0.0.1", port], timeout=60)
    testcase.assertEqual(cp.returncode, 0, harness.proc_output(cp))
    return [{tag: value for tag, (_, value) in dicomgen.read_elements(f).items()}
            for f in sorted(out.glob("rsp*.dcm"))]


def raw_patient_name(testcase, port, called_ae, patient_id, charset=None):
    """(Specific Character Set, raw PatientName bytes) of the one answer for a patient."""
    answers = raw_study_answers(testcase, port, called_ae, charset, PatientID=patient_id)
    testcase.assertEqual(len(answers), 1, answers)
    a = answers[0]
    return (a.get((0x0008, 0x0005), b"").decode("ascii").strip(),
            a[(0x0010, 0x0010)].rstrip(b" "))


def find(testcase, server, node, query, level="STUDY"):
    status, body = server.api("POST", "/api/nodes/%s/find" % node,
                              {"level": level, "query": query})
    testcase.assertEqual(status, 200, body)
    testcase.assertFalse(body["truncated"], body)
    return body["results"]


def names_by_id(results):
    return {r["PatientID"]: r["PatientName"] for r in results}


class OrthancAnswerCharsetTests(harness.E2ETestCase):
    """Orthanc answering in Latin1, Utf8, JapaneseKanji and Korean."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.orthanc = harness.Orthanc(cls.tmp / "orthanc", extra={
            "DicomModalities": {"pacsbridge": ["PACSBRIDGE", "127.0.0.1", 4100],
                                "findscu": ["FINDSCU", "127.0.0.1", 4101]}})
        cls._peers.append(cls.orthanc)
        cls.addClassCleanup(cls.orthanc.stop)
        cls.orthanc.start()
        cls.files = {}
        for i, (pid, (name, charset, modality)) in enumerate(sorted(PATIENTS.items())):
            gen = dicomgen.generate(cls.tmp / "data" / pid, 2, series_per_study=2,
                                    patient_name=name, patient_id=pid, charset=charset,
                                    modality=modality, study_date="2024010%d" % (i + 1))
            cls.files[pid] = gen[0][0]
        cp = harness.storescu(cls.orthanc.dicom_port, "ORTHANC",
                              [f for pid in PATIENTS for f in
                               sorted((cls.tmp / "data" / pid).glob("*.dcm"))])
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))
        cls.server = harness.Server(cls.tmp / "srv")
        cls._peers.append(cls.server)
        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()
        status, answer = cls.server.api("POST", "/api/nodes", {
            "name": "orthanc", "ae_title": "ORTHANC", "host": "127.0.0.1",
            "port": cls.orthanc.dicom_port, "queryable": True})
        if status != 201:
            raise AssertionError(answer)

    # ---- helpers

    def set_orthanc_encoding(self, encoding):
        """Make Orthanc answer C-FIND in this DefaultEncoding (from the next association)."""
        status, _, body = harness.http_request("PUT", self.orthanc.url + "/tools/default-encoding",
                                               encoding.encode("ascii"))
        self.assertEqual(status, 200, body)
        _, _, body = harness.http_request("GET", self.orthanc.url + "/tools/default-encoding")
        self.assertEqual(body.decode().strip(), encoding)

    def raw_answer(self, patient_id):
        """(Specific Character Set, raw PatientName bytes) Orthanc answers to a query like
        ours (which says ISO_IR 192; Orthanc answers the same without (0008,0005))."""
        return raw_patient_name(self, self.orthanc.dicom_port, "ORTHANC", patient_id,
                                charset="ISO_IR 192")

    def find(self, query, level="STUDY"):
        return find(self, self.server, "orthanc", query, level)

    # ---- the stored instances

    def test_generated_instances_are_in_their_character_sets(self):
        # What was sent to Orthanc: (0008,0005) and the PatientName bytes of each instance.
        expected = {
            "MUL1": ("ISO_IR 100", b"M\xfcller^Hans"),
            "YAM8": ("ISO_IR 192", "山田^太郎".encode("utf-8")),
            "YAMJ": ("\\ISO 2022 IR 87", JP_BYTES),
            "HONG": ("\\ISO 2022 IR 149", KR_BYTES),
        }
        for pid, (charset, name_bytes) in expected.items():
            els = dicomgen.read_elements(self.files[pid])
            self.assertEqual(els[(0x0008, 0x0005)][1].decode("ascii").strip(), charset, pid)
            self.assertEqual(els[(0x0010, 0x0010)][1].rstrip(b" "), name_bytes, pid)
        # Orthanc (its own decoder) read every one of them as the intended name.
        status, patients = harness.http_json("GET", self.orthanc.url + "/patients?expand")
        self.assertEqual(status, 200, patients)
        got = {p["MainDicomTags"]["PatientID"]: p["MainDicomTags"]["PatientName"]
               for p in patients}
        self.assertEqual(got, {pid: p[0] for pid, p in PATIENTS.items()})

    # ---- one test per character set Orthanc answers in

    def test_answers_in_latin1(self):
        self.set_orthanc_encoding("Latin1")
        charset, raw = self.raw_answer("MUL1")
        self.assertEqual((charset, raw), ("ISO_IR 100", b"M\xfcller^Hans"))
        results = self.find({"PatientName": "Müller*"})
        self.assertEqual(names_by_id(results), {"MUL1": "Müller^Hans"})
        self.assertEqual(results[0]["ModalitiesInStudy"], "CT")

    def test_answers_in_utf8(self):
        self.set_orthanc_encoding("Utf8")
        charset, raw = self.raw_answer("YAMJ")
        self.assertEqual((charset, raw), ("ISO_IR 192", JP_NAME.encode("utf-8")))
        results = self.find({"PatientID": "*"})
        self.assertEqual(names_by_id(results), {pid: p[0] for pid, p in PATIENTS.items()})
        self.assertEqual({r["PatientID"]: r["ModalitiesInStudy"] for r in results},
                         {pid: p[2] for pid, p in PATIENTS.items()})

    def test_answers_in_iso2022_japanese(self):
        self.set_orthanc_encoding("JapaneseKanji")
        for pid, expected in (("YAMJ", JP_NAME), ("YAM8", "山田^太郎")):
            charset, raw = self.raw_answer(pid)
            # Orthanc writes the single value "ISO 2022 IR 87" and JIS X 0208 in G0.
            self.assertEqual(charset, "ISO 2022 IR 87", pid)
            self.assertIn(ESC + b"$B", raw, pid)
            self.assertEqual(dicomgen.decode_text(raw, charset), expected, (pid, raw))
            results = self.find({"PatientID": pid})
            self.assertEqual(names_by_id(results), {pid: expected},
                             "Orthanc sent %s %r" % (charset, raw))

    def test_answers_in_iso2022_korean(self):
        self.set_orthanc_encoding("Korean")
        charset, raw = self.raw_answer("HONG")
        # Orthanc writes the single value "ISO 2022 IR 149" and KS X 1001 in GR, without the
        # ESC $ ) C designations that PS3.5 Example I.2-1 shows.
        self.assertEqual(charset, "ISO 2022 IR 149")
        self.assertIn(b"\xfb\xf3", raw)  # 洪
        self.assertEqual(dicomgen.decode_text(raw, charset), KR_NAME, raw)
        results = self.find({"PatientID": "HONG"})
        self.assertEqual(names_by_id(results), {"HONG": KR_NAME},
                         "Orthanc sent %s %r" % (charset, raw))
        self.assertEqual(results[0]["ModalitiesInStudy"], "MR")

    # ---- matching on non-ASCII values, and the CLI

    def test_non_ascii_wildcard(self):
        self.set_orthanc_encoding("Utf8")
        # The query goes out in ISO_IR 192; Orthanc matches it against its UTF-8 index.
        self.assertEqual(names_by_id(self.find({"PatientName": "山田*"})),
                         {"YAM8": "山田^太郎"})
        self.assertEqual(names_by_id(self.find({"PatientName": "*山田*"})),
                         {"YAM8": "山田^太郎", "YAMJ": JP_NAME})
        self.assertEqual(names_by_id(self.find({"PatientName": "*홍^길동"})),
                         {"HONG": KR_NAME})

    def test_non_ascii_wildcard_answered_in_iso2022(self):
        self.set_orthanc_encoding("JapaneseKanji")
        self.assertEqual(names_by_id(self.find({"PatientName": "*山田*"})),
                         {"YAM8": "山田^太郎", "YAMJ": JP_NAME})

    def test_cli_json_and_table(self):
        self.set_orthanc_encoding("Utf8")
        cp = self.server.cli("find", "orthanc", "--json", "PatientName=*山田*")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(names_by_id(json.loads(cp.stdout)["results"]),
                         {"YAM8": "山田^太郎", "YAMJ": JP_NAME})
        cp = self.server.cli("find", "orthanc", "PatientName=山田*")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("山田^太郎", cp.stdout)
        self.assertIn("1 result(s)", cp.stdout)

    def test_cli_json_answered_in_iso2022(self):
        self.set_orthanc_encoding("JapaneseKanji")
        cp = self.server.cli("find", "orthanc", "--json", "PatientName=*山田*")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(names_by_id(json.loads(cp.stdout)["results"]),
                         {"YAM8": "山田^太郎", "YAMJ": JP_NAME})


class StandardIso2022AnswerTests(harness.E2ETestCase):
    """dcmqrscp answering in \\ISO 2022 IR 87 and \\ISO 2022 IR 149 as PS3.5 writes them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.qr = harness.DcmQRSCP(cls.tmp / "dcmqrscp")
        cls._peers.append(cls.qr)
        cls.addClassCleanup(cls.qr.stop)
        cls.qr.start()
        files = []
        for pid in ("YAMJ", "HONG"):
            name, charset, modality = PATIENTS[pid]
            gen = dicomgen.generate(cls.tmp / "data" / pid, 1, patient_name=name,
                                    patient_id=pid, charset=charset, modality=modality)
            files += [g[0] for g in gen]
        cp = harness.storescu(cls.qr.dicom_port, cls.qr.aet, files)
        if cp.returncode != 0:
            raise AssertionError("loading dcmqrscp failed:\n" + harness.proc_output(cp))
        cls.server = harness.Server(cls.tmp / "srv")
        cls._peers.append(cls.server)
        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()
        # Without (0008,0005) in the query dcmqrscp tries to convert the answers to ASCII,
        # fails, and sends them in their own character set. (Asked for ISO_IR 192, it would
        # convert the Korean one to UTF-8 itself.)
        status, answer = cls.server.api("POST", "/api/nodes", {
            "name": "qr", "ae_title": cls.qr.aet, "host": "127.0.0.1",
            "port": cls.qr.dicom_port, "queryable": True, "query_charset": "none"})
        if status != 201:
            raise AssertionError(answer)

    def check_round_trip(self, pid, charset, raw_bytes):
        name = PATIENTS[pid][0]
        sent_charset, sent = raw_patient_name(self, self.qr.dicom_port, self.qr.aet, pid)
        self.assertEqual((sent_charset, sent), (charset, raw_bytes))
        self.assertEqual(dicomgen.decode_text(sent, sent_charset), name)
        results = find(self, self.server, "qr", {"PatientID": pid})
        self.assertEqual(names_by_id(results), {pid: name},
                         "dcmqrscp sent %s %r" % (sent_charset, sent))
        series = find(self, self.server, "qr",
                      {"StudyInstanceUID": results[0]["StudyInstanceUID"]}, level="SERIES")
        self.assertEqual([s["Modality"] for s in series], [PATIENTS[pid][2]])

    def test_korean_with_g1_designations(self):
        self.check_round_trip("HONG", "\\ISO 2022 IR 149", KR_BYTES)

    def test_japanese_with_g0_escapes(self):
        self.check_round_trip("YAMJ", "\\ISO 2022 IR 87", JP_BYTES)

if __name__ == "__main__":
    unittest.main()
