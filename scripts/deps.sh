#!/usr/bin/env bash
# deps.sh: installs the Debian packages natter needs to build, run and test, only when missing.
# Idempotent: when everything is present it changes nothing and touches no network.
set -euo pipefail

pkgs=(build-essential cmake pkg-config libuv1-dev libwebsockets-dev libwebsockets-evlib-uv
      libnats-dev nats-server redis-server libhiredis-dev libpq-dev postgresql
      libmsgpack-dev libjansson-dev libssl-dev libcmocka-dev curl valgrind
      clang libfuzzer-14-dev python3)
# Node is needed only for the integration tests; keep a node that is already there.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  pkgs+=(nodejs npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  [ -n "${NATTER_DEPS_QUIET:-}" ] || echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "deps: missing ${missing[*]}; run as root or install sudo" >&2; exit 1; }
  sudo=(sudo)
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"

echo "deps: done"
