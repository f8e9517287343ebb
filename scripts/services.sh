#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis answer at DATABASE_URL and REDIS_URL.
# Where they already answer (this machine, CI, a developer's own setup) it only
# checks. Otherwise, for loopback addresses, it installs them from the OS
# packages when missing and starts private instances with data under .data/
# (git-ignored). PostgreSQL refuses to run as root, so as root it runs as the
# postgres user. Finally it creates the application database if absent.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
data="$root/.data"
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/svyazka?sslmode=disable}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}

log() { printf 'services: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# host_port URL DEFAULT_PORT -> "host port"
host_port() {
  local rest=${1#*://}
  rest=${rest#*@}
  rest=${rest%%/*}
  rest=${rest%%\?*}
  local host=${rest%:*} port=${rest##*:}
  [ "$host" = "$rest" ] && port=$2
  [ -z "$host" ] && host=127.0.0.1
  echo "$host $port"
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }
is_loopback() { case $1 in 127.*|localhost|::1) return 0 ;; *) return 1 ;; esac; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
  command -v apt-get >/dev/null || die "cannot install $*: no apt-get; install them yourself"
  log "installing $* from the OS packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_port() {
  for _ in $(seq 1 100); do port_open "$1" "$2" && return 0; sleep 0.1; done
  return 1
}

ensure_postgres() {
  read -r host port < <(host_port "$DATABASE_URL" 5432)
  if port_open "$host" "$port"; then return 0; fi
  is_loopback "$host" || die "PostgreSQL at $host:$port does not answer (DATABASE_URL points at a remote server)"
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || apt_install postgresql postgresql-client
  local bin
  bin=$(dirname "$(ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
  local dir="$data/postgres-$port" run=()
  if [ "$(id -u)" = 0 ]; then
    run=(runuser -u postgres --)
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    # The postgres user must reach the folder; under a private home (/root) it
    # cannot, so fall back to a folder of its own outside the repository.
    if ! runuser -u postgres -- test -w "$dir"; then
      dir="/var/tmp/svyazka-postgres-$port"
      mkdir -p "$dir" && chown postgres:postgres "$dir"
    fi
  fi
  mkdir -p "$dir"
  if [ ! -f "$dir/PG_VERSION" ]; then
    log "initialising a PostgreSQL cluster in $dir"
    "${run[@]}" "$bin/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  log "starting PostgreSQL on $host:$port"
  "${run[@]}" "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w \
    -o "-c listen_addresses=$host -p $port -k $dir" start >/dev/null
  wait_port "$host" "$port" || die "PostgreSQL did not start; see $dir/server.log"
}

ensure_redis() {
  read -r host port < <(host_port "$REDIS_URL" 6379)
  if port_open "$host" "$port"; then return 0; fi
  is_loopback "$host" || die "Redis at $host:$port does not answer (REDIS_URL points at a remote server)"
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p "$data/redis-$port"
  log "starting Redis on $host:$port"
  redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
    --dir "$data/redis-$port" --logfile "$data/redis-$port/redis.log"
  wait_port "$host" "$port" || die "Redis did not start; see $data/redis-$port/redis.log"
}

# ensure_database creates the database named in DATABASE_URL when missing.
ensure_database() {
  command -v psql >/dev/null || apt_install postgresql-client
  local name=${DATABASE_URL##*/}
  name=${name%%\?*}
  local admin=${DATABASE_URL%/*}/postgres
  case $DATABASE_URL in *\?*) admin="$admin?${DATABASE_URL#*\?}" ;; esac
  if [ "$(psql "$admin" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]; then
    log "creating database $name"
    psql "$admin" -qc "CREATE DATABASE \"$name\"" >/dev/null
  fi
}

ensure_postgres
ensure_redis
ensure_database
log "PostgreSQL and Redis are ready"
