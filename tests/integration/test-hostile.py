#!/usr/bin/python3
# test-hostile.py - hostile files against a real magpied and against magpie-infer
#
# Truncated JPEG and PNG, zero bytes, a text file called .jpg, a PNG called .jpg, a PNG whose
# header declares 100000x100000 pixels, and a gzip bomb (1 GiB of zeros in 1 MB). Each goes to
# POST /v1/predict/digit, to S3 PutObject followed by POST /v1/photos and the worker's tagging,
# and to magpie-infer; the bomb also goes to a JSON endpoint with Content-Encoding: gzip. Each
# must be refused quickly with a reason a person can act on (the PNG called .jpg is a PNG: the
# content decides, and it is accepted), and magpied's peak RSS (VmHWM) must stay put.
# Prints a table: case, target, status, time, RSS growth.
import gzip
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mp_check import check, failures, forget_aws_environment, skip  # noqa: E402
from mp_magpied import Server  # noqa: E402

SLOWDOWN = max(float(os.environ.get("MAGPIE_TEST_SLOWDOWN", "1")), 1.0)
# A refusal answers within this; tagging a bad upload fails within TAG_S of its registration.
REFUSE_S = 2.0 * SLOWDOWN
TAG_S = 10.0 * SLOWDOWN
INFER_S = 10.0 * SLOWDOWN
# magpied's peak RSS may grow this much over all the hostile cases (after the warm-up loaded
# both models); one decode of the 100000x100000 PNG would be 30 GB.
HWM_GROWTH_KB = 64 * 1024
INFER_RSS_KB = 200 * 1024


forget_aws_environment()
try:
    import boto3
    import botocore.config
    from PIL import Image, ImageDraw
except ImportError as e:
    skip("%s is not installed (tools/deps.sh installs python3-boto3, python3-pil)" % e.name)

source_root = os.environ["MAGPIE_SOURCE_ROOT"]
photo_model = os.path.join(source_root, "data", "models", "photos.onnx")


# ---- the files ------------------------------------------------------------------------------

def picture(w, h):
    """A photo-like picture: gradients and shapes, which compress as photos do."""
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            px[x, y] = ((x * 255) // w, (y * 255) // h, ((x ^ y) * 7) & 255)
    d = ImageDraw.Draw(im)
    d.ellipse((w // 4, h // 4, w * 3 // 4, h * 3 // 4), fill=(200, 40, 40))
    return im


def encoded(im, fmt):
    b = io.BytesIO()
    im.save(b, fmt, quality=90) if fmt == "JPEG" else im.save(b, fmt)
    return b.getvalue()


def png_chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data +
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def huge_png():
    """A valid PNG header declaring 100000x100000 RGB pixels (30 GB decoded), 370 bytes."""
    ihdr = struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) +
            png_chunk(b"IDAT", zlib.compress(b"\0" * 300001)) + png_chunk(b"IEND", b""))


def gzip_bomb(inflated=1 << 30):
    """A gzip body that inflates to @inflated zero bytes: 1 MiB members, concatenated (RFC 1952
    allows several members; gzip -d and every inflater read them all)."""
    member = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    return member * (inflated >> 20)


def digit_png():
    im = Image.new("L", (64, 64), 0)
    ImageDraw.Draw(im).line((32, 8, 32, 56), fill=255, width=6)
    return encoded(im, "PNG")


# ---- HTTP -----------------------------------------------------------------------------------

def http(method, url, body=None, headers=None, token=None):
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            raw = r.read()
            return r.status, raw
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def http_json(method, url, obj=None, token=None):
    status, raw = http(method, url, json.dumps(obj).encode() if obj is not None else None,
                       {"Content-Type": "application/json"}, token)
    return status, (json.loads(raw) if raw else None)


def error_message(raw):
    try:
        return json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return raw.decode(errors="replace")[:200]


def vm_hwm_kb(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM for %d" % pid)


# ---- the test -------------------------------------------------------------------------------

rows = []


def record(case, target, status, seconds, rss_kb, note):
    rows.append((case, target, str(status), "%.3f s" % seconds, "%+d kB" % rss_kb, note))


def run_measured(argv, tmp):
    """Runs @argv; returns its exit code, stdout, stderr and peak RSS in kB (its own, from
    wait4, not the maximum over every child this test ran)."""
    with open(os.path.join(tmp, "out"), "w+") as out, open(os.path.join(tmp, "err"), "w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), usage.ru_maxrss


def wait_photo(url, token, photo_id, timeout):
    deadline = time.time() + timeout
    photo = None
    while time.time() < deadline:
        status, photo = http_json("GET", url + "/v1/photos/" + photo_id, token=token)
        if status == 200 and photo["state"] in ("tagged", "failed"):
            return photo
        time.sleep(0.02)
    return photo


def main():
    magpie_infer = os.environ["MAGPIE_INFER"]
    if not os.path.exists(photo_model):
        raise RuntimeError("data/models/photos.onnx is missing from the checkout")
    tmp = tempfile.mkdtemp(prefix="magpie-hostile-")
    server = None
    try:
        server = Server(os.environ["MAGPIED"], tmp, ["--photo-model", photo_model])
        url = server.url
        pid = server.proc.pid
        status, ident = http_json("POST", url + "/v1/identities", {})
        check(status == 201, "guest identity")
        status, creds = http_json("POST", url + "/v1/credentials",
                                  {"identity_id": ident["identity_id"], "secret": ident["secret"]})
        check(status == 200, "temporary credentials")
        token = creds["session_token"]
        s3 = boto3.client("s3", endpoint_url=creds["endpoint"], region_name=creds["region"],
                          aws_access_key_id=creds["access_key_id"],
                          aws_secret_access_key=creds["secret_access_key"],
                          aws_session_token=token,
                          config=botocore.config.Config(signature_version="s3v4",
                                                        s3={"addressing_style": "path"},
                                                        retries={"max_attempts": 1}))

        pic = picture(640, 480)
        jpeg = encoded(pic, "JPEG")
        png = encoded(pic, "PNG")
        bomb = gzip_bomb()
        cases = [
            # name, file name, bytes, content type, content encoding, accepted?, reason words
            ("truncated JPEG", "truncated.jpg", jpeg[: len(jpeg) * 6 // 10], "image/jpeg",
             None, False, ["truncated"]),
            ("truncated PNG", "truncated.png", png[: len(png) // 2], "image/png", None, False,
             ["truncated"]),
            ("zero bytes", "empty.jpg", b"", "image/jpeg", None, False, ["empty", "image bytes"]),
            ("text called .jpg", "letter.jpg", b"Dear reader, this is not a photo.\n" * 30,
             "image/jpeg", None, False, ["not an image"]),
            ("PNG called .jpg", "png-inside.jpg", png, "image/jpeg", None, True, []),
            ("PNG of 100000x100000", "huge.png", huge_png(), "image/png", None, False,
             ["100000x100000"]),
            ("gzip bomb (1 GiB in %d kB)" % (len(bomb) // 1024), "bomb.png", bomb, "image/png",
             "gzip", False, ["Content-Encoding", "not an image"]),
        ]

        # Warm-up, so that loading the models is not charged to the first hostile file, and a
        # proof that good files pass the very paths the bad ones are refused on.
        status, raw = http("POST", url + "/v1/predict/digit", digit_png(),
                           {"Content-Type": "image/png"}, token)
        check(status == 200 and "digit" in json.loads(raw), "a drawn digit is predicted (200)")
        key = creds["prefix"] + "good.jpg"
        s3.put_object(Bucket=creds["bucket"], Key=key, Body=jpeg, ContentType="image/jpeg")
        status, photo = http_json("POST", url + "/v1/photos", {"key": key}, token)
        photo = wait_photo(url, token, photo["id"], TAG_S)
        check(photo is not None and photo["state"] == "tagged", "a good photo is tagged")
        hwm_start = vm_hwm_kb(pid)

        for name, filename, data, ctype, coding, accepted, words in cases:
            headers = {"Content-Type": ctype}
            if coding:
                headers["Content-Encoding"] = coding

            # 1. POST /v1/predict/digit
            before = vm_hwm_kb(pid)
            t0 = time.time()
            status, raw = http("POST", url + "/v1/predict/digit", data, headers, token)
            dt = time.time() - t0
            msg = "" if status == 200 else error_message(raw)
            record(name, "POST /v1/predict/digit", status, dt, vm_hwm_kb(pid) - before, msg)
            if accepted:
                check(status == 200, "%s: predicted (200)" % name)
            else:
                check(status in (400, 413, 415, 422) and
                      any(w.lower() in msg.lower() for w in words),
                      "%s: predict refused with a reason (%d: %s)" % (name, status, msg))
            check(dt < REFUSE_S, "%s: predict answered in %.3f s" % (name, dt))

            # 2. S3 PutObject: the store keeps bytes as they are (S3 semantics; Content-Encoding
            # is metadata), so every one of these is stored, and nothing is inflated.
            key = creds["prefix"] + filename
            before = vm_hwm_kb(pid)
            t0 = time.time()
            extra = {"ContentEncoding": coding} if coding else {}
            try:
                s3.put_object(Bucket=creds["bucket"], Key=key, Body=data, ContentType=ctype,
                              **extra)
                status = 200
            except botocore.exceptions.ClientError as e:
                status = e.response["ResponseMetadata"]["HTTPStatusCode"]
            dt = time.time() - t0
            record(name, "S3 PutObject", status, dt, vm_hwm_kb(pid) - before,
                   "stored as sent (%d bytes)" % len(data))
            check(status == 200, "%s: S3 PutObject stores the bytes as sent" % name)
            check(dt < REFUSE_S, "%s: PutObject answered in %.3f s" % (name, dt))

            # 3. POST /v1/photos, then the worker's decode and tagging
            before = vm_hwm_kb(pid)
            t0 = time.time()
            status, photo = http_json("POST", url + "/v1/photos", {"key": key}, token)
            check(status == 201, "%s: registered (%d)" % (name, status))
            if status == 201:
                photo = wait_photo(url, token, photo["id"], TAG_S)
            dt = time.time() - t0
            state = photo["state"] if photo else "?"
            msg = (photo or {}).get("error") or ""
            record(name, "register + tag", state, dt, vm_hwm_kb(pid) - before,
                   msg or ", ".join(t["label"] for t in (photo or {}).get("tags", [])))
            if accepted:
                check(state == "tagged", "%s: tagged by its content" % name)
            else:
                check(state == "failed" and any(w.lower() in msg.lower() for w in words),
                      "%s: tagging failed with a reason (%s: %s)" % (name, state, msg))
            check(dt < TAG_S, "%s: registered and settled in %.3f s" % (name, dt))

            # 4. magpie-infer on the same bytes under the same name
            path = os.path.join(tmp, filename)
            with open(path, "wb") as f:
                f.write(data)
            t0 = time.time()
            code, out, err, rss = run_measured([magpie_infer, "--model", photo_model,
                                                "--threads", "1", path], tmp)
            dt = time.time() - t0
            msg = err.strip()
            rows.append((name, "magpie-infer", "exit %d" % code, "%.3f s" % dt,
                         "%d kB peak" % rss, msg or out[:60]))
            if accepted:
                check(code == 0, "%s: magpie-infer classifies it" % name)
            else:
                check(code == 2 and msg.startswith("magpie-infer: " + path) and
                      any(w.lower() in msg.lower() for w in words + ["not an image"]),
                      "%s: magpie-infer refuses it with a reason (%s)" % (name, msg))
            check(dt < INFER_S, "%s: magpie-infer done in %.3f s" % (name, dt))

        # The bomb to a JSON endpoint too: refused before anything is inflated.
        before = vm_hwm_kb(pid)
        t0 = time.time()
        status, raw = http("POST", url + "/v1/credentials", bomb,
                           {"Content-Type": "application/json", "Content-Encoding": "gzip"})
        dt = time.time() - t0
        msg = error_message(raw)
        record(cases[-1][0], "POST /v1/credentials", status, dt, vm_hwm_kb(pid) - before, msg)
        check(status == 415 and "Content-Encoding" in msg,
              "gzip bomb: JSON endpoint refuses the coding (%d: %s)" % (status, msg))
        check(dt < REFUSE_S, "gzip bomb: JSON endpoint answered in %.3f s" % dt)

        growth = vm_hwm_kb(pid) - hwm_start
        check(growth < HWM_GROWTH_KB,
              "magpied's peak RSS grew %d kB over all hostile files (bound %d kB)"
              % (growth, HWM_GROWTH_KB))
        check(all(int(r[4].split()[0]) < INFER_RSS_KB for r in rows if r[1] == "magpie-infer"),
              "magpie-infer peaked under %d kB on every file" % INFER_RSS_KB)
        status, _ = http("GET", url + "/healthz")
        check(status == 200, "magpied still healthy")

        widths = [max(len(r[i]) for r in rows + [("case", "target", "status", "time",
                                                   "RSS", "answer")]) for i in range(5)]
        print("# %-*s | %-*s | %-*s | %*s | %*s | %s" % (
            widths[0], "case", widths[1], "target", widths[2], "status", widths[3], "time",
            widths[4], "RSS", "answer"))
        for r in rows:
            print("# %-*s | %-*s | %-*s | %*s | %*s | %s" % (
                widths[0], r[0], widths[1], r[1], widths[2], r[2], widths[3], r[3],
                widths[4], r[4], r[5][:110]))
        print("# magpied VmHWM %d kB at the start of the hostile files, %d kB at the end"
              % (hwm_start, vm_hwm_kb(pid)))
    finally:
        if server is not None:
            server.stop()
            if failures:
                print("# magpied log tail:\n" + server.log_tail())
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("FAILED: %d checks" % len(failures))
        sys.exit(1)


main()
