#!/usr/bin/python3
# test-openapi.py - data/openapi.json describes the REST API magpied really serves
#
# The spec must be well formed (every $ref resolves, every operation lists responses), and a
# real magpied on loopback must answer every documented path and method with one of the
# statuses the spec lists for it when called bare (no token, no body): a route that moved or
# vanished, or a status the spec does not admit, fails here.
import json
import os
import sys
import tempfile
import shutil
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.environ["MAGPIE_SOURCE_ROOT"], "tests", "integration"))
from mp_magpied import Server  # noqa: E402

failures = []


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        failures.append(what)


spec = json.load(open(os.path.join(os.environ["MAGPIE_SOURCE_ROOT"], "data", "openapi.json")))
check(spec["openapi"].startswith("3."), "OpenAPI 3 document")


def refs(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


schemas = spec["components"]["schemas"]
bad = [r for r in refs(spec) if r.split("/")[-1] not in schemas]
check(not bad, "every $ref resolves (%s)" % bad)

tmp = tempfile.mkdtemp(prefix="magpie-openapi-")
server = None
try:
    server = Server(os.environ["MAGPIED"], tmp)
    for path, item in sorted(spec["paths"].items()):
        url = server.url + path.replace("{id}", "AAAAAAAAAAAAAAAAAAAAAA").replace("{name}", "photos")
        for method, op in item.items():
            if method == "parameters":
                continue
            check(op.get("responses"), "%s %s lists its responses" % (method.upper(), path))
            req = urllib.request.Request(url, method=method.upper(),
                                         data=b"" if method in ("post", "put") else None)
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    status = r.status
                    r.read(1)
            except urllib.error.HTTPError as e:
                status = e.code
            check(str(status) in op["responses"],
                  "%s %s answers %d, which the spec lists" % (method.upper(), path, status))
    req = urllib.request.Request(server.url + "/v1/not-in-the-spec")
    try:
        urllib.request.urlopen(req, timeout=10)
        check(False, "an undocumented /v1 path is not served")
    except urllib.error.HTTPError as e:
        check(e.code == 404, "an undocumented /v1 path is not served (404)")
finally:
    if server is not None:
        server.stop()
    shutil.rmtree(tmp, ignore_errors=True)

print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
