"""Backup and restore as docs/operations.md tells it (issue 17): the index's online copy while a
sender stores (SQLite: the sqlite3 command line's .backup; PostgreSQL: pg_dump), then the data
directory's files; restored into a new directory (and, for PostgreSQL, a new database through
pg_restore), a second server serves the same studies, series and instances, byte for byte.

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

    def backup_while_storing(self, source, port, copy_index, ignore):
        """docs/operations.md's online backup: 24 instances stored first, then a sender
        storing 300 more while `copy_index(backup_dir)` copies the index and, after it, the data
        directory's files are copied (without what `ignore` names). Returns (instances stored
        before, the backup directory, {sop: bytes} of the whole original archive); the source is
        then stopped and its data directory moved away, so the copy must stand alone."""
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
        copy_index(backup)
        shutil.copytree(source.data_dir, backup / "data", symlinks=True, ignore=ignore)
        out, err = sender.communicate(timeout=300)
        self.assertEqual(sender.returncode, 0, err)

        self.assertTrue(harness.wait_until(lambda: len(self.archive_of(source)) == 24 + 300,
                                           timeout=60), "the source indexed all it stored")
        original = self.archive_of(source)
        source.stop_and_check()
        source.data_dir.rename(source.workdir / "moved-away")
        return before, backup, original

    def assertServesTheSame(self, target, before, original):
        copy = self.archive_of(target)
        # Everything stored before the backup is there, and every instance the copy serves is
        # the same bytes as the original's.
        for _, sop, _, _ in before:
            self.assertIn(sop, copy)
        for sop, body in copy.items():
            self.assertEqual(body, original[sop], sop)
        # The same studies for what the copy holds.
        status, studies = target.api("GET", "/api/studies?limit=1000")
        self.assertEqual(status, 200)
        backup_studies = {s["StudyInstanceUID"]: s for s in studies}
        self.assertTrue({f[2] for f in before} <= set(backup_studies))
        return copy

    def test_online_backup_restores_the_same_archive(self):
        port = harness.free_port()
        source = self.start_server(receivers=[{"ae_title": AE, "port": port, "bind": "127.0.0.1"}])

        def sqlite_backup(backup):
            cp = subprocess.run(["sqlite3", str(source.data_dir / "index.db"),
                                 ".backup '%s'" % (backup / "index.db")],
                                capture_output=True, text=True, timeout=120)
            self.assertEqual(cp.returncode, 0, cp.stderr)

        # rsync's excludes in docs/operations.md
        ignore = shutil.ignore_patterns("tmp", "index.db", "index.db-*", "pacsbridge.lock")
        before, backup, original = self.backup_while_storing(source, port, sqlite_backup, ignore)
        shutil.move(str(backup / "index.db"), str(backup / "data" / "index.db"))

        # Restored into a new directory, served by a second server.
        restored_dir = self.mkdtemp("restored")
        shutil.copytree(backup / "data", restored_dir / "data")
        target = harness.Server(restored_dir, receivers=[
            {"ae_title": AE, "port": harness.free_port(), "bind": "127.0.0.1"}])
        self._peers.append(target)
        self.addCleanup(target.stop_and_check)
        target.start()
        self.assertServesTheSame(target, before, original)

    def test_postgresql_dump_restores_the_same_archive(self):
        # docs/operations.md "With the index on PostgreSQL": pg_dump while the server writes,
        # then the files; pg_restore into a new database (the original is dropped), and the
        # files into a new directory.
        pg = harness.postgres()
        port = harness.free_port()
        source_dir = self.mkdtemp("pgsource")
        source_db = pg.database_for(source_dir / "data")
        source = harness.Server(source_dir, database_url=pg.url(source_db),
                                receivers=[{"ae_title": AE, "port": port, "bind": "127.0.0.1"}])
        self._peers.append(source)
        self.addCleanup(source.stop)
        # The indexer lags (a test-only delay before each batch), so the dump misses arrivals
        # that the copied journal holds: the restore must index them from it.
        source.start(env={"PACSBRIDGE_TEST_INDEX_DELAY_MS": "1000"})
        self.assertTrue((source.data_dir / "instances").is_dir(), "premise: the layout of a "
                        "server on PostgreSQL (journals under instances/<id>/)")

        def pg_dump(backup):
            cp = subprocess.run(["pg_dump", "--format=custom", "--file=%s" % (backup / "index.pgdump"),
                                 pg.url(source_db)], capture_output=True, text=True, timeout=120)
            self.assertEqual(cp.returncode, 0, cp.stderr)

        # the excludes the docs give for a directory of instances
        ignore = shutil.ignore_patterns("tmp", "pacsbridge.lock")
        before, backup, original = self.backup_while_storing(source, port, pg_dump, ignore)
        self.assertTrue(list((backup / "data" / "instances").glob("*/journal")),
                        "the instances' journals are in the backup")
        pg.psql("DROP DATABASE %s" % source_db)

        restored_db = "restored_" + source_db
        pg.psql("CREATE DATABASE %s" % restored_db)
        cp = subprocess.run(["pg_restore", "--clean", "--if-exists",
                             "--dbname=%s" % pg.url(restored_db), str(backup / "index.pgdump")],
                            capture_output=True, text=True, timeout=120)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        dumped = int(pg.psql("SELECT count(*) FROM instances", database=restored_db))
        journaled = sum(len(j.read_text().splitlines())
                        for j in (backup / "data" / "instances").glob("*/journal/*"))
        self.assertGreater(journaled, 0, "premise: arrivals not yet indexed at the dump")
        restored_dir = self.mkdtemp("pgrestored")
        shutil.copytree(backup / "data", restored_dir / "data")
        target = harness.Server(restored_dir, database_url=pg.url(restored_db), receivers=[
            {"ae_title": AE, "port": harness.free_port(), "bind": "127.0.0.1"}])
        self._peers.append(target)
        self.addCleanup(target.stop_and_check)
        target.start()
        copy = self.assertServesTheSame(target, before, original)
        # What the copied journal held and the dump did not is indexed at start.
        self.assertGreater(len(copy), dumped, "nothing was indexed from the copied journal")

if __name__ == "__main__":
    unittest.main()
