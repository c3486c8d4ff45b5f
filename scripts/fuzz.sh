#!/usr/bin/env bash
# fuzz.sh (`make fuzz`): builds the libFuzzer harnesses of tests/fuzz with clang into
# build-fuzz/ (-DNATTER_FUZZ=ON: ASan + UBSan) and runs each for FUZZ_SECONDS on its
# corpus, one after the other. `fuzz.sh --replay` (a stage of `make test`) only runs
# every harness once over its corpus and its saved crashes.
#
#   FUZZ_SECONDS=300       seconds per harness
#   FUZZ_ONLY="frame jwt"  only these harnesses (default: every tests/fuzz/fuzz_*.c)
#   FUZZ_ARGS="-dict=…"    more libFuzzer flags for the fuzzing runs
#   JOBS=2                 build parallelism (at most 2)
#
# New inputs a run finds go to build-fuzz/corpus/<harness>/ (scratch; the repo's corpus
# in tests/fuzz/corpus/ only changes by hand). A crash is written to
# tests/fuzz/crashes/<harness>/ and stays there: the replay runs it as a regression test.
# Prints per harness the executions and the crashes found; exits non-zero when the build
# failed or a harness crashed (replay: when any corpus or crash input fails).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

mode=fuzz
[ "${1:-}" = --replay ] && mode=replay
seconds=${FUZZ_SECONDS:-300}
jobs=${JOBS:-2}
[ "$jobs" -gt 2 ] 2>/dev/null && jobs=2        # the harnesses' build is small; keep the machine usable

NATTER_DEPS_QUIET=1 scripts/deps.sh || { echo "fuzz: cannot install clang/libFuzzer"; exit 1; }

if [ -n "${FUZZ_ONLY:-}" ]; then
  harnesses=($FUZZ_ONLY)
else
  harnesses=()
  for f in tests/fuzz/fuzz_*.c; do h=${f#tests/fuzz/fuzz_}; harnesses+=("${h%.c}"); done
fi
targets=()
for h in "${harnesses[@]}"; do
  [ -f "tests/fuzz/fuzz_$h.c" ] || { echo "fuzz: no harness tests/fuzz/fuzz_$h.c"; exit 2; }
  targets+=("fuzz_$h")
done

mkdir -p build-fuzz
if ! cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       -DNATTER_FUZZ=ON >build-fuzz/configure.log 2>&1; then
  cat build-fuzz/configure.log
  echo "fuzz: cmake configure of build-fuzz/ failed"; exit 1
fi
env -u MAKELEVEL -u MAKEFLAGS -u MFLAGS cmake --build build-fuzz -j "$jobs" --target "${targets[@]}" ||
  { echo "fuzz: build failed"; exit 1; }

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

inputs() {  # dir: its input files (not README.md, not dotfiles such as .gitkeep)
  local f
  for f in "$1"/*; do
    [ -f "$f" ] && [ "${f##*/}" != README.md ] && printf '%s\n' "$f"
  done
}

artifacts() {  # dir: how many crash, leak, oom, timeout and slow-unit files it holds
  inputs "$1" | grep -c -E '/(crash|leak|oom|timeout|slow-unit)-' || true
}

replay() {  # harness, inputs...: runs each input once; on a failure prints which and why
  local h=$1 log=build-fuzz/fuzz_$1.replay.log; shift
  build-fuzz/fuzz_$h -timeout=10 "$@" >"$log" 2>&1 && return 0
  echo "replay $h: FAILED on $(grep '^Running: ' "$log" | tail -n 1 | cut -d' ' -f2-)"
  grep -v -E '^(INFO: |Running: |Executed )' "$log" | tail -n 30
  return 1
}

rc=0
for h in "${harnesses[@]}"; do
  corpus=tests/fuzz/corpus/$h crashes=tests/fuzz/crashes/$h
  mkdir -p "$corpus" "$crashes"
  if [ $mode = replay ]; then
    mapfile -t seeds < <(inputs "$corpus")
    mapfile -t saved < <(inputs "$crashes")
    bad=0
    [ ${#seeds[@]} -eq 0 ] || replay "$h" "${seeds[@]}" || bad=$((bad + 1))
    for f in "${saved[@]}"; do replay "$h" "$f" || bad=$((bad + 1)); done
    echo "replay $h: ${#seeds[@]} corpus + ${#saved[@]} crash inputs: $([ $bad = 0 ] && echo ok || echo "$bad FAILED")"
    [ $bad = 0 ] || rc=1
    continue
  fi
  scratch=build-fuzz/corpus/$h log=build-fuzz/fuzz_$h.log
  mkdir -p "$scratch"
  before=$(artifacts "$crashes")
  echo "fuzz $h: ${seconds}s on $corpus (new inputs to $scratch) ..."
  build-fuzz/fuzz_$h -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$crashes/" ${FUZZ_ARGS:-} "$scratch" "$corpus" >"$log" 2>&1
  hrc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  found=$(($(artifacts "$crashes") - before))
  printf 'fuzz %s: %s executions, %d crash(es) found, corpus %s inputs (log %s)\n' "$h" \
    "${execs:-?}" "$found" "$(find "$scratch" "$corpus" -type f | wc -l)" "$log"
  if [ $hrc != 0 ] || [ $found -gt 0 ]; then
    grep -E 'ERROR|SUMMARY|fuzz check failed|Test unit written' "$log" | head -n 8
    grep -E '^ +#[0-9]+ ' "$log" | grep -v -E 'libFuzzer|fuzzer::|libc\.so|_start' | head -n 12
    rc=1
  fi
done
exit $rc
