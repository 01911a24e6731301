"""Nothing a sender was told is stored is ever lost: the server is killed with SIGKILL right
after storescu got its last success, and at the next start every instance is in the index,
once.

The path is forced: the server runs with PACSBRIDGE_TEST_INDEX_DELAY_MS (its indexer waits 3 s
before each batch), so at the kill index writes are surely pending and only the journal names
those instances. The test checks that journals were left, then that the restart replayed them.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_crash_recovery.py
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

COUNT = 300


class CrashRecoveryTests(harness.E2ETestCase):

    def test_sigkill_after_success_loses_nothing(self):
        harness.require_binary(self)
        srv = harness.Server(self.mkdtemp("server"))
        self._peers.append(srv)
        self.addCleanup(srv.kill)
        srv.start(env={"PACSBRIDGE_TEST_INDEX_DELAY_MS": "3000"})
        files = dicomgen.generate(self.mkdtemp("crash"), COUNT, size=2048, studies=3,
                                  patient_id="CRASH")
        cp = harness.storescu(srv.dicom_port, srv.dicom_ae, [f[0] for f in files])
        srv.kill()  # at once: the indexer is still waiting on its first batch
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        leftover = sorted(p.name for p in (srv.journal_dir).iterdir()
                          if p.stat().st_size > 0)
        self.assertTrue(leftover, "no journal left at the kill: the replay would not be tested")
        lines = sum(len((srv.journal_dir / n).read_text().splitlines()) for n in leftover)
        self.assertGreaterEqual(lines, COUNT // 2, "few instances pending at the kill")

        again = harness.Server(srv.workdir, receivers=srv.receivers)
        self._peers.append(again)
        self.addCleanup(again.stop_and_check)
        again.start()
        status, studies = again.api("GET", "/api/studies?PatientID=CRASH")
        self.assertEqual(status, 200, studies)
        self.assertEqual(sum(s["instance_count"] for s in studies), COUNT, studies)
        seen = harness.archive_instances(again, "PatientID=CRASH")
        self.assertEqual(sorted(seen), sorted(f[1] for f in files), "each instance indexed exactly once")
        for path, sop, _, _ in files[::37]:
            status, _, payload = again.raw("GET", "/api/instances/%s/file" % sop)
            self.assertEqual(status, 200, sop)
            self.assertEqual(payload[dicomgen.read_meta(payload)[1]:], dicomgen.dataset_bytes(path))
        self.assertEqual([p.name for p in (again.journal_dir).iterdir()
                          if p.stat().st_size > 0], [],
                         "journals should be replayed and removed at start")
        self.assertEqual(list((again.tmp_dir).iterdir()), [])


if __name__ == "__main__":
    unittest.main()
