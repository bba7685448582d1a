"""PCP PORT_SET (RFC 7753) through cgnd: a subscriber maps a set of consecutive UDP ports with
one MAP request, and a host outside reaches each internal port of the set through its external
port.

The request is built here byte by byte (RFC 6887 §7.1 header, §11.1 MAP data, then the
PORT_SET option of RFC 7753 §4: size, first internal port, P bit), sent from sub1 from port
5350 to cgnd's inside address, port 5351; the answer is read the same way. The internal ports
listen with UDP agents on sub1; ext1 sends one datagram to each external port.
"""

import json

import cgn_topology as ct
from conftest import assert_pool
from test_live import control

EXT1 = ct.HOSTS["ext1"].ip
SUB1 = ct.HOSTS["sub1"].ip

# One MAP request with PORT_SET, its answer printed as JSON. argv: server, client address,
# protocol, first internal port, set size, lifetime, nonce (hex), parity (0/1).
PCP_PORT_SET_CLIENT = r"""
import json, socket, struct, sys
server, client, protocol, first, size, lifetime, nonce, parity = sys.argv[1:9]
protocol, first, size, lifetime = int(protocol), int(first), int(size), int(lifetime)

def mapped(a):  # RFC 6887 §5: an IPv4 address in the IPv4-mapped IPv6 form
    return bytes(10) + b"\xff\xff" + socket.inet_aton(a)

request = struct.pack("!BBHI", 2, 1, 0, lifetime) + mapped(client)           # §7.1, MAP
request += bytes.fromhex(nonce) + struct.pack("!B3xHH", protocol, first, 0)   # §11.1
request += mapped("0.0.0.0")
request += struct.pack("!BBH", 130, 0, 5)                                     # PORT_SET
request += struct.pack("!HHB", size, first, int(parity)) + bytes(3)           # padded to 4
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 5350))
s.settimeout(1.0)
for attempt in range(8):  # §8.1.1: a client sends again until answered
    s.sendto(request, (server, 5351))
    try:
        answer, _ = s.recvfrom(1100)
        break
    except socket.timeout:
        continue
else:
    print(json.dumps({"error": "no answer"}))
    sys.exit(1)
version, opcode, _, result, granted, epoch = struct.unpack("!BBBBII", answer[:12])
out = {"opcode": opcode, "result": result, "lifetime": granted,
       "nonce": answer[24:36].hex(), "protocol": answer[36],
       "internal_port": struct.unpack("!H", answer[40:42])[0],
       "external_port": struct.unpack("!H", answer[42:44])[0],
       "external": socket.inet_ntoa(answer[56:60])}
at = 60
while at + 4 <= len(answer):
    code, _, length = struct.unpack("!BBH", answer[at:at + 4])
    data = answer[at + 4:at + 4 + length]
    if code == 130:
        set_size, set_first, p = struct.unpack("!HHB", data[:5])
        out["port_set"] = {"size": set_size, "first_internal_port": set_first,
                           "parity": p & 1}
    at += 4 + (length + 3) // 4 * 4
print(json.dumps(out))
"""

NONCE = "0102030405060708090a0b0c"


def map_port_set(net, first, size, lifetime, nonce=NONCE, protocol=17, parity=0) -> dict:
    r = net.run("sub1", [ct.PYTHON, "-c", PCP_PORT_SET_CLIENT, ct.CGN_INSIDE, SUB1,
                         str(protocol), str(first), str(size), str(lifetime), nonce,
                         str(parity)], check=False, timeout=30)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert lines, (r.stdout, r.stderr)
    return json.loads(lines[-1])


def pcp_list(c) -> list[str]:
    reply = control(c, "pcp list")
    assert reply.startswith("ok"), reply
    return reply.splitlines()[1:]


def reaches(sender, listener, ext, port, payload, tries=3) -> bool:
    """ext1 sends `payload` to ext:port; whether the listener gets it from ext1 (the first
    datagram may wait for ARP: sent again)."""
    for _ in range(tries):
        sender.send(ext, port, payload)
        got = listener.recv(timeout=1.0, max_packets=1)
        if got:
            (frm, data), = got
            return data == payload and frm[0] == EXT1
    return False


def test_a_set_of_four_udp_ports_reaches_each_internal_port(net):
    """RFC 7753: one MAP with PORT_SET (4 ports from 6000) gives 4 consecutive external ports;
    a datagram from outside to external port first + i arrives at internal port 6000 + i; the
    set is listed as 4 mappings; deleted through its first port, all 4 go."""
    c = net.start_cgnd()
    answer = map_port_set(net, 6000, 4, 600)
    assert answer["result"] == 0, (answer, c.output(tail=30))
    assert answer["opcode"] == 0x81 and answer["internal_port"] == 6000, answer
    assert answer["port_set"] == {"size": 4, "first_internal_port": 6000, "parity": 0}, answer
    assert answer["lifetime"] == 600, answer
    ext, first_port = answer["external"], answer["external_port"]
    assert_pool(ext, "the port set's external address")

    listeners = [net.agent("sub1", 6000 + i) for i in range(4)]
    sender = net.agent("ext1")
    for i, listener in enumerate(listeners):
        assert reaches(sender, listener, ext, first_port + i, f"to port {i}"), (
            f"a datagram to {ext}:{first_port + i} did not reach {SUB1}:{6000 + i}\n"
            f"{c.output(tail=30)}")

    listed = pcp_list(c)
    assert len(listed) == 4, listed
    for i in range(4):
        assert any(line.startswith(f"udp {SUB1}:{6000 + i} {ext}:{first_port + i} ")
                   for line in listed), listed

    deleted = map_port_set(net, 6000, 4, 0)
    assert deleted["result"] == 0 and deleted["lifetime"] == 0, deleted
    assert deleted["port_set"]["size"] == 4, deleted
    assert pcp_list(c) == []


def test_parity_and_a_second_set(net):
    """RFC 7753 §4's P bit: an odd first internal port gets an odd first external port; a
    second set of the same subscriber is granted beside the first, each reaching its ports."""
    c = net.start_cgnd()
    odd = map_port_set(net, 7001, 2, 600, parity=1)
    assert odd["result"] == 0, (odd, c.output(tail=30))
    assert odd["external_port"] % 2 == 1, odd
    assert odd["port_set"] == {"size": 2, "first_internal_port": 7001, "parity": 1}, odd
    other = map_port_set(net, 7101, 2, 600, nonce="0c0b0a090807060504030201")
    assert other["result"] == 0 and other["port_set"]["size"] == 2, other
    sender = net.agent("ext1")
    for answer, first in ((odd, 7001), (other, 7101)):
        for i in range(2):
            listener = net.agent("sub1", first + i)
            assert reaches(sender, listener, answer["external"], answer["external_port"] + i,
                           f"to {first + i}"), c.output(tail=30)
    assert len(pcp_list(c)) == 4


def test_cgn_pcp_asks_for_a_set(net):
    """cgn-pcp --port-set: the subscriber's tool asks for RFC 7753's set and says how many
    ports it got; each is reachable from outside."""
    c = net.start_cgnd()
    r = net.run("sub1", [ct.cgn_pcp_path(), "--server", ct.CGN_INSIDE, "--json", "--protocol",
                         "udp", "--internal-port", "6100", "--port-set", "3", "map"],
                check=False, timeout=20)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    assert r.returncode == 0 and lines, (r.stdout, r.stderr)
    answer = json.loads(lines[-1])
    assert answer["result"] == "SUCCESS" and answer["port_set"] == 3, answer
    ext, first_port = answer["external"]
    sender = net.agent("ext1")
    for i in range(3):
        listener = net.agent("sub1", 6100 + i)
        assert reaches(sender, listener, ext, first_port + i, f"set port {i}"), (
            f"{ext}:{first_port + i} did not reach {SUB1}:{6100 + i}\n{c.output(tail=30)}")
    assert len(pcp_list(c)) == 3
