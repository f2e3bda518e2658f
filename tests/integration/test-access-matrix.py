#!/usr/bin/python3
# test-access-matrix.py - every REST endpoint and S3 operation against every kind of caller
#
# One real magpied (temp data dir, port 0, an operator key pair). Callers, the columns:
#   none       no credentials at all
#   bad-sig    guest A's access key and session token, signed with a wrong secret
#   forged     a session token for A minted with another server's key (self-consistent)
#   expired    a token for A whose lifetime is over (s3-mint, as test-s3-clients does)
#   tampered   A's token with one character of its MAC changed
#   other      guest B on A's objects and photos
#   guest      guest A on its own
#   account    account C (POST /v1/accounts) on its own
#   guest>acct guest A on account C's
#   admin      the --admin-access-key pair (SigV4, no token)
# Each cell is sent, its status (and S3 or REST error code) compared with the expected one,
# and the whole matrix printed as a table. Destructive operations get fresh targets per cell,
# made with the owner's own credentials. Exit 77 (skip) without botocore.
import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mp_magpied import Server  # noqa: E402
import mp_client as mc  # noqa: E402
from mp_client import check  # noqa: E402

mc.forget_aws_environment()
mc.need_botocore()

BUCKET = "magpie"
ADMIN = {"access_key_id": "MAGPIEMATRIXADMIN001",
         "secret_access_key": "operator-secret-for-the-access-matrix-0001"}
# The webhook secret of POST /v1/s3-events: no identity and no operator key opens it.
S3_EVENTS_SECRET = "webhook-secret-for-the-access-matrix-00001"
COLUMNS = ["none", "bad-sig", "forged", "expired", "tampered", "other", "guest", "account",
           "guest>acct", "admin"]
NA = "—"


def minted(data_dir, identity, age_s=0):
    out = subprocess.run([os.environ["S3_MINT"], data_dir, identity, str(age_s)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


class World:
    """The identities, their credentials and what each column means."""

    def __init__(self, server, tmp):
        self.url = server.url
        self.a = mc.guest(self.url)
        self.b = mc.guest(self.url)
        self.carol = {"username": "matrix-carol", "password": "correct horse battery"}
        status, ident = mc.call("POST", self.url + "/v1/accounts", self.carol)
        assert status == 201, (status, ident)
        status, self.c = mc.call("POST", self.url + "/v1/credentials",
                                 {"identity_id": ident["identity_id"], "secret": ident["secret"]})
        assert status == 200, (status, self.c)
        self.c["secret"] = ident["secret"]
        a_id = self.a["identity_id"]
        expired = minted(server.data_dir, a_id, 2000)
        # Another server's keyring: a token that is well formed and signed, by the wrong key.
        forged = minted(os.path.join(tmp, "elsewhere"), a_id)
        t = self.a["session_token"]
        tampered = dict(self.a, session_token=t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1])
        bad_sig = dict(self.a, secret_access_key="x" * 40)
        admin = dict(ADMIN, session_token=None)
        # column → (S3 credentials, REST bearer token, REST SigV4 credentials, owner)
        self.cols = {
            "none":       (None, None, None, self.a),
            "bad-sig":    (bad_sig, None, bad_sig, self.a),
            "forged":     (forged, forged["session_token"], None, self.a),
            "expired":    (expired, expired["session_token"], None, self.a),
            "tampered":   (tampered, tampered["session_token"], None, self.a),
            "other":      (self.b, self.b["session_token"], None, self.a),
            "guest":      (self.a, self.a["session_token"], None, self.a),
            "account":    (self.c, self.c["session_token"], None, self.c),
            "guest>acct": (self.a, self.a["session_token"], None, self.c),
            "admin":      (admin, None, admin, self.a),
        }
        self.n = 0
        self.fixtures = {}
        for owner in (self.a, self.c):
            key = owner["prefix"] + "matrix/fixed.png"
            self.put(owner, key, mc.png(16, 16, len(self.fixtures)))
            photo = self.register(owner, key)
            self.fixtures[owner["identity_id"]] = {"key": key, "photo": photo["id"]}

    def fresh_key(self, owner, what):
        self.n += 1
        return "%smatrix/%s-%d.png" % (owner["prefix"], what, self.n)

    def put(self, owner, key, body=None):
        r = mc.s3(self.url, owner, "PUT", "/%s/%s" % (BUCKET, mc.quote_key(key)),
                  body=body if body is not None else mc.png(8, 8, self.n))
        assert r.status == 200, (key, r, r.body)
        return key

    def register(self, owner, key):
        status, photo = mc.call("POST", self.url + "/v1/photos", {"key": key},
                                owner["session_token"])
        assert status in (200, 201), (status, photo)
        return photo

    def exists(self, owner, key):
        return mc.s3(self.url, owner, "HEAD", "/%s/%s" % (BUCKET, mc.quote_key(key))).status == 200

    def upload(self, owner, key, with_part=False):
        r = mc.s3(self.url, owner, "POST", "/%s/%s" % (BUCKET, mc.quote_key(key)), "uploads")
        assert r.status == 200, r
        upload_id = r.body.decode().split("<UploadId>")[1].split("</UploadId>")[0]
        etag = None
        if with_part:
            r = mc.s3(self.url, owner, "PUT", "/%s/%s" % (BUCKET, mc.quote_key(key)),
                      "partNumber=1&uploadId=" + upload_id, body=b"part one")
            assert r.status == 200, r
            etag = r.headers.get("ETag")
        return upload_id, etag


def cell(status, code=None):
    return "%d %s" % (status, code) if code else "%d" % status


# ---- S3 operations: each returns the cell for (caller creds, owner) ----------------------------

def s3_cell(r):
    return cell(r.status, r.code)


def obj_path(key):
    return "/%s/%s" % (BUCKET, mc.quote_key(key))


def s3_ops(w):
    u = w.url

    def fixed(owner):
        return w.fixtures[owner["identity_id"]]["key"]

    def delete_objects(creds, owner):
        key = w.put(owner, w.fresh_key(owner, "delmany"))
        doc = ("<Delete><Object><Key>%s</Key></Object></Delete>" % key).encode()
        md5 = base64.b64encode(hashlib.md5(doc).digest()).decode()
        r = mc.s3(u, creds, "POST", "/" + BUCKET, "delete", body=doc,
                  headers={"Content-MD5": md5, "Content-Type": "application/xml"})
        gone = not w.exists(owner, key)
        return s3_cell(r), gone

    def delete_object(creds, owner):
        key = w.put(owner, w.fresh_key(owner, "del"))
        r = mc.s3(u, creds, "DELETE", obj_path(key))
        return s3_cell(r), not w.exists(owner, key)

    def put_object(creds, owner):
        key = w.fresh_key(owner, "put")
        r = mc.s3(u, creds, "PUT", obj_path(key), body=b"matrix")
        return s3_cell(r), w.exists(owner, key)

    def copy_within(creds, owner):
        key = w.fresh_key(owner, "copy")
        r = mc.s3(u, creds, "PUT", obj_path(key),
                  headers={"x-amz-copy-source": "/%s/%s" % (BUCKET, mc.quote_key(fixed(owner)))})
        return s3_cell(r), w.exists(owner, key)

    def copy_out(creds, owner):
        # The owner's object into the caller's own prefix (A's for the broken credentials
        # and the admin): only the source is someone else's.
        me = creds if creds in (w.a, w.b, w.c) else w.a
        key = w.fresh_key(me, "copyout")
        r = mc.s3(u, creds, "PUT", obj_path(key),
                  headers={"x-amz-copy-source": "/%s/%s" % (BUCKET, mc.quote_key(fixed(owner)))})
        return s3_cell(r), w.exists(me, key)

    def presigned_get(creds, owner):
        path = obj_path(fixed(owner))
        if creds is None:
            r = mc.raw_request(u, "GET", path)
        else:
            target = mc.presign(u, creds, "GET", path).split(u, 1)[1]
            r = mc.raw_request(u, "GET", target)
        return s3_cell(r), None

    late = {}

    def presigned_too_late(creds, owner):
        # X-Amz-Expires of one second, used two seconds later: refused whoever signed it.
        # Every column's URL is signed on the first call, so the row waits once, not ten times.
        if creds is None:
            return s3_cell(mc.raw_request(u, "GET", obj_path(fixed(owner)))), None
        if not late:
            for c, _, _, o in w.cols.values():
                if c is not None:
                    late[(id(c), o["identity_id"])] = mc.presign(
                        u, c, "GET", obj_path(fixed(o)), expires=1).split(u, 1)[1]
            time.sleep(2.1)
        target = late[(id(creds), owner["identity_id"])]
        return s3_cell(mc.raw_request(u, "GET", target)), None

    def create_upload(creds, owner):
        r = mc.s3(u, creds, "POST", obj_path(w.fresh_key(owner, "mpu")), "uploads")
        return s3_cell(r), None

    def upload_part(creds, owner):
        key = w.fresh_key(owner, "part")
        upload_id, _ = w.upload(owner, key)
        r = mc.s3(u, creds, "PUT", obj_path(key), "partNumber=1&uploadId=" + upload_id,
                  body=b"part")
        return s3_cell(r), None

    def list_parts(creds, owner):
        key = w.fresh_key(owner, "parts")
        upload_id, _ = w.upload(owner, key, with_part=True)
        return s3_cell(mc.s3(u, creds, "GET", obj_path(key), "uploadId=" + upload_id)), None

    def complete_upload(creds, owner):
        key = w.fresh_key(owner, "done")
        upload_id, etag = w.upload(owner, key, with_part=True)
        doc = ("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>%s</ETag>"
               "</Part></CompleteMultipartUpload>" % etag).encode()
        r = mc.s3(u, creds, "POST", obj_path(key), "uploadId=" + upload_id, body=doc)
        return s3_cell(r), w.exists(owner, key)

    def abort_upload(creds, owner):
        key = w.fresh_key(owner, "abort")
        upload_id, _ = w.upload(owner, key, with_part=True)
        r = mc.s3(u, creds, "DELETE", obj_path(key), "uploadId=" + upload_id)
        still = mc.s3(u, owner, "GET", obj_path(key), "uploadId=" + upload_id).status == 200
        return s3_cell(r), not still

    def simple(method, path_fn, query_fn=lambda o: ""):
        return lambda creds, owner: (s3_cell(mc.s3(u, creds, method, path_fn(owner),
                                                   query_fn(owner))), None)

    def pfx(owner):
        return "prefix=" + mc.quote_key(owner["prefix"]).replace("/", "%2F")

    # name → (function, expected in the ok columns, expected for "other" and "guest>acct",
    #         expected for admin[, {column: expected} where a row differs])
    return [
        ("ListBuckets", simple("GET", lambda o: "/"), "200", "200", "200"),
        ("HeadBucket", simple("HEAD", lambda o: "/" + BUCKET), "200", "200", "200"),
        ("GetBucketLocation", simple("GET", lambda o: "/" + BUCKET, lambda o: "location"),
         "200", "200", "200"),
        ("ListObjects (V1)", simple("GET", lambda o: "/" + BUCKET, pfx),
         "200", "403 AccessDenied", "200"),
        ("ListObjectsV2", simple("GET", lambda o: "/" + BUCKET,
                                 lambda o: "list-type=2&" + pfx(o)),
         "200", "403 AccessDenied", "200"),
        ("ListObjectsV2 whole bucket", simple("GET", lambda o: "/" + BUCKET,
                                              lambda o: "list-type=2"),
         "403 AccessDenied", "403 AccessDenied", "200"),
        ("ListObjectsV2 other bucket", simple("GET", lambda o: "/elsewhere",
                                              lambda o: "list-type=2&" + pfx(o)),
         "403 AccessDenied", "403 AccessDenied", "403 AccessDenied"),
        ("ListMultipartUploads", simple("GET", lambda o: "/" + BUCKET,
                                        lambda o: "uploads&" + pfx(o)),
         "200", "403 AccessDenied", "200"),
        ("CreateBucket (the served one)", simple("PUT", lambda o: "/" + BUCKET),
         "409 BucketAlreadyOwnedByYou", "409 BucketAlreadyOwnedByYou",
         "409 BucketAlreadyOwnedByYou"),
        ("PutObject", put_object, "200", "403 AccessDenied", "200"),
        ("GetObject", simple("GET", lambda o: obj_path(fixed(o))), "200", "403 AccessDenied",
         "200"),
        ("HeadObject", simple("HEAD", lambda o: obj_path(fixed(o))), "200", "403", "200"),
        ("GetObject presigned URL", presigned_get, "200", "403 AccessDenied", "200"),
        # The URL's own expiry is checked before its signature, as AWS does.
        ("GetObject presigned, expired URL", presigned_too_late, "403 AccessDenied",
         "403 AccessDenied", "403 AccessDenied", {"bad-sig": "403 AccessDenied"}),
        ("CopyObject", copy_within, "200", "403 AccessDenied", "200"),
        ("CopyObject, source elsewhere", copy_out, "200", "403 AccessDenied", "200"),
        ("DeleteObject", delete_object, "204", "403 AccessDenied", "204"),
        ("DeleteObjects", delete_objects, "200", "200 AccessDenied", "200"),
        ("CreateMultipartUpload", create_upload, "200", "403 AccessDenied", "200"),
        ("UploadPart", upload_part, "200", "403 AccessDenied", "200"),
        ("ListParts", list_parts, "200", "403 AccessDenied", "200"),
        ("CompleteMultipartUpload", complete_upload, "200", "403 AccessDenied", "200"),
        ("AbortMultipartUpload", abort_upload, "204", "403 AccessDenied", "204"),
    ]


S3_AUTH_FAILURE = {"none": "403 AccessDenied", "bad-sig": "403 SignatureDoesNotMatch",
                   "forged": "403 InvalidToken", "expired": "403 ExpiredToken",
                   "tampered": "403 InvalidToken"}


def s3_expected(col, name, ok, denied, admin, overrides):
    if col in overrides:
        return overrides[col]
    if col in S3_AUTH_FAILURE:
        e = S3_AUTH_FAILURE[col]
        return "403" if name.startswith("Head") else e
    if col in ("other", "guest>acct"):
        return denied
    if col == "admin":
        return admin
    return ok


# ---- REST ---------------------------------------------------------------------------------------

def rest(w, col, method, path, body=None, raw=None, headers=None):
    """(cell, parsed JSON) for one REST call as column @col's caller."""
    _, token, sigv4, _ = w.cols[col]
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    if sigv4 is not None:
        h = mc.sign(w.url, sigv4, method, path.split("?")[0],
                    path.split("?", 1)[1] if "?" in path else "", data, h)
    elif token is not None:
        h["Authorization"] = "Bearer " + token
    r = mc.raw_request(w.url, method, path, data, h)
    try:
        doc = json.loads(r.body) if r.body and "json" in r.headers.get("Content-Type", "") \
            else None
    except ValueError:
        doc = None
    return cell(r.status, error_code(doc)), doc


REST_AUTH_FAILURE = {"none": "401 unauthorized", "bad-sig": "401 unauthorized",
                     "forged": "401 invalid_token", "expired": "401 token_expired",
                     "tampered": "401 invalid_token", "admin": "401 unauthorized"}


def events_replay(w, col):
    """GET /v1/events replayed from event 0: (cell, the photo ids its events name)."""
    _, token, sigv4, _ = w.cols[col]
    if token is None:
        return rest(w, col, "GET", "/v1/events")[0], set()
    try:
        stream = mc.EventStream(w.url, token, last_event_id=0, timeout=10)
    except urllib.error.HTTPError as e:
        return cell(e.code, error_code(json.loads(e.read() or b"null"))), set()
    stream.start()
    frames = stream.drain(quiet_s=0.7, timeout=10)
    stream.close()
    return "200", {json.loads(f["data"]).get("id") for f in frames}


def rest_rows(w, digit_ok, photo_ok):
    png = mc.png(32, 32, 7)
    digit = {"pixels": [0] * 784}

    def photo_of(owner):
        return w.fixtures[owner["identity_id"]]["photo"]

    def register(col, owner):
        key = w.put(owner, w.fresh_key(owner, "reg"))
        c, _ = rest(w, col, "POST", "/v1/photos", {"key": key})
        return c

    def list_photos(col, owner):
        c, doc = rest(w, col, "GET", "/v1/photos?limit=200")
        ids = {p["id"] for p in doc["photos"]} if c == "200" else set()
        mine = {w.fixtures[o["identity_id"]]["photo"] for o in (w.a, w.c)
                if o is w.cols[col][0]}
        others = {p for p in (photo_of(w.a), photo_of(w.c))} - mine
        check(not (ids & others), "GET /v1/photos as %s lists no one else's photo" % col)
        return c

    def get_photo(col, owner):
        return rest(w, col, "GET", "/v1/photos/" + photo_of(owner))[0]

    def delete_photo(col, owner):
        pid = w.register(owner, w.put(owner, w.fresh_key(owner, "delp")))["id"]
        c, _ = rest(w, col, "DELETE", "/v1/photos/" + pid)
        status, _ = mc.call("GET", w.url + "/v1/photos/" + pid, None, owner["session_token"])
        check((status == 404) == c.startswith("204"),
              "DELETE /v1/photos/{id} as %s: the photo is gone exactly when 204" % col)
        return c

    def events(col, owner):
        c, ids = events_replay(w, col)
        creds = w.cols[col][0]
        foreign = {photo_of(o) for o in (w.a, w.c) if o is not creds}
        check(not (ids & foreign), "event replay as %s carries no one else's events" % col)
        if col in ("guest", "account"):
            check(photo_of(owner) in ids, "event replay as %s carries its own photo" % col)
        return c

    def credentials(col, owner):
        a, b, c = w.a, w.b, w.c
        body = {
            "none": {},
            "bad-sig": {"identity_id": a["identity_id"], "secret": "x" * 43},
            "tampered": {"identity_id": a["identity_id"],
                         "secret": a["secret"][:-1] + ("A" if a["secret"][-1] != "A" else "B")},
            "other": {"identity_id": a["identity_id"], "secret": b["secret"]},
            "guest": {"identity_id": a["identity_id"], "secret": a["secret"]},
            "account": {"identity_id": c["identity_id"], "secret": c["secret"]},
            "guest>acct": {"identity_id": c["identity_id"], "secret": a["secret"]},
            "admin": {"identity_id": ADMIN["access_key_id"],
                      "secret": ADMIN["secret_access_key"]},
        }.get(col)
        if body is None:
            return NA
        return cell(*status_code(mc.call("POST", w.url + "/v1/credentials", body)))

    def sessions(col, owner):
        body = {
            "none": {},
            "bad-sig": {"username": w.carol["username"], "password": "not the password"},
            "account": w.carol,
            "admin": {"username": ADMIN["access_key_id"], "password": ADMIN["secret_access_key"]},
        }.get(col)
        if body is None:
            return NA
        return cell(*status_code(mc.call("POST", w.url + "/v1/sessions", body)))

    def accounts(col, owner):
        body = {"none": {"username": "matrix-dave", "password": "another long password"},
                "account": w.carol}.get(col)
        if body is None:
            return NA
        return cell(*status_code(mc.call("POST", w.url + "/v1/accounts", body)))

    def public(method, path, body=None):
        return lambda col, owner: rest(w, col, method, path, body)[0]

    auth = "auth"
    # name → (function, ok, denied (other, guest>acct), admin); auth: the bearer failures
    return [
        ("GET /healthz", public("GET", "/healthz"), "200", "200", "200", None),
        ("GET /readyz", public("GET", "/readyz"), "200", "200", "200", None),
        ("GET /metrics", public("GET", "/metrics"), "200", "200", "200", None),
        ("POST /v1/identities", public("POST", "/v1/identities", {}), "201", "201", "201", None),
        ("POST /v1/credentials", credentials, "200", "401 not_authorized", "400 bad_request",
         {"none": "400 bad_request", "bad-sig": "401 not_authorized", "forged": NA,
          "expired": NA, "tampered": "401 not_authorized", "admin": "401 not_authorized"}),
        ("POST /v1/accounts", accounts, NA, NA, NA,
         {"none": "201", "account": "409 username_taken"}),
        ("POST /v1/sessions", sessions, NA, NA, "401 not_authorized",
         {"none": "400 bad_request", "bad-sig": "401 not_authorized",
          "account": "200"}),
        ("POST /v1/photos", register, "201", "403 forbidden", auth, auth),
        ("GET /v1/photos", list_photos, "200", "200", auth, auth),
        ("GET /v1/photos/{id}", get_photo, "200", "404 not_found", auth, auth),
        ("DELETE /v1/photos/{id}", delete_photo, "204", "404 not_found", auth, auth),
        ("GET /v1/events", events, "200", "200", auth, auth),
        ("POST /v1/predict/digit", lambda col, o: rest(w, col, "POST", "/v1/predict/digit",
                                                       digit)[0],
         digit_ok, digit_ok, auth, auth),
        ("POST /v1/predict/photo", lambda col, o: rest(w, col, "POST", "/v1/predict/photo",
                                                       raw=png,
                                                       headers={"Content-Type": "image/png"})[0],
         photo_ok, photo_ok, auth, auth),
        ("GET /v1/models", public("GET", "/v1/models"), "200", "200", auth, auth),
        ("GET /v1/models/photos", public("GET", "/v1/models/photos"), "200", "200", auth, auth),
        ("POST /v1/s3-events", public("POST", "/v1/s3-events", {"Event": "s3:TestEvent"}),
         "401 unauthorized", "401 unauthorized", "401 unauthorized", None),
    ]


def error_code(doc):
    """The code of the error envelope; None for anything else (a photo has an "error" too)."""
    err = doc.get("error") if isinstance(doc, dict) else None
    return err.get("code") if isinstance(err, dict) else None


def status_code(reply):
    status, doc = reply
    return status, error_code(doc)


def rest_expected(col, ok, denied, admin, special):
    if isinstance(special, dict):
        if col in special:
            return special[col]
        if col in ("other", "guest>acct"):
            return denied
        if col == "admin":
            return admin
        if col in ("guest", "account"):
            return ok
        return NA
    if special == "auth" and col in REST_AUTH_FAILURE:
        return REST_AUTH_FAILURE[col]
    if col in ("other", "guest>acct"):
        return denied
    if col == "admin":
        return admin if admin != "auth" else REST_AUTH_FAILURE["admin"]
    return ok


def print_table(title, rows):
    width = max(len(r[0]) for r in rows)
    cw = max(12, max(len(c) for r in rows for c in r[1]))
    print("\n## %s\n" % title)
    print("| %-*s | %s |" % (width, "operation", " | ".join("%-*s" % (cw, c) for c in COLUMNS)))
    print("|%s|%s|" % ("-" * (width + 2), "|".join("-" * (cw + 2) for _ in COLUMNS)))
    for name, cells in rows:
        print("| %-*s | %s |" % (width, name, " | ".join("%-*s" % (cw, c) for c in cells)))
    print(flush=True)


def main():
    tmp = tempfile.mkdtemp(prefix="magpie-matrix-")
    server = None
    ok = False
    try:
        os.makedirs(os.path.join(tmp, "elsewhere"))
        source = os.environ.get("MAGPIE_SOURCE_ROOT", os.environ.get("MAGPIE_SOURCE_DIR", "."))
        model = os.path.join(source, "data", "models", "photos.onnx")
        args = ["--admin-access-key", ADMIN["access_key_id"],
                "--admin-secret-key", ADMIN["secret_access_key"], "--workers", "1:1",
                "--s3-events-secret", S3_EVENTS_SECRET]
        if os.path.exists(model):
            args += ["--photo-model", model]
        server = Server(os.environ["MAGPIED"], tmp, args)
        w = World(server, tmp)
        _, models = mc.call("GET", server.url + "/v1/models", None, w.a["session_token"])
        names = {m["name"] for m in models["models"]}
        digit_ok = "200" if "digits" in names else "503 model_unavailable"
        photo_ok = "200" if "photos" in names else "503 model_unavailable"
        print("# models: %s" % sorted(names))

        s3_table = []
        for name, fn, ok_cell, denied, admin, *overrides in s3_ops(w):
            cells = []
            for col in COLUMNS:
                creds, _, _, owner = w.cols[col]
                got, effect = fn(creds, owner)
                want = s3_expected(col, name, ok_cell, denied, admin,
                                   overrides[0] if overrides else {})
                check(got == want, "S3 %s as %s: %s (expected %s)" % (name, col, got, want))
                if effect is not None:
                    happened = want.split()[0] in ("200", "204") and \
                        not want.startswith("200 AccessDenied")
                    check(effect == happened, "S3 %s as %s: the store %s" %
                          (name, col, "changed" if happened else "is untouched"))
                cells.append(got)
            s3_table.append((name, cells))

        rest_table = []
        for name, fn, ok_cell, denied, admin, special in rest_rows(w, digit_ok, photo_ok):
            cells = []
            for col in COLUMNS:
                want = rest_expected(col, ok_cell, denied, admin, special)
                got = fn(col, w.cols[col][3]) if want != NA else NA
                check(got == want, "REST %s as %s: %s (expected %s)" % (name, col, got, want))
                cells.append(got)
            rest_table.append((name, cells))

        # POST /v1/s3-events opens to its shared secret, and to nothing in the matrix.
        status, doc = mc.call("POST", server.url + "/v1/s3-events", {"Event": "s3:TestEvent"},
                              S3_EVENTS_SECRET)
        webhook = cell(status, error_code(doc))
        check(webhook == "200", "POST /v1/s3-events with its shared secret: %s" % webhook)

        # Guests are a server setting: with --guests=no only accounts get identities, and an
        # account's credentials work as before.
        os.makedirs(os.path.join(tmp, "no-guests"))
        closed = Server(os.environ["MAGPIED"], os.path.join(tmp, "no-guests"),
                        ["--guests", "no"])
        try:
            status, doc = mc.call("POST", closed.url + "/v1/identities", {})
            guests_off = cell(status, error_code(doc))
            status, doc = mc.call("POST", closed.url + "/v1/accounts",
                                  {"username": "matrix-erin", "password": "yet another one"})
            if status == 201:
                status, doc = mc.call("POST", closed.url + "/v1/credentials",
                                      {"identity_id": doc["identity_id"], "secret": doc["secret"]})
            account_on = cell(status, error_code(doc))
        finally:
            closed.stop()
        check(guests_off == "403 guests_disabled",
              "--guests=no: POST /v1/identities answers %s" % guests_off)
        check(account_on == "200", "--guests=no: an account still gets credentials (%s)"
              % account_on)

        print_table("S3 operations (status and S3 error code)", s3_table)
        print_table("REST endpoints (status and error code)", rest_table)
        print("# columns: none = no credentials; bad-sig = A's key and token, wrong secret; "
              "forged = token minted with another server's key; expired; tampered = one MAC "
              "character changed; other = guest B on guest A's; guest = A on its own; "
              "account = C on its own; guest>acct = A on C's; admin = operator key pair")
        print("# HEAD answers carry no body, so no S3 code; DeleteObjects reports a refused "
              "key inside its 200 result")
        print("# POST /v1/s3-events with the --s3-events-secret as its bearer token: %s"
              % webhook)
        print("# with --guests=no: POST /v1/identities %s; an account's credentials %s"
              % (guests_off, account_on))
        ok = True
    finally:
        mc.stop(server, ok)
        shutil.rmtree(tmp, ignore_errors=True)
    mc.exit_status()


if __name__ == "__main__":
    main()
