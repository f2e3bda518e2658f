#!/usr/bin/python3
"""sigv4-botocore.py - signs a handful of requests offline with botocore (the signer behind
boto3 and the aws CLI) and prints them as JSON, so test-sigv4-botocore can check that
mp-sigv4 verifies them and signs them identically. No network is used.

Exits 77 (skip) when botocore cannot be imported."""

import hashlib
import json
import sys
from urllib.parse import urlsplit

try:
    from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
except ImportError as e:  # pragma: no cover - depends on the machine
    print(f"botocore is not importable: {e}", file=sys.stderr)
    sys.exit(77)

AKID = "ASIAMAGPIEBOTOCORE01"
SECRET = "botocore/secret+key/for-tests-only"
TOKEN = "FwoGZXIvYXdzEJr//////////wEaDO+test/token=="


def host_of(url):
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is None or parts.port == default:
        return parts.hostname
    return f"{parts.hostname}:{parts.port}"


def sign(name, auth_cls, method, url, headers=None, body=b"", token=None,
         service="s3", region="us-east-1", expires=None):
    creds = Credentials(AKID, SECRET, token)
    if expires is not None:
        auth = auth_cls(creds, service, region, expires=expires)
    else:
        auth = auth_cls(creds, service, region)
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    auth.add_auth(request)
    parts = urlsplit(request.url)
    return {
        "name": name,
        "kind": "presign" if expires is not None else "header",
        "method": method,
        "path": parts.path,
        "query": parts.query,
        "host": host_of(request.url),
        "headers": [[k, v] for k, v in request.headers.items()],
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "access_key_id": AKID,
        "secret": SECRET,
        "token": token,
        "service": service,
        "region": region,
        "expires": expires,
        "timestamp": request.context["timestamp"],
    }


def main():
    cases = [
        sign("s3-put-payload", S3SigV4Auth, "PUT",
             "http://127.0.0.1:9000/photos/users/u1/a%20b%E2%82%AC%2Bc.jpg",
             headers={"Content-Type": "image/jpeg",
                      "x-amz-meta-caption": "  two   spaces\tand tab  ",
                      "User-Agent": "Boto3/1.26 Python/3.11",
                      "Content-MD5": "XUFAKrxLKna5cZ2REBfFkg=="},
             body=b"hello photo bytes", token=TOKEN),
        sign("s3-get-query", S3SigV4Auth, "GET",
             "http://127.0.0.1:9000/photos?list-type=2&prefix=users%2Fu1%2F&max-keys=10"
             "&start-after=a%20b",
             token=TOKEN),
        sign("s3-multipart-initiate", S3SigV4Auth, "POST",
             "http://localhost:9000/photos/users/u1/big.jpg?uploads",
             headers={"Content-Type": "image/jpeg"}),
        sign("s3-presign-get", S3SigV4QueryAuth, "GET",
             "http://127.0.0.1:9000/photos/users/u1/a%20b.jpg",
             token=TOKEN, expires=900),
        sign("s3-presign-put-part", S3SigV4QueryAuth, "PUT",
             "https://s3.example.com/photos/users/u1/big.jpg?partNumber=2&uploadId=a%2Fb",
             expires=3600),
        sign("generic-normalized", SigV4Auth, "POST",
             "https://api.example.com/v1/./photos//tags/../tags",
             headers={"Content-Type": "application/json", "X-Custom": "a,  b"},
             body=b'{"key":"value"}', token=TOKEN, service="execute-api",
             region="eu-west-1"),
    ]
    json.dump(cases, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
