#!/usr/bin/python3
# test-s3-events.py - registration by S3 event notification (POST /v1/s3-events)
#
# A real magpied with --s3-events-secret. Objects are uploaded with boto3 and the identity's
# temporary credentials, and then announced the way S3, MinIO or Ceph RGW announce them to a
# webhook: a {"Records": [...]} document (event version 2.1, URL-encoded keys) with the shared
# secret as bearer. Checked: created objects are registered and tagged (photo.tagged on SSE),
# the same notification again changes nothing, removals unregister, records that can never
# apply are skipped with their reason, the S3 test event is accepted, a wrong or missing secret
# is refused, and a server without the secret has no such route.
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mp_check import check, failures, forget_aws_environment, skip  # noqa: E402
from mp_magpied import Server, call  # noqa: E402

forget_aws_environment()
try:
    import boto3
    import botocore.config
except ImportError:
    skip("python3-boto3 is not installed (tools/deps.sh installs it)")

SECRET = "s3-events-shared-secret-0123456789abcdef"
source_root = os.environ["MAGPIE_SOURCE_ROOT"]
shared = os.environ.get("MAGPIE_SHARED_DATA", "")


def record(event, bucket, key, size=0):
    """One record as AWS S3 writes it (keys URL-encoded the form way)."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "eventName": event,
        "userIdentity": {"principalId": "AWS:EXAMPLE"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "magpie-uploads",
            "bucket": {"name": bucket, "arn": "arn:aws:s3:::" + bucket},
            "object": {"key": urllib.parse.quote_plus(key, safe="/"), "size": size,
                       "sequencer": "0055AED6DCD90281E5"},
        },
    }


def photos(server, token, key):
    status, body = call("GET", server.url + "/v1/photos?key=" + urllib.parse.quote(key, safe=""),
                        token=token)
    return body["photos"] if status == 200 else None


def main():
    photo = os.path.join(shared, "photos", "golden_retriever_winml.jpg")
    if not os.path.isfile(photo):
        skip("no test photo: ../shared/data/photos is not beside the checkout")
    tmp = tempfile.mkdtemp(prefix="magpie-s3-events-")
    os.makedirs(os.path.join(tmp, "on"))
    os.makedirs(os.path.join(tmp, "off"))
    server = None
    off = None
    try:
        server = Server(os.environ["MAGPIED"], os.path.join(tmp, "on"),
                        ["--s3-events-secret", SECRET, "--tag-min-confidence", "0.01"])
        events_url = server.url + "/v1/s3-events"

        status, ident = call("POST", server.url + "/v1/identities", {})
        status, creds = call("POST", server.url + "/v1/credentials",
                             {"identity_id": ident["identity_id"], "secret": ident["secret"]})
        check(status == 200, "temporary credentials for a guest identity")
        token = creds["api_token"]
        s3 = boto3.client("s3", endpoint_url=creds["endpoint"], region_name=creds["region"],
                          aws_access_key_id=creds["access_key_id"],
                          aws_secret_access_key=creds["secret_access_key"],
                          aws_session_token=creds["session_token"],
                          config=botocore.config.Config(signature_version="s3v4",
                                                        s3={"addressing_style": "path"}))
        body = open(photo, "rb").read()
        keys = [creds["prefix"] + name for name in
                ("dog one.jpg", "dog+two.jpg", "caf\u00e9/dog three.jpg")]
        for k in keys:
            s3.put_object(Bucket=creds["bucket"], Key=k, Body=body, ContentType="image/jpeg")
        bucket = creds["bucket"]
        created = [record("ObjectCreated:Put", bucket, k, len(body)) for k in keys]

        # The shared secret is the bearer: none, a wrong one, and a wrong scheme are refused.
        for what, tok in (("no secret", None), ("a wrong secret", SECRET[:-1] + "X")):
            status, err = call("POST", events_url, {"Records": created}, token=tok)
            check(status == 401 and err["error"]["code"] == "unauthorized",
                  "%s is refused with 401 (%s)" % (what, status))
        check(photos(server, token, keys[0]) == [], "nothing was registered by refused calls")

        # The S3 test event, sent when notifications are configured, is accepted and ignored.
        status, res = call("POST", events_url, {"Service": "Amazon S3", "Event": "s3:TestEvent",
                                                "Bucket": bucket}, token=SECRET)
        check(status == 200 and res["records"] == 0, "s3:TestEvent accepted (%s)" % status)

        # Created: registered for the identity whose prefix the key is under, then tagged.
        status, res = call("POST", events_url, {"Records": created}, token=SECRET)
        check(status == 200 and res["registered"] == 3 and res["skipped"] == [],
              "three ObjectCreated records register three photos (%s %s)" % (status, res))
        deadline = time.time() + 120
        tagged = []
        while time.time() < deadline:
            found = [photos(server, token, k) for k in keys]
            tagged = [p[0] for p in found if p and p[0]["state"] == "tagged"]
            if len(tagged) == 3:
                break
            time.sleep(0.2)
        check(len(tagged) == 3 and all(p["tags"] for p in tagged),
              "all three are tagged, keys with spaces, '+' and UTF-8 decoded right")
        check(all(p["sha256"] == tagged[0]["sha256"] and p["size"] == len(body) for p in tagged),
              "size and SHA-256 come from the stored object")

        # The same notification again (senders retry) changes nothing.
        status, res = call("POST", events_url, {"Records": created}, token=SECRET)
        check(status == 200 and res["registered"] == 0 and res["already_registered"] == 3,
              "a repeated notification registers nothing twice (%s)" % res)
        status, listing = call("GET", server.url + "/v1/photos", token=token)
        check(len(listing["photos"]) == 3, "the catalog holds three photos")

        # Records that can never apply are answered as skipped, with the reason.
        other = call("POST", server.url + "/v1/identities", {})[1]
        bad = [
            record("ObjectCreated:Put", "another-bucket", keys[0]),
            record("ObjectCreated:Put", bucket, "elsewhere/dog.jpg"),
            record("ObjectCreated:Put", bucket, "users/NoSuchIdentity0000/dog.jpg"),
            record("ObjectCreated:Put", bucket, "users/%s/never-uploaded.jpg"
                   % other["identity_id"]),
            record("ObjectRestore:Completed", bucket, keys[0]),
            {"eventName": "ObjectCreated:Put"},
        ]
        status, res = call("POST", events_url, {"Records": bad}, token=SECRET)
        reasons = [s["reason"] for s in res["skipped"]] if status == 200 else []
        print("# skipped: " + json.dumps(res.get("skipped") if status == 200 else res))
        check(status == 200 and res["registered"] == 0 and len(reasons) == len(bad),
              "every unusable record is skipped (%d of %d)" % (len(reasons), len(bad)))
        for want in ("another bucket", "not under users/<identity>/", "no such identity",
                     "no such object", "an event Magpie does not act on",
                     "not an S3 event record"):
            check(any(r.startswith(want) for r in reasons), "skipped because: " + want)

        # Malformed documents get a clear 400; too many records a 413.
        status, err = call("POST", events_url, raw=b"{not json", token=SECRET)
        check(status == 400, "malformed JSON is a 400 (%s)" % status)
        status, err = call("POST", events_url, {"Records": {"a": 1}}, token=SECRET)
        check(status == 400 and "array" in err["error"]["message"], "Records must be an array")
        status, err = call("POST", events_url, {"Hello": 1}, token=SECRET)
        check(status == 400, "a document without Records is a 400")
        status, err = call("POST", events_url,
                           {"Records": [{"eventName": "x"}] * 101}, token=SECRET)
        check(status == 413, "101 records in one request are refused (%s)" % status)

        # Removed: the object is gone from the store, the notification unregisters the photo.
        s3.delete_object(Bucket=bucket, Key=keys[1])
        removed = [record("ObjectRemoved:Delete", bucket, keys[1])]
        status, res = call("POST", events_url, {"Records": removed}, token=SECRET)
        check(status == 200 and res["deleted"] == 1, "ObjectRemoved unregisters (%s)" % res)
        check(photos(server, token, keys[1]) == [], "the removed photo is no longer listed")
        status, res = call("POST", events_url, {"Records": removed}, token=SECRET)
        check(status == 200 and res["deleted"] == 0 and
              res["skipped"][0]["reason"] == "not registered",
              "removing it again is skipped as not registered")
        check(len(photos(server, token, keys[0])) == 1, "the other photos stay")

        status, metrics = 0, ""
        with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
            metrics = r.read().decode()
        check('magpied_s3_events_total{result="registered"} 3' in metrics and
              'magpied_s3_events_total{result="deleted"} 1' in metrics,
              "/metrics counts the applied records")

        # Without --s3-events-secret the route is off.
        off = Server(os.environ["MAGPIED"], os.path.join(tmp, "off"))
        status, err = call("POST", off.url + "/v1/s3-events", {"Records": created}, token=SECRET)
        check(status == 404 and "--s3-events-secret" in err["error"]["message"],
              "a server without the secret has no S3 event route (%s)" % status)
    finally:
        for s in (server, off):
            if s is not None:
                s.stop()
                if failures:
                    print(s.log_tail())
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d failed" % len(failures))
    sys.exit(1 if failures else 0)


main()
