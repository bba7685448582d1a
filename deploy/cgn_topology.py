#!/usr/bin/python3
"""Network-namespace topology for the cgn demo and end-to-end tests.

Builds this, with a unique name prefix per run (default ``cgnt<pid>``)::

    <prefix>-sub1 100.64.0.11/10 ─┐                              ┌─ <prefix>-ext1 192.0.2.10/24
                                 ├─ br-in ─ in0 [cgnd] out0 ─ br-out ┤
    <prefix>-sub2 100.64.0.13/10 ─┘   (<prefix>-sw)  (<prefix>-cgn)  └─ <prefix>-ext2 192.0.2.20/24

cgnd runs in ``<prefix>-cgn`` on the address-less veths ``in0``/``out0`` (net_af_packet);
it is 100.64.0.1 inside, 192.0.2.1 outside, and translates to the pool 198.51.100.0/29.

``Topology(router=True)`` adds a router behind which a far host sits on a link with a smaller
MTU (for path MTU discovery through cgnd); cgnd is then started with ``--outside-gateway``::

    br-out ─ <prefix>-rtr 192.0.2.254/24 | 203.0.113.1/24 ─(MTU 1280)─ <prefix>-far 203.0.113.10/24

The router forwards (and sends ICMP errors such as "fragmentation needed") and routes the pool
back through cgnd; the far host routes the pool through the router and advertises an MSS of
1460 on that route, so subscribers' full-size segments meet the small link. Without
``router=True`` none of this exists and the topology is exactly the one above.

Everything it creates is removed again: by the context manager, by an atexit hook, and on
SIGINT/SIGTERM/SIGHUP once ``install_signal_handlers()`` has been called (they become
KeyboardInterrupt so ``with`` blocks unwind). Processes are started in their own sessions
and stopped by their process-group id; before a namespace is deleted every process still
in it (necessarily one of ours, the namespaces are private) is killed.

Stdlib only (Debian 12 /usr/bin/python3). Needs root, iproute2 and ethtool.

Also a small command line tool::

    cgn_topology.py up [--prefix P] [--router]   build the topology and wait (Ctrl-C removes it)
    cgn_topology.py cleanup PREFIX               remove namespaces PREFIX-* left by a killed run
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CGND = REPO / "build" / "dataplane" / "cgnd"
DEFAULT_PEER = REPO / "tests" / "e2e" / "peer.py"
PYTHON = "/usr/bin/python3"

INSIDE_NET = ipaddress.ip_network("100.64.0.0/10")
OUTSIDE_NET = ipaddress.ip_network("192.0.2.0/24")
POOL = ipaddress.ip_network("198.51.100.0/29")
CGN_INSIDE = "100.64.0.1"
CGN_OUTSIDE = "192.0.2.1"

# --in-memory is rejected together with --no-huge by DPDK ("--legacy-mem is not compatible
# with --in-memory": --no-huge implies legacy memory). --no-shconf keeps EAL from writing a
# shared config, and a per-run --file-prefix keeps parallel cgnd instances apart; the
# runtime directory /var/run/dpdk/<prefix> is removed by Topology.destroy().
# Override with CGN_EAL_ARGS ("{prefix}" is replaced by the run's prefix).
DEFAULT_EAL_ARGS = ("--no-huge --no-pci -m 512 --no-shconf --no-telemetry --file-prefix {prefix} "
                    "--log-level=lib.eal:warning")
DPDK_RUNTIME_DIR = Path("/var/run/dpdk")


def eal_args(prefix: str) -> str:
    return (os.environ.get("CGN_EAL_ARGS") or DEFAULT_EAL_ARGS).replace("{prefix}", prefix)

# Counters the tests and the demo rely on (cgnd prints all of them, zeros included).
KNOWN_COUNTERS = (
    "rx_inside", "rx_outside", "tx_inside", "tx_outside",
    "in2out_translated", "out2in_translated",
    "sessions_created", "sessions_expired", "mappings_created", "mappings_removed",
    "icmp_echo_answered", "icmp_time_exceeded_sent",
    "icmp_frag_needed_sent", "packets_fragmented", "fragments_created",
    "drop_out2in_no_mapping", "drop_out2in_filtered", "drop_ttl_exceeded",
    "drop_too_big_df", "drop_fragmentation_failed",
)


@dataclass(frozen=True)
class Host:
    name: str          # short name, namespace is <prefix>-<name>
    side: str          # "in" (on br-in) or "out" (on br-out); "far": behind the router
    address: str       # with prefix length
    routes: tuple      # (destination, gateway) pairs

    @property
    def ip(self) -> str:
        return self.address.split("/")[0]


HOSTS = {
    "sub1": Host("sub1", "in", "100.64.0.11/10", (("default", CGN_INSIDE),)),
    "sub2": Host("sub2", "in", "100.64.0.13/10", (("default", CGN_INSIDE),)),
    "ext1": Host("ext1", "out", "192.0.2.10/24", ((str(POOL), CGN_OUTSIDE),)),
    "ext2": Host("ext2", "out", "192.0.2.20/24", ((str(POOL), CGN_OUTSIDE),)),
}
SUBSCRIBERS = ("sub1", "sub2")
OUTSIDE_HOSTS = ("ext1", "ext2")

# The optional router (Topology(router=True)). It is a port of br-out like ext1/ext2, and
# cgnd's --outside-gateway; its second leg "far0" is a point-to-point veth to the host "far",
# with a smaller MTU on both ends.
ROUTER_OUTSIDE = "192.0.2.254"
FAR_NET = ipaddress.ip_network("203.0.113.0/24")
ROUTER_FAR = "203.0.113.1"
FAR_MTU = 1280
# The far host advertises the MSS of a 1500-byte link (route option advmss), as a server on an
# ordinary LAN behind a smaller-MTU hop would: with the MSS its own 1280-byte link implies
# (1240), the subscribers' segments would fit the far link and never need PMTUD.
FAR_ADVMSS = 1460
ROUTER_HOSTS = {
    "rtr": Host("rtr", "out", f"{ROUTER_OUTSIDE}/24", ((str(POOL), CGN_OUTSIDE),)),
    "far": Host("far", "far", "203.0.113.10/24", ((str(POOL), ROUTER_FAR),)),
}


def cgnd_path() -> Path:
    return Path(os.environ.get("CGND") or DEFAULT_CGND)


def cgn_pcp_path() -> Path:
    """The cgn-pcp client of the build the cgnd under test comes from: a build directory's
    `dataplane/cgnd` goes with its `control/pcp/cgn-pcp`; a cgnd elsewhere (installed) with the
    cgn-pcp beside it."""
    cgnd = cgnd_path()
    if cgnd.parent.name == "dataplane":
        return cgnd.parent.parent / "control" / "pcp" / "cgn-pcp"
    return cgnd.parent / "cgn-pcp"


def in_pool(addr: str) -> bool:
    return ipaddress.ip_address(addr) in POOL


def is_inside(addr: str) -> bool:
    return ipaddress.ip_address(addr) in INSIDE_NET


class TopologyError(RuntimeError):
    pass


# --------------------------------------------------------------------------------------
# process bookkeeping, global cleanup

_live_lock = threading.RLock()
_live_topologies: list["Topology"] = []
_live_procs: list[subprocess.Popen] = []


def _register_proc(p: subprocess.Popen) -> None:
    with _live_lock:
        _live_procs.append(p)


def kill_proc(p: subprocess.Popen, term_timeout: float = 3.0) -> None:
    """Stop a process we started (in its own session) and everything in its group."""
    if p.poll() is None:
        for sig, wait in ((signal.SIGTERM, term_timeout), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(p.pid, sig)
            except ProcessLookupError:
                pass
            except PermissionError:
                p.send_signal(sig)
            try:
                p.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    # (once the leader is reaped its id may be reused: no group signal then; anything of
    # ours left in a namespace is killed by remove_netns)
    for stream in (p.stdin, p.stdout, p.stderr):
        try:
            if stream:
                stream.close()
        except OSError:
            pass
    with _live_lock:
        if p in _live_procs:
            _live_procs.remove(p)


def cleanup_all() -> None:
    """Kill every process and remove every topology this Python process created."""
    with _live_lock:
        procs = list(_live_procs)
        topos = list(_live_topologies)
    for p in procs:
        kill_proc(p, term_timeout=1.0)
    for t in topos:
        t.destroy()


atexit.register(cleanup_all)


class _Interrupted(KeyboardInterrupt):
    pass


def install_signal_handlers() -> None:
    """Make SIGTERM and SIGHUP behave like Ctrl-C (KeyboardInterrupt) so cleanup runs."""

    def handler(signum, frame):
        raise _Interrupted(f"signal {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)


class _SignalsDeferred:
    """Hold SIGINT/SIGTERM/SIGHUP during cleanup so a second Ctrl-C cannot cut it short."""

    SIGS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}

    def __enter__(self):
        self.ok = threading.current_thread() is threading.main_thread()
        if self.ok:
            self.old = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGS)
        return self

    def __exit__(self, *exc):
        if self.ok:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old)
        return False


def _run(argv, check=True, timeout=30, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise TopologyError(f"command failed ({r.returncode}): {shlex.join(argv)}\n"
                            f"{r.stdout}{r.stderr}")
    return r


def list_netns() -> set[str]:
    r = _run(["ip", "netns", "list"], check=False)
    return {line.split()[0] for line in r.stdout.splitlines() if line.strip()}


def netns_pids(ns: str) -> list[int]:
    r = _run(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in r.stdout.split() if x.isdigit()]


def remove_netns(ns: str) -> None:
    """Kill every process inside namespace ns (ours: the namespace is private), delete it."""
    for sig, pause in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 1.0)):
        pids = [p for p in netns_pids(ns) if p != os.getpid()]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline and netns_pids(ns):
            time.sleep(0.05)
    _run(["ip", "netns", "del", ns], check=False)


# --------------------------------------------------------------------------------------
# cgnd

class CgndError(AssertionError):
    pass


class Cgnd:
    """A running cgnd: collects its output, waits for ``cgnd: ready``, reads counters."""

    def __init__(self, proc: subprocess.Popen, argv: list[str], log=None):
        self.proc = proc
        self.argv = argv
        self.log = log
        self.lines: list[str] = []
        self.err_lines: list[str] = []
        self.blocks: list[dict[str, int]] = []
        self.ready = False
        self._cur_block: dict[str, int] | None = None
        self._cond = threading.Condition()
        self.returncode: int | None = None
        self._threads = [
            threading.Thread(target=self._pump, args=(proc.stdout, False), daemon=True),
            threading.Thread(target=self._pump, args=(proc.stderr, True), daemon=True),
        ]
        for t in self._threads:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self, stream, is_err: bool) -> None:
        for raw in iter(stream.readline, ""):
            line = raw.rstrip("\n")
            with self._cond:
                if is_err:
                    self.err_lines.append(line)
                else:
                    self.lines.append(line)
                    self._parse(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _parse(self, line: str) -> None:
        s = line.strip()
        if s == "cgnd: ready":
            self.ready = True
        elif s == "--- counters ---":
            self._cur_block = {}
        elif s == "--- end counters ---":
            if self._cur_block is not None:
                self.blocks.append(self._cur_block)
            self._cur_block = None
        elif self._cur_block is not None:
            parts = s.split()
            if len(parts) == 2:
                try:
                    self._cur_block[parts[0]] = int(parts[1])
                except ValueError:
                    pass

    def output(self, tail: int | None = None) -> str:
        with self._cond:
            out, err = list(self.lines), list(self.err_lines)
        if tail:
            out, err = out[-tail:], err[-tail:]
        return ("--- cgnd stdout ---\n" + "\n".join(out) +
                "\n--- cgnd stderr ---\n" + "\n".join(err) + "\n")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self.ready:
                if self.proc.poll() is not None:
                    # let the pumps drain what is left
                    self._cond.wait(0.2)
                    if self.ready:
                        break
                    raise CgndError(f"cgnd exited with code {self.proc.returncode} before "
                                    f"'cgnd: ready'\ncommand: {shlex.join(self.argv)}\n"
                                    + self.output())
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CgndError(f"cgnd not ready after {timeout:.0f}s\n"
                                    f"command: {shlex.join(self.argv)}\n" + self.output())
                self._cond.wait(min(left, 0.2))

    def counters(self, timeout: float = 15.0) -> dict[str, int]:
        """Send SIGUSR1 and return the counter block it prints."""
        with self._cond:
            n = len(self.blocks)
        if self.proc.poll() is not None:
            raise CgndError(f"cgnd is not running (exit {self.proc.returncode})\n" + self.output())
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.blocks) <= n:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise CgndError(f"no counters block within {timeout:.0f}s of SIGUSR1 "
                                    f"(cgnd {'running' if self.alive() else 'exited'})\n"
                                    + self.output(tail=60))
                self._cond.wait(min(left, 0.1))
            return dict(self.blocks[n])

    def stop(self, sig=signal.SIGTERM, timeout: float = 10.0) -> int:
        """Stop cgnd with sig; SIGKILL after timeout. Returns the exit code."""
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(sig)
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        if self.proc.poll() is None:
            kill_proc(self.proc, term_timeout=0.5)
        for t in self._threads:   # read everything it printed (the final counters) first
            t.join(timeout=2)
        kill_proc(self.proc)      # then reap leftovers in its group and close the pipes
        self.returncode = self.proc.returncode
        return self.returncode

    @property
    def final_counters(self) -> dict[str, int] | None:
        with self._cond:
            return dict(self.blocks[-1]) if self.blocks else None


def counter_delta(before: dict, after: dict, name: str) -> int:
    return after.get(name, 0) - before.get(name, 0)


# br_netfilter's per-namespace switches (see Topology.bridge_netfilter_off).
BRIDGE_NF_SYSCTLS = ("bridge-nf-call-iptables", "bridge-nf-call-ip6tables",
                     "bridge-nf-call-arptables")

# The DPDK drivers cgnd can attach to the veths with: AF_PACKET sockets, or AF_XDP sockets
# (generic XDP on a veth).
PMDS = ("net_af_packet", "net_af_xdp")


# The most workers the tests run cgnd with (net_af_packet qpairs).
PORT_QUEUES = 4


def control_socket_path(eal: str) -> str:
    """cgnd's control socket for a run: named after the run's EAL file prefix."""
    m = re.search(r"--file-prefix[ =](\S+)", eal)
    return f"/run/cgnd-{m.group(1) if m else os.getpid()}.sock"


def default_workers() -> int:
    """Workers cgnd runs with: CGN_WORKERS (the test command runs the suite with 1 and 2)."""
    return int(os.environ.get("CGN_WORKERS", "1"))


def lcore_layout(workers: int, cpus: int) -> str:
    """EAL --lcores for the main lcore 0 on CPU 0 and worker lcores 1..workers on the other
    CPUs in turn (all on CPU 0 when it is the only one)."""
    others = cpus - 1
    places = ["0@0"] + [f"{l}@{1 + (l - 1) % others if others else 0}"
                        for l in range(1, workers + 1)]
    return ",".join(places)


def cgnd_argv(binary=None, *, pool=(str(POOL),), filtering=None, max_sessions=65536,
              eal=None, extra=(), pmd="net_af_packet", workers=None,
              outside_gateway=None) -> list[str]:
    if pmd not in PMDS:
        raise ValueError(f"pmd must be one of {PMDS}, not {pmd!r}")
    workers = workers or default_workers()
    if not 1 <= workers <= PORT_QUEUES:
        raise ValueError(f"workers must be 1 to {PORT_QUEUES}, not {workers}")
    eal = eal or eal_args(f"cgn{os.getpid()}")
    queues = ""
    if workers > 1:
        # One queue per worker on each port. The workers poll without pause, so they get CPUs
        # 1.. between them and CPU 0 stays with the control thread (main lcore), the tests and
        # the kernel's veth work: on a 2-CPU machine both workers share CPU 1. (With a worker
        # polling on each CPU, CI's two-worker runs saw stalls of tens of seconds.)
        eal += " --lcores " + lcore_layout(workers, os.cpu_count() or 1)
        queues = f",qpairs={workers}" if pmd == "net_af_packet" else f",queue_count={workers}"
    argv = [str(binary or cgnd_path()),
            "--eal-args", eal,
            "--inside-port", f"{pmd}0,iface=in0{queues}",
            "--outside-port", f"{pmd}1,iface=out0{queues}",
            "--worker-lcores", ",".join(str(l) for l in range(1, workers + 1)),
            "--control-socket", control_socket_path(eal),
            "--inside-address", f"{CGN_INSIDE}/10",
            "--outside-address", f"{CGN_OUTSIDE}/24"]
    for p in pool:
        argv += ["--pool", p]
    if filtering:
        argv += ["--filtering", filtering]
    if max_sessions is not None:
        argv += ["--max-sessions", str(max_sessions)]
    if outside_gateway:
        argv += ["--outside-gateway", str(outside_gateway)]
    argv += list(extra)
    return argv


# --------------------------------------------------------------------------------------
# helpers around peer.py

_readers_lock = threading.Lock()


def read_line(proc: subprocess.Popen, timeout: float) -> str | None:
    """Next stdout line of a spawned (text mode) process, None on EOF.

    A reader thread per process feeds a queue, so lines that arrive together are never
    stuck in a buffer that select() cannot see. Raises TimeoutError. The queue lives on the
    Popen object itself: keyed by id(proc), a new process could inherit the queue (and EOF)
    of a finished one whose id was reused.
    """
    with _readers_lock:
        q = getattr(proc, "_cgn_line_queue", None)
        if q is None:
            q = proc._cgn_line_queue = queue.Queue()

            def pump(stream=proc.stdout, q=q):
                try:
                    for line in iter(stream.readline, ""):
                        q.put(line)
                except (OSError, ValueError):
                    pass
                q.put(None)

            threading.Thread(target=pump, daemon=True).start()
    try:
        line = q.get(timeout=timeout)
    except queue.Empty:
        raise TimeoutError(f"no output from {shlex.join(map(str, proc.args))} "
                           f"within {timeout}s") from None
    if line is None:
        q.put(None)  # stay at EOF
    return line


def read_json(proc: subprocess.Popen, timeout: float = 10.0) -> dict:
    """Next JSON line of a spawned peer; on EOF raises with the peer's stderr."""
    line = read_line(proc, timeout)
    if line is None:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
        raise TopologyError(f"{shlex.join(map(str, proc.args))} exited "
                            f"({proc.returncode}) without output: {err}")
    return json.loads(line)


class UdpAgent:
    """A UDP socket living in a namespace (peer.py udp-agent), driven by JSON lines."""

    def __init__(self, topo: "Topology", host: str, port: int = 0, bind: str = "0.0.0.0"):
        self.host = host
        self.proc = topo.spawn(host, topo.peer_argv("udp-agent", "--bind", bind,
                                                    "--port", str(port)))
        hello = self._read(10.0)
        if not hello.get("ok"):
            raise TopologyError(f"udp-agent on {host} failed: {hello}")
        self.local = tuple(hello["local"])

    def _read(self, timeout: float) -> dict:
        try:
            return read_json(self.proc, timeout)
        except TimeoutError:
            raise TopologyError(f"udp-agent on {self.host}: no answer within {timeout}s") from None

    def _cmd(self, cmd: dict, wait: float = 10.0) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        reply = self._read(wait)
        if not reply.get("ok"):
            raise TopologyError(f"udp-agent on {self.host}: {cmd} -> {reply}")
        return reply

    def send(self, addr: str, port: int, data: str) -> None:
        self._cmd({"op": "send", "host": addr, "port": int(port), "data": data})

    def recv(self, timeout: float = 1.0, max_packets: int = 0) -> list[tuple[tuple[str, int], str]]:
        """Datagrams received within timeout (returns early once max_packets arrived)."""
        r = self._cmd({"op": "recv", "timeout": timeout, "max": max_packets}, wait=timeout + 10)
        return [((p["from"][0], p["from"][1]), p["data"]) for p in r["packets"]]

    def close(self) -> None:
        kill_proc(self.proc, term_timeout=1.0)


# --------------------------------------------------------------------------------------
# the topology

class Topology:
    def __init__(self, prefix: str | None = None, peer: Path | str | None = None,
                 log=None, verbose: bool = False, router: bool = False):
        self.prefix = prefix or f"cgnt{os.getpid()}"
        self.router = router     # add <prefix>-rtr and <prefix>-far (see the module docstring)
        self.peer_path = Path(peer or os.environ.get("CGN_PEER") or DEFAULT_PEER)
        self.log = log or (lambda msg: None)
        self.verbose = verbose
        self.created: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self.cgnds: list[Cgnd] = []
        self._destroyed = False

    # names ----------------------------------------------------------------------------
    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def hosts(self) -> tuple[str, ...]:
        """The namespaces with an ordinary network stack: HOSTS, and rtr/far with the router."""
        return (*HOSTS, *(ROUTER_HOSTS if self.router else ()))

    @property
    def namespaces(self) -> list[str]:
        return [self.ns(h) for h in ("sw", "cgn", *self.hosts)]

    # commands -------------------------------------------------------------------------
    def _cmd(self, host: str | None, argv) -> list[str]:
        argv = [str(a) for a in argv]
        return (["ip", "netns", "exec", self.ns(host)] + argv) if host else argv

    def run(self, host: str | None, argv, check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run argv in host's namespace (host None: in ours); output captured as text."""
        full = self._cmd(host, argv)
        if self.verbose:
            self.log("$ " + shlex.join(full))
        try:
            p = subprocess.Popen(full, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 start_new_session=True)
        except OSError as e:
            raise TopologyError(f"cannot run {shlex.join(full)}: {e}") from e
        _register_proc(p)
        try:
            out, err = p.communicate(input=input, timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_proc(p)
            raise TopologyError(f"timed out after {timeout}s: {shlex.join(full)}")
        finally:
            if p.poll() is None:
                kill_proc(p)
            with _live_lock:
                if p in _live_procs:
                    _live_procs.remove(p)
        r = subprocess.CompletedProcess(full, p.returncode, out, err)
        if check and r.returncode != 0:
            raise TopologyError(f"command failed ({r.returncode}): {shlex.join(full)}\n"
                                f"{out}{err}")
        return r

    def spawn(self, host: str | None, argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
              stderr=subprocess.PIPE, text=True) -> subprocess.Popen:
        """Start argv in host's namespace in its own session; stopped by destroy()."""
        full = self._cmd(host, argv)
        if self.verbose:
            self.log("$ " + shlex.join(full) + " &")
        p = subprocess.Popen(full, stdin=stdin, stdout=stdout, stderr=stderr, text=text,
                             bufsize=1 if text else -1, start_new_session=True)
        _register_proc(p)
        self.procs.append(p)
        return p

    def peer_argv(self, *args) -> list[str]:
        return [PYTHON, str(self.peer_path), *[str(a) for a in args]]

    def peer(self, host: str, *args, timeout: float = 30, check: bool = True) -> dict:
        """Run a one-shot peer.py command; returns its last stdout line parsed as JSON."""
        r = self.run(host, self.peer_argv(*args), timeout=timeout, check=check)
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        if not lines:
            raise TopologyError(f"peer {args} on {host} printed nothing (rc {r.returncode})\n"
                                f"{r.stderr}")
        return json.loads(lines[-1])

    def udp_agent(self, host: str, port: int = 0) -> UdpAgent:
        return UdpAgent(self, host, port)

    # building -------------------------------------------------------------------------
    def create(self) -> "Topology":
        if os.geteuid() != 0:
            raise TopologyError("building the topology needs root (network namespaces)")
        clash = [n for n in self.namespaces if n in list_netns()]
        if clash:
            raise TopologyError(f"namespaces already exist: {clash} (prefix {self.prefix!r} in use; "
                                f"'cgn_topology.py cleanup {self.prefix}' removes a stale one)")
        with _live_lock:
            _live_topologies.append(self)
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise
        return self

    def _ns_add(self, name: str) -> None:
        ns = self.ns(name)
        self.run(None, ["ip", "netns", "add", ns])
        self.created.append(ns)
        # no IPv6 at all: nothing but what the tests send appears on the wires
        self.run(name, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                        "net.ipv6.conf.default.disable_ipv6=1"])
        self.run(name, ["ip", "link", "set", "dev", "lo", "up"])
        self.bridge_netfilter_off(name)

    def bridge_netfilter_off(self, host: str) -> dict[str, str]:
        """Bridged frames skip netfilter in host's namespace.

        Where the host has br_netfilter loaded, every new namespace starts with
        net.bridge.bridge-nf-call-{iptables,ip6tables,arptables} = 1 (the sysctls are per
        namespace), so the bridges validate bridged IPv4 as a router would: a frame with a bad
        header checksum, a wrong length or bad options is dropped before it reaches cgnd, and
        the tests of cgnd's own checks would depend on the host. Turned off where present
        (they exist only while br_netfilter is loaded); returns the values found afterwards.
        """
        script = ("for f in " + " ".join(f"/proc/sys/net/bridge/{n}" for n in BRIDGE_NF_SYSCTLS)
                  + '; do if [ -e "$f" ]; then echo 0 > "$f"; echo "${f##*/}=$(cat "$f")"; fi;'
                  " done")
        out = self.run(host, ["sh", "-c", script]).stdout
        return dict(line.split("=", 1) for line in out.split())

    def _no_offload(self, host: str, dev: str) -> None:
        self.run(host, ["ethtool", "-K", dev, "tx", "off", "sg", "off", "tso", "off", "gso", "off"])

    def _build(self) -> None:
        self.log(f"creating namespaces {self.prefix}-{{sw,cgn,sub1,sub2,ext1,ext2}}")
        for name in ("sw", "cgn", *HOSTS):
            self._ns_add(name)
        sw, cgn = self.ns("sw"), self.ns("cgn")
        for br in ("br-in", "br-out"):
            self.run("sw", ["ip", "link", "add", "name", br, "type", "bridge",
                            "stp_state", "0", "forward_delay", "0"])
            self.run("sw", ["ip", "link", "set", "dev", br, "up"])
        # cgnd's ports: in0/out0, no addresses
        for dev, peer, br in (("in0", "cgn-in", "br-in"), ("out0", "cgn-out", "br-out")):
            # One queue per veth: net_af_packet spreads over its sockets by itself (fanout),
            # and net_af_xdp's socket serves queue 0 only (frames on other queues would go
            # to the kernel instead).
            self.run(None, ["ip", "-n", cgn, "link", "add", "name", dev, "type", "veth",
                            "peer", "name", peer, "netns", sw])
            self._no_offload("cgn", dev)
            self._no_offload("sw", peer)
            self.run("sw", ["ip", "link", "set", "dev", peer, "master", br])
            self.run("sw", ["ip", "link", "set", "dev", peer, "up"])
            # The port belongs to cgnd: the namespace's kernel must not speak on it (an
            # address-less interface would still send IGMP reports from 0.0.0.0).
            self.run("cgn", ["ip", "link", "set", "dev", dev, "multicast", "off"])
            self.run("cgn", ["ip", "link", "set", "dev", dev, "up"])
        for h in HOSTS.values():
            br = "br-in" if h.side == "in" else "br-out"
            port = f"p-{h.name}"
            self.run(None, ["ip", "-n", self.ns(h.name), "link", "add", "name", "eth0", "type",
                            "veth", "peer", "name", port, "netns", sw])
            self._no_offload(h.name, "eth0")
            self._no_offload("sw", port)
            self.run("sw", ["ip", "link", "set", "dev", port, "master", br])
            self.run("sw", ["ip", "link", "set", "dev", port, "up"])
            self.run(h.name, ["ip", "addr", "add", h.address, "dev", "eth0"])
            self.run(h.name, ["ip", "link", "set", "dev", "eth0", "up"])
            for dst, gw in h.routes:
                self.run(h.name, ["ip", "route", "add", dst, "via", gw, "dev", "eth0"])
        self.log("topology up: sub1 100.64.0.11, sub2 100.64.0.13 | cgnd 100.64.0.1 / 192.0.2.1 "
                 f"pool {POOL} | ext1 192.0.2.10, ext2 192.0.2.20")
        if self.router:
            self._build_router()

    def _build_router(self) -> None:
        rtr, far = ROUTER_HOSTS["rtr"], ROUTER_HOSTS["far"]
        self.log(f"creating namespaces {self.prefix}-{{rtr,far}}")
        for name in ROUTER_HOSTS:
            self._ns_add(name)
        sw = self.ns("sw")
        # the router's outside leg: a port of br-out
        self.run(None, ["ip", "-n", self.ns("rtr"), "link", "add", "name", "eth0", "type", "veth",
                        "peer", "name", "p-rtr", "netns", sw])
        # the far link: rtr far0 <-> far eth0, both with the small MTU
        self.run(None, ["ip", "-n", self.ns("rtr"), "link", "add", "name", "far0", "type", "veth",
                        "peer", "name", "eth0", "netns", self.ns("far")])
        # No offloads anywhere on the path: cgnd cannot take GSO/TSO frames, and the router
        # must see (and refuse with "fragmentation needed") every oversized packet as it is,
        # not merged by GRO.
        for host, dev in (("sw", "p-rtr"), ("rtr", "eth0"), ("rtr", "far0"), ("far", "eth0")):
            self._no_offload(host, dev)
            self.run(host, ["ethtool", "-K", dev, "gro", "off"])
        self.run("sw", ["ip", "link", "set", "dev", "p-rtr", "master", "br-out"])
        self.run("sw", ["ip", "link", "set", "dev", "p-rtr", "up"])
        for host, dev in (("rtr", "far0"), ("far", "eth0")):
            self.run(host, ["ip", "link", "set", "dev", dev, "mtu", str(FAR_MTU)])
        self.run("rtr", ["ip", "addr", "add", rtr.address, "dev", "eth0"])
        self.run("rtr", ["ip", "addr", "add", f"{ROUTER_FAR}/{FAR_NET.prefixlen}", "dev", "far0"])
        self.run("far", ["ip", "addr", "add", far.address, "dev", "eth0"])
        for host, dev in (("rtr", "eth0"), ("rtr", "far0"), ("far", "eth0")):
            self.run(host, ["ip", "link", "set", "dev", dev, "up"])
        self.run("rtr", ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        for dst, gw in rtr.routes:
            self.run("rtr", ["ip", "route", "add", dst, "via", gw, "dev", "eth0"])
        for dst, gw in far.routes:
            self.run("far", ["ip", "route", "add", dst, "via", gw, "dev", "eth0",
                             "advmss", str(FAR_ADVMSS)])
        self.log(f"router up: rtr {ROUTER_OUTSIDE} / {ROUTER_FAR} | far {far.ip} "
                 f"(far link MTU {FAR_MTU}) | cgnd needs --outside-gateway {ROUTER_OUTSIDE}")

    def mac(self, host: str, dev: str = "eth0") -> str:
        return self.run(host, ["cat", f"/sys/class/net/{dev}/address"]).stdout.strip()

    def flush_neigh(self) -> None:
        """Forget learned neighbours on the hosts (e.g. between cgnd restarts)."""
        for h in HOSTS:
            self.run(h, ["ip", "neigh", "flush", "dev", "eth0"], check=False)
        if self.router:
            for h, dev in (("rtr", "eth0"), ("rtr", "far0"), ("far", "eth0")):
                self.run(h, ["ip", "neigh", "flush", "dev", dev], check=False)

    # cgnd -----------------------------------------------------------------------------
    def start_cgnd(self, *, filtering=None, extra=(), pool=(str(POOL),), binary=None,
                   max_sessions=65536, ready_timeout: float = 20.0, wait: bool = True,
                   pmd: str = "net_af_packet", argv: list[str] | None = None) -> Cgnd:
        """Starts cgnd in the cgn namespace; `argv`, when given, is used as it is.

        With the router, cgnd gets --outside-gateway (the router) to reach the far network.
        """
        binary = Path(binary or cgnd_path())
        if not binary.exists():
            raise TopologyError(f"cgnd not found at {binary} (build it, or set CGND=/path/to/cgnd)")
        if argv is None:
            argv = cgnd_argv(binary, pool=pool, filtering=filtering, max_sessions=max_sessions,
                             eal=eal_args(self.prefix), extra=extra, pmd=pmd,
                             outside_gateway=ROUTER_OUTSIDE if self.router else None)
        # br_netfilter may have been loaded since the namespaces were made: the bridges (in sw,
        # and those the fragment tests add in cgn) must still pass frames as they are.
        for host in ("sw", "cgn"):
            self.bridge_netfilter_off(host)
        proc = self.spawn("cgn", argv, stdin=subprocess.DEVNULL)
        c = Cgnd(proc, self._cmd("cgn", argv), log=self.log)
        self.cgnds.append(c)
        if wait:
            try:
                c.wait_ready(ready_timeout)
            except BaseException:
                c.stop(timeout=3)
                raise
        return c

    # teardown -------------------------------------------------------------------------
    def destroy(self) -> None:
        if self._destroyed:
            return
        with _SignalsDeferred():
            self._destroyed = True
            for c in self.cgnds:
                if c.alive():
                    c.stop(timeout=5)
            for p in list(self.procs):
                kill_proc(p, term_timeout=1.0)
            self.procs.clear()
            for ns in reversed(self.created):
                remove_netns(ns)
            rt = DPDK_RUNTIME_DIR / self.prefix   # EAL's --file-prefix directory (ours)
            if self.cgnds and rt.is_dir():
                import shutil
                shutil.rmtree(rt, ignore_errors=True)
            left = [ns for ns in self.created if ns in list_netns()]
            self.created = left
            with _live_lock:
                if self in _live_topologies:
                    _live_topologies.remove(self)
            if left:
                self.log(f"WARNING: could not delete namespaces {left}")
            else:
                self.log(f"removed namespaces {self.prefix}-*")

    def __enter__(self) -> "Topology":
        return self.create()

    def __exit__(self, *exc) -> bool:
        self.destroy()
        return False


def cleanup_prefix(prefix: str) -> list[str]:
    """Remove namespaces named exactly <prefix>-{sw,cgn,sub1,sub2,ext1,ext2,rtr,far}."""
    names = [f"{prefix}-{h}" for h in ("sw", "cgn", *HOSTS, *ROUTER_HOSTS)]
    gone = []
    for ns in names:
        if ns in list_netns():
            remove_netns(ns)
            gone.append(ns)
    return gone


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build the topology and keep it until Ctrl-C")
    up.add_argument("--prefix", default=None)
    up.add_argument("--router", action="store_true",
                    help=f"add the router and the far host {ROUTER_HOSTS['far'].ip} behind a "
                         f"{FAR_MTU}-byte link")
    cl = sub.add_parser("cleanup", help="remove the namespaces of a killed run")
    cl.add_argument("prefix")
    a = ap.parse_args(argv)
    if a.cmd == "cleanup":
        gone = cleanup_prefix(a.prefix)
        print("removed: " + (" ".join(gone) if gone else "nothing"))
        return 0
    install_signal_handlers()
    try:
        with Topology(a.prefix, log=print, router=a.router) as t:
            print("namespaces: " + " ".join(t.namespaces))
            print(f"e.g.: ip netns exec {t.ns('sub1')} ping 192.0.2.10")
            if a.router:
                print(f"(start cgnd with --outside-gateway {ROUTER_OUTSIDE} to reach "
                      f"{ROUTER_HOSTS['far'].ip})")
            print("Ctrl-C removes everything")
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
