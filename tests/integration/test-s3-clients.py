#!/usr/bin/python3
# test-s3-clients.py - the embedded S3 endpoint against real S3 clients on loopback
#
# Starts its own magpied (temp data dir, port 0), gets temporary credentials for two
# identities, and drives /usr/bin/aws, boto3, rclone and s3cmd through upload, list, download
# and delete; every client must then be refused (403) on the other identity's prefix, with an
# expired token and with a tampered one. The server is stopped by PID and the temp dir removed
# even when a check fails. Exit 77 (skip) when a client is not installed.
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mp_check import check, failures, forget_aws_environment, skip  # noqa: E402
from mp_magpied import Server  # noqa: E402

BUCKET = "magpie"
ADMIN = {"access_key_id": "MAGPIEOPERATOR000001",
         "secret_access_key": "operator-secret-for-the-integration-test-0001"}
CLIENTS = ["/usr/bin/aws", "/usr/bin/rclone", "/usr/bin/s3cmd", "/usr/bin/curl"]

# The clients must see only the credentials the test gives them (and no CA bundle, which
# rclone refuses for plain HTTP).
forget_aws_environment()

for c in CLIENTS:
    if not os.access(c, os.X_OK):
        skip(c + " is not installed (tools/deps.sh installs it)")
try:
    import boto3
    import botocore.config
    import botocore.exceptions
    from boto3.s3.transfer import TransferConfig
except ImportError:
    skip("python3-boto3 is not installed (tools/deps.sh installs it)")


def post_json(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def credentials(server):
    """A fresh identity's temporary credentials from the REST API, as the app gets them."""
    ident = post_json(server.url + "/v1/identities", {})
    return post_json(server.url + "/v1/credentials",
                     {"identity_id": ident["identity_id"], "secret": ident["secret"]})


def minted(server, identity, age_s=0):
    out = subprocess.run([os.environ["S3_MINT"], server.data_dir, identity, str(age_s)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def tampered(creds):
    """The same credentials with one character of the session token's MAC changed."""
    t = creds["session_token"]
    c = "A" if t[-2] != "A" else "B"
    return dict(creds, session_token=t[:-2] + c + t[-1])


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_file(path, size, seed):
    with open(path, "wb") as f:
        block = hashlib.sha256(seed.encode()).digest() * 32768  # 1 MiB of a seeded pattern
        left = size
        i = 0
        while left > 0:
            chunk = bytes([i & 0xFF]) + block[1:min(left, len(block))]
            f.write(chunk)
            left -= len(chunk)
            i += 1
    return path


# ---- boto3 ------------------------------------------------------------------------------------

def boto(server, creds):
    return boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                        aws_access_key_id=creds["access_key_id"],
                        aws_secret_access_key=creds["secret_access_key"],
                        aws_session_token=creds["session_token"],
                        config=botocore.config.Config(signature_version="s3v4",
                                                      s3={"addressing_style": "path"},
                                                      retries={"max_attempts": 1}))


def boto_error(fn):
    try:
        fn()
    except botocore.exceptions.ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"]
    return 200, None


def test_boto3(server, tmp, me, other_key, expired, forged):
    s3 = boto(server, me)
    p = me["prefix"] + "boto3/"
    s3.put_object(Bucket=BUCKET, Key=p + "hello.txt", Body=b"hello magpie",
                  ContentType="text/plain", Metadata={"camera": "x100"})
    r = s3.get_object(Bucket=BUCKET, Key=p + "hello.txt")
    check(r["Body"].read() == b"hello magpie" and r["Metadata"] == {"camera": "x100"} and
          r["ContentType"] == "text/plain", "boto3 put_object/get_object round trip with metadata")
    r = s3.get_object(Bucket=BUCKET, Key=p + "hello.txt", Range="bytes=6-11")
    check(r["Body"].read() == b"magpie" and r["ResponseMetadata"]["HTTPStatusCode"] == 206,
          "boto3 ranged get_object answers 206 with the range")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=p).get("Contents", [])]
    check(keys == [p + "hello.txt"], "boto3 list_objects_v2 lists the object")

    big = make_file(os.path.join(tmp, "boto3-big.bin"), 21 * 1024 * 1024, "boto3")
    s3.upload_file(big, BUCKET, p + "big.bin",
                   Config=TransferConfig(multipart_threshold=5 << 20, multipart_chunksize=5 << 20))
    head = s3.head_object(Bucket=BUCKET, Key=p + "big.bin")
    check(head["ContentLength"] == 21 * 1024 * 1024 and head["ETag"].endswith('-5"'),
          "boto3 multipart upload of 21 MiB in 5 parts (ETag %s)" % head["ETag"])
    s3.download_file(BUCKET, p + "big.bin", big + ".back")
    check(sha256_file(big + ".back") == sha256_file(big), "boto3 multipart object reads back")

    url = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": p + "hello.txt"},
                                    ExpiresIn=300)
    out = subprocess.run(["/usr/bin/curl", "-sS", "-f", url], capture_output=True)
    check(out.returncode == 0 and out.stdout == b"hello magpie", "presigned GET URL via curl")
    out = subprocess.run(["/usr/bin/curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                          url.replace("hello.txt", "hellO.txt")], capture_output=True, text=True)
    check(out.stdout == "403", "a presigned URL for another key is refused (%s)" % out.stdout)

    s3.delete_object(Bucket=BUCKET, Key=p + "hello.txt")
    check(boto_error(lambda: s3.head_object(Bucket=BUCKET, Key=p + "hello.txt"))[0] == 404,
          "boto3 delete_object removes the object")
    r = s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": p + "big.bin"}]})
    check([d["Key"] for d in r.get("Deleted", [])] == [p + "big.bin"], "boto3 delete_objects")

    check(boto_error(lambda: s3.get_object(Bucket=BUCKET, Key=other_key)) == (403, "AccessDenied"),
          "boto3 get_object on another identity's prefix: 403 AccessDenied")
    check(boto_error(lambda: s3.put_object(Bucket=BUCKET, Key=other_key, Body=b"x")) ==
          (403, "AccessDenied"), "boto3 put_object on another identity's prefix: 403 AccessDenied")
    check(boto_error(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="users/")) ==
          (403, "AccessDenied"), "boto3 listing above its prefix: 403 AccessDenied")
    check(boto_error(lambda: boto(server, expired).put_object(Bucket=BUCKET, Key=p + "x",
                                                              Body=b"x")) ==
          (403, "ExpiredToken"), "boto3 with an expired token: 403 ExpiredToken")
    check(boto_error(lambda: boto(server, forged).put_object(Bucket=BUCKET, Key=p + "x",
                                                             Body=b"x")) ==
          (403, "InvalidToken"), "boto3 with a tampered token: 403 InvalidToken")


# ---- aws CLI ----------------------------------------------------------------------------------

def aws_env(tmp, creds):
    cfg = os.path.join(tmp, "aws-config")
    with open(cfg, "w") as f:
        f.write("[default]\nregion = us-east-1\ns3 =\n  addressing_style = path\n"
                "  multipart_threshold = 8MB\n  multipart_chunksize = 8MB\n")
    env = dict(os.environ, AWS_CONFIG_FILE=cfg, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_ACCESS_KEY_ID=creds["access_key_id"],
               AWS_SECRET_ACCESS_KEY=creds["secret_access_key"],
               AWS_SESSION_TOKEN=creds["session_token"], AWS_MAX_ATTEMPTS="1",
               AWS_PAGER="", HOME=tmp)
    return env


def aws(server, tmp, creds, *args):
    return subprocess.run(["/usr/bin/aws", "--endpoint-url", server.url, *args],
                          env=aws_env(tmp, creds), capture_output=True, text=True, timeout=300)


def test_aws(server, tmp, me, other_key, expired, forged):
    p = me["prefix"] + "aws/"
    small = make_file(os.path.join(tmp, "aws-small.bin"), 200 * 1024, "aws-small")
    big = make_file(os.path.join(tmp, "aws-big.bin"), 24 * 1024 * 1024, "aws-big")
    r = aws(server, tmp, me, "s3", "cp", small, "s3://%s/%ssmall.bin" % (BUCKET, p))
    check(r.returncode == 0, "aws s3 cp upload " + r.stderr.strip())
    r = aws(server, tmp, me, "s3", "cp", big, "s3://%s/%sbig.bin" % (BUCKET, p))
    check(r.returncode == 0, "aws s3 cp 24 MiB multipart upload " + r.stderr.strip())
    r = aws(server, tmp, me, "s3api", "head-object", "--bucket", BUCKET, "--key", p + "big.bin")
    check(r.returncode == 0 and json.loads(r.stdout)["ETag"].endswith('-3"'),
          "aws multipart object has a 3-part ETag " + r.stdout.strip())
    r = aws(server, tmp, me, "s3", "ls", "s3://%s/%s" % (BUCKET, p))
    names = sorted(line.split()[-1] for line in r.stdout.splitlines())
    check(r.returncode == 0 and names == ["big.bin", "small.bin"], "aws s3 ls lists both: %s" % names)
    r = aws(server, tmp, me, "s3", "cp", "s3://%s/%sbig.bin" % (BUCKET, p), big + ".back")
    check(r.returncode == 0 and sha256_file(big + ".back") == sha256_file(big),
          "aws s3 cp download matches")

    r = aws(server, tmp, me, "s3api", "put-object", "--bucket", BUCKET, "--key", p + "api.bin",
            "--body", small)
    check(r.returncode == 0, "aws s3api put-object " + r.stderr.strip())
    r = aws(server, tmp, me, "s3api", "get-object", "--bucket", BUCKET, "--key", p + "api.bin",
            small + ".back")
    check(r.returncode == 0 and sha256_file(small + ".back") == sha256_file(small),
          "aws s3api get-object matches")
    r = aws(server, tmp, me, "s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", p)
    keys = [o["Key"] for o in json.loads(r.stdout or "{}").get("Contents", [])]
    check(r.returncode == 0 and keys == [p + "api.bin", p + "big.bin", p + "small.bin"],
          "aws s3api list-objects-v2: %s" % keys)
    r = aws(server, tmp, me, "s3", "rm", "--recursive", "s3://%s/%s" % (BUCKET, p))
    r2 = aws(server, tmp, me, "s3api", "list-objects-v2", "--bucket", BUCKET, "--prefix", p)
    check(r.returncode == 0 and "Contents" not in json.loads(r2.stdout or "{}"),
          "aws s3 rm --recursive empties the prefix")

    r = aws(server, tmp, me, "s3api", "get-object", "--bucket", BUCKET, "--key", other_key,
            os.path.join(tmp, "nope"))
    check(r.returncode != 0 and "(AccessDenied)" in r.stderr,
          "aws get-object on another identity's prefix: AccessDenied")
    r = aws(server, tmp, me, "s3", "cp", small, "s3://%s/%s" % (BUCKET, other_key))
    check(r.returncode != 0 and "AccessDenied" in r.stderr,
          "aws s3 cp to another identity's prefix: AccessDenied")
    r = aws(server, tmp, expired, "s3api", "put-object", "--bucket", BUCKET, "--key", p + "x",
            "--body", small)
    check(r.returncode != 0 and "(ExpiredToken)" in r.stderr, "aws with an expired token: "
          "ExpiredToken " + r.stderr.strip()[:120])
    r = aws(server, tmp, forged, "s3api", "put-object", "--bucket", BUCKET, "--key", p + "x",
            "--body", small)
    check(r.returncode != 0 and "(InvalidToken)" in r.stderr, "aws with a tampered token: "
          "InvalidToken " + r.stderr.strip()[:120])


# ---- rclone -----------------------------------------------------------------------------------

def rclone(server, tmp, creds, *args):
    conf = os.path.join(tmp, "rclone.conf")
    open(conf, "a").close()
    env = dict(os.environ, RCLONE_CONFIG=conf, RCLONE_CONFIG_M_TYPE="s3",
               RCLONE_CONFIG_M_PROVIDER="Other", RCLONE_CONFIG_M_ENDPOINT=server.url,
               RCLONE_CONFIG_M_REGION="us-east-1", RCLONE_CONFIG_M_FORCE_PATH_STYLE="true",
               RCLONE_CONFIG_M_ACCESS_KEY_ID=creds["access_key_id"],
               RCLONE_CONFIG_M_SECRET_ACCESS_KEY=creds["secret_access_key"],
               RCLONE_CONFIG_M_SESSION_TOKEN=creds["session_token"], HOME=tmp)
    return subprocess.run(["/usr/bin/rclone", "--retries", "1", "--low-level-retries", "1",
                           *args], env=env, capture_output=True, text=True, timeout=300)


def test_rclone(server, tmp, me, other_key, expired, forged):
    p = "m:%s/%srclone/" % (BUCKET, me["prefix"])
    src = os.path.join(tmp, "rclone-src")
    os.makedirs(src, exist_ok=True)
    make_file(os.path.join(src, "a.bin"), 300 * 1024, "rclone-a")
    make_file(os.path.join(src, "b.bin"), 1024, "rclone-b")
    r = rclone(server, tmp, me, "copy", src, p)
    check(r.returncode == 0, "rclone copy " + r.stderr.strip()[-300:])
    r = rclone(server, tmp, me, "lsf", p)
    check(r.returncode == 0 and r.stdout.split() == ["a.bin", "b.bin"],
          "rclone lsf lists both: %r" % r.stdout)
    r = rclone(server, tmp, me, "check", src, p)
    check(r.returncode == 0, "rclone check: the copies match the sources " + r.stderr[-200:])
    r = rclone(server, tmp, me, "delete", p)
    r2 = rclone(server, tmp, me, "lsf", p)
    check(r.returncode == 0 and r2.stdout.strip() == "", "rclone delete empties the prefix")

    other_dir = other_key.rsplit("/", 1)[0]
    r = rclone(server, tmp, me, "copyto", os.path.join(src, "b.bin"),
               "m:%s/%s" % (BUCKET, other_key + "-rclone"))
    # rclone HEADs the destination first, and a HEAD answer has no body to carry the code.
    check(r.returncode != 0 and ("AccessDenied" in r.stderr or "status code: 403" in r.stderr),
          "rclone copy to another identity's prefix: 403 " + r.stderr[-200:])
    r = rclone(server, tmp, me, "lsf", "m:%s/%s/" % (BUCKET, other_dir))
    check(r.returncode != 0 and "AccessDenied" in r.stderr,
          "rclone listing another identity's prefix: AccessDenied")
    r = rclone(server, tmp, expired, "copy", src, p)
    check(r.returncode != 0 and "ExpiredToken" in r.stderr, "rclone with an expired token: "
          "ExpiredToken")
    r = rclone(server, tmp, forged, "copy", src, p)
    check(r.returncode != 0 and "InvalidToken" in r.stderr, "rclone with a tampered token: "
          "InvalidToken")


# ---- s3cmd ------------------------------------------------------------------------------------

def s3cmd(server, tmp, creds, *args):
    host = server.url.split("://", 1)[1]
    cfg = os.path.join(tmp, "s3cfg")
    with open(cfg, "w") as f:
        f.write("[default]\naccess_key = %s\nsecret_key = %s\naccess_token = %s\n"
                "host_base = %s\nhost_bucket = %s\nuse_https = False\nsignature_v2 = False\n"
                "bucket_location = us-east-1\ncheck_ssl_certificate = False\n"
                % (creds["access_key_id"], creds["secret_access_key"], creds["session_token"],
                   host, host))
    return subprocess.run(["/usr/bin/s3cmd", "-c", cfg, *args], capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, HOME=tmp))


def test_s3cmd(server, tmp, me, other_key, expired, forged):
    p = "s3://%s/%ss3cmd/" % (BUCKET, me["prefix"])
    f = make_file(os.path.join(tmp, "s3cmd.bin"), 200 * 1024, "s3cmd")
    r = s3cmd(server, tmp, me, "put", f, p + "one.bin")
    check(r.returncode == 0, "s3cmd put " + r.stderr.strip()[-300:])
    r = s3cmd(server, tmp, me, "ls", p)
    check(r.returncode == 0 and r.stdout.strip().endswith(p + "one.bin"),
          "s3cmd ls lists it: %r" % r.stdout)
    r = s3cmd(server, tmp, me, "get", p + "one.bin", f + ".back")
    check(r.returncode == 0 and sha256_file(f + ".back") == sha256_file(f), "s3cmd get matches")
    r = s3cmd(server, tmp, me, "del", p + "one.bin")
    r2 = s3cmd(server, tmp, me, "ls", p)
    check(r.returncode == 0 and r2.stdout.strip() == "", "s3cmd del removes it")

    r = s3cmd(server, tmp, me, "put", f, "s3://%s/%s" % (BUCKET, other_key + "-s3cmd"))
    check(r.returncode != 0 and "AccessDenied" in r.stderr,
          "s3cmd put to another identity's prefix: AccessDenied " + r.stderr[-200:])
    r = s3cmd(server, tmp, expired, "put", f, p + "x")
    check(r.returncode != 0 and "ExpiredToken" in r.stderr, "s3cmd with an expired token: "
          "ExpiredToken " + r.stderr[-200:])
    r = s3cmd(server, tmp, forged, "put", f, p + "x")
    check(r.returncode != 0 and "InvalidToken" in r.stderr, "s3cmd with a tampered token: "
          "InvalidToken " + r.stderr[-200:])


# ---- raw HTTP: what clients do not do on purpose ------------------------------------------------

def signed_headers(server, creds, method, key, length):
    """Headers botocore signs for @method on @key with Content-Length @length. Over plain
    HTTP botocore signs the payload's SHA-256, here of the empty body it is given, so any
    non-empty body sent with these headers is not the signed one."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method=method, url="%s/%s/%s" % (server.url, BUCKET, key),
                     headers={"Content-Length": str(length)})
    S3SigV4Auth(Credentials(creds["access_key_id"], creds["secret_access_key"],
                            creds["session_token"]), "s3", "us-east-1").add_auth(req)
    headers = dict(req.headers.items())
    headers["Host"] = server.url.split("://", 1)[1]
    return headers


def read_until_close(sock):
    """The whole answer of a connection the server closes (Connection: close)."""
    data = b""
    while True:
        block = sock.recv(65536)
        if not block:
            break
        data += block
    sock.close()
    return data.decode(errors="replace")


def open_fds(server):
    return len(os.listdir("/proc/%d/fd" % server.proc.pid))


def test_raw(server, tmp, me, other_key, expired, forged):
    import http.client
    import socket
    host, port = server.url.split("://", 1)[1].split(":")
    p = me["prefix"] + "raw/"
    s3 = boto(server, me)

    # A body that is not the one signed: refused, the stored version untouched.
    s3.put_object(Bucket=BUCKET, Key=p + "lie", Body=b"truth")
    h = signed_headers(server, me, "PUT", p + "lie", 5)
    c = http.client.HTTPConnection(host, int(port), timeout=30)
    c.request("PUT", "/%s/%slie" % (BUCKET, p), body=b"lies!", headers=h)
    r = c.getresponse()
    body = r.read().decode()
    check(r.status == 400 and "<Code>XAmzContentSHA256Mismatch</Code>" in body and
          r.getheader("x-amz-request-id"), "a body that is not the signed one: 400 "
          "XAmzContentSHA256Mismatch")
    check(s3.get_object(Bucket=BUCKET, Key=p + "lie")["Body"].read() == b"truth",
          "... and the stored version is untouched")
    c.close()

    # Over the single-PUT limit with Expect: 100-continue: refused before any body byte.
    big = 6 << 30
    h = signed_headers(server, me, "PUT", p + "huge", big)
    h["Expect"] = "100-continue"
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = "PUT /%s/%shuge HTTP/1.1\r\n" % (BUCKET, p) + \
        "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    sock.sendall(head.encode())
    answer = read_until_close(sock)
    check(answer.startswith("HTTP/1.1 400") and "<Code>EntityTooLarge</Code>" in answer,
          "a 6 GiB PutObject is refused before its body: " + answer.split("\r\n")[0])

    # No Host header: soup itself answers 400; the server must stay up.
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(b"GET /magpie HTTP/1.1\r\n\r\n")
    answer = sock.recv(65536).decode(errors="replace")
    sock.close()
    check(answer.startswith("HTTP/1.1 400") and server.proc.poll() is None,
          "a request without Host gets 400 and the server stays up")

    # A client that vanishes mid-upload: no object, no descriptor or spool kept.
    time.sleep(0.3)
    baseline = open_fds(server)
    h = signed_headers(server, me, "PUT", p + "gone", 64 << 20)
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = "PUT /%s/%sgone HTTP/1.1\r\n" % (BUCKET, p) + \
        "".join("%s: %s\r\n" % kv for kv in h.items()) + "\r\n"
    sock.sendall(head.encode())
    sock.sendall(os.urandom(8 << 20))
    time.sleep(0.3)
    during = open_fds(server)
    sock.close()
    time.sleep(0.5)
    check(during > baseline and open_fds(server) == baseline,
          "a client gone mid-upload frees its connection and spool (fds %d -> %d -> %d)"
          % (baseline, during, open_fds(server)))
    check(boto_error(lambda: s3.head_object(Bucket=BUCKET, Key=p + "gone"))[0] == 404,
          "... and leaves no object")
    usage = shutil.disk_usage(server.data_dir)
    check(usage.free > 0, "server still healthy after the aborted upload")

    with urllib.request.urlopen(server.url + "/metrics", timeout=10) as r:
        metrics = r.read().decode()
    bytes_in = [l for l in metrics.splitlines() if l.startswith("magpied_s3_bytes_in_total")]
    check(bytes_in and float(bytes_in[0].split()[-1]) > 40e6,
          "/metrics counts S3 bytes in: %s" % bytes_in)
    check('magpied_s3_requests_total{code="AccessDenied",op="PutObject"}' in metrics or
          'magpied_s3_requests_total{op="PutObject",code="AccessDenied"}' in metrics,
          "/metrics counts S3 requests by operation and code")


def main():
    tmp = tempfile.mkdtemp(prefix="magpie-s3-")
    server = None
    ok = False
    try:
        server = Server(os.environ["MAGPIED"], tmp,
                        ["--admin-access-key", ADMIN["access_key_id"],
                         "--admin-secret-key", ADMIN["secret_access_key"]])
        try:
            me, other = credentials(server), credentials(server)
            print("# credentials from POST /v1/credentials")
        except urllib.error.HTTPError as e:
            if e.code != 404:
                raise
            # Until the identity API lands, mint with the server's own keyring.
            me, other = minted(server, "alice"), minted(server, "bob")
            print("# /v1/credentials not served yet: credentials minted from the keyring")
        check(me["prefix"] != other["prefix"], "two identities have distinct prefixes")
        other_key = other["prefix"] + "private/photo.jpg"
        boto(server, other).put_object(Bucket=BUCKET, Key=other_key, Body=b"not yours")
        expired = minted(server, me["prefix"].split("/")[1], 2000)
        forged = tampered(me)

        for name, fn in [("boto3", test_boto3), ("aws", test_aws), ("rclone", test_rclone),
                         ("s3cmd", test_s3cmd), ("raw", test_raw)]:
            sub = os.path.join(tmp, name)
            os.makedirs(sub)
            t0 = time.time()
            fn(server, sub, me, other_key, expired, forged)
            print("# %s: %.1f s" % (name, time.time() - t0), flush=True)

        body = boto(server, other).get_object(Bucket=BUCKET, Key=other_key)["Body"].read()
        check(body == b"not yours", "the other identity's object survived every attempt")

        # The operator's pair from the config reaches every identity's keys, with no token.
        admin = boto(server, dict(ADMIN, session_token=None))
        keys = [o["Key"] for o in admin.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
        check(other_key in keys and any(k.startswith(me["prefix"]) for k in keys),
              "admin key pair lists every identity's objects (%d keys)" % len(keys))
        check(admin.get_object(Bucket=BUCKET, Key=other_key)["Body"].read() == b"not yours",
              "admin key pair reads another identity's object")
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ADMIN["access_key_id"],
                   AWS_SECRET_ACCESS_KEY=ADMIN["secret_access_key"],
                   AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE="/dev/null",
                   AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        ls = subprocess.run(["/usr/bin/aws", "--endpoint-url", server.url, "s3", "ls",
                             "--recursive", "s3://%s/" % BUCKET], env=env,
                            capture_output=True, text=True)
        check(ls.returncode == 0 and other_key in ls.stdout,
              "aws CLI with the admin key pair lists the whole bucket")
        wrong = boto(server, dict(ADMIN, secret_access_key="x" * 40, session_token=None))
        try:
            wrong.list_objects_v2(Bucket=BUCKET)
            check(False, "admin key with a wrong secret is refused")
        except botocore.exceptions.ClientError as e:
            check(e.response["Error"]["Code"] == "SignatureDoesNotMatch",
                  "admin key with a wrong secret is refused (%s)" % e.response["Error"]["Code"])
        spool = os.listdir(os.path.join(server.data_dir, "spool"))
        check(spool == [], "no spool files left behind: %s" % spool)
        ok = True
    finally:
        if server is not None:
            server.stop()
            if failures or not ok:
                sys.stdout.write("--- magpied log (tail)\n" + server.log_tail())
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%d check(s) failed" % len(failures))
        sys.exit(1)


if __name__ == "__main__":
    main()
