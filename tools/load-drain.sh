#!/usr/bin/env bash
# load-drain.sh - how fast magpied's workers drain a backlog (the seed 003 experiment)
#
# usage: tools/load-drain.sh --photos DIR --out DIR [--users 100] [--photos-per-user 10]
#                            [--watch 120] [--data DIR] [--build build] [-- MAGPIED_ARGS...]
#
# 1. Starts magpied without a photo model, so jobs wait queued, and has magpie-load upload
#    USERS × PHOTOS_PER_USER photos the way the app does (identity, credentials, PutObject,
#    POST /v1/photos) until /metrics shows them all queued.
# 2. Restarts magpied on the same data with its photo model (and MAGPIED_ARGS, e.g.
#    --workers 1:4), and runs `magpie-load --mode watch` for --watch seconds: /metrics every
#    second, the queue table (images/min per 10 s) and the charts in OUT/drain.
# Both magpied runs are children of this script and stopped by PID; the data directory (a new
# temporary one unless --data is given) is removed at the end. Prints the server's CPU-seconds.
set -euo pipefail

build=build photos= out= users=100 per_user=10 watch=120 data=
while [ $# -gt 0 ]; do
  case "$1" in
    --photos) photos=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --users) users=$2; shift 2 ;;
    --photos-per-user) per_user=$2; shift 2 ;;
    --watch) watch=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "load-drain: unknown argument '$1' (see the head of $0)" >&2; exit 2 ;;
  esac
done
if [ -z "$photos" ] || [ -z "$out" ] || [ $((users % 10)) -ne 0 ] || [ "$users" -lt 10 ]; then
  echo "load-drain: --photos DIR and --out DIR are required; --users is a multiple of 10" >&2
  exit 2
fi
magpied=$build/server/magpied
load=$build/tools/magpie-load/magpie-load
[ -x "$magpied" ] && [ -x "$load" ] || { echo "load-drain: build first ($magpied, $load)" >&2; exit 2; }

own_data=
if [ -z "$data" ]; then
  data=$(mktemp -d /tmp/load-drain-XXXXXX)
  own_data=1
fi
mkdir -p "$out"
server=
cleanup() {
  if [ -n "$server" ]; then kill "$server" 2> /dev/null || true; wait "$server" 2> /dev/null || true; fi
  if [ -n "$own_data" ]; then rm -rf "$data"; fi
}
trap cleanup EXIT

port=$((20000 + RANDOM % 20000))
url=http://127.0.0.1:$port
want=$((users * per_user))

start_server() {
  "$magpied" --listen 127.0.0.1:$port --data-dir "$data/server" "$@" > "$out/server-$phase.log" 2>&1 &
  server=$!
  for _ in $(seq 200); do
    curl -sf "$url/healthz" > /dev/null && return 0
    sleep 0.05
  done
  echo "load-drain: magpied did not start; see $out/server-$phase.log" >&2
  exit 1
}
stop_server() {
  echo "$phase: magpied used $(awk '{ printf "%.2f", ($14 + $15) / 100 }' /proc/$server/stat) CPU-seconds"
  kill "$server"; wait "$server" || true
  server=
}

phase=fill
start_server --photo-model /nonexistent/no-model.onnx "$@"
start=$(date +%s)
"$load" --url "$url" --photos "$photos" --photos-per-user "$per_user" \
  --phases "steady:10s:$((users / 10))/s" --concurrency "$users" --timeout 3600 \
  --out "$out/fill" 2> "$out/fill.log" &
loader=$!
depth=0
while [ "${depth:-0}" -lt "$want" ]; do
  sleep 1
  depth=$(curl -s "$url/metrics" | awk '$1 == "magpied_queue_depth" { print $2 }')
  if ! kill -0 "$loader" 2> /dev/null; then
    echo "load-drain: magpie-load ended before $want photos were queued (see $out/fill.log)" >&2
    exit 1
  fi
done
echo "fill: $want photos queued in $(( $(date +%s) - start )) s"
# the loader's users are still waiting for tags that cannot come: end them
kill -INT "$loader"; wait "$loader" || true
stop_server

phase=drain
start_server "$@"
"$load" --url "$url" --mode watch --phases "pause:${watch}s" --out "$out/drain" 2> "$out/drain.log"
stop_server
sed -n '/^| window/,/^$/p' "$out/drain/summary.md"
