#!/usr/bin/env bash
# tools/deps.sh - install what Magpie needs from Debian 12, and nothing when it is all there.
#
# The one list of the project's system packages. Idempotent: dpkg-query checks first, so a
# machine that has everything costs well under a second. Run as root (or with sudo on PATH).
set -euo pipefail

PACKAGES=(
  # toolchain and build
  gcc pkg-config meson ninja-build gettext libglib2.0-dev-bin
  # app and shared libraries
  libgtk-4-dev libadwaita-1-dev libsoup-3.0-dev libjson-glib-dev libgdk-pixbuf-2.0-dev
  libsecret-1-dev libsqlite3-dev libpq-dev libsodium-dev libcairo2-dev
  webp-pixbuf-loader
  # engine: ONNX via protobuf-c, kernels from XNNPACK and OpenBLAS
  libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata
  libxnnpack-dev libpthreadpool-dev libopenblas-dev zlib1g-dev
  # engine peers for benchmarks and agreement checks (tools/nn-peer.py)
  python3-torch python3-torchvision python3-opencv python3-onnx python3-numpy
  # desktop session for the UI tests, data validators
  xvfb xauth x11-utils dbus dbus-x11 gnome-keyring at-spi2-core imagemagick
  desktop-file-utils appstream flatpak-builder
  # test peers: real S3 clients, a real PostgreSQL, HTTP tools
  awscli python3-boto3 rclone s3cmd postgresql curl valgrind wrk
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

echo "magpie: installing ${#missing[@]} Debian packages: ${missing[*]}" >&2
SUDO=
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# An install that fails on a stale package list is retried once after refreshing it.
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
