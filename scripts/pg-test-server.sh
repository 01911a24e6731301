#!/usr/bin/env bash
# A private PostgreSQL server for the tests, from Debian's postgresql-15 binaries: `start DIR`
# makes a new cluster in DIR (initdb, user "pb", trust authentication) and starts it listening
# only on a Unix socket in DIR (no TCP port, no system service); `stop DIR` stops it and removes
# DIR; `pause DIR` stops it and keeps it, `resume DIR` starts it again as it was (tests of a
# database that goes away). Tests reach it as postgresql://pb@/postgres?host=DIR. With PG_TEST_PORT set, it also
# listens on 127.0.0.1 at that port, where "pb" must give PG_TEST_PASSWORD (SCRAM), as a site's
# server would ask. Durability is off (a test cluster is thrown away) unless PG_TEST_DURABLE=1.
# PG_TEST_TMPFS_MB=N (root only): DIR/small is a tmpfs of N MB that the server alone sees (it runs
# in a private mount namespace), for a tablespace that fills up (tests of a full disk); it is gone
# once the server stops, so `pause` and `resume` do not apply to such a cluster.
# PostgreSQL refuses to run as root: as root, the cluster belongs to the
# "postgres" user that the Debian package creates.
set -euo pipefail
cmd=${1:?usage: pg-test-server.sh start|stop|pause|resume DIR}
dir=${2:?usage: pg-test-server.sh start|stop|pause|resume DIR}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "pg-test-server.sh: PostgreSQL's server binaries are missing (Debian package postgresql-15)" >&2
  exit 1
fi
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
stop() {
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}
case "$cmd" in
  start)
    stop  # what an interrupted earlier run left
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    auth=(--auth=trust)
    listen="''"
    if [ -n "${PG_TEST_PORT:-}" ]; then
      printf '%s\n' "${PG_TEST_PASSWORD:?PG_TEST_PORT needs PG_TEST_PASSWORD}" >"$dir/pw"
      [ "$(id -u)" = 0 ] && chown postgres: "$dir/pw"
      auth=(--auth-local=trust --auth-host=scram-sha-256 --pwfile="$dir/pw")
      listen="127.0.0.1 -p $PG_TEST_PORT"
    fi
    as_owner "$bin/initdb" -D "$dir/data" -U pb "${auth[@]}" -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    rm -f "$dir/pw"
    # Durability off: a test cluster is thrown away (the product's own durability is PostgreSQL's).
    # PG_TEST_DURABLE=1 (benchmarks): PostgreSQL's own defaults, every commit flushed.
    durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [ "${PG_TEST_DURABLE:-0}" = 1 ] && durability=""
    echo "-c listen_addresses=$listen -k $dir $durability -c max_connections=200" >"$dir/options"
    if [ -n "${PG_TEST_TMPFS_MB:-}" ]; then
      [ "$(id -u)" = 0 ] || { echo "pg-test-server.sh: PG_TEST_TMPFS_MB needs root (a mount namespace)" >&2; exit 1; }
      mkdir -p "$dir/small"
      # The server (pg_ctl's child) stays in the namespace, and the tmpfs with it.
      unshare -m --propagation private bash -c \
        'mount -t tmpfs -o "size=$1m,mode=700" tmpfs "$2" && chown postgres: "$2" && shift 2 && exec "$@"' \
        bash "$PG_TEST_TMPFS_MB" "$dir/small" \
        runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$(cat "$dir/options")" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    else
      as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$(cat "$dir/options")" start >/dev/null ||
        { cat "$dir/server.log" >&2; exit 1; }
    fi
    echo "postgresql://pb@/postgres?host=$dir${PG_TEST_PORT:+&port=$PG_TEST_PORT}"
    ;;
  stop) stop ;;
  pause) as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null ;;
  resume)
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$(cat "$dir/options")" start >/dev/null ||
      { cat "$dir/server.log" >&2; exit 1; }
    ;;
  *) echo "pg-test-server.sh: unknown command $cmd" >&2; exit 2 ;;
esac
