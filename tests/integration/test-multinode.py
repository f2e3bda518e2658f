#!/usr/bin/python3
# test-multinode.py - a magpied fleet on loopback: 2 api nodes and 3 worker nodes over one
# PostgreSQL catalog and moto_server as the S3 store and its STS, with a worker killed mid-batch
#
# Run under tests/with-postgres.sh, which starts a private PostgreSQL (initdb into a temp dir,
# as the postgres user) as its own child and hands its URI over in MAGPIE_TEST_DB. This test
# starts moto_server and the five magpied processes as its direct children and stops each by
# PID. Then, as a fleet serves the app:
#   - a guest identity and temporary credentials through api node A (moto's STS issues them),
#   - N distinct JPEGs PUT straight to moto with those credentials and registered through api
#     node B (A's api_token works there: the keyring is in the catalog),
#   - an SSE stream on node A, which must see every photo.tagged the worker nodes produce
#     (LISTEN/NOTIFY carries them from the workers' connections to A's),
#   - worker node 3 SIGKILLed while it holds leased jobs; the other two take them over once
#     the leases expire (--job-lease, short here) and finish them,
#   - in the end, from the catalog itself: every photo tagged, one tag set and one
#     photo.tagged event each, every job done, every object still in moto.
#
# Usage: test-multinode.py [--photos N]   (default 100; meson runs 500)
#        test-multinode.py --photos N --throughput K [--worker-threads T]
# The second form measures instead (BENCHMARKS.md): N photos registered with no worker running,
# then K worker processes of T workers each started at once, timed until every tag is on A's
# stream; no kill. The end checks are the same.
import argparse
import hashlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mp_check import check, failures, forget_aws_environment, skip  # noqa: E402
import mp_magpied  # noqa: E402
from mp_magpied import Server  # noqa: E402

forget_aws_environment()
try:
    from mp_moto import BUCKET, Moto, client, setup_moto
except ImportError:
    skip("python3-boto3 is not installed (tools/deps.sh installs it)")
if shutil.which("moto_server") is None:
    skip("moto_server is not on PATH")
DB = os.environ.get("MAGPIE_TEST_DB", "")
if not DB.startswith("postgresql://"):
    skip("needs PostgreSQL: run it under tests/with-postgres.sh")
PSQL = shutil.which("psql")
if PSQL is None:
    skip("psql is not installed (tools/deps.sh installs postgresql)")

parser = argparse.ArgumentParser()
parser.add_argument("--photos", type=int, default=100)
parser.add_argument("--throughput", type=int, default=0, metavar="K")
parser.add_argument("--worker-threads", type=int, default=1, metavar="T")
ARGS = parser.parse_args()
N = ARGS.photos
SLOWDOWN = max(1, int(os.environ.get("MAGPIE_TEST_SLOWDOWN", "1")))
# A killed worker's batch of 8 comes back after 4 + 8 * 4/3 ≈ 15 s: short enough for a test,
# long enough that an honest batch on a loaded 2-core box rarely outlives its lease.
LEASE_S = 4 * SLOWDOWN
MODEL = os.path.join(os.environ["MAGPIE_SOURCE_ROOT"], "data", "models", "photos.onnx")
SHARED = os.environ.get("MAGPIE_SHARED_DATA", "")
PHOTO_DIR = os.path.join(SHARED, "photos")


def sql(text):
    """Rows of one query against the fleet's catalog, as lists of strings."""
    out = subprocess.run([PSQL, DB, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                          "-c", text], check=True, capture_output=True, text=True,
                         timeout=60 * SLOWDOWN).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def call(method, url, body=None, token=None):
    return mp_magpied.call(method, url, body, token, timeout=60 * SLOWDOWN)


class EventStream(threading.Thread):
    """GET /v1/events, every photo.tagged frame kept (duplicates too: there must be none)."""

    def __init__(self, url, token):
        super().__init__(daemon=True)
        self.tagged = queue.Queue()
        req = urllib.request.Request(url + "/v1/events",
                                     headers={"Authorization": "Bearer " + token,
                                              "Accept": "text/event-stream"})
        self.resp = urllib.request.urlopen(req, timeout=300 * SLOWDOWN)

    def run(self):
        frame = {}
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if frame.get("event") == "photo.tagged" and "data" in frame:
                        self.tagged.put((time.time(), json.loads(frame["data"])))
                    frame = {}
                elif not line.startswith(":"):
                    field, _, value = line.partition(":")
                    frame[field] = value[1:] if value.startswith(" ") else value
        except Exception:  # closed when the test ends
            pass


def distinct_jpegs(n):
    """n different JPEG files from the shared photos: each copy carries its number in a COM
    segment right after SOI, which decoders skip, so the pixels (and tags) stay the source's."""
    sources = sorted(f for f in os.listdir(PHOTO_DIR) if f.endswith((".jpg", ".jpeg")))
    out = []
    for i in range(n):
        name = sources[i % len(sources)]
        body = open(os.path.join(PHOTO_DIR, name), "rb").read()
        assert body[:2] == b"\xff\xd8", name
        text = b"magpie multinode test photo %d" % i
        com = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
        out.append((name, body[:2] + com + body[2:]))
    return out


def metric(url, name):
    """The sum of a counter over its labels on one node's /metrics."""
    with urllib.request.urlopen(url + "/metrics", timeout=30 * SLOWDOWN) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and not line.startswith("#"))


def main():
    if not os.path.isdir(PHOTO_DIR):
        skip("no test photos: ../shared/data/photos is not beside the checkout")
    tmp = tempfile.mkdtemp(prefix="magpie-multinode-")
    moto, nodes = None, []
    try:
        moto = Moto(tmp, SLOWDOWN)
        key_id, secret, role_arn = setup_moto(moto)
        common = ["--database", DB, "--bucket", BUCKET, "--s3-endpoint", moto.url,
                  "--s3-access-key", key_id, "--s3-secret-key", secret,
                  "--sts-role-arn", role_arn, "--photo-model", MODEL,
                  "--tag-min-confidence", "0.01"]

        def start(name, role, *extra):
            d = os.path.join(tmp, name)
            os.mkdir(d)
            node = Server(os.environ["MAGPIED"], d, ["--role", role, *common, *extra],
                          timeout_s=60 * SLOWDOWN)
            node.name = name
            nodes.append(node)
            return node

        started = time.time()
        # A first, alone: it migrates the catalog and writes the keyring the others read.
        api_a = start("api-a", "api")
        api_b = start("api-b", "api")
        workers = []
        if not ARGS.throughput:
            workers = [start("worker-%d" % i, "worker", "--workers", "2:2",
                             "--job-lease", str(LEASE_S)) for i in (1, 2, 3)]
        print("# fleet up in %.1f s: A %s, B %s, workers %s" % (
            time.time() - started, api_a.url, api_b.url, [w.proc.pid for w in workers]))
        for node in nodes:
            status, ready = call("GET", node.url + "/readyz")
            check(status == 200 and ready["checks"].get("store") == "ok",
                  "%s ready: catalog and moto's bucket reachable" % node.name)

        status, ident = call("POST", api_a.url + "/v1/identities", {})
        check(status == 201, "guest identity created on A")
        status, creds = call("POST", api_a.url + "/v1/credentials",
                             {"identity_id": ident["identity_id"], "secret": ident["secret"]})
        check(status == 200 and creds["access_key_id"].startswith("ASIA")
              and creds["access_key_id"] != key_id and creds["endpoint"] == moto.url,
              "temporary credentials through A, issued by moto's STS (%s)"
              % (creds.get("access_key_id") if status == 200 else creds))
        if status != 200:
            return
        token = creds["api_token"]
        assumed = [r for r in moto.data()["sts"]["AssumedRole"]
                   if r["session_name"] == ident["identity_id"]]
        check(len(assumed) == 1 and assumed[0]["role_arn"] == role_arn,
              "moto recorded the AssumeRole A made for this identity")
        status, _ = call("GET", api_b.url + "/v1/photos?limit=1", None, token)
        check(status == 200, "B accepts the api_token A issued")

        events = EventStream(api_a.url, token)
        events.start()

        s3 = client("s3", moto.url, creds["access_key_id"], creds["secret_access_key"],
                    creds["session_token"])
        photos = distinct_jpegs(N)
        registered = {}  # photo id -> (source name, key, sha256)
        errors = []
        lock = threading.Lock()

        def upload(i):
            name, body = photos[i]
            sha = hashlib.sha256(body).hexdigest()
            key = "%s%04d-%s.jpg" % (creds["prefix"], i, sha[:16])
            try:
                s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="image/jpeg",
                              ChecksumAlgorithm="SHA256")
                status, photo = call("POST", api_b.url + "/v1/photos", {"key": key}, token)
            except Exception as e:  # noqa: BLE001 - reported below with the photo
                status, photo = 0, repr(e)
            with lock:
                if status == 201 and photo["sha256"] == sha and photo["size"] == len(body):
                    registered[photo["id"]] = (name, key, sha)
                else:
                    errors.append("%s: %s %s" % (key, status, photo))

        upload_started = time.time()
        pool = ThreadPoolExecutor(4)
        futures = [pool.submit(upload, i) for i in range(N)]

        # Kill worker 3 while it holds leased jobs (the batch it is working on), once a
        # quarter of the photos are in and the fleet is busy.
        victim = workers[2] if workers else None
        owner_like = "%%:%d/%%" % victim.proc.pid if victim else ""
        killed_at, orphans = None, []
        deadline = time.time() + (60 + N) * SLOWDOWN
        while victim and time.time() < deadline:
            with lock:
                if len(registered) + len(errors) >= N // 4:
                    break
            time.sleep(0.05)
        # Once the catalog shows it holding jobs, it is frozen (SIGSTOP), so what the catalog
        # says it holds is what it holds when the SIGKILL lands; a moment lets a commit already
        # on the wire arrive. Holding nothing by then, it goes on (SIGCONT).
        def held_by_victim():
            return int(sql("SELECT count(*) FROM jobs WHERE state = 'leased' AND lease_owner "
                           "LIKE '%s'" % owner_like)[0][0])

        while victim and time.time() < deadline:
            if held_by_victim() == 0:
                time.sleep(0.02)
                continue
            os.kill(victim.proc.pid, signal.SIGSTOP)
            time.sleep(0.3)
            held = held_by_victim()
            if held > 0:
                os.kill(victim.proc.pid, signal.SIGKILL)
                killed_at = time.time()
                victim.proc.wait()
                break
            os.kill(victim.proc.pid, signal.SIGCONT)
            time.sleep(0.05)
        if victim:
            check(killed_at is not None, "worker 3 leased jobs and was SIGKILLed holding them")
        if killed_at is not None:
            # Its connections are gone: a transaction it had open is rolled back by now.
            orphans = [r[0] for r in sql("SELECT id FROM jobs WHERE state = 'leased' AND "
                                         "lease_owner LIKE '%s'" % owner_like)]
            print("# worker 3 (pid %d) killed %.1f s into the upload holding %d leased jobs "
                  "(%d when frozen)" % (victim.proc.pid, killed_at - upload_started,
                                        len(orphans), held))
            check(len(orphans) > 0, "the killed worker left leased jobs behind (%d)"
                  % len(orphans))

        for f in futures:
            f.result()
        pool.shutdown()
        upload_s = time.time() - upload_started
        print("# %d photos uploaded to moto and registered on B in %.1f s (%.1f/s)"
              % (N, upload_s, N / upload_s))
        check(not errors, "every upload and registration succeeded (%d failed%s)"
              % (len(errors), ": " + "; ".join(errors[:3]) if errors else ""))
        check(len(registered) == N, "%d photos registered, %d distinct ids"
              % (N, len(registered)))

        if ARGS.throughput:
            check(events.tagged.empty(), "nothing tagged before a worker runs")
            workers_at = time.time()
            workers = [start("worker-%d" % i, "worker", "--workers", "%d:%d" % (
                ARGS.worker_threads, ARGS.worker_threads)) for i in range(1, ARGS.throughput + 1)]
            print("# %d worker processes of %d workers each up in %.1f s"
                  % (ARGS.throughput, ARGS.worker_threads, time.time() - workers_at))

        # Every photo.tagged on A's stream, and nothing twice.
        seen, duplicates, last_at, tag_times = {}, 0, None, []
        deadline = time.time() + (60 + N) * SLOWDOWN
        while len(seen) < len(registered) and time.time() < deadline:
            try:
                at, data = events.tagged.get(timeout=max(0.05, deadline - time.time()))
            except queue.Empty:
                break
            if data["id"] in seen:
                duplicates += 1
            seen[data["id"]] = data
            tag_times.append((at, data["id"]))
            last_at = at
        extra_wait = time.time() + 2
        while time.time() < extra_wait:  # a duplicate would come right behind
            try:
                _, data = events.tagged.get(timeout=0.2)
                duplicates += data["id"] in seen
            except queue.Empty:
                pass
        if ARGS.throughput and last_at is not None:
            first_at = min(t for t, _ in tag_times) if tag_times else last_at
            print("# THROUGHPUT %d worker process(es) x %d: %d photos tagged in %.1f s from "
                  "starting them: %.2f photos/s (%.2f photos/s from the first tag to the last); "
                  "load average %s" % (ARGS.throughput, ARGS.worker_threads, len(seen),
                                       last_at - workers_at, len(seen) / (last_at - workers_at),
                                       (len(seen) - 1) / max(0.001, last_at - first_at),
                                       " ".join(open("/proc/loadavg").read().split()[:3])))
        elif last_at is not None:
            print("# all tags on A's stream %.1f s after the first upload, %.1f s after the "
                  "last registration (%.1f photos/s overall)"
                  % (last_at - upload_started, last_at - upload_started - upload_s,
                     len(seen) / (last_at - upload_started)))
        check(set(seen) == set(registered),
              "A's event stream got photo.tagged for every photo (%d of %d)"
              % (len(set(seen) & set(registered)), len(registered)))
        check(duplicates == 0, "and none twice (%d duplicates)" % duplicates)
        check(all(d.get("tags") for d in seen.values()), "every tagged event carries tags")
        # Copies of one source image have its pixels: the same top label whichever worker,
        # batch or attempt tagged them.
        top = {}
        for pid, d in seen.items():
            if pid in registered and d.get("tags"):
                top.setdefault(registered[pid][0], set()).add(d["tags"][0]["label"])
        mixed = {k: v for k, v in top.items() if len(v) != 1}
        check(not mixed, "copies of one image got one top label (%s)"
              % (mixed or "%d sources" % len(top)))

        # The orphaned jobs: leased again after their leases ran out, finished by the others.
        if orphans:
            rows = sql("SELECT j.state, j.attempts, p.state, p.tagged_at FROM jobs j JOIN photos "
                       "p ON p.id = j.photo_id WHERE j.id IN (%s)"
                       % ",".join("'%s'" % o for o in orphans))
            check(len(rows) == len(orphans) and all(r[0] == "done" and int(r[1]) >= 2
                                                    and r[2] == "tagged" for r in rows),
                  "the killed worker's %d jobs were leased again and done (attempts %s)"
                  % (len(orphans), sorted({int(r[1]) for r in rows})))
            after = [int(r[3]) / 1e6 - killed_at for r in rows if r[3]]
            if after:
                print("# its jobs were finished %.1f-%.1f s after the kill (lease %d s + "
                      "a third of it per photo)" % (min(after), max(after), LEASE_S))
            check(all(a > 0 for a in after), "by the surviving workers, after the kill")
            expired = int(sql("SELECT value FROM job_counters WHERE name = 'expired'")[0][0])
            check(expired >= len(orphans), "the catalog counts %d expired leases (>= %d)"
                  % (expired, len(orphans)))
            done_alive = sum(metric(w.url, 'magpied_jobs_total{result="done"')
                             for w in workers[:2])
            print("# the surviving workers report %d jobs done" % done_alive)

        # Nothing lost and nothing doubled, from the catalog itself.
        ident_id = ident["identity_id"]
        states = dict((r[0], int(r[1])) for r in sql(
            "SELECT state, count(*) FROM photos WHERE identity_id = '%s' GROUP BY state"
            % ident_id))
        check(states == {"tagged": N}, "the catalog holds %d photos, all tagged (%s)"
              % (N, states))
        jobs = dict((r[0], int(r[1])) for r in sql("SELECT state, count(*) FROM jobs GROUP BY "
                                                   "state"))
        check(jobs == {"done": N}, "every job is done (%s)" % jobs)
        bad_sets = sql("SELECT p.id FROM photos p LEFT JOIN tags t ON t.photo_id = p.id "
                       "GROUP BY p.id HAVING count(t.rank) = 0 OR count(t.rank) <> "
                       "max(t.rank) + 1 OR min(t.rank) <> 0 OR count(t.rank) > 5")
        check(not bad_sets, "each photo has exactly one tag set: ranks 0..k-1, 1 <= k <= 5 "
              "(%d photos otherwise)" % len(bad_sets))
        tag_events = sql("SELECT count(*), count(DISTINCT (data::json)->>'id') FROM events "
                         "WHERE type = 'photo.tagged'")[0]
        check(tag_events == [str(N), str(N)], "one photo.tagged event per photo in the "
              "catalog (%s events, %s photos)" % tuple(tag_events))
        keys = set()
        # The whole bucket, filtered here: moto checks a List signature with a "/" in the
        # prefix parameter against another encoding of it and refuses it.
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            keys.update(o["Key"] for o in page.get("Contents", [])
                        if o["Key"].startswith(creds["prefix"]))
        check(keys == {v[1] for v in registered.values()},
              "moto holds exactly the %d uploaded objects (%d)" % (N, len(keys)))
        listed, cursor = 0, None
        while True:
            status, page = call("GET", api_a.url + "/v1/photos?limit=200" +
                                ("&cursor=" + cursor if cursor else ""), None, token)
            if status != 200:
                break
            listed += sum(1 for p in page["photos"] if p.get("tags"))
            cursor = page.get("next_cursor")
            if not cursor:
                break
        check(listed == N, "A lists all %d photos with their tags (%d)" % (N, listed))
        for node in nodes:
            if node is not victim:
                check(node.proc.poll() is None, "%s still running" % node.name)
        print("# whole test %.1f s" % (time.time() - started))
    finally:
        for node in reversed(nodes):
            node.stop()
            if failures:
                sys.stdout.write("# --- %s log tail ---\n%s" % (node.name, node.log_tail(15)))
        if moto is not None:
            moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)


main()
print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
