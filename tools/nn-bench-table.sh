#!/usr/bin/env bash
# tools/nn-bench-table.sh - Magpie's engine beside OpenCV DNN and PyTorch, as a Markdown table.
#
# For resnet18, mobilenet_v2 and squeezenet1_1 at batch 1 and 8 on 2 threads: exports the
# random-weight models into a temporary directory, times OpenCV, TorchScript and eager PyTorch
# with tools/nn-peer.py and, when it is built, magpie-bench on the same file; then prints the
# table and what OpenBLAS sgemm reaches here (tools/sgemm-gflops.c), the ceiling for a
# GEMM-based convolution.
#
#   MAGPIE_BENCH   magpie-bench to run (default build/tools/magpie-bench/magpie-bench);
#                  called as: magpie-bench --model F.onnx --batch N --threads N --seconds S
#   NN_BENCH_SECONDS  timed seconds per run (default 10)
#   NN_BENCH_MODELS   models to run (default "resnet18 mobilenet_v2 squeezenet1_1")
#   NN_BENCH_BATCHES  batch sizes (default "1 8")
#   NN_BENCH_QUIET_WAIT  seconds each row waits for an idle second first (default 60)
#   NN_BENCH_WINOGRAD_AB=1  also a "magpie-direct" row per model and batch: magpie-bench with
#                  MAGPIE_NN_WINOGRAD=0 (no Winograd convolutions), right after the default
#                  one, so one run shows what Winograd changes beside the peers.
# e.g. only the resnet18 batch 1 rows, Winograd on and off:
#   NN_BENCH_MODELS=resnet18 NN_BENCH_BATCHES=1 NN_BENCH_WINOGRAD_AB=1 tools/nn-bench-table.sh
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
peer=("/usr/bin/python3" "$root/tools/nn-peer.py")
magpie_bench=${MAGPIE_BENCH:-$root/build/tools/magpie-bench/magpie-bench}
seconds=${NN_BENCH_SECONDS:-10}
quiet_wait=${NN_BENCH_QUIET_WAIT:-60}
threads=2
read -r -a models <<<"${NN_BENCH_MODELS:-resnet18 mobilenet_v2 squeezenet1_1}"
read -r -a batches <<<"${NN_BENCH_BATCHES:-1 8}"
variants=(magpie)
[ "${NN_BENCH_WINOGRAD_AB:-0}" = 1 ] && variants+=(magpie-direct)
peers=(opencv torch-jit torch-eager)
# OpenBLAS 0.3.21 takes this machine's AVX-512 CPU for Haswell; every engine gets the same
# kernels Magpie's own tests run with.
export OPENBLAS_CORETYPE=SkylakeX

if ! /usr/bin/python3 -c 'import cv2, numpy, onnx, torch, torchvision' 2>/dev/null; then
  echo "nn-bench-table: Debian's python3-torch, -torchvision, -opencv, -onnx or -numpy is" \
       "missing (run tools/deps.sh)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
results=$tmp/results.jsonl

with_magpie=0
if [ -x "$magpie_bench" ]; then
  with_magpie=1
else
  echo "nn-bench-table: no executable magpie-bench at $magpie_bench; peers only" >&2
fi

for model in "${models[@]}"; do
  echo "nn-bench-table: exporting $model" >&2
  "${peer[@]}" export --model "$model" --out "$tmp/$model.onnx"
  "${peer[@]}" export --model "$model" --out "$tmp/$model-opencv.onnx" --for opencv
  for batch in "${batches[@]}"; do
    for engine in "${peers[@]}"; do
      file=$tmp/$model.onnx
      [ "$engine" = opencv ] && file=$tmp/$model-opencv.onnx
      # Another build on these 2 cores makes OpenMP spin-waits collapse; such a run is
      # repeated, and marked in the table if it never got the machine to itself.
      for attempt in 1 2 3; do
        echo "nn-bench-table: $model batch $batch $engine (attempt $attempt)" >&2
        "${peer[@]}" bench --engine "$engine" --model "$file" --batch "$batch" \
          --threads "$threads" --seconds "$seconds" --quiet-wait "$quiet_wait" \
          >"$tmp/row.json" 2>"$tmp/row.err" || {
          cat "$tmp/row.err" >&2
          exit 1
        }
        noisy=false
        if grep -q '^nn-peer: noisy:' "$tmp/row.err"; then
          noisy=true
          grep '^nn-peer: noisy:' "$tmp/row.err" >&2
          [ "$attempt" -lt 3 ] && continue
        fi
        break
      done
      NOISY=$noisy /usr/bin/python3 -c '
import json, os, sys
row = json.load(sys.stdin)
row["noisy"] = os.environ["NOISY"] == "true"
print(json.dumps(row))' <"$tmp/row.json" >>"$results"
    done
    for variant in "${variants[@]}"; do
      [ "$with_magpie" = 1 ] || break
      wino=()
      [ "$variant" = magpie-direct ] && wino=(env MAGPIE_NN_WINOGRAD=0)
      # The same quiet wait, noise check and retries as the peers get.
      noisy=false
      for attempt in 1 2 3; do
        echo "nn-bench-table: $model batch $batch $variant (attempt $attempt)" >&2
        # A model Magpie cannot run yet is a row that says so, not the end of the table.
        if ! out=$("${peer[@]}" timed --quiet-wait "$quiet_wait" -- "${wino[@]}" "$magpie_bench" \
                     --model "$tmp/$model.onnx" --batch "$batch" --threads "$threads" \
                     --seconds "$seconds" 2>"$tmp/row.err"); then
          cat "$tmp/row.err" >&2
          out='{"failed": true}'
          break
        fi
        noisy=false
        if grep -q '^nn-peer: noisy:' "$tmp/row.err"; then
          noisy=true
          grep '^nn-peer: noisy:' "$tmp/row.err" >&2
          [ "$attempt" -lt 3 ] && continue
        fi
        break
      done
      printf '%s\n' "$out" | MODEL=$model BATCH=$batch THREADS=$threads NOISY=$noisy ENGINE=$variant \
        /usr/bin/python3 -c '
import json, os, sys
row = json.loads(sys.stdin.read())
row.update(engine=os.environ["ENGINE"], model=os.environ["MODEL"], batch=int(os.environ["BATCH"]),
           threads=int(os.environ["THREADS"]), noisy=os.environ["NOISY"] == "true")
print(json.dumps(row))' >>"$results"
    done
  done
done

/usr/bin/python3 - "$results" "$seconds" <<'EOF'
import json, sys

rows = [json.loads(line) for line in open(sys.argv[1])]
ips = {(r["model"], r["batch"], r["engine"]): r.get("images_per_second") for r in rows}

def ratio(row, peer):
    base = ips.get((row["model"], row["batch"], peer))
    if not row["engine"].startswith("magpie") or row.get("failed") or not base:
        return ""
    return f"{row['images_per_second'] / base:.2f}×"

print(f"{rows[0]['threads']} threads, {sys.argv[2]} s timed per row after warm-up, "
      "OPENBLAS_CORETYPE=SkylakeX")
if any(r.get("noisy") for r in rows):
    print("(* other processes took over 5% of the CPUs during that run, three times in a row)")
print()
print("| model | batch | engine | images/s | p50 ms | p95 ms | peak RSS MB "
      "| Magpie vs OpenCV | Magpie vs PyTorch JIT |")
print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    if r.get("failed"):
        print(f"| {r['model']} | {r['batch']} | {r['engine']} | failed | | | | | |")
        continue
    engine = r["engine"] + (" *" if r.get("noisy") else "")
    print(f"| {r['model']} | {r['batch']} | {engine} | {r['images_per_second']:.1f} "
          f"| {r['ms_per_batch_p50']:.2f} | {r['ms_per_batch_p95']:.2f} | {r['peak_rss_mb']:.0f} "
          f"| {ratio(r, 'opencv')} | {ratio(r, 'torch-jit')} |")
EOF

echo
if cc -O2 -o "$tmp/sgemm-gflops" "$root/tools/sgemm-gflops.c" -lopenblas 2>"$tmp/cc.log"; then
  echo "OpenBLAS sgemm, $threads threads (tools/sgemm-gflops.c):"
  echo
  OPENBLAS_NUM_THREADS=$threads "$tmp/sgemm-gflops" 3 | /usr/bin/python3 -c '
import json, sys
for line in sys.stdin:
    print("- {shape} M={M} N={N} K={K} ({core}): {gflops_mean:.0f} GFLOP/s mean, "
          "{gflops_best:.0f} best".format(**json.loads(line)))'
else
  echo "OpenBLAS sgemm: not measured, tools/sgemm-gflops.c did not build:" >&2
  cat "$tmp/cc.log" >&2
fi
