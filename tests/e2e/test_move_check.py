"""POST /api/nodes/{name}/move-check and `pacsbridge nodes move-check`: "does the PACS know us?".
One instance the PACS holds is found by C-FIND and moved at IMAGE level to our receiver, which
answers success and keeps nothing.

What the peers answer (measured with movescu against the Debian packages, and asserted here):
  - Orthanc 1.10.1, our AE title listed right in DicomModalities: 0x0000, completed 1;
  - Orthanc, the destination not listed (DicomAlwaysAllowFind/Move let us ask): 0xC000
    (Unable to process), no sub-operation counted, no error comment; its log says
    "Unknown modality for AET";
  - Orthanc, the destination listed with a port where nothing listens: 0xC000 too, counts 0
    ("connecting to AET ... Connection refused" in its log) - indistinguishable from the above,
    so both are "refused" with the causes and what to register;
  - Orthanc holding nothing: no instance to move, the check cannot tell (ok null);
  - DCMTK's dcmqrscp follows PS3.4 C.4.2.1.5: a destination missing from its HostTable 0xA801
    (Move Destination unknown); one listed with a dead port 0xA702 with failed 1.
A DICOMweb node has no C-MOVE (409); a destination none of our receivers has is a failed check.

scripts/in-netns.sh python3 -m unittest -v tests.e2e.test_move_check
"""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402


class MoveCheckTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        cls.port = harness.free_port()
        cls.other_port = harness.free_port()
        cls.wrong_ae_port = harness.free_port()
        cls.dead_port = harness.free_port()  # nothing listens here
        # PACSBRIDGE stages what it receives (so "nothing staged" can be seen); PBOTHER and
        # PBWRONG are ours too, for destinations the PACS lacks or has with a dead port.
        cls.server = harness.Server(cls.tmp / "srv", receivers=[
            {"ae_title": "PACSBRIDGE", "port": cls.port, "bind": "127.0.0.1",
             "direct_archive": False},
            {"ae_title": "PBOTHER", "port": cls.other_port, "bind": "127.0.0.1"},
            {"ae_title": "PBWRONG", "port": cls.wrong_ae_port, "bind": "127.0.0.1"}])
        cls._peers.append(cls.server)

        data = cls.tmp / "data"
        cls.files = dicomgen.generate(data / "one", 1, patient_id="MOVECHECK",
                                      patient_name="CHECK^MOVE")
        cls.orthanc = cls.start_class_orthanc(extra={"DicomModalities": {
            "pb": ["PACSBRIDGE", "127.0.0.1", cls.port],
            "pbwrong": ["PBWRONG", "127.0.0.1", cls.dead_port]}})
        cls.orthanc.upload(cls.files[0][0])
        cls.open_orthanc = cls.start_class_orthanc(extra={
            "DicomAlwaysAllowFind": True, "DicomAlwaysAllowMove": True})
        cls.open_orthanc.upload(cls.files[0][0])
        cls.closed_orthanc = cls.start_class_orthanc()  # knows nobody, allows nothing
        cls.closed_orthanc.upload(cls.files[0][0])
        cls.empty_orthanc = cls.start_class_orthanc(extra={"DicomModalities": {
            "pb": ["PACSBRIDGE", "127.0.0.1", cls.port]}})

        cls.qr = harness.DcmQRSCP(cls.tmp / "qr", destinations={
            "PACSBRIDGE": cls.port, "PBWRONG": cls.dead_port})
        cls._peers.append(cls.qr)
        cls.addClassCleanup(cls.qr.stop)
        cls.qr.start()
        cp = harness.storescu(cls.qr.dicom_port, cls.qr.aet, [cls.files[0][0]])
        if cp.returncode != 0:
            raise AssertionError("loading dcmqrscp failed:\n" + harness.proc_output(cp))

        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()
        for name, ae, port, extra in (
                ("orthanc", "ORTHANC", cls.orthanc.dicom_port, {}),
                ("orthanc-wrong-port", "ORTHANC", cls.orthanc.dicom_port,
                 {"calling_ae_title": "PACSBRIDGE", "move_destination": "PBWRONG"}),
                ("orthanc-unregistered", "ORTHANC", cls.open_orthanc.dicom_port, {}),
                ("orthanc-closed", "ORTHANC", cls.closed_orthanc.dicom_port, {}),
                ("orthanc-empty", "ORTHANC", cls.empty_orthanc.dicom_port, {}),
                ("qr-known", cls.qr.aet, cls.qr.dicom_port, {}),
                ("qr-unknown", cls.qr.aet, cls.qr.dicom_port,
                 {"calling_ae_title": "PACSBRIDGE", "move_destination": "PBOTHER"}),
                ("qr-dead-port", cls.qr.aet, cls.qr.dicom_port,
                 {"calling_ae_title": "PACSBRIDGE", "move_destination": "PBWRONG"}),
                ("no-receiver", "ORTHANC", cls.orthanc.dicom_port,
                 {"calling_ae_title": "PACSBRIDGE", "move_destination": "NORECEIVER"})):
            body = {"name": name, "ae_title": ae, "host": "127.0.0.1", "port": port,
                    "queryable": True, "timeout_seconds": 5}
            body.update(extra)
            status, answer = cls.server.api("POST", "/api/nodes", body)
            if status != 201:
                raise AssertionError("POST /api/nodes %r -> %s %r" % (body, status, answer))
        status, answer = cls.server.api("POST", "/api/nodes", {
            "name": "web", "type": "dicomweb", "url": "http://127.0.0.1:9/dicom-web/"})
        if status != 201:
            raise AssertionError("POST /api/nodes (dicomweb) -> %s %r" % (status, answer))

    def check(self, node, want_status=200, body=None):
        status, answer = self.server.api("POST", "/api/nodes/%s/move-check" % node, body)
        self.assertEqual(status, want_status, answer)
        sys.stderr.write("[%s: %s %s %s/%s/%s] " % (
            node, answer.get("outcome"), answer.get("status"), answer.get("completed"),
            answer.get("failed"), answer.get("warning")))
        return answer

    def assert_nothing_kept(self):
        status, studies = self.server.api("GET", "/api/studies")
        self.assertEqual((status, studies), (200, []))
        status, staged = self.server.api("GET", "/api/staging")
        self.assertEqual((status, staged), (200, []))
        status, jobs = self.server.api("GET", "/api/jobs")
        self.assertEqual((status, jobs), (200, []))
        data = self.server.data_dir
        self.assertEqual(harness.files_under(data / "archive"), [])
        self.assertEqual(harness.files_under(data / "staging"), [])
        self.assertEqual(harness.files_under(data / "tmp"), [])

    def assert_register(self, answer, ae, port):
        self.assertEqual(answer["destination"],
                         {"ae_title": ae, "host": "127.0.0.1", "port": port}, answer)
        self.assertIn("AE title %s, host 127.0.0.1, port %d" % (ae, port), answer["message"])

    # ----------------------------------------------------------------- Orthanc

    def test_a_registered_correctly_the_instance_arrives_and_nothing_is_kept(self):
        a = self.check("orthanc")
        self.assertEqual((a["ok"], a["outcome"], a["status"]), (True, "known", "0x0000"), a)
        self.assertEqual((a["completed"], a["failed"], a["warning"]), (1, 0, 0), a)
        self.assertTrue(a["instance_arrived"], a)
        self.assertEqual(a["destination"],
                         {"ae_title": "PACSBRIDGE", "host": "127.0.0.1", "port": self.port})
        self.assertIn("node 'orthanc' knows PACSBRIDGE and reaches us at 127.0.0.1:%d" % self.port,
                      a["message"])
        self.assertGreaterEqual(a["latency_ms"], 0)
        self.assert_nothing_kept()
        # No patient data in our log.
        log = (self.server.workdir / "pacsbridge.log").read_text("utf-8", "replace")
        self.assertNotIn("CHECK^MOVE", log)
        self.assertNotIn("MOVECHECK", log)

    def test_b_not_registered_orthanc_refuses_with_0xc000_and_we_say_what_to_register(self):
        a = self.check("orthanc-unregistered")
        self.assertEqual((a["ok"], a["outcome"], a["status"]), (False, "refused", "0xC000"), a)
        self.assertEqual((a["completed"], a["failed"], a["warning"]), (0, 0, 0), a)
        self.assertFalse(a["instance_arrived"])
        self.assert_register(a, "PACSBRIDGE", self.port)
        self.assertIn("does not know the move destination PACSBRIDGE", a["message"])
        self.assertIn("Unknown modality for AET: PACSBRIDGE", self.open_orthanc.log_tail(60))
        self.assert_nothing_kept()

    def test_b_not_registered_and_not_allowed_the_check_cannot_tell(self):
        a = self.check("orthanc-closed")
        self.assertEqual((a["ok"], a["outcome"], a["status"]), (None, "failed", None), a)
        self.assertIn("could not be asked for an instance to move", a["message"])
        self.assertIn("PACSBRIDGE", a["message"])  # the calling AE title it does not allow

    def test_c_registered_with_a_dead_port_orthanc_refuses_too(self):
        a = self.check("orthanc-wrong-port")
        self.assertEqual((a["ok"], a["outcome"], a["status"]), (False, "refused", "0xC000"), a)
        self.assertEqual((a["completed"], a["failed"], a["warning"]), (0, 0, 0), a)
        self.assert_register(a, "PBWRONG", self.wrong_ae_port)
        self.assertIn("the address it has for it does not reach us", a["message"])
        self.assertIn("Connection refused", self.orthanc.log_tail(60))
        self.assert_nothing_kept()

    def test_d_an_empty_pacs_cannot_tell(self):
        a = self.check("orthanc-empty")
        self.assertEqual((a["ok"], a["outcome"], a["status"]), (None, "no_instance", None), a)
        self.assertFalse(a["instance_arrived"])
        self.assertIn("holds no instance to move", a["message"])
        self.assert_register(a, "PACSBRIDGE", self.port)

    # ----------------------------------------------------------------- dcmqrscp (PS3.4 statuses)

    def test_standard_statuses_known_unknown_destination_and_dead_port(self):
        a = self.check("qr-known")
        self.assertEqual((a["ok"], a["outcome"], a["status"], a["instance_arrived"]),
                         (True, "known", "0x0000", True), a)
        a = self.check("qr-unknown")
        self.assertEqual((a["ok"], a["outcome"], a["status"]),
                         (False, "unknown_destination", "0xA801"), a)
        self.assert_register(a, "PBOTHER", self.other_port)
        a = self.check("qr-dead-port")
        self.assertEqual((a["ok"], a["outcome"], a["status"], a["failed"]),
                         (False, "not_delivered", "0xA702", 1), a)
        self.assertIn("knows the AE title PBWRONG but sends to an address that does not reach us",
                      a["message"])
        self.assertIn("127.0.0.1:%d" % self.wrong_ae_port, a["message"])
        self.assert_nothing_kept()

    # ----------------------------------------------------------------- refusals by the API

    def test_e_what_cannot_be_checked(self):
        a = self.check("web", 409)
        self.assertIn("DICOMweb node", a["error"])
        self.check("no-such-node", 404)
        self.check("orthanc", 400, {"x": 1})
        a = self.check("no-receiver")
        self.assertEqual((a["ok"], a["outcome"], a["status"]), (False, "no_receiver", None), a)
        self.assertIn("no receiver of ours that is enabled and listening is called NORECEIVER",
                      a["message"])

    def test_a_read_only_account_may_not_run_it(self):
        status, _ = self.server.api("POST", "/api/users", {
            "username": "viewer", "password": "pw-viewer-Secret9", "role": "read-only"})
        self.assertEqual(status, 201)
        status, _ = self.server.api("POST", "/api/nodes/orthanc/move-check",
                                    auth=("viewer", "pw-viewer-Secret9"))
        self.assertEqual(status, 403)

    # ----------------------------------------------------------------- CLI

    def test_cli_table_and_json(self):
        cp = self.server.cli("nodes", "move-check", "orthanc")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("RESULT", cp.stdout)
        self.assertIn("known", cp.stdout)
        self.assertIn("PACSBRIDGE at 127.0.0.1:%d" % self.port, cp.stdout)
        cp = self.server.cli("nodes", "move-check", "orthanc-unregistered", "--json")
        self.assertEqual(cp.returncode, 1, harness.proc_output(cp))
        self.assertEqual(json.loads(cp.stdout)["status"], "0xC000")
        cp = self.server.cli("nodes", "move-check", "orthanc-empty")
        self.assertEqual(cp.returncode, 2, harness.proc_output(cp))
        self.assertIn("cannot tell", cp.stdout)


if __name__ == "__main__":
    unittest.main()
