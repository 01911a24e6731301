"""SIGTERM while a large instance is being received: the server finishes (or cleanly drops)
the in-flight transfer and exits 0 in time; nothing is ever half-indexed.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_shutdown.py
"""

import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

BIG_SIZE = 150 * 1000 * 1000
EXIT_DEADLINE = 30  # seconds from SIGTERM to exit
SIGTERM_AFTER_BYTES = 8 * 1000 * 1000


class ShutdownTests(harness.E2ETestCase):

    def test_sigterm_during_large_c_store(self):
        srv = self.start_server()
        path, sop, study, _ = dicomgen.generate(self.mkdtemp("big"), 1, size=BIG_SIZE,
                                                patient_id="SHUTDOWN")[0]
        size = os.path.getsize(path)
        proc = harness.start_tool(harness.storescu_args(
            srv.dicom_port, srv.dicom_ae, [path], calling_ae="INFLIGHT", extra=["-v"]))
        self.addCleanup(lambda: proc.poll() is None and proc.kill())

        # SIGTERM once a few MB went through, well before the end.
        acked = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < 30 and proc.poll() is None:
            acked = harness.socket_bytes_acked(proc.pid, srv.dicom_port)
            if acked is not None and acked >= SIGTERM_AFTER_BYTES:
                break
            time.sleep(0.01)
        storescu_running = proc.poll() is None
        os.kill(srv.pid, signal.SIGTERM)
        t_term = time.monotonic()
        self.assertTrue(storescu_running, "storescu ended (exit %s) before SIGTERM could be sent"
                        % proc.returncode)
        self.assertIsNotNone(acked, "no TCP connection of storescu seen with ss")
        self.assertLess(acked, size // 2, "the transfer was almost over at SIGTERM")
        sys.stderr.write("[SIGTERM after %d of %d bytes] " % (acked, size))

        try:
            code = srv.proc.wait(EXIT_DEADLINE)
        except subprocess.TimeoutExpired:
            code = None
        exit_after = time.monotonic() - t_term
        if code is None:
            srv.kill()
            srv.returncode = "killed"
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        storescu_report = "storescu exit %s\n%s\n%s" % (proc.returncode, out, err[-3000:])
        self.assertIsNotNone(code, "pacsbridge still running %ss after SIGTERM (killed); %s\n"
                             "log tail:\n%s" % (EXIT_DEADLINE, storescu_report, srv.log_tail()))
        self.assertEqual(code, 0, "pacsbridge exited with %s after SIGTERM; %s\nlog tail:\n%s"
                         % (code, storescu_report, srv.log_tail()))
        sys.stderr.write("[exit 0 after %.1f s; storescu exit %s] "
                         % (exit_after, proc.returncode))
        left_at_exit = harness.files_under(srv.data_dir / "tmp")
        if left_at_exit:
            sys.stderr.write("[left in tmp at exit, before restart: %s] " % left_at_exit)

        # Restart on the same data directory and look at what was kept.
        srv.start()
        status, _, payload = srv.raw("GET", "/api/instances/%s/file" % sop, timeout=120)
        studies = harness.studies_by_uid(srv)
        archived = harness.files_under(srv.data_dir / "archive")
        stored_ok = proc.returncode == 0
        if stored_ok:
            self.assertEqual(status, 200, "storescu was told the instance was stored, but after "
                             "the restart it is not served (%s); archive: %s\n%s"
                             % (status, archived, storescu_report))
        if status == 200:
            self.assertTrue(payload[dicomgen.read_meta(payload)[1]:] ==
                            dicomgen.dataset_bytes(path),
                            "the stored data set differs from the one sent (%d bytes served)"
                            % len(payload))
            self.assertIn(study, studies)
            self.assertEqual(studies[study].get("instance_count"), 1, studies[study])
            self.assertEqual(len(archived), 1, "archive files: %s" % archived)
        else:
            self.assertEqual(status, 404, "GET /api/instances/{uid}/file -> %s" % status)
            self.assertNotEqual(proc.returncode, 0, storescu_report)
            self.assertNotIn(study, studies, "the study is listed but its instance is not "
                             "served (half-indexed)")
            self.assertEqual(archived, [], "files in the archive without an index entry: %s"
                             % archived)
        self.assertEqual(harness.files_under(srv.data_dir / "tmp"), [],
                         "files left in <data_dir>/tmp after the restart")
        sys.stderr.write("[%s] " % ("stored and indexed" if status == 200
                                    else "refused, not indexed"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
