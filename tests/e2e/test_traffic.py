"""TCP and UDP through cgnd; what the outside sees."""

import pytest

import cgn_topology as ct
from conftest import assert_pool, read_json_line

EXT1 = ct.HOSTS["ext1"].ip
MIB = 1 << 20


def tcp_round(net, port, clients, nbytes=MIB, reply=MIB):
    """Sink on ext1; each client sends nbytes and receives reply bytes on one connection."""
    sink = net.spawn_peer("ext1", "tcp-sink", "--port", port, "--conns", len(clients),
                          "--reply-bytes", reply, "--timeout", 20)
    assert "listening" in read_json_line(sink)
    sent = {}
    for sub in clients:
        r = net.peer(sub, "tcp-send", "--host", EXT1, "--port", port, "--bytes", nbytes,
                     "--timeout", 20, timeout=60, check=False)
        assert "error" not in r, f"tcp-send from {sub} failed: {r}"
        sent[sub] = r
    seen = [read_json_line(sink, timeout=20) for _ in clients]
    return sent, seen


@pytest.mark.parametrize("pmd", ct.PMDS)
def test_tcp_transfer(net, pmd):
    if pmd == "net_af_xdp" and ct.default_workers() > 1:
        # The AF_XDP PMD sizes its queues by the interface's "combined" channels, and a veth
        # has none (only rx/tx channels): one queue per veth, so one worker.
        pytest.skip("net_af_xdp on a veth gives one queue: no room for several workers")
    c = net.start_cgnd(pmd=pmd)
    before = c.counters()
    sent, seen = tcp_round(net, 5001, ["sub1", "sub2"])
    by_hash = {s.get("recv_sha256"): s for s in seen}
    for sub, cl in sent.items():
        assert cl["local"][0] == ct.HOSTS[sub].ip
        s = by_hash.get(cl["sent_sha256"])
        assert s is not None, f"ext1 never received {sub}'s bytes intact: client {cl}, sink {seen}"
        assert s["recv_bytes"] == MIB
        assert_pool(s["peer"][0], f"source of {sub}'s connection as seen by ext1")
        # the reverse direction over the same connection
        assert cl["recv_bytes"] == MIB, cl
        assert cl["recv_sha256"] == s["sent_sha256"], f"reply to {sub} corrupted: {cl} vs {s}"
    after = c.counters()
    d = {k: ct.counter_delta(before, after, k) for k in ct.KNOWN_COUNTERS}
    # >= 2 MiB each way in <=1460-byte segments
    assert d["in2out_translated"] >= 1400, d
    assert d["out2in_translated"] >= 1400, d
    assert d["sessions_created"] >= 2 and d["mappings_created"] >= 2, d


def test_udp_echo(net):
    c = net.start_cgnd()
    before = c.counters()
    echo = net.spawn_peer("ext1", "udp-echo", "--port", 6001, "--idle", 30)
    assert "listening" in read_json_line(echo)
    seen = {}
    for sub, bind in (("sub1", 41001), ("sub2", 41002)):
        r = net.peer(sub, "udp-send", "--host", EXT1, "--port", 6001, "--bind-port", bind,
                     "--count", 10, "--timeout", 1, "--tries", 3, timeout=60, check=False)
        assert r["lost"] == 0, f"{sub}: {r['lost']} of 10 echoes never came back: {r}"
        srcs = {tuple(x["seen"]) for x in r["replies"]}
        assert len(srcs) == 1, f"{sub}'s one socket appeared as several sources: {srcs}"
        (addr, port), = srcs
        assert_pool(addr, f"UDP source of {sub} as seen by ext1")
        seen[sub] = (addr, port)
    assert seen["sub1"] != seen["sub2"], f"two subscribers share one external endpoint: {seen}"
    after = c.counters()
    d = {k: ct.counter_delta(before, after, k) for k in ct.KNOWN_COUNTERS}
    assert d["in2out_translated"] >= 20 and d["out2in_translated"] >= 20, d
    assert d["sessions_created"] >= 2, d


def test_outside_sees_only_pool_addresses(net):
    c = net.start_cgnd()
    cap = net.spawn_peer("ext1", "capture", "--iface", "eth0", "--max-seconds", 60)
    assert read_json_line(cap).get("ready")

    for sub in ct.SUBSCRIBERS:
        assert net.ping(sub, EXT1, count=2).returncode == 0
    sent, seen = tcp_round(net, 5002, ["sub1", "sub2"], nbytes=256 << 10, reply=64 << 10)
    echo = net.spawn_peer("ext1", "udp-echo", "--port", 6002, "--idle", 30)
    assert "listening" in read_json_line(echo)
    for sub in ct.SUBSCRIBERS:
        r = net.peer(sub, "udp-send", "--host", EXT1, "--port", 6002, "--count", 5,
                     timeout=60, check=False)
        assert r["lost"] == 0, r
    # An ICMP error from a subscriber: ext1 sends to a mapped endpoint whose socket is gone,
    # sub1's kernel answers port unreachable. Translated (inner header too) or dropped is
    # fine; a 100.64 address leaking out in it is not.
    a = net.agent("sub1", 43001)
    ext = net.agent("ext1", 7003)
    a.send(EXT1, 7003, "hello")
    got = ext.recv(timeout=2, max_packets=1)
    assert got, "ext1 got nothing from sub1's agent"
    (e_addr, e_port), _ = got[0]
    a.close()
    ext.send(e_addr, e_port, "to a closed socket")
    ext.recv(timeout=0.5)

    cap.stdin.write("stop\n")
    cap.stdin.flush()
    st = read_json_line(cap, timeout=10)
    allowed = {str(x) for x in ct.POOL} | {ct.CGN_OUTSIDE}
    leaks = {k: v for key in ("ipv4_src", "ipv4_dst", "icmp_inner_src", "icmp_inner_dst",
                              "arp_sender") for k, v in st[key].items() if ct.is_inside(k)}
    assert not leaks, f"subscriber addresses seen on the outside: {leaks}\ncapture: {st}"
    strangers = {k: v for k, v in st["ipv4_src"].items() if k not in allowed}
    assert not strangers, f"ext1 received IPv4 from outside pool/cgnd: {strangers}\ncapture: {st}"
    from_pool = sum(v for k, v in st["ipv4_src"].items() if ct.in_pool(k))
    assert from_pool >= 200, f"capture saw too little translated traffic ({from_pool}): {st}"
    assert c.alive()
