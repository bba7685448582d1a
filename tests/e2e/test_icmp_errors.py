"""ICMP error translation (RFC 5508 REQ-3/4): the embedded packet is translated too, so the
socket the error is about learns of it (a connected UDP socket gets ECONNREFUSED)."""

import cgn_topology as ct
from conftest import learn

EXT1 = ct.HOSTS["ext1"].ip


def test_port_unreachable_from_outside_reaches_subscriber(net):
    c = net.start_cgnd()
    assert net.ping("sub1", EXT1, count=1).returncode == 0  # neighbours warm
    before = c.counters()
    r = net.peer("sub1", "udp-probe", "--host", EXT1, "--port", 9, timeout=20)
    after = c.counters()
    assert r["result"] == "refused", (
        f"sub1's UDP to a closed port on ext1: expected ECONNREFUSED (ICMP port unreachable "
        f"translated back), got {r['result']}; drop_icmp_type grew by "
        f"{ct.counter_delta(before, after, 'drop_icmp_type')}")


def test_port_unreachable_from_subscriber_reaches_outside(net):
    c = net.start_cgnd(filtering="endpoint-independent")
    s1 = net.agent("sub1", 43010)
    e1 = net.agent("ext1", 7030)
    E = learn(s1, e1, EXT1, 7030)
    s1.close()  # mapping stays, the socket is gone: sub1's kernel answers port unreachable
    before = c.counters()
    r = net.peer("ext1", "udp-probe", "--host", E[0], "--port", E[1], timeout=20)
    after = c.counters()
    assert r["result"] == "refused", (
        f"ext1's UDP to sub1's mapped endpoint {E} with no socket behind it: expected "
        f"ECONNREFUSED (sub1's ICMP port unreachable translated out), got {r['result']}; "
        f"drop_icmp_type grew by {ct.counter_delta(before, after, 'drop_icmp_type')}")
