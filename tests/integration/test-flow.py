#!/usr/bin/python3
# test-flow.py - the photo flow end to end, as the app drives it, against a real magpied
#
# identity → temporary credentials → PutObject (boto3, SigV4 with the session token) →
# POST /v1/photos → the photo.tagged event arrives on an SSE stream opened before the upload,
# carrying the tags the model gives for that image (checked against magpie-infer on the same
# file and model). Then the same bytes registered again change nothing, and a delete shows up
# as photo.deleted. The server is stopped by PID and the temp dir removed even on failure.
import hashlib
import json
import os
import queue
import shutil
import subprocess
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
    import boto3
    import botocore.config
except ImportError:
    skip("python3-boto3 is not installed (tools/deps.sh installs it)")

shared = os.environ.get("MAGPIE_SHARED_DATA")
source_root = os.environ["MAGPIE_SOURCE_ROOT"]
bundled = os.path.join(source_root, "data", "models", "photos.onnx")


def pick_model():
    """The bundled photo tagger, which the repository carries."""
    if not os.path.exists(bundled):
        raise RuntimeError("data/models/photos.onnx is missing from the checkout")
    return bundled


def pick_photo():
    candidate = os.path.join(shared or "", "photos", "golden_retriever_winml.jpg")
    if not os.path.isfile(candidate):
        skip("no test photo: ../shared/data/photos is not beside the checkout")
    return candidate


class EventStream(threading.Thread):
    """A minimal EventSource: parses id/event/data frames into a queue."""

    def __init__(self, url, token):
        super().__init__(daemon=True)
        self.events = queue.Queue()
        req = urllib.request.Request(url + "/v1/events",
                                     headers={"Authorization": "Bearer " + token,
                                              "Accept": "text/event-stream"})
        self.resp = urllib.request.urlopen(req, timeout=60)
        self.content_type = self.resp.headers.get("Content-Type", "")

    def run(self):
        frame = {}
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if "data" in frame:
                        self.events.put(frame)
                    frame = {}
                elif line.startswith(":"):
                    continue
                else:
                    field, _, value = line.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    frame[field] = frame.get(field, "") + value if field == "data" else value
        except Exception:  # the stream is closed when the test ends
            pass

    def wait_for(self, event_type, photo_id, timeout):
        deadline = time.time() + timeout
        seen = []
        while time.time() < deadline:
            try:
                frame = self.events.get(timeout=max(0.05, deadline - time.time()))
            except queue.Empty:
                break
            seen.append(frame)
            data = json.loads(frame["data"])
            if frame.get("event") == event_type and data.get("id") == photo_id:
                return frame, data, seen
        return None, None, seen


def main():
    tmp = tempfile.mkdtemp(prefix="magpie-flow-")
    server = None
    try:
        model = pick_model()
        photo = pick_photo()
        server = Server(os.environ["MAGPIED"], tmp,
                        ["--photo-model", model, "--tag-min-confidence", "0.01"])

        status, ident = call("POST", server.url + "/v1/identities", {})
        check(status == 201, "guest identity created")
        status, creds = call("POST", server.url + "/v1/credentials",
                             {"identity_id": ident["identity_id"], "secret": ident["secret"]})
        check(status == 200 and creds["prefix"] == "users/%s/" % ident["identity_id"],
              "temporary credentials scoped to the identity's prefix")

        events = EventStream(server.url, creds["session_token"])
        check(events.content_type.startswith("text/event-stream"), "SSE stream opened")
        events.start()

        body = open(photo, "rb").read()
        sha = hashlib.sha256(body).hexdigest()
        key = creds["prefix"] + sha + ".jpg"
        s3 = boto3.client("s3", endpoint_url=creds["endpoint"], region_name=creds["region"],
                          aws_access_key_id=creds["access_key_id"],
                          aws_secret_access_key=creds["secret_access_key"],
                          aws_session_token=creds["session_token"],
                          config=botocore.config.Config(signature_version="s3v4",
                                                        s3={"addressing_style": "path"}))
        s3.put_object(Bucket=creds["bucket"], Key=key, Body=body, ContentType="image/jpeg")

        status, registered = call("POST", server.url + "/v1/photos", {"key": key},
                                  creds["session_token"])
        check(status == 201, "photo registered (201)")
        check(registered["sha256"] == sha and registered["size"] == len(body),
              "catalog has the object's size and SHA-256")

        started = time.time()
        frame, tagged, seen = events.wait_for("photo.tagged", registered["id"], 60)
        check(tagged is not None,
              "photo.tagged arrived on the SSE stream (%.1f s; saw %s)"
              % (time.time() - started, [f.get("event") for f in seen]))
        check(any(f.get("event") == "photo.created" for f in seen),
              "photo.created came first")
        if tagged is None:
            return

        expected = json.loads(subprocess.run(
            [os.environ["MAGPIE_INFER"], "--model", model, "--top", "5", photo],
            check=True, capture_output=True, text=True).stdout.splitlines()[0])["top"]
        got = tagged["tags"]
        print("# server tags: %s" % [(t["label"], round(t["confidence"], 4)) for t in got])
        print("# magpie-infer: %s" % [(t["label"], round(t["confidence"], 4))
                                      for t in expected])
        check(len(got) > 0 and got[0]["label"] == expected[0]["label"],
              "top tag is the model's top class (%s)" % expected[0]["label"])
        by_label = {t["label"]: t["confidence"] for t in expected}
        check(all(t["label"] in by_label and abs(t["confidence"] - by_label[t["label"]]) < 0.05
                  for t in got),
              "every tag is one of the model's top 5 with its confidence (±0.05)")
        check(tagged["state"] == "tagged" and tagged["model"], "photo state tagged, model named")
        check(int(frame["id"]) > 0, "event carries an id")

        status, again = call("POST", server.url + "/v1/photos", {"key": key},
                             creds["session_token"])
        check(status == 200 and again["id"] == registered["id"] and again["tags"] == got,
              "registering the same key again returns the tagged photo (200)")

        status, listing = call("GET", server.url + "/v1/photos?tag=" +
                               urllib.request.quote(got[0]["label"]), None,
                               creds["session_token"])
        check(status == 200 and [p["id"] for p in listing["photos"]] == [registered["id"]],
              "search by the top tag finds the photo")

        status, _ = call("DELETE", server.url + "/v1/photos/" + registered["id"], None,
                         creds["session_token"])
        check(status == 204, "photo deleted (204)")
        _, deleted, _ = events.wait_for("photo.deleted", registered["id"], 10)
        check(deleted is not None, "photo.deleted arrived on the SSE stream")
        objects = s3.list_objects_v2(Bucket=creds["bucket"], Prefix=creds["prefix"])
        check(objects.get("KeyCount", 0) == 0, "the object is gone from the store")
    finally:
        if server is not None:
            server.stop()
            if failures:
                sys.stdout.write(open(server.log_path).read()[-4000:])
        shutil.rmtree(tmp, ignore_errors=True)


main()
print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
