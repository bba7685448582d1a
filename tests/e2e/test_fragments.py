"""IPv4 fragments through cgnd (RFC 4787 REQ-14: in-order and out-of-order fragments).

What cgnd is expected to do: translate every fragment of a datagram with the ports (or ICMP
identifier) learned from its first fragment, keyed by source, destination, protocol and IP
ID, whatever order the fragments arrive in; non-first fragments that arrive before the first
are held (bounded in number and time, ~2 s) and sent on once the first one has been
translated. Receivers here are unmodified Linux hosts: their kernels reassemble, so a
datagram arrives in a socket only if every fragment was translated (addresses, ports and
checksums) and none was lost.

Fragments are produced two ways: by the senders' kernels (large datagrams on real sockets,
ping -s 4000; always in order) and by tests/e2e/fragtool.py (hand-built fragments sent
through a raw socket in any order; proven on its own by test_fragtool.py).

How cgnd is attached (environment variable CGN_FRAG_WIRING):

  tap (default)  cgnd's ports are net_tap devices bridged to in0/out0 in the cgn namespace.
                 Needed because the net_af_packet PMD joins its sockets to a PACKET_FANOUT
                 group with PACKET_FANOUT_FLAG_DEFRAG (DPDK 22.11, any qpairs): the kernel of
                 the cgn namespace reassembles every IPv4 datagram before cgnd sees it, and
                 hands cgnd the reassembled datagram cut to the ring's frame size (it is then
                 dropped as drop_ipv4_total_length). Non-first fragments without their first
                 one never reach cgnd at all. A tap queue has no such step, and it has one
                 queue per worker, so CGN_WORKERS=2 works too.
  af_packet      the suite's usual wiring, to see the effect just described.
  af_xdp         net_af_xdp on in0/out0 (one queue on a veth: CGN_WORKERS=1 only).
  linux          no cgnd: the cgn namespace becomes a Linux router that SNATs to the pool
                 (nftables). Checks the tests themselves: they must all pass this way (the
                 counter assertions are skipped), so that a failure with cgnd is cgnd's.
"""

import json
import os
import re
import time
from pathlib import Path

import pytest

import cgn_topology as ct
import fragtool
from conftest import assert_pool, learn

EXT1 = ct.HOSTS["ext1"].ip
FRAGTOOL = Path(__file__).resolve().with_name("fragtool.py")
WIRING = os.environ.get("CGN_FRAG_WIRING", "tap")
WIRINGS = ("tap", "af_packet", "af_xdp", "linux")

# Tap wiring: cgnd's DPDK ports and the bridges joining them to the topology's veths.
TAP_IN, TAP_OUT = "ftin", "ftout"
BR_IN, BR_OUT = "ftbrin", "ftbrout"
# The kernel side of a tap gets its own MAC: with the DPDK port's MAC on a bridge port, the
# bridge would take frames for cgnd as its own.
TAP_KERNEL_MAC = {TAP_IN: "02:00:00:00:f0:01", TAP_OUT: "02:00:00:00:f0:02"}

# cgnd holds fragments that came before their first one for about this long (assumed; see
# the module docstring) before dropping them.
HOLD_SECONDS = 2.0


# ---- attaching cgnd (or a Linux router) -------------------------------------------------------

class Nat:
    """The translator under test: a running cgnd, or None for the Linux router."""

    def __init__(self, cgnd):
        self.cgnd = cgnd

    def counters(self) -> dict:
        return self.cgnd.counters() if self.cgnd else {}

    def alive(self) -> bool:
        return self.cgnd.alive() if self.cgnd else True

    def moved(self, before: dict) -> dict:
        """Counters that changed since `before` (for failure messages)."""
        if not self.cgnd:
            return {}
        after = self.cgnd.counters()
        return {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}


class Wiring:
    def __init__(self, net):
        if WIRING not in WIRINGS:
            raise ValueError(f"CGN_FRAG_WIRING={WIRING!r}: one of {WIRINGS}")
        self.net = net
        self.topo = net.topo
        self.bridges = []
        self.router = False

    def cgn(self, argv, check=True):
        return self.topo.run("cgn", argv, check=check)

    def start(self, extra=()) -> Nat:
        if WIRING == "linux":
            self._start_router()
            return Nat(None)
        if WIRING == "af_xdp" and ct.default_workers() > 1:
            pytest.skip("net_af_xdp on a veth has one queue: CGN_WORKERS=1 only")
        if WIRING in ("af_packet", "af_xdp"):
            return Nat(self.net.start_cgnd(extra=extra, pmd="net_" + WIRING))
        return Nat(self._start_tap(extra))

    def _start_tap(self, extra):
        argv = ct.cgnd_argv(eal=ct.eal_args(self.topo.prefix), extra=list(extra))
        argv[argv.index("--inside-port") + 1] = f"net_tap0,iface={TAP_IN}"
        argv[argv.index("--outside-port") + 1] = f"net_tap1,iface={TAP_OUT}"
        self.topo.flush_neigh()
        c = self.topo.start_cgnd(argv=argv, wait=False)
        self.net.request.node._cgnds.append(c)  # stopped (and reported) by the net fixture
        deadline = time.monotonic() + 20
        while not all(self.cgn(["ip", "link", "show", "dev", t], check=False).returncode == 0
                      for t in (TAP_IN, TAP_OUT)):
            if not c.alive() or time.monotonic() > deadline:
                raise AssertionError(f"cgnd's tap devices {TAP_IN}/{TAP_OUT} did not appear\n"
                                     + c.output(tail=40))
            time.sleep(0.1)
        c.wait_ready()
        # (after rte_eth_dev_start: starting the port sets the kernel side's MAC again)
        for br, veth, tap in ((BR_IN, "in0", TAP_IN), (BR_OUT, "out0", TAP_OUT)):
            # A long queue towards cgnd: a flood from a test must reach it whole even while
            # the workers share the CPUs with other work (the default 1000 frames did not).
            self.cgn(["ip", "link", "set", "dev", tap, "address", TAP_KERNEL_MAC[tap],
                      "multicast", "off", "txqueuelen", "10000"])
            self.cgn(["ip", "link", "add", "name", br, "type", "bridge", "stp_state", "0",
                      "forward_delay", "0", "mcast_snooping", "0"])
            self.bridges.append(br)
            self.cgn(["ip", "link", "set", "dev", br, "multicast", "off"])
            for dev in (veth, tap):
                self.cgn(["ip", "link", "set", "dev", dev, "master", br])
                self.cgn(["ip", "link", "set", "dev", dev, "up"])
            self.cgn(["ip", "link", "set", "dev", br, "up"])
        return c

    def _start_router(self):
        self.topo.flush_neigh()
        self.router = True
        self.cgn(["ip", "addr", "add", f"{ct.CGN_INSIDE}/10", "dev", "in0"])
        self.cgn(["ip", "addr", "add", f"{ct.CGN_OUTSIDE}/24", "dev", "out0"])
        self.cgn(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        pool = list(ct.POOL.hosts())
        self.topo.run("cgn", ["nft", "-f", "-"], input=(
            "table ip fragtest {\n"
            "  chain post {\n"
            "    type nat hook postrouting priority srcnat; policy accept;\n"
            f"    oifname \"out0\" ip saddr {ct.INSIDE_NET} snat to {pool[0]}-{pool[-1]}\n"
            "  }\n"
            "}\n"))

    def close(self):
        for br in self.bridges:
            self.cgn(["ip", "link", "del", "dev", br], check=False)
        self.bridges.clear()
        if self.router:
            self.cgn(["nft", "delete", "table", "ip", "fragtest"], check=False)
            self.cgn(["sysctl", "-qw", "net.ipv4.ip_forward=0"], check=False)
            for dev in ("in0", "out0"):
                self.cgn(["ip", "addr", "flush", "dev", dev], check=False)
            self.topo.flush_neigh()
            self.router = False


@pytest.fixture
def wiring(net):
    w = Wiring(net)
    try:
        yield w
    finally:
        w.close()


# ---- helpers --------------------------------------------------------------------------

def warm(net):
    """Neighbours resolved on every hop before fragments travel (cgnd's ARP queue is short),
    and proof that the wiring carries full-size frames (1500-byte packets, DF, unfragmented)
    both ways, as the fragments will be."""
    r = net.ping("sub1", EXT1, count=2, wait=1)
    assert r.returncode == 0, f"even a small ping sub1 -> ext1 fails: setup broken\n{r.stdout}"
    r = net.run("sub1", ["ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-s", "1472", "-M",
                         "do", EXT1], check=False, timeout=20)
    assert r.returncode == 0, (f"a 1500-byte unfragmented ping sub1 -> ext1 fails: the wiring "
                               f"does not carry full-size frames\n{r.stdout}{r.stderr}")


def kernel_stats(net, host) -> dict:
    """IP reassembly and UDP checksum counters of a host's kernel (/proc/net/snmp)."""
    lines = net.run(host, ["cat", "/proc/net/snmp"]).stdout.splitlines()
    out = {}
    for head, vals in zip(lines[::2], lines[1::2]):
        proto, names = head.split(":", 1)
        for n, v in zip(names.split(), vals.split(":", 1)[1].split()):
            if (proto, n) in (("Ip", "ReasmOKs"), ("Ip", "ReasmFails"), ("Ip", "ReasmTimeout"),
                              ("Udp", "InCsumErrors"), ("Icmp", "InCsumErrors")):
                out[f"{proto}{n}"] = int(v)
    return out


class Watch:
    """Counters before an action, to explain a failure: cgnd's and the receiver's kernel's."""

    def __init__(self, net, nat: Nat, host: str):
        self.net, self.nat, self.host = net, nat, host
        self.cgnd = nat.counters()
        self.kernel = kernel_stats(net, host)

    def why(self) -> str:
        k = kernel_stats(self.net, self.host)
        kd = {n: k[n] - self.kernel.get(n, 0) for n in k if k[n] != self.kernel.get(n, 0)}
        if not self.nat.alive():
            return f"cgnd is no longer running; {self.host} kernel: {kd}"
        return (f"cgnd counters that moved: {self.nat.moved(self.cgnd)}; {self.host} kernel "
                f"(reassembly, checksum errors): {kd or 'unchanged'}")


def fragtool_run(net, host, *args, timeout=60, check=True) -> dict:
    r = net.run(host, [ct.PYTHON, FRAGTOOL, *args], timeout=timeout, check=check)
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    assert lines, f"fragtool {args} on {host} printed nothing (rc {r.returncode}): {r.stderr}"
    out = json.loads(lines[-1])
    out["_rc"] = r.returncode
    return out


def deliver(send, agent, what, watch, seed, tries=2, timeout=2.0):
    """send() until agent receives the pattern datagram with this seed (tries times, timeout
    seconds each); returns (from, verify result). A late copy of an earlier datagram (another
    seed) is skipped; a damaged one is returned (the caller's assertion reports it)."""
    stale = []
    for _ in range(tries):
        send()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            got = agent.recv(timeout=left, max_packets=1)
            if not got:
                break
            (frm, data), = got
            v = fragtool.verify(data.encode("utf-8", "replace"))
            if v["ok"] and v["seed"] != seed:
                stale.append((tuple(frm), v["seed"]))
                continue
            return tuple(frm), v
    pytest.fail(f"{what}: nothing arrived ({tries} tries"
                f"{f'; only earlier datagrams: {stale}' if stale else ''}). {watch.why()}")


# ---- a: large datagrams from real sockets, fragmented by the senders' kernels ---------------

@pytest.mark.parametrize("size", [4000, 9000])
def test_large_udp_datagrams_both_ways(net, wiring, size):
    nat = wiring.start()
    warm(net)
    s1 = net.agent("sub1", 41200)
    e1 = net.agent("ext1", 7200)
    request = fragtool.pattern(size, size).decode()
    w = Watch(net, nat, "ext1")
    frm, v = deliver(lambda: s1.send(EXT1, 7200, request), e1,
                     f"sub1's {size}-byte UDP datagram (in {-(-(size + 8) // 1480)} fragments) "
                     f"to ext1", w, seed=size)
    assert v["ok"] and v["size"] == size, f"ext1 got sub1's datagram damaged: {v}"
    assert_pool(frm[0], "source of sub1's large datagram as seen by ext1")
    reply = fragtool.pattern(size + 1, size).decode()
    w = Watch(net, nat, "sub1")
    back, v = deliver(lambda: e1.send(frm[0], frm[1], reply), s1,
                      f"ext1's {size}-byte reply to {frm[0]}:{frm[1]} (sub1's external endpoint)",
                      w, seed=size + 1)
    assert back == (EXT1, 7200), f"sub1 got the reply from {back}, not from ext1:7200"
    assert v["ok"] and v["seed"] == size + 1, f"sub1 got ext1's reply damaged: {v}"


# ---- b: ping with large echo requests and replies ---------------------------------------

def test_large_ping(net, wiring):
    nat = wiring.start()
    warm(net)
    w = Watch(net, nat, "ext1")
    r = net.run("sub1", ["ping", "-n", "-c", "3", "-i", "0.3", "-W", "2", "-s", "4000",
                         "-M", "want", EXT1], check=False, timeout=30)
    m = re.search(r"(\d+) received", r.stdout)
    received = int(m.group(1)) if m else 0
    assert received == 3, (f"ping -s 4000 sub1 -> ext1: {received} of 3 replies. {w.why()}\n"
                           f"{r.stdout}{r.stderr}")
    assert f"4008 bytes from {EXT1}" in r.stdout, r.stdout


# ---- c: fragments out of order from fragtool ----------------------------------------------

OUT_ORDERS = [("reverse", 31, []), ("shuffle", 32, []), ("shuffle", 33, []),
              ("first-last", 34, []), ("reverse", 35, ["--duplicate", "3"])]


def test_reordered_fragments_to_outside(net, wiring):
    nat = wiring.start()
    warm(net)
    e1 = net.agent("ext1", 7300)
    seen = set()
    for order, seed, extra in OUT_ORDERS:
        what = f"sub1 -> ext1 UDP, 3000 bytes in 6 fragments sent {order} {' '.join(extra)}"
        w = Watch(net, nat, "ext1")
        frm, v = deliver(lambda: fragtool_run(
            net, "sub1", "udp", "--dst", EXT1, "--dport", 7300, "--sport", 41300, "--size",
            3000, "--frag-size", 512, "--order", order, "--seed", seed, *extra), e1, what, w,
            seed=seed)
        assert v["ok"] and v["seed"] == seed, f"{what}: arrived damaged: {v}"
        assert_pool(frm[0], f"{what}: source seen by ext1")
        seen.add(frm)
    assert len(seen) == 1, f"one internal endpoint appeared as several external ones: {seen}"


def test_reordered_fragments_to_subscriber(net, wiring):
    nat = wiring.start()
    warm(net)
    s1 = net.agent("sub1", 41310)
    e1 = net.agent("ext1", 7310)
    ext = learn(s1, e1, EXT1, 7310)  # sub1's mapping, as ext1 sees it
    assert_pool(ext[0], "sub1's external address")
    for order, seed in (("reverse", 41), ("shuffle", 42), ("first-last", 43)):
        what = (f"ext1 -> sub1's external endpoint {ext[0]}:{ext[1]}, UDP 3000 bytes in 6 "
                f"fragments sent {order}")
        w = Watch(net, nat, "sub1")
        frm, v = deliver(lambda: fragtool_run(
            net, "ext1", "udp", "--dst", ext[0], "--dport", ext[1], "--sport", 7310,
            "--size", 3000, "--frag-size", 512, "--order", order, "--seed", seed), s1, what, w,
            seed=seed)
        assert frm == (EXT1, 7310), f"{what}: sub1 got it from {frm}"
        assert v["ok"] and v["seed"] == seed, f"{what}: arrived damaged: {v}"


def test_interleaved_datagrams(net, wiring):
    """Two datagrams in flight at once from one subscriber, their fragments interleaved."""
    nat = wiring.start()
    warm(net)
    e1 = net.agent("ext1", 7320)
    w = Watch(net, nat, "ext1")
    procs = []
    for sport, order, seed in ((41320, "reverse", 51), (41321, "shuffle", 52)):
        p = net.topo.spawn("sub1", [ct.PYTHON, FRAGTOOL, "udp", "--dst", EXT1, "--dport", 7320,
                                    "--sport", sport, "--size", 3000, "--frag-size", 376,
                                    "--order", order, "--seed", seed, "--gap", 0.1])
        net.bg.append(p)
        procs.append(p)
    for p in procs:
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, f"fragtool failed: {out}{err}"
    got = e1.recv(timeout=3, max_packets=2)
    verdicts = {frm: fragtool.verify(data.encode()) for frm, data in got}
    assert len(got) == 2, (f"two interleaved datagrams (8 fragments each) sub1 -> ext1: "
                           f"{len(got)} arrived {verdicts}. {w.why()}")
    assert sorted(v["seed"] for v in verdicts.values() if v["ok"]) == [51, 52], verdicts
    assert len({frm for frm in verdicts}) == 2, f"two source ports, one endpoint? {verdicts}"


# ---- d: ICMP echo out of order, answered by ext1's kernel -----------------------------------

def test_reordered_icmp_echo(net, wiring):
    nat = wiring.start()
    warm(net)
    for order in ("reverse", "first-last", "shuffle"):
        w = Watch(net, nat, "ext1")
        r = fragtool_run(net, "sub1", "icmp", "--dst", EXT1, "--size", 4000, "--frag-size",
                         1024, "--order", order, "--seed", 61, "--expect-reply", "--tries", 2,
                         "--timeout", 2, check=False)
        assert r.get("reply"), (f"echo request sub1 -> ext1, 4000 bytes in 4 fragments sent "
                                f"{order}: no reply ({r['tries']} tries). {w.why()}")
        assert r["reply"]["intact"] and r["reply"]["icmp_checksum_ok"], (
            f"the echo reply to a request sent {order} came back damaged: {r['reply']}")


# ---- e: fragments that never get their first one --------------------------------------------

# Where a non-first fragment whose first never comes ends: held, then dropped when its datagram
# times out; or dropped at once when the table or the datagram's hold is full, or (several
# workers) when the handoff ring to the worker that owns it is full.
# drop_fragment_hold_budget: beyond the worker's share of the mbuf pool (with two workers and
# the default --mbufs, 639 held fragments each: common/mbuf_budget.hpp).
FRAGMENT_DROPS_AT_ONCE = ("drop_fragment_table_full", "drop_fragment_hold_full",
                          "drop_fragment_hold_budget", "drop_handoff_full")


def test_unmatched_fragments_are_bounded(net, wiring):
    """Non-first fragments of 2000 datagrams whose first fragment never comes: cgnd must
    survive, keep translating, count them as dropped once it gives up on them (after the hold
    time or when its table is full), and have room for new datagrams afterwards."""
    nat = wiring.start()
    warm(net)
    before = nat.counters()
    # 2000 datagrams (IP IDs 20000..21999), each 72 bytes of UDP in 3 fragments of which only
    # the 2nd and 3rd are sent: 4000 fragments cgnd can never translate. Sent a little apart
    # (about 10 a millisecond): all must reach cgnd to be counted, and 4000 at once overflowed
    # the kernel's queues once on a loaded 2-CPU machine (206 lost before cgnd).
    r = fragtool_run(net, "sub1", "udp", "--dst", EXT1, "--dport", 7500, "--sport", 41500,
                     "--size", 64, "--frag-size", 24, "--skip-first", "--datagrams", 2000,
                     "--id", 20000, "--gap", 0.00005)
    flood_end = time.monotonic()
    assert r["packets"] == 4000, r
    assert nat.alive(), "cgnd died after a flood of fragments without their first fragment"

    # normal traffic still flows, both ways
    s = net.agent("sub1", 41501)
    e = net.agent("ext1", 7501)
    ext = learn(s, e, EXT1, 7501)
    e.send(ext[0], ext[1], "still there?")
    got = s.recv(timeout=2, max_packets=1)
    assert got and tuple(got[0][0]) == (EXT1, 7501), (
        f"after the flood, ext1's answer to sub1 did not arrive: {got}; "
        f"counters moved: {nat.moved(before)}")

    # once the hold time is over, every fragment of the flood is accounted for, exactly once:
    # each was held and then dropped at its timeout, or dropped at once (table or hold full).
    # fragments_held alone growing (held, never given up on) is not enough.
    time.sleep(max(0.0, flood_end + HOLD_SECONDS + 0.5 - time.monotonic()))
    if nat.cgnd:
        deadline = time.monotonic() + 3
        while True:
            after_flood = nat.cgnd.counters()
            delta = {k: ct.counter_delta(before, after_flood, k) for k in after_flood}
            if (delta["drop_fragment_timeout"] == delta["fragments_held"]
                    or time.monotonic() > deadline):
                break
            time.sleep(0.5)
        assert delta["drop_fragment_timeout"] == delta["fragments_held"], (
            f"held fragments never dropped after {time.monotonic() - flood_end:.0f}s: "
            f"{nat.moved(before)}")
        accounted = delta["fragments_held"] + sum(delta[k] for k in FRAGMENT_DROPS_AT_ONCE)
        assert accounted == 4000, (
            f"4000 fragments without their first: {accounted} held or dropped "
            f"(counters moved: {nat.moved(before)})")

    # and a complete datagram (its first fragment last) gets through: the flood left no stuck
    # state behind
    e2 = net.agent("ext1", 7502)
    w = Watch(net, nat, "ext1")
    frm, v = deliver(lambda: fragtool_run(
        net, "sub1", "udp", "--dst", EXT1, "--dport", 7502, "--sport", 41502, "--size", 3000,
        "--frag-size", 512, "--order", "first-last", "--seed", 71), e2,
        "after the flood and the hold time, a 6-fragment datagram sent first-last", w, seed=71)
    assert v["ok"] and v["seed"] == 71, v
    assert_pool(frm[0])
    assert nat.alive()
