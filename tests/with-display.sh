#!/usr/bin/env bash
# with-display.sh CMD... - run CMD in a fresh Xvfb display and D-Bus session, with an unlocked
# keyring in that session as a desktop login gives one.
#
# Xvfb is started by this script and stopped by its PID, whatever CMD does; the display
# number is one Xvfb picks itself (-displayfd), so parallel tests never collide. Inside the
# session bus, gnome-keyring-daemon (when installed) is started as this script's child with a
# login keyring unlocked by a password on its stdin, and stopped by its PID: without it, the
# first secret stored makes the bus start one that asks for a new keyring's password in a
# dialog no test can answer (and that covers every screenshot taken meanwhile).
set -u

# Second stage, inside dbus-run-session: the keyring, then CMD.
if [ "${1:-}" = "--in-session" ]; then
  shift
  keyring_pid=
  if command -v gnome-keyring-daemon >/dev/null 2>&1; then
    mkdir -m 0700 "$XDG_RUNTIME_DIR/keyring-data"
    # Its keyrings (encrypted with this password) in the private runtime dir, never in a home.
    XDG_DATA_HOME="$XDG_RUNTIME_DIR/keyring-data" \
      gnome-keyring-daemon --foreground --unlock --components=secrets \
      <<<"magpie-test-keyring" >"$XDG_RUNTIME_DIR/keyring.log" 2>&1 &
    keyring_pid=$!
    for _ in $(seq 100); do
      if dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
           org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null |
         grep -q 'boolean true'; then
        break
      fi
      kill -0 "$keyring_pid" 2>/dev/null || { keyring_pid=; break; }
      sleep 0.1
    done
  fi
  "$@"
  status=$?
  if [ -n "$keyring_pid" ]; then
    kill "$keyring_pid" 2>/dev/null
    wait "$keyring_pid" 2>/dev/null
  fi
  exit "$status"
fi

if ! command -v Xvfb >/dev/null 2>&1; then
  echo "with-display: Xvfb is not installed (tools/deps.sh installs it)" >&2
  exit 77
fi

fifo_dir=$(mktemp -d)
trap 'rm -rf "$fifo_dir"' EXIT
mkfifo "$fifo_dir/displayfd"

Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp -noreset \
  3>"$fifo_dir/displayfd" 2>"$fifo_dir/xvfb.log" &
xvfb_pid=$!

display=
if read -r -t 15 display <"$fifo_dir/displayfd"; then :; fi
if [ -z "$display" ]; then
  echo "with-display: Xvfb did not start:" >&2
  cat "$fifo_dir/xvfb.log" >&2
  kill "$xvfb_pid" 2>/dev/null
  wait "$xvfb_pid" 2>/dev/null
  exit 1
fi

# A private runtime dir: services the session bus activates put their sockets and control dirs
# there, and the trap removes them with the rest.
mkdir -m 0700 "$fifo_dir/runtime"
export XDG_RUNTIME_DIR="$fifo_dir/runtime"
# Private data, config and cache dirs too: an app under test must never read or write the
# user's library (one written by a newer Magpie would stop it from starting). Tests that
# need their own (tests/app/app-test-util.c) set them again.
for d in data config cache; do
  mkdir -m 0700 "$fifo_dir/$d"
done
export XDG_DATA_HOME="$fifo_dir/data" XDG_CONFIG_HOME="$fifo_dir/config" XDG_CACHE_HOME="$fifo_dir/cache"
export DISPLAY=":$display"
unset WAYLAND_DISPLAY
export GDK_BACKEND=x11
dbus-run-session -- "$0" --in-session "$@"
status=$?

kill "$xvfb_pid" 2>/dev/null
wait "$xvfb_pid" 2>/dev/null
exit "$status"
