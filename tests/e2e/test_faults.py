"""Faults that must lose nothing a sender was told is stored (issue: hardening).

- A full disk under the index only (the SQLite index on its own small tmpfs, the data
  directory elsewhere): instances answered before the indexer met the full disk stay in the
  archive and their journal; from then on arrivals are refused with 0xA700 while reads go on;
  once space returns, the pending instances are indexed without a restart, each exactly once,
  and arrivals are taken again.
- The data directory made read-only while the server runs: arrivals are refused with 0xA700
  and a log line saying why, the archive keeps being served, and once it is writable again
  arrivals are stored.

Needs root (mount namespaces, tmpfs) and util-linux unshare / nsenter.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_faults.py
"""

import errno
import os
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

INDEX_TMPFS = 4 * 1024 * 1024
DATA_TMPFS = 64 * 1024 * 1024


class MountedServer(harness.Server):
    """pacsbridge serve in its own mount namespace with `mount_dir` on a tmpfs of `mount_bytes`.

    `unshare -m` (no --fork) and `exec` keep one PID, so signals and the exit code are the
    server's; the tmpfs lives only in that namespace."""

    def __init__(self, workdir, mount_dir, mount_bytes, **kw):
        super().__init__(workdir, **kw)
        self.mount_dir = Path(mount_dir)
        self.mount_bytes = mount_bytes

    def serve_argv(self):
        script = 'mount -t tmpfs -o size=%d tmpfs "$1" && exec "$2" serve --config "$3"' % self.mount_bytes
        return ["unshare", "-m", "--propagation", "private", "bash", "-c", script, "bash",
                str(self.mount_dir), str(harness.require_binary()), str(self.config_path)]

    def ns_path(self, path):
        """path as the server sees it (through its mount namespace)."""
        return Path("/proc/%d/root" % self.pid) / Path(path).relative_to("/")

    def nsenter(self, *argv):
        cp = subprocess.run(["nsenter", "--mount", "--target", str(self.pid)] + list(argv),
                            capture_output=True, text=True, timeout=20)
        if cp.returncode != 0:
            raise AssertionError("nsenter %s failed: %s" % (" ".join(argv), cp.stderr))
        return cp.stdout


def require_root_tools():
    if os.geteuid() != 0:
        raise AssertionError("test_faults.py mounts tmpfs in private mount namespaces and needs root")
    for tool in ("unshare", "nsenter", "mount"):
        if shutil.which(tool) is None:
            raise AssertionError("util-linux %s is needed and not installed" % tool)


class FaultTestCase(harness.E2ETestCase):
    @classmethod
    def start_mounted(cls, mount_dir, mount_bytes, database_path):
        """The class's server, `mount_dir` (made here) on its own tmpfs."""
        require_root_tools()
        harness.require_binary()
        Path(mount_dir).mkdir(parents=True)
        srv = MountedServer(cls.tmp / "server", mount_dir, mount_bytes, database_path=database_path)
        cls._peers.append(srv)
        cls.addClassCleanup(srv.stop_and_check)
        srv.start()
        cls.server = srv

    def store_one(self, path):
        """storescu of one file: True for Success, False for 0xA700; anything else fails."""
        return harness.store_or_refused(self, self.server, path, "FAULTSCU")

    def indexed(self, patient_id):
        status, studies = self.server.api("GET", "/api/studies?PatientID=%s" % patient_id)
        self.assertEqual(status, 200, studies)
        return sum(s["instance_count"] for s in studies)

    def sops_indexed(self, files):
        found = set()
        for _, sop, _, series in files:
            status, rows = self.server.api("GET", "/api/series/%s/instances" % series)
            if status == 200:
                found |= {r["SOPInstanceUID"] for r in rows}
        return found & {f[1] for f in files}


class IndexDiskFullTests(FaultTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.index_dir = cls.tmp / "server" / "index"
        cls.start_mounted(cls.index_dir, INDEX_TMPFS, cls.index_dir / "index.db")

    def fill(self):
        """Fills the index's tmpfs to the last byte; returns the filler's path."""
        filler = self.server.ns_path(self.index_dir / "filler")
        fd = os.open(str(filler), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            for size in (65536, 4096, 512, 1):
                while True:
                    try:
                        os.write(fd, b"\0" * size)
                    except OSError as e:
                        self.assertEqual(e.errno, errno.ENOSPC, e)
                        break
        finally:
            os.close(fd)
        st = os.statvfs(str(filler.parent))
        self.assertLess(st.f_bavail * st.f_frsize, 4096, "the index's tmpfs is not full")
        return filler

    def test_full_index_refuses_arrivals_and_indexes_what_was_answered_once_space_returns(self):
        before = dicomgen.generate(self.tmp / "before", 3, size=4096, patient_id="FAULTBEFORE")
        for f in before:
            self.assertTrue(self.store_one(f[0]))
        self.assertTrue(harness.wait_until(lambda: self.indexed("FAULTBEFORE") == 3, timeout=10))

        filler = self.fill()
        files = dicomgen.generate(self.tmp / "during", 150, size=4096, patient_id="FAULTDURING",
                                  series_per_study=2)
        acked, refused = [], []
        for f in files:
            (acked if self.store_one(f[0]) else refused).append(f)
            if refused:
                break
        self.assertTrue(refused, "150 instances were answered Success while the index could not be "
                                 "written: arrivals are not refused")
        # Still refused while the disk stays full (the indexer retries every second)...
        self.assertFalse(self.store_one(files[-1][0]), "an arrival was taken while the index is full")
        log = self.server.log_path.read_text("utf-8", "replace")
        self.assertRegex(log, r"cannot index \d+ instance\(s\): .*(full|space)",
                         "no log line saying why the index cannot be written")
        # ... and reads go on.
        self.assertEqual(self.indexed("FAULTBEFORE"), 3)
        status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % before[0][1])
        self.assertEqual(status, 200)

        os.remove(filler)  # space returns: no restart
        want = {f[1] for f in acked}
        self.assertTrue(harness.wait_until(lambda: self.sops_indexed(acked) == want, timeout=30),
                        "answered instances not indexed once space returned: %d of %d"
                        % (len(self.sops_indexed(acked)), len(want)))
        self.assertEqual(self.indexed("FAULTDURING"), len(acked), "indexed more (or less) than answered")
        self.assertTrue(self.store_one(refused[0][0]), "arrivals still refused after space returned")
        self.assertTrue(harness.wait_until(lambda: self.indexed("FAULTDURING") == len(acked) + 1, timeout=10))
        self.assertIn("the index accepts writes again", self.server.log_path.read_text("utf-8", "replace"))


class ReadOnlyDataDirTests(FaultTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.start_mounted(cls.tmp / "server" / "data", DATA_TMPFS, cls.tmp / "server" / "index.db")

    def test_read_only_data_dir_refuses_arrivals_keeps_serving_and_recovers(self):
        first = dicomgen.generate(self.tmp / "first", 2, size=4096, patient_id="ROFIRST")
        for f in first:
            self.assertTrue(self.store_one(f[0]))
        self.assertTrue(harness.wait_until(lambda: self.indexed("ROFIRST") == 2, timeout=10))

        # A read-only bind mount over the data directory: everything the server opens from now
        # on is read-only (a plain remount would be refused while its journal is open).
        data = str(self.server.data_dir)
        self.server.nsenter("mount", "--bind", data, data)
        self.server.nsenter("mount", "-o", "remount,bind,ro", data)
        writable = []
        self.addCleanup(lambda: writable or not self.server.running() or self.server.nsenter("umount", data))
        later = dicomgen.generate(self.tmp / "later", 2, size=4096, patient_id="ROLATER")
        self.assertFalse(self.store_one(later[0][0]), "stored into a read-only data directory")
        log = self.server.log_path.read_text("utf-8", "replace")
        self.assertRegex(log, r"(?i)read-only file system", "no log line naming the cause")
        # The archive is still served.
        status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % first[0][1])
        self.assertEqual(status, 200)
        self.assertEqual(payload[dicomgen.read_meta(payload)[1]:], dicomgen.dataset_bytes(first[0][0]))
        cp = harness.echoscu(self.server.dicom_port, self.server.dicom_ae)
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))

        # The server lets go of the file it served just after the client has its last byte: on
        # a loaded machine the mount can still be busy for a moment.
        def unmounted():
            try:
                self.server.nsenter("umount", data)
                return True
            except AssertionError as e:
                if "busy" not in str(e):
                    raise
                return False
        self.assertTrue(harness.wait_until(unmounted, timeout=10), "the read-only mount stayed busy")
        writable.append(True)
        for f in later:
            self.assertTrue(self.store_one(f[0]), "arrivals still refused once the directory is writable")
        self.assertTrue(harness.wait_until(lambda: self.indexed("ROLATER") == 2, timeout=10))
        self.assertEqual(self.indexed("ROFIRST"), 2)


if __name__ == "__main__":
    unittest.main()
