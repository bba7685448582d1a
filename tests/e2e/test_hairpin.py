"""Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8): one subscriber reaches another through the
other's external endpoint, and each sees the other's external endpoint, never its 100.64
address."""

import cgn_topology as ct
from conftest import assert_pool, learn, read_json_line

EXT1 = ct.HOSTS["ext1"].ip
SUB2 = ct.HOSTS["sub2"].ip


def test_udp_hairpin_between_subscribers(net):
    net.start_cgnd()
    b = net.agent("sub2", 43020)
    e1 = net.agent("ext1", 7040)
    b_ext = learn(b, e1, EXT1, 7040)  # B's external endpoint, as the Internet sees it
    assert_pool(b_ext[0], "B's external address")
    a = net.agent("sub1", 43021)
    seen_by_b = learn(a, b, b_ext[0], b_ext[1], payload="hello B")
    assert_pool(seen_by_b[0], "the source B sees for A (REQ-9: A's external endpoint)")
    a_ext = learn(a, e1, EXT1, 7040)
    assert tuple(seen_by_b) == tuple(a_ext), (
        f"B saw A as {seen_by_b}, the Internet sees A as {a_ext}: hairpinning must use A's "
        f"external endpoint")
    seen_by_a = learn(b, a, seen_by_b[0], seen_by_b[1], payload="hello A")
    assert tuple(seen_by_a) == tuple(b_ext), f"A saw B's answer from {seen_by_a}, not {b_ext}"


def test_tcp_hairpin_to_a_static_mapping(net):
    """sub1 opens a real TCP connection to sub2's statically mapped endpoint."""
    net.start_cgnd(extra=["--static-mapping", f"tcp {SUB2}:8080 198.51.100.5:80"])
    sink = net.spawn_peer("sub2", "tcp-sink", "--port", 8080, "--conns", 1,
                          "--reply-bytes", 65536, "--timeout", 20)
    assert "listening" in read_json_line(sink)
    r = net.peer("sub1", "tcp-send", "--host", "198.51.100.5", "--port", 80, "--bytes", 200000,
                 "--timeout", 20, timeout=60, check=False)
    assert "error" not in r, f"sub1 could not reach sub2 through 198.51.100.5:80: {r}"
    seen = read_json_line(sink, timeout=20)
    assert seen["recv_sha256"] == r["sent_sha256"], (seen, r)
    assert r["recv_sha256"] == seen["sent_sha256"], (seen, r)
    assert_pool(seen["peer"][0], "the source sub2's listener saw for sub1")


def test_icmp_echo_hairpin_to_a_one_to_one_mapping(net):
    """RFC 5508 REQ-7: sub1 pings sub2's one-to-one external address with the real ping tool.
    sub2 sees the echo requests come from sub1's external address (never its 100.64 one), its
    kernel answers, and sub1 gets every reply. Outside hosts reach sub2's address too, and
    sub2's own traffic keeps its port numbers (Basic NAT for that address)."""
    b_ext = "198.51.100.6"
    c = net.start_cgnd(extra=["--static-mapping", f"ip {SUB2} {b_ext}"])
    assert f"static mapping ip {SUB2} {b_ext}" in c.output(), c.output(tail=30)
    cap = net.spawn_peer("sub2", "capture", "--iface", "eth0", "--max-seconds", 60)
    assert read_json_line(cap).get("ready")
    r = net.ping("sub1", b_ext, count=3)
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    # sub1's external address, as the Internet sees it (paired pooling: ICMP uses it too).
    e1 = net.agent("ext1", 7041)
    a_ext = learn(net.agent("sub1", 43031), e1, EXT1, 7041)
    cap.stdin.write("stop\n")
    cap.stdin.flush()
    st = read_json_line(cap, timeout=10)
    requests = {f: n for f, n in st["flows"].items() if "echo-request" in f}
    assert sum(requests.values()) == 3, st["flows"]  # ping -c 3, no loss
    for flow in requests:
        assert flow.startswith(f"icmp {a_ext[0]} > {SUB2} echo-request id "), (
            f"sub2 saw {flow}: the source must be sub1's external address {a_ext[0]}")
    # Inbound queries reach the one-to-one subscriber; sub2's own port is kept outside.
    r = net.ping("ext1", b_ext, count=2)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = learn(net.agent("sub2", 43032), e1, EXT1, 7041)
    assert tuple(seen) == (b_ext, 43032), seen
