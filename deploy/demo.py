#!/usr/bin/python3
"""cgn demo: real Linux hosts in network namespaces talk to the outside through cgnd.

    sudo deploy/demo.py [--cgnd build/dataplane/cgnd] [--filtering MODE] [--workers N]
                        [--pmd net_af_xdp|net_af_packet] [--hold] [--verbose]

Builds two subscribers (100.64.0.11, 100.64.0.13) and two outside hosts (192.0.2.10,
192.0.2.20) around cgnd, sends ping, a checked TCP transfer and UDP, shows what the outside
hosts saw, a port opened for sub1 with PCP (cgn-pcp) and reached from outside, and cgnd's
counters; stops cgnd and removes everything (also on Ctrl-C).
Exit status 0 when every check passed, 1 otherwise, 2 when the demo could not run.
Uses the traffic helper tests/e2e/peer.py (override with CGN_PEER=...).

cgnd reaches the veths through net_af_xdp with one worker (the default) and net_af_packet with
several (AF_XDP on a veth serves one queue). net_af_packet's sockets make the kernel reassemble
IPv4 fragments before cgnd sees them, and a reassembled datagram longer than a frame is then
dropped: a fragmented datagram larger than a frame cannot cross cgnd over net_af_packet. The
fragment check runs only over net_af_xdp.
"""

import argparse
import json
import os
import re
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import cgn_topology as ct  # noqa: E402

EXT1, EXT2 = ct.HOSTS["ext1"].ip, ct.HOSTS["ext2"].ip
TCP_PORT, UDP_PORT, PCP_PORT = 5001, 6001, 8080
MIB = 1 << 20


class Demo:
    def __init__(self, args):
        self.args = args
        self.failures: list[str] = []

    # output ---------------------------------------------------------------------------
    def section(self, title: str) -> None:
        print(f"\n== {title} " + "=" * max(3, 66 - len(title)), flush=True)

    def say(self, msg: str = "") -> None:
        print(f"  {msg}" if msg else "", flush=True)

    def check(self, ok: bool, what: str, detail: str = "") -> bool:
        print(f"  [{'ok' if ok else 'FAIL'}] {what}" + (f"  ({detail})" if detail else ""),
              flush=True)
        if not ok:
            self.failures.append(what)
        return ok

    # helpers --------------------------------------------------------------------------
    def read_line(self, proc, timeout=15.0) -> dict:
        try:
            return ct.read_json(proc, timeout)
        except TimeoutError as e:
            raise RuntimeError(str(e)) from None

    def ping(self, t, host, dst, count=3):
        r = t.run(host, ["ping", "-n", "-c", str(count), "-i", "0.2", "-W", "1", dst],
                  check=False, timeout=30)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", r.stdout)
        rtt = re.search(r"= [\d.]+/([\d.]+)/", r.stdout)
        got = f"{m.group(2)}/{m.group(1)} replies" if m else "no summary"
        if rtt:
            got += f", avg rtt {rtt.group(1)} ms"
        return r.returncode == 0, got

    # the demo -------------------------------------------------------------------------
    def run(self) -> int:
        a = self.args
        binary = Path(a.cgnd or ct.cgnd_path())
        if os.geteuid() != 0:
            print("demo.py must run as root (it creates network namespaces)", file=sys.stderr)
            return 2
        if not binary.exists():
            print(f"cgnd not found at {binary}: build it (meson/ninja) or pass --cgnd PATH",
                  file=sys.stderr)
            return 2
        ct.install_signal_handlers()
        log = (lambda m: print(f"  {m}", flush=True))
        try:
            self.section("Topology")
            with ct.Topology(a.prefix, log=log, verbose=a.verbose) as t:
                self.show_topology(t)
                self.section("Starting cgnd")
                c = self.start(t, binary)
                caps = {h: t.spawn(h, t.peer_argv("capture", "--iface", "eth0",
                                                  "--max-seconds", 300))
                        for h in ct.OUTSIDE_HOSTS}
                for p in caps.values():
                    self.read_line(p)
                self.say("capturing on ext1 and ext2 (what the outside sees)")
                self.section("Ping")
                self.pings(t)
                self.section("TCP transfer (1 MiB each way, content checked)")
                tcp = self.tcp(t)
                self.section("UDP exchange")
                udp = self.udp(t)
                self.section("Fragments (a 3000-byte ping: 3 fragments each way)")
                self.fragments(t)
                self.section("PCP: sub1 opens an inbound port (RFC 6887)")
                self.pcp(t, binary)
                self.section("What the outside saw")
                self.outside(t, caps, tcp, udp)
                self.section("cgnd counters (SIGUSR1)")
                self.counters(c.counters())
                if a.hold:
                    self.hold(t)
                self.section("Stopping cgnd (SIGTERM)")
                rc = c.stop(timeout=10)
                self.check(rc == 0, f"cgnd exited with code {rc}")
                final = c.final_counters
                self.check(final is not None, "final counters block printed")
                for line in c.lines:
                    if line.startswith("cgnd: stop"):
                        self.say(line)
                self.section("Cleanup")
        except KeyboardInterrupt as e:
            print(f"\ninterrupted ({str(e) or 'Ctrl-C'}): cgnd stopped, namespaces removed",
                  flush=True)
            return 130
        except (ct.TopologyError, ct.CgndError, RuntimeError) as e:
            print(f"\nERROR: {e}", file=sys.stderr, flush=True)
            return 2
        self.section("Result")
        if self.failures:
            self.say(f"{len(self.failures)} check(s) failed: " + "; ".join(self.failures))
            return 1
        self.say("all checks passed")
        return 0

    def show_topology(self, t):
        for line in (
            "sub1 100.64.0.11 ─┐                                    ┌─ ext1 192.0.2.10",
            "                  ├─ br-in ─ in0 [cgnd] out0 ─ br-out ─┤",
            "sub2 100.64.0.13 ─┘    (sw)          (cgn)             └─ ext2 192.0.2.20",
            "",
            f"namespaces: {t.prefix}-{{sub1,sub2,sw,cgn,ext1,ext2}}",
            f"cgnd: inside {ct.CGN_INSIDE}/10, outside {ct.CGN_OUTSIDE}/24, pool {ct.POOL}",
            f"subscribers route via {ct.CGN_INSIDE}; outside hosts route {ct.POOL} via {ct.CGN_OUTSIDE}",
        ):
            self.say(line)

    def start(self, t, binary):
        extra = []
        for opt in ("timeout_udp", "timeout_icmp"):
            v = getattr(self.args, opt)
            if v is not None:
                extra += ["--" + opt.replace("_", "-"), str(v)]
        self.say("$ " + shlex.join(["cgnd"] + ct.cgnd_argv(binary, filtering=self.args.filtering,
                                                         eal=ct.eal_args(t.prefix), extra=extra,
                                                         pmd=self.args.pmd)[1:]))
        t0 = time.monotonic()
        c = t.start_cgnd(binary=binary, filtering=self.args.filtering, extra=extra,
                         pmd=self.args.pmd)
        for line in c.lines:
            self.say(line)
        self.say(f"(ready after {time.monotonic() - t0:.1f} s)")
        return c

    def pings(self, t):
        for host, dst, what in (("sub1", EXT1, "sub1 -> ext1 (translated)"),
                                ("sub2", EXT1, "sub2 -> ext1 (translated)"),
                                ("sub1", ct.CGN_INSIDE, "sub1 -> cgnd 100.64.0.1")):
            ok, got = self.ping(t, host, dst)
            self.check(ok, f"ping {what}", got)
        r = t.run("sub1", ["ping", "-n", "-c", "1", "-t", "1", "-W", "2", EXT1], check=False)
        m = re.search(r"From (\S+) .*Time to live exceeded", r.stdout)
        self.check(bool(m) and m.group(1) == ct.CGN_INSIDE,
                   "ping -t 1 sub1 -> ext1: time exceeded from cgnd",
                   m.group(0) if m else r.stdout.strip().splitlines()[-1] if r.stdout else "no output")

    def fragments(self, t):
        if self.args.pmd == "net_af_packet":
            self.say("skipped: net_af_packet makes the kernel reassemble fragments before cgnd "
                     "sees them, and a reassembled datagram longer than a frame is dropped")
            self.say("(use --pmd net_af_xdp, with one worker, to see fragments translated)")
            return
        r = t.run("sub1", ["ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", "-s", "3000",
                           "-M", "dont", EXT1], check=False, timeout=30)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", r.stdout)
        self.check(r.returncode == 0 and bool(m) and m.group(1) == m.group(2),
                   "ping -s 3000 sub1 -> ext1: every fragmented echo answered",
                   f"{m.group(2)}/{m.group(1)} replies" if m else "no summary")

    def tcp(self, t):
        sink = t.spawn("ext1", t.peer_argv("tcp-sink", "--port", TCP_PORT, "--conns", 1,
                                           "--reply-bytes", MIB, "--timeout", 20))
        self.read_line(sink)
        self.say(f"ext1: TCP sink on :{TCP_PORT}; sub1 sends 1 MiB of random bytes, ext1 answers "
                 f"with 1 MiB")
        t0 = time.monotonic()
        cl = t.peer("sub1", "tcp-send", "--host", EXT1, "--port", TCP_PORT, "--bytes", MIB,
                    "--timeout", 20, timeout=60, check=False)
        dt = time.monotonic() - t0
        sv = self.read_line(sink, timeout=20)
        if "error" in cl or "error" in sv:
            self.check(False, "TCP transfer", cl.get("error") or sv.get("error"))
            return None
        self.say(f"sub1 connected from {cl['local'][0]}:{cl['local'][1]}")
        self.say(f"ext1 accepted a connection from {sv['peer'][0]}:{sv['peer'][1]}")
        self.check(sv["recv_sha256"] == cl["sent_sha256"] and sv["recv_bytes"] == MIB,
                   "sub1 -> ext1: 1 MiB arrived intact", f"sha256 {cl['sent_sha256'][:16]}...")
        self.check(cl["recv_sha256"] == sv["sent_sha256"] and cl["recv_bytes"] == MIB,
                   "ext1 -> sub1: 1 MiB arrived intact", f"sha256 {sv['sent_sha256'][:16]}...")
        self.check(ct.in_pool(sv["peer"][0]), "ext1 saw a pool address", sv["peer"][0])
        self.say(f"2 MiB in {dt:.2f} s")
        return {"inside": tuple(cl["local"]), "outside": tuple(sv["peer"])}

    def udp(self, t):
        echos = {}
        for h in ct.OUTSIDE_HOSTS:
            echos[h] = t.spawn(h, t.peer_argv("udp-echo", "--port", UDP_PORT, "--idle", 60))
            self.read_line(echos[h])
        self.say(f"ext1 and ext2: UDP echo on :{UDP_PORT} (the echo names the source it saw)")
        result = []
        for sub, bind in (("sub1", 40001), ("sub2", 40002)):
            for h in ct.OUTSIDE_HOSTS:
                dst = ct.HOSTS[h].ip
                r = t.peer(sub, "udp-send", "--host", dst, "--port", UDP_PORT, "--bind-port", bind,
                           "--count", 3, timeout=30, check=False)
                seen = {tuple(x["seen"]) for x in r["replies"]}
                seen_s = ", ".join(f"{a}:{p}" for a, p in seen) or "nothing"
                self.check(r["lost"] == 0 and all(ct.in_pool(a) for a, _ in seen),
                           f"{sub} {ct.HOSTS[sub].ip}:{bind} -> {h} {dst}:{UDP_PORT}: "
                           f"{len(r['replies'])}/3 echoes, {h} saw {seen_s}")
                result.append((sub, bind, h, seen))
        for sub, bind in (("sub1", 40001), ("sub2", 40002)):
            ext = set().union(*(s for su, b, h, s in result if su == sub))
            self.check(len(ext) == 1, f"{sub}:{bind} has one external endpoint for both "
                                      f"destinations (endpoint-independent mapping)",
                       ", ".join(f"{a}:{p}" for a, p in ext))
        return result

    def pcp(self, t, binary):
        """sub1 asks cgnd for an inbound TCP port with cgn-pcp; ext2 connects to the external
        endpoint answered and reaches sub1's listener."""
        cgn_pcp = Path(binary).resolve().parents[1] / "control" / "pcp" / "cgn-pcp"
        argv = [str(cgn_pcp), "--server", ct.CGN_INSIDE, "--internal-port", str(PCP_PORT),
                "--lifetime", "600", "--description", "demo", "--json", "map"]
        self.say("sub1$ " + shlex.join(["cgn-pcp"] + argv[1:]))
        r = t.run("sub1", argv, check=False, timeout=30)
        lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
        answer = json.loads(lines[-1]) if lines else {}
        for line in lines:
            self.say(line)
        if not self.check(r.returncode == 0 and answer.get("result") == "SUCCESS",
                          "cgnd granted the mapping", (r.stderr or "").strip()[-200:]):
            return
        ext, port = answer["external"]
        self.check(ct.in_pool(ext), f"external endpoint {ext}:{port} is in the pool")
        sink = t.spawn("sub1", t.peer_argv("tcp-sink", "--port", PCP_PORT, "--conns", 1,
                                           "--reply-bytes", 4096, "--timeout", 20))
        self.read_line(sink)
        self.say(f"sub1: listening on :{PCP_PORT}; ext2 connects to {ext}:{port}")
        cl = t.peer("ext2", "tcp-send", "--host", ext, "--port", port, "--bytes", 4096,
                    "--timeout", 20, timeout=60, check=False)
        sv = self.read_line(sink, timeout=20)
        ok = "error" not in cl and "error" not in sv and sv.get("recv_bytes") == 4096
        self.check(ok, "ext2 reached sub1's listener through the PCP mapping",
                   cl.get("error") or sv.get("error") or f"sub1 saw {sv['peer'][0]}:{sv['peer'][1]}")

    def outside(self, t, caps, tcp, udp):
        for h, p in caps.items():
            p.stdin.write("stop\n")
            p.stdin.flush()
            st = self.read_line(p, timeout=10)
            self.say(f"{h} ({ct.HOSTS[h].ip}) received {st['frames']} frames; IPv4 sources:")
            for addr, n in sorted(st["ipv4_src"].items(), key=lambda kv: -kv[1]):
                tag = ("pool" if ct.in_pool(addr) else "cgnd" if addr == ct.CGN_OUTSIDE
                       else "SUBSCRIBER ADDRESS!" if ct.is_inside(addr) else "other")
                self.say(f"    {addr:<15} {n:>6} packets  [{tag}]")
            self.say(f"  flows arriving at {h}:")
            flows = sorted(st["flows"].items(), key=lambda kv: -kv[1])
            for f, n in flows[:12]:
                self.say(f"    {f:<58} {n:>6} pkts")
            if len(flows) > 12:
                self.say(f"    ... and {len(flows) - 12} more")
            leaked = [a for key in ("ipv4_src", "icmp_inner_src", "icmp_inner_dst", "arp_sender")
                      for a in st[key] if ct.is_inside(a)]
            self.check(not leaked, f"{h} never saw a 100.64.0.0/10 address",
                       ", ".join(leaked) if leaked else "")
        self.say("translations (inside endpoint -> what the outside saw):")
        if tcp:
            self.say(f"    tcp {tcp['inside'][0]}:{tcp['inside'][1]:<6} -> "
                     f"{tcp['outside'][0]}:{tcp['outside'][1]}")
        for sub, bind, h, seen in udp:
            for a, p in seen:
                self.say(f"    udp {ct.HOSTS[sub].ip}:{bind:<6} -> {a}:{p}   (seen by {h})")

    def counters(self, cnt):
        nonzero = {k: v for k, v in cnt.items() if v}
        width = max((len(k) for k in nonzero), default=10)
        for k, v in nonzero.items():
            self.say(f"    {k:<{width}} {v}")
        self.say(f"({len(cnt) - len(nonzero)} other counters are zero)")
        self.check(cnt.get("in2out_translated", 0) > 0 and cnt.get("out2in_translated", 0) > 0,
                   "cgnd translated packets both ways")

    def hold(self, t):
        self.section("Holding (explore, then press Enter)")
        for h in ("sub1", "sub2", "ext1", "ext2", "cgn"):
            self.say(f"ip netns exec {t.ns(h)} bash")
        self.say("e.g. ip netns exec " + t.ns("sub1") + " ping 192.0.2.20")
        try:
            input("  press Enter to stop cgnd and remove everything ")
        except EOFError:
            pass
        except KeyboardInterrupt:
            print(flush=True)
            raise


def main() -> int:
    ap = argparse.ArgumentParser(description="cgn demo in network namespaces (run as root)")
    ap.add_argument("--cgnd", help=f"cgnd binary (default $CGND or {ct.DEFAULT_CGND})")
    ap.add_argument("--filtering", choices=["endpoint-independent", "address-dependent",
                                            "address-and-port-dependent"])
    ap.add_argument("--workers", type=int, choices=range(1, ct.PORT_QUEUES + 1),
                    help="worker lcores cgnd runs (default 1, or $CGN_WORKERS); they share "
                         "this machine's CPUs")
    ap.add_argument("--pmd", choices=ct.PMDS,
                    help="DPDK driver attaching cgnd to the veths (default net_af_xdp with "
                         "one worker, net_af_packet with several: AF_XDP on a veth serves one "
                         "queue). net_af_packet makes the kernel reassemble IPv4 fragments "
                         "before cgnd sees them, so a fragmented datagram larger than a frame "
                         "cannot cross it")
    ap.add_argument("--timeout-udp", type=int)
    ap.add_argument("--timeout-icmp", type=int)
    ap.add_argument("--prefix", help="namespace name prefix (default cgndemo<pid>)")
    ap.add_argument("--hold", action="store_true",
                    help="keep everything running after the traffic until Enter")
    ap.add_argument("--verbose", "-v", action="store_true", help="show every command")
    args = ap.parse_args()
    if args.workers:
        os.environ["CGN_WORKERS"] = str(args.workers)  # read by cgn_topology.cgnd_argv
    if args.pmd is None:
        args.pmd = "net_af_xdp" if ct.default_workers() == 1 else "net_af_packet"
    if args.pmd == "net_af_xdp" and ct.default_workers() > 1:
        ap.error("net_af_xdp on a veth has one queue: use one worker with it")
    if not args.prefix:
        args.prefix = f"cgndemo{os.getpid()}"
    return Demo(args).run()


if __name__ == "__main__":
    sys.exit(main())
