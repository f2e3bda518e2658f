#!/usr/bin/python3
"""nn-peer.py - the peers Magpie's engine is measured and checked against.

OpenCV's DNN module and PyTorch (TorchScript and eager) run the same random-weight
torchvision models as magpie-bench and magpie-infer, on the same machine:

  export   a seeded random-weight torchvision model to ONNX (--for opencv: a variant
           OpenCV 4.6 can load, checked against PyTorch before it is kept)
  bench    time one engine; prints the JSON object magpie-bench prints, plus "engine"
  run      one forward pass on a given tensor (.npy or ONNX TensorProto .pb) -> .npy
  compare  max abs / max relative difference of two outputs (.npy, .pb or JSON)
  timed    run a benchmark command (magpie-bench) under bench's quiet wait and noise check

Needs Debian's python3-torch, python3-torchvision, python3-opencv, python3-onnx and
python3-numpy (tools/deps.sh), so run it with /usr/bin/python3. Heavy modules are
imported only by the commands that use them: an OpenCV benchmark never loads torch,
which would otherwise count in its peak RSS.
"""

import argparse
import hashlib
import json
import mmap
import os
import resource
import subprocess
import sys
import time

MODELS = ("resnet18", "mobilenet_v2", "squeezenet1_1")
ENGINES = ("opencv", "torch-jit", "torch-eager")
DEFAULT_OPSET = 13
# OpenCV 4.6 reads Clip's bounds only as attributes, which opset 11 turned into inputs.
OPENCV_OPSET = 10
INPUT_SHAPE = (3, 224, 224)
META_PREFIX = "magpie."
# Above this share of the CPUs taken by others, a timing says more about them than the engine.
NOISY_SHARE = 0.05


def cv_reason(error):
    """The line of a cv2.error that names the failing node; the rest is OpenCV's source path."""
    lines = [l.lstrip("> ").strip() for l in str(error).splitlines()]
    return next((l for l in lines if l.startswith("Node")), lines[0])


def die(message, status=2):
    print(f"nn-peer: {message}", file=sys.stderr)
    sys.exit(status)


# --- ONNX metadata without loading the graph ---------------------------------------------

def _varint(buf, pos):
    value = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf, start, end):
    """Yields (field number, bytes or None) for each protobuf field in buf[start:end]."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
            yield key >> 3, None
        elif wire == 1:
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            yield key >> 3, (pos, pos + size)
            pos += size
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire}")


def read_metadata(path):
    """ModelProto.metadata_props (field 14) as a dict, read through mmap so the weights are
    never paged in: the PyTorch benchmarks read it and must not pay for the graph in RSS."""
    meta = {}
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            for field, span in _fields(buf, 0, len(buf)):
                if field != 14 or span is None:
                    continue
                entry = {n: bytes(buf[s:e]).decode() for n, (s, e) in _fields(buf, *span) if e}
                meta[entry.get(1, "")] = entry.get(2, "")
    except (OSError, ValueError, IndexError, UnicodeDecodeError) as e:
        die(f"{path}: not a readable ONNX model ({e})")
    return meta


# --- the PyTorch side -------------------------------------------------------------------

def build_torch_model(name, seed):
    import torch
    import torchvision

    if name not in MODELS:
        die(f"unknown model '{name}' (known: {', '.join(MODELS)})")
    torch.manual_seed(seed)
    return getattr(torchvision.models, name)(weights=None).eval()


def weights_digest(module):
    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def torch_model_for(onnx_path, name, seed):
    """Rebuilds the torchvision model an ONNX file was exported from, and proves its weights
    are the file's by the digest export stored (the RNG stream could differ across torch
    versions). Files from elsewhere need --torch-model and go unchecked."""
    meta = read_metadata(onnx_path)
    name = name or meta.get(META_PREFIX + "torch_model")
    if not name:
        die(f"{onnx_path} was not exported by nn-peer.py; say which model it is with --torch-model")
    if seed is None:
        seed = int(meta.get(META_PREFIX + "seed", 0))
    module = build_torch_model(name, seed)
    expected = meta.get(META_PREFIX + "weights_sha256")
    if expected is None:
        print(f"nn-peer: {onnx_path} carries no weights digest; cannot prove the PyTorch "
              f"weights equal the file's", file=sys.stderr)
    elif expected != weights_digest(module):
        die(f"torchvision {name} with seed {seed} does not have the weights of {onnx_path} "
            f"(exported as {meta.get(META_PREFIX + 'torch_model')} seed "
            f"{meta.get(META_PREFIX + 'seed')} with torch {meta.get(META_PREFIX + 'torch_version')})")
    return module


# --- engines ----------------------------------------------------------------------------

def limit_threads(threads):
    # Before cv2/torch load: OpenMP and OpenBLAS size their pools from these at start-up.
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["OPENBLAS_NUM_THREADS"] = str(threads)


def load_engine(engine, onnx_path, torch_name, seed, threads, example):
    """Returns infer(x: float32 ndarray NCHW) -> ndarray of the first output."""
    if engine == "opencv":
        import cv2

        cv2.setNumThreads(threads)
        try:
            net = cv2.dnn.readNetFromONNX(onnx_path)
        except cv2.error as e:
            die(f"OpenCV cannot load {onnx_path} (export it with --for opencv): {cv_reason(e)}")
        net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

        # Our exports name the input "input"; a foreign model (the shared ones) has its own name
        # and one input, which setInput fills when given no name.
        def infer(x):
            net.setInput(x)
            return net.forward()

        return infer

    import torch

    torch.set_num_threads(threads)
    module = torch_model_for(onnx_path, torch_name, seed)
    if engine == "torch-jit":
        # Traced on the very input it will run, so any shape tracing records is the right one.
        with torch.no_grad():
            traced = torch.jit.trace(module, torch.from_numpy(example))
            module = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

    def infer(x):
        with torch.inference_mode():
            return module(torch.from_numpy(x)).numpy()

    return infer


# --- tensors in and out -----------------------------------------------------------------

def load_tensor(path):
    import numpy as np

    if path.endswith(".json"):
        with open(path) as f:
            return tensor_from_json(json.load(f), path)
    if path.endswith(".pb"):
        import onnx
        from onnx import numpy_helper

        proto = onnx.TensorProto()
        with open(path, "rb") as f:
            proto.ParseFromString(f.read())
        return numpy_helper.to_array(proto)
    return np.load(path, allow_pickle=False)


def tensor_from_json(obj, path):
    """The first output in a JSON document: a (nested) list of numbers, an object holding it
    under "output"/"outputs"/"raw"/"values"/"logits", or {"data": [...], "shape"|"dims": [...]}."""
    import numpy as np

    if isinstance(obj, list):
        if obj and isinstance(obj[0], dict):
            return tensor_from_json(obj[0], path)
        return np.asarray(obj, dtype=np.float64)
    if isinstance(obj, dict):
        if "data" in obj:
            data = np.asarray(obj["data"], dtype=np.float64)
            shape = obj.get("shape", obj.get("dims"))
            return data.reshape(shape) if shape is not None else data
        for key in ("output", "outputs", "raw", "values", "logits"):
            if key in obj:
                return tensor_from_json(obj[key], path)
        if len(obj) == 1:
            return tensor_from_json(next(iter(obj.values())), path)
    die(f"{path}: no tensor found (expected a list of numbers or an object with "
        f"output/outputs/raw/values/logits/data)")


def as_input(x, path):
    import numpy as np

    if x.dtype.kind != "f":
        die(f"{path}: input must be floating point, got {x.dtype}")
    # Any NCHW image tensor: OpenCV runs any ONNX file (mnist-8 takes N x 1 x 28 x 28); the
    # torchvision rebuilds check their own channel count.
    if x.ndim != 4:
        die(f"{path}: input must be N x C x H x W, got {list(x.shape)}")
    # Writable too: torch.from_numpy warns on the read-only arrays onnx.numpy_helper returns.
    return np.require(x, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])


# --- commands ---------------------------------------------------------------------------

def inline_identity_initializers(model):
    """torch.onnx.export shares equal initializers (every zero bias of one length) through
    Identity nodes, which OpenCV 4.6 rejects; give each consumer its own copy instead."""
    import onnx

    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    kept = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy = onnx.TensorProto()
            copy.CopyFrom(initializers[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
        else:
            kept.append(node)
    del graph.node[:]
    graph.node.extend(kept)


def check_opencv_agrees(path, module, seed):
    import cv2
    import numpy as np
    import torch

    x = np.random.default_rng(seed).standard_normal((2,) + INPUT_SHAPE, dtype=np.float32)
    try:
        net = cv2.dnn.readNetFromONNX(path)
        net.setInput(x, "input")
        got = net.forward()
    except cv2.error as e:
        return f"OpenCV {cv2.__version__} cannot run it: {cv_reason(e)}"
    with torch.inference_mode():
        want = module(torch.from_numpy(x)).numpy()
    if got.shape != want.shape:
        return f"OpenCV output shape {got.shape} is not PyTorch's {want.shape}"
    diff = float(np.abs(got - want).max())
    if not diff <= 1e-4 * max(1.0, float(np.abs(want).max())):
        return f"OpenCV and PyTorch differ by {diff:g}"
    return None


def cmd_export(args):
    import io

    import onnx
    import torch

    module = build_torch_model(args.model, args.seed)
    opset = args.opset or (OPENCV_OPSET if args.target == "opencv" else DEFAULT_OPSET)
    buf = io.BytesIO()
    torch.onnx.export(module, torch.zeros((1,) + INPUT_SHAPE), buf, opset_version=opset,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    model = onnx.load_from_string(buf.getvalue())
    if args.target == "opencv":
        inline_identity_initializers(model)
    onnx.helper.set_model_props(model, {
        META_PREFIX + "torch_model": args.model,
        META_PREFIX + "seed": str(args.seed),
        META_PREFIX + "weights_sha256": weights_digest(module),
        META_PREFIX + "torch_version": torch.__version__,
        META_PREFIX + "variant": args.target,
    })
    onnx.checker.check_model(model)
    onnx.save(model, args.out)
    if args.target == "opencv":
        problem = check_opencv_agrees(args.out, module, args.seed)
        if problem:
            os.unlink(args.out)
            die(f"{args.model} opset {opset} for OpenCV: {problem}", 1)


def cpu_snapshot():
    """(wall s, busy CPU s of the whole machine, CPU s of this process and its finished
    children) for contention checks."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    me = os.times()
    busy = (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
    return time.perf_counter(), busy, me.user + me.system + me.children_user + me.children_system


def others_share(before, after):
    """Fraction of all CPUs that other processes (or the hypervisor) took between snapshots.
    OpenMP and OpenBLAS spin at barriers, so sharing 2 cores can cost far more than half."""
    wall = after[0] - before[0]
    others = (after[1] - before[1]) - (after[2] - before[2])
    return max(0.0, others / (wall * os.cpu_count()))


def wait_for_quiet(seconds):
    """On a shared machine, start in a lull rather than in the middle of someone's build."""
    wait_until = time.perf_counter() + seconds
    while time.perf_counter() < wait_until:
        before = cpu_snapshot()
        time.sleep(1.0)
        if others_share(before, cpu_snapshot()) <= NOISY_SHARE:
            break


def report_noise(share):
    if share > NOISY_SHARE:
        print(f"nn-peer: noisy: other processes used {share:.0%} of the CPUs while timing",
              file=sys.stderr)


def cmd_bench(args):
    if args.batch < 1 or args.threads < 1 or args.seconds <= 0:
        die("--batch and --threads must be at least 1 and --seconds positive")
    limit_threads(args.threads)
    import numpy as np

    x = np.random.default_rng(args.seed or 0).standard_normal((args.batch,) + INPUT_SHAPE,
                                                              dtype=np.float32)
    infer = load_engine(args.engine, args.model, args.torch_model, args.seed, args.threads, x)

    wait_for_quiet(args.quiet_wait)

    # Warm-up: first runs allocate, pack weights and (TorchScript) profile and re-optimise.
    warm_until = time.perf_counter() + args.warmup
    runs = 0
    while runs < 3 or time.perf_counter() < warm_until:
        infer(x)
        runs += 1

    times = []
    snapshot = cpu_snapshot()
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        infer(x)
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 - start >= args.seconds and len(times) >= 3:
            break

    report_noise(others_share(snapshot, cpu_snapshot()))

    meta = read_metadata(args.model)
    name = meta.get(META_PREFIX + "torch_model") or os.path.splitext(os.path.basename(args.model))[0]
    ms = np.asarray(times) * 1e3
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "model": name,
        "engine": args.engine,
        "batch": args.batch,
        "threads": args.threads,
        "images_per_second": round(args.batch * len(times) / sum(times), 2),
        "ms_per_batch_p50": round(float(np.percentile(ms, 50)), 3),
        "ms_per_batch_p95": round(float(np.percentile(ms, 95)), 3),
        "peak_rss_mb": round(rss_kib / 1024, 1),
    }))


def cmd_run(args):
    limit_threads(args.threads)
    import numpy as np

    x = as_input(load_tensor(args.input), args.input)
    infer = load_engine(args.engine, args.model, args.torch_model, args.seed, args.threads, x)
    np.save(args.out, np.asarray(infer(x), dtype=np.float32))


def cmd_timed(args):
    """magpie-bench times itself; this gives its run the quiet wait and the noise report the
    peers get, so a table's rows are judged alike. The command's own load and warm-up count
    in the window, which only makes the check stricter."""
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        die("timed: give the command after --")
    wait_for_quiet(args.quiet_wait)
    snapshot = cpu_snapshot()
    status = subprocess.run(cmd).returncode
    report_noise(others_share(snapshot, cpu_snapshot()))
    sys.exit(status)


def cmd_compare(args):
    import numpy as np

    a = np.asarray(load_tensor(args.a), dtype=np.float64)
    b = np.asarray(load_tensor(args.b), dtype=np.float64)
    if a.shape != b.shape:
        if a.size != b.size:
            die(f"shapes differ: {list(a.shape)} vs {list(b.shape)}")
        b = b.reshape(a.shape)  # a flat JSON list against a shaped tensor
    for path, t in ((args.a, a), (args.b, b)):
        bad = int(np.count_nonzero(~np.isfinite(t)))
        if bad:
            die(f"{path}: {bad} values are not finite", 1)
    diff = np.abs(a - b)
    # Relative to the larger of the two values, floored at 1e-6 of the tensor's largest
    # magnitude so elements that are ~0 in both do not turn rounding into huge ratios.
    scale = max(float(np.abs(a).max(initial=0)), float(np.abs(b).max(initial=0)))
    floor = max(1e-6 * scale, np.finfo(np.float32).tiny)
    rel = diff / np.maximum(np.maximum(np.abs(a), np.abs(b)), floor)
    result = {
        "max_abs_diff": float(diff.max(initial=0)),
        "max_rel_diff": float(rel.max(initial=0)),
        "max_abs_value": scale,
        "elements": int(a.size),
        "shape": list(a.shape),
    }
    print(json.dumps(result))
    if args.atol is not None and result["max_abs_diff"] > args.atol:
        sys.exit(1)
    if args.rtol is not None and result["max_rel_diff"] > args.rtol:
        sys.exit(1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("export", help="export a random-weight torchvision model to ONNX")
    p.add_argument("--model", required=True, choices=MODELS)
    p.add_argument("--out", required=True)
    p.add_argument("--for", dest="target", choices=("default", "opencv"), default="default")
    p.add_argument("--opset", type=int, help=f"default {DEFAULT_OPSET}, {OPENCV_OPSET} --for opencv")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_export)

    def engine_args(p):
        p.add_argument("--engine", required=True, choices=ENGINES)
        p.add_argument("--model", required=True, help="ONNX file")
        p.add_argument("--torch-model", choices=MODELS,
                       help="torchvision model for the PyTorch engines (default: the file's)")
        p.add_argument("--seed", type=int, help="its weight seed (default: the file's)")

    p = sub.add_parser("bench", help="time an engine, print magpie-bench's JSON")
    engine_args(p)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of untimed runs first")
    p.add_argument("--quiet-wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to this long for a second in which other processes are idle")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("run", help="one forward pass on a given tensor")
    engine_args(p)
    p.add_argument("--input", required=True, help=".npy or ONNX TensorProto .pb")
    p.add_argument("--out", required=True, help=".npy for the first output")
    p.add_argument("--threads", type=int, default=2)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("timed", help="run a benchmark command with bench's quiet wait and "
                       "noise check")
    p.add_argument("--quiet-wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to this long for a second in which other processes are idle")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    p.set_defaults(func=cmd_timed)

    p = sub.add_parser("compare", help="max abs and relative difference of two outputs")
    p.add_argument("a", metavar="A", help=".npy, .pb or .json")
    p.add_argument("b", metavar="B", help=".npy, .pb or .json (magpie-infer --raw)")
    p.add_argument("--atol", type=float, help="exit 1 when max abs diff exceeds this")
    p.add_argument("--rtol", type=float, help="exit 1 when max relative diff exceeds this")
    p.set_defaults(func=cmd_compare)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
