"""Reachability, TTL handling, a clean stop, and test bridges that pass frames as they are."""

import shutil
import signal
import subprocess
import time

import pytest

import cgn_topology as ct
from conftest import PING_TTL_RE

EXT1 = ct.HOSTS["ext1"].ip


def test_ping_through_and_to_cgnd(net):
    c = net.start_cgnd()
    before = c.counters()
    for sub in ct.SUBSCRIBERS:
        r = net.ping(sub, EXT1, count=3)
        assert r.returncode == 0, f"ping {sub} -> ext1 failed:\n{r.stdout}{r.stderr}"
        assert "bytes from 192.0.2.10" in r.stdout
        assert "3 received" in r.stdout, r.stdout
    r = net.ping("sub1", ct.CGN_INSIDE, count=2)
    assert r.returncode == 0, f"ping sub1 -> 100.64.0.1 failed:\n{r.stdout}{r.stderr}"
    assert "bytes from 100.64.0.1" in r.stdout and "2 received" in r.stdout, r.stdout
    r = net.ping("ext1", ct.CGN_OUTSIDE, count=2)
    assert r.returncode == 0, f"ping ext1 -> 192.0.2.1 failed:\n{r.stdout}{r.stderr}"
    assert "2 received" in r.stdout, r.stdout
    after = c.counters()
    d = {k: ct.counter_delta(before, after, k) for k in ct.KNOWN_COUNTERS}
    # Every echo was answered (the ping outputs say so), so the counts are exact: 3 requests
    # of each subscriber out and their 3 replies back, 2 + 2 requests to cgnd's own addresses.
    echoes = 3 * len(ct.SUBSCRIBERS)
    assert d["icmp_echo_answered"] == 4, d
    assert d["in2out_translated"] == echoes, d
    assert d["out2in_translated"] == echoes, d
    assert d["sessions_created"] == len(ct.SUBSCRIBERS), d  # one echo identifier each
    # ARP comes on top of the IPv4 frames counted here.
    assert d["rx_inside"] >= echoes + 2 and d["rx_outside"] >= echoes + 2, d


# More subscriber addresses than the topology's two, so that with CGN_WORKERS=2 each worker owns
# several: the Toeplitz hash cgnd steers by puts 100.64.0.14, .16 and .18 on worker 0, and .15,
# .17, .19, .20 and .32 on worker 1 (sub1 100.64.0.11 is worker 0's, sub2 100.64.0.13 worker
# 1's). (A cgnd whose shared block map was built for one worker gave worker 1 no port block, so
# none of its subscribers got through, and no test saw it while both subscribers hashed to 0.)
EXTRA_SUBSCRIBER_ADDRESSES = ("100.64.0.14", "100.64.0.15", "100.64.0.16", "100.64.0.17",
                              "100.64.0.18", "100.64.0.19", "100.64.0.20", "100.64.0.32")


def test_every_subscriber_address_is_translated(net):
    c = net.start_cgnd()
    added = []
    try:
        for addr in EXTRA_SUBSCRIBER_ADDRESSES:
            net.run("sub1", ["ip", "addr", "add", f"{addr}/10", "dev", "eth0"])
            added.append(addr)
        before = c.counters()
        failed = {}
        for addr in EXTRA_SUBSCRIBER_ADDRESSES:
            r = net.run("sub1", ["ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", "-I", addr, EXT1],
                        check=False, timeout=20)
            if "2 received" not in r.stdout:
                failed[addr] = r.stdout + r.stderr
        after = c.counters()
        assert not failed, f"pings from these subscriber addresses did not get through: {failed}"
        d = {k: after[k] - before[k] for k in after}
        # One echo mapping per source address: each ping keeps its identifier.
        assert d["mappings_created"] == len(EXTRA_SUBSCRIBER_ADDRESSES), d
        assert d["drop_ports_exhausted"] == 0 and d["drop_pool_exhausted"] == 0, d
    finally:
        for addr in added:
            net.run("sub1", ["ip", "addr", "del", f"{addr}/10", "dev", "eth0"], check=False)


def test_counters_block_complete(net):
    c = net.start_cgnd()
    counters = c.counters()
    missing = [k for k in ct.KNOWN_COUNTERS if k not in counters]
    assert not missing, f"counters block lacks {missing}: {counters}"
    # Nothing was sent through this cgnd yet: nothing is translated, created or generated.
    idle = ("in2out_translated", "out2in_translated", "sessions_created", "mappings_created",
            "icmp_time_exceeded_sent", "icmp_frag_needed_sent", "packets_fragmented",
            "fragments_created")
    assert {k: counters[k] for k in idle} == dict.fromkeys(idle, 0), counters


def test_ttl_exceeded(net):
    c = net.start_cgnd()
    net.ping("sub1", EXT1, count=1)  # neighbours warm
    before = c.counters()
    r = net.ping("sub1", EXT1, count=1, ttl=1, wait=2)
    assert PING_TTL_RE.search(r.stdout), (
        f"expected 'From 100.64.0.1 ... Time to live exceeded', ping said:\n{r.stdout}{r.stderr}")
    after = c.counters()
    assert ct.counter_delta(before, after, "icmp_time_exceeded_sent") == 1, after
    assert ct.counter_delta(before, after, "drop_ttl_exceeded") == 1, after
    # TTL 2 still gets through (cgnd decrements once)
    r = net.ping("sub1", EXT1, count=1, ttl=2, wait=2)
    assert r.returncode == 0, f"ping -t 2 should reach ext1:\n{r.stdout}"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_clean_stop(net, sig):
    c = net.start_cgnd()
    r = net.ping("sub1", EXT1, count=2)
    assert r.returncode == 0, r.stdout
    t0 = time.monotonic()
    c.proc.send_signal(sig)
    try:
        rc = c.proc.wait(timeout=5)
    except Exception:
        pytest.fail(f"cgnd still running 5 s after {sig.name}\n{c.output(tail=50)}")
    elapsed = time.monotonic() - t0
    c.stop()  # joins the output readers
    assert rc == 0, f"cgnd exit code {rc} after {sig.name}\n{c.output(tail=50)}"
    final = c.final_counters
    assert final is not None, f"no counters block printed on {sig.name}\n{c.output(tail=50)}"
    missing = [k for k in ct.KNOWN_COUNTERS if k not in final]
    assert not missing, f"final counters lack {missing}"
    assert final["rx_inside"] >= 2 and final["in2out_translated"] >= 2, final
    assert elapsed < 5


def test_config_file_with_command_line_override(net, tmp_path):
    """Every option from a config file; an option on the command line wins over the file."""
    argv = ct.cgnd_argv(ct.cgnd_path(), eal=ct.eal_args(net.topo.prefix),
                        extra=["--filtering", "endpoint-independent", "--timeout-udp", "123"])
    lines = ["# written by test_config_file_with_command_line_override"]
    it = iter(argv[1:])
    for opt, value in zip(it, it):
        lines.append(f"{opt[2:]} = {value}")
    conf = tmp_path / "cgnd.conf"
    conf.write_text("\n".join(lines) + "\n")
    c = net.start_cgnd(argv=[str(ct.cgnd_path()), "--config", str(conf),
                             "--filtering", "address-and-port-dependent"])
    startup = "\n".join(c.lines)
    assert "filtering address-and-port-dependent" in startup, startup
    r = net.ping("sub1", EXT1, count=2)
    assert r.returncode == 0, f"ping through a cgnd configured by file failed:\n{r.stdout}"


# An IPv4 frame with a bad header checksum, sent as it is from sub1's eth0 to cgnd's inside
# port (argv: interface, destination MAC, count). Its bytes are fixed here, so the only thing
# between it and cgnd is the bridge.
_SEND_BAD_CHECKSUM = r"""
import socket, struct, sys
ifname, dst, count = sys.argv[1], bytes.fromhex(sys.argv[2].replace(":", "")), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
src = s.getsockname()[4]
payload = b"bad header checksum"
udp = struct.pack("!HHHH", 40123, 9, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0x4242, 0, 64, 17, 0xdead,
                 socket.inet_aton("100.64.0.11"), socket.inet_aton("192.0.2.10"))
for _ in range(count):
    s.send(dst + src + b"\x08\x00" + ip + udp)
"""


def _bridge_netfilter_present(net) -> bool:
    r = net.topo.run("sw", ["test", "-e", "/proc/sys/net/bridge/bridge-nf-call-iptables"],
                     check=False)
    return r.returncode == 0


def test_bridges_pass_malformed_frames_with_br_netfilter_loaded(net):
    """Where the host has br_netfilter loaded, a new namespace's bridges validate bridged IPv4
    (bridge-nf-call-iptables is 1 there) and drop a frame with a bad header checksum before it
    reaches cgnd. The topology turns that off: cgnd sees the frame and counts it."""
    loaded_here = False
    if not _bridge_netfilter_present(net):
        r = subprocess.run(["modprobe", "br_netfilter"], capture_output=True, text=True) \
            if shutil.which("modprobe") else None
        if r is None or r.returncode != 0 or not _bridge_netfilter_present(net):
            pytest.skip("br_netfilter is not loaded and cannot be loaded here "
                        f"({'no modprobe' if r is None else r.stderr.strip()})")
        loaded_here = True
    try:
        c = net.start_cgnd()
        for ns in ("sw", "cgn", *ct.HOSTS):
            state = {n: net.topo.run(ns, ["cat", f"/proc/sys/net/bridge/{n}"]).stdout.strip()
                     for n in ct.BRIDGE_NF_SYSCTLS}
            assert state == dict.fromkeys(ct.BRIDGE_NF_SYSCTLS, "0"), (ns, state)
        before = c.counters()
        net.topo.run("sub1", ["/usr/bin/python3", "-c", _SEND_BAD_CHECKSUM, "eth0",
                              net.topo.mac("cgn", "in0"), "5"])
        deadline = time.monotonic() + 3
        while True:
            got = ct.counter_delta(before, c.counters(), "drop_ipv4_checksum")
            if got >= 5 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert got == 5, (f"5 frames with a bad IPv4 header checksum sent through br-in: "
                          f"drop_ipv4_checksum grew by {got}")
    finally:
        if loaded_here:
            subprocess.run(["modprobe", "-r", "br_netfilter"], capture_output=True)


def _two_worker_argv(net, mode):
    return ct.cgnd_argv(pool=(str(ct.POOL),), eal=ct.eal_args(net.topo.prefix), workers=2,
                        extra=["--outside-flow-rules", mode])


def test_outside_flow_rules_auto_runs_on_without_them(net):
    """--outside-flow-rules auto (the default) on a device that takes no rte_flow rules
    (net_af_packet; no device here takes them): the start-up line names the refusal, and
    outside traffic still reaches both workers' subscribers through the handoff rings."""
    c = net.start_cgnd(argv=_two_worker_argv(net, "auto"))
    line = next((l for l in c.lines if l.startswith("cgnd: outside flow rules:")), None)
    assert line is not None, c.output(tail=40)
    assert "none, the device refused the rule for UDP port 0/0x0200 -> queue 0" in line, line
    assert "RSS and the handoff rings place the packets" in line, line
    r = net.ping("sub1", EXT1, count=2)
    assert "2 received" in r.stdout, r.stdout + c.output(tail=40)


def test_outside_flow_rules_require_stops_at_start_naming_the_refusal(net):
    c = net.topo.start_cgnd(argv=_two_worker_argv(net, "require"), wait=False)
    try:
        rc = c.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail("cgnd with --outside-flow-rules require kept running on net_af_packet\n"
                    + c.output(tail=40))
    c.stop(timeout=1)
    err = "\n".join(c.err_lines)
    assert rc == 1, c.output(tail=40)
    assert ("cgnd: error: --outside-flow-rules require: the device refused the rule for UDP "
            "port 0/0x0200 -> queue 0") in err, c.output(tail=40)


def test_outside_flow_rules_one_worker_needs_none(net):
    argv = ct.cgnd_argv(pool=(str(ct.POOL),), eal=ct.eal_args(net.topo.prefix), workers=1,
                        extra=["--outside-flow-rules", "require"])
    c = net.start_cgnd(argv=argv)
    assert "cgnd: outside flow rules: not needed (one worker)" in c.lines, c.output(tail=40)
