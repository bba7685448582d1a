#!/bin/bash
# Instructions per packet of the worker's poll loop, counted by valgrind's callgrind, for the
# pipeline bench's in2out scenarios with 1K sessions (one worker, and two workers with every
# packet handed off once). Unlike nanoseconds on a shared virtual machine, the counts repeat
# exactly from run to run, so two builds can be compared by them.
#
# usage: bench/instructions-per-packet.sh [BENCH_BINARY]
#        (default build-release/bench/cgn-pipeline-bench, a -Dbuildtype=release build)
#
# Each scenario runs twice, for 0.1 and 0.4 s of poll time; the difference of the counts in
# Worker::poll_once (inclusive: parse, translation, rings and the net_ring PMD) divided by the
# difference in packets leaves out start-up, session creation and the checks.
set -euo pipefail
bin=${1:-build-release/bench/cgn-pipeline-bench}
if [[ ! -x $bin ]]; then
    echo "instructions-per-packet: no bench binary at $bin (ninja -C build-release bench/cgn-pipeline-bench)" >&2
    exit 1
fi
command -v valgrind >/dev/null || { echo "instructions-per-packet: valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run GROUP-ARGS ROW SECONDS: prints "packets instructions"
run() {
    local args=$1 row=$2 seconds=$3
    local out=$work/callgrind.out
    local packets instructions
    # shellcheck disable=SC2086
    packets=$(valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" $args --seconds "$seconds" \
        --memory 300 2>&1 | awk -v row="$row" 'index($0, row) == 1 {print $(NF-5)}')
    instructions=$(callgrind_annotate --inclusive=yes "$out" 2>/dev/null |
        awk '/cgn::dp::Worker::poll_once\(\)/ {gsub(",", "", $1); print $1}')
    if [[ -z $packets || -z $instructions ]]; then
        echo "instructions-per-packet: no figures from $bin $args" >&2
        exit 1
    fi
    echo "$packets $instructions"
}

# scenario NAME GROUP-ARGS ROW SCENARIOS-PER-ROUND
scenario() {
    local name=$1 args=$2 row=$3 per_round=$4
    local p1 i1 p2 i2
    read -r p1 i1 < <(run "$args" "$row" 0.1)
    read -r p2 i2 < <(run "$args" "$row" 0.4)
    printf '%-44s %6d instructions per packet (%d more packets, %d more instructions)\n' "$name" \
        $(((i2 - i1) / ((p2 - p1) * per_round))) $((p2 - p1)) $((i2 - i1))
}

scenario "in2out UDP established, 1K sessions" "--only small --no-out2in" \
    "in2out UDP established, 1K sess" 1
# The handoff group alternates two scenarios of equal packet counts (each packet on its owner's
# queue, and each handed off once): the figure is their mean.
scenario "in2out 1K, 2 workers (own queue + handed off)" "--only handoff" \
    "in2out 1K sess, 2 workers, handed off" 2
