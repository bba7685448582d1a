"""Reachability, TTL handling and a clean stop."""

import signal
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
    r = net.ping("sub1", ct.CGN_INSIDE, count=2)
    assert r.returncode == 0, f"ping sub1 -> 100.64.0.1 failed:\n{r.stdout}{r.stderr}"
    assert "bytes from 100.64.0.1" in r.stdout
    r = net.ping("ext1", ct.CGN_OUTSIDE, count=2)
    assert r.returncode == 0, f"ping ext1 -> 192.0.2.1 failed:\n{r.stdout}{r.stderr}"
    after = c.counters()
    d = {k: ct.counter_delta(before, after, k) for k in ct.KNOWN_COUNTERS}
    assert d["icmp_echo_answered"] >= 2, d
    assert d["in2out_translated"] >= 2, d    # at least one echo per subscriber
    assert d["out2in_translated"] >= 2, d
    assert d["rx_inside"] >= 4 and d["rx_outside"] >= 2, d


def test_counters_block_complete(net):
    c = net.start_cgnd()
    counters = c.counters()
    missing = [k for k in ct.KNOWN_COUNTERS if k not in counters]
    assert not missing, f"counters block lacks {missing}: {counters}"
    assert all(v >= 0 for v in counters.values())


def test_ttl_exceeded(net):
    c = net.start_cgnd()
    net.ping("sub1", EXT1, count=1)  # neighbours warm
    before = c.counters()
    r = net.ping("sub1", EXT1, count=1, ttl=1, wait=2)
    assert PING_TTL_RE.search(r.stdout), (
        f"expected 'From 100.64.0.1 ... Time to live exceeded', ping said:\n{r.stdout}{r.stderr}")
    after = c.counters()
    assert ct.counter_delta(before, after, "icmp_time_exceeded_sent") >= 1, after
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
