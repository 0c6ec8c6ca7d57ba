#!/usr/bin/env bash
# The Python binding (python/retnet):
# - pytest on tests/python/ with the package used in place: logits, generation,
#   scoring and training equal to the CLI's bit for bit, states carried across
#   calls, every error path raising with the library's message, retnet.torch's
#   gradcheck in float64; each pytest test is one check here;
# - a fresh virtual environment (python3 -m venv --system-site-packages), an
#   offline `pip install --no-build-isolation --no-index` of python/, the
#   ten-line example of python/README.md run from outside the tree against the
#   installed package (and its copy of libretnet.so), and the model tests again
#   against the installed package.
# Skipped (not failed) only when /usr/bin/python3 lacks numpy or pytest
# (scripts/setup.sh test installs python3-numpy, python3-pytest, python3-venv).
set -u
cd "$(dirname "$0")/../.."
. tests/cli/lib.bash
PY=/usr/bin/python3
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
for f in build/libretnet.so build/libretnet64.so build/retnet; do
  if [ ! -e "$f" ]; then echo "FAIL: $f not built (make tests)" >&2; echo "0 passed, 1 failed"; exit 1; fi
done
if ! "$PY" -c 'import numpy, pytest' 2>/dev/null; then
  echo "skipped: $PY cannot import numpy and pytest (scripts/setup.sh test installs them)"
  echo "0 passed, 0 failed"
  exit 0
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# pytest_counts LOG: adds the passed / failed (+ errors) of pytest's summary line.
pytest_counts() {
  local line p f e
  line=$(grep -E '^(=+ )?[0-9]+ (passed|failed|error)|^(=+ )?(no tests ran)' "$1" | tail -n 1)
  p=$(echo "$line" | grep -oE '[0-9]+ passed' | awk '{print $1}')
  f=$(echo "$line" | grep -oE '[0-9]+ failed' | awk '{print $1}')
  e=$(echo "$line" | grep -oE '[0-9]+ errors?' | awk '{print $1}')
  pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0} + ${e:-0}))
  [ -n "$line" ]
}

# ------------------------------------------------------------ in place
"$PY" -m pytest -q -p no:cacheprovider -o addopts="" tests/python >"$tmp/pytest.log" 2>&1
rc=$?
grep -E '^(FAILED|ERROR)' "$tmp/pytest.log" >&2
pytest_counts "$tmp/pytest.log" || bad "pytest (in place) gave no summary: $(tail -n 20 "$tmp/pytest.log")"
[ $rc -ne 0 ] && ! grep -qE '^(FAILED|ERROR)' "$tmp/pytest.log" && { bad "pytest exit $rc"; tail -n 30 "$tmp/pytest.log" >&2; }

# ------------------------------------------- fresh venv, pip install
if "$PY" -m venv --system-site-packages "$tmp/venv" >"$tmp/venv.log" 2>&1; then
  ok
  # pip builds in the source tree: build a copy, so the checkout stays clean
  cp -r python "$tmp/src"
  rm -rf "$tmp/src/build" "$tmp/src"/*.egg-info "$tmp/src/retnet"/*.so
  if RETNET_BUILD_DIR=$PWD/build "$tmp/venv/bin/pip" install -q --no-build-isolation --no-index "$tmp/src" \
      >"$tmp/pip.log" 2>&1; then
    ok
    awk '/^```python/ { if (!done) { f = 1; next } } /^```/ { if (f) { f = 0; done = 1 } } f' python/README.md >"$tmp/example.py"
    n=$(grep -c . "$tmp/example.py")
    check "[ $n -le 10 ]" "the README example has $n non-blank lines (want at most 10)"
    (cd "$tmp" && env -u PYTHONPATH RETNET_LIB= "$tmp/venv/bin/python" example.py) >"$tmp/example.out" 2>&1
    check "[ $? -eq 0 ]" "README example failed in the venv: $(tail -n 5 "$tmp/example.out")"
    check "grep -q 'split = whole: True' '$tmp/example.out'" "README example: $(head -c 300 "$tmp/example.out")"
    where=$(cd "$tmp" && env -u PYTHONPATH "$tmp/venv/bin/python" -c 'import retnet, retnet.torch; print(retnet.__file__); print(retnet.library_path()); print(retnet._lib.lib_path(True))')
    check "[ \$(echo \"\$where\" | grep -c '^$tmp/venv/') -eq 3 ]" "installed package or its libraries not in the venv: $where"
    RETNET_TEST_INSTALLED=1 "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider -o addopts="" \
      tests/python/test_model.py >"$tmp/pytest2.log" 2>&1
    grep -E '^(FAILED|ERROR)' "$tmp/pytest2.log" >&2
    pytest_counts "$tmp/pytest2.log" || bad "pytest (installed) gave no summary: $(tail -n 20 "$tmp/pytest2.log")"
  else
    bad "pip install into the venv failed: $(tail -n 5 "$tmp/pip.log")"
  fi
else
  bad "python3 -m venv --system-site-packages failed (apt-get install python3-venv): $(tail -n 3 "$tmp/venv.log")"
fi
finish
