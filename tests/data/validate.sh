#!/usr/bin/env bash
# validate.sh TOOL ARGS... - run a data-file validator, or skip (exit 77) when it is missing.
set -u

tool=$1
shift
if ! command -v "$tool" >/dev/null 2>&1; then
  echo "skipped: $tool is not installed (tools/deps.sh installs it)"
  exit 77
fi
exec "$tool" "$@"
