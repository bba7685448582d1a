#!/usr/bin/python3
"""fragtool: send one UDP datagram or one ICMP echo request as hand-built IPv4 fragments.

Runs inside a network namespace (stdlib only, needs root for the raw sockets). Every
fragment is built here, IP header included, and sent through a raw socket
(AF_INET, SOCK_RAW, IPPROTO_RAW: IP_HDRINCL). The kernel sends such packets as they are:
it never fragments them again (each fragment is kept under the MTU), it only fills in the
total length and the header checksum, which are computed here anyway.

The payload is a verifiable ASCII pattern derived from a seed: "FT:<seed>:<size>:" followed
by hex digits of sha256("<seed>:<block>") for block 0, 1, ... (cut to the size), so whoever
receives it can check it byte for byte without knowing the seed (``verify()``; also
importable from the tests).

Modes (each prints JSON lines on stdout):

  udp   --dst A --dport P [--src A] [--sport P] [fragment options] [--expect-reply]
        One UDP datagram (checksum over the pseudo-header and the whole datagram) as
        fragments. Without --sport a UDP socket is bound to an ephemeral port on the source
        address and that port is used (it also receives a reply: --expect-reply).
  icmp  --dst A [--src A] [--ident N] [--seq N] [fragment options] [--expect-reply]
        One ICMP echo request as fragments. --expect-reply waits on a raw ICMP socket for
        the matching echo reply (the receiving kernel reassembles it) and checks that it
        carries the request's payload intact.
  recv  --port P [--bind A] [--count N] [--timeout T] [--hello HOST:PORT] [--reply-size N]
        A plain UDP socket: optionally sends "hello" to HOST:PORT first (opening a NAT
        mapping), then prints one line per datagram received with its verification, and
        answers each with a pattern datagram of --reply-size bytes when asked (the kernel
        fragments that one as usual).

Fragment options:
  --size N          payload bytes (UDP data or ICMP echo data), default 3000
  --frag-size N     IP payload bytes per fragment, a multiple of 8 (the last one may be
                    shorter), default 1000; at most 1480 for an MTU of 1500
  --order O         in-order | reverse | first-last (the first fragment is sent last, the
                    others in order) | shuffle (a permutation drawn with --seed, never the
                    in-order one)
  --seed N          seeds the payload pattern and the shuffle (default 1)
  --id N            IP identification (default: random, non-zero)
  --duplicate K     send fragment K (0 = the first, by offset) twice, the copy right after it
  --skip-first      leave out the first fragment (the one with the L4 header)
  --datagrams N     send N datagrams, IP IDs id, id+1, ... (seeds seed, seed+1, ...)
  --gap S           seconds to wait between packets (default 0)
  --bad-checksum    send a wrong UDP/ICMP checksum (receivers must drop the datagram)
  --ttl N           IP TTL (default 64)

Examples (run in a namespace, e.g. ``ip netns exec NS fragtool.py ...``):
  fragtool.py udp --dst 192.0.2.10 --dport 7000 --size 4000 --frag-size 512 --order reverse
  fragtool.py icmp --dst 192.0.2.10 --size 3000 --order shuffle --seed 7 --expect-reply
  fragtool.py recv --port 7000 --count 1 --timeout 10
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import select
import socket
import struct
import sys
import time

IPPROTO_ICMP = 1
IPPROTO_UDP = 17
ICMP_ECHO_REPLY = 0
ICMP_ECHO_REQUEST = 8
IP_HEADER_LEN = 20
UDP_HEADER_LEN = 8
ICMP_HEADER_LEN = 8
MF = 0x2000
ORDERS = ("in-order", "reverse", "first-last", "shuffle")


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


# ---- payload pattern ------------------------------------------------------------------------

_HEADER_RE = re.compile(rb"FT:(\d{1,10}):(\d{1,6}):")


def pattern(seed: int, size: int) -> bytes:
    """size ASCII bytes: a header naming seed and size, then hex digits derived from seed."""
    head = f"FT:{seed}:{size}:".encode()
    out = bytearray(head)
    block = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{block}".encode()).hexdigest().encode()
        block += 1
    return bytes(out[:size])


def verify(data: bytes) -> dict:
    """Checks a received payload against the pattern its header names.

    Returns {"ok", "len", "seed", "size", "first_bad"} (first_bad: offset of the first
    wrong byte, or of the end when the payload is short; None when intact)."""
    res = {"ok": False, "len": len(data), "seed": None, "size": None, "first_bad": 0}
    m = _HEADER_RE.match(data)
    if not m:
        res["error"] = "no pattern header"
        return res
    seed, size = int(m.group(1)), int(m.group(2))
    res.update(seed=seed, size=size)
    want = pattern(seed, size)
    n = min(len(data), len(want))
    bad = next((i for i in range(n) if data[i] != want[i]), None)
    if bad is None and len(data) != len(want):
        bad = n
        res["error"] = f"length {len(data)}, expected {size}"
    elif bad is not None:
        res["error"] = f"byte {bad} differs"
    res["first_bad"] = bad
    res["ok"] = bad is None
    return res


# ---- checksums and headers -------------------------------------------------------------------

def inet_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_datagram(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    length = UDP_HEADER_LEN + len(payload)
    if length > 0xFFFF - IP_HEADER_LEN:
        raise ValueError(f"UDP datagram too large: {length} bytes")
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, IPPROTO_UDP,
                                                                         length)
    header = struct.pack("!HHHH", sport, dport, length, 0)
    csum = inet_checksum(pseudo + header + payload)
    if csum == 0:
        csum = 0xFFFF  # zero means "no checksum" for UDP
    return struct.pack("!HHHH", sport, dport, length, csum) + payload


def icmp_echo(ident: int, seq: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    csum = inet_checksum(header + payload)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, csum, ident, seq) + payload


def ip_header(src: str, dst: str, proto: int, ident: int, frag: int, payload_len: int,
              ttl: int) -> bytes:
    total = IP_HEADER_LEN + payload_len
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, frag, ttl, proto, 0,
                    socket.inet_aton(src), socket.inet_aton(dst))
    return h[:10] + struct.pack("!H", inet_checksum(h)) + h[12:]


def fragments(l4: bytes, frag_size: int):
    """[(offset, chunk, more_fragments)] covering l4, in offset order."""
    if frag_size <= 0 or frag_size % 8:
        raise ValueError(f"--frag-size must be a positive multiple of 8, not {frag_size}")
    out = []
    for off in range(0, len(l4), frag_size):
        chunk = l4[off:off + frag_size]
        out.append((off, chunk, off + frag_size < len(l4)))
    return out


def send_order(n: int, order: str, seed: int) -> list[int]:
    idx = list(range(n))
    if order == "in-order":
        return idx
    if order == "reverse":
        return idx[::-1]
    if order == "first-last":
        return idx[1:] + idx[:1]
    if order == "shuffle":
        rng = random.Random(seed)
        rng.shuffle(idx)
        if n > 1 and idx == sorted(idx):
            idx = idx[1:] + idx[:1]  # never the in-order permutation
        return idx
    raise ValueError(f"unknown order {order!r}")


def source_for(dst: str) -> str:
    """The address this namespace's routing would use towards dst."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((dst, 9))
        return s.getsockname()[0]
    finally:
        s.close()


# ---- sending ---------------------------------------------------------------------------------

def send_fragmented(raw, a, src: str, proto: int, ident: int, l4: bytes, seed: int,
                    pace: dict) -> dict:
    frags = fragments(l4, a.frag_size)
    order = send_order(len(frags), a.order, seed)
    if a.skip_first:
        order = [i for i in order if i != 0]
    plan = []
    for i in order:
        plan.append(i)
        if a.duplicate is not None and i == a.duplicate:
            plan.append(i)
    sent = []
    for i in plan:
        off, chunk, more = frags[i]
        flags = (MF if more else 0) | (off // 8)
        pkt = ip_header(src, a.dst, proto, ident, flags, len(chunk), a.ttl) + chunk
        if a.gap and pace["packets"]:
            time.sleep(a.gap)
        raw.sendto(pkt, (a.dst, 0))
        pace["packets"] += 1
        sent.append([off, len(chunk), int(more)])
    return {"id": ident, "fragments": len(frags), "sent": sent}


def raw_sender():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)  # implied by IPPROTO_RAW
    return s


def nth_id(first: int, n: int) -> int:
    """IP IDs first, first+1, ... wrapping from 65535 to 1 (0 would be replaced by the kernel)."""
    return (first - 1 + n) % 0xFFFF + 1


def first_id(a) -> int:
    if a.id is not None:
        if not 1 <= a.id <= 0xFFFF:
            raise ValueError("--id must be 1..65535 (the kernel replaces 0)")
        return a.id
    return random.SystemRandom().randrange(1, 0x10000)


def check_sizes(a) -> None:
    if a.frag_size > 1480:
        raise ValueError("--frag-size above 1480 would not fit a 1500-byte MTU")
    if a.size < 0:
        raise ValueError("--size must be >= 0")


def cmd_udp(a) -> int:
    check_sizes(a)
    src = a.src or source_for(a.dst)
    sock = None
    sport = a.sport
    if a.sport == 0 or a.expect_reply:
        # Own the source port (and receive the reply) with a plain UDP socket.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((src, a.sport))
        except OSError as e:
            emit({"error": f"cannot bind {src}:{a.sport}: {e}"})
            return 2
        sport = sock.getsockname()[1]
    raw = raw_sender()
    ident = first_id(a)
    results = []
    pace = {"packets": 0}
    t0 = time.monotonic()
    for n in range(a.datagrams):
        seed = a.seed + n
        payload = pattern(seed, a.size)
        l4 = udp_datagram(src, a.dst, sport, a.dport, payload)
        if a.bad_checksum:
            l4 = l4[:6] + struct.pack("!H", struct.unpack("!H", l4[6:8])[0] ^ 0x0101) + l4[8:]
        r = send_fragmented(raw, a, src, IPPROTO_UDP, nth_id(ident, n), l4, seed, pace)
        r["seed"] = seed
        r["sha256"] = hashlib.sha256(payload).hexdigest()
        results.append(r)
    out = {"mode": "udp", "src": src, "dst": a.dst, "sport": sport, "dport": a.dport,
           "size": a.size, "order": a.order, "datagrams": a.datagrams,
           "seconds": round(time.monotonic() - t0, 3)}
    if a.datagrams == 1:
        out.update(results[0])
    else:
        out["packets"] = sum(len(r["sent"]) for r in results)
        out["first_id"], out["last_id"] = results[0]["id"], results[-1]["id"]
    if a.expect_reply:
        sock.settimeout(a.timeout)
        try:
            data, frm = sock.recvfrom(65535)
            out["reply"] = {"from": list(frm), "verify": verify(data)}
        except socket.timeout:
            out["reply"] = None
    emit(out)
    return 0 if not a.expect_reply or out["reply"] else 1


def cmd_icmp(a) -> int:
    check_sizes(a)
    src = a.src or source_for(a.dst)
    ident = a.ident if a.ident is not None else random.SystemRandom().randrange(1, 0x10000)
    rx = None
    if a.expect_reply:
        rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    raw = raw_sender()
    ip_id = first_id(a)
    out = {"mode": "icmp", "src": src, "dst": a.dst, "ident": ident, "size": a.size,
           "order": a.order, "tries": 0}
    pace = {"packets": 0}
    for attempt in range(max(1, a.tries if a.expect_reply else 1)):
        out["tries"] = attempt + 1
        payloads = {}
        for n in range(a.datagrams):
            seq = (a.seq + n) & 0xFFFF
            seed = a.seed + n
            payload = pattern(seed, a.size)
            payloads[seq] = payload
            l4 = icmp_echo(ident, seq, payload)
            if a.bad_checksum:
                l4 = l4[:2] + struct.pack("!H", struct.unpack("!H", l4[2:4])[0] ^ 0x0101) + l4[4:]
            r = send_fragmented(raw, a, src, IPPROTO_ICMP,
                                nth_id(ip_id, attempt * a.datagrams + n), l4, seed, pace)
            if a.datagrams == 1:
                out.update(r, seq=seq, seed=seed)
        if not a.expect_reply:
            break
        reply = wait_echo_reply(rx, a.dst, ident, payloads, a.timeout)
        out["reply"] = reply
        if reply:
            break
    emit(out)
    return 0 if not a.expect_reply or out.get("reply") else 1


def wait_echo_reply(rx, dst: str, ident: int, payloads: dict, timeout: float):
    """The echo reply from dst with our identifier (reassembled by the kernel), or None."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        r, _, _ = select.select([rx], [], [], left)
        if not r:
            return None
        pkt, _ = rx.recvfrom(65535)
        ihl = (pkt[0] & 0x0F) * 4
        if len(pkt) < ihl + ICMP_HEADER_LEN:
            continue
        frm = socket.inet_ntoa(pkt[12:16])
        icmp = pkt[ihl:]
        typ, code, _, rid, rseq = struct.unpack("!BBHHH", icmp[:8])
        if frm != dst or typ != ICMP_ECHO_REPLY or rid != ident or rseq not in payloads:
            continue
        data = icmp[8:]
        return {"from": frm, "seq": rseq, "len": len(data),
                "icmp_checksum_ok": inet_checksum(icmp) == 0,
                "intact": data == payloads[rseq], "verify": verify(data)}


def cmd_recv(a) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.bind((a.bind, a.port))
    if a.hello:
        host, port = a.hello.rsplit(":", 1)
        for i in range(a.hello_count):
            if i:
                time.sleep(0.2)
            s.sendto(b"hello", (host, int(port)))
    emit({"ready": True, "local": list(s.getsockname())})
    got = 0
    deadline = time.monotonic() + a.timeout
    while a.count == 0 or got < a.count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([s], [], [], left)
        if not r:
            break
        data, frm = s.recvfrom(65535)
        got += 1
        rec = {"from": list(frm), "len": len(data), "verify": verify(data),
               "sha256": hashlib.sha256(data).hexdigest()}
        if a.reply_size:
            seed = a.reply_seed + got - 1
            s.sendto(pattern(seed, a.reply_size), frm)
            rec["replied"] = {"seed": seed, "size": a.reply_size}
        emit(rec)
    emit({"done": True, "received": got})
    return 0 if (a.count == 0 or got >= a.count) else 1


# ---- command line ----------------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    doc = __doc__.split("\n\n")
    ap = argparse.ArgumentParser(
        prog="fragtool.py", description=doc[0],
        epilog="\n\n".join(doc[1:]), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True, metavar="{udp,icmp,recv}")

    def frag_opts(p):
        p.add_argument("--dst", required=True, help="destination address")
        p.add_argument("--src", default=None,
                       help="source address (default, and what it should be: this "
                            "namespace's own address towards --dst; replies to any other "
                            "address cannot come back here)")
        p.add_argument("--size", type=int, default=3000, help="payload bytes (default 3000)")
        p.add_argument("--frag-size", type=int, default=1000,
                       help="IP payload bytes per fragment, multiple of 8 (default 1000)")
        p.add_argument("--order", choices=ORDERS, default="in-order",
                       help="order the fragments are sent in (default in-order)")
        p.add_argument("--seed", type=int, default=1,
                       help="seeds the payload pattern and the shuffle (default 1)")
        p.add_argument("--id", type=int, default=None, help="IP ID (default random)")
        p.add_argument("--duplicate", type=int, default=None, metavar="K",
                       help="send fragment K (by offset, 0 = first) twice")
        p.add_argument("--skip-first", action="store_true",
                       help="never send the first fragment")
        p.add_argument("--datagrams", type=int, default=1,
                       help="datagrams to send, consecutive IP IDs and seeds (default 1)")
        p.add_argument("--gap", type=float, default=0.0,
                       help="seconds to wait before each packet after the first")
        p.add_argument("--bad-checksum", action="store_true",
                       help="spoil the UDP/ICMP checksum (to show that receivers check it)")
        p.add_argument("--ttl", type=int, default=64)
        p.add_argument("--expect-reply", action="store_true",
                       help="wait for the answer and report it (exit 1 without one)")
        p.add_argument("--timeout", type=float, default=3.0,
                       help="seconds to wait for the answer (default 3)")

    p = sub.add_parser("udp", help="one UDP datagram as fragments")
    frag_opts(p)
    p.add_argument("--dport", type=int, required=True)
    p.add_argument("--sport", type=int, default=0,
                   help="source port (default: an ephemeral port bound here)")
    p.set_defaults(func=cmd_udp)

    p = sub.add_parser("icmp", help="one ICMP echo request as fragments")
    frag_opts(p)
    p.add_argument("--ident", type=int, default=None, help="echo identifier (default random)")
    p.add_argument("--seq", type=int, default=1, help="echo sequence number (default 1)")
    p.add_argument("--tries", type=int, default=1,
                   help="with --expect-reply: send again (new IP ID) up to this often")
    p.set_defaults(func=cmd_icmp)

    p = sub.add_parser("recv", help="receive (and check) datagrams on a UDP socket")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bind", default="0.0.0.0")
    p.add_argument("--count", type=int, default=1, help="datagrams to wait for (0: any)")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--hello", default=None, metavar="HOST:PORT",
                   help="send 'hello' there first (opens a NAT mapping)")
    p.add_argument("--hello-count", type=int, default=1)
    p.add_argument("--reply-size", type=int, default=0,
                   help="answer each datagram with a pattern datagram of this size")
    p.add_argument("--reply-seed", type=int, default=1000)
    p.set_defaults(func=cmd_recv)
    return ap


def main(argv=None) -> int:
    a = parser().parse_args(argv)
    try:
        return a.func(a)
    except ValueError as e:
        emit({"error": str(e)})
        return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
