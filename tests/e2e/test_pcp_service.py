"""The PCP service's limits through cgnd (RFC 6887): the per-subscriber quota, lifetimes and
their expiry, THIRD_PARTY authorisation, and the per-subscriber request rate that keeps one
flooding subscriber from slowing the answers to others.

Like test_pcp.py, each test starts cgnd with the options it needs, asks with the real cgn-pcp
client on a subscriber, checks an outside host's real TCP connection where a mapping is the
point, and checks the control socket's ``pcp list`` and the counters as well as the answers.
(Requests from the outside are test_pcp.py's.)
"""

import json
import time

import pytest

import cgn_topology as ct
from conftest import assert_pool
from test_live import control
from test_pcp import connect_from_outside, listen

SUB1 = ct.HOSTS["sub1"].ip
SUB2 = ct.HOSTS["sub2"].ip
EXT1 = ct.HOSTS["ext1"].ip
CGN_PCP = ct.cgn_pcp_path()

# RFC 6887 §8.1.1: the first retransmission comes after RT = (1 + RAND) * IRT, IRT 3 s, RAND
# in [-0.1, +0.1]: 2.7 s at the earliest. A client that gives up before that sends once.
FIRST_RETRANSMISSION_S = 2.7
ONE_TRANSMISSION_TIMEOUT_S = 2.5
assert ONE_TRANSMISSION_TIMEOUT_S < FIRST_RETRANSMISSION_S

# A subscriber flooding the server with well-formed PCP MAP requests (RFC 6887 §7.1 header,
# §11.1 MAP data: 24 + 36 octets), paced to RATE a second (at most BURST back to back) until
# a line arrives on its standard input (or 60 s pass). It reads the answers it gets without
# waiting for them and prints, at the end, what it sent and how many answers came back.
FLOOD = r"""
import json, os, select, socket, struct, sys, time
server, rate, burst, client = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
nonce = os.urandom(12)
def request(port):
    header = struct.pack("!BBHI", 2, 1, 0, 600)  # version 2, MAP, lifetime 600
    header += bytes(10) + b"\xff\xff" + socket.inet_aton(client)  # client address, IPv4-mapped
    data = nonce + struct.pack("!B3xHH", 6, port, 0) + bytes(10) + b"\xff\xff" + bytes(4)
    return header + data
frames = [request(20000 + i) for i in range(40)]
assert all(len(f) == 60 for f in frames)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setblocking(False)
s.bind(("0.0.0.0", 0))
sent = answers = slot = 0
print("flooding", flush=True)
start = time.monotonic()
while time.monotonic() - start < 60:
    if select.select([sys.stdin], [], [], 0)[0]:
        break
    # Paced: after a pause at most `burst` of the backlog goes at once, the rest is skipped.
    due = int((time.monotonic() - start) * rate)
    slot = max(slot, due - burst)
    while slot < due:
        slot += 1
        try:
            s.sendto(frames[sent % len(frames)], (server, 5351))
        except BlockingIOError:
            break
        sent += 1
    while True:
        try:
            s.recv(1100)
            answers += 1
        except BlockingIOError:
            break
    time.sleep(0.001)
seconds = time.monotonic() - start
time.sleep(0.5)
while True:
    try:
        s.recv(1100)
        answers += 1
    except BlockingIOError:
        break
print(json.dumps({"sent": sent, "answers": answers, "seconds": seconds}), flush=True)
"""


@pytest.fixture(autouse=True)
def _needs_cgn_pcp():
    if not CGN_PCP.exists():
        pytest.skip(f"cgn-pcp not built: {CGN_PCP} (it is found beside the cgnd under test)")


def cgn_pcp(net, host, *args, timeout_s=8.0, server=ct.CGN_INSIDE):
    """cgn-pcp on `host` with --json: (exit status, its last JSON answer or None, the run)."""
    r = net.run(host, [str(CGN_PCP), "--server", server, "--json", "--timeout",
                       str(timeout_s), *args], check=False, timeout=timeout_s + 15)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    return r.returncode, (json.loads(lines[-1]) if lines else None), r


def mapped(net, c, host, port, *extra, lifetime=600):
    """A TCP MAP of `port` from `host` that must succeed; returns the answer."""
    rc, answer, r = cgn_pcp(net, host, "--internal-port", str(port), "--lifetime",
                            str(lifetime), *extra, "map")
    assert rc == 0 and answer and answer["result"] == "SUCCESS", (
        f"MAP of {host}:{port}: exit {rc}\n{r.stdout}{r.stderr}\n{c.output(tail=30)}")
    assert_pool(answer["external"][0], "the PCP mapping's external address")
    return answer






def pcp_list(c) -> list[str]:
    reply = control(c, "pcp list")
    assert reply.startswith("ok"), reply
    return reply.splitlines()[1:]


def listed_for(lines: list[str], subscriber: str) -> list[str]:
    return [line for line in lines if line.split()[1].split(":")[0] == subscriber]


def test_quota_refuses_the_third_mapping_of_one_subscriber_only(net):
    """RFC 6887 §7.4 USER_EX_QUOTA with --pcp-max-mappings 2: a subscriber's third MAP is
    refused by cgnd (result 8, exit 1 of cgn-pcp) while another subscriber still gets its
    mapping: the quota is per subscriber. Nothing is made for the refused request (pcp list,
    pcp_mappings), and it was answered, not dropped."""
    c = net.start_cgnd(extra=["--pcp-max-mappings", "2"])
    before = c.counters()
    for port in (7001, 7002):
        mapped(net, c, "sub1", port)
    rc, refused, r = cgn_pcp(net, "sub1", "--internal-port", "7003", "--lifetime", "600", "map")
    assert rc == 1 and refused and refused["result"] == "USER_EX_QUOTA", (r.stdout, r.stderr)
    mapped(net, c, "sub2", 7003)
    after = c.counters()
    listed = pcp_list(c)
    assert sorted(line.split()[1] for line in listed_for(listed, SUB1)) == [
        f"{SUB1}:7001", f"{SUB1}:7002"], listed
    assert [line.split()[1] for line in listed_for(listed, SUB2)] == [f"{SUB2}:7003"], listed
    assert after["pcp_mappings"] == 3, after
    assert ct.counter_delta(before, after, "pcp_answered") == 4
    assert ct.counter_delta(before, after, "pcp_dropped") == 0
    assert ct.counter_delta(before, after, "pcp_requests_punted") == 4


def test_mapping_expires_after_its_lifetime(net):
    """RFC 6887 §15: a lifetime above --pcp-max-lifetime is granted as that maximum (3 s
    here, --pcp-min-lifetime 1; the options take any value from 1 s); the mapping admits an
    outside TCP connection while it lives, is gone from pcp list once its lifetime has passed
    (never before), counted in pcp_expired, and the same connection then fails.

    --filtering address-and-port-dependent: the first connection's session outlives the
    mapping (a TCP session that closed stays for --timeout-tcp-transitory), and a mapping with
    a session is kept as an ordinary dynamic one until the session ends. Under the default
    endpoint-independent filtering that dynamic mapping would still admit the second
    connection; filtered by address and port it does not, unless the PCP mapping (filtered
    endpoint-independently, §11) were still there."""
    lifetime = 3
    c = net.start_cgnd(filtering="address-and-port-dependent",
                       extra=["--pcp-min-lifetime", "1", "--pcp-max-lifetime", str(lifetime)])
    before = c.counters()
    asked = time.monotonic()
    answer = mapped(net, c, "sub1", 8090, lifetime=600)
    assert answer["lifetime"] == lifetime, answer
    ext, port = answer["external"]
    listener = listen(net, 8090, "sub1", "before expiry")
    got = connect_from_outside(net, ext, port)
    assert got == "before expiry", f"the live mapping {ext}:{port} did not admit: {got}"
    listener.communicate(timeout=5)
    listed = pcp_list(c)
    assert len(listed) == 1 and listed[0].startswith(f"tcp {SUB1}:8090 {ext}:{port} lifetime "), \
        listed
    assert int(listed[0].split()[4]) <= lifetime, listed

    # The server expires mappings once a second: gone within a few seconds of the lifetime.
    deadline = asked + lifetime + 5
    while True:
        listed = pcp_list(c)
        seen = time.monotonic()
        if not listed or seen > deadline:
            break
        time.sleep(0.2)
    assert listed == [], f"still listed {seen - asked:.1f} s after the request: {listed}"
    # It was granted after `asked`: gone before asked + lifetime would be before its time.
    assert seen - asked >= lifetime, f"gone {seen - asked:.2f} s after the request"
    after = c.counters()
    assert ct.counter_delta(before, after, "pcp_expired") == 1, after
    assert after["pcp_mappings"] == 0, after

    listener = listen(net, 8090, "sub1", "after expiry")
    got = connect_from_outside(net, ext, port, timeout=2)
    assert got.startswith("failed"), f"the expired mapping {ext}:{port} still admits: {got}"
    ct.kill_proc(listener)
    last = c.counters()
    refused = (ct.counter_delta(after, last, "drop_out2in_filtered") +
               ct.counter_delta(after, last, "drop_out2in_no_mapping"))
    assert refused >= 1, last


def test_third_party_is_refused_without_authorisation(net):
    """RFC 6887 §13.1: without --pcp-third-party nobody may map for another host; sub1's MAP
    with THIRD_PARTY for sub2 is answered NOT_AUTHORIZED (2) and makes nothing."""
    c = net.start_cgnd()
    before = c.counters()
    rc, refused, r = cgn_pcp(net, "sub1", "--third-party", SUB2, "--internal-port", "8095",
                             "map")
    assert rc == 1 and refused and refused["result"] == "NOT_AUTHORIZED", (r.stdout, r.stderr)
    after = c.counters()
    assert pcp_list(c) == []
    assert after["pcp_mappings"] == 0, after
    assert ct.counter_delta(before, after, "pcp_answered") == 1


def test_third_party_maps_for_the_other_subscriber_when_authorised(net):
    """§13.1 with --pcp-third-party <sub1>/32: sub1 maps a port of sub2. The mapping is
    sub2's (pcp list: internal sub2, client sub1; sub2's paired external address), and an
    outside connection to it reaches a listener on sub2. sub2, not in the prefix, is still
    refused THIRD_PARTY."""
    c = net.start_cgnd(extra=["--pcp-third-party", f"{SUB1}/32"])
    before = c.counters()
    answer = mapped(net, c, "sub1", 8096, "--third-party", SUB2)
    ext, port = answer["external"]
    listed = pcp_list(c)
    assert len(listed) == 1 and listed[0].startswith(f"tcp {SUB2}:8096 {ext}:{port} ") and \
        f"client {SUB1}" in listed[0], listed
    listener = listen(net, 8096, "sub2", "hello from sub2")
    got = connect_from_outside(net, ext, port)
    assert got == "hello from sub2", f"{ext}:{port} did not reach sub2's listener: {got}"
    out, _ = listener.communicate(timeout=5)
    assert f"accepted {EXT1}" in out, out
    # sub2's own traffic leaves from the same (paired) address: the mapping is sub2's.
    rc, own, r = cgn_pcp(net, "sub2", "--internal-port", "8097", "map")
    assert rc == 0 and own["external"][0] == ext, (own, r.stdout)

    rc, refused, r = cgn_pcp(net, "sub2", "--third-party", SUB1, "--internal-port", "8098",
                             "map")
    assert rc == 1 and refused["result"] == "NOT_AUTHORIZED", (r.stdout, r.stderr)
    after = c.counters()
    assert after["pcp_mappings"] == 2, after
    assert ct.counter_delta(before, after, "pcp_answered") == 3


def test_a_flooding_subscriber_does_not_slow_the_answers_to_others(net):
    """RFC 6887 §18's per-subscriber request rate (--pcp-request-rate 10, --pcp-request-burst
    20, the defaults): while sub2 floods the server with a few thousand well-formed MAP
    requests a second, each of sub1's 20 sequential MAP requests is answered on its first
    transmission (cgn-pcp gives up before its first retransmission could leave, so a success
    is an answer to the first), and the counters show sub2's excess dropped before any work
    by the worker that owns it, before the ring all its subscribers share
    (drop_pcp_rate_limited; none lost to a full ring), its admitted requests bounded by the
    burst plus the rate."""
    rate, burst = 10, 20
    c = net.start_cgnd()
    before = c.counters()
    flood = net.topo.spawn("sub2", [ct.PYTHON, "-c", FLOOD, ct.CGN_INSIDE, "3000", "30",
                                     SUB2])
    net.bg.append(flood)
    assert flood.stdout.readline().strip() == "flooding"
    flooding_since = time.monotonic()
    time.sleep(1.0)  # sub2's burst is spent; the rest of its flood is over its rate
    slowest = 0.0
    for i in range(20):
        start = time.monotonic()
        rc, answer, r = cgn_pcp(net, "sub1", "--internal-port", str(9000 + i), "map",
                                timeout_s=ONE_TRANSMISSION_TIMEOUT_S)
        slowest = max(slowest, time.monotonic() - start)
        assert rc == 0 and answer and answer["result"] == "SUCCESS", (
            f"sub1's request {i + 1} was not answered on its first transmission during the "
            f"flood: exit {rc}\n{r.stdout}{r.stderr}\ncounters: {c.counters()}")
        time.sleep(0.1)  # spread over the flood
    assert flood.poll() is None, "the flood ended before sub1's requests did"
    time.sleep(max(0.0, flooding_since + 4 - time.monotonic()))  # several seconds of it
    flood.stdin.write("stop\n")
    flood.stdin.flush()
    sent = json.loads(flood.stdout.readline())
    flood.wait(timeout=10)
    after = c.counters()
    # Several seconds of a real flood (the sender skips what it could not send in time).
    assert sent["seconds"] >= 3 and sent["sent"] >= 1000 * sent["seconds"], sent
    # What sub2 could have admitted: its burst, then the rate for as long as it flooded (and
    # the second it waited for its last answers).
    admitted = burst + rate * (sent["seconds"] + 1)
    assert sent["answers"] <= admitted, (sent, admitted)
    requests = ct.counter_delta(before, after, "pcp_requests")
    answered = ct.counter_delta(before, after, "pcp_answered")
    limited = ct.counter_delta(before, after, "drop_pcp_rate_limited")
    punt_full = ct.counter_delta(before, after, "drop_pcp_punt_full")
    # The flood reached cgnd: cut by the owning worker at sub2's rate, the rest (sub2's
    # admitted requests and sub1's 20) taken from the ring by the server.
    assert limited + requests >= 0.9 * (sent["sent"] + 20), (limited, requests, sent)
    assert requests <= 20 + admitted, (requests, admitted, sent)
    assert answered - 20 <= admitted, (answered, admitted, sent)
    assert limited >= 0.9 * (sent["sent"] - admitted), (limited, sent)
    # Cut before the ring: the ring never filled, whatever the load of the machine.
    assert punt_full == 0, (punt_full, sent)
    print(f"flood {sent}, sub1's slowest exchange {slowest:.3f} s (with process start), "
          f"pcp_requests +{requests}, pcp_answered +{answered}, drop_pcp_rate_limited "
          f"+{limited}, drop_pcp_punt_full +{punt_full}")


def test_one_server_at_two_addresses_keeps_one_state(net):
    """RFC 7488 §3 on cgnd's side: with two --pcp-server addresses it is one PCP server, one
    set of mappings and one epoch. A mapping made through the second address (which cgnd
    answers ARP for, and answers from: cgn-pcp takes an answer only from the address it
    asked) is refreshed through the first with its nonce, at the same external endpoint."""
    second = "100.64.0.5"
    c = net.start_cgnd(extra=["--pcp-server", ct.CGN_INSIDE, "--pcp-server", second])
    rc, made, r = cgn_pcp(net, "sub1", "--internal-port", "8099", "map", server=second)
    assert rc == 0 and made["result"] == "SUCCESS" and made["server"] == second, (r.stdout,
                                                                                  r.stderr)
    rc, again, r = cgn_pcp(net, "sub1", "--internal-port", "8099", "--nonce", made["nonce"],
                           "map")
    assert rc == 0 and again["result"] == "SUCCESS", (r.stdout, r.stderr)
    assert again["server"] == ct.CGN_INSIDE and again["external"] == made["external"], again
    assert abs(again["epoch"] - made["epoch"]) <= 2, (made, again)
    listed = pcp_list(c)
    assert len(listed) == 1 and listed[0].startswith(f"tcp {SUB1}:8099 "), listed
    assert c.counters()["pcp_answered"] == 2
