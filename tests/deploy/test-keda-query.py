#!/usr/bin/python3
# test-keda-query.py - the KEDA ScaledObject's PostgreSQL query counts the work magpied sees
#
# Runs under tests/with-postgres.sh (MAGPIE_TEST_DB). A magpied api node (it tags nothing)
# migrates a fresh database; photos are uploaded with temporary credentials and registered, so
# their jobs wait. The query in deploy/k8s/keda.yaml, run with psql as KEDA would run it, must
# return the number of waiting jobs and agree with magpied_queue_depth + magpied_queue_leased on
# /metrics; after a worker node has tagged them it must return 0.
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

source_root = os.environ["MAGPIE_SOURCE_ROOT"]
sys.path.insert(0, os.path.join(source_root, "tests", "integration"))
from mp_check import check, failures, forget_aws_environment, skip  # noqa: E402
from mp_magpied import Server, call  # noqa: E402

forget_aws_environment()
try:
    import boto3
    import botocore.config
    import yaml
except ImportError:
    skip("python3-boto3 or python3-yaml is not installed (tools/deps.sh installs them)")

admin = os.environ.get("MAGPIE_TEST_DB")
if not admin:
    skip("MAGPIE_TEST_DB is not set: run under tests/with-postgres.sh")
shared = os.environ.get("MAGPIE_SHARED_DATA", "")
N = 4


def psql(uri, sql):
    out = subprocess.run(["psql", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", uri, "-c", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def metric(url, name):
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        m = re.search(r"^%s (\S+)$" % name, r.read().decode(), re.M)
    return float(m.group(1)) if m else None


def main():
    photo = os.path.join(shared, "photos", "golden_retriever_winml.jpg")
    if not os.path.isfile(photo):
        skip("no test photo: ../shared/data/photos is not beside the checkout")
    scaled = [d for d in yaml.safe_load_all(open(os.path.join(source_root, "deploy", "k8s",
                                                              "keda.yaml")))
              if d and d.get("kind") == "ScaledObject"][0]
    trigger = [t for t in scaled["spec"]["triggers"] if t["type"] == "postgresql"][0]
    query = trigger["metadata"]["query"]
    print("# KEDA query: " + query)

    name = "keda_%d" % os.getpid()
    psql(admin, "CREATE DATABASE %s" % name)
    parts = urllib.parse.urlsplit(admin)
    db = urllib.parse.urlunsplit(parts._replace(path="/" + name))
    tmp = tempfile.mkdtemp(prefix="magpie-keda-")
    api = worker = None
    try:
        os.makedirs(os.path.join(tmp, "api"))
        os.makedirs(os.path.join(tmp, "worker"))
        api = Server(os.environ["MAGPIED"], os.path.join(tmp, "api"),
                     ["--role=api", "--database", db])
        check(psql(db, query) == "0", "the query runs on the migrated catalog: 0 jobs")

        _, ident = call("POST", api.url + "/v1/identities", {})
        _, creds = call("POST", api.url + "/v1/credentials",
                        {"identity_id": ident["identity_id"], "secret": ident["secret"]})
        s3 = boto3.client("s3", endpoint_url=creds["endpoint"], region_name=creds["region"],
                          aws_access_key_id=creds["access_key_id"],
                          aws_secret_access_key=creds["secret_access_key"],
                          aws_session_token=creds["session_token"],
                          config=botocore.config.Config(signature_version="s3v4",
                                                        s3={"addressing_style": "path"}))
        body = open(photo, "rb").read()
        for i in range(N):
            key = "%sdog-%d.jpg" % (creds["prefix"], i)
            s3.put_object(Bucket=creds["bucket"], Key=key, Body=body + b"\0" * i,
                          ContentType="image/jpeg")
            status, _ = call("POST", api.url + "/v1/photos", {"key": key},
                             token=creds["api_token"])
            check(status == 201, "photo %d registered" % i)

        counted = int(psql(db, query))
        exported = (metric(api.url, "magpied_queue_depth") or 0) + \
            (metric(api.url, "magpied_queue_leased") or 0)
        check(counted == N, "the query counts the %d waiting jobs (%d)" % (N, counted))
        check(counted == exported, "it agrees with /metrics: depth + leased = %g" % exported)

        # A worker node on the same catalog and data dir drains the queue; the count follows.
        worker = Server(os.environ["MAGPIED"], os.path.join(tmp, "worker"),
                        ["--role=worker", "--database", db, "--data-dir", api.data_dir])
        deadline = time.time() + 180
        while time.time() < deadline and psql(db, query) != "0":
            time.sleep(0.2)
        check(psql(db, query) == "0", "after the worker tagged them the query says 0")
        check(psql(db, "SELECT COUNT(*) FROM jobs WHERE state = 'done'") == str(N),
              "all %d jobs are done" % N)
    finally:
        for s in (worker, api):
            if s is not None:
                s.stop()
                if failures:
                    print(s.log_tail())
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            psql(admin, "DROP DATABASE IF EXISTS %s" % name)
        except subprocess.CalledProcessError:
            pass
    print("%d failed" % len(failures))
    sys.exit(1 if failures else 0)


main()
