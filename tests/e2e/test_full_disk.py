"""A full disk: the data directory on a 4 MB tmpfs (in a private mount namespace), the SQLite
index outside it. An 8 MB instance must be refused with status 0xA700 (Out of Resources),
leave nothing behind and not be indexed; the server keeps serving and stores small instances.

Needs root (mount namespace + tmpfs) and util-linux unshare / nsenter.

scripts/in-netns.sh python3 -m unittest -v tests/e2e/test_full_disk.py
"""

import os
import re
import shutil
import subprocess
import sys
import unittest
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402

TMPFS_BYTES = 4 * 1024 * 1024
BIG_SIZE = 8 * 1000 * 1000
SMALL_SIZE = 2048


class TmpfsServer(harness.Server):
    """pacsbridge serve in its own mount namespace with data_dir on a small tmpfs.

    `unshare -m` (no --fork) and `exec` keep one PID: the Popen PID is pacsbridge itself, so
    SIGTERM and the exit code are the server's. The tmpfs lives only in that namespace and
    is gone once the server exits."""

    def serve_argv(self):
        script = ('mount -t tmpfs -o size=%d tmpfs "$1" && exec "$2" serve --config "$3"'
                  % TMPFS_BYTES)
        return ["unshare", "-m", "--propagation", "private", "bash", "-c", script, "bash",
                str(self.data_dir), str(harness.require_binary()), str(self.config_path)]

    def ns_path(self, path):
        """path as the server sees it (through its mount namespace)."""
        return Path("/proc/%d/root" % self.pid) / Path(path).relative_to("/")

    def ns_files(self, directory):
        """Regular files below directory inside the server's mount namespace (nsenter)."""
        cp = subprocess.run(["nsenter", "--mount", "--target", str(self.pid), "find",
                             str(directory), "-type", "f"],
                            capture_output=True, text=True, timeout=20)
        if cp.returncode != 0:
            raise AssertionError("nsenter find %s failed: %s" % (directory, cp.stderr))
        return [line for line in cp.stdout.splitlines() if line]


class FullDiskTests(harness.E2ETestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if os.geteuid() != 0:
            raise AssertionError("test_full_disk.py mounts a tmpfs in a private mount namespace "
                                 "and needs root (id -u is %d)" % os.geteuid())
        for tool in ("unshare", "nsenter", "mount"):
            if shutil.which(tool) is None:
                raise AssertionError("util-linux %s is needed and not installed" % tool)
        harness.require_binary()
        work = cls.tmp / "server"
        (work / "data").mkdir(parents=True)
        srv = TmpfsServer(work, database_path=work / "index.db")
        cls._peers.append(srv)
        cls.addClassCleanup(srv.stop_and_check)
        srv.start()
        cls.server = srv
        cls.mnt_ns = os.readlink("/proc/%d/ns/mnt" % srv.pid)
        cls.gen = cls.tmp / "gen"

    def tmp_files(self):
        return self.server.ns_files(self.server.data_dir / "tmp")

    def assertTmpEmptySoon(self, timeout=10):
        empty = harness.wait_until(lambda: not self.tmp_files(), timeout=timeout)
        self.assertTrue(empty, "files left in <data_dir>/tmp after %ss: %s"
                        % (timeout, self.tmp_files()[:10]))

    def assertServing(self, what):
        cp = harness.echoscu(self.server.dicom_port, self.server.dicom_ae)
        self.assertEqual(cp.returncode, 0, "echoscu %s:\n%s" % (what, harness.proc_output(cp)))
        self.assertHealthy(self.server, what)

    # ------------------------------------------------------------------ scenarios

    def test_0_data_dir_is_a_small_tmpfs_index_outside(self):
        self.assertNotEqual(self.mnt_ns, os.readlink("/proc/self/ns/mnt"),
                            "the server runs in our own mount namespace")
        st = os.statvfs(str(self.server.ns_path(self.server.data_dir)))
        self.assertEqual(st.f_blocks * st.f_frsize, TMPFS_BYTES,
                         "the server's data_dir is not the 4 MB tmpfs")
        self.assertTrue((self.server.workdir / "index.db").exists(),
                        "the SQLite index is not outside the data directory")

    def test_a_instance_larger_than_the_disk_is_refused(self):
        path, sop, study, _ = dicomgen.generate(self.gen / "big", 1, size=BIG_SIZE,
                                                patient_id="TOOBIG")[0]
        self.assertGreater(os.path.getsize(path), TMPFS_BYTES)
        cp = harness.storescu(self.server.dicom_port, self.server.dicom_ae, [path],
                              calling_ae="FULLDISK", extra=["-d"], timeout=120)
        out = cp.stdout + cp.stderr

        # Whatever the answer, the server survives, leaves nothing behind, indexes nothing.
        self.assertServing("after a C-STORE that filled the disk")
        status, _, _ = self.server.raw("GET", "/api/instances/%s/file" % sop)
        self.assertEqual(status, 404, "the instance that did not fit is served")
        self.assertNotIn(study, harness.studies_by_uid(self.server),
                         "the instance that did not fit is listed")
        self.assertTmpEmptySoon()
        archived = self.server.ns_files(self.server.data_dir / "archive")
        self.assertEqual(archived, [], "files in the archive: %s" % archived)

        # The answer: a C-STORE-RSP with 0xA700, which storescu prints at -v as
        # "Received Store Response (Refused: OutOfResources)" and turns into exit 167 (0xA7).
        self.assertNotEqual(cp.returncode, 0, "storescu reported success:\n%s"
                            % harness.proc_output(cp))
        self.assertIsNotNone(
            re.search(r"A700|Out\s*Of\s*Resources", out, re.IGNORECASE),
            "storescu got no C-STORE-RSP with status 0xA700 (Out of Resources); the server "
            "must answer the C-STORE, not abort the association:\n%s" % harness.proc_output(cp))
        # Its status detail says why: storescu prints the response's Error
        # Comment (0000,0902) at -d.
        self.assertIsNotNone(
            re.search(r"\(0000,0902\) LO \[[^]]*disk full", out),
            "the C-STORE-RSP carries no Error Comment naming the full disk:\n%s"
            % harness.proc_output(cp))

    def test_c_anonymizing_receiver_refuses_what_does_not_fit_and_leaves_nothing(self):
        # An anonymizing receiver holds the data set in memory and writes only the
        # de-identified result: when that write fails, 0xA700 and nothing on disk.
        before = set(self.server.ns_files(self.server.data_dir / "archive"))
        port = harness.free_receiver_port()
        status, body = self.server.api("POST", "/api/receivers", {
            "ae_title": "ANONFULL", "port": port, "bind": "127.0.0.1", "anonymize": True})
        self.assertEqual(status, 201, body)
        path, sop, study, _ = dicomgen.generate(self.gen / "anonbig", 1, size=BIG_SIZE,
                                                patient_id="ANONTOOBIG",
                                                patient_name="Anon^Toobig")[0]
        cp = harness.storescu(port, "ANONFULL", [path], calling_ae="FULLDISK", extra=["-v"],
                              timeout=120)
        out = cp.stdout + cp.stderr
        self.assertNotEqual(cp.returncode, 0, harness.proc_output(cp))
        self.assertIsNotNone(re.search(r"A700|Out\s*Of\s*Resources", out, re.IGNORECASE),
                             harness.proc_output(cp))
        self.assertServing("after an anonymized C-STORE that did not fit")
        self.assertTmpEmptySoon()
        self.assertEqual(set(self.server.ns_files(self.server.data_dir / "archive")), before)
        small, _, _, _ = dicomgen.generate(self.gen / "anonsmall", 1, size=SMALL_SIZE,
                                           patient_id="ANONFITS", patient_name="Anon^Fits")[0]
        cp = harness.storescu(port, "ANONFULL", [small], calling_ae="FULLDISK")
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))
        def new():
            return set(self.server.ns_files(self.server.data_dir / "archive")) - before
        self.assertTrue(harness.wait_until(new, timeout=10), "the small instance is not archived")
        for f in new():
            data = self.server.ns_path(f).read_bytes()
            self.assertNotIn(b"ANONFITS", data)
            self.assertNotIn(b"Anon^Fits", data)
        status, _ = self.server.api("DELETE", "/api/receivers/%s" % body["id"])
        self.assertEqual(status, 204)

    def test_b_small_instance_is_stored_afterwards(self):
        path, sop, study, _ = dicomgen.generate(self.gen / "small", 1, size=SMALL_SIZE,
                                                patient_id="FITS")[0]
        cp = harness.storescu(self.server.dicom_port, self.server.dicom_ae, [path],
                              calling_ae="FULLDISK")
        self.assertEqual(cp.returncode, 0, "small instance after the full disk:\n%s"
                         % harness.proc_output(cp))
        status, _, payload = self.server.raw("GET", "/api/instances/%s/file" % sop)
        self.assertEqual(status, 200, "the small instance is not served")
        self.assertEqual(payload[dicomgen.read_meta(payload)[1]:], dicomgen.dataset_bytes(path))
        self.assertIn(study, harness.studies_by_uid(self.server))
        self.assertTmpEmptySoon()

    def test_z_tmpfs_goes_away_with_the_server(self):
        pid = self.server.pid
        self.server.stop_and_check()
        holders = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink("/proc/%s/ns/mnt" % entry) == self.mnt_ns:
                        holders.append(int(entry))
                except OSError:
                    pass
        self.assertEqual(holders, [], "processes still in the server's mount namespace "
                         "(pid %d was the server): the tmpfs is still alive" % pid)
        with open("/proc/self/mountinfo") as f:
            self.assertNotIn(" %s " % self.server.data_dir, f.read(),
                             "the tmpfs leaked into our mount namespace")
        self.assertEqual(os.listdir(self.server.data_dir), [],
                         "files went to the real directory under the tmpfs mount point")


if __name__ == "__main__":
    unittest.main(verbosity=2)
