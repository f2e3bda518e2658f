#!/usr/bin/python3
# test-slow-clients.py - clients that stall do not stall anyone else, and are cut off
#
# Against one real magpied (--client-timeout 4):
#   - an SSE subscriber with a 4 KiB receive buffer that never reads,
#   - an S3 PutObject that sends 64 KiB of a 4 MiB body and then nothing,
#   - a connection that sends half a request line and nothing more,
# while other clients (credentials, PutObject + POST /v1/photos, a healthy SSE stream of the
# same identity) go on. Their latencies are measured against a baseline taken before the
# stalled clients arrived, the healthy stream must see every photo.created as it happens, the
# stalled subscriber must be dropped once it is SRV_SSE_BUFFER_MAX behind, and the stalled
# upload and request must be cut off after the timeout with no object stored and every file
# descriptor given back (/proc/PID/fd).
import concurrent.futures
import hashlib
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mp_magpied import Server  # noqa: E402
import mp_client as mc  # noqa: E402
from mp_client import check  # noqa: E402

mc.forget_aws_environment()
mc.need_botocore()

BUCKET = "magpie"
TIMEOUT_S = 4
SSE_BUFFER_MAX = 256 * 1024       # server/srv-events.h SRV_SSE_BUFFER_MAX
SLOWDOWN = float(os.environ.get("MAGPIE_TEST_SLOWDOWN", "1"))
# Long keys make long events: each photo's photo.created and photo.failed carry the key.
KEY_PAD = "k" * 880


class Load:
    """Photos registered by a few threads, each request timed."""

    def __init__(self, url, creds):
        self.url = url
        self.creds = creds
        self.n = 0
        self.lock = threading.Lock()
        self.keys = []

    def one(self):
        with self.lock:
            self.n += 1
            i = self.n
        body = b"not an image %d " % i + os.urandom(64)
        key = "%s%s/%06d-%s.bin" % (self.creds["prefix"], KEY_PAD, i,
                                    hashlib.sha256(body).hexdigest()[:16])
        t0 = time.monotonic()
        r = mc.s3(self.url, self.creds, "PUT", "/%s/%s" % (BUCKET, mc.quote_key(key)), body=body)
        t1 = time.monotonic()
        status, photo = mc.call("POST", self.url + "/v1/photos", {"key": key},
                                self.creds["session_token"])
        t2 = time.monotonic()
        status_c, _ = mc.call("POST", self.url + "/v1/credentials",
                              {"identity_id": self.creds["identity_id"],
                               "secret": self.creds["secret"]})
        t3 = time.monotonic()
        ok = r.status == 200 and status == 201 and status_c == 200
        with self.lock:
            self.keys.append((key, photo["id"] if ok else None))
        return ok, (t1 - t0, t2 - t1, t3 - t2)

    def run(self, count, threads=4, until=None):
        """Registers @count photos (or until @until() holds, checked between photos)."""
        lat = {"put": [], "register": [], "credentials": []}
        errors = 0
        done = 0
        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            pending = set()
            while done + len(pending) < count or pending:
                while len(pending) < threads and done + len(pending) < count and \
                        not (until and until()):
                    pending.add(pool.submit(self.one))
                if not pending:
                    break
                finished, pending = concurrent.futures.wait(
                    pending, return_when=concurrent.futures.FIRST_COMPLETED)
                for f in finished:
                    ok, (a, b, c) = f.result()
                    done += 1
                    errors += 0 if ok else 1
                    lat["put"].append(a)
                    lat["register"].append(b)
                    lat["credentials"].append(c)
        return lat, errors, done


def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(0.95 * len(xs)))] if xs else 0.0


def summary(name, lat):
    return "%s: %s" % (name, ", ".join("%s p50 %.0f ms p95 %.0f ms max %.0f ms" %
                                       (k, statistics.median(v) * 1e3, p95(v) * 1e3,
                                        max(v) * 1e3) for k, v in lat.items() if v))


def stalled_sse(url, token):
    sock = mc.connect_raw(url, rcvbuf=4096)
    host = url.split("://", 1)[1]
    sock.sendall(("GET /v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n"
                  "Accept: text/event-stream\r\n\r\n" % (host, token)).encode())
    return sock


def stalled_put(url, creds, key, size, sent):
    path = "/%s/%s" % (BUCKET, mc.quote_key(key))
    h = mc.sign(url, creds, "PUT", path, headers={"Content-Length": str(size)})
    sock = mc.connect_raw(url)
    head = "PUT %s HTTP/1.1\r\n" % path + "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    sock.sendall(head.encode() + os.urandom(sent))
    return sock


class Closed(threading.Thread):
    """Reads a socket until the server closes it, noting when, and everything it was sent."""

    def __init__(self, sock, since):
        super().__init__(daemon=True)
        self.sock = sock
        self.since = since
        self.after = None
        self.data = b""
        self.start()

    def run(self):
        try:
            while True:
                block = self.sock.recv(65536)
                if not block:
                    break
                self.data += block
        except OSError:
            pass
        self.after = time.monotonic() - self.since

    def wait(self, timeout):
        self.join(timeout)
        return self.after


def closed_by_server(sock, timeout):
    """Reads what the server sends until it closes; (closed, bytes read)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            block = sock.recv(1 << 20)
            if not block:
                return True, data
            data += block
    except ConnectionResetError:
        return True, data
    except socket.timeout:
        return False, data


def main():
    tmp = tempfile.mkdtemp(prefix="magpie-slow-")
    server = None
    ok = False
    socks = []
    try:
        server = Server(os.environ["MAGPIED"], tmp,
                        ["--client-timeout", str(TIMEOUT_S), "--workers", "1:2"])
        url = server.url
        pid = server.proc.pid
        me = mc.guest(url)
        load = Load(url, me)

        healthy = mc.EventStream(url, me["session_token"])
        healthy.start()
        time.sleep(0.3)
        # A first few photos wake everything up (the worker pool, the catalog's first pages,
        # connections); they took up to a second each and made the baseline's p95 a startup
        # figure, and the limits below too loose to catch a stall.
        load.run(8)
        time.sleep(0.5)
        fds_start = mc.open_fds(pid, True)
        base_lat, errors, n = load.run(60)
        check(errors == 0, "baseline: %d photos registered without errors" % n)
        print("# " + summary("baseline", base_lat))
        time.sleep(0.5)
        fds_before = mc.open_fds(pid, True)
        # Each PutObject above went over a kept-alive connection its client then closed;
        # libsoup 3.2 left every one of those in CLOSE-WAIT for good.
        check(fds_before <= fds_start + 1, "the %d kept-alive connections the clients closed are "
              "closed here too (sockets %d -> %d)" % (n, fds_start, fds_before))

        # The stalled clients arrive: an event stream nobody reads, an upload that stops, a
        # request line that never ends, a connection that never sends, and a kept-alive
        # connection that stays idle after its first answer.
        t_stall = time.monotonic()
        sse = stalled_sse(url, me["session_token"])
        put = stalled_put(url, me, me["prefix"] + "stalled.bin", 4 << 20, 64 << 10)
        half = mc.connect_raw(url)
        half.sendall(b"GET /healthz HT")
        idle = mc.connect_raw(url)
        kept = mc.connect_raw(url)
        kept.sendall(("GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n" %
                      url.split("://", 1)[1]).encode())
        socks += [sse, put, half, idle, kept]
        watched = {name: Closed(sock, t_stall) for name, sock in
                   [("put", put), ("half", half), ("idle", idle), ("kept", kept)]}
        time.sleep(0.3)
        fds_during = mc.open_fds(pid, True)
        check(fds_during >= fds_before + 5,
              "the stalled clients hold connections (sockets %d -> %d)" % (fds_before, fds_during))

        dropped0 = mc.metric(url, "magpied_sse_dropped_total")
        lat, errors, n = load.run(
            2000, until=lambda: mc.metric(url, "magpied_sse_dropped_total") > dropped0)
        print("# " + summary("with stalled clients", lat))
        dropped = mc.metric(url, "magpied_sse_dropped_total") - dropped0
        check(errors == 0, "%d photos registered beside the stalled clients, no errors" % n)
        check(dropped == 1, "the stalled SSE subscriber was dropped after %d photos "
              "(2 events each, about %.0f KiB)" % (n, n * 2 * (len(KEY_PAD) + 300) / 1024))
        for kind in base_lat:
            limit = max(4 * p95(base_lat[kind]), p95(base_lat[kind]) + 0.25 * SLOWDOWN)
            check(p95(lat[kind]) <= limit,
                  "%s p95 %.0f ms beside the stalled clients (baseline %.0f ms, limit %.0f ms)"
                  % (kind, p95(lat[kind]) * 1e3, p95(base_lat[kind]) * 1e3, limit * 1e3))

        # The healthy subscriber of the same identity saw every photo, promptly.
        want = {pid_ for _, pid_ in load.keys if pid_}
        seen = set()
        deadline = time.time() + 30
        while want - seen and time.time() < deadline:
            try:
                frame = healthy.events.get(timeout=1)
            except Exception:
                continue
            if frame.get("event") == "photo.created":
                seen.add(json.loads(frame["data"])["id"])
        check(not (want - seen), "the healthy SSE stream delivered photo.created for all %d "
              "photos (%d missing)" % (len(want), len(want - seen)))
        closed, got = closed_by_server(sse, 10)
        check(closed, "the stalled subscriber's connection was closed by the server (it had "
              "%d KiB waiting for it)" % (len(got) // 1024))

        # Each stalled connection was closed once it had been silent for the timeout.
        late = TIMEOUT_S + 2 * SLOWDOWN
        for name, what in [("put", "the stalled PutObject"),
                           ("half", "a request line that never ends"),
                           ("idle", "a connection that never sends"),
                           ("kept", "a kept-alive connection left idle")]:
            after = watched[name].wait(max(0.1, late - (time.monotonic() - t_stall)))
            check(after is not None and TIMEOUT_S - 0.5 <= after <= late,
                  "%s is closed %s s after it went silent (timeout %d s)"
                  % (what, "%.1f" % after if after is not None else "never", TIMEOUT_S))
        text = watched["put"].data.decode(errors="replace")
        check(text.startswith("HTTP/1.1 400") and "<Code>RequestTimeout</Code>" in text,
              "... the upload with 400 RequestTimeout: %r" % text.split("\r\n")[0])
        check(watched["half"].data == b"" and watched["idle"].data == b"",
              "... the unfinished request and the silent connection unanswered")
        check(watched["kept"].data.startswith(b"HTTP/1.1 200"),
              "... the kept-alive one after its answer")
        r = mc.s3(url, me, "HEAD", "/%s/%sstalled.bin" % (BUCKET, me["prefix"]))
        check(r.status == 404, "the stalled upload left no object (%s)" % r)
        for s in socks:
            s.close()
        socks = []
        time.sleep(0.5)
        fds_after = mc.open_fds(pid, True)
        check(fds_after <= fds_before, "every socket and spool file is given back (%d -> %d -> %d)"
              % (fds_before, fds_during, fds_after))
        spool = os.listdir(os.path.join(server.data_dir, "spool"))
        check(spool == [], "no spool files left: %s" % spool)
        status, _ = mc.call("GET", url + "/healthz")
        check(status == 200, "magpied still answers")
        healthy.close()
        ok = True
    finally:
        for s in socks:
            s.close()
        mc.stop(server, ok)
        shutil.rmtree(tmp, ignore_errors=True)
    mc.exit_status()


if __name__ == "__main__":
    main()
