#!/usr/bin/python3
# test-remote-s3.py - magpied on a remote S3 store: moto_server as S3, STS and IAM at once
#
# moto (an independent implementation from the machine's Python) is started on a loopback
# port as a direct child, given a bucket, an IAM user for magpied and a role the uploads
# assume, and then has its signature and IAM checks switched on (/moto-api/reset-auth). Then,
# as the app does it: identity → credentials (moto's STS AssumeRole with our session policy)
# → boto3 PutObject straight to moto under users/<id>/ → POST /v1/photos → photo.tagged on
# the SSE stream; the workers read the bytes from moto. What moto enforces and what it only
# records is checked and said: it enforces signatures and role policies, and stores but does
# not apply AssumeRole session policies (test-sts evaluates our policy itself).
import base64
import hashlib
import json
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mp_check import check, failures, forget_aws_environment, skip  # noqa: E402
from mp_magpied import Server, call  # noqa: E402

forget_aws_environment()
try:
    import botocore.exceptions
    from mp_moto import BUCKET, ROLE, Moto, client, setup_moto
except ImportError:
    skip("python3-boto3 is not installed (tools/deps.sh installs it)")
if shutil.which("moto_server") is None:
    skip("moto_server is not on PATH")
SLOWDOWN = max(1, int(os.environ.get("MAGPIE_TEST_SLOWDOWN", "1")))
shared = os.environ.get("MAGPIE_SHARED_DATA", "")
model = os.path.join(os.environ["MAGPIE_SOURCE_ROOT"], "data", "models", "photos.onnx")
photos = [os.path.join(shared, "photos", n) for n in ("golden_retriever_winml.jpg",
                                                      "cat_winml.jpg")]
if not all(os.path.isfile(p) for p in photos):
    skip("no test photos: ../shared/data/photos is not beside the checkout")


class EventStream(threading.Thread):
    def __init__(self, url, token):
        super().__init__(daemon=True)
        self.events = queue.Queue()
        req = urllib.request.Request(url + "/v1/events",
                                     headers={"Authorization": "Bearer " + token,
                                              "Accept": "text/event-stream"})
        self.resp = urllib.request.urlopen(req, timeout=120)

    def run(self):
        frame = {}
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if "data" in frame:
                        self.events.put(frame)
                    frame = {}
                elif not line.startswith(":"):
                    field, _, value = line.partition(":")
                    frame[field] = value[1:] if value.startswith(" ") else value
        except Exception:  # closed when the test ends
            pass

    def wait_tagged(self, ids, timeout):
        pending, deadline, tagged = set(ids), time.time() + timeout, {}
        while pending and time.time() < deadline:
            try:
                frame = self.events.get(timeout=max(0.05, deadline - time.time()))
            except queue.Empty:
                break
            data = json.loads(frame["data"])
            if frame.get("event") == "photo.tagged" and data.get("id") in pending:
                pending.discard(data["id"])
                tagged[data["id"]] = data
        return tagged


def denied(fn):
    try:
        fn()
        return None
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"]


def main():
    tmp = tempfile.mkdtemp(prefix="magpie-remote-s3-")
    moto = server = None
    try:
        moto = Moto(tmp, SLOWDOWN)
        key_id, secret, role_arn = setup_moto(moto)
        check(denied(lambda: client("s3", moto.url, key_id, "wrong" * 8).list_objects_v2(
            Bucket=BUCKET)) == "SignatureDoesNotMatch",
            "moto checks signatures now (a wrong secret is refused)")

        server = Server(os.environ["MAGPIED"], tmp, [
            "--bucket", BUCKET, "--s3-endpoint", moto.url, "--s3-access-key", key_id,
            "--s3-secret-key", secret, "--sts-role-arn", role_arn,
            "--photo-model", model, "--tag-min-confidence", "0.01"])
        status, ready = call("GET", server.url + "/readyz")
        check(status == 200 and ready["checks"]["store"] == "ok",
              "ready: magpied's signed HEAD of the bucket passed moto's checks")

        status, ident = call("POST", server.url + "/v1/identities", {})
        check(status == 201, "guest identity created")
        ident_id = ident["identity_id"]
        started = time.time()
        status, creds = call("POST", server.url + "/v1/credentials",
                             {"identity_id": ident_id, "secret": ident["secret"]})
        check(status == 200, "credentials (%s)" % (creds if status != 200 else "200"))
        if status != 200:
            return
        expires = time.mktime(time.strptime(creds["expiration"], "%Y-%m-%dT%H:%M:%SZ")) \
            - time.timezone
        check(creds["access_key_id"].startswith("ASIA") and creds["access_key_id"] != key_id
              and creds["endpoint"] == moto.url and creds["bucket"] == BUCKET
              and creds["region"] == "us-east-1" and creds["prefix"] == "users/%s/" % ident_id,
              "credentials name moto's endpoint, the bucket and the identity's prefix")
        check(abs(expires - (started + 3600)) < 120, "they expire in an hour, as asked")
        check(creds["api_token"] != creds["session_token"],
              "the REST bearer (api_token) is ours, the session token is moto's")

        user_s3 = client("s3", moto.url, creds["access_key_id"], creds["secret_access_key"],
                         creds["session_token"])
        who = client("sts", moto.url, creds["access_key_id"], creds["secret_access_key"],
                     creds["session_token"]).get_caller_identity()
        check(who["Arn"].endswith("assumed-role/%s/%s" % (ROLE, ident_id)),
              "moto's STS issued them: the caller is the assumed role, session named by the "
              "identity (%s)" % who["Arn"])

        sent = [r for r in moto.data()["sts"]["AssumedRole"] if r["session_name"] == ident_id]
        policy = json.loads(sent[0]["policy"]) if sent else {}
        resources = [s.get("Resource") for s in policy.get("Statement", [])]
        check(len(sent) == 1 and sent[0]["role_arn"] == role_arn and resources ==
              ["arn:aws:s3:::%s/users/%s/*" % (BUCKET, ident_id), "arn:aws:s3:::" + BUCKET],
              "moto received one AssumeRole with our session policy for the prefix")

        status, again = call("POST", server.url + "/v1/credentials",
                             {"identity_id": ident_id, "secret": ident["secret"]})
        check(status == 200 and again["access_key_id"] == creds["access_key_id"]
              and again["api_token"] != creds["api_token"],
              "asking again within minutes reuses them (a fresh api_token beside)")
        status, _ = call("POST", server.url + "/v1/credentials",
                         {"identity_id": ident_id, "secret": "not-the-secret"})
        check(status == 401, "a wrong identity secret gets no credentials (401)")

        status, _ = call("GET", server.url + "/v1/photos", None, creds["session_token"])
        check(status == 401, "moto's session token is no bearer for our REST API (401)")

        events = EventStream(server.url, creds["api_token"])
        events.start()

        registered = []
        for i, path in enumerate(photos):
            body = open(path, "rb").read()
            sha = hashlib.sha256(body).hexdigest()
            key = creds["prefix"] + sha + ".jpg"
            extra = {}
            if i == 0:
                # With a SHA-256 checksum the catalog gets it from HEAD, else by reading.
                extra = {"ChecksumAlgorithm": "SHA256"}
            user_s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType="image/jpeg",
                               **extra)
            status, photo = call("POST", server.url + "/v1/photos", {"key": key},
                                 creds["api_token"])
            check(status == 201 and photo["sha256"] == sha and photo["size"] == len(body)
                  and photo["content_type"] == "image/jpeg",
                  "%s registered from moto with its size and SHA-256 (%s)"
                  % (os.path.basename(path), "checksum" if extra else "read through"))
            registered.append((photo["id"], key, sha))
        if len(registered) == 2:
            head = user_s3.head_object(Bucket=BUCKET, Key=registered[0][1],
                                       ChecksumMode="ENABLED")
            check(base64.b64decode(head.get("ChecksumSHA256", "")).hex() == registered[0][2],
                  "moto kept the first upload's SHA-256 checksum")

        tagged = events.wait_tagged([r[0] for r in registered], 90 * SLOWDOWN)
        check(len(tagged) == len(registered),
              "photo.tagged arrived on the SSE stream for every photo (%d of %d)"
              % (len(tagged), len(registered)))
        labels = [t["tags"][0]["label"] if t.get("tags") else None for t in tagged.values()]
        print("# top tags: %s" % labels)
        check(all(labels), "every photo has tags: the workers read its bytes from moto")

        status, missing = call("POST", server.url + "/v1/photos",
                               {"key": creds["prefix"] + "never-uploaded.jpg"},
                               creds["api_token"])
        check(status == 404 and missing["error"]["code"] == "no_such_object",
              "registering a key moto does not hold is a 404")

        photo_id, key, _ = registered[0]
        status, _ = call("DELETE", server.url + "/v1/photos/" + photo_id, None,
                         creds["api_token"])
        check(status == 204, "photo deleted (204)")
        check(denied(lambda: user_s3.head_object(Bucket=BUCKET, Key=key)) in ("404", "NoSuchKey"),
              "its object is gone from moto")
        check(user_s3.head_object(Bucket=BUCKET, Key=registered[1][1])["ContentLength"] > 0,
              "the other photo's object is still there")

        status, s3_here = call("GET", server.url + "/" + BUCKET + "/" + key)
        check(status == 404 and moto.url in s3_here["error"]["message"],
              "magpied serves no S3 of its own with a remote store, and says where it is")

        # What moto enforces: the role's policy (outside users/ is refused) ...
        check(denied(lambda: user_s3.put_object(Bucket=BUCKET, Key="outside/x.jpg",
                                                Body=b"x")) == "AccessDenied",
              "moto refuses the credentials outside the role's users/ prefix")
        # ... and what it does not: the session policy that narrows them to one identity.
        other = "users/someone-else/x.jpg"
        code = denied(lambda: user_s3.put_object(Bucket=BUCKET, Key=other, Body=b"x"))
        if code is None:
            print("# moto let these credentials write %s: moto keeps AssumeRole session "
                  "policies but does not enforce them; AWS S3, MinIO and Ceph RGW do "
                  "(test-sts checks the policy's own semantics)" % other)
        else:
            check(code == "AccessDenied", "another identity's prefix is refused")

        status, metrics = 0, ""
        with urllib.request.urlopen(server.url + "/metrics", timeout=30) as r:
            status, metrics = r.status, r.read().decode()
        check('magpied_sts_requests_total{result="ok"} 1\n' in metrics
              and 'magpied_sts_requests_total{result="cached"} 1\n' in metrics,
              "/metrics counts one AssumeRole and one cached answer")
    finally:
        if server is not None:
            server.stop()
            if failures:
                sys.stdout.write(server.log_tail(60))
        if moto is not None:
            moto.stop()
        shutil.rmtree(tmp, ignore_errors=True)


main()
print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
