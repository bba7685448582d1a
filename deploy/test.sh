#!/usr/bin/env bash
# Every test: installs what is missing, builds, then runs
#   unit tests (GoogleTest, no EAL), the PCP tests (codec; responses checked with tshark),
#   dataplane tests (EAL --no-huge, real frames through the worker on ring ports),
#   both also built with AddressSanitizer + UndefinedBehaviorSanitizer, and the concurrency
#   test (workers on threads, live reconfiguration) with ThreadSanitizer,
#   bounded runs of the fuzzers (libFuzzer, clang, ASan + UBSan): packet path 60 s, PCP codec
#   and PCP service 30 s each,
#   the benchmarks' smoke runs (packet pipeline, PCP MAP through the dataplane), and
#   end-to-end tests (network namespaces, real Linux TCP/UDP/ICMP through cgnd; needs root),
#   with one worker and with two (a failed end-to-end test, at most 3 of a run, is run once more
#   and named "flaky:" when it passes then).
# Ends with one line "N passed, M failed, K skipped" over all test cases (GoogleTest and pytest
# skips counted); exit status 0 only if none failed. The end-to-end suite skipped as a whole (not
# root, or no cgnd) counts as a failure: a run that did not test end to end does not pass.
set -uo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh || exit 1
bash deploy/build.sh build || exit 1
# Sanitizer build (ASan + UBSan; a UBSan finding aborts the test).
bash deploy/build.sh build-sanitize -Db_sanitize=address,undefined -Db_lundef=false \
  -Dcpp_args=-fno-sanitize-recover=all || exit 1
# ThreadSanitizer build of the dataplane tests, for the concurrency test. DPDK's ring headers
# are compiled with C11 atomics there so that TSan sees the ordering of the rings in cgn's own
# code (the default x86 variant orders with plain barriers, which TSan cannot follow).
if [ ! -f build-tsan/build.ninja ]; then
  meson setup build-tsan -Db_sanitize=thread -Db_lundef=false \
    -Dcpp_args=-DRTE_USE_C11_MEM_MODEL > /dev/null || exit 1
fi
ninja -C build-tsan tests/dataplane/cgn-dataplane-tests || exit 1
# libFuzzer target of the packet path (tests/fuzz, docs/security.md): a clang build dir of its
# own, every library instrumented for coverage with ASan + UBSan.
if [ ! -f build-fuzz/build.ninja ]; then
  CXX=clang++-14 meson setup build-fuzz -Dfuzz=true -Db_lundef=false > /dev/null || exit 1
fi
ninja -C build-fuzz tests/fuzz/cgn-fuzz-packet-path tests/fuzz/cgn-fuzz-pcp-codec \
  tests/fuzz/cgn-fuzz-pcp-server || exit 1

passed=0
failed=0
skipped=0
logdir=/tmp/cgn-test.$$
rm -rf "$logdir" && mkdir -p "$logdir"

# Runs a GoogleTest binary, adds its counts to the totals.
run_gtest() {
  local name=$1; shift
  local log="$logdir/$name.log"
  echo "=== $name"
  "$@" --gtest_color=no > "$log" 2>&1
  local rc=$?
  local p f s
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
  s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
  p=${p:-0}; f=${f:-0}; s=${s:-0}
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # crashed or failed outside a test
  if [ "$f" -ne 0 ]; then
    grep -E '^\[  FAILED  \]|Failure|ERROR|Sanitizer|runtime error' "$log" | head -n 60
    tail -n 20 "$log"
  fi
  echo "$name: $p passed, $f failed, $s skipped"
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
}

run_gtest unit ./build/tests/unit/cgn-unit-tests
run_gtest unit-sanitized ./build-sanitize/tests/unit/cgn-unit-tests
run_gtest pcp ./build/tests/control/pcp/cgn-pcp-tests
run_gtest pcp-sanitized ./build-sanitize/tests/control/pcp/cgn-pcp-tests
run_gtest dataplane ./build/tests/dataplane/cgn-dataplane-tests
run_gtest dataplane-sanitized ./build-sanitize/tests/dataplane/cgn-dataplane-tests
TSAN_OPTIONS="halt_on_error=1" run_gtest dataplane-concurrency-tsan \
  ./build-tsan/tests/dataplane/cgn-dataplane-tests --gtest_filter='Concurrency*'

# A libFuzzer target for a bounded time from its committed seeds (new inputs go to the log
# dir): one test, failed with the crash shown (the input is kept as NAME-crash-* in the log dir).
run_fuzzer() {
  local name=$1 seconds=$2 binary=$3 seeds=$4; shift 4
  echo "=== $name"
  local log="$logdir/$name.log"
  mkdir -p "$logdir/$name-corpus"
  if "$binary" -max_total_time="$seconds" -timeout=10 -artifact_prefix="$logdir/$name-" \
      -print_final_stats=1 "$@" "$logdir/$name-corpus" "$seeds" > "$log" 2>&1; then
    grep -E '^stat::(number_of_executed_units|new_units_added)' "$log"
    passed=$((passed + 1)); echo "$name: 1 passed, 0 failed"
  else
    # All but libFuzzer's progress lines: the failure, the input and counters, the stack.
    grep -v -E '^(#[0-9]+|INFO:|[[:space:]]+NEW_FUNC|Dictionary:)' "$log" | head -n 120
    failed=$((failed + 1)); echo "$name: 0 passed, 1 failed"
  fi
}
# The packet path (docs/security.md) for 60 s, the PCP codec and the PCP service for 30 s each.
run_fuzzer fuzz-packet-path 60 ./build-fuzz/tests/fuzz/cgn-fuzz-packet-path \
  tests/fuzz/corpus/packet_path -max_len=4096 -dict=tests/fuzz/packet_path.dict
run_fuzzer fuzz-pcp-codec 30 ./build-fuzz/tests/fuzz/cgn-fuzz-pcp-codec \
  tests/fuzz/corpus/pcp_codec -max_len=1200
run_fuzzer fuzz-pcp-server 30 ./build-fuzz/tests/fuzz/cgn-fuzz-pcp-server \
  tests/fuzz/corpus/pcp_server -max_len=4096

# The benchmarks' quick runs (figures meaningless, the code paths run): the packet pipeline,
# and PCP MAP requests through the real dataplane with and without the store.
run_bench_smoke() {
  local name=$1 binary=$2
  [ -x "$binary" ] || return 0
  echo "=== $name"
  if "$binary" --quick > "$logdir/$name.log" 2>&1; then
    passed=$((passed + 1)); echo "$name: 1 passed, 0 failed"
  else
    failed=$((failed + 1)); tail -n 30 "$logdir/$name.log"; echo "$name: 0 passed, 1 failed"
  fi
}
run_bench_smoke bench-smoke ./build/bench/cgn-pipeline-bench
run_bench_smoke pcp-bench-smoke ./build/bench/cgn-pcp-bench

# The end-to-end suite runs twice: cgnd with one worker, then with two (one queue per worker
# on each port, packets handed between the workers). It needs root (network namespaces) and a
# built cgnd; without them its tests skip, and the run fails rather than pass untested.
e2e_cgnd=$PWD/build/dataplane/cgnd
e2e_missing=""
[ "$(id -u)" -eq 0 ] || e2e_missing="not root"
[ -x "$e2e_cgnd" ] || e2e_missing="${e2e_missing:+$e2e_missing, }no cgnd at $e2e_cgnd"
for workers in 1 2; do
  echo "=== e2e, $workers worker(s)"
  log="$logdir/e2e-$workers.log"
  # --timeout: no test takes more than a quarter of a minute; one that hangs is failed at 300 s
  # (pytest-timeout's SIGALRM, so the fixtures still remove the namespaces). -rfEs lists the
  # failures and errors by name in the closing summary that is printed below.
  CGN_WORKERS=$workers CGND=$e2e_cgnd \
    /usr/bin/python3 -m pytest -q -rfEs --timeout 300 --durations 5 -p no:cacheprovider \
    tests/e2e > "$log" 2>&1
  e2e_rc=$?
  # The failure reports (cgnd's output, counters) are long: their titles first, then the end.
  grep -E '^_{3,} .* _{3,}$' "$log" | head -n 20
  tail -n 80 "$log"
  # pytest's closing line, e.g. "1 failed, 27 passed, 2 skipped in 73.24s".
  summary=$(grep -E '^[0-9]+ [a-z]+.* in [0-9.]+s' "$log" | tail -n 1)
  p=$(echo "$summary" | grep -Eo '[0-9]+ passed' | cut -d' ' -f1)
  f=$(echo "$summary" | grep -Eo '[0-9]+ (failed|errors?)' | awk '{s+=$1} END {print s+0}')
  s=$(echo "$summary" | grep -Eo '[0-9]+ skipped' | cut -d' ' -f1)
  p=${p:-0}; f=${f:-0}; s=${s:-0}
  if [ "$e2e_rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  # A few failed tests are run once more, each in a new pytest (new namespaces, new cgnd): a
  # test that passes then is reported as flaky by name and counted as passed; one that fails
  # again stays failed. More than 3 failures is not a hiccup of the machine: no second try.
  # (CI's machine has stalled for tens of seconds under load from elsewhere: a 50 ms command
  # timed out at 20 s, while the same commit passed whole here.)
  mapfile -t failed_ids < <(grep -E '^(FAILED|ERROR) tests/' "$log" | awk '{print $2}' | sort -u)
  if [ "$f" -gt 0 ] && [ "$f" -le 3 ] && [ "${#failed_ids[@]}" -eq "$f" ]; then
    for id in "${failed_ids[@]}"; do
      rerun_log="$logdir/e2e-$workers-rerun-$(echo "$id" | tr -c 'A-Za-z0-9_.-' '_').log"
      if CGN_WORKERS=$workers CGND=$e2e_cgnd /usr/bin/python3 -m pytest -q -rfEs --timeout 300 \
          -p no:cacheprovider "$id" > "$rerun_log" 2>&1; then
        echo "flaky: $id failed, then passed when run again ($rerun_log)"
        p=$((p + 1)); f=$((f - 1))
      else
        echo "failed again: $id ($rerun_log)"
        tail -n 40 "$rerun_log"
      fi
    done
  fi
  # Tests that build namespaces skip as a whole without root or cgnd (conftest.py says why).
  netns_skips=$(grep -cE '^SKIPPED .*(need root|cgnd not built)' "$log")
  if [ -n "$e2e_missing" ] || [ "$netns_skips" -gt 0 ]; then
    echo "e2e, $workers worker(s): the end-to-end suite did not run" \
      "(${e2e_missing:-$netns_skips skip lines name root or cgnd}): counted as a failure"
    f=$((f + 1))
  fi
  echo "e2e-$workers: $p passed, $f failed, $s skipped"
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done

if ip netns list | grep -q '^cgnt'; then
  echo "error: the tests left network namespaces behind: $(ip netns list | tr '\n' ' ')"
  failed=$((failed + 1))
fi

echo
echo "logs: $logdir"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
