#!/usr/bin/python3
"""Traffic helper run inside the test namespaces (stdlib only). Every mode prints JSON lines.

  tcp-sink  --port P [--conns N] [--reply-bytes M] [--timeout T]
        Accept N connections. Each: read an 8-byte big-endian length L and L bytes (hashed),
        answer with an 8-byte length M and M random bytes, then wait for EOF. Prints one line
        per connection: {"peer": [ip, port], "recv_bytes", "recv_sha256", "sent_bytes",
        "sent_sha256"}. Prints {"listening": [ip, port]} first.
  tcp-send  --host H --port P --bytes N [--timeout T]
        The client side: sends N random bytes, reads the reply. Prints {"local", "remote",
        "sent_bytes", "sent_sha256", "recv_bytes", "recv_sha256"}.
  udp-echo  --port P [--idle T]
        Answers every datagram with JSON {"seen": [ip, port], "data": <payload>} and prints the
        same line. Exits after T seconds without traffic (default 60).
  udp-send  --host H --port P [--bind-port B] [--count N] [--timeout T] [--tries K]
        Sends N datagrams to an udp-echo, each retried up to K times until its echo arrives.
        Prints {"local", "replies": [{"seq", "seen"}], "lost"}.
  udp-agent --port P [--bind A]
        A UDP socket controlled through stdin JSON lines: {"op": "send", "host", "port",
        "data"} and {"op": "recv", "timeout", "max"} -> {"ok": true, "packets": [{"from",
        "data"}]}. Prints {"ok": true, "local": [ip, port]} when bound.
  udp-probe --host H --port P [--timeout T] [--tries K] [--recverr]
        Sends from a connected UDP socket and reports what came back: {"result": "reply" |
        "refused" (an ICMP port unreachable reached the socket) | "timeout" | another errno
        name the socket reported, "local"}. Linux reports only "hard" ICMP errors (RFC 1122
        §4.2.3.9) to a UDP socket; --recverr sets IP_RECVERR so that soft ones, e.g. host
        unreachable (code 1), come back too, as "EHOSTUNREACH".
  tcp-connect --host H --port P [--timeout T]
        One TCP connect: {"result": "connected" | "timeout" | the errno name, e.g.
        "ECONNREFUSED" or "EHOSTUNREACH", "elapsed": seconds, "local"}.
  capture   --iface IF [--max-seconds T]
        AF_PACKET capture of frames arriving on IF (not the ones sent by this host) until
        stdin closes or a line "stop" arrives. Prints {"ready": true} when the socket is bound,
        then one summary: {"frames", "ipv4_src": {addr: n}, "ipv4_dst", "arp_sender",
        "icmp_inner_src", "icmp_inner_dst", "l4_src": {"proto addr:port": n},
        "flows": {"proto src:port > dst:port": n}, "other_ethertypes"}.
"""

import argparse
import errno
import hashlib
import json
import os
import select
import socket
import struct
import sys
import threading
import time


def emit(obj) -> None:
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def recv_exact(sock, n, h=None) -> int:
    got = 0
    while got < n:
        chunk = sock.recv(min(65536, n - got))
        if not chunk:
            break
        got += len(chunk)
        if h is not None:
            h.update(chunk)
    return got


def recv_len(sock) -> int:
    buf = b""
    while len(buf) < 8:
        chunk = sock.recv(8 - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} header bytes")
        buf += chunk
    return struct.unpack("!Q", buf)[0]


def send_random(sock, n) -> str:
    h = hashlib.sha256()
    sock.sendall(struct.pack("!Q", n))
    left = n
    while left:
        chunk = os.urandom(min(65536, left))
        h.update(chunk)
        sock.sendall(chunk)
        left -= len(chunk)
    return h.hexdigest()


# ---- TCP ---------------------------------------------------------------------------------

def tcp_sink(a) -> int:
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", a.port))
    srv.listen(16)
    srv.settimeout(a.timeout)
    emit({"listening": list(srv.getsockname())})
    lock = threading.Lock()

    def serve(conn, peer):
        conn.settimeout(a.timeout)
        rec = {"peer": list(peer)}
        try:
            n = recv_len(conn)
            h = hashlib.sha256()
            got = recv_exact(conn, n, h)
            rec.update(expected_bytes=n, recv_bytes=got, recv_sha256=h.hexdigest())
            if got == n:
                rec.update(sent_bytes=a.reply_bytes, sent_sha256=send_random(conn, a.reply_bytes))
                conn.shutdown(socket.SHUT_WR)
                recv_exact(conn, 1 << 20)  # until the client closes
        except (OSError, ConnectionError) as e:
            rec["error"] = f"{type(e).__name__}: {e}"
        finally:
            conn.close()
        with lock:
            emit(rec)

    threads = []
    try:
        for _ in range(a.conns):
            conn, peer = srv.accept()
            t = threading.Thread(target=serve, args=(conn, peer))
            t.start()
            threads.append(t)
    except socket.timeout:
        emit({"error": f"accept timed out after {a.timeout}s"})
    for t in threads:
        t.join()
    return 0


def tcp_send(a) -> int:
    rec = {"remote": [a.host, a.port]}
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.timeout)
        s.settimeout(a.timeout)
        rec["local"] = list(s.getsockname())
        rec.update(sent_bytes=a.bytes, sent_sha256=send_random(s, a.bytes))
        n = recv_len(s)
        h = hashlib.sha256()
        got = recv_exact(s, n, h)
        rec.update(expected_bytes=n, recv_bytes=got, recv_sha256=h.hexdigest())
        s.close()
    except (OSError, ConnectionError) as e:
        rec["error"] = f"{type(e).__name__}: {e}"
        emit(rec)
        return 1
    emit(rec)
    return 0


# ---- UDP ---------------------------------------------------------------------------------

def udp_echo(a) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", a.port))
    s.settimeout(a.idle)
    emit({"listening": list(s.getsockname())})
    while True:
        try:
            data, peer = s.recvfrom(65535)
        except socket.timeout:
            return 0
        rec = {"seen": list(peer), "data": data.decode("utf-8", "replace")}
        s.sendto(json.dumps(rec).encode(), peer)
        emit(rec)


def udp_send(a) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", a.bind_port))
    s.settimeout(a.timeout)
    replies, lost = [], 0
    nonce = os.urandom(4).hex()
    for seq in range(a.count):
        payload = f"{nonce}:{seq}"
        for _ in range(a.tries):
            s.sendto(payload.encode(), (a.host, a.port))
            deadline = time.monotonic() + a.timeout
            rep = None
            while time.monotonic() < deadline:
                try:
                    s.settimeout(max(0.01, deadline - time.monotonic()))
                    data, frm = s.recvfrom(65535)
                except socket.timeout:
                    break
                try:
                    obj = json.loads(data)
                except ValueError:
                    continue
                if obj.get("data") == payload and list(frm) == [a.host, a.port]:
                    rep = obj
                    break
            if rep:
                replies.append({"seq": seq, "seen": rep["seen"]})
                break
        else:
            lost += 1
    emit({"local": list(s.getsockname()), "replies": replies, "lost": lost})
    return 0 if lost == 0 else 1


def udp_agent(a) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((a.bind, a.port))
    except OSError as e:
        emit({"ok": False, "error": str(e)})
        return 1
    emit({"ok": True, "local": list(s.getsockname())})
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "send":
                s.sendto(cmd["data"].encode(), (cmd["host"], int(cmd["port"])))
                emit({"ok": True})
            elif op == "recv":
                deadline = time.monotonic() + float(cmd.get("timeout", 1.0))
                limit = int(cmd.get("max", 0))
                packets = []
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0 or (limit and len(packets) >= limit):
                        break
                    r, _, _ = select.select([s], [], [], left)
                    if not r:
                        break
                    data, frm = s.recvfrom(65535)
                    packets.append({"from": list(frm), "data": data.decode("utf-8", "replace")})
                emit({"ok": True, "packets": packets})
            elif op == "quit":
                emit({"ok": True})
                return 0
            else:
                emit({"ok": False, "error": f"unknown op {op}"})
        except Exception as e:  # report, keep serving
            emit({"ok": False, "error": f"{type(e).__name__}: {e}"})
    return 0


# <linux/in.h>; the socket module does not export it.
IP_RECVERR = 11


def udp_probe(a) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if a.recverr:
        s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    s.connect((a.host, a.port))
    s.settimeout(a.timeout)
    result = "timeout"
    for _ in range(a.tries):
        try:
            s.send(b"probe")
            s.recv(65535)
            result = "reply"
        except ConnectionRefusedError:
            result = "refused"
        except socket.timeout:
            continue
        except OSError as e:  # e.g. EHOSTUNREACH: an ICMP host unreachable about our datagram
            result = errno.errorcode.get(e.errno, str(e.errno))
        break
    emit({"result": result, "local": list(s.getsockname()), "remote": [a.host, a.port]})
    return 0


def tcp_connect(a) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(a.timeout)
    start = time.monotonic()
    try:
        s.connect((a.host, a.port))
        result = "connected"
    except socket.timeout:
        result = "timeout"
    except OSError as e:
        result = errno.errorcode.get(e.errno, str(e.errno))
    elapsed = time.monotonic() - start
    emit({"result": result, "elapsed": round(elapsed, 3), "local": list(s.getsockname()),
          "remote": [a.host, a.port]})
    s.close()
    return 0


# ---- capture -----------------------------------------------------------------------------

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def ip4(b) -> str:
    return socket.inet_ntoa(b)


def bump(d, k) -> None:
    d[k] = d.get(k, 0) + 1


def capture(a) -> int:
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((a.iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    stats = {"frames": 0, "ipv4_src": {}, "ipv4_dst": {}, "arp_sender": {},
             "icmp_inner_src": {}, "icmp_inner_dst": {}, "l4_src": {}, "flows": {},
             "other_ethertypes": {}}
    emit({"ready": True})
    stdin = sys.stdin.fileno()
    end = time.monotonic() + a.max_seconds
    stop = False
    while not stop and time.monotonic() < end:
        r, _, _ = select.select([s, stdin], [], [], 0.5)
        if stdin in r:
            line = sys.stdin.readline()
            if not line or line.strip() == "stop":
                stop = True  # drain what is queued, then report
        if s in r or stop:
            while True:
                try:
                    frame, addr = s.recvfrom(65535, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                stats["frames"] += 1
                parse_frame(frame, stats)
    emit(stats)
    return 0


def parse_frame(frame, st) -> None:
    if len(frame) < 14:
        return
    et = struct.unpack("!H", frame[12:14])[0]
    p = frame[14:]
    if et == 0x8100 and len(p) >= 4:
        et = struct.unpack("!H", p[2:4])[0]
        p = p[4:]
    if et == 0x0806:
        if len(p) >= 28:
            bump(st["arp_sender"], ip4(p[14:18]))
        return
    if et != 0x0800:
        bump(st["other_ethertypes"], hex(et))
        return
    if len(p) < 20:
        return
    ihl = (p[0] & 0x0F) * 4
    proto = p[9]
    src, dst = ip4(p[12:16]), ip4(p[16:20])
    bump(st["ipv4_src"], src)
    bump(st["ipv4_dst"], dst)
    l4 = p[ihl:]
    name = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp"}.get(proto, f"ip proto {proto}")
    offset = (struct.unpack("!H", p[6:8])[0] & 0x1FFF) * 8
    if offset:
        # A later fragment: what follows the IP header is data, not a transport header.
        bump(st["flows"], f"{name} {src} > {dst} later fragments")
        return
    if proto not in (1, 6, 17):
        bump(st["flows"], f"{name} {src} > {dst}")
    elif proto in (6, 17) and len(l4) >= 4:
        sport, dport = struct.unpack("!HH", l4[0:4])
        bump(st["l4_src"], f"{name} {src}:{sport}")
        bump(st["flows"], f"{name} {src}:{sport} > {dst}:{dport}")
    elif proto == 1 and len(l4) >= 8 + 20 and l4[0] in (3, 4, 5, 11, 12):
        inner = l4[8:]
        bump(st["icmp_inner_src"], ip4(inner[12:16]))
        bump(st["icmp_inner_dst"], ip4(inner[16:20]))
        bump(st["flows"], f"icmp {src} > {dst} type {l4[0]} code {l4[1]} "
                          f"(about {ip4(inner[12:16])} > {ip4(inner[16:20])})")
    elif proto == 1 and len(l4) >= 8:
        bump(st["l4_src"], f"icmp {src} type {l4[0]}")
        kind = {0: "echo-reply", 8: "echo-request"}.get(l4[0], f"type {l4[0]}")
        ident = struct.unpack("!H", l4[4:6])[0]
        bump(st["flows"], f"icmp {src} > {dst} {kind} id {ident}")


def main() -> int:
    ap = argparse.ArgumentParser(description="cgn e2e traffic helper")
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("tcp-sink")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--reply-bytes", type=int, default=0)
    p.add_argument("--timeout", type=float, default=20.0)
    p = sub.add_parser("tcp-send")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--timeout", type=float, default=20.0)
    p = sub.add_parser("udp-echo")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--idle", type=float, default=60.0)
    p = sub.add_parser("udp-send")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--bind-port", type=int, default=0)
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--tries", type=int, default=3)
    p = sub.add_parser("udp-agent")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--bind", default="0.0.0.0")
    p = sub.add_parser("udp-probe")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=1.0)
    p.add_argument("--tries", type=int, default=2)
    p.add_argument("--recverr", action="store_true")
    p = sub.add_parser("tcp-connect")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=5.0)
    p = sub.add_parser("capture")
    p.add_argument("--iface", required=True)
    p.add_argument("--max-seconds", type=float, default=120.0)
    a = ap.parse_args()
    return {"tcp-sink": tcp_sink, "tcp-send": tcp_send, "udp-echo": udp_echo,
            "udp-send": udp_send, "udp-agent": udp_agent, "udp-probe": udp_probe,
            "tcp-connect": tcp_connect, "capture": capture}[a.mode](a)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
