#!/usr/bin/env bash
# test.sh (`make test`, what CI runs): installs what is missing, builds, runs the unit
# tests (ctest, then again under valgrind) and the integration suite (tests/integration,
# real servers and binaries), replays the fuzz corpora and saved crashes (build-fuzz/),
# then does the same again with AddressSanitizer + UBSan (build-asan/).
#
#   NATTER_TEST_SKIP_ASAN=1       skip the sanitizer pass (fast local iteration)
#   NATTER_TEST_SKIP_BENCH=1      skip the benchmark smoke run
#   NATTER_TEST_SKIP_FUZZ=1       skip the fuzz corpus replay (scripts/fuzz.sh --replay)
#   NATTER_TEST_FILES="a b"       run only these integration files (ordering, bad_input, …)
#   NATTER_TEST_KEEP=1            keep the integration temp dirs (logs, data) for debugging
#
# The last line is "N passed, M failed" over the integration runs; the exit code is
# non-zero when any build, unit test or integration test failed.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

failed_stages=()
it_pass=0
it_fail=0

now_ms() { local t=${EPOCHREALTIME/./}; echo $((t / 1000)); }
banner() { printf '\n==== %s\n' "$*"; }

stage() {  # name, command...: runs it, records a failure
  local name=$1 t0 rc; shift
  banner "$name"
  t0=$(now_ms)
  "$@"; rc=$?
  printf '==== %s: %s (%ds)\n' "$name" "$([ $rc = 0 ] && echo ok || echo "FAILED ($rc)")" $((($(now_ms) - t0) / 1000))
  [ $rc = 0 ] || failed_stages+=("$name")
  return $rc
}

valgrind_units() {  # build dir: every unit test under valgrind (memcheck, definite leaks)
  local dir=$1 rc=0 t
  for t in $(sed -n 's/^\([a-z_]*\).*/\1/p' tests/unit/tests.txt); do
    if valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite \
         --track-origins=yes "$dir/$t" >"$dir/$t.valgrind.log" 2>&1; then
      echo "valgrind $t: clean"
    else
      echo "valgrind $t: FAILED"; tail -n 40 "$dir/$t.valgrind.log"; rc=1
    fi
  done
  return $rc
}

# Not run again under ASan+UBSan (they all run against build/): the persister's batching
# and tuning tests and the keep-alive and lazy-flush timers assert timings, which the
# sanitizers' slowdown distorts, over code paths the other files run under ASan too
# (ordering, idempotency, persister_down, persister_replicas, pull_*, receipts_unread,
# recovery, room_ack, ...); the harness self-test and the process-start errors have no
# request paths. They take about a third of a sanitizer pass.
ASAN_SKIP="batch_grid batch_linger batch_merge persist_batch plan_refresh pg_read_conns
  pg_write_conns post_fast slow_commit unread_chunks lazy_events keepalive stale_stats
  send_shed fd_limit harness start_errors"

integration() {  # build dir, label [skip list]
  local dir=$1 label=$2 skip=${3:-} tap rc
  tap=$(mktemp "${TMPDIR:-/tmp}/natter-tap.XXXXXX")
  (
    cd tests/integration || exit 1
    files=()
    if [ -n "${NATTER_TEST_FILES:-}" ]; then
      for f in $NATTER_TEST_FILES; do files+=("${f%.test.mjs}.test.mjs"); done
    else
      for f in *.test.mjs; do
        case " $(echo $skip) " in *" ${f%.test.mjs} "*) continue ;; esac
        files+=("$f")
      done
      [ -z "$skip" ] || echo "not run in this pass (see ASAN_SKIP in scripts/test.sh):" $skip
    fi
    NATTER_BIN_DIR="$dir" node --test --test-concurrency=1 \
      --test-reporter=spec --test-reporter-destination=stdout \
      --test-reporter=tap --test-reporter-destination="$tap" \
      "${files[@]}"
  )
  rc=$?
  local p f c
  p=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$tap" | tail -n 1)
  f=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$tap" | tail -n 1)
  c=$(sed -n 's/^# cancelled \([0-9]*\)$/\1/p' "$tap" | tail -n 1)
  p=${p:-0} f=$((${f:-0} + ${c:-0}))
  if [ $rc != 0 ] && [ $f = 0 ]; then f=1; fi     # the runner itself failed
  echo "integration ($label): $p passed, $f failed"
  it_pass=$((it_pass + p))
  it_fail=$((it_fail + f))
  rm -f "$tap"
  return $rc
}

t_start=$(now_ms)

stage "dependencies (scripts/deps.sh)" scripts/deps.sh || { echo "cannot install dependencies"; echo "0 passed, 1 failed"; exit 1; }
stage "node modules (tests/integration)" bash -c 'cd tests/integration && npm ci --no-audit --no-fund --loglevel=error' ||
  { echo "cannot install the integration test's node modules"; echo "0 passed, 1 failed"; exit 1; }

# ---- normal build
if stage "build (build/)" make --no-print-directory build; then
  stage "unit tests (build/)" ctest --test-dir build --output-on-failure --timeout 120
  stage "unit tests under valgrind (build/)" valgrind_units build
  stage "integration tests (build/)" integration build "build"
else
  echo "build failed: unit and integration tests against build/ were not run (counted as 1 failed)"
  it_fail=$((it_fail + 1))
fi

# ---- fuzz corpus replay: each libFuzzer harness once over tests/fuzz/corpus and crashes
if [ -n "${NATTER_TEST_SKIP_FUZZ:-}" ] && [ "${NATTER_TEST_SKIP_FUZZ}" != 0 ]; then
  banner "fuzz corpus replay skipped (NATTER_TEST_SKIP_FUZZ=$NATTER_TEST_SKIP_FUZZ)"
else
  stage "fuzz corpus replay (build-fuzz/)" scripts/fuzz.sh --replay
fi

# ---- benchmark smoke (tiny sizes; functional failures only, never timings)
if [ -n "${NATTER_TEST_SKIP_BENCH:-}" ] && [ "${NATTER_TEST_SKIP_BENCH}" != 0 ]; then
  banner "benchmark smoke skipped (NATTER_TEST_SKIP_BENCH=$NATTER_TEST_SKIP_BENCH)"
else
  stage "benchmark smoke (make bench-smoke)" env BENCH_BIN_DIR=build make --no-print-directory bench-smoke
fi

# ---- soak (2 minutes of the chat mix; RSS and open fds of every process must level off)
if [ -n "${NATTER_TEST_SKIP_SOAK:-}" ] && [ "${NATTER_TEST_SKIP_SOAK}" != 0 ]; then
  banner "soak skipped (NATTER_TEST_SKIP_SOAK=$NATTER_TEST_SKIP_SOAK)"
else
  stage "soak, 2 minutes (tests/soak)" env NATTER_BIN_DIR="$root/build" SOAK_S=120 SOAK_SAMPLE_S=3 node tests/soak/soak.mjs
fi

# ---- fault campaign, short: each component killed once under traffic (make chaos: all, 3 rounds)
if [ -n "${NATTER_TEST_SKIP_CHAOS:-}" ] && [ "${NATTER_TEST_SKIP_CHAOS}" != 0 ]; then
  banner "fault campaign skipped (NATTER_TEST_SKIP_CHAOS=$NATTER_TEST_SKIP_CHAOS)"
else
  stage "fault campaign, short (tests/chaos)" env NATTER_BIN_DIR="$root/build" CHAOS_ROUNDS=1 \
    CHAOS_FAULTS=gw1,router,persister,nats,redis,postgres CHAOS_AFTER_S=3 CHAOS_RATE=40 \
    CHAOS_SETTLE_S=60 node tests/chaos/chaos.mjs
fi

# ---- sanitizer build
if [ -n "${NATTER_TEST_SKIP_ASAN:-}" ] && [ "${NATTER_TEST_SKIP_ASAN}" != 0 ]; then
  banner "sanitizer pass skipped (NATTER_TEST_SKIP_ASAN=$NATTER_TEST_SKIP_ASAN)"
else
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:strict_init_order=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  if [ -f tests/integration/lsan.supp ] && [ -z "${LSAN_OPTIONS:-}" ]; then
    export LSAN_OPTIONS="suppressions=$root/tests/integration/lsan.supp:print_suppressions=0"
  fi
  if stage "build with ASan+UBSan (build-asan/)" make --no-print-directory asan; then
    stage "unit tests (build-asan/)" ctest --test-dir build-asan --output-on-failure --timeout 300
    stage "integration tests (build-asan/)" integration build-asan "build-asan" "$ASAN_SKIP"
  else
    echo "sanitizer build failed: its tests were not run (counted as 1 failed)"
    it_fail=$((it_fail + 1))
  fi
fi

banner "summary ($((($(now_ms) - t_start) / 1000))s)"
if [ ${#failed_stages[@]} -gt 0 ]; then
  printf 'failed: %s\n' "${failed_stages[@]}"
else
  echo "every stage passed"
fi
echo "$it_pass passed, $it_fail failed"
[ ${#failed_stages[@]} -eq 0 ] && [ "$it_fail" -eq 0 ]
