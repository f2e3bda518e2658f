# mp_client.py - what the Python integration tests need to talk to magpied as its clients do
#
# JSON over HTTP with a bearer token, SigV4-signed S3 requests sent raw (so a test sees every
# status and error code, and can sign with whatever secret it likes), a minimal EventSource
# for GET /v1/events, and the end of a test (stop the server, exit 1 if a check failed); the
# checks themselves are mp_check's, re-exported here.
import json
import os
import queue
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import http.client

from mp_check import check, failures, forget_aws_environment, skip  # noqa: F401 (re-exported)


def stop(server, ok, lines=60):
    """Stops @server (a mp_magpied.Server, or None) and shows its log when the test failed."""
    if server is None:
        return
    server.stop()
    if failures or not ok:
        sys.stdout.write("--- magpied log (tail)\n" + server.log_tail(lines))


def exit_status():
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)


def need_botocore():
    import importlib.util

    if importlib.util.find_spec("botocore") is None:
        skip("python3-botocore is not installed (tools/deps.sh installs it)")


def call(method, url, body=None, token=None, headers=None, timeout=30):
    """(status, parsed JSON or None). @body: a dict sent as JSON, or bytes sent as they are."""
    h = {"Content-Type": "application/json"}
    if token:
        h["Authorization"] = "Bearer " + token
    h.update(headers or {})
    if isinstance(body, (bytes, bytearray)):
        data = bytes(body)
    else:
        data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw and r.headers.get_content_type() ==
                              "application/json" else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw) if raw else None
        except ValueError:
            return e.code, None


def guest(url):
    """A new guest identity and its temporary credentials, as the app gets them."""
    status, ident = call("POST", url + "/v1/identities", {})
    if status != 201:
        raise RuntimeError("POST /v1/identities: %s %s" % (status, ident))
    status, creds = call("POST", url + "/v1/credentials",
                         {"identity_id": ident["identity_id"], "secret": ident["secret"]})
    if status != 200:
        raise RuntimeError("POST /v1/credentials: %s %s" % (status, creds))
    creds["secret"] = ident["secret"]
    return creds


# ---- S3 over raw HTTP ------------------------------------------------------------------------

def host_port(url):
    host, port = url.split("://", 1)[1].split("/")[0].rsplit(":", 1)
    return host, int(port)


def sign(url, creds, method, path, query="", body=b"", headers=None, region="us-east-1"):
    """Headers for an S3 request signed by botocore with @creds (access_key_id,
    secret_access_key, optional session_token); None for an anonymous request."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    h = dict(headers or {})
    h.setdefault("Host", url.split("://", 1)[1].split("/")[0])
    if creds is None:
        return h
    full = url + path + ("?" + query if query else "")
    req = AWSRequest(method=method, url=full, data=body, headers=h)
    S3SigV4Auth(Credentials(creds["access_key_id"], creds["secret_access_key"],
                            creds.get("session_token")), "s3", region).add_auth(req)
    return dict(req.headers.items())


def presign(url, creds, method, path, expires=300, region="us-east-1"):
    """A presigned URL (SigV4 query form) for @path."""
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    req = AWSRequest(method=method, url=url + path)
    S3SigV4QueryAuth(Credentials(creds["access_key_id"], creds["secret_access_key"],
                                 creds.get("session_token")), "s3", region,
                     expires=expires).add_auth(req)
    return req.url


class S3Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def code(self):
        """The S3 error code of an error document, or None."""
        text = self.body.decode(errors="replace")
        if "<Code>" in text:
            return text.split("<Code>", 1)[1].split("</Code>", 1)[0]
        return None

    def __repr__(self):
        return "%d %s" % (self.status, self.code or "")


def s3(url, creds, method, path, query="", body=b"", headers=None, timeout=30):
    """Sends one signed (or, with @creds None, anonymous) S3 request; returns an S3Reply."""
    h = sign(url, creds, method, path, query, body, headers)
    return raw_request(url, method, path + ("?" + query if query else ""), body, h, timeout)


def raw_request(url, method, target, body=b"", headers=None, timeout=30):
    host, port = host_port(url)
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request(method, target, body=body if body else None, headers=headers or {})
        r = c.getresponse()
        return S3Reply(r.status, dict(r.getheaders()), r.read())
    finally:
        c.close()


def quote_key(key):
    return urllib.parse.quote(key, safe="/~")


# ---- Server-Sent Events ----------------------------------------------------------------------

class EventStream(threading.Thread):
    """A minimal EventSource: parses id/event/data frames into a queue. @last_event_id asks
    for a replay of everything after that id."""

    def __init__(self, url, token, last_event_id=None, timeout=60):
        super().__init__(daemon=True)
        self.events = queue.Queue()
        self.closed = threading.Event()
        headers = {"Authorization": "Bearer " + token, "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        host, port = host_port(url)
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self.conn.request("GET", "/v1/events", headers=headers)
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise urllib.error.HTTPError(url + "/v1/events", self.resp.status, self.resp.reason,
                                         self.resp.headers, self.resp)
        self.content_type = self.resp.headers.get("Content-Type", "")

    def run(self):
        frame = {}
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\r\n")
                if line == "":
                    if "data" in frame:
                        frame["t"] = time.monotonic()
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
        self.closed.set()

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

    def drain(self, quiet_s=1.0, timeout=30):
        """Every frame that arrives until none has come for @quiet_s."""
        frames = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                frames.append(self.events.get(timeout=quiet_s))
            except queue.Empty:
                break
        return frames

    def close(self):
        """Ends the stream at once: the reader thread may sit in recv() until the next
        keep-alive comment, and closing the response alone would wait for it."""
        try:
            if self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.conn.close()


def open_fds(pid, connections_only=False):
    """Descriptors @pid holds; with @connections_only just its sockets and spool files, which
    is what a client can make it hold (SQLite pools and worker threads open files of their
    own as load grows)."""
    d = "/proc/%d/fd" % pid
    if not connections_only:
        return len(os.listdir(d))
    n = 0
    for fd in os.listdir(d):
        try:
            target = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        n += target.startswith("socket:") or "/spool/" in target
    return n


def metric(url, name_and_labels):
    """The value of one /metrics series, or 0 when it is not there yet."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name_and_labels + " "):
                return float(line.split()[-1])
    return 0.0


def png(width, height, seed):
    """A small RGB PNG whose pixels depend on @seed, so every seed gives other bytes."""
    import struct
    import zlib

    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            v = (x * 7 + y * 13 + seed * 31) & 0xFF
            rows += bytes([v, (v + seed) & 0xFF, (x * y + seed) & 0xFF])

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(bytes(rows), 6)) + chunk(b"IEND", b""))


def connect_raw(url, rcvbuf=None):
    host, port = host_port(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect((host, port))
    return sock
