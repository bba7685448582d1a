"""Endpoint-independent mapping, paired pooling, filtering modes, session timeouts."""

import time

import pytest

import cgn_topology as ct
from conftest import assert_pool, learn

EXT1 = ct.HOSTS["ext1"].ip
EXT2 = ct.HOSTS["ext2"].ip


def test_endpoint_independent_mapping_and_paired_pooling(net):
    net.start_cgnd()
    s1 = net.agent("sub1", 42001)
    e1 = net.agent("ext1", 7001)
    e2 = net.agent("ext2", 7001)
    via1 = learn(s1, e1, EXT1, 7001)
    via2 = learn(s1, e2, EXT2, 7001)
    assert_pool(via1[0], "external address")
    assert via1 == via2, (f"one internal endpoint 100.64.0.11:42001 got two external endpoints: "
                          f"{via1} (to ext1), {via2} (to ext2)")
    # paired pooling: other sockets of the same subscriber use the same external address,
    # with distinct external ports
    eps = {via1}
    for port in (42002, 42003, 42004):
        s = net.agent("sub1", port)
        ep = learn(s, e1, EXT1, 7001)
        assert ep[0] == via1[0], (f"sub1's socket :{port} got external address {ep[0]}, "
                                  f"its first socket got {via1[0]} (paired pooling)")
        assert ep not in eps, f"external endpoint {ep} given to two internal endpoints"
        eps.add(ep)


# which probes (a: ext2 -> E, b: ext1 from another port -> E, c: ext1 from PORT1 -> E)
# reach sub1, per filtering mode
FILTERING = {
    "endpoint-independent": {"a", "b", "c"},
    "address-dependent": {"b", "c"},
    "address-and-port-dependent": {"c"},
}


@pytest.mark.parametrize("mode", list(FILTERING))
def test_filtering(net, mode):
    c = net.start_cgnd(filtering=mode)
    s1 = net.agent("sub1", 42010)
    e1 = net.agent("ext1", 7010)        # PORT1: the endpoint sub1 talks to
    e1b = net.agent("ext1", 7011)       # same address, other port
    e2 = net.agent("ext2", 7010)        # other address
    E = learn(s1, e1, EXT1, 7010)
    assert_pool(E[0], "external address")
    s1.recv(timeout=0.2)                # nothing pending
    # warm up ext2's and ext1:7011's ARP for 192.0.2.1 so a refusal is not an ARP loss
    assert net.ping("ext2", ct.CGN_OUTSIDE, count=1).returncode == 0
    before = c.counters()
    e2.send(E[0], E[1], "a")
    e1b.send(E[0], E[1], "b")
    e1.send(E[0], E[1], "c")
    got = s1.recv(timeout=1.5, max_packets=3)
    after = c.counters()
    arrived = {data for _, data in got}
    expected = FILTERING[mode]
    assert arrived == expected, (f"{mode}: expected probes {sorted(expected)} to reach sub1, "
                                 f"got {sorted(arrived)} ({got})")
    for frm, data in got:
        want = {"a": (EXT2, 7010), "b": (EXT1, 7011), "c": (EXT1, 7010)}[data]
        assert frm == want, f"probe {data} arrived from {frm}, sent from {want}"
    refused = 3 - len(expected)
    filtered = ct.counter_delta(before, after, "drop_out2in_filtered")
    if refused:
        assert filtered >= refused, (f"{mode}: {refused} probes refused but drop_out2in_filtered "
                                     f"grew by {filtered}")
    else:
        assert filtered == 0, f"{mode}: nothing refused but drop_out2in_filtered grew by {filtered}"


def test_udp_and_icmp_sessions_expire(net):
    c = net.start_cgnd(filtering="endpoint-independent",
                       extra=["--timeout-udp", "2", "--timeout-icmp", "2"])
    s1 = net.agent("sub1", 42020)
    e1 = net.agent("ext1", 7020)
    e1b = net.agent("ext1", 7021)
    E = learn(s1, e1, EXT1, 7020)
    assert net.ping("sub1", EXT1, count=1).returncode == 0
    # while the mapping lives, (EIF) another outside endpoint reaches sub1
    e1b.send(E[0], E[1], "alive")
    got = s1.recv(timeout=1.0, max_packets=1)
    assert [d for _, d in got] == ["alive"], f"inbound to live mapping {E} not delivered: {got}"
    before = c.counters()
    time.sleep(5)
    mid = c.counters()
    expired = ct.counter_delta(before, mid, "sessions_expired")
    # Three sessions: sub1 -> ext1:7020, ext1:7021 -> sub1 (let in by EIF), and the ping.
    assert expired == 3, (f"after 5 s idle with 2 s UDP/ICMP timeouts sessions_expired grew by "
                          f"{expired} (expected the two UDP sessions and the ICMP one): {mid}")
    e1.send(E[0], E[1], "late")
    got = s1.recv(timeout=1.5)
    after = c.counters()
    assert not got, f"packet to expired mapping {E} still reached sub1: {got}"
    grew = ct.counter_delta(mid, after, "drop_out2in_no_mapping")
    assert grew == 1, f"drop_out2in_no_mapping grew by {grew}: {after}"
    # and a new exchange works again afterwards
    learn(s1, e1, EXT1, 7020, payload="again")
