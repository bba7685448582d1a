"""PCP (RFC 6887) and NAT-PMP (RFC 6886) through cgnd: real clients on a subscriber (cgn-pcp,
Debian's natpmpc), real TCP and UDP from outside to the mapped external endpoint.

Each test starts cgnd with its PCP service (on by default, at cgnd's inside address) and
checks the client's answer, the traffic, the control socket's ``pcp list`` and the counters.
"""

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

import cgn_topology as ct
from conftest import assert_pool
from test_live import control

EXT1 = ct.HOSTS["ext1"].ip
SUB1 = ct.HOSTS["sub1"].ip
CGN_PCP = str(ct.REPO / "build" / "control" / "pcp" / "cgn-pcp")
NATPMPC = "/usr/bin/natpmpc"

LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
c, a = s.accept()
c.sendall(b"hello from the subscriber")
print("accepted", a[0], a[1], flush=True)
c.close()
"""

CONNECT = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
    print(s.recv(100).decode())
except OSError as e:
    print("failed", type(e).__name__)
"""


def cgn_pcp(net, *args, timeout=15):
    r = net.run("sub1", [CGN_PCP, "--server", ct.CGN_INSIDE, "--json", "--timeout", "8", *args],
                check=False, timeout=timeout)
    lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
    return r.returncode, (json.loads(lines[-1]) if lines else None), r


def listen(net, port):
    p = net.topo.spawn("sub1", [ct.PYTHON, "-c", LISTENER, str(port)])
    net.bg.append(p)
    assert p.stdout.readline().strip() == "listening"
    return p


def connect_from_outside(net, addr, port, timeout=5.0) -> str:
    r = net.run("ext1", [ct.PYTHON, "-c", CONNECT, addr, str(port), str(timeout)], check=False,
                timeout=timeout + 10)
    return r.stdout.strip()


def pcp_list(c) -> list[str]:
    reply = control(c, "pcp list")
    assert reply.startswith("ok"), reply
    return reply.splitlines()[1:]


def map_and_connect(net, c, internal_port):
    """Maps the port with cgn-pcp and connects to the external endpoint from outside."""
    rc, answer, r = cgn_pcp(net, "--internal-port", str(internal_port), "--lifetime", "600",
                            "map")
    assert rc == 0 and answer and answer["result"] == "SUCCESS", (r.stdout, r.stderr,
                                                                 c.output(tail=30))
    ext, port = answer["external"]
    assert_pool(ext, "the PCP mapping's external address")
    assert answer["lifetime"] == 600 and answer["internal_port"] == internal_port
    listener = listen(net, internal_port)
    got = connect_from_outside(net, ext, port)
    assert got == "hello from the subscriber", (
        f"an outside connection to the PCP-mapped {ext}:{port} did not reach the subscriber's "
        f"listener: {got}\n{c.output(tail=30)}")
    out, _ = listener.communicate(timeout=5)
    assert f"accepted {EXT1}" in out, out
    return answer


def test_map_opens_an_inbound_tcp_port(net):
    """RFC 6887 §11: a subscriber maps a port with cgn-pcp through cgnd; a host outside opens a
    real TCP connection to the external endpoint and reaches the subscriber's listener. The
    request went through the worker to the control thread and back (counters), and the
    mapping is listed for the operator."""
    c = net.start_cgnd()
    before = c.counters()
    answer = map_and_connect(net, c, 8080)
    after = c.counters()
    assert ct.counter_delta(before, after, "pcp_requests_punted") == 1
    assert ct.counter_delta(before, after, "pcp_answers_sent") == 1
    assert after["pcp_mappings"] == 1
    ext, port = answer["external"]
    listed = pcp_list(c)
    assert listed == [f"tcp {SUB1}:8080 {ext}:{port} lifetime {listed[0].split()[4]} s "
                      f"client {SUB1}"], listed


def test_delete_closes_the_port(net):
    """§15: lifetime 0 with the mapping's nonce deletes it; the port is no longer reachable.
    (A mapping deleted while it still has sessions becomes an ordinary dynamic mapping until
    they end, as if the subscriber had opened them: NatEngine::release_held_mapping.)"""
    c = net.start_cgnd()
    rc, answer, r = cgn_pcp(net, "--internal-port", "8081", "--lifetime", "600", "map")
    assert rc == 0 and answer["result"] == "SUCCESS", r.stdout
    ext, port = answer["external"]
    assert len(pcp_list(c)) == 1
    rc, deleted, r = cgn_pcp(net, "--internal-port", "8081", "--nonce", answer["nonce"],
                             "--delete", "map")
    assert rc == 0 and deleted["result"] == "SUCCESS" and deleted["lifetime"] == 0, r.stdout
    assert pcp_list(c) == []
    listener = listen(net, 8081)
    got = connect_from_outside(net, ext, port, timeout=2)
    assert got.startswith("failed"), f"the deleted mapping {ext}:{port} still admits: {got}"
    ct.kill_proc(listener)


def test_wrong_nonce_cannot_delete(net):
    """§11.3: a refresh or delete with another nonce is NOT_AUTHORIZED; the mapping stays."""
    c = net.start_cgnd()
    rc, answer, r = cgn_pcp(net, "--internal-port", "8082", "map")
    assert rc == 0, r.stdout
    rc, refused, r = cgn_pcp(net, "--internal-port", "8082", "--nonce", "00" * 12, "--delete",
                             "map")
    assert rc == 1 and refused["result"] == "NOT_AUTHORIZED", r.stdout
    assert len(pcp_list(c)) == 1


def test_requests_from_the_outside_are_dropped(net):
    """RFC 6887 §18: the server serves the inside only; a request from outside to cgnd's
    outside address is dropped and counted, never answered."""
    c = net.start_cgnd()
    before = c.counters()
    agent = net.agent("ext1")
    # an ANNOUNCE request (version 2, opcode 0, lifetime 0, client address ::ffff:192.0.2.10)
    req = bytes([2, 0, 0, 0]) + bytes(4) + bytes(10) + b"\xff\xff" + socket.inet_aton(EXT1)
    agent.send(ct.CGN_OUTSIDE, 5351, req.decode("latin-1"))
    time.sleep(0.5)
    assert agent.recv(timeout=1.0) == []
    after = c.counters()
    assert ct.counter_delta(before, after, "drop_pcp_from_outside") == 1, after
    assert ct.counter_delta(before, after, "pcp_requests_punted") == 0


def test_natpmpc_maps_a_port(net):
    """RFC 6886 with Debian's natpmpc: the public address (§3.2), then a TCP mapping (§3.3)
    that an outside host connects through; it shares the PCP server's mappings."""
    c = net.start_cgnd()
    r = net.run("sub1", [NATPMPC, "-g", ct.CGN_INSIDE], check=False, timeout=30)
    assert r.returncode == 0 and "Public IP address" in r.stdout, (r.stdout, r.stderr)
    public = r.stdout.split("Public IP address :")[1].split()[0]
    assert_pool(public, "NAT-PMP's public address")
    r = net.run("sub1", [NATPMPC, "-g", ct.CGN_INSIDE, "-a", "0", "8083", "tcp", "600"],
                check=False, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    line = [l for l in r.stdout.splitlines() if "Mapped public port" in l]
    assert line, r.stdout
    port = int(line[0].split("Mapped public port")[1].split()[0])
    listed = pcp_list(c)
    assert len(listed) == 1 and listed[0].startswith(f"tcp {SUB1}:8083 {public}:{port} ") and \
        listed[0].endswith("nat-pmp"), listed
    listener = listen(net, 8083)
    got = connect_from_outside(net, public, port)
    assert got == "hello from the subscriber", got
    listener.communicate(timeout=5)


def test_mappings_survive_kill_9(net, tmp_path):
    """Item 8: with --pcp-store, an acknowledged mapping survives kill -9; after the restart
    an outside TCP connection to it reaches the subscriber without the client asking again,
    and the epoch has continued (§8.5)."""
    store = tmp_path / "pcp"
    c = net.start_cgnd(extra=["--pcp-store", str(store)])
    answer = map_and_connect(net, c, 8084)
    ext, port = answer["external"]
    c.proc.send_signal(signal.SIGKILL)
    c.stop(timeout=5)
    time.sleep(1)
    c2 = net.start_cgnd(extra=["--pcp-store", str(store)])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and c2.counters().get("pcp_restored", 0) < 1:
        time.sleep(0.2)
    assert c2.counters()["pcp_restored"] == 1, c2.output(tail=30)
    listed = pcp_list(c2)
    assert len(listed) == 1 and listed[0].startswith(f"tcp {SUB1}:8084 {ext}:{port} "), listed
    listener = listen(net, 8084)
    got = connect_from_outside(net, ext, port)
    assert got == "hello from the subscriber", (got, c2.output(tail=30))
    listener.communicate(timeout=5)
    rc, announced, r = cgn_pcp(net, "announce")
    assert rc == 0 and announced["epoch"] >= 1, r.stdout
