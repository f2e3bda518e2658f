# mp_magpied.py - a real magpied for the Python integration tests: temp data dir, port 0
#
# The server is a direct child of the test, announces its URL in its first log line, and is
# stopped by PID (SIGTERM, then SIGKILL after 10 s) in stop(), which tests call in `finally`.
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request


class Server:
    def __init__(self, magpied, tmp, extra_args=(), timeout_s=30):
        self.data_dir = os.path.join(tmp, "data")
        self.log_path = os.path.join(tmp, "magpied.log")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([magpied, "--listen", "127.0.0.1:0", "--data-dir",
                                      self.data_dir, *extra_args],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.url = None
        deadline = time.time() + timeout_s
        while time.time() < deadline and self.url is None:
            if self.proc.poll() is not None:
                raise RuntimeError("magpied exited: " + open(self.log_path).read())
            for line in open(self.log_path):
                if "msg=listening" in line:
                    self.url = line.split(" url=")[1].split()[0]
            time.sleep(0.05)
        if self.url is None:
            self.stop()
            raise RuntimeError("magpied did not announce its URL")

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def log_tail(self, lines=40):
        return "".join(open(self.log_path).readlines()[-lines:])


def call(method, url, body=None, token=None, raw=None, timeout=60):
    """One REST call: (status, parsed JSON body or None). @body goes as JSON, @raw as is; an
    error status comes back like any other (its body as bytes when it is not JSON)."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text or b"null")
        except ValueError:
            return e.code, text
