"""Fixtures for the cgn end-to-end tests (network namespaces, real Linux traffic through cgnd).

Run as root with Debian's python:  /usr/bin/python3 -m pytest tests/e2e -v
cgnd is build/dataplane/cgnd unless CGND=/path/to/cgnd is set.

One topology (deploy/cgn_topology.py) is built per session; every test starts its own cgnd
(fixture ``start_cgnd``) which is stopped when the test ends. Tests that need the router and
the far host behind a smaller-MTU link use ``router_net`` instead of ``net``: a second topology
(prefix ``cgnt<pid>r``), built for the test module that uses it and removed after it. When a test fails, cgnd's
output and a fresh counters block are added to the report.
"""

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy"))

import cgn_topology as ct  # noqa: E402

PEER = Path(__file__).resolve().parent / "peer.py"


def pytest_configure(config):
    config.addinivalue_line("markers", "netns: needs root and builds network namespaces")
    if threading.current_thread() is threading.main_thread():
        # SIGTERM/SIGHUP -> KeyboardInterrupt so fixtures tear the namespaces down
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, _interrupt)


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    for i, c in enumerate(getattr(item, "_cgnds", [])):
        text = ""
        if c.alive():
            try:
                text += "counters now:\n" + "\n".join(
                    f"  {k} {v}" for k, v in c.counters(timeout=2).items()) + "\n"
            except Exception as e:  # noqa: BLE001 - diagnostics only
                text += f"(could not read counters: {e})\n"
        else:
            text += f"cgnd had exited with code {c.proc.returncode}\n"
        text += "command: " + " ".join(c.argv) + "\n" + c.output(tail=200)
        rep.sections.append((f"cgnd #{i}", text))


def cgnd_binary() -> Path:
    return ct.cgnd_path()


def require_cgnd():
    b = cgnd_binary()
    if not b.exists():
        pytest.skip(f"cgnd not built: {b} does not exist (set CGND=/path/to/cgnd)")
    return b


def _topology(**kw):
    if os.geteuid() != 0:
        pytest.skip("e2e tests need root (network namespaces)")
    require_cgnd()
    t = ct.Topology(peer=PEER, **kw)
    t.create()
    try:
        yield t
    finally:
        t.destroy()
        # (other namespaces may come and go meanwhile: only ours are checked)
        left = sorted(ns for ns in ct.list_netns() if ns.startswith(t.prefix + "-"))
        assert not left, f"namespaces left behind: {left}"


@pytest.fixture(scope="session")
def topo():
    yield from _topology()


@pytest.fixture(scope="module")
def router_topo():
    """The topology with the router and the far host (cgn_topology.Topology(router=True))."""
    yield from _topology(prefix=f"cgnt{os.getpid()}r", router=True)


class Net:
    """What a test needs: the topology, the running cgnd and traffic helpers."""

    def __init__(self, topo: ct.Topology, request):
        self.topo = topo
        self.request = request
        self.agents: list[ct.UdpAgent] = []
        self.bg: list[subprocess.Popen] = []
        request.node._cgnds = []

    # cgnd
    def start_cgnd(self, filtering=None, extra=(), pmd="net_af_packet", argv=None) -> ct.Cgnd:
        self.topo.flush_neigh()
        c = self.topo.start_cgnd(filtering=filtering, extra=list(extra), pmd=pmd, argv=argv)
        self.request.node._cgnds.append(c)
        return c

    # commands
    def run(self, host, argv, **kw):
        return self.topo.run(host, argv, **kw)

    def ping(self, host, dst, count=3, ttl=None, wait=1.0, interval=0.2):
        argv = ["ping", "-n", "-c", str(count), "-i", str(interval), "-W", str(wait)]
        if ttl is not None:
            argv += ["-t", str(ttl)]
        return self.topo.run(host, argv + [dst], check=False, timeout=count * (wait + 1) + 10)

    def peer(self, host, *args, **kw) -> dict:
        return self.topo.peer(host, *args, **kw)

    def spawn_peer(self, host, *args) -> subprocess.Popen:
        p = self.topo.spawn(host, self.topo.peer_argv(*args))
        self.bg.append(p)
        return p

    def agent(self, host, port=0) -> ct.UdpAgent:
        a = self.topo.udp_agent(host, port)
        self.agents.append(a)
        return a

    def close(self):
        for a in self.agents:
            a.close()
        for p in self.bg:
            ct.kill_proc(p, term_timeout=1.0)


def _net(topo, request):
    n = Net(topo, request)
    try:
        yield n
    finally:
        n.close()
        died = []
        for c in request.node._cgnds:
            if not c.alive() and c.returncode is None:
                died.append(f"cgnd exited by itself during the test with code "
                            f"{c.proc.returncode}\n{c.output(tail=100)}")
            c.stop(timeout=5)
        if died:
            pytest.fail("\n".join(died))


@pytest.fixture
def net(topo, request):
    yield from _net(topo, request)


@pytest.fixture
def router_net(router_topo, request):
    yield from _net(router_topo, request)


def read_json_line(proc: subprocess.Popen, timeout: float = 10.0) -> dict:
    """Next JSON line printed by a spawned peer (fails with its stderr if none)."""
    try:
        return ct.read_json(proc, timeout)
    except (TimeoutError, ct.TopologyError) as e:
        raise AssertionError(str(e)) from None


def assert_pool(addr: str, what: str = "address"):
    assert not ct.is_inside(addr), f"{what} {addr} is a subscriber (100.64/10) address: not translated"
    assert ct.in_pool(addr), f"{what} {addr} is not in the pool {ct.POOL}"


def learn(src_agent, dst_agent, dst_addr, dst_port, payload="hello"):
    """src sends to dst; returns the (addr, port) dst saw it from (retries once for ARP)."""
    for _ in range(3):
        src_agent.send(dst_addr, dst_port, payload)
        got = dst_agent.recv(timeout=1.0, max_packets=1)
        if got:
            (frm, data), = got
            assert data == payload
            return frm
    raise AssertionError(f"{dst_addr}:{dst_port} never received from {src_agent.host} "
                         f"{src_agent.local}")


PING_TTL_RE = re.compile(r"From 100\.64\.0\.1\b.*Time to live exceeded")
