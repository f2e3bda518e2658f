# mp_moto.py - moto_server for the integration tests: S3, STS and IAM on a loopback port
#
# Moto(tmp) starts it as a direct child of the test on a port the kernel picked and waits
# until it answers; stop() ends it by PID (SIGTERM, then SIGKILL after 10 s). setup_moto()
# makes the bucket, an IAM user and key pair for magpied, and the role uploads assume, then
# switches moto's signature and IAM checks on for every request after it.
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import boto3
import botocore.config

BUCKET = "magpie-remote"
ROLE = "magpie-uploader"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    def __init__(self, tmp, slowdown=1):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.log = open(os.path.join(tmp, "moto.log"), "w")
        self.proc = subprocess.Popen([shutil.which("moto_server"), "-H", "127.0.0.1",
                                      "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60 * slowdown
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("moto_server exited")
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=5).read()
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("moto_server did not answer")

    def post(self, path, body):
        req = urllib.request.Request(self.url + path, data=body.encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
        return urllib.request.urlopen(req, timeout=30).read()

    def data(self):
        return json.loads(urllib.request.urlopen(self.url + "/moto-api/data.json",
                                                 timeout=30).read())

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def client(service, url, key, secret, token=None):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=key, aws_secret_access_key=secret,
                        aws_session_token=token,
                        config=botocore.config.Config(signature_version="s3v4",
                                                      s3={"addressing_style": "path"},
                                                      retries={"max_attempts": 1}))


def setup_moto(moto):
    """The bucket, magpied's IAM user and key pair, and the role uploads assume."""
    s3 = client("s3", moto.url, "setup", "setup")
    iam = client("iam", moto.url, "setup", "setup")
    s3.create_bucket(Bucket=BUCKET)
    user = iam.create_user(UserName="magpied")["User"]
    key = iam.create_access_key(UserName="magpied")["AccessKey"]
    role = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": user["Arn"]},
                       "Action": "sts:AssumeRole"}]}))["Role"]
    iam.put_user_policy(UserName="magpied", PolicyName="magpied", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "s3:*",
             "Resource": ["arn:aws:s3:::" + BUCKET, "arn:aws:s3:::%s/*" % BUCKET]},
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": role["Arn"]}]}))
    # The role reaches every user's prefix; the session policy is what narrows it to one.
    iam.put_role_policy(RoleName=ROLE, PolicyName="uploads", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*",
                       "Resource": ["arn:aws:s3:::" + BUCKET,
                                    "arn:aws:s3:::%s/users/*" % BUCKET]}]}))
    moto.post("/moto-api/reset-auth", "0")
    return key["AccessKeyId"], key["SecretAccessKey"], role["Arn"]
