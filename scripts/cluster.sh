#!/usr/bin/env bash
# cluster.sh (`make run`): a local natter cluster in the foreground.
# Installs missing packages, builds, then starts nats-server (JetStream), redis-server
# and PostgreSQL 15 with all data under .run/, then one router, one persister and two
# gateways. Ctrl-C or SIGTERM stops everything in order. A second run reuses .run/.
#
#   scripts/cluster.sh                 the whole cluster
#   scripts/cluster.sh --servers-only  only NATS, Redis and PostgreSQL (run the natter
#                                      binaries yourself, e.g. under gdb)
#
# NATTER_* settings already in the environment are passed on unchanged; only unset ones
# get the defaults below. The per-process ones (NATTER_LISTEN, NATTER_METRICS_LISTEN,
# NATTER_GATEWAY_ID) are set per process from the port variables below.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

servers_only=0
case "${1:-}" in
  --servers-only) servers_only=1 ;;
  "") ;;
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "usage: $0 [--servers-only]" >&2; exit 64 ;;
esac

# Ports of this local cluster (script settings, not read by the binaries).
NATS_PORT=${NATTER_NATS_PORT:-14222}
NATS_MON_PORT=${NATTER_NATS_MONITOR_PORT:-18222}
REDIS_PORT=${NATTER_REDIS_PORT:-16379}
PG_PORT=${NATTER_PG_PORT:-15432}
GW1_PORT=${NATTER_GW1_PORT:-8080}
GW2_PORT=${NATTER_GW2_PORT:-8081}
MBASE=${NATTER_METRICS_PORT_BASE:-9101}
ROUTER_MPORT=$MBASE PERSISTER_MPORT=$((MBASE + 1)) GW1_MPORT=$((MBASE + 2)) GW2_MPORT=$((MBASE + 3))
BIN=${NATTER_BIN_DIR:-build}
PGBIN=/usr/lib/postgresql/15/bin

RUN=$root/.run
LOGS=$RUN/logs
PGDIR=$RUN/pg               # owned by postgres: data/ and sock/
PGSOCK=$PGDIR/sock

# Shared settings for the natter processes (environment wins).
export NATTER_NATS_URL=${NATTER_NATS_URL:-nats://127.0.0.1:$NATS_PORT}
export NATTER_REDIS_URL=${NATTER_REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
export NATTER_PG_URL=${NATTER_PG_URL:-postgresql://postgres@127.0.0.1:$PG_PORT/natter}
export NATTER_JWT_SECRET=${NATTER_JWT_SECRET:-natter-local-dev-secret-do-not-use-in-production}
export NATTER_API_KEY=${NATTER_API_KEY:-natter-local-dev-api-key}
export NATTER_DEV_TOKENS=${NATTER_DEV_TOKENS:-1}
export NATTER_LOG_LEVEL=${NATTER_LOG_LEVEL:-info}

say() { printf 'natter: %s\n' "$*"; }
die() { printf 'natter: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- preparation
"$root/scripts/deps.sh"

if [ "$servers_only" = 0 ]; then
  if [ -z "${NATTER_BIN_DIR:-}" ]; then
    say "building (make build)"
    if ! make --no-print-directory build; then
      die "build failed: fix the errors above, then run 'make run' again (nothing was started)"
    fi
  fi
  for b in natter-router natter-persister natter-gateway; do
    [ -x "$BIN/$b" ] || die "$BIN/$b is missing: run 'make build' and read its errors, or point NATTER_BIN_DIR at a build dir. Nothing was started."
  done
fi

# Every port must be free before anything starts.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
check_port() {  # port, what
  if port_busy "$1"; then
    die "port $1 ($2) is busy: stop what listens there (ss -ltnp 'sport = :$1') or choose another port (see docs/running.md)"
  fi
}
check_port "$NATS_PORT" "nats-server, NATTER_NATS_PORT"
check_port "$NATS_MON_PORT" "nats-server monitoring, NATTER_NATS_MONITOR_PORT"
check_port "$REDIS_PORT" "redis-server, NATTER_REDIS_PORT"
check_port "$PG_PORT" "PostgreSQL, NATTER_PG_PORT"
if [ "$servers_only" = 0 ]; then
  check_port "$GW1_PORT" "gateway gw1, NATTER_GW1_PORT"
  check_port "$GW2_PORT" "gateway gw2, NATTER_GW2_PORT"
  for p in "$ROUTER_MPORT" "$PERSISTER_MPORT" "$GW1_MPORT" "$GW2_MPORT"; do
    check_port "$p" "metrics, NATTER_METRICS_PORT_BASE"
  done
fi

mkdir -p "$LOGS" "$RUN/nats" "$RUN/redis" "$PGDIR"
# PostgreSQL refuses to run as root: as root, everything of it runs as the postgres user.
if [ "$(id -u)" = 0 ]; then
  as_pg() { runuser -u postgres -- "$@"; }
  chown postgres:postgres "$PGDIR"
else
  as_pg() { "$@"; }
fi
as_pg test -w "$PGDIR" ||
  die "$(as_pg id -un) cannot write $PGDIR: every folder above it must be searchable by others (chmod o+x)"

# ------------------------------------------------------------ process control
declare -A PIDS=()          # name -> pid of processes this script started
ORDER=()                    # start order
pg_started=0 stopping=0

start_bg() {  # name, command...: runs in its own session (Ctrl-C reaches only this script)
  local name=$1; shift
  printf '\n==== %s start %s\n' "$(date -Is)" "$name" >>"$LOGS/$name.log"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 </dev/null &
  PIDS[$name]=$!
  ORDER+=("$name")
}

stop_proc() {  # name, seconds to wait before SIGKILL, signal (default TERM)
  local name=$1 secs=${2:-10} sig=${3:-TERM} pid=${PIDS[$1]:-} i
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -"$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < secs * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "$name did not stop within ${secs}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  local rc=0
  wait "$pid" 2>/dev/null || rc=$?
  [ "$rc" = 0 ] || say "$name exited with code $rc (log: .run/logs/$name.log)"
  unset "PIDS[$name]"
}

stop_all() {
  [ "$stopping" = 1 ] && return 0
  stopping=1
  trap '' INT TERM
  say "stopping"
  local n
  for n in gw1 gw2 router persister; do stop_proc "$n" 15; done
  if [ "$pg_started" = 1 ]; then
    as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 ||
      say "pg_ctl stop failed; see $LOGS/postgres.log"
  fi
  if [ -n "${PIDS[redis]:-}" ]; then
    redis-cli -h 127.0.0.1 -p "$REDIS_PORT" shutdown >/dev/null 2>&1 || true
    stop_proc redis 10
  fi
  stop_proc nats 10 INT     # nats-server exits 0 on SIGINT, 1 on SIGTERM
  say "stopped (data kept in .run/, logs in .run/logs/)"
}

trap 'stop_all; exit 0' INT
trap 'stop_all; exit 0' TERM
trap 'rc=$?; stop_all; exit $rc' EXIT

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
elapsed() { local d=$(($(now_ms) - $1)); printf '%d.%d' $((d / 1000)) $((d % 1000 / 100)); }
log_tail() { echo "---- last lines of $LOGS/$1.log"; tail -n 20 "$LOGS/$1.log" 2>/dev/null || true; echo "----"; }

wait_for() {  # name, seconds, command...: polls until command succeeds; fails if the process died
  local name=$1 secs=$2 i pid; shift 2
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    pid=${PIDS[$name]:-}
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
      local rc=0; wait "$pid" 2>/dev/null || rc=$?
      unset "PIDS[$name]"
      log_tail "$name" >&2
      die "$name exited with code $rc while starting (log: .run/logs/$name.log)"
    fi
    sleep 0.1
  done
  log_tail "$name" >&2
  die "$name not ready after ${secs}s (log: .run/logs/$name.log)"
}

# ---------------------------------------------------------------- the servers
t0=$(now_ms)

start_bg nats nats-server -js -sd "$RUN/nats" -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON_PORT" -n natter-local
start_bg redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$RUN/redis" \
  --appendonly yes --save '' --daemonize no --protected-mode yes

if [ ! -s "$PGDIR/data/PG_VERSION" ]; then
  say "initialising PostgreSQL in .run/pg/data (first run)"
  rm -rf "$PGDIR/data"
  as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust \
    -E UTF8 --locale=C >"$LOGS/initdb.log" 2>&1 || { cat "$LOGS/initdb.log" >&2; die "initdb failed"; }
fi
as_pg mkdir -p "$PGSOCK"
touch "$LOGS/postgres.log"
[ "$(id -u)" != 0 ] || chown postgres:postgres "$LOGS/postgres.log"
if ! as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$LOGS/postgres.log" -w -t 60 \
     -o "-p $PG_PORT -k $PGSOCK -c listen_addresses=127.0.0.1" start >/dev/null; then
  log_tail postgres >&2
  die "PostgreSQL did not start (log: .run/logs/postgres.log)"
fi
pg_started=1
psql_() { as_pg "$PGBIN/psql" -h "$PGSOCK" -p "$PG_PORT" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
if [ "$(psql_ -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'natter'")" != 1 ]; then
  say "creating database natter"
  psql_ -d postgres -c "CREATE DATABASE natter" >/dev/null
fi

wait_for nats 30 curl -fsS "http://127.0.0.1:$NATS_MON_PORT/healthz?js-enabled-only=true"
wait_for redis 30 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping
say "servers up in $(elapsed "$t0")s"

if [ "$servers_only" = 1 ]; then
  cat <<EOF

  servers running (data in .run/, logs in .run/logs/); Ctrl-C stops them
    NATS        $NATTER_NATS_URL   (monitoring http://127.0.0.1:$NATS_MON_PORT)
    Redis       $NATTER_REDIS_URL
    PostgreSQL  $NATTER_PG_URL   (psql -h 127.0.0.1 -p $PG_PORT -U postgres natter)
  e.g. NATTER_PG_URL=$NATTER_PG_URL $BIN/natter-persister

EOF
else
  # ------------------------------------------------------------ natter itself
  start_bg router env NATTER_METRICS_LISTEN="127.0.0.1:$ROUTER_MPORT" "$BIN/natter-router"
  start_bg persister env NATTER_METRICS_LISTEN="127.0.0.1:$PERSISTER_MPORT" "$BIN/natter-persister"
  wait_for router 30 curl -fsS "http://127.0.0.1:$ROUTER_MPORT/readyz"
  wait_for persister 60 curl -fsS "http://127.0.0.1:$PERSISTER_MPORT/readyz"
  start_bg gw1 env NATTER_GATEWAY_ID=gw1 NATTER_LISTEN="127.0.0.1:$GW1_PORT" \
    NATTER_METRICS_LISTEN="127.0.0.1:$GW1_MPORT" "$BIN/natter-gateway"
  start_bg gw2 env NATTER_GATEWAY_ID=gw2 NATTER_LISTEN="127.0.0.1:$GW2_PORT" \
    NATTER_METRICS_LISTEN="127.0.0.1:$GW2_MPORT" "$BIN/natter-gateway"
  wait_for gw1 30 curl -fsS "http://127.0.0.1:$GW1_PORT/readyz"
  wait_for gw2 30 curl -fsS "http://127.0.0.1:$GW2_PORT/readyz"

  dev_hint="curl -s -X POST http://localhost:$GW1_PORT/api/dev/token -H 'Content-Type: application/json' -d '{\"user_id\":\"alice\",\"name\":\"Alice\"}'"
  [ "$NATTER_DEV_TOKENS" = 1 ] || dev_hint="(NATTER_DEV_TOKENS=$NATTER_DEV_TOKENS: dev tokens are off; sign HS256 JWTs with NATTER_JWT_SECRET)"
  cat <<EOF

  natter is ready ($(elapsed "$t0")s). Ctrl-C stops everything.

  WebSocket   ws://localhost:$GW1_PORT/ws    ws://localhost:$GW2_PORT/ws
  HTTP API    http://localhost:$GW1_PORT/api/…   http://localhost:$GW2_PORT/api/…
              e.g. http://localhost:$GW1_PORT/api/rooms/lobby/messages?limit=20
  health      http://localhost:$GW1_PORT/healthz   http://localhost:$GW1_PORT/readyz
  metrics     router    http://localhost:$ROUTER_MPORT/metrics
              persister http://localhost:$PERSISTER_MPORT/metrics
              gw1       http://localhost:$GW1_MPORT/metrics
              gw2       http://localhost:$GW2_MPORT/metrics
  dev token   $dev_hint
  connect     websocat "ws://localhost:$GW1_PORT/ws?token=\$TOKEN"
              then send {"action":"subscribe","channel":"room.lobby","ref":1}
  servers     NATS $NATTER_NATS_URL (monitor http://localhost:$NATS_MON_PORT), Redis $NATTER_REDIS_URL,
              PostgreSQL $NATTER_PG_URL
  logs        .run/logs/{gw1,gw2,router,persister,nats,redis,postgres}.log

EOF
fi

# ---------------------------------------------------------------- foreground
# Report any process that exits; keep the rest running (kill -9 a gateway to try
# recovery, restart it by hand or restart the whole cluster).
while [ ${#PIDS[@]} -gt 0 ]; do
  dead=
  rc=0
  wait -n -p dead "${PIDS[@]}" || rc=$?
  [ -n "$dead" ] || continue          # interrupted by a signal (the trap runs)
  for n in "${!PIDS[@]}"; do
    if [ "${PIDS[$n]}" = "$dead" ]; then
      unset "PIDS[$n]"
      say "$n (pid $dead) exited with code $rc; see .run/logs/$n.log — the rest keeps running"
    fi
  done
done
say "every process has exited"
