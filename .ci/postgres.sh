#!/usr/bin/env bash
# A throwaway PostgreSQL on loopback for the tests of persist/pgstore.
#
#   source .ci/postgres.sh     # sets and exports CAPTCHAFSM_TEST_PG
#   bash .ci/postgres.sh       # prints: export CAPTCHAFSM_TEST_PG=postgres://...
#
# Installs Debian's postgresql when no server binaries are found, then runs a
# cluster of its own: initdb in CAPTCHAFSM_PG_DIR (default
# /tmp/captchafsm-pg), as the postgres user when run as root, listening on
# 127.0.0.1 only (port CAPTCHAFSM_PG_PORT, default 55432, or the next free
# one), with trust authentication for local connections, and a database
# captchafsm_test. Idempotent: a cluster already running is reused, a
# stopped one restarted. Nothing is cleaned up; `pg_ctl -D DIR/data stop`
# stops it. Diagnostics go to stderr.
#
# Sourced, it changes no shell option of the caller; on failure it returns
# (or exits) non-zero with the reason on stderr and the server log's tail.

_captchafsm_pg() {
  local dir="${CAPTCHAFSM_PG_DIR:-/tmp/captchafsm-pg}"
  local port="${CAPTCHAFSM_PG_PORT:-55432}"
  local db=captchafsm_test
  local data="$dir/data" log="$dir/server.log"
  local say='echo postgres.sh:'

  # Server binaries: Debian keeps them off PATH, one directory per version.
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1) || true
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    if [ "$(id -u)" -ne 0 ]; then
      $say "PostgreSQL server binaries not found and not root: apt-get install postgresql" >&2
      return 1
    fi
    $say "installing Debian's postgresql" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) >&2 || {
      $say "apt-get install postgresql failed" >&2
      return 1
    }
    bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1) || true
    [ -n "$bin" ] && [ -x "$bin/initdb" ] || { $say "no initdb after installing postgresql" >&2; return 1; }
  fi

  # PostgreSQL refuses to run as root: as root, run it as postgres.
  local as=()
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$dir" --shell /usr/sbin/nologin postgres >&2 || return 1
    as=(runuser -u postgres --)
  fi
  mkdir -p "$dir" || return 1
  [ ${#as[@]} -eq 0 ] || chown postgres: "$dir" || return 1
  chmod 0700 "$dir"

  if [ ! -s "$data/PG_VERSION" ]; then
    rm -rf "$data"
    "${as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
      $say "initdb failed:" >&2; tail -n 20 "$dir/initdb.log" >&2; return 1
    }
  fi

  if "${as[@]}" "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    # Running already: keep its port.
    port=$(sed -n 4p "$data/postmaster.pid" 2>/dev/null)
  else
    # The first free port from the requested one on.
    local p
    for p in $(seq "$port" $((port + 50))); do
      if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
    done
    "${as[@]}" "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200 -c shared_buffers=128MB" >&2 || {
      $say "pg_ctl start failed:" >&2; tail -n 20 "$log" >&2; return 1
    }
  fi
  [ -n "$port" ] || { $say "cannot tell the server's port" >&2; return 1; }

  local psql=("$bin/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1)
  if [ "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    "${psql[@]}" -c "CREATE DATABASE $db" >&2 || { $say "create database $db failed" >&2; return 1; }
  fi
  CAPTCHAFSM_TEST_PG="postgres://postgres@127.0.0.1:$port/$db?sslmode=disable"
  export CAPTCHAFSM_TEST_PG
  $say "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port, data in $data" >&2
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  # Sourced.
  _captchafsm_pg && _captchafsm_pg_rc=0 || _captchafsm_pg_rc=$?
  unset -f _captchafsm_pg
  return $_captchafsm_pg_rc
fi
_captchafsm_pg || exit 1
echo "export CAPTCHAFSM_TEST_PG='$CAPTCHAFSM_TEST_PG'"
