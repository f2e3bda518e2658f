#!/usr/bin/env bash
# with-postgres.sh CMD... - run CMD beside a private PostgreSQL server, with MAGPIE_TEST_DB set.
#
# The server is this script's own child, started on a unix socket in a fresh temp dir (no TCP
# port, so parallel tests never collide) and stopped by its PID whatever CMD does. The tests
# make one database per catalog in it (tests/common/mp-test-util.c, mp_test_db_location).
#
# initdb is slow on a loaded 2-core machine (15 s and more), so one cluster is initialised per
# build directory under a lock and copied for each run. fsync is off: a test cluster dies with
# its test, and the tests kill clients and magpied, never the database server.
set -u

pg_bin=${MAGPIE_PG_BIN:-}
if [ -z "$pg_bin" ]; then
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/postgres" ] && pg_bin=$d
  done
fi
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "with-postgres: PostgreSQL is not installed (tools/deps.sh installs it)" >&2
  exit 77
fi

# PostgreSQL refuses to run as root: as root, run it as the postgres user.
as_pg=()
owner=$(id -un)
if [ "$(id -u)" = 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    echo "with-postgres: running as root and there is no postgres user to run the server" >&2
    exit 77
  fi
  owner=postgres
  # setpriv execs, so the PID we hold is the server's own (runuser would sit in between).
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups)
fi

cache=${MAGPIE_BUILD_DIR:-${TMPDIR:-/tmp}}/pg-template
(
  flock 9
  if [ ! -f "$cache/data/PG_VERSION" ]; then
    # initdb runs in a fresh temp dir the server's user owns (it may not reach into the build
    # dir), and the result is copied into place.
    stage=$(mktemp -d "${TMPDIR:-/tmp}/magpie-initdb-XXXXXX")
    chown "$owner" "$stage"
    if ! "${as_pg[@]}" "$pg_bin/initdb" -D "$stage/data" -U postgres --auth=trust \
         --encoding=UTF8 --locale=C.UTF-8 -N >"$stage/initdb.log" 2>&1; then
      echo "with-postgres: initdb failed:" >&2
      cat "$stage/initdb.log" >&2
      rm -rf "$stage"
      exit 1
    fi
    rm -rf "$cache"
    mkdir -p "$cache"
    cp -a "$stage/data" "$cache/data"
    rm -rf "$stage"
  fi
) 9>"${cache}.lock" || exit 1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/magpie-pg-XXXXXX")
pg_pid=
cleanup() {
  if [ -n "$pg_pid" ]; then
    kill -INT "$pg_pid" 2>/dev/null   # fast shutdown: roll back, close clients, stop
    wait "$pg_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

cp -a "$cache/data" "$tmp/data"
mkdir "$tmp/sock"
chown "$owner" "$tmp" "$tmp/sock"
chmod 0700 "$tmp/data"

"${as_pg[@]}" "$pg_bin/postgres" -D "$tmp/data" -k "$tmp/sock" -c listen_addresses= \
  -c fsync=off -c max_connections=200 -c shared_buffers=32MB >"$tmp/server.log" 2>&1 &
pg_pid=$!

for _ in $(seq 300); do
  "$pg_bin/pg_isready" -q -h "$tmp/sock" -U postgres && break
  if ! kill -0 "$pg_pid" 2>/dev/null; then
    echo "with-postgres: the server did not start:" >&2
    cat "$tmp/server.log" >&2
    pg_pid=
    exit 1
  fi
  sleep 0.1
done
if ! "$pg_bin/pg_isready" -q -h "$tmp/sock" -U postgres; then
  echo "with-postgres: the server did not answer within 30 s:" >&2
  cat "$tmp/server.log" >&2
  exit 1
fi

export MAGPIE_TEST_DB="postgresql://postgres@/postgres?host=$tmp/sock"
"$@"
