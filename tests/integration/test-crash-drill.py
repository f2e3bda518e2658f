#!/usr/bin/python3
# test-crash-drill.py - 2,000 photos under load while magpied is killed with SIGKILL ten times
#
# Uploaders do what the app does (a guest identity each, temporary credentials, SigV4
# PutObject, POST /v1/photos) and, like the app's outbox, retry until they get a 2xx. A killer
# sends SIGKILL to magpied at ten random points of the run (uploads and tagging both in
# progress) and restarts it at once on the same data directory and port. At the end:
#   - every photo whose registration got a 2xx is tagged, with exactly one photo.tagged event,
#     counted both in the catalog and in each identity's SSE replay from event 0;
#   - every object under users/ in the store (listed with the operator key pair) is a
#     catalogued photo, or one whose registration was never acknowledged;
#   - an acknowledged PutObject is never lost (registration never answers 404 for it);
#   - catalog and store pass integrity_check; no spool or tmp files are left.
# MAGPIE_DRILL_PHOTOS, MAGPIE_DRILL_KILLS, MAGPIE_DRILL_CLIENTS and MAGPIE_DRILL_SEED change
# the size and replay a run.
import hashlib
import http.client
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mp_magpied import Server  # noqa: E402
import mp_client as mc  # noqa: E402
from mp_client import check  # noqa: E402

mc.forget_aws_environment()
mc.need_botocore()

BUCKET = "magpie"
PHOTOS = int(os.environ.get("MAGPIE_DRILL_PHOTOS", "2000"))
KILLS = int(os.environ.get("MAGPIE_DRILL_KILLS", "10"))
CLIENTS = int(os.environ.get("MAGPIE_DRILL_CLIENTS", "8"))
SEED = int(os.environ.get("MAGPIE_DRILL_SEED", str(random.SystemRandom().randrange(1 << 30))))
ADMIN = {"access_key_id": "MAGPIEDRILLADMIN0001",
         "secret_access_key": "operator-secret-for-the-crash-drill-000001",
         "session_token": None}
# Errors a client sees while the server is dead or dying: it waits and tries again.
DOWN = (ConnectionError, http.client.HTTPException, urllib.error.URLError, OSError)


class Drill:
    def __init__(self, tmp, magpied, model):
        self.tmp = tmp
        self.magpied = magpied
        self.data_dir = os.path.join(tmp, "data")
        self.args = ["--photo-model", model, "--admin-access-key", ADMIN["access_key_id"],
                     "--admin-secret-key", ADMIN["secret_access_key"]]
        self.lock = threading.Lock()
        self.runs = 0
        self.server = self.start("127.0.0.1:0")
        self.url = self.server.url
        self.port = int(self.url.rsplit(":", 1)[1])
        self.acked = {}          # key → photo id, once POST /v1/photos answered 2xx
        self.put_acked = set()   # keys whose PutObject answered 200
        self.identities = []     # credentials of every uploader
        self.retries = {"put": 0, "register": 0, "identity": 0}
        self.lost = []           # acknowledged PutObjects that registration could not find
        self.restarts = []       # seconds from SIGKILL to listening again
        self.kill_points = []
        self.done = threading.Event()

    def start(self, listen):
        self.runs += 1
        return Server(self.magpied, self.tmp, self.args, data_dir=self.data_dir, listen=listen,
                      log_name="magpied-%02d.log" % self.runs)

    def kill_and_restart(self):
        with self.lock:
            t0 = time.monotonic()
            self.server.kill()
            for attempt in range(20):
                try:
                    self.server = self.start("127.0.0.1:%d" % self.port)
                    break
                except RuntimeError:
                    time.sleep(0.25)  # the port may linger a moment
            else:
                raise RuntimeError("magpied did not come back on port %d" % self.port)
            self.restarts.append(time.monotonic() - t0)

    def catalog(self, sql):
        con = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.data_dir, "catalog.db"),
                              uri=True, timeout=10)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def tagged(self):
        try:
            return self.catalog("SELECT COUNT(*) FROM photos WHERE state = 'tagged'")[0][0]
        except sqlite3.Error:
            return 0


def retry(drill, what, fn):
    """Calls @fn until it returns a result, counting the attempts the server was down for.
    Gives up (raises) after a few minutes of failures: the drill then fails, not hangs."""
    delay = 0.05
    for _ in range(400):
        try:
            result = fn()
            if result is not None:
                return result
        except DOWN:
            pass
        with drill.lock:
            drill.retries[what] += 1
        time.sleep(delay + random.random() * delay)
        delay = min(1.0, delay * 2)
    raise RuntimeError("%s kept failing" % what)


def uploader(drill, index, photos):
    def identity():
        try:
            return mc.guest(drill.url)
        except RuntimeError:
            return None  # a 5xx or a refusal while the server restarts

    creds = retry(drill, "identity", identity)
    with drill.lock:
        drill.identities.append(creds)
    for body in photos:
        key = "%s%s.png" % (creds["prefix"], hashlib.sha256(body).hexdigest())
        path = "/%s/%s" % (BUCKET, mc.quote_key(key))

        def put():
            r = mc.s3(drill.url, creds, "PUT", path, body=body, timeout=20)
            return True if r.status == 200 else None

        retry(drill, "put", put)
        with drill.lock:
            drill.put_acked.add(key)

        def register():
            status, photo = mc.call("POST", drill.url + "/v1/photos", {"key": key},
                                    creds["session_token"], timeout=20)
            if status == 404:
                with drill.lock:
                    drill.lost.append(key)
                return None
            return photo["id"] if status in (200, 201) else None

        photo_id = retry(drill, "register", register)
        with drill.lock:
            drill.acked[key] = photo_id


def killer(drill, rng):
    """SIGKILL at KILLS random points of the run's progress (registrations + tags)."""
    total = 2 * PHOTOS
    points = sorted(rng.uniform(0.03, 0.93) * total for _ in range(KILLS))
    for point in points:
        while not drill.done.is_set():
            progress = len(drill.acked) + drill.tagged()
            if progress >= point:
                break
            time.sleep(0.05)
        if drill.done.is_set():
            return
        time.sleep(rng.uniform(0, 0.4))
        drill.kill_points.append((len(drill.acked), drill.tagged()))
        drill.kill_and_restart()


def sse_tagged_counts(url, creds):
    """photo.tagged events per photo id in this identity's replay from event 0."""
    counts = {}
    stream = mc.EventStream(url, creds["session_token"], last_event_id=0, timeout=30)
    stream.start()
    for frame in stream.drain(quiet_s=2.0, timeout=120):
        if frame.get("event") == "photo.tagged":
            pid = json.loads(frame["data"])["id"]
            counts[pid] = counts.get(pid, 0) + 1
    stream.close()
    return counts


def list_store(url):
    """Every key under users/, listed with the operator key pair (boto3's paginator)."""
    import boto3
    import botocore.config

    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                      aws_access_key_id=ADMIN["access_key_id"],
                      aws_secret_access_key=ADMIN["secret_access_key"],
                      config=botocore.config.Config(signature_version="s3v4",
                                                    s3={"addressing_style": "path"}))
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="users/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def main():
    tmp = tempfile.mkdtemp(prefix="magpie-crash-")
    drill = None
    ok = False
    rng = random.Random(SEED)
    print("# seed %d: %d photos, %d clients, %d kills (MAGPIE_DRILL_SEED=%d replays it)"
          % (SEED, PHOTOS, CLIENTS, KILLS, SEED), flush=True)
    try:
        source = os.environ.get("MAGPIE_SOURCE_ROOT", os.environ.get("MAGPIE_SOURCE_DIR", "."))
        drill = Drill(tmp, os.environ["MAGPIED"],
                      os.path.join(source, "data", "models", "photos.onnx"))
        t_setup = time.monotonic()
        bodies = [mc.png(24 + i % 9, 24 + (i // 9) % 9, i) for i in range(PHOTOS)]
        t0 = time.monotonic()
        print("# %d photos made in %.0f s" % (PHOTOS, t0 - t_setup), flush=True)
        threads = [threading.Thread(target=uploader, args=(drill, c, bodies[c::CLIENTS]),
                                    daemon=True) for c in range(CLIENTS)]
        kill_thread = threading.Thread(target=killer, args=(drill, rng), daemon=True)
        for t in threads:
            t.start()
        kill_thread.start()
        for t in threads:
            t.join()
        t_uploaded = time.monotonic() - t0
        print("# all %d photos registered after %.0f s" % (len(drill.acked), t_uploaded),
              flush=True)

        # Tagging drains; the killer may still strike while it does.
        deadline = time.monotonic() + 600
        while drill.tagged() < len(drill.acked) and kill_thread.is_alive() and \
                time.monotonic() < deadline:
            time.sleep(0.5)
        drill.done.set()
        kill_thread.join()
        # A kill near the end may leave leased jobs: the restart requeues them.
        while drill.tagged() < len(drill.acked) and time.monotonic() < deadline:
            time.sleep(0.5)
        t_tagged = time.monotonic() - t0
        print("# all tagged after %.0f s" % t_tagged, flush=True)

        url = drill.url
        check(len(drill.kill_points) == KILLS, "magpied was killed %d times (at registered, "
              "tagged = %s)" % (len(drill.kill_points), drill.kill_points))
        check(len(drill.acked) == PHOTOS, "every photo's registration was acknowledged in the "
              "end (%d of %d)" % (len(drill.acked), PHOTOS))
        check(not drill.lost, "no acknowledged PutObject was lost (%d were: %s)"
              % (len(drill.lost), drill.lost[:3]))

        # What the clients see: each identity's replay from event 0.
        sse = {}
        for creds in drill.identities:
            for pid, n in sse_tagged_counts(url, creds).items():
                sse[pid] = sse.get(pid, 0) + n
        acked_ids = set(drill.acked.values())
        missing = acked_ids - set(sse)
        twice = {pid: n for pid, n in sse.items() if n != 1}
        check(not missing, "the SSE replays carry photo.tagged for every acknowledged photo "
              "(%d missing)" % len(missing))
        check(not twice, "... exactly once each (%d photos tagged more than once: %s)"
              % (len(twice), list(twice.items())[:3]))

        print("# SSE replays read in %.0f s" % (time.monotonic() - t0 - t_tagged), flush=True)

        # What the store holds against the catalog.
        stored = list_store(url)
        catalogued = {k for (k,) in drill.catalog("SELECT key FROM photos")}
        orphans = [k for k in stored if k not in catalogued]
        unacked_orphans = [k for k in orphans if k not in drill.acked]
        check(len(orphans) == len(unacked_orphans),
              "every stored object is catalogued or was never acknowledged (%d objects, %d not "
              "catalogued, all unacknowledged)" % (len(stored), len(orphans)))
        check(set(drill.acked) <= set(stored), "every acknowledged photo's object is stored")

        print("# store listed, %.0f s in" % (time.monotonic() - t0 - t_tagged), flush=True)
        drill.server.stop()
        rows = drill.catalog("SELECT json_extract(data, '$.id'), COUNT(*) FROM events "
                             "WHERE type = 'photo.tagged' GROUP BY 1")
        per_photo = dict(rows)
        check(set(per_photo) >= acked_ids and all(per_photo[p] == 1 for p in acked_ids),
              "the catalog holds exactly one photo.tagged event per acknowledged photo "
              "(%d events for %d photos)" % (sum(per_photo.values()), len(acked_ids)))
        states = dict(drill.catalog("SELECT state, COUNT(*) FROM photos GROUP BY state"))
        jobs = dict(drill.catalog("SELECT state, COUNT(*) FROM jobs GROUP BY state"))
        rerun = drill.catalog("SELECT COUNT(*) FROM jobs WHERE attempts > 1")[0][0]
        created = dict(drill.catalog("SELECT json_extract(data, '$.id'), COUNT(*) FROM events "
                                     "WHERE type = 'photo.created' GROUP BY 1"))
        check(states == {"tagged": PHOTOS}, "every photo is tagged: %s" % states)
        check(jobs == {"done": PHOTOS}, "every job is done: %s" % jobs)
        check(all(created.get(p) == 1 for p in acked_ids),
              "exactly one photo.created per photo (%d events)" % sum(created.values()))
        for db in ("catalog.db", os.path.join("store", "store.db")):
            con = sqlite3.connect("file:%s?mode=ro" % os.path.join(drill.data_dir, db), uri=True)
            result = con.execute("PRAGMA integrity_check").fetchone()[0]
            con.close()
            check(result == "ok", "%s passes integrity_check (%s)" % (db, result))
        leftovers = [n for sub in ("spool", os.path.join("store", "data", "tmp"))
                     if os.path.isdir(os.path.join(drill.data_dir, sub))
                     for n in os.listdir(os.path.join(drill.data_dir, sub))]
        check(leftovers == [], "no spool or tmp files left after the final stop: %s"
              % leftovers[:5])

        print("\n## Crash drill\n")
        print("| figure | value |\n|---|---|")
        print("| photos, uploaders | %d, %d |" % (PHOTOS, CLIENTS))
        print("| SIGKILLs | %d (at registered/tagged %s) |"
              % (len(drill.kill_points), ", ".join("%d/%d" % p for p in drill.kill_points)))
        print("| restart, kill to listening | mean %.2f s, max %.2f s |"
              % (statistics.mean(drill.restarts) if drill.restarts else 0,
                 max(drill.restarts) if drill.restarts else 0))
        print("| client retries (put, register, identity) | %d, %d, %d |"
              % (drill.retries["put"], drill.retries["register"], drill.retries["identity"]))
        print("| all registered / all tagged | %.0f s / %.0f s |" % (t_uploaded, t_tagged))
        print("| jobs run more than once | %d |" % rerun)
        print("| photo.tagged events per photo | exactly 1 for all %d |" % len(acked_ids))
        print("| objects in the store, not catalogued | %d, %d |" % (len(stored), len(orphans)))
        print("| seed | %d |" % SEED, flush=True)
        ok = True
    finally:
        if drill is not None:
            drill.done.set()
            mc.stop(drill.server, ok)
        shutil.rmtree(tmp, ignore_errors=True)
    mc.exit_status()


if __name__ == "__main__":
    main()
