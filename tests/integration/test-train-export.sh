#!/usr/bin/env bash
# test-train-export.sh - what magpie-train exports, OpenCV's cv2.dnn reads and agrees with
# Magpie's engine on: a model freshly trained here (a short digits run, so that the exporter
# itself is checked) and the bundled data/models/*.onnx. Outputs are softmax probabilities;
# agreement is max |magpie - opencv| <= 1e-4 on inputs taken from the test sets.
set -euo pipefail

src=${MAGPIE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
build=${MAGPIE_BUILD_DIR:-$src/build}
infer=${MAGPIE_INFER:-$build/tools/magpie-infer/magpie-infer}
train=${MAGPIE_TRAIN:-$build/tools/magpie-train/magpie-train}
shared=${MAGPIE_SHARED_DATA:-$src/../shared/data}
python=/usr/bin/python3
peer=("$python" "$src/tools/nn-peer.py")

if ! "$python" -c 'import cv2, numpy, onnx' 2>/dev/null; then
  echo "skip: Debian's python3-opencv, -onnx or -numpy is not installed (tools/deps.sh)"
  exit 77
fi
if [ ! -f "$shared/mnist/t10k-images-idx3-ubyte.gz" ]; then
  echo "skip: the MNIST files are not in $shared/mnist"
  exit 77
fi
[ -x "$infer" ] && [ -x "$train" ] || { echo "magpie-infer or magpie-train not built" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# input NAME KIND : 8 test-set images, normalised as the model's sidecar says, as .npy + .pb
input() {
  "$python" - "$tmp/$1" "$2" "$shared" "$3" <<'PY'
import gzip, json, sys
import numpy as np
from onnx import numpy_helper
out, kind, shared, sidecar = sys.argv[1:]
cfg = json.load(open(sidecar))
if kind == "digits":
    raw = gzip.open(f"{shared}/mnist/t10k-images-idx3-ubyte.gz").read()[16:16 + 8 * 784]
    x = np.frombuffer(raw, np.uint8).reshape(8, 1, 28, 28).astype(np.float32)
else:
    raw = gzip.open(f"{shared}/cifar10/test_batch.bin.gz").read()[:8 * 3073]
    x = np.frombuffer(raw, np.uint8).reshape(8, 3073)[:, 1:].reshape(8, 3, 32, 32)
    x = x.astype(np.float32)
mean = np.asarray(cfg["mean"], np.float32).reshape(-1)
std = np.asarray(cfg["std"], np.float32).reshape(-1)
c = x.shape[1]
x = (x * np.float32(cfg["scale"]) - mean[:c].reshape(1, c, 1, 1)) / std[:c].reshape(1, c, 1, 1)
x = x.astype(np.float32)
np.save(out + ".npy", x)
with open(out + ".pb", "wb") as f:
    f.write(numpy_helper.from_array(x, "input").SerializeToString())
PY
}

# check MODEL KIND : magpie-infer and cv2.dnn on the same input, within 1e-4
check() {
  local model=$1 kind=$2 name
  name=$(basename "$model" .onnx)
  input "$name" "$kind" "${model%.onnx}.json"
  "$infer" --model "$model" --raw "$tmp/$name.pb" > "$tmp/$name-magpie.jsonl"
  "${peer[@]}" run --engine opencv --model "$model" --input "$tmp/$name.npy" \
    --out "$tmp/$name-cv.npy" >/dev/null
  "$python" - "$tmp/$name-magpie.jsonl" "$tmp/$name-cv.npy" "$name" <<'PY'
import json, sys
import numpy as np
magpie = np.asarray([json.loads(l)["output"] for l in open(sys.argv[1]) if l.strip()],
                    np.float32)
cv = np.load(sys.argv[2]).reshape(magpie.shape)
assert magpie.shape == (8, 10), magpie.shape
assert np.allclose(magpie.sum(axis=1), 1.0, atol=1e-4), "outputs are not probabilities"
diff = float(np.abs(magpie - cv).max())
print(f"{sys.argv[3]}: magpie vs opencv max abs diff {diff:.3g} over {magpie.size} "
      f"probabilities, predictions {magpie.argmax(1).tolist()}")
sys.exit(0 if diff <= 1e-4 else 1)
PY
}

failed=0
# A short run: every layer kind and the BN statistics go through the exporter.
"$train" digits --mnist "$shared/mnist" --out "$tmp/fresh.onnx" --epochs 1 --fraction 0.05 \
  --quiet > "$tmp/train.log"
tail -1 "$tmp/train.log"
check "$tmp/fresh.onnx" digits || failed=1
for m in digits photos; do
  if [ -f "$src/data/models/$m.onnx" ]; then
    if [ "$m" = photos ] && [ ! -f "$shared/cifar10/test_batch.bin.gz" ]; then
      echo "photos: CIFAR-10 is not in $shared/cifar10, not checked"
      continue
    fi
    check "$src/data/models/$m.onnx" "$m" || failed=1
  fi
done
exit "$failed"
