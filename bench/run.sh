#!/usr/bin/env bash
# run.sh: natter's benchmark, self-contained (`make bench` calls it). Builds natter and
# natter-bench into build-bench/ (or uses BENCH_BIN_DIR), installs the peers' npm packages,
# then runs bench/run.mjs, which starts every system on free loopback ports with data in a
# temp dir, runs the scenarios and stops everything on exit.
#
#   BENCH_SCALE=smoke bench/run.sh     tiny sizes, < 2 min; exits non-zero on a functional
#                                      failure (e.g. zero deliveries), never on timings
#   BENCH_SCALE=medium|full bench/run.sh
#   BENCH_SYSTEMS=natter,socketio,natsws  BENCH_SCENARIOS=idle,fanout,…  (defaults: all)
#   BENCH_REPORT=0                     medium/full: do not run bench/report.mjs afterwards
# With all scenarios (no BENCH_SCENARIOS) and natter among the systems it also runs
# bench/pgfloor.mjs (PostgreSQL's cost per stored message, pgbench on natter's schema).
# Results: bench/results/<date>-<scale>-<scenario>.json (smoke: bench/results/tmp/); then,
# for medium/full, bench/report.mjs: docs/bench/*.png and docs/BENCHMARKS.md's generated part.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

for tool in cmake cc node npm nats-server redis-server /usr/lib/postgresql/15/bin/postgres; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench: $tool is missing (scripts/deps.sh installs the packages)" >&2; exit 2; }
done

if [ -z "${BENCH_BIN_DIR:-}" ]; then
  export BENCH_BIN_DIR=build-bench
  cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-bench -j"$(nproc)" --target natter-bench natter-gateway natter-router natter-persister >/dev/null ||
    { echo "bench: build failed (cmake --build build-bench shows why)" >&2; exit 2; }
fi

if [ ! -d "$here/peers/node_modules/socket.io" ] || [ "$here/peers/package-lock.json" -nt "$here/peers/node_modules/.package-lock.json" ]; then
  (cd "$here/peers" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) ||
    { echo "bench: npm ci in bench/peers failed" >&2; exit 2; }
fi

# medium/full: bench/report.mjs turns the results into docs/bench/*.png and the generated
# section of docs/BENCHMARKS.md (not when BENCH_REPORT=0 or BENCH_OUT_DIR is set; smoke never).
report=0
if [ "${BENCH_SCALE:-smoke}" != smoke ] && [ "${BENCH_REPORT:-1}" != 0 ] && [ -z "${BENCH_OUT_DIR:-}" ]; then
  report=1
  if ! command -v gnuplot >/dev/null 2>&1; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null 2>&1 && sudo=(sudo)
    fi
    if [ "$(id -u)" -eq 0 ] || [ ${#sudo[@]} -gt 0 ]; then
      echo "bench: installing gnuplot-nox (for the plots)" >&2
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null ||
        { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gnuplot-nox >/dev/null; } ||
        echo "bench: could not install gnuplot-nox: the report will have no plots" >&2
    else
      echo "bench: gnuplot is missing and this is not root: the report will have no plots" >&2
    fi
  fi
fi

rc=0
node "$here/run.mjs" || rc=$?
# PostgreSQL's own cost per stored message (bench/pgfloor.mjs), with every scenario:
# smoke with 1 s steps into bench/results/tmp/, medium/full with the default 8 s.
pgfloor=0
case ",${BENCH_SYSTEMS:-natter}," in *,natter,*) if [ -z "${BENCH_SCENARIOS:-}" ]; then pgfloor=1; fi ;; esac
if [ "$pgfloor" = 1 ]; then
  if [ "${BENCH_SCALE:-smoke}" = smoke ]; then
    BENCH_PGFLOOR_SECS=1 BENCH_OUT_DIR="${BENCH_OUT_DIR:-bench/results/tmp}" node "$here/pgfloor.mjs" || rc=$(( rc ? rc : 1 ))
  else
    node "$here/pgfloor.mjs" || rc=$(( rc ? rc : 1 ))
  fi
fi
if [ "$report" = 1 ]; then
  node "$here/report.mjs" || rc=$(( rc ? rc : 1 ))
fi
exit "$rc"
