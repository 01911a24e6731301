"""Several instances on one PostgreSQL index and one shared data directory.

Two servers, "gw-1" and "gw-2", share a PostgreSQL database of the test's own and one data
directory; each has a receiver of its own in its config file (they run on one machine here).

- A killed instance's work is taken over: gw-1 (alone when the job is queued, so surely the one
  that claims it) runs a send job to storescp (slowed by the node's throttle) and receives instances whose index rows it holds back (PACSBRIDGE_TEST_INDEX_DELAY_MS:
  its indexer waits a minute), so at the kill -9 the job is surely running and those instances
  are surely only in gw-1's journal. gw-2 then indexes them (taking gw-1's folder over, without a
  restart) and finishes the job where it was (after [jobs] lease_seconds = 3), and storescp ends
  with every instance. gw-1 starts again afterwards on its own folder.
- The same instances sent to both instances are stored once (one file, one row each).
- Nodes and receivers changed through one instance apply on the other: a node created, changed
  and removed; a receiver created through gw-1 listens there (gw-2 lists it, its port being
  gw-1's on this machine), and disabled through gw-2 stops listening on gw-1. A job running on
  one instance is canceled through the other, whose live job list (/api/jobs/events) follows it
  to its end.
- A node's max_bytes_per_second is shared: two sends to one throttled storescp (12 x 0.5 MB
  each), one on each instance (one job worker each) and running at once, take together at least
  SLACK x their bytes / the rate. Each instance alone at the node's rate would end both in half that. Each
  job's end asked with ?wait= of the instance not running it comes when the job ends.
- Transfers outside any job are shared too: while gw-2's Query/Retrieve receiver serves a C-MOVE
  (movescu) to the throttled storescp, gw-2 publishes the node (table node_transfers), and a send
  gw-1 then runs there spans at least 1.5x what the whole rate would take (half of it: about 2x).
  Unpublished, the send ran at the whole rate (1.0x).
- What may not share: a second server with gw-1's instance id on the directory, a server with an
  SQLite index on it, and a server on the database with a data directory of its own are refused
  at start and say why.
"""

import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import dicomgen  # noqa: E402
from test_send import StoreSCP  # noqa: E402

PROPAGATION_TIMEOUT = 10  # the servers read changes again every 2 s
SLACK = 0.7  # a throttled transfer's time is at least SLACK x bytes / rate (the buckets' bursts)


class InstancesTests(harness.JobHelpers, harness.E2ETestCase):
    def setUp(self):
        harness.require_binary(self)
        self.pg = harness.postgres()
        self.shared = self.mkdtemp("shared")
        self.url = self.pg.url(self.pg.database_for(self.shared))

    def instance(self, name, env=None, jobs_toml="", **kw):
        srv = harness.Server(self.mkdtemp(name), database_url=self.url, data_dir=self.shared,
                             server_toml='instance_id = "%s"' % name,
                             extra_toml="[jobs]\nlease_seconds = 3\n" + jobs_toml, **kw)
        self._peers.append(srv)
        srv.start(env=env)  # a test-only setting for this start only
        return srv

    def log(self, srv):
        return srv.log_path.read_text("utf-8", "replace")

    def store(self, srv, files):
        cp = harness.storescu(srv.dicom_port, srv.dicom_ae, [f[0] for f in files])
        self.assertEqual(cp.returncode, 0, harness.proc_output(cp))

    def indexed(self, srv, files):
        return set(harness.archive_instances(srv)) & {f[1] for f in files}

    def folder_bytes(self, name, sub):
        folder = self.shared_path() / "instances" / name / sub
        return sum(p.stat().st_size for p in folder.iterdir()) if folder.exists() else 0

    def slow_peer(self, srv, name, rate, fork=False):
        """storescp, registered through `srv` as node `name` throttled to `rate` bytes/s."""
        scp = StoreSCP(self.mkdtemp("scp"), fork=fork)
        self._peers.append(scp)
        scp.start()
        self.addCleanup(scp.stop)
        status, answer = srv.api("POST", "/api/nodes", {
            "name": name, "ae_title": scp.aet, "host": "127.0.0.1", "port": scp.port,
            "storable": True, "max_bytes_per_second": rate})
        self.assertEqual(status, 201, answer)
        return scp

    def shared_path(self):
        from pathlib import Path
        return Path(self.shared)

    def test_a_killed_instances_arrivals_and_job_are_taken_over(self):
        # The study to send is in the index already (received through gw-2, which then stops:
        # gw-1 alone is there to claim the job).
        gw2 = self.instance("gw-2")
        study = dicomgen.generate(self.mkdtemp("study"), 12, size=16 * 1024, patient_id="SENDME")
        self.store(gw2, study)
        self.assertTrue(harness.wait_until(lambda: len(self.indexed(gw2, study)) == 12, timeout=20))
        gw2.stop_and_check()
        gw1 = self.instance("gw-1", env={"PACSBRIDGE_TEST_INDEX_DELAY_MS": "60000"})
        self.addCleanup(gw1.kill)

        # A throttled node: 12 x 16 KB at 16 KB/s takes about 12 s, room for gw-2's start and
        # the held arrivals before the kill on a loaded machine (at 32 KB/s the job once ended
        # first).
        scp = self.slow_peer(gw1, "peer", 16 * 1024)
        status, answer = gw1.api("POST", "/api/send",
                                 {"node": "peer", "level": "STUDY", "uids": [study[0][2]]})
        self.assertEqual(status, 202, answer)
        job_id = str(answer["job_id"])
        running = self.wait_progress(job_id, 2, server=gw1)
        self.assertEqual((running.get("state"), running.get("instance")), ("running", "gw-1"), running)
        gw2.start()
        self.addCleanup(gw2.stop_and_check)

        # Arrivals at gw-1 answered Success whose rows gw-1 holds back.
        held = dicomgen.generate(self.mkdtemp("held"), 10, size=4096, patient_id="HELDBACK")
        self.store(gw1, held)
        self.assertGreater(self.folder_bytes("gw-1", "journal"), 0, "gw-1 journaled nothing")
        self.assertEqual(self.indexed(gw2, held), set(), "the test's index delay did not hold the rows back")
        self.assertLess(len(scp.files()), 12, "the job ended before the kill: nothing to take over")

        gw1.kill()

        # gw-2 indexes what gw-1 answered Success for, without a restart.
        self.assertTrue(harness.wait_until(lambda: self.indexed(gw2, held) == {f[1] for f in held},
                                           timeout=30),
                        "gw-2 did not index what gw-1's journal named:\n%s" % gw2.log_tail())
        self.assertIn("instance 'gw-1' is not running: indexed 10 instance(s)", self.log(gw2))
        self.assertEqual(self.folder_bytes("gw-1", "journal"), 0)
        self.assertEqual(self.folder_bytes("gw-1", "tmp"), 0)

        # gw-2 takes the job over once its lease ran out, and finishes it where it was.
        job = self.wait_job(job_id, timeout=60, server=gw2)
        self.assertEqual(job.get("state"), "succeeded", job)
        self.assertEqual((job.get("progress") or {}).get("completed"), 12, job)
        self.assertEqual(set(scp.files()), {f[1] for f in study})

        # gw-1 starts again on its own folder, and sees everything.
        gw1_again = harness.Server(gw1.workdir, database_url=self.url, data_dir=self.shared,
                                   server_toml='instance_id = "gw-1"',
                                   http_port=gw1.http_port, receivers=gw1.receivers)
        self._peers.append(gw1_again)
        gw1_again.start()
        self.addCleanup(gw1_again.stop_and_check)
        self.assertEqual(self.indexed(gw1_again, held), {f[1] for f in held})

    def test_changes_through_one_instance_apply_on_the_other(self):
        gw1 = self.instance("gw-1")
        self.addCleanup(gw1.stop_and_check)
        gw2 = self.instance("gw-2")
        self.addCleanup(gw2.stop_and_check)

        def node_port(srv):
            status, body = srv.api("GET", "/api/nodes/pacs")
            return body.get("port") if status == 200 else None

        status, answer = gw1.api("POST", "/api/nodes", {
            "name": "pacs", "ae_title": "PACS", "host": "127.0.0.1", "port": 104,
            "queryable": True})
        self.assertEqual(status, 201, answer)
        self.assertTrue(harness.wait_until(lambda: node_port(gw2) == 104, timeout=PROPAGATION_TIMEOUT))
        status, answer = gw2.api("PUT", "/api/nodes/pacs", {"port": 11112})
        self.assertEqual(status, 200, answer)
        self.assertTrue(harness.wait_until(lambda: node_port(gw1) == 11112, timeout=PROPAGATION_TIMEOUT))
        status, _ = gw1.api("DELETE", "/api/nodes/pacs")
        self.assertIn(status, (200, 204))
        self.assertTrue(harness.wait_until(lambda: node_port(gw2) is None, timeout=PROPAGATION_TIMEOUT))

        # The same instances arriving through both instances are stored once.
        twice = dicomgen.generate(self.mkdtemp("twice"), 3, size=4096, patient_id="TWICE")
        self.store(gw1, twice)
        self.store(gw2, twice)
        want = {f[1] for f in twice}
        self.assertTrue(harness.wait_until(lambda: self.indexed(gw1, twice) == want, timeout=20))
        self.assertEqual(sorted(harness.archive_instances(gw2, "PatientID=TWICE")), sorted(want))
        files = [p for p in (self.shared_path() / "archive").rglob("*") if p.is_file()]
        self.assertEqual(len([p for p in files if any(uid in p.name for uid in want)]), 3, files)

        # A receiver created through gw-1 listens there; gw-2 lists it.
        port = harness.free_receiver_port()
        status, created = gw1.api("POST", "/api/receivers",
                                  {"ae_title": "SHARED", "port": port, "bind": "127.0.0.1"})
        self.assertEqual(status, 201, created)
        rid = str(created["id"])
        self.assertEqual(harness.echoscu(port, "SHARED").returncode, 0)

        def receiver(srv):
            status, body = srv.api("GET", "/api/receivers/%s" % rid)
            return body if status == 200 else None

        self.assertTrue(harness.wait_until(lambda: receiver(gw2) is not None, timeout=PROPAGATION_TIMEOUT),
                        "the receiver created through gw-1 is not known to gw-2")
        self.assertEqual(receiver(gw2)["port"], port)
        # Disabled through gw-2: gw-1 stops listening on its port.
        status, answer = gw2.api("PUT", "/api/receivers/%s" % rid, {"enabled": False})
        self.assertEqual(status, 200, answer)
        self.assertTrue(harness.wait_until(lambda: (receiver(gw1) or {}).get("status") == "disabled",
                                           timeout=PROPAGATION_TIMEOUT), receiver(gw1))
        self.assertTrue(harness.wait_until(lambda: harness.tcp_listeners(port) == 0, timeout=5),
                        "gw-1 still listens on the disabled receiver's port")
        self.assertNotEqual(harness.echoscu(port, "SHARED", timeout=10).returncode, 0)

        # A job runs on one of them (whichever claimed it); a cancel through the other stops it.
        scp = self.slow_peer(gw1, "slow", 16 * 1024)
        self.assertTrue(harness.wait_until(lambda: gw2.api("GET", "/api/nodes/slow")[0] == 200,
                                           timeout=PROPAGATION_TIMEOUT))
        study = dicomgen.generate(self.mkdtemp("study"), 10, size=16 * 1024, patient_id="CANCELME")
        self.store(gw1, study)
        self.assertTrue(harness.wait_until(lambda: len(self.indexed(gw1, study)) == 10, timeout=20))
        status, answer = gw1.api("POST", "/api/send", {"node": "slow", "level": "STUDY", "uids": [study[0][2]]})
        self.assertEqual(status, 202, answer)
        job_id = str(answer["job_id"])
        running = self.wait_progress(job_id, 1, server=gw1)
        runner = running.get("instance")
        self.assertIn(runner, ("gw-1", "gw-2"), running)
        other = gw2 if runner == "gw-1" else gw1
        # The other instance's live list follows the job it does not run, to its end.
        events = other.events("/api/jobs/events")
        self.addCleanup(events.close)
        self.assertEqual(events.next_event()[0], "jobs")
        status, answer = other.api("POST", "/api/jobs/%s/cancel" % job_id)
        self.assertEqual(status, 200, answer)
        self.assertIs(answer.get("cancel_requested"), True, answer)
        job = self.wait_job(job_id, timeout=20, server=other)
        self.assertEqual(job.get("state"), "canceled", job)
        self.assertLess(len(scp.files()), 10, "the job ended by itself before the cancel reached it")
        until, streamed = time.monotonic() + 10, []
        while not streamed or streamed[-1] != "canceled":
            event = events.next_event(until=until)
            self.assertIsNotNone(event, "the live list of the instance not running the job never said "
                                 "it was canceled: %s" % streamed)
            if event[0] == "job" and str(event[1].get("id")) == job_id:
                streamed.append(event[1].get("state"))

    def test_a_nodes_rate_is_shared_by_the_instances_sending_to_it(self):
        rate = 1_000_000
        gw1 = self.instance("gw-1", jobs_toml="workers = 1\n")
        self.addCleanup(gw1.stop_and_check)
        gw2 = self.instance("gw-2", jobs_toml="workers = 1\n")
        self.addCleanup(gw2.stop_and_check)
        per_study = 12
        studies = [dicomgen.generate(self.mkdtemp("study"), per_study, size=512 * 1024, patient_id="RATE%d" % i)
                   for i in (1, 2)]
        for study in studies:
            self.store(gw1, study)
            self.assertTrue(harness.wait_until(lambda: len(self.indexed(gw1, study)) == per_study, timeout=30))
        total = sum(os.path.getsize(f[0]) for study in studies for f in study)
        scp = self.slow_peer(gw1, "shared-rate", rate, fork=True)  # both associations at once
        self.assertTrue(harness.wait_until(lambda: gw2.api("GET", "/api/nodes/shared-rate")[0] == 200,
                                           timeout=PROPAGATION_TIMEOUT))

        started = time.time()  # the clock storescp's files are stamped on
        jobs = []
        for srv, study in zip((gw1, gw2), studies):
            status, answer = srv.api("POST", "/api/send",
                                     {"node": "shared-rate", "level": "STUDY", "uids": [study[0][2]]})
            self.assertEqual(status, 202, answer)
            jobs.append(str(answer["job_id"]))

        seen = []

        def both_running():
            seen.append([(body.get("state"), body.get("instance"))
                         for body in (gw1.api("GET", "/api/jobs/%s" % j)[1] for j in jobs)])
            return [state for state, _ in seen[-1]] == ["running", "running"]

        # Each alone at the rate would take ~6 s: both run at once, one on each instance.
        self.assertTrue(harness.wait_until(both_running, timeout=20),
                        "the two sends did not run at once: %s" % seen[-1:])
        self.assertEqual(sorted(instance for _, instance in seen[-1]), ["gw-1", "gw-2"], seen[-1])
        # Each job's end, asked of the instance that does not run it: ?wait= answers within a
        # second of the end there too (5 s allowed), not when the wait runs out.
        for job_id, (_, runner) in zip(jobs, seen[-1]):
            other = gw2 if runner == "gw-1" else gw1
            status, job = other.api("GET", "/api/jobs/%s?wait=60" % job_id, timeout=90)
            answered = time.time()
            self.assertEqual(status, 200, job)
            self.assertEqual(job.get("state"), "succeeded", job)
            last_file = max(p.stat().st_mtime for p in scp.files().values())
            self.assertLess(answered - last_file, 5, "?wait= answered %.1f s after the last instance arrived"
                            % (answered - last_file))
        self.assertEqual(len(scp.files()), 2 * per_study)
        # From the first request to the last file storescp wrote.
        elapsed = max(p.stat().st_mtime for p in scp.files().values()) - started
        bound = SLACK * total / rate
        self.assertGreaterEqual(elapsed, bound,
                                "%d bytes in %.2f s: faster than the node's rate allows both instances "
                                "together (%.2f s at least)" % (total, elapsed, bound))

    def test_a_c_move_served_by_one_instance_shares_the_rate_with_the_others_jobs(self):
        # gw-2's Query/Retrieve SCP serves a C-MOVE to the throttled node (no job: only its
        # limiter of the node sees it); gw-1 then sends another study there. gw-1 must count
        # gw-2's served transfer and pace its send at half the rate while both run.
        rate = 1_000_000
        qr_port = harness.free_port()
        gw1 = self.instance("gw-1", jobs_toml="workers = 1\n")
        self.addCleanup(gw1.stop_and_check)
        gw2 = self.instance("gw-2", receivers=[{"ae_title": "GW2QR", "port": qr_port, "bind": "127.0.0.1",
                                                 "query_retrieve": True}])
        self.addCleanup(gw2.stop_and_check)
        sent = dicomgen.generate(self.mkdtemp("sent"), 12, size=512 * 1024, patient_id="SENT")
        moved = dicomgen.generate(self.mkdtemp("moved"), 28, size=512 * 1024, patient_id="MOVED")
        for study in (sent, moved):
            self.store(gw1, study)
            self.assertTrue(harness.wait_until(lambda: len(self.indexed(gw1, study)) == len(study), timeout=30))
        scp = self.slow_peer(gw1, "shared-rate", rate, fork=True)
        self.assertTrue(harness.wait_until(lambda: gw2.api("GET", "/api/nodes/shared-rate")[0] == 200,
                                           timeout=PROPAGATION_TIMEOUT))
        move = subprocess.Popen(
            ["movescu", "-S", "-aet", "MOVER", "-aec", "GW2QR", "-aem", scp.aet, "-to", "10", "-ta", "10",
             "-td", "60", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=%s" % moved[0][2],
             "127.0.0.1", str(qr_port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=harness.tool_env())
        self.addCleanup(lambda: move.poll() is None and move.kill())
        moved_sops = {f[1] for f in moved}
        self.assertTrue(harness.wait_until(lambda: moved_sops & set(scp.files()), timeout=20),
                        "the C-MOVE served by gw-2 sent nothing")
        # gw-2 publishes the node it transfers to (every second while it does).
        database = self.pg.database_for(self.shared)
        published = lambda: self.pg.psql("SELECT instance_id FROM node_transfers WHERE node = 'shared-rate'",
                                         database=database).split()
        self.assertTrue(harness.wait_until(lambda: "gw-2" in published(), timeout=10), published())

        status, answer = gw1.api("POST", "/api/send", {"node": "shared-rate", "level": "STUDY", "uids": [sent[0][2]]})
        self.assertEqual(status, 202, answer)
        ended = lambda: gw1.api("GET", "/api/jobs/%s?wait=60" % answer["job_id"], timeout=90)[1]
        job = ended()
        if job.get("state") in ("queued", "running"):
            job = ended()
        self.assertEqual(job.get("state"), "succeeded", job)
        out, _ = move.communicate(timeout=120)
        self.assertEqual(move.returncode, 0, out.decode("utf-8", "replace"))
        files = scp.files()
        self.assertEqual(moved_sops | {f[1] for f in sent}, set(files))
        # The send's own span, from its first instance's file to its last, against what it would
        # take at the whole rate: at half the rate it takes about twice as long (gw-1 may run at
        # the whole rate for up to a second before its next look at the published transfers).
        sent_times = sorted(files[f[1]].stat().st_mtime for f in sent)
        self.assertGreater(max(files[f[1]].stat().st_mtime for f in moved), sent_times[-1],
                           "the C-MOVE ended before the send did: they did not overlap throughout")
        sent_bytes = sum(os.path.getsize(f[0]) for f in sent[1:])  # those after the first file
        whole_rate = sent_bytes / rate
        self.assertGreaterEqual(sent_times[-1] - sent_times[0], 1.5 * whole_rate,
                                "gw-1 sent %d bytes in %.2f s beside gw-2's C-MOVE: the whole rate would take "
                                "%.2f s, half of it twice that" % (sent_bytes, sent_times[-1] - sent_times[0],
                                                                   whole_rate))

    def test_what_may_not_share_the_directory_is_refused(self):
        gw1 = self.instance("gw-1")
        self.addCleanup(gw1.stop_and_check)
        twin = harness.Server(self.mkdtemp("twin"), database_url=self.url, data_dir=self.shared,
                              server_toml='instance_id = "gw-1"')
        self._peers.append(twin)
        with self.assertRaises(AssertionError):
            twin.start(timeout=20)
        self.assertRegex(self.log(twin), r"instance 'gw-1' of data directory .* is in use by pacsbridge PID %d"
                         % gw1.pid)
        lone = harness.Server(self.mkdtemp("lone"), data_dir=self.shared,
                              database_url="sqlite:%s/index.db" % self.mkdtemp("sqlite"))
        self._peers.append(lone)
        with self.assertRaises(AssertionError):
            lone.start(timeout=20)
        self.assertIn("is in use by pacsbridge servers that share it (on one PostgreSQL index); a server with "
                      "an SQLite index has its data directory to itself", self.log(lone))
        # A server on the same database with a data directory of its own: the index's files are
        # not there.
        apart = harness.Server(self.mkdtemp("apart"), database_url=self.url,
                               server_toml='instance_id = "gw-3"')
        self._peers.append(apart)
        with self.assertRaises(AssertionError):
            apart.start(timeout=20)
        self.assertRegex(self.log(apart), r"the index database postgresql://pb:\*\*\*@.* belongs to another data "
                                          r"directory \(id [0-9a-f]{32}; .* holds id [0-9a-f]{32}\)")
        self.assertHealthy(gw1)


if __name__ == "__main__":
    unittest.main()
