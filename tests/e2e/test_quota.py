"""Per-subscriber limits and port blocks with real Linux traffic (RFC 6888 REQ-4/5/11, REQ-8,
REQ-13/14).

RFC 6888 REQ-11: "When a CGN is unable to create a dynamic mapping due to resource constraints
or administrative restrictions (i.e., quotas): a. it MUST drop the original packet; b. it SHOULD
send an ICMP Destination Unreachable message, with code 1 (Host Unreachable), to the sender;
c. it SHOULD send a notification (e.g., SNMP trap) towards a management system (if configured
to do so)" (the lettered items are marked † in docs/behaviour.md: from recollection of the RFC).
What shows it here is the subscriber's own kernel: the host unreachable that cgnd sends quotes
the refused packet, so Linux finds the socket that sent it. Host unreachable is a soft error
(RFC 1122 §4.2.3.9): a UDP socket hears of it only when it asked for errors (IP_RECVERR), and a
plain one does not (which also tells code 1 from code 13, "administratively prohibited", that
Linux treats as hard); a TCP connect still waiting for its SYN-ACK is ended at once with
EHOSTUNREACH instead of timing out. The notification is cgnd's event line.

Every test passes with CGN_WORKERS=1 and 2 (the event lines then name either worker).
"""

import re
import time

import cgn_topology as ct
from conftest import assert_pool, learn, read_json_line

EXT1 = ct.HOSTS["ext1"].ip
SUB1 = ct.HOSTS["sub1"].ip
SUB2 = ct.HOSTS["sub2"].ip


def wait_line(c: ct.Cgnd, pattern: str, timeout: float = 5.0) -> re.Match:
    """The first line of cgnd's output matching pattern, waiting up to timeout for it."""
    rx = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        for line in list(c.lines):
            m = rx.search(line)
            if m:
                return m
        if time.monotonic() > deadline:
            raise AssertionError(f"no cgnd output line matching {pattern!r} within {timeout}s\n"
                                 + c.output(tail=40))
        time.sleep(0.05)


def event_lines(c: ct.Cgnd, kind: str, subscriber: str) -> list[str]:
    return [l for l in list(c.lines)
            if l.startswith(f"cgnd: event {kind} subscriber {subscriber} ")]


def udp_probe(net, host: str, port: int, *extra) -> dict:
    """One datagram from a new connected socket (a new mapping) to ext1's echo, retried."""
    return net.peer(host, "udp-probe", "--host", EXT1, "--port", port, "--timeout", 1,
                    "--tries", 3, *extra, timeout=20)


def test_session_limit_answers_host_unreachable(net):
    """RFC 6888 REQ-5 ("A CGN SHOULD support limiting the amount of state memory allocated per
    mapping and per subscriber") with REQ-11: sub1 may have 3 sessions; a further UDP socket
    gets EHOSTUNREACH (with IP_RECVERR), a TCP connect fails at once with it, sub2 is not
    affected, and cgnd logs the quota event."""
    c = net.start_cgnd(extra=["--max-sessions-per-subscriber", "3"])
    echo = net.spawn_peer("ext1", "udp-echo", "--port", 6101, "--idle", 30)
    assert "listening" in read_json_line(echo)
    # No ping first: an echo session would count against sub1's three.
    for i in range(3):
        r = udp_probe(net, "sub1", 6101)
        assert r["result"] == "reply", f"sub1's flow {i + 1} of 3 (within its limit): {r}"
    before = c.counters()
    # Beyond the limit. A plain socket is not told (soft error): one try, a short wait.
    r = net.peer("sub1", "udp-probe", "--host", EXT1, "--port", 6101, "--timeout", 0.5,
                 "--tries", 1, timeout=20)
    assert r["result"] == "timeout", (
        f"sub1's 4th flow on a plain socket: expected no answer (host unreachable is a soft "
        f"error; a hard one, e.g. code 13, would end the socket), got {r['result']}")
    r = udp_probe(net, "sub1", 6101, "--recverr")
    assert r["result"] == "EHOSTUNREACH", (
        f"sub1's 5th flow, beyond --max-sessions-per-subscriber 3, with IP_RECVERR: expected "
        f"EHOSTUNREACH (cgnd's ICMP host unreachable quoting the datagram), got {r['result']}")
    # TCP: the SYN is refused and the host unreachable ends the connect (Linux ends a connect
    # in SYN-SENT on any ICMP error about it) well before the first SYN retransmission (1 s)
    # and the 5 s timeout.
    t = net.peer("sub1", "tcp-connect", "--host", EXT1, "--port", 6102, "--timeout", 5,
                 timeout=20)
    assert t["result"] == "EHOSTUNREACH", f"sub1's TCP connect beyond its limit: {t}"
    assert t["elapsed"] < 0.9, f"the refusal took {t['elapsed']} s: a timeout, not an answer"
    after = c.counters()
    # Limits are per subscriber.
    r2 = udp_probe(net, "sub2", 6101)
    assert r2["result"] == "reply", f"sub2 was refused because of sub1's limit: {r2}"
    assert ct.counter_delta(before, after, "drop_quota_sessions") >= 3, after
    assert ct.counter_delta(before, after, "icmp_quota_unreachable_sent") >= 3, after
    assert after.get("sessions_created", 0) - before.get("sessions_created", 0) == 0, (
        "a session was created beyond the limit")
    wait_line(c, r"^cgnd: event quota-exceeded subscriber 100\.64\.0\.11 limit sessions "
                 r"protocol (udp|tcp) worker \d+$")
    assert not event_lines(c, "quota-exceeded", SUB2), "sub2 was reported over a quota"


def test_block_events_and_release(net):
    """RFC 6888 REQ-14 ("A CGN's port allocation scheme SHOULD minimize log volume"): one line
    per port block, and every external port of the subscriber inside that block. REQ-8 ("Once
    an external port is deallocated, it SHOULD NOT be reallocated to a new mapping until at
    least 120 seconds have passed", configurable †): after the flows expire, the block goes
    back once the hold-down has passed, logged by a block-released line."""
    c = net.start_cgnd(extra=["--port-block-size", "64", "--max-blocks-per-subscriber", "1",
                              "--block-hold-down", "1", "--timeout-udp", "1"])
    # One socket (so one mapping) per agent, all started first: the four flows of sub1 then
    # follow each other within milliseconds, well inside the 1 s UDP timeout, so sub1's block
    # is never idle between them.
    server = net.agent("ext1", 6201)
    agents = [("sub1", net.agent("sub1")) for _ in range(4)] + [("sub2", net.agent("sub2"))]
    seen = {"sub1": set(), "sub2": set()}
    for i, (sub, a) in enumerate(agents):
        seen[sub].add(learn(a, server, EXT1, 6201, payload=f"flow {i}"))
    assert len(seen["sub1"]) == 4, f"sub1's four sockets seen from {seen['sub1']}"
    blocks = {}
    for sub, ip in (("sub1", SUB1), ("sub2", SUB2)):
        m = wait_line(c, rf"^cgnd: event block-allocated subscriber {re.escape(ip)} external "
                         r"(198\.51\.100\.\d+) ports (\d+)-(\d+) worker \d+$")
        addr, first, last = m.group(1), int(m.group(2)), int(m.group(3))
        assert_pool(addr, f"{sub}'s block address")
        assert last - first + 1 == 64, m.group(0)
        assert (first - 1024) % 64 == 0, f"block not on the grid from the range start: {m.group(0)}"
        blocks[sub] = (addr, first, last)
        # What the server saw: every flow of the subscriber from inside its block.
        for src in seen[sub]:
            assert src[0] == addr and first <= src[1] <= last, (
                f"ext1 saw {sub} from {src[0]}:{src[1]}, outside its block {m.group(0)}")
    assert len(event_lines(c, "block-allocated", SUB1)) == 1, "one line for sub1's four flows"
    assert blocks["sub1"] != blocks["sub2"], "two subscribers in one block"
    # Flows idle 1 s, then the 1 s hold-down; allow for scheduling.
    addr1, first1, last1 = blocks["sub1"]
    wait_line(c, rf"^cgnd: event block-released subscriber {re.escape(SUB1)} external "
                 rf"{re.escape(addr1)} ports {first1}-{last1} worker \d+$", timeout=8)
    counters = c.counters()
    assert counters.get("blocks_released", 0) >= 1, counters
    assert counters.get("blocks_claimed", 0) == 2, counters
    # RFC 6888 REQ-12 ("A CGN SHOULD NOT log destination addresses or ports"): no event line
    # names the server the subscribers talked to, nor its port.
    events = [l for l in c.output().splitlines() if l.startswith("cgnd: event ")]
    named = re.compile(rf"\b{re.escape(EXT1)}\b|\b6201\b")
    assert events and not [l for l in events if named.search(l)], events
