"""Static mappings and live reconfiguration: --static-mapping, the control socket, SIGHUP.

Every test drives real traffic through cgnd and checks it together with the control socket's
replies and cgnd's counters.
"""

import json
import os
import re
import signal
import socket
import threading
import time

import pytest

import cgn_topology as ct
from conftest import assert_pool, learn, read_json_line

EXT1 = ct.HOSTS["ext1"].ip
EXT2 = ct.HOSTS["ext2"].ip
SUB1 = ct.HOSTS["sub1"].ip
SUB2 = ct.HOSTS["sub2"].ip

EXTRA_POOL = "203.0.113.0/30"   # TEST-NET-3, added live by test_pool_add


# --------------------------------------------------------------------------------------
# helpers

def socket_path(c: ct.Cgnd) -> str:
    """The control socket cgnd announced (``cgnd: control socket PATH`` before ready)."""
    for line in c.lines:
        m = re.fullmatch(r"cgnd: control socket (\S+)", line.strip())
        if m:
            return m.group(1)
    raise AssertionError("cgnd never printed 'cgnd: control socket PATH'\n" + c.output(tail=40))


def control(c: ct.Cgnd, line: str, timeout: float = 10.0) -> str:
    """One command over the control socket: send the line, shut down writing, read to EOF."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(socket_path(c))
        s.sendall(line.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    finally:
        s.close()
    return b"".join(chunks).decode()


def ok(c: ct.Cgnd, line: str) -> str:
    reply = control(c, line)
    assert reply.startswith("ok"), f"{line!r} -> {reply!r}"
    return reply


def error(c: ct.Cgnd, line: str, *mentions: str) -> str:
    reply = control(c, line)
    assert reply.startswith("error:"), f"{line!r} should fail, got {reply!r}"
    for m in mentions:
        assert m in reply, f"{line!r} -> {reply!r} does not mention {m!r}"
    return reply


def show_config(c: ct.Cgnd) -> list[str]:
    return ok(c, "show config").splitlines()[1:]


def socket_counters(c: ct.Cgnd) -> dict[str, int]:
    out = {}
    for line in ok(c, "show counters").splitlines()[1:]:
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    missing = [k for k in ct.KNOWN_COUNTERS if k not in out]
    assert not missing, f"'show counters' lacks {missing}: {out}"
    return out


def wait_lines(c: ct.Cgnd, start: int, wanted, timeout: float = 5.0) -> list[str]:
    """cgnd's stdout lines from index start on, once each of `wanted` is in one of them."""
    deadline = time.monotonic() + timeout
    while True:
        new = list(c.lines[start:])
        missing = [w for w in wanted if not any(w in line for line in new)]
        if not missing:
            return new
        if time.monotonic() > deadline:
            raise AssertionError(f"cgnd did not print {missing} within {timeout}s; it printed:\n"
                                 + "\n".join(new))
        time.sleep(0.05)


def tcp_through(net, dst, dport, sub="sub1", sink_port=8080, client="ext1",
                nbytes=200_000, reply=100_000):
    """A TCP connection client -> dst:dport that must land on sub's listener :sink_port,
    with content checked both ways and the remote address untranslated."""
    sink = net.spawn_peer(sub, "tcp-sink", "--port", sink_port, "--conns", 1,
                          "--reply-bytes", reply, "--timeout", 10)
    assert "listening" in read_json_line(sink)
    cl = net.peer(client, "tcp-send", "--host", dst, "--port", dport, "--bytes", nbytes,
                  "--timeout", 10, timeout=30, check=False)
    assert "error" not in cl, f"{client} -> {dst}:{dport} failed: {cl}"
    sv = read_json_line(sink, timeout=10)
    assert "error" not in sv, f"listener on {sub}:{sink_port}: {sv} (client {cl})"
    assert sv["peer"] == [ct.HOSTS[client].ip, cl["local"][1]], (
        f"{sub} saw the connection from {sv['peer']}, {client} connected from {cl['local']}: "
        "the remote endpoint must reach the subscriber untranslated")
    assert sv["recv_bytes"] == nbytes and sv["recv_sha256"] == cl["sent_sha256"], (
        f"{client}'s bytes did not arrive intact on {sub}: client {cl}, listener {sv}")
    assert cl["recv_bytes"] == reply and cl["recv_sha256"] == sv["sent_sha256"], (
        f"{sub}'s reply did not arrive intact on {client}: client {cl}, listener {sv}")
    return cl, sv


def tcp_blocked(net, dst, dport, sub="sub1", sink_port=8080, client="ext1"):
    """A connection attempt client -> dst:dport must fail, and no SYN reach sub:sink_port."""
    sink = net.spawn_peer(sub, "tcp-sink", "--port", sink_port, "--conns", 1, "--timeout", 2)
    assert "listening" in read_json_line(sink)
    cl = net.peer(client, "tcp-send", "--host", dst, "--port", dport, "--bytes", 1000,
                  "--timeout", 1.5, timeout=30, check=False)
    assert "error" in cl, f"{client} -> {dst}:{dport} should have failed but worked: {cl}"
    sv = read_json_line(sink, timeout=10)
    assert "peer" not in sv, f"a connection reached {sub}:{sink_port} after all: {sv}"
    return cl


class UdpBackground:
    """sub -> ext udp-echo exchange, 3 datagrams per ~100 ms, in a thread; every datagram must
    come back, always from the one external endpoint."""

    def __init__(self, net, sub="sub2", ext="ext1", port=7300, sub_port=42300):
        self.echo = net.spawn_peer(ext, "udp-echo", "--port", port, "--idle", 60)
        assert "listening" in read_json_line(self.echo)  # (its output is drained from now on)
        self.dst = (ct.HOSTS[ext].ip, port)
        self.agent = net.agent(sub, sub_port)
        self.sent: list[str] = []
        self.echoed: dict[str, tuple] = {}
        self.strays: list = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        # warm up (ARP on every hop) before anything is counted
        for _ in range(5):
            self.agent.send(*self.dst, "warmup")
            if self.agent.recv(timeout=1.0, max_packets=1):
                break
        else:
            raise AssertionError(f"background exchange {sub} -> {self.dst} never got an echo")
        self.agent.recv(timeout=0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _note(self, packets) -> None:
        for frm, data in packets:
            try:
                obj = json.loads(data)
            except ValueError:
                self.strays.append((frm, data))
                continue
            if tuple(frm) != self.dst:
                self.strays.append((frm, data))
            else:
                self.echoed[obj["data"]] = tuple(obj["seen"])

    def _run(self) -> None:
        seq = 0
        try:
            while not self._stop.is_set():
                for _ in range(3):
                    payload = f"bg{seq}"
                    seq += 1
                    self.sent.append(payload)
                    self.agent.send(*self.dst, payload)
                self._note(self.agent.recv(timeout=0.1))
        except BaseException as e:  # noqa: BLE001 - reported by finish()
            self.error = e

    def finish(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "background exchange thread hangs"
        if self.error:
            raise AssertionError(f"background exchange failed: {self.error!r}")
        self._note(self.agent.recv(timeout=1.0))
        missing = [p for p in self.sent if p not in self.echoed]
        assert len(self.sent) >= 30, f"background exchange sent only {len(self.sent)} datagrams"
        assert not missing, (f"background exchange lost {len(missing)} of {len(self.sent)} "
                             f"datagrams: {missing[:20]}")
        seen = set(self.echoed.values())
        assert len(seen) == 1, f"background exchange changed external endpoint: {seen}"
        assert_pool(next(iter(seen))[0], "background exchange's external address")
        assert not self.strays, f"unexpected datagrams: {self.strays[:10]}"


# --------------------------------------------------------------------------------------
# 1. static mappings from the command line

@pytest.mark.parametrize("filtering", [None, "address-and-port-dependent"],
                         ids=["default-filtering", "address-and-port-dependent"])
def test_static_mapping_from_command_line(net, filtering):
    tcp_map = f"tcp {SUB1}:8080 198.51.100.1:80"
    udp_map = f"udp {SUB1}:5353 198.51.100.1:53"
    c = net.start_cgnd(filtering=filtering,
                       extra=["--static-mapping", tcp_map, "--static-mapping", udp_map])
    lines = [l.strip() for l in c.lines]
    ready = lines.index("cgnd: ready")
    for want in (f"static mapping {tcp_map}", f"static mapping {udp_map}",
                 f"cgnd: control socket {ct.control_socket_path(ct.eal_args(net.topo.prefix))}"):
        assert want in lines[:ready], f"{want!r} not printed before 'cgnd: ready':\n" + \
            "\n".join(lines)
    assert os.path.exists(socket_path(c))
    listed = ok(c, "static list").splitlines()[1:]
    assert sorted(listed) == sorted([tcp_map, udp_map]), listed

    before = c.counters()
    # an outside host opens a connection to the static external endpoint (nothing went out
    # from the subscriber first: filtering would refuse this for a dynamic mapping)
    tcp_through(net, "198.51.100.1", 80)
    # outbound from the static UDP port: ext1 sees the static external endpoint
    s1 = net.agent("sub1", 5353)
    e1 = net.agent("ext1", 7101)
    e2 = net.agent("ext2", 7102)
    via = learn(s1, e1, EXT1, 7101)
    assert via == ("198.51.100.1", 53), (
        f"sub1's datagrams from :5353 left as {via}, static mapping says 198.51.100.1:53")
    e1.send("198.51.100.1", 53, "reply")
    got = s1.recv(timeout=1.5, max_packets=1)
    assert got == [((EXT1, 7101), "reply")], f"ext1's reply to the static endpoint: {got}"
    # a host sub1 never talked to reaches it too (static: no filtering)
    assert net.ping("ext2", ct.CGN_OUTSIDE, count=1).returncode == 0   # ext2's ARP warm
    e2.send("198.51.100.1", 53, "unsolicited")
    got = s1.recv(timeout=1.5, max_packets=1)
    assert got == [((EXT2, 7102), "unsolicited")], (
        f"ext2 -> static endpoint 198.51.100.1:53 did not reach sub1:5353 "
        f"(filtering {filtering or 'default'}): {got}")
    after = c.counters()
    assert ct.counter_delta(before, after, "drop_out2in_filtered") == 0, after
    assert ct.counter_delta(before, after, "out2in_translated") >= 50, after


# --------------------------------------------------------------------------------------
# 2. static add/del while other traffic flows

def test_static_add_and_del_live(net):
    c = net.start_cgnd()
    mapping = f"tcp {SUB1}:8080 198.51.100.2:80"
    assert ok(c, "static list").splitlines()[1:] == []
    bg = UdpBackground(net)
    try:
        tcp_blocked(net, "198.51.100.2", 80)          # nothing there yet
        reply = ok(c, f"static add {mapping}")
        assert mapping in reply, reply
        assert ok(c, "static list").splitlines()[1:] == [mapping]
        assert f"static-mapping {mapping}" in show_config(c)
        tcp_through(net, "198.51.100.2", 80)
        tcp_through(net, "198.51.100.2", 80)          # a second connection, another port
        ok(c, f"static del tcp {SUB1}:8080")
        assert ok(c, "static list").splitlines()[1:] == []
        assert not any(l.startswith("static-mapping") for l in show_config(c))
        before = socket_counters(c)
        tcp_blocked(net, "198.51.100.2", 80)
        after = socket_counters(c)
        grew = ct.counter_delta(before, after, "drop_out2in_no_mapping")
        assert grew >= 1, f"SYNs to a deleted static mapping: drop_out2in_no_mapping +{grew}"
        # and it can come back
        ok(c, f"static add {mapping}")
        tcp_through(net, "198.51.100.2", 80)
        # a static mapping added for an internal endpoint that has a dynamic one takes over
        s1 = net.agent("sub1", 8080)
        e1 = net.agent("ext1", 7301)
        dyn = learn(s1, e1, EXT1, 7301)
        assert_pool(dyn[0], "dynamic external address")
        assert 1024 <= dyn[1] <= 65535, dyn
        ok(c, f"static add udp {SUB1}:8080 198.51.100.2:8080")
        assert learn(s1, e1, EXT1, 7301, payload="now-static") == ("198.51.100.2", 8080), (
            "after 'static add udp' sub1:8080 still leaves through its old dynamic mapping")
        e1.send(*dyn, "to-old-dynamic")
        got = s1.recv(timeout=1.0)
        assert got == [], f"the replaced dynamic mapping {dyn} still delivers: {got}"
        ok(c, f"static del udp {SUB1}:8080")
        again = learn(s1, e1, EXT1, 7301, payload="dynamic-again")
        assert again != ("198.51.100.2", 8080) and 1024 <= again[1] <= 65535, again
        assert_pool(again[0], "dynamic external address after 'static del'")
    finally:
        bg_error = None
        try:
            bg.finish()
        except AssertionError as e:
            bg_error = e
    if bg_error:
        raise bg_error


def test_one_to_one_add_and_del_live(net):
    """'static add ip' makes sub2 reachable on every port of its own address (and pingable);
    'static del ip' withdraws it and sub2 goes back to a dynamic mapping; an address whose
    blocks subscribers hold is refused, naming it."""
    c = net.start_cgnd()
    b_ext = "198.51.100.7"
    assert net.ping("ext1", b_ext, count=1, wait=0.5).returncode != 0  # nobody there yet
    s2 = net.agent("sub2", 43040)
    e1 = net.agent("ext1", 7302)
    dyn = learn(s2, e1, EXT1, 7302)
    assert_pool(dyn[0], "sub2's dynamic external address")
    if dyn[0] != b_ext:
        # sub1's address is in use: refused without touching anything
        a_ext = learn(net.agent("sub1", 43041), e1, EXT1, 7302)
        if a_ext[0] != dyn[0]:
            error(c, f"static add ip 100.64.0.13 {a_ext[0]}", a_ext[0], "is in use")
    else:
        b_ext = "198.51.100.6"
    reply = ok(c, f"static add ip {SUB2} {b_ext}")
    assert f"ip {SUB2} {b_ext}" in reply, reply
    assert ok(c, "static list").splitlines()[1:] == [f"ip {SUB2} {b_ext}"]
    assert learn(s2, e1, EXT1, 7302, payload="one-to-one") == (b_ext, 43040)
    r = net.ping("ext1", b_ext, count=2)
    assert r.returncode == 0, r.stdout + r.stderr
    e1.send(b_ext, 43040, "inbound")
    assert s2.recv(timeout=1.0, max_packets=1), "an outside host did not reach sub2:43040"
    ok(c, f"static del ip {SUB2}")
    assert ok(c, "static list").splitlines()[1:] == []
    assert net.ping("ext1", b_ext, count=1, wait=0.5).returncode != 0
    again = learn(s2, e1, EXT1, 7302, payload="dynamic-again")
    assert again != (b_ext, 43040) and 1024 <= again[1] <= 65535, again
    error(c, f"static del ip {SUB2}", "no one-to-one mapping")


# --------------------------------------------------------------------------------------
# 3. live timeout change

def test_set_timeout_udp_live(net):
    c = net.start_cgnd()
    assert "timeout-udp 300" in show_config(c)
    s1 = net.agent("sub1", 42100)
    e1 = net.agent("ext1", 7100)
    E = learn(s1, e1, EXT1, 7100)
    assert_pool(E[0], "external address")
    # with the default 300 s, 4 s of silence changes nothing
    before = c.counters()
    time.sleep(4)
    e1.send(E[0], E[1], "still-there")
    got = s1.recv(timeout=1.5, max_packets=1)
    assert got == [((EXT1, 7100), "still-there")], f"mapping {E} gone after 4 s with 300 s: {got}"
    assert ct.counter_delta(before, c.counters(), "sessions_expired") == 0
    # now 2 s: the same mapping (idle since the packet above) goes
    reply = ok(c, "set timeout udp 2")
    assert "timeout-udp 2" in show_config(c), reply
    before = c.counters()
    t0 = time.monotonic()
    deadline = t0 + 10
    while True:
        time.sleep(0.5)
        mid = c.counters()
        if ct.counter_delta(before, mid, "sessions_expired") >= 1 or time.monotonic() > deadline:
            break
    waited = time.monotonic() - t0
    assert ct.counter_delta(before, mid, "sessions_expired") >= 1, (
        f"no session expired {waited:.1f} s after 'set timeout udp 2': {mid}")
    assert waited >= 1.5, f"a session expired {waited:.1f} s after the change to 2 s"
    time.sleep(0.5)
    e1.send(E[0], E[1], "late")
    got = s1.recv(timeout=1.5)
    after = c.counters()
    assert not got, f"packet to expired mapping {E} still reached sub1: {got}"
    assert ct.counter_delta(mid, after, "drop_out2in_no_mapping") >= 1, after
    learn(s1, e1, EXT1, 7100, payload="again")     # and a new mapping works


# --------------------------------------------------------------------------------------
# 4. live filtering change

def test_set_filtering_live(net):
    c = net.start_cgnd()
    assert "filtering endpoint-independent" in show_config(c)
    s1 = net.agent("sub1", 42200)
    e1 = net.agent("ext1", 7200)
    e2 = net.agent("ext2", 7200)    # probes only while filtering is strict, then again loose
    e2b = net.agent("ext2", 7201)   # shows endpoint-independent filtering before the change
    E = learn(s1, e1, EXT1, 7200)
    assert net.ping("ext2", ct.CGN_OUTSIDE, count=1).returncode == 0   # ext2's ARP warm

    def probe(agent, data):
        agent.send(E[0], E[1], data)
        return [d for _, d in s1.recv(timeout=1.0, max_packets=1)]

    # (an inbound packet accepted under endpoint-independent filtering opens a session of
    # its own: ext2:7201 is not used after the change)
    assert probe(e2b, "eif-1") == ["eif-1"], "endpoint-independent: ext2 should reach sub1"
    ok(c, "set filtering address-and-port-dependent")
    assert "filtering address-and-port-dependent" in show_config(c)
    before = c.counters()
    assert probe(e2, "apdf") == [], "address-and-port-dependent: ext2 still reaches sub1"
    mid = c.counters()
    assert ct.counter_delta(before, mid, "drop_out2in_filtered") >= 1, mid
    assert probe(e1, "apdf-own") == ["apdf-own"], "the endpoint sub1 talks to must still reach it"
    ok(c, "set filtering endpoint-independent")
    assert "filtering endpoint-independent" in show_config(c)
    assert probe(e2, "eif-2") == ["eif-2"], "endpoint-independent again: ext2 should reach sub1"
    assert ct.counter_delta(mid, c.counters(), "drop_out2in_filtered") == 0


# --------------------------------------------------------------------------------------
# 5. pool addition

def test_pool_add(net):
    c = net.start_cgnd()
    mapping = f"tcp {SUB1}:8080 203.0.113.1:80"
    error(c, f"static add {mapping}", "--static-mapping", "pool")   # not in the pool yet
    reply = ok(c, f"pool add {EXTRA_POOL}")
    assert EXTRA_POOL in reply, reply
    assert show_config(c).count(f"pool {ct.POOL}") == 1
    assert f"pool {EXTRA_POOL}" in show_config(c)
    error(c, "pool add 198.51.100.0/30", "--pool")                  # overlaps the pool
    error(c, f"pool add {EXTRA_POOL}", "--pool")                    # already there
    ok(c, f"static add {mapping}")
    routes = [("ext1", ["203.0.113.0/30", "via", ct.CGN_OUTSIDE, "dev", "eth0"]),
              ("ext2", ["203.0.113.0/30", "dev", "eth0"])]           # on-link: ARPs for it
    added = []
    try:
        for host, spec in routes:
            net.run(host, ["ip", "route", "add", *spec])
            added.append((host, spec))
        tcp_through(net, "203.0.113.1", 80, client="ext1")
        tcp_through(net, "203.0.113.1", 80, client="ext2")
        neigh = net.run("ext2", ["ip", "neigh", "show", "203.0.113.1", "dev", "eth0"]).stdout
        mac = net.topo.mac("cgn", "out0")
        assert mac in neigh, f"ext2's neighbour entry for 203.0.113.1 is {neigh!r}, cgnd is {mac}"
    finally:
        for host, spec in added:
            net.run(host, ["ip", "route", "del", *spec], check=False)
        net.run("ext2", ["ip", "neigh", "del", "203.0.113.1", "dev", "eth0"], check=False)


# --------------------------------------------------------------------------------------
# 6. errors leave cgnd as it was

def test_control_errors(net):
    c = net.start_cgnd()
    s1 = net.agent("sub1", 42400)
    e1 = net.agent("ext1", 7400)
    E = learn(s1, e1, EXT1, 7400)                  # a dynamic mapping, inside --port-range
    assert 1024 <= E[1] <= 65535, E
    config_before = show_config(c)
    assert "ok" in control(c, "help") and "static add" in control(c, "help")
    error(c, f"static add tcp {SUB1}:8080 192.0.2.99:80", "--static-mapping", "pool")
    error(c, f"static add tcp {SUB1}:8080 {SUB2}:80", "--static-mapping")
    error(c, "static add sctp 100.64.0.11:8080 198.51.100.1:80", "--static-mapping")
    error(c, f"static del tcp {SUB1}:9999")
    error(c, "frobnicate the flux capacitor")
    error(c, "set timeout udp 0", "--timeout-udp")
    error(c, "set timeout udp soon", "--timeout-udp")
    error(c, "set filtering sideways", "--filtering")
    error(c, "pool add 10.0.0.1/8", "--pool")
    # the external endpoint of the live dynamic mapping cannot be taken
    reply = error(c, f"static add udp {SUB2}:5000 {E[0]}:{E[1]}", "--static-mapping")
    assert "in use" in reply, reply
    # a duplicate external endpoint
    ok(c, f"static add udp {SUB2}:5001 198.51.100.4:80")
    error(c, f"static add udp {SUB2}:5002 198.51.100.4:80", "--static-mapping")
    ok(c, f"static del udp {SUB2}:5001")
    assert show_config(c) == config_before
    # the dynamic mapping survived all that
    e1.send(E[0], E[1], "after-errors")
    got = s1.recv(timeout=1.5, max_packets=1)
    assert got == [((EXT1, 7400), "after-errors")], f"mapping {E} after the errors: {got}"
    r = net.ping("sub1", EXT1, count=2)
    assert r.returncode == 0, f"ping through after control errors failed:\n{r.stdout}"
    # a static mapping inside --port-range, on a port no dynamic mapping holds, works
    s2 = net.agent("sub2", 5003)
    free = next(p for p in range(30000, 30100) if p != E[1])
    ok(c, f"static add udp {SUB2}:5003 198.51.100.5:{free}")
    e1.send("198.51.100.5", free, "in-range")
    got = s2.recv(timeout=1.5, max_packets=1)
    assert got == [((EXT1, 7400), "in-range")], f"in-range static 198.51.100.5:{free}: {got}"
    assert learn(s2, e1, EXT1, 7400, payload="out") == ("198.51.100.5", free)
    assert c.alive()
    path = socket_path(c)
    assert c.stop() == 0
    assert not os.path.exists(path), f"cgnd left its control socket {path} behind"


# --------------------------------------------------------------------------------------
# 7. SIGHUP re-reads the config file

def write_config(path, argv, extra_lines=()):
    lines = ["# written by test_live.py"]
    it = iter(argv[1:])
    for opt, value in zip(it, it):
        lines.append(f"{opt[2:]} = {value}")
    path.write_text("\n".join(lines + list(extra_lines)) + "\n")


def test_sighup_reload(net, tmp_path):
    udp_map = f"udp {SUB2}:5000 198.51.100.2:53"
    tcp_map = f"tcp {SUB1}:8080 198.51.100.3:80"
    base = ct.cgnd_argv(ct.cgnd_path(), eal=ct.eal_args(net.topo.prefix))
    conf = tmp_path / "cgnd.conf"
    write_config(conf, base + ["--timeout-udp", "300", "--timeout-icmp", "30",
                               "--static-mapping", udp_map])
    # (the command line's options win over the file's, on SIGHUP too)
    c = net.start_cgnd(argv=[str(ct.cgnd_path()), "--config", str(conf),
                             "--timeout-icmp", "45"])
    cfg = show_config(c)
    assert "timeout-udp 300" in cfg and f"static-mapping {udp_map}" in cfg, cfg
    assert "timeout-icmp 45" in cfg, cfg
    assert "filtering endpoint-independent" in cfg, cfg
    s2 = net.agent("sub2", 5000)
    e1 = net.agent("ext1", 7500)
    for _ in range(3):                               # (ARP)
        e1.send("198.51.100.2", 53, "static-udp")
        got = s2.recv(timeout=1.0, max_packets=1)
        if got:
            break
    assert got == [((EXT1, 7500), "static-udp")], f"static {udp_map} from the file: {got}"

    # edit: timeout, filtering, one static mapping out and one in, one needing a restart
    max_sessions = base[base.index("--max-sessions") + 1]
    edited = [a for a in base]
    edited[edited.index("--max-sessions") + 1] = str(int(max_sessions) // 2)
    write_config(conf, edited + ["--timeout-udp", "77", "--timeout-icmp", "20",
                                 "--filtering", "address-dependent", "--static-mapping", tcp_map,
                                 "--pcp-request-rate", "3"])
    start = len(c.lines)
    c.proc.send_signal(signal.SIGHUP)
    new = wait_lines(c, start, [
        "cgnd: reload:",
        "applied: timeout-udp 77",
        "applied: filtering address-dependent",
        f"applied: static-mapping {udp_map} removed",
        f"applied: static-mapping {tcp_map} added",
        "not applied (needs a restart): --max-sessions",
        "not applied (needs a restart): --pcp-request-rate"])
    assert not any(l.startswith("error") or "timeout-icmp" in l for l in new), "\n".join(new)
    cfg = show_config(c)
    for want in ("timeout-udp 77", "filtering address-dependent", f"static-mapping {tcp_map}",
                 "timeout-icmp 45"):
        assert want in cfg, f"{want!r} not in 'show config' after SIGHUP:\n" + "\n".join(cfg)
    assert f"static-mapping {udp_map}" not in cfg, cfg
    tcp_through(net, "198.51.100.3", 80)
    before = c.counters()
    e1.send("198.51.100.2", 53, "removed")
    assert s2.recv(timeout=1.5) == [], f"removed static {udp_map} still delivers"
    assert ct.counter_delta(before, c.counters(), "drop_out2in_no_mapping") >= 1

    # the same file again: only the restart note, nothing applied twice
    start = len(c.lines)
    c.proc.send_signal(signal.SIGHUP)
    wait_lines(c, start, ["cgnd: reload:", "not applied (needs a restart): --max-sessions"])
    time.sleep(0.2)
    new = c.lines[start:]
    assert not any(l.startswith(("applied", "error")) for l in new), "\n".join(new)
    # max-sessions back to what runs: nothing to do at all
    write_config(conf, base + ["--timeout-udp", "77", "--timeout-icmp", "20",
                               "--filtering", "address-dependent", "--static-mapping", tcp_map])
    start = len(c.lines)
    c.proc.send_signal(signal.SIGHUP)
    wait_lines(c, start, ["cgnd: reload:", "nothing changed"])
    time.sleep(0.2)
    new = c.lines[start:]
    assert not any(l.startswith(("applied", "error", "not applied")) for l in new), \
        "\n".join(new)

    # an invalid file is refused as a whole
    text = conf.read_text()
    bad = re.sub(r"(?m)^pool = .*$", "pool = 198.51.100.1/24", text)
    bad = bad.replace("timeout-udp = 77", "timeout-udp = 5")
    assert bad != text
    conf.write_text(bad)
    start = len(c.lines)
    c.proc.send_signal(signal.SIGHUP)
    new = wait_lines(c, start, ["cgnd: reload refused, nothing changed"])
    refused = next(l for l in new if "reload refused" in l)
    assert "--pool" in refused, refused
    assert show_config(c) == cfg
    assert c.alive()
    r = net.ping("sub1", EXT1, count=2)
    assert r.returncode == 0, f"ping through after a refused reload failed:\n{r.stdout}"
    tcp_through(net, "198.51.100.3", 80)
