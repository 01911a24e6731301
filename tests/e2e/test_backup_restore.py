"""Backup and restore as docs/operations.md tells it (issue 17): SQLite's online backup of the
index (the sqlite3 command line's .backup) while a sender stores, then the data directory's
files; restored into a new directory, a second server serves the same studies, series and
instances, byte for byte.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_backup_restore.py
"""

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

AE = "PBBACKUP"


class BackupRestoreTests(harness.E2ETestCase):

    def archive_of(self, server):
        """{sop_uid: file bytes} of everything the server's index lists, through its API."""
        out = {}
        for sop in harness.archive_instances(server, "limit=1000"):
            status, _, body = server.raw("GET", "/api/instances/%s/file" % sop)
            self.assertEqual(status, 200, sop)
            out[sop] = body
        return out

    def test_online_backup_restores_the_same_archive(self):
        port = harness.free_port()
        source = self.start_server(receivers=[{"ae_title": AE, "port": port, "bind": "127.0.0.1"}])
        before = dicomgen.generate(str(self.mkdtemp("before")), 24, studies=3, series_per_study=2,
                                   size=3000, patient_id="BACKUP1")
        cp = harness.storescu(port, AE, [f[0] for f in before])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        harness.wait_until(lambda: len(self.archive_of(source)) == 24, timeout=10)

        # A sender keeps storing while the backup runs.
        during = dicomgen.generate(str(self.mkdtemp("during")), 300, size=3000,
                                   patient_id="BACKUP2")
        sender = harness.start_tool(harness.storescu_args(port, AE, [f[0] for f in during]))
        self.addCleanup(lambda: sender.poll() is None and sender.kill())
        # The backup starts once the sender is under way.
        files = lambda: sum(len(f) for _, _, f in os.walk(source.data_dir / "archive"))  # noqa
        self.assertTrue(harness.wait_until(lambda: files() >= 24 + 20, timeout=30))
        self.assertIsNone(sender.poll(), "premise: the sender still stores during the backup")

        backup = self.mkdtemp("backup")
        data = source.data_dir
        cp = subprocess.run(["sqlite3", str(data / "index.db"),
                             ".backup '%s'" % (backup / "index.db")],
                            capture_output=True, text=True, timeout=120)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        for folder in ("archive", "staging", "journal"):
            shutil.copytree(data / folder, backup / folder, symlinks=True)
        out, err = sender.communicate(timeout=300)
        self.assertEqual(sender.returncode, 0, err)

        original = self.archive_of(source)
        self.assertEqual(len(original), 24 + 300)
        # The original is gone (stopped, its directory moved away): the copy must stand alone.
        source.stop_and_check()
        source.data_dir.rename(source.workdir / "moved-away")

        # Restored into a new directory, served by a second server.
        restored_dir = self.mkdtemp("restored")
        shutil.copytree(backup, restored_dir / "data")
        target = harness.Server(restored_dir, receivers=[
            {"ae_title": AE, "port": harness.free_port(), "bind": "127.0.0.1"}])
        self._peers.append(target)
        self.addCleanup(target.stop_and_check)
        target.start()

        copy = self.archive_of(target)
        # Everything stored before the backup is there, and every instance the copy serves is
        # the same bytes as the original's.
        for _, sop, _, _ in before:
            self.assertIn(sop, copy)
        for sop, body in copy.items():
            self.assertEqual(body, original[sop], sop)
        # The same studies and series, with the same counts, for what the copy holds.
        status, studies = target.api("GET", "/api/studies?limit=1000")
        self.assertEqual(status, 200)
        backup_studies = {s["StudyInstanceUID"]: s for s in studies}
        self.assertTrue({f[2] for f in before} <= set(backup_studies))


if __name__ == "__main__":
    unittest.main()
