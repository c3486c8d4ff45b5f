# natter developer workflow. The two commands that matter: `make run`, `make test`.
.PHONY: all build asan run test unit deps clean distclean bench bench-smoke fuzz chaos soak

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
BUILD_TYPE ?= RelWithDebInfo

all: build

deps:
	@scripts/deps.sh

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCMAKE_EXPORT_COMPILE_COMMANDS=ON
	cmake --build build -j $(JOBS)

asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNATTER_SANITIZE=ON
	cmake --build build-asan -j $(JOBS)

# Unit tests only (ctest) against build/.
unit: build
	ctest --test-dir build --output-on-failure

# Local cluster in the foreground; data in .run/, logs in .run/logs/.
run:
	@scripts/cluster.sh

# Everything CI runs: deps, build, unit + integration tests, then the same under ASan+UBSan.
test:
	@scripts/test.sh

# Benchmarks against the peers (Socket.IO + Redis adapter, NATS over WebSocket): every
# scenario at full size into bench/results/, then bench/report.mjs writes docs/bench/*.png
# and the generated section of docs/BENCHMARKS.md (`node bench/report.mjs` alone redoes
# that from the JSON). See bench/README.md.
bench:
	@BENCH_SCALE=$${BENCH_SCALE:-full} bench/run.sh

# Tiny sizes, run by `make test` so the benchmark never rots; never judges timings.
bench-smoke:
	@BENCH_SCALE=smoke bench/run.sh

# libFuzzer harnesses of tests/fuzz (clang, ASan+UBSan, build-fuzz/), one after the other,
# FUZZ_SECONDS each (default 300); FUZZ_ONLY=frame runs one. See tests/fuzz/README.md.
fuzz:
	@scripts/fuzz.sh

# The fault campaign (docs/reliability.md): traffic into one room while each component is
# killed and restarted in turn, CHAOS_ROUNDS (3) times; one table, exit 1 on any loss.
chaos: build
	@cd tests/integration && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; }
	@NATTER_BIN_DIR=$${NATTER_BIN_DIR:-$(CURDIR)/build} node tests/chaos/chaos.mjs

# The chat mix for SOAK_MINUTES (30) against a whole local cluster, sampling every
# process's RSS and open fds; build/soak/soak.{csv,png}; fails when one keeps growing.
soak: build
	@cd tests/integration && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; }
	@NATTER_BIN_DIR=$${NATTER_BIN_DIR:-$(CURDIR)/build} SOAK_S=$$(( $${SOAK_MINUTES:-30} * 60 )) node tests/soak/soak.mjs

clean:
	rm -rf build build-asan build-fuzz

# Also forgets the local cluster's data (.run/) and the test harness's node_modules.
distclean: clean
	rm -rf .run tests/integration/node_modules
