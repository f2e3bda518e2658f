#!/bin/sh
# run-fuzz.sh TARGET SEEDS WORKDIR - one libFuzzer target for a bounded time
#
# Runs every seed first, then mutates for MAGPIE_FUZZ_SECONDS (default 20). New inputs go to
# WORKDIR/corpus and crashes to WORKDIR/artifacts, so the committed seeds never change.
# SEEDS.dict, when present, is the target's dictionary.
set -eu
target=$1
seeds=$2
work=$3
mkdir -p "$work/corpus" "$work/artifacts"
dict=
if [ -f "$seeds.dict" ]; then
  dict="-dict=$seeds.dict"
fi
# shellcheck disable=SC2086
exec "$target" -max_total_time="${MAGPIE_FUZZ_SECONDS:-20}" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -error_exitcode=1 -artifact_prefix="$work/artifacts/" $dict "$work/corpus" "$seeds"
