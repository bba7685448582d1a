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
CGN_PCP = str(ct.cgn_pcp_path())
NATPMPC = "/usr/bin/natpmpc"

LISTENER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen()
print("listening", flush=True)
c, a = s.accept()
c.sendall(sys.argv[2].encode())
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


def listen(net, port, host="sub1", greeting="hello from the subscriber"):
    """A TCP listener on `host`'s `port` that sends `greeting` to the first to connect."""
    p = net.topo.spawn(host, [ct.PYTHON, "-c", LISTENER, str(port), greeting])
    net.bg.append(p)
    assert p.stdout.readline().strip() == "listening"
    return p


def connect_from(net, host, addr, port, timeout=5.0) -> str:
    r = net.run(host, [ct.PYTHON, "-c", CONNECT, addr, str(port), str(timeout)], check=False,
                timeout=timeout + 10)
    return r.stdout.strip()


def connect_from_outside(net, addr, port, timeout=5.0) -> str:
    return connect_from(net, "ext1", addr, port, timeout)


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


def test_unanswered_requests_are_counted_by_reason(net):
    """§18 and §8.3: a source outside --pcp-subscribers and a datagram that is no request get
    no answer; each is counted under its reason, and the reasons add up to pcp_dropped."""
    sub2 = ct.HOSTS["sub2"].ip
    c = net.start_cgnd(extra=["--pcp-subscribers", f"{sub2}/32"])
    before = c.counters()
    # sub1 is not served: cgn-pcp's ANNOUNCE goes unanswered (it retransmits within 2 s).
    r = net.run("sub1", [CGN_PCP, "--server", ct.CGN_INSIDE, "--timeout", "2", "announce"],
                check=False, timeout=15)
    assert r.returncode != 0, r.stdout
    # sub2 is served, but one octet is no request (§8.3: silently dropped).
    agent = net.agent("sub2")
    agent.send(ct.CGN_INSIDE, 5351, "\x02")
    time.sleep(0.5)
    assert agent.recv(timeout=1.0) == []
    after = c.counters()
    outsider = ct.counter_delta(before, after, "pcp_dropped_not_subscriber")
    assert outsider >= 1, after
    assert ct.counter_delta(before, after, "pcp_dropped_not_a_request") == 1, after
    assert ct.counter_delta(before, after, "pcp_dropped") == outsider + 1, after
    assert ct.counter_delta(before, after, "pcp_answered") == 0, after


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


@pytest.mark.parametrize("mode", ["endpoint-independent", "address-and-port-dependent"])
def test_filter_refuses_a_peer_not_listed(net, mode):
    """RFC 6887 §13.3 FILTER, enforced by the workers: a mapping asked with --filter for ext1
    admits ext1's TCP connection and refuses ext2's (counted as drop_out2in_filtered), whatever
    --filtering says: endpoint-independent would admit ext2 without the filter, address-and-
    port-dependent would refuse ext1 (which never had a session with the subscriber)."""
    c = net.start_cgnd(filtering=mode)
    rc, answer, r = cgn_pcp(net, "--internal-port", "8085", "--lifetime", "600",
                            "--filter", f"{EXT1}/32", "map")
    assert rc == 0 and answer and answer["result"] == "SUCCESS", (r.stdout, r.stderr)
    ext, port = answer["external"]
    listener = listen(net, 8085)
    before = c.counters()
    got = connect_from(net, "ext2", ext, port, timeout=2)
    assert got.startswith("failed"), f"ext2, not listed, reached {ext}:{port}: {got}"
    after = c.counters()
    # the SYN and its retransmissions within the 2 s
    assert ct.counter_delta(before, after, "drop_out2in_filtered") >= 1, after
    assert ct.counter_delta(before, after, "sessions_created_inbound") == 0
    got = connect_from(net, "ext1", ext, port)
    assert got == "hello from the subscriber", (got, c.output(tail=30))
    out, _ = listener.communicate(timeout=5)
    assert f"accepted {EXT1}" in out, out
    listed = pcp_list(c)
    assert len(listed) == 1 and listed[0].endswith(f" filter {EXT1}/32:0"), listed
    # Refreshed with 0.0.0.0/0 (§13.3 prefix length 0: the filters removed), the mapping
    # admits anyone again (§11.3), ext2 included, in either mode.
    rc, cleared, r = cgn_pcp(net, "--internal-port", "8085", "--lifetime", "600",
                             "--nonce", answer["nonce"], "--filter", "0.0.0.0/0", "map")
    assert rc == 0 and cleared["result"] == "SUCCESS", (r.stdout, r.stderr)
    assert (cleared["external"][0], cleared["external"][1]) == (ext, port)
    listener = listen(net, 8085)
    got = connect_from(net, "ext2", ext, port)
    assert got == "hello from the subscriber", (got, c.output(tail=30))
    out, _ = listener.communicate(timeout=5)
    assert f"accepted {ct.HOSTS['ext2'].ip}" in out, out


# A PCP client making and deleting mappings as fast as cgnd answers (one request at a time,
# each retried until answered): prints "ack map PORT" / "ack del PORT" for each SUCCESS it
# received, and stops when cgnd has not answered for 2 s.
CHURN = r"""
import os, socket, struct, sys
server, client = sys.argv[1], sys.argv[2]
nonce = os.urandom(12)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
s.settimeout(0.25)
def ask(port, lifetime):
    header = struct.pack("!BBHI", 2, 1, 0, lifetime) + bytes(10) + b"\xff\xff"
    header += socket.inet_aton(client)
    data = nonce + struct.pack("!B3xHH", 6, port, 0) + bytes(10) + b"\xff\xff" + bytes(4)
    silent = 0
    while silent < 8:
        s.sendto(header + data, (server, 5351))
        try:
            answer = s.recv(1100)
        except socket.timeout:
            silent += 1
            continue
        if answer[1] == 0x81 and answer[24:36] == nonce and struct.unpack("!H", answer[40:42])[0] == port:
            return answer[3] == 0
    return None
print("churning", flush=True)
port = 20000
while True:
    ok = ask(port, 600)
    if ok is None:
        break
    if ok:
        print("ack map", port, flush=True)
    if port % 3 == 2:  # every third, the one before is deleted
        ok = ask(port - 1, 0)
        if ok is None:
            break
        if ok:
            print("ack del", port - 1, flush=True)
    port += 1
print("done", flush=True)
"""


def test_kill_9_during_churn_loses_no_acknowledged_mapping(net, tmp_path):
    """Item 8: kill -9 of cgnd while a client makes and deletes mappings as fast as it is
    answered. After the restart (--pcp-store) every mapping whose creation was acknowledged
    and whose deletion was not is there, and none whose deletion was acknowledged: an answer
    is sent only once what it says is on disk. A request in flight at the kill may have gone
    either way."""
    store = tmp_path / "pcp"
    fast = ["--pcp-store", str(store), "--pcp-request-rate", "100000",
            "--pcp-request-burst", "100000", "--pcp-max-mappings", "65536"]
    c = net.start_cgnd(extra=fast)
    churn = net.topo.spawn("sub1", [ct.PYTHON, "-c", CHURN, ct.CGN_INSIDE, SUB1])
    net.bg.append(churn)
    assert churn.stdout.readline().strip() == "churning"
    time.sleep(2.0)
    c.proc.send_signal(signal.SIGKILL)
    out, _ = churn.communicate(timeout=30)
    lines = out.splitlines()
    assert lines and lines[-1] == "done", out[-500:]
    made = [int(l.split()[2]) for l in lines if l.startswith("ack map")]
    deleted = {int(l.split()[2]) for l in lines if l.startswith("ack del")}
    assert len(made) >= 20, f"only {len(made)} mappings acknowledged before the kill"
    assert len(made) == max(made) - 20000 + 1, "every creation was granted (no quota)"
    # The request after the last acknowledged one may or may not have been stored: the next
    # creation, or the deletion that follows the last one.
    last = max(made)
    in_flight = {last + 1} | ({last - 1} if last % 3 == 2 and last - 1 not in deleted else set())
    c.stop(timeout=5)
    time.sleep(1)
    c2 = net.start_cgnd(extra=fast)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and c2.counters()["pcp_waiting_for_workers"] != 0:
        time.sleep(0.2)
    listed = {int(l.split()[1].split(":")[1]) for l in pcp_list(c2)}
    kept = set(made) - deleted
    lost = sorted(kept - listed - in_flight)
    assert not lost, f"acknowledged mappings lost by kill -9: {lost} ({len(kept)} kept)"
    back = sorted((listed & deleted) - in_flight)
    assert not back, f"acknowledged deletions undone by kill -9: {back}"
    print(f"{len(made)} mappings and {len(deleted)} deletions acknowledged before kill -9; "
          f"{len(listed)} mappings after the restart")
