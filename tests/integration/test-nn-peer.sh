#!/usr/bin/env bash
# test-nn-peer.sh - the benchmark peers agree with each other, so a disagreement with Magpie's
# engine is Magpie's: squeezenet1_1 (the smallest model) exported for OpenCV, one forward pass
# in OpenCV from a .npy and in TorchScript from an ONNX TensorProto .pb, outputs within 1e-4.
set -euo pipefail

src=${MAGPIE_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
python=/usr/bin/python3
peer=("$python" "$src/tools/nn-peer.py")

if ! "$python" -c 'import cv2, numpy, onnx, torch, torchvision' 2>/dev/null; then
  echo "skip: Debian's python3-torch, -torchvision, -opencv, -onnx or -numpy is not installed" \
       "(tools/deps.sh installs them)"
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"${peer[@]}" export --model squeezenet1_1 --for opencv --seed 5 --out "$tmp/m.onnx"

# One input, written both ways magpie-infer's inputs come.
"$python" - "$tmp" <<'PY'
import sys
import numpy as np
from onnx import numpy_helper
x = np.random.default_rng(11).standard_normal((2, 3, 224, 224), dtype=np.float32)
np.save(f"{sys.argv[1]}/x.npy", x)
with open(f"{sys.argv[1]}/x.pb", "wb") as f:
    f.write(numpy_helper.from_array(x, "input").SerializeToString())
PY

"${peer[@]}" run --engine opencv --model "$tmp/m.onnx" --input "$tmp/x.npy" --out "$tmp/cv.npy"
"${peer[@]}" run --engine torch-jit --model "$tmp/m.onnx" --input "$tmp/x.pb" --out "$tmp/jit.npy"

# Agreement means something only if the outputs are real: shaped (2, 1000), finite, not flat.
"$python" - "$tmp/cv.npy" <<'PY'
import sys
import numpy as np
y = np.load(sys.argv[1])
assert y.shape == (2, 1000), y.shape
assert np.isfinite(y).all()
assert y.std() > 1e-3, f"output is flat (std {y.std()})"
PY

echo "opencv vs torch-jit: $("${peer[@]}" compare "$tmp/cv.npy" "$tmp/jit.npy" --atol 1e-4)"

# And the check can fail: another seed's weights are told apart.
"${peer[@]}" export --model squeezenet1_1 --for opencv --seed 6 --out "$tmp/other.onnx"
"${peer[@]}" run --engine opencv --model "$tmp/other.onnx" --input "$tmp/x.npy" --out "$tmp/other.npy"
if "${peer[@]}" compare "$tmp/cv.npy" "$tmp/other.npy" --atol 1e-4 >/dev/null; then
  echo "compare accepted the outputs of two different models" >&2
  exit 1
fi
echo "ok"
