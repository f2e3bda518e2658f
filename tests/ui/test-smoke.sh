#!/usr/bin/env bash
# test-smoke.sh MAGPIE MAGPIED OUTDIR - start the built app against a real magpied, wait for its
# window, take a screenshot of the display and check it is not blank.
#
# Runs inside tests/with-display.sh (its own Xvfb and D-Bus session). The screenshot stays in
# OUTDIR/magpie-main.png for people to look at. Every process started here is stopped by PID.
set -u

magpie=$1
magpied=$2
outdir=$3
shot="$outdir/magpie-main.png"
min_colours=64

for tool in xwininfo import identify; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "skipped: $tool is not installed (x11-utils, imagemagick in tools/deps.sh)"
    exit 77
  fi
done

tmp=$(mktemp -d)
magpie_pid=
magpied_pid=
cleanup() {
  for pid in $magpie_pid $magpied_pid; do
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  for log in "$tmp"/*.log; do
    [ -s "$log" ] && { echo "--- $(basename "$log")"; cat "$log"; }
  done
  exit 1
}

# A real server on a port the kernel picks, so the header shows a live connection.
"$magpied" --listen 127.0.0.1:0 --data-dir "$tmp/data" 2>"$tmp/magpied.log" >/dev/null &
magpied_pid=$!
url=
for _ in $(seq 100); do
  url=$(grep -o 'url=http://[^ ]*' "$tmp/magpied.log" | head -n1 | cut -d= -f2)
  [ -n "$url" ] && break
  kill -0 "$magpied_pid" 2>/dev/null || fail "magpied exited during start-up"
  sleep 0.1
done
[ -n "$url" ] || fail "magpied did not announce its URL"
echo "magpied at $url"

"$magpie" --server-url "$url" >"$tmp/magpie.log" 2>&1 &
magpie_pid=$!

mapped=
for _ in $(seq 200); do
  kill -0 "$magpie_pid" 2>/dev/null || fail "magpie exited before showing its window"
  if xwininfo -name Magpie 2>/dev/null | grep -q 'Map State: IsViewable'; then
    mapped=yes
    break
  fi
  sleep 0.1
done
[ -n "$mapped" ] || fail "no mapped window named Magpie after 20 s"
echo "window mapped:"
xwininfo -name Magpie | grep -E 'Window id|Width|Height'

# Let the first frames draw and the connection check (immediate on start) land.
sleep 2
kill -0 "$magpie_pid" 2>/dev/null || fail "magpie exited after showing its window"

mkdir -p "$outdir"
rm -f "$shot"
import -window root "$shot" || fail "import could not take a screenshot"
colours=$(identify -format '%k' "$shot") || fail "identify cannot read $shot"
size=$(identify -format '%wx%h' "$shot")
echo "screenshot: $shot ($size, $colours distinct colours)"
if [ "$colours" -lt "$min_colours" ]; then
  fail "the screenshot looks blank: $colours colours, expected at least $min_colours"
fi

kill -0 "$magpie_pid" 2>/dev/null || fail "magpie exited while being photographed"
kill "$magpie_pid"
wait "$magpie_pid" 2>/dev/null
magpie_pid=
echo "ok: magpie showed a window that is not blank"
