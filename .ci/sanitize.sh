#!/usr/bin/env bash
# The compiled kernels under AddressSanitizer + UndefinedBehaviorSanitizer.
#
# Copies the source tree to a temporary folder, builds the extensions in place there with
# FASTSCORE_SANITIZE=1 (see setup.py), and runs the kernel tests against that build with
# the ASan runtime preloaded (Python itself is not instrumented). Any sanitizer report
# aborts the test process (-fno-sanitize-recover=all, halt_on_error=1) and fails this
# script; the log is also searched for reports, so a report swallowed by a subprocess
# fails it too. Needs gcc (or clang) with libasan and the test dependencies installed in
# the active Python environment. Usage: .ci/sanitize.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
PYTHON=${PYTHON:-python}
CC=${CC:-gcc}
TESTS=${SANITIZE_TESTS:-"tests/test_patches.py tests/test_kde.py tests/test_nn.py \
tests/test_optim.py tests/test_prior.py tests/test_mixture.py tests/test_simd.py"}

ASAN_LIB=$($CC -print-file-name=libasan.so)
if [ ! -e "$ASAN_LIB" ]; then
    echo "sanitize: $CC has no libasan.so ($ASAN_LIB)" >&2
    exit 1
fi

# the in-place build needs the build requirements in the active environment (a CI venv
# made by `pip install .` has them only in pip's isolated build environment)
if ! "$PYTHON" -c "import Cython, setuptools" 2>/dev/null; then
    "$PYTHON" -m pip install --quiet "Cython>=3.0" "setuptools>=77"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastscore-sanitize.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # tracked files plus new files that are not ignored (no .so, venvs, build folders)
    git -C "$SRC" ls-files -z --cached --others --exclude-standard \
        | (cd "$SRC" && xargs -0 tar cf - --ignore-failed-read 2>/dev/null) \
        | tar xf - -C "$WORK"
else
    tar cf - --exclude='*.so' --exclude=build --exclude='.venv*' --exclude='fastscore/_ext/*.c' . \
        | tar xf - -C "$WORK"
fi
cd "$WORK"

start=$(date +%s)
echo "== sanitize: building with FASTSCORE_SANITIZE=1 in $WORK"
FASTSCORE_SANITIZE=1 CC=$CC "$PYTHON" setup.py build_ext --inplace -q \
    --parallel "$(nproc 2>/dev/null || echo 2)" >build.log 2>&1 || {
    cat build.log >&2
    exit 1
}
built=$(date +%s)

export LD_PRELOAD="$ASAN_LIB"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=0:detect_odr_violation=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$WORK"

# the tests must exercise the sanitized build, not an installed fastscore
where=$("$PYTHON" -c "import fastscore._ext.kde as m; print(m.__file__)")
case "$where" in
    "$WORK"/*) ;;
    *) echo "sanitize: fastscore imported from $where, not from the sanitized build" >&2
       exit 1 ;;
esac
# (nm's whole output first: `nm | grep -q` under pipefail fails whenever grep exits
# before nm has written everything and nm dies of SIGPIPE)
symbols=$(nm -D "$where")
if ! grep -q __asan_ <<<"$symbols"; then
    echo "sanitize: $where is not instrumented" >&2
    exit 1
fi

echo "== sanitize: running $TESTS"
set +e
# shellcheck disable=SC2086
"$PYTHON" -m pytest -q -p no:cacheprovider $TESTS "$@" >test.log 2>&1
status=$?
set -e
tail -n 5 test.log
if grep -nE "ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior)Sanitizer" \
        test.log >&2; then
    echo "sanitize: sanitizer report(s) above" >&2
    grep -n -A 40 -E "ERROR: AddressSanitizer|runtime error:" test.log | head -n 120 >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "sanitize: the kernel tests failed under the sanitizers (exit $status)" >&2
    tail -n 60 test.log >&2
    exit "$status"
fi
end=$(date +%s)
echo "== sanitize: 0 reports; build $((built - start)) s, tests $((end - built)) s"
