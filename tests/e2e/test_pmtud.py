"""Path MTU discovery through cgnd (RFC 5508 §7, REQ-3/4): a router behind cgnd answers a
too-big packet with ICMP "fragmentation needed" (type 3 code 4) to the pool address; cgnd
translates it back to the subscriber together with the TCP header it quotes, the subscriber's
kernel learns the smaller path MTU, and a real TCP transfer over the small link completes.

Topology: cgn_topology.Topology(router=True) (fixture ``router_net``): the far host
203.0.113.10 sits behind the router 192.0.2.254 on a 1280-byte link and advertises an MSS of
1460, so the subscriber's full-size segments (1500 bytes, DF set) do not fit that link.
"""

import re
import time

import cgn_topology as ct
from conftest import assert_pool, read_json_line

FAR = ct.ROUTER_HOSTS["far"].ip
SUB1 = ct.HOSTS["sub1"].ip
MIB = 1 << 20
UP_BYTES = 4 * MIB      # subscriber -> far: needs the subscriber to learn the path MTU
DOWN_BYTES = 2 * MIB    # far -> subscriber, on the same connection


def route_mtu(net, host: str, dst: str) -> tuple[int | None, str]:
    """The MTU host's kernel uses towards dst (a learnt PMTU shows as 'mtu N'), and the text."""
    out = net.run(host, ["ip", "-o", "route", "get", dst]).stdout.strip()
    m = re.search(r"\bmtu (\d+)", out)
    return (int(m.group(1)) if m else None), out


def test_tcp_transfer_over_a_smaller_mtu_link_learns_the_path_mtu(router_net):
    net = router_net
    # Only an ICMP error may teach the subscriber the path MTU (no PLPMTUD probing), and no
    # PMTU learnt before counts.
    net.run("sub1", ["sysctl", "-qw", "net.ipv4.tcp_mtu_probing=0"])
    net.run("sub1", ["ip", "route", "flush", "cache"])
    mtu, text = route_mtu(net, "sub1", FAR)
    assert mtu is None, f"sub1 already has a path MTU towards {FAR}: {text}"

    c = net.start_cgnd()
    # Neighbours warm (cgnd -> router, router -> far) and the far network reachable at all.
    ping = net.ping("sub1", FAR, count=2)
    assert ping.returncode == 0, f"sub1 cannot ping {FAR} through cgnd and the router:\n{ping.stdout}"
    before = c.counters()

    sink = net.spawn_peer("far", "tcp-sink", "--port", 5301, "--conns", 1,
                          "--reply-bytes", DOWN_BYTES, "--timeout", 15)
    assert "listening" in read_json_line(sink)
    t0 = time.monotonic()
    cl = net.peer("sub1", "tcp-send", "--host", FAR, "--port", 5301, "--bytes", UP_BYTES,
                  "--timeout", 8, timeout=40, check=False)
    elapsed = time.monotonic() - t0
    after = c.counters()
    mtu, text = route_mtu(net, "sub1", FAR)
    translated = ct.counter_delta(before, after, "icmp_errors_translated")
    no_session = ct.counter_delta(before, after, "drop_icmp_error_no_session")
    assert "error" not in cl, (
        f"the transfer from sub1 to {FAR} over the {ct.FAR_MTU}-byte link failed after "
        f"{elapsed:.1f}s: {cl}; sub1's route: {text}; icmp_errors_translated grew by "
        f"{translated}, drop_icmp_error_no_session by {no_session}")
    sv = read_json_line(sink, timeout=15)

    # both directions arrived intact
    assert cl["local"][0] == SUB1
    assert sv.get("recv_bytes") == UP_BYTES and sv.get("recv_sha256") == cl["sent_sha256"], (
        f"{FAR} did not receive sub1's {UP_BYTES} bytes intact: client {cl}, server {sv}")
    assert cl["recv_bytes"] == DOWN_BYTES and cl["recv_sha256"] == sv["sent_sha256"], (
        f"sub1 did not receive {FAR}'s {DOWN_BYTES} bytes intact: client {cl}, server {sv}")
    assert_pool(sv["peer"][0], f"source of sub1's connection as seen by {FAR}")

    # ... because the subscriber learnt the path MTU from the translated ICMP error
    assert mtu == ct.FAR_MTU, (
        f"sub1 has not learnt the path MTU {ct.FAR_MTU} towards {FAR}: 'ip route get' says "
        f"{text!r}")
    assert translated > 0, (
        f"icmp_errors_translated did not grow (drop_icmp_error_no_session grew by {no_session})")
