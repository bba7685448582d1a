"""TCP per RFC 5382 / RFC 7857: a cleanly closed connection frees its session within the
transitory timeout, while an open idle one keeps it."""

import time

import cgn_topology as ct
from conftest import read_json_line

EXT1 = ct.HOSTS["ext1"].ip


def test_closed_connection_frees_its_session_within_the_transitory_timeout(net):
    c = net.start_cgnd(extra=["--timeout-tcp-transitory", "2",
                              "--timeout-tcp-established", "7440"])
    before = c.counters()
    sink = net.spawn_peer("ext1", "tcp-sink", "--port", 5101, "--conns", 1, "--timeout", 20)
    assert "listening" in read_json_line(sink)
    r = net.peer("sub1", "tcp-send", "--host", EXT1, "--port", 5101, "--bytes", 100000,
                 "--timeout", 20, timeout=60, check=False)
    assert "error" not in r, r
    read_json_line(sink, timeout=20)
    after_close = c.counters()
    assert ct.counter_delta(before, after_close, "sessions_created") >= 1
    time.sleep(4)  # > 2 s transitory timeout, << 7440 s established timeout
    later = c.counters()
    expired = ct.counter_delta(after_close, later, "sessions_expired")
    assert expired >= 1, (
        f"the closed connection's session is still there after 4 s with a 2 s transitory "
        f"timeout (sessions_expired grew by {expired})")
    assert ct.counter_delta(before, later, "mappings_removed") >= 1
