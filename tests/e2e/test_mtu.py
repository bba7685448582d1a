"""cgnd honours the MTU of the link it sends on (RFC 4787 REQ-13/13a, RFC 5508 §7.1.1), with
real Linux hosts on both sides.

cgnd runs with ``--outside-mtu 1280``. On net_af_packet it sets that MTU on its outside veth
(``out0`` in the cgn namespace) itself, through rte_eth_dev_set_mtu: the kernel then lets no
frame longer than 1280 bytes of IP through that veth either way (a longer frame cgnd sent would
be refused by the packet socket, a longer one from outside dropped by the veth), so cgnd's own
limit and the kernel's agree. The subscribers' links and ext1's stay at 1500: ext1 advertises an
MSS of 1460, so the subscriber's full-size TCP segments (1500 bytes, DF set) do not fit the
outside link and only cgnd's own "fragmentation needed" can teach the subscriber the path MTU.
Traffic from ext1 stays small in these tests (acknowledgements), as a host on a 1280-byte link
would send it; the veth is put back to 1500 afterwards.
"""

import re
import time

import pytest

import cgn_topology as ct
from conftest import assert_pool, read_json_line

EXT1 = ct.HOSTS["ext1"].ip
SUB1 = ct.HOSTS["sub1"].ip
MTU = 1280
MIB = 1 << 20


@pytest.fixture
def mtu_net(net):
    yield net
    # The next cgnd sets its own MTU at start; leave the topology as it was all the same.
    net.run("cgn", ["ip", "link", "set", "dev", "out0", "mtu", "1500"], check=False)


def start_cgnd(net):
    c = net.start_cgnd(extra=["--outside-mtu", str(MTU)])
    link = net.run("cgn", ["ip", "-o", "link", "show", "dev", "out0"]).stdout
    assert re.search(rf"\bmtu {MTU}\b", link), (
        f"cgnd did not set its outside port's MTU to {MTU}: {link}\n" + c.output(tail=30))
    return c


def route_mtu(net, host: str, dst: str) -> tuple[int | None, str]:
    """The MTU host's kernel uses towards dst (a learnt PMTU shows as 'mtu N'), and the text."""
    out = net.run(host, ["ip", "-o", "route", "get", dst]).stdout.strip()
    m = re.search(r"\bmtu (\d+)", out)
    return (int(m.group(1)) if m else None), out


def reassembled_datagrams(net, host: str) -> int:
    """Datagrams the host's kernel put together from fragments (Ip ReasmOKs, RFC 2011)."""
    lines = [l.split() for l in net.run(host, ["cat", "/proc/net/snmp"]).stdout.splitlines()
             if l.startswith("Ip:")]
    names, values = lines[0], lines[1]
    return int(values[names.index("ReasmOKs")])


def test_tcp_transfer_learns_the_path_mtu_from_cgnd(mtu_net):
    """REQ-13: the subscriber's full-size DF segments are refused with cgnd's own ICMP
    fragmentation needed (next-hop MTU 1280), its kernel learns the path MTU from it and the
    transfer completes in smaller segments."""
    net = mtu_net
    # Only an ICMP error may teach the subscriber the path MTU (no PLPMTUD probing), and no
    # path MTU learnt before counts.
    net.run("sub1", ["sysctl", "-qw", "net.ipv4.tcp_mtu_probing=0"])
    net.run("sub1", ["ip", "route", "flush", "cache"])
    mtu, text = route_mtu(net, "sub1", EXT1)
    assert mtu is None, f"sub1 already has a path MTU towards {EXT1}: {text}"

    c = start_cgnd(net)
    assert net.ping("sub1", EXT1, count=2).returncode == 0, "neighbours through cgnd"
    before = c.counters()
    sink = net.spawn_peer("ext1", "tcp-sink", "--port", 5311, "--conns", 1, "--timeout", 15)
    assert "listening" in read_json_line(sink)
    t0 = time.monotonic()
    cl = net.peer("sub1", "tcp-send", "--host", EXT1, "--port", 5311, "--bytes", 4 * MIB,
                  "--timeout", 8, timeout=40, check=False)
    elapsed = time.monotonic() - t0
    after = c.counters()
    mtu, text = route_mtu(net, "sub1", EXT1)
    d = {k: ct.counter_delta(before, after, k)
         for k in ("icmp_frag_needed_sent", "drop_too_big_df", "drop_icmp_rate_limited",
                   "tx_outside", "in2out_translated")}
    assert "error" not in cl, (
        f"the transfer from sub1 to {EXT1} over cgnd's {MTU}-byte outside link failed after "
        f"{elapsed:.1f}s: {cl}; sub1's route: {text}; counters {d}")
    sv = read_json_line(sink, timeout=15)
    assert sv.get("recv_bytes") == 4 * MIB and sv.get("recv_sha256") == cl["sent_sha256"], (
        f"{EXT1} did not receive sub1's bytes intact: client {cl}, server {sv}")
    assert_pool(sv["peer"][0], f"source of sub1's connection as seen by {EXT1}")
    assert mtu == MTU, (
        f"sub1 has not learnt the path MTU {MTU} towards {EXT1}: 'ip route get' says {text!r}")
    assert d["icmp_frag_needed_sent"] > 0 and d["drop_too_big_df"] > 0, d


def test_udp_datagram_without_df_is_fragmented_by_cgnd(mtu_net):
    """REQ-13a: a 1400-byte datagram sent with DF clear (IP_PMTUDISC_DONT) leaves cgnd in
    fragments that fit the outside link, and ext1's kernel puts them back together."""
    net = mtu_net
    c = start_cgnd(net)
    assert net.ping("sub1", EXT1, count=2).returncode == 0, "neighbours through cgnd"
    agent = net.agent("ext1", 6311)
    payload = "".join(f"{i:04d}" for i in range(343))  # 1372 bytes: a 1400-byte IP packet
    # IP_MTU_DISCOVER = 10, IP_PMTUDISC_DONT = 0 (linux/in.h): the kernel sends DF clear.
    sender = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "s.setsockopt(socket.IPPROTO_IP, getattr(socket, 'IP_MTU_DISCOVER', 10),"
        " getattr(socket, 'IP_PMTUDISC_DONT', 0))\n"
        "s.bind(('0.0.0.0', 41311))\n"
        f"s.sendto(sys.argv[1].encode(), ({EXT1!r}, 6311))\n")
    before = c.counters()
    reasm_before = reassembled_datagrams(net, "ext1")
    got = []
    for _ in range(3):
        net.run("sub1", [ct.PYTHON, "-c", sender, payload])
        got = agent.recv(timeout=1.5, max_packets=1)
        if got:
            break
    after = c.counters()
    d = {k: ct.counter_delta(before, after, k)
         for k in ("packets_fragmented", "fragments_created", "drop_fragmentation_failed",
                   "icmp_frag_needed_sent")}
    assert got, f"ext1 received nothing from sub1's 1400-byte datagram; counters {d}"
    (frm, data), = got
    assert data == payload, f"the datagram arrived altered ({len(data)} bytes)"
    assert_pool(frm[0], "source of sub1's datagram as seen by ext1")
    assert d["packets_fragmented"] >= 1 and d["fragments_created"] >= 2, d
    assert d["icmp_frag_needed_sent"] == 0, d
    assert reassembled_datagrams(net, "ext1") > reasm_before, "ext1 reassembled nothing"
