"""What a new user hit in the first hour, on the command line (issue 10, items 1, 4, 6, 8, 9):
$PACSBRIDGE_SERVER, Ctrl-C while following a job, `jobs show --follow`, the find table and
malformed matching values, `jobs --state`, effective AE titles, ended jobs without an ETA,
jobs after a node is renamed, a DICOMweb node that is down named with the reason.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_first_hour_cli.py
"""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

STATES = ("queued", "waiting", "running", "succeeded", "partial", "failed", "canceled")
LONG_UID_ROOT = "1.2.826.0.1.3680043.8.498.99999999"


def cli_env(**changes):
    """The CLI's environment: no server or $COLUMNS from the caller; the admin of the test's
    servers by $PACSBRIDGE_USER / $PACSBRIDGE_PASSWORD."""
    env = harness.tool_env()
    for k in ("PACSBRIDGE_SERVER", "PACSBRIDGE_TOKEN", "COLUMNS"):
        env.pop(k, None)
    env.update({"PACSBRIDGE_USER": "admin", "PACSBRIDGE_PASSWORD": harness.ADMIN_PASSWORD})
    env.update(changes)
    return env


def run_cli(args, env, timeout=60):
    return subprocess.run([str(harness.require_binary())] + [str(a) for a in args],
                          capture_output=True, text=True, timeout=timeout, env=env)


class FirstHourCliTests(harness.JobHelpers, harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        harness.require_binary()
        # Our AE title is not the literal default, so that "effective" values are checked.
        cls.server = harness.Server(cls.tmp / "srv", ae_title="PBHOUR", receivers=[
            {"ae_title": "PBHOUR", "port": harness.free_port(), "bind": "127.0.0.1"}])
        cls._peers.append(cls.server)
        cls.orthanc = harness.Orthanc(cls.tmp / "orthanc", extra={
            "DicomModalities": {"pb": ["PBHOUR", "127.0.0.1", cls.server.dicom_port]}})
        cls._peers.append(cls.orthanc)
        cls.addClassCleanup(cls.orthanc.stop)
        cls.orthanc.start()
        data = cls.tmp / "data"
        cls.small = dicomgen.generate(data / "small", 3, patient_id="SMALL",
                                      patient_name="SMALL^ONE", study_date="20240115")
        cls.slow = dicomgen.generate(data / "slow", 60, modality="CT", size=100000,
                                     patient_id="SLOW", patient_name="SLOW^FOLLOW")
        cls.canceled = dicomgen.generate(data / "canceled", 60, modality="CT", size=100000,
                                         patient_id="CANCELED")
        cls.renamed = dicomgen.generate(data / "renamed", 2, patient_id="RENAMED")
        cls.wide = dicomgen.generate(
            data / "wide", 1, uid_root=LONG_UID_ROOT,
            patient_name="VERYLONGFAMILYNAMEOFSOMEONE^WITHALONGGIVENNAME",
            patient_id="WIDE1", study_date="20230303",
            study_description="A VERY LONG STUDY DESCRIPTION THAT NOBODY READS TO THE END")
        files = [f[0] for f in cls.small + cls.slow + cls.canceled + cls.renamed + cls.wide]
        cp = harness.storescu(cls.orthanc.dicom_port, "ORTHANC", files)
        if cp.returncode != 0:
            raise AssertionError("loading Orthanc failed:\n" + harness.proc_output(cp))
        cls.addClassCleanup(cls.server.stop_and_check)
        cls.server.start()
        cls.proxy = harness.ThrottledProxy(cls.orthanc.dicom_port, rate=600_000)
        cls.addClassCleanup(cls.proxy.close)
        for name, port in (("orthanc", cls.orthanc.dicom_port), ("slow", cls.proxy.port),
                           ("to-rename", cls.orthanc.dicom_port)):
            cls.add_node(name, port)
        cls.add_node("own-calling", cls.orthanc.dicom_port, calling_ae_title="PBOTHER")

    @classmethod
    def add_node(cls, name, port, **extra):
        body = {"name": name, "ae_title": "ORTHANC", "host": "127.0.0.1", "port": port,
                "queryable": True, "storable": True, "timeout_seconds": 20}
        body.update(extra)
        status, answer = cls.server.api("POST", "/api/nodes", body)
        if status != 201:
            raise AssertionError("POST /api/nodes %r -> %s %r" % (body, status, answer))
        return answer

    def start_retrieve(self, node, study, method="c-get"):
        status, answer = self.server.api("POST", "/api/retrieve", {
            "node": node, "level": "STUDY", "uids": [study], "method": method})
        self.assertEqual(status, 202, answer)
        return str(answer["job_id"])

    # ------------------------------------------------------------ 1. $PACSBRIDGE_SERVER

    def test_server_url_from_the_environment(self):
        env = cli_env(PACSBRIDGE_SERVER=self.server.url)
        cp = run_cli(["nodes", "list"], env)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("own-calling", cp.stdout)
        for args in (["jobs", "--json"], ["studies"], ["find", "orthanc", "PatientID=SMALL"],
                     ["receivers", "list"]):
            cp = run_cli(args, env)
            self.assertEqual(cp.returncode, 0, "%s\n%s" % (args, harness.proc_output(cp)))
        # The flag wins over the variable.
        closed = harness.free_port()
        env = cli_env(PACSBRIDGE_SERVER="http://127.0.0.1:%d" % closed)
        cp = run_cli(["nodes", "list", "--server", self.server.url], env)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        # A failure says where the URL came from.
        cp = run_cli(["nodes", "list"], env)
        self.assertEqual(cp.returncode, 3, harness.proc_output(cp))
        self.assertIn("127.0.0.1:%d" % closed, cp.stderr)
        self.assertIn("$PACSBRIDGE_SERVER", cp.stderr)

    def test_help_of_every_client_command_shows_the_variable(self):
        for args in (["nodes", "list"], ["nodes", "show"], ["find"], ["retrieve"], ["send"],
                     ["jobs"], ["jobs", "show"], ["studies"], ["receivers", "list"]):
            cp = run_cli(args + ["--help"], cli_env())
            self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
            text = re.sub(r"\s+", " ", cp.stdout)
            self.assertIn("--server", text, args)
            self.assertIn("$PACSBRIDGE_SERVER", text, "%s --help:\n%s" % (args, cp.stdout))
            self.assertIn("default http://127.0.0.1:8080", text, args)
            self.assertIn("$PACSBRIDGE_PASSWORD", text, args)

    # ------------------------------------------------------------ 4. Ctrl-C while following

    def test_ctrl_c_while_following_says_the_job_goes_on(self):
        study = self.slow[0][2]
        proc = subprocess.Popen(
            [str(harness.require_binary()), "retrieve", "slow", "--study", study, "--method",
             "c-get", "--follow"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=cli_env(PACSBRIDGE_SERVER=self.server.url))
        try:
            def created():
                _, jobs = self.server.api("GET", "/api/jobs?node=slow")
                mine = [j for j in jobs if j.get("uids") == [study]]
                return str(mine[0]["id"]) if mine else None
            job_id = harness.wait_until(created, timeout=60)
            self.assertIsNotNone(job_id, "retrieve --follow did not create a job")
            self.wait_progress(job_id, 2)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        self.assertEqual(proc.returncode, 130, "stdout:\n%s\nstderr:\n%s" % (out, err))
        self.assertIn("the job goes on in the server; follow it again with "
                      "`pacsbridge jobs show %s --follow`" % job_id, err)
        # It does go on: more arrives after the CLI has gone.
        at_exit = self.get_job(job_id)["progress"]["completed"]
        self.wait_progress(job_id, at_exit + 1)
        # The command it names follows the job to its end, exit 0 once it succeeded.
        self.proxy.rate = None
        try:
            cp = run_cli(["jobs", "show", job_id, "--follow"],
                         cli_env(PACSBRIDGE_SERVER=self.server.url), timeout=120)
        finally:
            self.proxy.rate = 600_000
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertRegex(cp.stdout, r"job %s\b.*: succeeded" % job_id)
        self.assertEqual(self.get_job(job_id)["state"], "succeeded")

    def test_retrieve_without_follow_suggests_a_command_that_works(self):
        cp = self.server.cli("retrieve", "orthanc", "--study", self.small[0][2])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        m = re.search(r"follow it: (pacsbridge jobs show (\d+) [^)]*)\)", cp.stdout)
        self.assertIsNotNone(m, cp.stdout)
        argv = shlex.split(m.group(1))
        self.assertIn("--follow", argv)
        # The server came from --server: the suggestion carries it, so it works as printed.
        self.assertIn(self.server.url, argv)
        cp = run_cli(argv[1:], cli_env(), timeout=120)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("succeeded", cp.stdout)

    # ------------------------------------------------------------ 8. inconsistencies

    def test_jobs_state_filter_refuses_an_unknown_state(self):
        status, body = self.server.api("GET", "/api/jobs?state=bogus")
        self.assertJsonError(status, body, field="state")
        for state in STATES:
            self.assertIn(state, body["error"])
            status, jobs = self.server.api("GET", "/api/jobs?state=%s" % state)
            self.assertEqual(status, 200, jobs)
        cp = self.server.cli("jobs", "--state", "bogus")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(cp.stdout, "", harness.proc_output(cp))
        for state in STATES:
            self.assertIn(state, cp.stderr)

    def test_nodes_show_the_effective_ae_titles_and_where_they_come_from(self):
        status, node = self.server.api("GET", "/api/nodes/orthanc")
        self.assertEqual(status, 200, node)
        self.assertEqual(node["calling_ae_title"], "")
        self.assertEqual(node["move_destination"], "")
        self.assertEqual(node["effective_calling_ae_title"], "PBHOUR")
        self.assertEqual(node["effective_move_destination"], "PBHOUR")
        status, own = self.server.api("GET", "/api/nodes/own-calling")
        self.assertEqual(own["calling_ae_title"], "PBOTHER")
        self.assertEqual(own["effective_calling_ae_title"], "PBOTHER")
        self.assertEqual(own["effective_move_destination"], "PBOTHER")
        cp = self.server.cli("nodes", "show", "orthanc")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("calling_ae_title: PBHOUR (server default, [server] ae_title)", cp.stdout)
        self.assertIn("move_destination: PBHOUR (default: the calling AE title)", cp.stdout)
        self.assertNotIn("effective_", cp.stdout)
        cp = self.server.cli("nodes", "show", "own-calling")
        self.assertIn("calling_ae_title: PBOTHER (this node's setting)", cp.stdout)
        self.assertIn("move_destination: PBOTHER (default: the calling AE title)", cp.stdout)
        # What is shown is what is used: Orthanc knows only PBHOUR, and a C-MOVE to the
        # effective destination of "orthanc" arrives at our receiver PBHOUR.
        job_id = self.start_retrieve("orthanc", self.renamed[0][2], method="c-move")
        job = self.wait_job(job_id)
        self.assertEqual(job["state"], "succeeded", json.dumps(job, indent=1))

    def test_an_ended_job_shows_no_eta(self):
        job_id = self.start_retrieve("slow", self.canceled[0][2])
        self.wait_progress(job_id, 3)
        status, job = self.server.api("POST", "/api/jobs/%s/cancel" % job_id)
        self.assertEqual(status, 200, job)
        job = self.wait_job(job_id)
        self.assertEqual(job["state"], "canceled", job)
        progress = job["progress"]
        # What the display had for an ETA: a rate and instances left.
        self.assertGreater(progress.get("remaining") or 0, 0, progress)
        self.assertGreater(progress.get("bytes_per_second") or 0, 0, progress)
        for args in (["jobs", "show", job_id], ["jobs"], ["jobs", "show", job_id, "--follow"]):
            cp = self.server.cli(*args)
            self.assertIn(job_id, cp.stdout, harness.proc_output(cp))
            self.assertNotIn("ETA", cp.stdout + cp.stderr, "%s:\n%s" % (args, harness.proc_output(cp)))

    def test_jobs_follow_a_renamed_node(self):
        job_id = self.start_retrieve("to-rename", self.renamed[0][2])
        self.wait_job(job_id)
        cp = self.server.cli("nodes", "update", "to-rename", "--name", "renamed-node")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertEqual(self.get_job(job_id)["node"], "renamed-node")
        status, jobs = self.server.api("GET", "/api/jobs?node=renamed-node")
        self.assertIn(job_id, [str(j["id"]) for j in jobs])
        cp = self.server.cli("jobs")
        line = [l for l in cp.stdout.splitlines() if l.split()[:1] == [job_id]]
        self.assertEqual(len(line), 1, cp.stdout)
        self.assertIn("renamed-node", line[0])
        self.assertNotIn("to-rename", cp.stdout)
        # `jobs list`, as `nodes list` and `receivers list`: the same listing, its filters after it.
        for node, listed in (("renamed-node", True), ("no-such-node", False)):
            cp = self.server.cli("jobs", "list", "--node", node)
            self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
            ids = [l.split()[0] for l in cp.stdout.splitlines()[1:] if l.split()]
            self.assertEqual(job_id in ids, listed, cp.stdout)
        # A retry goes to the node under its new name.
        status, answer = self.server.api("POST", "/api/jobs/%s/retry" % job_id)
        self.assertEqual(status, 202, answer)
        retry = self.wait_job(str(answer["job_id"]))
        self.assertEqual(retry["state"], "succeeded", retry)
        self.assertEqual(retry["node"], "renamed-node")

    # ------------------------------------------------------------ 9. DICOMweb nodes

    def test_dicomweb_node_that_is_down_is_named_with_the_reason(self):
        # DICOMweb nodes are first-class: listed as available, and a server that is not there
        # gives the same kind of diagnosis as a DIMSE peer, naming the node.
        status, node = self.server.api("POST", "/api/nodes", {
            "name": "web", "type": "dicomweb", "url": "http://127.0.0.1:9/dicom-web",
            "queryable": True, "storable": True})
        self.assertEqual(status, 201, node)
        self.assertIs(node["available"], True)
        self.assertIsNone(node["unavailable_reason"])
        cp = self.server.cli("nodes", "list")
        line = [l for l in cp.stdout.splitlines() if l.startswith("web ")]
        self.assertEqual(len(line), 1, cp.stdout)
        self.assertIn("dicomweb", line[0])
        self.assertNotIn("not yet supported", cp.stdout)
        status, body = self.server.api("POST", "/api/nodes/web/echo")
        self.assertEqual(status, 200, body)
        self.assertIs(body["ok"], False)
        self.assertTrue(body["message"].startswith("Connection failed: connection refused by 127.0.0.1:9"),
                        body["message"])
        status, body = self.server.api("POST", "/api/nodes/web/find", {"level": "STUDY", "query": {}})
        self.assertJsonError(status, body, expected_status=502)  # the peer failed, as for DIMSE
        self.assertIn("node 'web'", body["error"])
        self.assertIn("connection refused", body["error"])

    # ------------------------------------------------------------ 6. find

    def test_malformed_values_are_refused_with_the_expected_form(self):
        # PS3.5 6.2: DA is YYYYMMDD, TM HHMMSS (shorter forms allowed), UI digits and dots;
        # PS3.4 C.2.2.2: ranges with "-", UID lists with "\", no wildcards in these VRs.
        cases = [("StudyDate", "2024", "is not a date"),
                 ("StudyDate", "2024-01-15", "is not a date"),
                 ("StudyDate", "2024*", "wildcards"),
                 ("PatientBirthDate", "1970", "is not a date"),
                 ("StudyTime", "25", "is not a time"),
                 ("StudyInstanceUID", "1.2.*", "wildcards"),
                 ("StudyInstanceUID", "abc", "is not a UID")]
        for key, value, words in cases:
            status, body = self.server.api("POST", "/api/nodes/orthanc/find",
                                           {"level": "STUDY", "query": {key: value}})
            self.assertJsonError(status, body, field="query." + key)
            self.assertIn("%s: '%s'" % (key, value), body["error"])
            self.assertIn(words, body["error"])
        status, body = self.server.api("POST", "/api/nodes/orthanc/find",
                                       {"level": "SERIES", "query": {"SeriesDate": "202401"}})
        self.assertJsonError(status, body, field="query.SeriesDate")
        cp = self.server.cli("find", "orthanc", "StudyDate=2024")
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("StudyDate: '2024' is not a date; use YYYYMMDD or a range "
                      "YYYYMMDD-YYYYMMDD", cp.stderr)
        # Well-formed values still match.
        for key, value in (("StudyDate", "20240115"), ("StudyDate", "20240101-20240131"),
                           ("StudyDate", "-20240115"), ("StudyDate", "20240115-"),
                           ("StudyTime", "10-11"), ("StudyInstanceUID",
                                                    self.small[0][2] + "\\1.2.3")):
            status, body = self.server.api("POST", "/api/nodes/orthanc/find", {
                "level": "STUDY", "query": {key: value, "PatientID": "SMALL"}})
            self.assertEqual(status, 200, (key, value, body))
            self.assertEqual([r["StudyInstanceUID"] for r in body["results"]],
                             [self.small[0][2]], (key, value))

    def test_find_table_leads_with_people_columns_and_ends_with_the_uid(self):
        cp = run_cli(["find", "orthanc", "PatientID=SMALL", "--server", self.server.url],
                     cli_env())
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        header = cp.stdout.splitlines()[0].split()
        self.assertEqual(header[0], "DATE", cp.stdout)
        self.assertLess(header.index("PATIENT"), header.index("MODALITY"), cp.stdout)
        self.assertEqual(header[-2:], ["STUDY", "UID"], cp.stdout)
        row = cp.stdout.splitlines()[1]
        self.assertTrue(row.startswith("20240115  SMALL^ONE"), cp.stdout)
        self.assertTrue(row.endswith(self.small[0][2]), cp.stdout)
        cp = run_cli(["find", "orthanc", "--level", "series", "PatientID=SMALL",
                      "--server", self.server.url], cli_env())
        self.assertEqual(cp.stdout.splitlines()[0].split()[-2:], ["SERIES", "UID"], cp.stdout)
        self.assertTrue(cp.stdout.splitlines()[1].endswith(self.small[0][3]), cp.stdout)

    def test_find_table_fits_the_width_without_cutting_the_uid(self):
        args = ["find", "orthanc", "PatientID=WIDE1", "--server", self.server.url]
        uid = self.wide[0][2]
        self.assertTrue(uid.startswith(LONG_UID_ROOT))
        cp = run_cli(args, cli_env())  # not a terminal, no $COLUMNS: nothing cut
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIn("VERYLONGFAMILYNAMEOFSOMEONE^WITHALONGGIVENNAME", cp.stdout)
        self.assertNotIn("…", cp.stdout)
        wide_width = len(cp.stdout.splitlines()[1])
        self.assertGreater(wide_width, 140, cp.stdout)
        cp = run_cli(args, cli_env(COLUMNS="120"))
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        lines = cp.stdout.splitlines()
        for line in lines[:2]:
            self.assertLessEqual(len(line), 120, cp.stdout)
        self.assertIn("…", lines[1])
        self.assertTrue(lines[1].endswith(uid), cp.stdout)
        self.assertIn("20230303", lines[1])

    def test_find_columns_chooses_the_columns(self):
        args = ["find", "orthanc", "PatientID=SMALL", "--server", self.server.url,
                "--columns", "StudyInstanceUID,AccessionNumber,PatientName"]
        cp = run_cli(args, cli_env())
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        lines = cp.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["StudyInstanceUID", "AccessionNumber", "PatientName"])
        self.assertEqual(lines[1].split(), [self.small[0][2], "ACC1", "SMALL^ONE"])
        cp = run_cli(["find", "orthanc", "--server", self.server.url, "--columns",
                      "StudyDate,Bogus"], cli_env())
        self.assertEqual(cp.returncode, 2, harness.proc_output(cp))
        self.assertIn("'Bogus' is not a DICOM keyword", cp.stderr)
        # --json is unchanged: the answer of the API.
        cp = run_cli(["find", "orthanc", "PatientID=SMALL", "--json", "--server",
                      self.server.url], cli_env())
        answer = json.loads(cp.stdout)
        self.assertEqual([r["StudyInstanceUID"] for r in answer["results"]], [self.small[0][2]])


if __name__ == "__main__":
    unittest.main()
