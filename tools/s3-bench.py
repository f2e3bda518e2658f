#!/usr/bin/python3
# s3-bench.py - PutObject throughput of magpied's embedded S3 endpoint, driven by boto3
#
# usage: tools/s3-bench.py [--magpied build/server/magpied] [--sizes 200K,20M]
#                          [--seconds 10] [--concurrency 4]
# Starts a magpied on a temp data dir (or uses --url), gets temporary credentials from
# /v1/identities + /v1/credentials, then for each size PUTs distinct keys from N threads for
# the given time (after a warm-up) with SigV4 signed payloads (x-amz-content-sha256, checked by
# the server while it spools). Prints one Markdown row per size: MB/s, objects/s, latency.
import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

for name in [k for k in os.environ if k.startswith("AWS_")]:
    del os.environ[name]

import boto3  # noqa: E402
import botocore.config  # noqa: E402


def parse_size(text):
    mult = {"K": 1024, "M": 1024 * 1024, "G": 1024 ** 3}
    return int(text[:-1]) * mult[text[-1].upper()] if text[-1].upper() in mult else int(text)


def post_json(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def start_server(magpied, tmp):
    log_path = os.path.join(tmp, "magpied.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([magpied, "--listen", "127.0.0.1:0", "--data-dir",
                             os.path.join(tmp, "data")], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline:
        for line in open(log_path):
            if "msg=listening" in line:
                return proc, line.split(" url=")[1].split()[0]
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("magpied did not start: " + open(log_path).read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--magpied", default="build/server/magpied")
    ap.add_argument("--url")
    ap.add_argument("--sizes", default="200K,20M")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="magpie-s3-bench-")
    proc = None
    try:
        url = args.url
        if url is None:
            proc, url = start_server(args.magpied, tmp)
        ident = post_json(url + "/v1/identities", {})
        creds = post_json(url + "/v1/credentials",
                          {"identity_id": ident["identity_id"], "secret": ident["secret"]})
        cfg = botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                     retries={"max_attempts": 1},
                                     max_pool_connections=args.concurrency)
        s3 = boto3.client("s3", endpoint_url=url, region_name=creds["region"],
                          aws_access_key_id=creds["access_key_id"],
                          aws_secret_access_key=creds["secret_access_key"],
                          aws_session_token=creds["session_token"], config=cfg)
        print("| object size | concurrency | objects | seconds | MB/s | objects/s | p50 ms | p99 ms |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size_text in args.sizes.split(","):
            size = parse_size(size_text)
            body = os.urandom(size)
            lock = threading.Lock()
            latencies = []
            counter = [0]

            def put(deadline):
                while time.time() < deadline:
                    with lock:
                        counter[0] += 1
                        n = counter[0]
                    t0 = time.perf_counter()
                    s3.put_object(Bucket=creds["bucket"], Body=body,
                                  Key="%sbench/%s/%08d" % (creds["prefix"], size_text, n))
                    with lock:
                        latencies.append(time.perf_counter() - t0)

            # Warm-up: connections open, first files and index pages exist.
            with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(put, [time.time() + 1.0] * args.concurrency))
            latencies.clear()
            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(put, [time.time() + args.seconds] * args.concurrency))
            elapsed = time.perf_counter() - t0
            latencies.sort()
            n = len(latencies)
            print("| %s | %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f |" % (
                size_text, args.concurrency, n, elapsed, n * size / elapsed / 1e6, n / elapsed,
                latencies[n // 2] * 1e3, latencies[min(n - 1, int(n * 0.99))] * 1e3), flush=True)
    finally:
        if proc is not None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
