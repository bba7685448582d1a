"""Deterministic NAT (RFC 7422) with real traffic: each subscriber's UDP and TCP leave from the
external address and port range the formula gives it, as `cgnd --lookup` tells an operator
from the configuration alone, the reverse lookup of the port used names the subscriber, replies
come back, and no port block events are logged for those subscribers."""

import re
import subprocess

import cgn_topology as ct
from conftest import learn, read_json_line, require_cgnd

EXT1 = ct.HOSTS["ext1"].ip
DET = ["--deterministic", "100.64.0.0/24", "--deterministic-ports", "1000"]


def lookup(query: str) -> str:
    argv = ct.cgnd_argv(require_cgnd()) + DET + ["--lookup", query]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, f"{argv}: {r.stderr}"
    return r.stdout.strip()


def formula_range(sub_ip: str) -> tuple[str, int, int]:
    out = lookup(sub_ip)
    m = re.search(r"-> (\S+) ports (\d+)-(\d+)", out)
    assert m, out
    return m.group(1), int(m.group(2)), int(m.group(3))


def test_subscribers_leave_from_their_formula_range(net):
    c = net.start_cgnd(extra=DET)
    e1 = net.agent("ext1", 7050)
    for sub, port in (("sub1", 43050), ("sub2", 43051)):
        sub_ip = ct.HOSTS[sub].ip
        address, first, last = formula_range(sub_ip)
        agent = net.agent(sub, port)
        ext = learn(agent, e1, EXT1, 7050)
        assert ext[0] == address and first <= ext[1] <= last, (
            f"{sub} left from {ext}, its deterministic range is {address} {first}-{last}")
        assert sub_ip in lookup(f"{ext[0]}:{ext[1]}")
        e1.send(ext[0], ext[1], "reply")
        got = agent.recv(timeout=2.0, max_packets=1)
        assert got and got[0][1] == "reply", f"the reply to {ext} did not reach {sub}: {got}"
    # TCP from the same range.
    sink = net.spawn_peer("ext1", "tcp-sink", "--port", 5150, "--conns", 1, "--timeout", 20)
    assert "listening" in read_json_line(sink)
    r = net.peer("sub1", "tcp-send", "--host", EXT1, "--port", 5150, "--bytes", 100000,
                 "--timeout", 20, timeout=60)
    seen = read_json_line(sink, timeout=20)
    assert seen["recv_sha256"] == r["sent_sha256"]
    address, first, last = formula_range(ct.HOSTS["sub1"].ip)
    assert seen["peer"][0] == address and first <= seen["peer"][1] <= last, seen["peer"]
    c.stop(timeout=5)
    assert "block-allocated" not in c.output(), c.output(tail=20)
