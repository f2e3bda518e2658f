#!/usr/bin/env bash
# test-nn-agreement.sh - Magpie's engine agrees with OpenCV DNN and PyTorch on the same ONNX
# files and the same input: resnet18, mobilenet_v2 and squeezenet1_1 (random weights, batch 2)
# and every .onnx in ../shared/data/models (OpenCV only: PyTorch cannot read a foreign ONNX file).
#
# Agreement: max |magpie - peer| <= 1e-4 x max(1, largest |output|), i.e. 1e-4 absolute on
# softmax-sized outputs and 1e-4 relative to the output's scale on larger logits.
set -euo pipefail

src=${MAGPIE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${MAGPIE_BUILD_DIR:-$src/build}
infer=${MAGPIE_INFER:-$build/tools/magpie-infer/magpie-infer}
shared=${MAGPIE_SHARED_DATA:-$src/../shared/data}
python=/usr/bin/python3
peer=("$python" "$src/tools/nn-peer.py")

if ! "$python" -c 'import cv2, numpy, onnx, torch, torchvision' 2>/dev/null; then
  echo "skip: Debian's python3-torch, -torchvision, -opencv, -onnx or -numpy is not installed"
  exit 77
fi
[ -x "$infer" ] || { echo "magpie-infer not built at $infer" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# input NAME SHAPE... : a seeded random tensor as .npy and as an ONNX TensorProto .pb
input() {
  "$python" - "$tmp/$1" "${@:2}" <<'PY'
import sys
import numpy as np
from onnx import numpy_helper
shape = tuple(int(d) for d in sys.argv[2:])
x = np.random.default_rng(11).standard_normal(shape, dtype=np.float32)
np.save(sys.argv[1] + ".npy", x)
with open(sys.argv[1] + ".pb", "wb") as f:
    f.write(numpy_helper.from_array(x, "input").SerializeToString())
PY
}

# agree A B LABEL : fail unless the two outputs agree as stated above
agree() {
  local out
  out=$("${peer[@]}" compare "$1" "$2")
  "$python" - "$out" "$3" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
limit = 1e-4 * max(1.0, r["max_abs_value"])
ok = r["max_abs_diff"] <= limit and r["elements"] > 0
print(f"{sys.argv[2]}: max abs diff {r['max_abs_diff']:.3g} (limit {limit:.3g}, "
      f"largest |output| {r['max_abs_value']:.3g}, {r['elements']} values) "
      f"{'ok' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)
PY
}

# magpie MODEL INPUT OUT.npy : the raw first output for one .pb input; magpie-infer prints
# one JSON line per batch item, stacked here into one array.
magpie() {
  "$infer" --model "$1" --raw "$2" > "$3.jsonl"
  "$python" - "$3.jsonl" "$3" <<'PY'
import json, sys
import numpy as np
rows = [json.loads(l)["output"] for l in open(sys.argv[1]) if l.strip()]
assert rows, "magpie-infer printed nothing"
np.save(sys.argv[2], np.asarray(rows, dtype=np.float32))
PY
}

failed=0
input x 2 3 224 224
for model in resnet18 mobilenet_v2 squeezenet1_1; do
  "${peer[@]}" export --model "$model" --seed 3 --out "$tmp/$model.onnx"
  "${peer[@]}" export --model "$model" --seed 3 --for opencv --out "$tmp/$model-cv.onnx"
  magpie "$tmp/$model.onnx" "$tmp/x.pb" "$tmp/$model-magpie.npy"
  magpie "$tmp/$model-cv.onnx" "$tmp/x.pb" "$tmp/$model-cv-magpie.npy"
  "${peer[@]}" run --engine torch-jit --model "$tmp/$model.onnx" --input "$tmp/x.pb" \
    --out "$tmp/$model-jit.npy"
  "${peer[@]}" run --engine opencv --model "$tmp/$model-cv.onnx" --input "$tmp/x.npy" \
    --out "$tmp/$model-cv.npy"
  agree "$tmp/$model-jit.npy" "$tmp/$model-magpie.npy" "$model magpie vs torch-jit" || failed=1
  agree "$tmp/$model-cv.npy" "$tmp/$model-cv-magpie.npy" "$model magpie vs opencv" || failed=1
done

if [ -d "$shared/models" ]; then
  for m in "$shared"/models/*.onnx; do
    name=$(basename "$m" .onnx)
    shape=$("$python" -c '
import onnx, sys
g = onnx.load(sys.argv[1]).graph
if any(t.data_type == onnx.TensorProto.FLOAT16 for t in g.initializer):
    print("float16")
    sys.exit(0)
inits = {i.name for i in g.initializer}
i = [v for v in g.input if v.name not in inits][0]
print(" ".join(str(d.dim_value or 1) for d in i.type.tensor_type.shape.dim))' "$m")
    if [ "$shape" = float16 ]; then
      echo "skip $name: float16 weights; the engine runs float32 models (its fp32 twin is compared)"
      continue
    fi
    input "in-$name" $shape
    magpie "$m" "$tmp/in-$name.pb" "$tmp/$name-magpie.npy"
    "${peer[@]}" run --engine opencv --model "$m" --input "$tmp/in-$name.npy" \
      --out "$tmp/$name-cv.npy"
    agree "$tmp/$name-cv.npy" "$tmp/$name-magpie.npy" "$name magpie vs opencv" || failed=1
  done
else
  echo "note: $shared/models is absent; shared models not compared"
fi

exit "$failed"
