"""TCP per RFC 5382 / RFC 7857: a cleanly closed connection frees its session within the
transitory (closing) timeout, while an open idle one keeps it; a connection that never opened
goes at the opening timeout."""

import time

import cgn_topology as ct
from conftest import read_json_line
from test_live import ok, show_config

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
    # One connection: one session, one mapping.
    assert ct.counter_delta(before, after_close, "sessions_created") == 1, after_close
    time.sleep(4)  # > 2 s transitory timeout, << 7440 s established timeout
    later = c.counters()
    expired = ct.counter_delta(after_close, later, "sessions_expired")
    assert expired == 1, (
        f"the closed connection's session is still there after 4 s with a 2 s transitory "
        f"timeout (sessions_expired grew by {expired})")
    assert ct.counter_delta(before, later, "mappings_removed") == 1, later


def test_refused_connection_goes_at_the_opening_timeout_set_live(net):
    """RFC 7857 §2.1: "a NAT SHOULD provide different configurable parameters for configuring
    the open and closing idle timeouts". A subscriber's connection refused by the server (SYN
    out, RST back) never opened: its session stays on the opening timeout, which neither the
    server's RST nor a short closing (transitory) timeout cuts short, and goes once
    `set timeout tcp-opening` on the control socket lowers that timeout."""
    c = net.start_cgnd(extra=["--timeout-tcp-opening", "60", "--timeout-tcp-transitory", "1",
                              "--timeout-tcp-established", "7440"])
    cfg = show_config(c)
    assert "timeout-tcp-opening 60" in cfg and "timeout-tcp-transitory 1" in cfg, cfg
    before = c.counters()
    r = net.peer("sub1", "tcp-connect", "--host", EXT1, "--port", 5109, "--timeout", 3,
                 timeout=20)
    assert r["result"] == "ECONNREFUSED", f"nothing listens on {EXT1}:5109: {r}"
    time.sleep(2.5)  # > the 1 s closing timeout, << the 60 s opening timeout
    mid = c.counters()
    assert ct.counter_delta(before, mid, "sessions_created") >= 1, mid
    expired = ct.counter_delta(before, mid, "sessions_expired")
    assert expired == 0, (
        f"the refused connection's session went within 2.5 s (sessions_expired +{expired}): "
        f"the closing timeout, not the 60 s opening timeout, governed it")
    reply = ok(c, "set timeout tcp-opening 2")
    assert "timeout-tcp-opening 2" in show_config(c), reply
    # Idle for more than 2 s already: it goes at the next expiry pass.
    deadline = time.monotonic() + 5
    while True:
        later = c.counters()
        if ct.counter_delta(mid, later, "sessions_expired") >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert ct.counter_delta(mid, later, "sessions_expired") >= 1, (
        f"the refused connection's session is still there after 'set timeout tcp-opening 2': "
        f"{later}")
    assert ct.counter_delta(mid, later, "mappings_removed") >= 1, later
