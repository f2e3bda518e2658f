#!/usr/bin/python3
# test-disk-full.py [sqlite|postgresql] - magpied on a data directory that runs out of space,
# and gets it back
#
# The data directory is a 32 MiB tmpfs mounted by the test (root only; exit 77 and say why
# where mounting is not allowed). With "postgresql" (run by tests/with-postgres.sh, which sets
# MAGPIE_TEST_DB) the catalog is a PostgreSQL database whose tablespace is on the same tmpfs,
# so it fills up with the store. Photos are stored and tagged, then a filler file takes the
# last free byte. Every write must then fail cleanly: S3 uploads with 507 InsufficientStorage
# and an S3 error document, REST writes with 507 insufficient_storage (never a 500); reads keep
# working and return the exact bytes; nothing is left in the spool or the store's tmp. Once
# the filler is deleted, uploads, registrations and tagging work again. At the end the
# catalog (SQLite integrity_check, or pg_amcheck) and the store pass their checks and every
# catalogued photo has its object. The mount is always removed, even on failure.
import hashlib
import os
import pwd
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mp_magpied import Server  # noqa: E402
import mp_client as mc  # noqa: E402
from mp_client import check  # noqa: E402

mc.forget_aws_environment()
mc.need_botocore()

BUCKET = "magpie"
SIZE_MB = 32
CATALOG = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
PG_DB = "magpie_diskfull"
PG_TABLESPACE = "magpie_diskfull"
# POST /v1/identities until the catalog refuses one: a SQLite WAL refuses the first commit on
# a full disk, a PostgreSQL table only the row that needs a new page. Guests may take 100 at
# once, then 10/s (server/srv-api.c); a few hundred rows fill a page of any of the tables.
IDENTITY_TRIES = 400


def mount_tmpfs(path):
    if os.geteuid() != 0:
        mc.skip("mounting a small tmpfs needs root (this test runs as uid %d)" % os.geteuid())
    # 0755: PostgreSQL's server runs as its own user and must reach its tablespace here.
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=0755" % SIZE_MB, "tmpfs",
                        path], capture_output=True, text=True)
    if r.returncode != 0:
        mc.skip("cannot mount a tmpfs here (%s); RLIMIT_FSIZE is no stand-in for a full "
                "disk, so this drill does not run" % r.stderr.strip())


def fill(path):
    """Writes @path until the file system refuses another byte; returns the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        for block in (1 << 20, 4096, 1):
            chunk = b"\0" * block
            while True:
                try:
                    written += f.write(chunk)
                except OSError:
                    break
    return written


def wait_state(url, token, photo_id, states, timeout=60):
    deadline = time.time() + timeout
    photo = None
    while time.time() < deadline:
        status, photo = mc.call("GET", url + "/v1/photos/" + photo_id, None, token)
        if status == 200 and photo["state"] in states:
            return photo
        time.sleep(0.2)
    return photo


def put(url, creds, key, body):
    return mc.s3(url, creds, "PUT", "/%s/%s" % (BUCKET, mc.quote_key(key)), body=body)


def get(url, creds, key):
    return mc.s3(url, creds, "GET", "/%s/%s" % (BUCKET, mc.quote_key(key)))


def psql(uri, sql):
    """Runs @sql in the database @uri names; its rows as lists of strings."""
    r = subprocess.run(["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
                        "-d", uri, "-c", sql], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("psql %r: %s" % (sql, r.stderr.strip()))
    return [line.split("\t") for line in r.stdout.splitlines() if line]


def pg_uri(base, dbname):
    u = urllib.parse.urlsplit(base)
    return urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + dbname, u.query, u.fragment))


class Postgres:
    """A database of the with-postgres.sh server whose tablespace is on the test's tmpfs."""

    def __init__(self, mnt):
        self.base = os.environ.get("MAGPIE_TEST_DB")
        if not self.base:
            mc.skip("no PostgreSQL server (run under tests/with-postgres.sh, which sets "
                    "MAGPIE_TEST_DB)")
        self.uri = pg_uri(self.base, PG_DB)
        self.dir = os.path.join(mnt, "pg")
        os.makedirs(self.dir)
        # The server runs as postgres when the test is root (with-postgres.sh).
        owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else pwd.getpwuid(os.geteuid())
        os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.made = False
        psql(self.base, "CREATE TABLESPACE %s LOCATION '%s'" % (PG_TABLESPACE, self.dir))
        self.made = True
        psql(self.base, "CREATE DATABASE %s TABLESPACE %s" % (PG_DB, PG_TABLESPACE))

    def rows(self, sql):
        return psql(self.uri, sql)

    def amcheck(self):
        """pg_amcheck of every table and index of the database: (passed, what it said)."""
        host = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.base).query))["host"]
        r = subprocess.run([os.path.join(pg_bin(), "pg_amcheck"), "--install-missing",
                            "--heapallindexed", "-h", host, "-U", "postgres", PG_DB],
                           capture_output=True, text=True)
        return r.returncode == 0, (r.stdout + r.stderr).strip()

    def drop(self):
        """Drops what __init__ made, so the tmpfs is no longer busy and can be unmounted."""
        if not self.made:
            return
        try:
            psql(self.base, "DROP DATABASE IF EXISTS %s WITH (FORCE)" % PG_DB)
            psql(self.base, "DROP TABLESPACE IF EXISTS %s" % PG_TABLESPACE)
        except RuntimeError as e:
            print("# cleaning up PostgreSQL: %s" % e)


def pg_bin():
    found = sorted(d for d in (os.path.join("/usr/lib/postgresql", v, "bin")
                               for v in os.listdir("/usr/lib/postgresql"))
                   if os.path.exists(os.path.join(d, "pg_amcheck")))
    return os.environ.get("MAGPIE_PG_BIN") or found[-1]


def integrity(db):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()


def leftovers(data_dir):
    found = []
    for sub in ("spool", os.path.join("store", "data", "tmp")):
        d = os.path.join(data_dir, sub)
        if os.path.isdir(d):
            found += [os.path.join(sub, n) for n in os.listdir(d)]
    return found


def main():
    tmp = tempfile.mkdtemp(prefix="magpie-diskfull-")
    mnt = os.path.join(tmp, "mnt")
    os.makedirs(mnt)
    mounted = False
    server = None
    pg = None
    ok = False
    try:
        if CATALOG not in ("sqlite", "postgresql"):
            raise SystemExit("usage: test-disk-full.py [sqlite|postgresql]")
        os.chmod(tmp, 0o755)
        mount_tmpfs(mnt)
        mounted = True
        data_dir = os.path.join(mnt, "data")
        source = os.environ.get("MAGPIE_SOURCE_ROOT", os.environ.get("MAGPIE_SOURCE_DIR", "."))
        args = ["--photo-model", os.path.join(source, "data", "models", "photos.onnx"),
                "--workers", "1:1"]
        if CATALOG == "postgresql":
            pg = Postgres(mnt)
            args += ["--database", pg.uri]
        print("# catalog: %s" % CATALOG)
        server = Server(os.environ["MAGPIED"], tmp, args, data_dir=data_dir)
        url = server.url
        me = mc.guest(url)
        token = me["session_token"]

        # Before: three tagged photos, and one object stored but not yet registered.
        stored = {}
        for i in range(4):
            body = mc.png(48 + i, 40, i)
            key = "%s%s.png" % (me["prefix"], hashlib.sha256(body).hexdigest())
            r = put(url, me, key, body)
            check(r.status == 200, "PUT %d before the disk fills: %s" % (i, r))
            stored[key] = body
        keys = list(stored)
        photos = []
        for key in keys[:3]:
            status, photo = mc.call("POST", url + "/v1/photos", {"key": key}, token)
            check(status == 201, "photo registered before the disk fills (%d)" % status)
            photos.append(photo["id"])
        for pid in photos:
            p = wait_state(url, token, pid, ("tagged", "failed"))
            check(p and p["state"] == "tagged", "photo %s tagged before the disk fills" % pid)

        # Fill it. Give the server a moment to finish any write it had going (a WAL checkpoint).
        time.sleep(0.5)
        filler = os.path.join(mnt, "filler")
        n = fill(filler)
        free = shutil.disk_usage(mnt).free
        print("# filler: %.1f MiB; %d bytes left on the %d MiB tmpfs" % (n / 2**20, free, SIZE_MB))
        check(free < 4096, "the data directory is full (%d bytes free)" % free)

        big = os.urandom(1 << 20)
        r = put(url, me, me["prefix"] + "big.bin", big)
        body = r.body.decode(errors="replace")
        print("# full disk, 1 MiB PutObject: %d %s" % (r.status, body.replace("\n", " ")[:300]))
        check(r.status == 507 and r.code == "InsufficientStorage",
              "1 MiB PutObject on a full disk: 507 InsufficientStorage (%s)" % r)
        check("<Message>" in body and "space" in body.split("<Message>")[1].split("<")[0],
              "... with an S3 error document whose message says the disk is out of space")
        check(r.headers.get("x-amz-request-id") is not None, "... and a request id")
        r = put(url, me, me["prefix"] + "small.bin", b"x" * 100)
        check(r.status == 507 and r.code == "InsufficientStorage",
              "100-byte PutObject on a full disk: 507 InsufficientStorage (%s)" % r)
        r = mc.s3(url, me, "POST", "/%s/%smp.bin" % (BUCKET, me["prefix"]), "uploads")
        if r.status == 200:
            upload_id = r.body.decode().split("<UploadId>")[1].split("</UploadId>")[0]
            r = mc.s3(url, me, "PUT", "/%s/%smp.bin" % (BUCKET, me["prefix"]),
                      "partNumber=1&uploadId=" + upload_id, body=big)
            check(r.status == 507 and r.code == "InsufficientStorage",
                  "UploadPart on a full disk: 507 InsufficientStorage (%s)" % r)
        else:
            check(r.status == 507 and r.code == "InsufficientStorage",
                  "CreateMultipartUpload on a full disk: 507 InsufficientStorage (%s)" % r)
        check(mc.s3(url, me, "HEAD", "/%s/%sbig.bin" % (BUCKET, me["prefix"])).status == 404,
              "the refused upload left no object")

        # REST writes: a registration and a new identity need the catalog.
        status, doc = mc.call("POST", url + "/v1/photos", {"key": keys[3]}, token)
        print("# full disk, POST /v1/photos: %d %s" % (status, doc))
        reg_full = status
        check(status in (201, 507), "registration on a full disk: 201 or 507 (%d)" % status)
        if status == 507:
            check(doc["error"]["code"] == "insufficient_storage" and
                  "space" in doc["error"]["message"],
                  "... as insufficient_storage, saying so: %s" % doc["error"]["message"])
        made, statuses, doc = 0, {}, None
        for i in range(IDENTITY_TRIES):
            status, doc = mc.call("POST", url + "/v1/identities", {})
            statuses[status] = statuses.get(status, 0) + 1
            if status == 201:
                made += 1
            elif status == 429:
                time.sleep(0.15)
            else:
                break
        print("# full disk, POST /v1/identities: %d made before %d %s (answers %s)"
              % (made, status, doc, statuses))
        check(status == 507 and doc["error"]["code"] == "insufficient_storage" and
              "catalog cannot grow" in doc["error"]["message"],
              "new identities on a full disk: 507 insufficient_storage once the catalog must "
              "grow (after %d; answers %s)" % (made, statuses))

        # Reads still work and return the exact bytes.
        for key in keys:
            r = get(url, me, key)
            check(r.status == 200 and r.body == stored[key],
                  "GET of %s on a full disk returns its exact bytes" % key.rsplit("/", 1)[1][:12])
        status, listing = mc.call("GET", url + "/v1/photos", None, token)
        check(status == 200 and {p["id"] for p in listing["photos"]} >= set(photos),
              "GET /v1/photos still lists the photos")
        status, _ = mc.call("GET", url + "/healthz")
        check(status == 200 and server.proc.poll() is None, "magpied is up through it all")
        check(leftovers(data_dir) == [], "no spool or tmp files left: %s" % leftovers(data_dir))

        # Space comes back.
        os.unlink(filler)
        r = put(url, me, me["prefix"] + "big.bin", big)
        check(r.status == 200, "PutObject after the space returns: %s" % r)
        check(get(url, me, me["prefix"] + "big.bin").body == big, "... and it reads back")
        status, photo = mc.call("POST", url + "/v1/photos", {"key": keys[3]}, token)
        check(status == (200 if reg_full == 201 else 201),
              "registration after the space returns (%d)" % status)
        p = wait_state(url, token, photo["id"], ("tagged", "failed"))
        check(p and p["state"] == "tagged", "... and the photo is tagged")
        status, _ = mc.call("POST", url + "/v1/identities", {})
        check(status == 201, "new identities after the space returns (%d)" % status)
        check(leftovers(data_dir) == [], "no spool or tmp files left: %s" % leftovers(data_dir))

        server.stop()
        dbs = [os.path.join("store", "store.db")]
        if pg is None:
            dbs.insert(0, "catalog.db")
        for db in dbs:
            path = os.path.join(data_dir, db)
            check(integrity(path) == "ok", "%s passes integrity_check" % db)
        if pg is None:
            con = sqlite3.connect(os.path.join(data_dir, "catalog.db"))
            catalogued = [k for (k,) in con.execute("SELECT key FROM photos")]
            states = dict(con.execute("SELECT state, COUNT(*) FROM photos GROUP BY state")
                          .fetchall())
            con.close()
        else:
            passed, said = pg.amcheck()
            check(passed, "the PostgreSQL catalog passes pg_amcheck --heapallindexed%s"
                  % ("" if passed else ": " + said))
            catalogued = [k for (k,) in pg.rows("SELECT key FROM photos")]
            states = {st: int(n) for st, n in
                      pg.rows("SELECT state, COUNT(*) FROM photos GROUP BY state")}
        con = sqlite3.connect(os.path.join(data_dir, "store", "store.db"))
        objects = {k for (k,) in con.execute("SELECT key FROM objects")}
        con.close()
        check(all(k in objects for k in catalogued),
              "every catalogued photo has its object (%d photos, %s)" % (len(catalogued), states))
        ok = True
    finally:
        mc.stop(server, ok)
        if pg is not None:
            pg.drop()
        if mounted and subprocess.run(["umount", mnt]).returncode != 0:
            subprocess.run(["umount", "--lazy", mnt])
        shutil.rmtree(tmp, ignore_errors=True)
    mc.exit_status()


if __name__ == "__main__":
    main()
