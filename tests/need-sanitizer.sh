#!/usr/bin/env bash
# Stands in for the test under `meson test --setup=asan` on a build without sanitizers.
echo "the asan setup needs a build with sanitizers:" >&2
echo "  meson setup build-asan -Db_sanitize=address,undefined && meson test -C build-asan --setup=asan" >&2
echo "  (or: tools/magpie-test --asan)" >&2
exit 1
