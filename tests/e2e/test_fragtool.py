"""fragtool.py itself, without cgnd: proves the tool so that a failure of test_fragments.py
points at cgnd and not at the tool.

Two namespaces of this module's own (ftv<pid>-a 203.0.113.1, ftv<pid>-b 203.0.113.2) are
joined by a plain veth pair; Linux reassembles on the receiving side. Every order the tool
offers must arrive intact in a plain UDP socket, ICMP echo requests in every order must be
answered with the payload intact, and what must not arrive (no first fragment, a spoiled
checksum) must not. The namespaces are always removed.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import cgn_topology as ct
import fragtool

FRAGTOOL = Path(__file__).resolve().with_name("fragtool.py")
A_IP, B_IP = "203.0.113.1", "203.0.113.2"


class Pair:
    def __init__(self, prefix: str):
        self.a, self.b = f"{prefix}-a", f"{prefix}-b"
        self.created: list[str] = []
        self.procs: list[subprocess.Popen] = []

    @staticmethod
    def _sh(argv, timeout=30, check=True) -> subprocess.CompletedProcess:
        r = subprocess.run([str(x) for x in argv], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
        if check and r.returncode:
            raise AssertionError(f"{' '.join(map(str, argv))} failed ({r.returncode}):\n"
                                 f"{r.stdout}{r.stderr}")
        return r

    def create(self) -> None:
        clash = {self.a, self.b} & ct.list_netns()
        assert not clash, f"namespaces already exist: {clash}"
        for ns in (self.a, self.b):
            self._sh(["ip", "netns", "add", ns])
            self.created.append(ns)
            self.ns(ns, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                         "net.ipv6.conf.default.disable_ipv6=1"])
            self.ns(ns, ["ip", "link", "set", "lo", "up"])
        self._sh(["ip", "-n", self.a, "link", "add", "eth0", "type", "veth", "peer", "name",
                  "eth0", "netns", self.b])
        for ns, addr in ((self.a, A_IP), (self.b, B_IP)):
            self.ns(ns, ["ethtool", "-K", "eth0", "tx", "off", "rx", "off", "sg", "off",
                         "tso", "off", "gso", "off"], check=False)
            self.ns(ns, ["ip", "addr", "add", f"{addr}/24", "dev", "eth0"])
            self.ns(ns, ["ip", "link", "set", "eth0", "up"])

    def destroy(self) -> None:
        for p in self.procs:
            ct.kill_proc(p, term_timeout=1.0)
        for ns in reversed(self.created):
            ct.remove_netns(ns)
        self.created = [ns for ns in self.created if ns in ct.list_netns()]

    def ns(self, ns, argv, **kw) -> subprocess.CompletedProcess:
        return self._sh(["ip", "netns", "exec", ns, *argv], **kw)

    def tool(self, ns, *args, check=True, timeout=30) -> dict:
        r = self.ns(ns, [ct.PYTHON, FRAGTOOL, *args], check=check, timeout=timeout)
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        assert lines, f"fragtool {args} printed nothing (rc {r.returncode}): {r.stderr}"
        out = json.loads(lines[-1])
        out["_rc"] = out.get("_rc", r.returncode)
        return out

    def receiver(self, ns, *args) -> subprocess.Popen:
        """fragtool recv in the background; returns once its socket is bound."""
        p = subprocess.Popen(["ip", "netns", "exec", ns, ct.PYTHON, str(FRAGTOOL), "recv",
                              *map(str, args)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             bufsize=1, start_new_session=True)
        self.procs.append(p)
        first = ct.read_json(p, 10)
        assert first.get("ready"), first
        return p

    @staticmethod
    def results(p: subprocess.Popen, timeout: float = 20) -> list[dict]:
        """Every line the receiver printed until it finished (its last line is 'done')."""
        out = []
        while True:
            rec = ct.read_json(p, timeout)
            if rec.get("done"):
                return out
            out.append(rec)


@pytest.fixture(scope="module")
def pair():
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, raw sockets)")
    p = Pair(f"ftv{os.getpid()}")
    try:
        p.create()
        yield p
    finally:
        p.destroy()
        assert not p.created, f"namespaces left behind: {p.created}"


# ---- the payload pattern and the checksums, offline --------------------------------------

def test_pattern_verifies_and_catches_damage():
    data = fragtool.pattern(42, 4000)
    assert fragtool.verify(data)["ok"]
    assert fragtool.pattern(42, 4000) == data and fragtool.pattern(43, 4000) != data
    swapped = data[:512] + data[1024:1536] + data[512:1024] + data[1536:]  # two blocks swapped
    assert fragtool.verify(swapped)["first_bad"] == 512
    assert fragtool.verify(data[:3992])["error"].startswith("length")
    assert fragtool.verify(data + b"x")["ok"] is False
    assert fragtool.verify(data[:100] + b"?" + data[101:])["first_bad"] == 100
    assert not fragtool.verify(b"hello")["ok"]


def test_checksums_and_fragment_layout():
    payload = fragtool.pattern(7, 3001)
    udp = fragtool.udp_datagram(A_IP, B_IP, 40000, 7000, payload)
    pseudo = socket.inet_aton(A_IP) + socket.inet_aton(B_IP)
    pseudo += bytes([0, 17]) + len(udp).to_bytes(2, "big")
    assert fragtool.inet_checksum(pseudo + udp) == 0, "UDP checksum does not verify"
    icmp = fragtool.icmp_echo(0x1234, 9, payload)
    assert fragtool.inet_checksum(icmp) == 0, "ICMP checksum does not verify"
    hdr = fragtool.ip_header(A_IP, B_IP, 17, 0xBEEF, 0x2000 | 64, 512, 64)
    assert len(hdr) == 20 and fragtool.inet_checksum(hdr) == 0
    frags = fragtool.fragments(udp, 512)
    assert b"".join(c for _, c, _ in frags) == udp
    assert [o for o, _, _ in frags] == list(range(0, len(udp), 512))
    assert all(m for _, _, m in frags[:-1]) and not frags[-1][2]
    with pytest.raises(ValueError):
        fragtool.fragments(udp, 500)
    for order in fragtool.ORDERS:
        perm = fragtool.send_order(7, order, 5)
        assert sorted(perm) == list(range(7))
        assert (perm == list(range(7))) == (order == "in-order"), (order, perm)
    assert fragtool.send_order(7, "first-last", 1)[-1] == 0


# ---- over a real veth pair --------------------------------------------------------------

# (order, seed: payload and shuffle, more options)
ORDER_CASES = [("in-order", 100, []), ("reverse", 101, []), ("first-last", 102, []),
               ("shuffle", 11, []), ("shuffle", 12, []),
               ("reverse", 105, ["--duplicate", "2"]), ("first-last", 106, ["--duplicate", "0"])]


def test_udp_in_every_order_arrives_intact(pair):
    rx = pair.receiver(pair.b, "--port", 7000, "--count", len(ORDER_CASES), "--timeout", 15)
    sent = []
    for i, (order, seed, extra) in enumerate(ORDER_CASES):
        r = pair.tool(pair.a, "udp", "--dst", B_IP, "--dport", 7000, "--sport", 40000 + i,
                      "--size", 4000, "--frag-size", 512, "--order", order, "--seed", seed,
                      *extra)
        assert r["fragments"] == 8 and len(r["sent"]) == 8 + (1 if extra[:1] == ["--duplicate"]
                                                              else 0), r
        sent.append(r)
    got = pair.results(rx)
    assert len(got) == len(ORDER_CASES), f"received {len(got)} of {len(ORDER_CASES)}: {got}"
    by_port = {g["from"][1]: g for g in got}
    for i, r in enumerate(sent):
        g = by_port.get(40000 + i)
        assert g, f"{ORDER_CASES[i]}: nothing from port {40000 + i}: {got}"
        assert g["from"][0] == A_IP
        assert g["verify"]["ok"] and g["verify"]["seed"] == ORDER_CASES[i][1], (ORDER_CASES[i], g)
        assert g["sha256"] == r["sha256"]


@pytest.mark.parametrize("size,frag", [(8000, 1480), (1473, 8), (9000, 1000)])
def test_udp_sizes(pair, size, frag):
    """Large and tiny fragments (8-byte fragments: 186 of them), shuffled."""
    rx = pair.receiver(pair.b, "--port", 7001, "--count", 1, "--timeout", 10)
    pair.tool(pair.a, "udp", "--dst", B_IP, "--dport", 7001, "--size", size,
              "--frag-size", frag, "--order", "shuffle", "--seed", size)
    got = pair.results(rx)
    assert len(got) == 1 and got[0]["verify"]["ok"] and got[0]["len"] == size, got


@pytest.mark.parametrize("order", fragtool.ORDERS)
def test_icmp_echo_in_every_order_is_answered_intact(pair, order):
    r = pair.tool(pair.a, "icmp", "--dst", B_IP, "--size", 4000, "--frag-size", 1024,
                  "--order", order, "--seed", 3, "--expect-reply", "--timeout", 3, check=False)
    assert r["_rc"] == 0 and r["reply"], r
    assert r["reply"]["intact"] and r["reply"]["icmp_checksum_ok"], r
    assert r["reply"]["from"] == B_IP and r["reply"]["len"] == 4000


def test_what_must_not_arrive_does_not(pair):
    """No first fragment: Linux holds the rest and delivers nothing. A spoiled UDP checksum:
    dropped (so the good checksums above were checked, not ignored). Then a good one."""
    rx = pair.receiver(pair.b, "--port", 7002, "--count", 1, "--timeout", 4)
    pair.tool(pair.a, "udp", "--dst", B_IP, "--dport", 7002, "--size", 3000, "--skip-first",
              "--order", "reverse")
    pair.tool(pair.a, "udp", "--dst", B_IP, "--dport", 7002, "--size", 3000, "--bad-checksum",
              "--order", "reverse")
    pair.tool(pair.a, "udp", "--dst", B_IP, "--dport", 7002, "--size", 64, "--frag-size", 32,
              "--bad-checksum")
    assert pair.results(rx) == [], "a datagram that must not be delivered was"
    r = pair.tool(pair.a, "icmp", "--dst", B_IP, "--size", 3000, "--bad-checksum",
                  "--expect-reply", "--timeout", 1, check=False)
    assert r["_rc"] == 1 and r["reply"] is None, r
    rx = pair.receiver(pair.b, "--port", 7002, "--count", 1, "--timeout", 5)
    pair.tool(pair.a, "udp", "--dst", B_IP, "--dport", 7002, "--size", 3000, "--order",
              "reverse")
    got = pair.results(rx)
    assert len(got) == 1 and got[0]["verify"]["ok"], got


def test_many_datagrams_and_a_reply_from_a_plain_socket(pair):
    """--datagrams with consecutive IDs; recv --reply-size answers through the kernel (which
    fragments the answer) and udp --expect-reply checks it."""
    rx = pair.receiver(pair.b, "--port", 7003, "--count", 20, "--timeout", 10)
    r = pair.tool(pair.a, "udp", "--dst", B_IP, "--dport", 7003, "--size", 2000,
                  "--frag-size", 256, "--order", "shuffle", "--datagrams", 20, "--id", 65530)
    assert r["packets"] == 20 * 8 and r["first_id"] == 65530 and r["last_id"] == 14, r
    got = pair.results(rx)
    assert sorted(g["verify"]["seed"] for g in got) == list(range(1, 21)), got
    assert all(g["verify"]["ok"] for g in got), got
    rx = pair.receiver(pair.b, "--port", 7004, "--count", 1, "--timeout", 10,
                       "--reply-size", 5000)
    r = pair.tool(pair.a, "udp", "--dst", B_IP, "--dport", 7004, "--size", 3000,
                  "--order", "reverse", "--expect-reply", "--timeout", 5, check=False)
    assert r["_rc"] == 0 and r["reply"]["from"] == [B_IP, 7004], r
    assert r["reply"]["verify"]["ok"] and r["reply"]["verify"]["size"] == 5000, r
    assert pair.results(rx)[0]["verify"]["ok"]


def test_help_explains_usage():
    r = subprocess.run([ct.PYTHON, str(FRAGTOOL), "--help"], stdout=subprocess.PIPE, text=True,
                       timeout=10)
    assert r.returncode == 0
    for word in ("udp", "icmp", "recv", "--order", "first-last", "shuffle", "--frag-size",
                 "--duplicate", "--expect-reply"):
        assert word in r.stdout, word


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
