#!/usr/bin/env bash
# test-flatpak.sh MANIFEST APP_ID - flatpak-builder reads the manifest and it names the app.
set -u

manifest=$1
app_id=$2
if ! command -v flatpak-builder >/dev/null 2>&1; then
  echo "skipped: flatpak-builder not installed"
  exit 77
fi

# flatpak-builder leaves a .flatpak-builder state directory wherever it runs: not in the tree.
manifest=$(realpath "$manifest")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

if ! out=$(flatpak-builder --show-manifest "$manifest" 2>&1); then
  echo "flatpak-builder cannot read $manifest:"
  echo "$out"
  exit 1
fi
for want in "\"id\" : \"$app_id\"" '"command" : "magpie"' '"runtime-version" : "43"' \
            '"-Dtests=false"'; do
  if ! grep -qF "$want" <<<"$out"; then
    echo "the manifest as flatpak-builder reads it lacks $want:"
    echo "$out"
    exit 1
  fi
done
echo "ok: $manifest builds $app_id"
