#!/usr/bin/python3
# test-k8s.py - the Kubernetes manifests in deploy/k8s and the systemd units hold together
#
# Parses every document with PyYAML (python3-yaml) and checks the structure a cluster would
# only reject at apply time, or worse, accept and run wrongly: the kinds and names, the role
# each Deployment runs, probes on the container's own port, the Service selecting the api
# pods, the ScaledObject targeting the worker Deployment, every ConfigMap/Secret reference
# resolving, and every MAGPIED_* key and flag being one `magpied --help` knows.
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

failures = []


def check(cond, what):
    print(("ok - " if cond else "not ok - ") + what, flush=True)
    if not cond:
        failures.append(what)


try:
    import yaml
except ImportError:
    print("SKIP: python3-yaml is not installed (tools/deps.sh installs it)")
    sys.exit(77)

root = os.environ["MAGPIE_SOURCE_DIR"]
paths = sorted(glob.glob(os.path.join(root, "deploy", "k8s", "*.yaml")))
check(len(paths) > 0, "deploy/k8s has manifests")
docs = []
for path in paths:
    with open(path) as f:
        try:
            loaded = [d for d in yaml.safe_load_all(f) if d is not None]
        except yaml.YAMLError as e:
            check(False, "%s parses: %s" % (os.path.basename(path), e))
            continue
    check(all(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and
              d.get("metadata", {}).get("name") for d in loaded),
          "%s: every document has apiVersion, kind and a name" % os.path.basename(path))
    docs += loaded

by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d
check(sorted((k, sorted(v)) for k, v in by_kind.items()) == [
    ("ConfigMap", ["magpied-config"]), ("Deployment", ["magpied-api", "magpied-worker"]),
    ("ScaledObject", ["magpied-worker"]), ("Secret", ["magpied-secrets"]),
    ("Service", ["magpied-api"])],
    "kinds and names: %s" % sorted((k, sorted(v)) for k, v in by_kind.items()))

help_text = subprocess.run([os.environ["MAGPIED"], "--help"], check=True,
                           capture_output=True, text=True).stdout
flags = set(re.findall(r"--([a-z0-9-]+)", help_text))
check({"role", "database"} <= flags, "magpied has --role and --database")


def env_flag(key):
    return key[len("MAGPIED_"):].lower().replace("_", "-")


for kind in ("ConfigMap", "Secret"):
    for name, d in by_kind.get(kind, {}).items():
        data = d.get("data") or d.get("stringData") or {}
        unknown = [k for k in data if not k.startswith("MAGPIED_") or env_flag(k) not in flags]
        check(data and not unknown, "%s %s: every key is a magpied setting (unknown: %s)"
              % (kind, name, unknown))
        check(all(isinstance(v, str) for v in data.values()),
              "%s %s: every value is a string, as Kubernetes requires" % (kind, name))

deployments = by_kind.get("Deployment", {})
for name, role in (("magpied-api", "api"), ("magpied-worker", "worker")):
    d = deployments.get(name)
    if d is None:
        continue
    spec = d["spec"]
    pod = spec["template"]
    check(spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(),
          "%s: its selector matches its own pods" % name)
    containers = pod["spec"]["containers"]
    check(len(containers) == 1, "%s: one container" % name)
    c = containers[0]
    args = c.get("args", [])
    check("--role=" + role in args, "%s runs magpied --role=%s" % (name, role))
    check(all(a.startswith("--") and a[2:].split("=")[0] in flags for a in args),
          "%s: every argument is a magpied flag (%s)" % (name, args))
    port_names = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = c.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and get.get("port") in port_names,
              "%s: %s on %s at a port the container declares" % (name, probe, path))
    refs = [(r, list(e[r].values())[0]) for e in c.get("envFrom", []) for r in e]
    check(sorted(refs) == [("configMapRef", "magpied-config"),
                           ("secretRef", "magpied-secrets")],
          "%s: settings from the ConfigMap and the Secret" % name)
    check(list(port_names.values()) == [8080] and
          by_kind["ConfigMap"]["magpied-config"]["data"]["MAGPIED_LISTEN"].endswith(":8080"),
          "%s: the container port is the one magpied listens on" % name)

service = by_kind.get("Service", {}).get("magpied-api")
if service is not None and "magpied-api" in deployments:
    labels = deployments["magpied-api"]["spec"]["template"]["metadata"]["labels"]
    worker_labels = deployments["magpied-worker"]["spec"]["template"]["metadata"]["labels"]
    selector = service["spec"]["selector"]
    check(selector.items() <= labels.items() and not selector.items() <= worker_labels.items(),
          "the Service selects the api pods and not the workers")
    check(all(p["targetPort"] in ("http", 8080) for p in service["spec"]["ports"]),
          "the Service forwards to the api container's port")

scaled = by_kind.get("ScaledObject", {}).get("magpied-worker")
if scaled is not None:
    spec = scaled["spec"]
    check(scaled["apiVersion"] == "keda.sh/v1alpha1", "ScaledObject is KEDA's v1alpha1")
    check(spec["scaleTargetRef"]["name"] == "magpied-worker" and
          spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment",
          "the ScaledObject targets the worker Deployment")
    check(1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"],
          "replica bounds are sane (%d..%d)" % (spec["minReplicaCount"],
                                               spec["maxReplicaCount"]))
    pg = [t for t in spec["triggers"] if t["type"] == "postgresql"]
    check(len(pg) == 1 and "FROM jobs" in pg[0]["metadata"]["query"] and
          float(pg[0]["metadata"]["targetQueryValue"]) > 0,
          "it scales with KEDA's postgresql scaler on the catalog's job count")
    if pg:
        var = pg[0]["metadata"].get("connectionFromEnv")
        secret = by_kind["Secret"]["magpied-secrets"]["stringData"]
        worker = deployments["magpied-worker"]["spec"]["template"]["spec"]["containers"][0]
        from_secret = any(e.get("secretRef", {}).get("name") == "magpied-secrets"
                          for e in worker.get("envFrom", []))
        check(var == "MAGPIED_DATABASE" and var in secret and from_secret,
              "the scaler's connection string is the workers' own MAGPIED_DATABASE "
              "(from the Secret through envFrom)")
        check(secret.get("MAGPIED_DATABASE", "").startswith(("postgres://", "postgresql://")),
              "the catalog in the Secret is a PostgreSQL URI the scaler can use")

# The systemd units: systemd-analyze verifies each (with the built magpied standing in for
# /usr/local/bin/magpied), every MAGPIED_* they set and every flag they pass is a magpied
# setting, and the fleet units run the role their name says.
units = sorted(glob.glob(os.path.join(root, "deploy", "*.service")))
check([os.path.basename(u) for u in units] ==
      ["magpied-api.service", "magpied-worker.service", "magpied.service"],
      "deploy/ has the single-machine, api and worker units")
analyze = "/usr/bin/systemd-analyze"
tmp = tempfile.mkdtemp(prefix="magpie-units-")
try:
    for unit in units:
        name = os.path.basename(unit)
        text = open(unit).read()
        env = re.findall(r"^Environment=(MAGPIED_[A-Z0-9_]+)=", text, re.M)
        unknown = [k for k in env if env_flag(k) not in flags]
        check(env and not unknown, "%s: every Environment= is a magpied setting (unknown: %s)"
              % (name, unknown))
        execs = re.findall(r"^ExecStart=(\S+)(.*)$", text, re.M)
        args = execs[0][1].split() if execs else []
        check(len(execs) == 1 and execs[0][0] == "/usr/local/bin/magpied" and
              all(a.startswith("--") and a[2:].split("=")[0] in flags for a in args),
              "%s: ExecStart runs magpied with known flags (%s)" % (name, args))
        role = name[len("magpied-"):-len(".service")] if name != "magpied.service" else None
        check(("--role=%s" % role in args) if role else not args,
              "%s: runs the %s role" % (name, role or "all (default)"))
        if role:
            check("EnvironmentFile=/etc/magpie/magpied.env" in text,
                  "%s: the fleet's settings and secrets come from an EnvironmentFile" % name)
        if os.access(analyze, os.X_OK):
            copy = os.path.join(tmp, name)
            open(copy, "w").write(text.replace("/usr/local/bin/magpied", os.environ["MAGPIED"])
                                  .replace("Documentation=man:magpied(1)\n", ""))
            out = subprocess.run([analyze, "verify", copy], capture_output=True, text=True)
            problems = [l for l in (out.stdout + out.stderr).splitlines()
                        if l.strip() and "/etc/magpie/magpied.env" not in l]
            check(not problems, "%s: systemd-analyze verify finds nothing (%s)"
                  % (name, problems))
finally:
    shutil.rmtree(tmp, ignore_errors=True)

print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
