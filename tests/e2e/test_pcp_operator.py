"""The operator and PCP (issue 10): what the operator does to mappings a subscriber made with
PCP, and the operator's live static mappings kept across a restart.

- ``pcp del ...`` on the control socket removes PCP mappings; the subscriber is told with an
  unsolicited MAP response of lifetime 0 on its port 5350 (RFC 6887 §14.2), decoded here byte
  by byte, and the external endpoint no longer admits anyone.
- A live ``static add`` of an internal endpoint a PCP mapping holds takes its place (the PCP
  client is told); one on the external endpoint of a PCP mapping is refused, naming it.
- With ``--pcp-store`` a live ``static add`` survives kill -9; ``static del`` forgets it; a
  stored live mapping that the configuration contradicts gives way, with a warning line, at
  start and on SIGHUP, which otherwise leaves live mappings alone.

Real clients: cgn-pcp on sub1 (next to the cgnd under test), a UDP socket on sub1:5350, TCP
from ext1.
"""

import signal
import socket
import struct
import time

import cgn_topology as ct
from conftest import assert_pool, read_json_line
from test_live import control, error, ok, tcp_blocked, tcp_through, wait_lines, write_config
from test_pcp import cgn_pcp

SUB1 = ct.HOSTS["sub1"].ip
SUB2 = ct.HOSTS["sub2"].ip
# A PCP client's unsolicited-message socket (RFC 6887 §8.1: port 5350): prints each datagram
# as a JSON line, hex encoded.
CLIENT_PORT_LISTENER = """
import json, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5350))
print(json.dumps({"listening": True}), flush=True)
s.settimeout(float(sys.argv[1]))
try:
    while True:
        data, frm = s.recvfrom(2048)
        print(json.dumps({"from": list(frm), "hex": data.hex()}), flush=True)
except socket.timeout:
    pass
"""


def pcp_map(net, c, internal_port, protocol="tcp"):
    rc, answer, r = cgn_pcp(net, "--protocol", protocol, "--internal-port", str(internal_port),
                            "--lifetime", "600", "map")
    assert rc == 0 and answer and answer["result"] == "SUCCESS", (r.stdout, r.stderr,
                                                                 c.output(tail=30))
    assert_pool(answer["external"][0], "the PCP mapping's external address")
    return answer


def listen_on_client_port(net, seconds=30.0):
    p = net.topo.spawn("sub1", [ct.PYTHON, "-c", CLIENT_PORT_LISTENER, str(seconds)])
    net.bg.append(p)
    assert read_json_line(p) == {"listening": True}
    return p


def decode_map_response(data: bytes) -> dict:
    """RFC 6887 §7.2 (response header) and §11.1 (MAP opcode data), field by field."""
    assert len(data) >= 60, f"{len(data)} bytes: too short for a MAP response"
    version, r_opcode, _reserved, result, lifetime, epoch = struct.unpack_from("!BBBBII", data)
    nonce = data[24:36]
    protocol = data[36]
    internal_port, external_port = struct.unpack_from("!HH", data, 40)
    external = data[44:60]
    assert external[:12] == bytes(10) + b"\xff\xff", f"not an IPv4-mapped address: {external}"
    return {"version": version, "r": r_opcode >> 7, "opcode": r_opcode & 0x7F, "result": result,
            "lifetime": lifetime, "epoch": epoch, "nonce": nonce.hex(), "protocol": protocol,
            "internal_port": internal_port, "external_port": external_port,
            "external": socket.inet_ntoa(external[12:])}


def told(listener, timeout=5.0) -> tuple[tuple[str, int], dict]:
    """The next datagram on sub1:5350, decoded."""
    msg = read_json_line(listener, timeout=timeout)
    return tuple(msg["from"]), decode_map_response(bytes.fromhex(msg["hex"]))


def assert_told_gone(listener, answer, internal_port, protocol=6):
    frm, m = told(listener)
    assert frm == (ct.CGN_INSIDE, 5351), f"from {frm}: not the PCP server's address and port"
    assert (m["version"], m["r"], m["opcode"], m["result"]) == (2, 1, 1, 0), m  # MAP, SUCCESS
    assert m["lifetime"] == 0, f"lifetime {m['lifetime']}: a removal says 0 (§15)"
    assert m["nonce"] == answer["nonce"].lower(), m
    assert (m["protocol"], m["internal_port"]) == (protocol, internal_port), m
    assert [m["external"], m["external_port"]] == list(answer["external"]), (m, answer)
    return m


def pcp_list(c) -> list[str]:
    return ok(c, "pcp list").splitlines()[1:]


def static_list(c) -> list[str]:
    return ok(c, "static list").splitlines()[1:]


def restart_after_kill_9(net, c, extra):
    c.proc.send_signal(signal.SIGKILL)
    c.stop(timeout=5)
    time.sleep(1)
    return net.start_cgnd(extra=extra)


# --------------------------------------------------------------------------------------

def test_pcp_del_tells_the_client_and_closes_the_port(net):
    """`pcp del tcp SUB:PORT`: the mapping goes (released, with its sessions), the subscriber's
    port 5350 receives a MAP response of lifetime 0 with its nonce (§14.2), and an outside
    TCP connection to the old external endpoint fails. Wrong input is an error naming it."""
    c = net.start_cgnd()
    assert "pcp del tcp|udp INTERNAL:PORT" in control(c, "help")
    listener = listen_on_client_port(net)
    answer = pcp_map(net, c, 8090)
    ext, port = answer["external"]
    tcp_through(net, ext, port, sink_port=8090)     # the mapping works (and has a session)
    assert len(pcp_list(c)) == 1
    # Let sub1 finish closing that connection: a FIN it still retransmitted after the removal
    # would make a new outbound mapping, which endpoint-independent filtering opens to anyone.
    time.sleep(1.0)

    reply = ok(c, f"pcp del tcp {SUB1}:8090")
    assert f"tcp {SUB1}:8090 {ext}:{port} client {SUB1}" in reply, reply
    assert_told_gone(listener, answer, 8090)
    assert pcp_list(c) == []
    counters = c.counters()
    assert counters["pcp_removed_by_operator"] == 1 and counters["pcp_unsolicited"] == 1, counters
    tcp_blocked(net, ext, port, sink_port=8090)

    error(c, f"pcp del tcp {SUB1}:8090", "no PCP mapping", f"tcp {SUB1}:8090")
    error(c, f"pcp del tcp {SUB1}", f"tcp {SUB1}", "pcp del")
    error(c, "pcp del subscriber 100.64.0.300", "100.64.0.300")
    error(c, "pcp del sctp 100.64.0.11:80", "sctp 100.64.0.11:80")


def test_pcp_del_subscriber_removes_all_of_them(net):
    """`pcp del subscriber ADDRESS`: every PCP mapping of the subscriber goes, each told."""
    c = net.start_cgnd()
    listener = listen_on_client_port(net)
    answers = {8091: pcp_map(net, c, 8091), 8092: pcp_map(net, c, 8092, protocol="udp")}
    assert len(pcp_list(c)) == 2
    reply = ok(c, f"pcp del subscriber {SUB1}")
    assert reply.startswith("ok: 2 PCP mappings removed"), reply
    seen = {}
    for _ in range(2):
        _, m = told(listener)
        seen[m["internal_port"]] = m
    assert set(seen) == {8091, 8092}, seen
    for p, m in seen.items():
        assert m["lifetime"] == 0 and m["nonce"] == answers[p]["nonce"].lower(), m
    assert seen[8092]["protocol"] == 17
    assert pcp_list(c) == []
    error(c, f"pcp del subscriber {SUB1}", "no PCP mapping", SUB1)


def test_static_add_over_a_pcp_mapping(net):
    """An operator's static mapping of the internal endpoint a PCP mapping holds takes its
    place, and the PCP client is told; one that wants a PCP mapping's external endpoint is
    refused, naming it, and nothing changes."""
    c = net.start_cgnd()
    listener = listen_on_client_port(net)
    held = pcp_map(net, c, 8093)
    ext, port = held["external"]
    reply = error(c, f"static add tcp {SUB2}:8093 {ext}:{port}",
                  f"{ext}:{port}", "PCP mapping", f"tcp {SUB1}:8093 {ext}:{port}",
                  f"pcp del tcp {SUB1}:8093")
    assert static_list(c) == [] and len(pcp_list(c)) == 1, reply

    static = f"tcp {SUB1}:8093 198.51.100.3:80"
    reply = ok(c, f"static add {static}")
    assert f"PCP mapping tcp {SUB1}:8093 {ext}:{port} removed" in reply, reply
    assert_told_gone(listener, held, 8093)
    assert pcp_list(c) == [] and static_list(c) == [static]
    tcp_through(net, "198.51.100.3", 80, sink_port=8093)
    tcp_blocked(net, ext, port, sink_port=8093)
    # PCP may not take the endpoint back while the operator maps it (§15: NOT_AUTHORIZED).
    rc, refused, r = cgn_pcp(net, "--internal-port", "8093", "map")
    assert rc == 1 and refused["result"] == "NOT_AUTHORIZED", r.stdout


def test_live_static_mapping_survives_kill_9(net, tmp_path):
    """With --pcp-store, a live `static add` is on disk when cgnd answers ok: after kill -9
    and a restart it is installed again and an outside host reaches it; `static del` forgets
    it for the next restart too."""
    store = ["--pcp-store", str(tmp_path / "store")]
    c = net.start_cgnd(extra=store)
    static = f"tcp {SUB1}:8080 198.51.100.2:80"
    reply = ok(c, f"static add {static}")
    assert "(stored)" in reply, reply
    c = restart_after_kill_9(net, c, store)
    assert f"static mapping {static} (added live, kept in the store)" in c.output(), c.output()
    assert static_list(c) == [static]
    tcp_through(net, "198.51.100.2", 80)
    ok(c, f"static del tcp {SUB1}:8080")
    c = restart_after_kill_9(net, c, store)
    assert static_list(c) == []
    tcp_blocked(net, "198.51.100.2", 80)


def test_the_configuration_wins_over_a_stored_live_mapping(net, tmp_path):
    """A stored live mapping that a configured one contradicts (same internal endpoint) gives
    way at start, with a warning line, and is gone from the store; one that does not stays."""
    store = ["--pcp-store", str(tmp_path / "store")]
    c = net.start_cgnd(extra=store)
    live = f"tcp {SUB1}:8080 198.51.100.2:80"
    other = f"udp {SUB2}:5000 198.51.100.2:5000"
    ok(c, f"static add {live}")
    ok(c, f"static add {other}")
    configured = f"tcp {SUB1}:8080 198.51.100.4:80"
    c = restart_after_kill_9(net, c, store + ["--static-mapping", configured])
    warning = [line for line in c.lines if "warning" in line and live in line]
    assert warning and configured in warning[0] and "the configuration wins" in warning[0], \
        c.output(tail=40)
    assert sorted(static_list(c)) == sorted([configured, other])
    tcp_through(net, "198.51.100.4", 80)
    # without the configured one, the dropped live mapping does not come back
    c.stop(timeout=5)
    c = net.start_cgnd(extra=store)
    assert static_list(c) == [other]


def test_sighup_leaves_live_mappings_unless_the_configuration_contradicts_them(net, tmp_path):
    """SIGHUP makes the configuration's static mappings what the file says; those added live
    stay, except one the file's new mapping contradicts: it goes (from the store too), with a
    warning line."""
    store = tmp_path / "store"
    conf = tmp_path / "cgnd.conf"
    base = ct.cgnd_argv(ct.cgnd_path(), eal=ct.eal_args(net.topo.prefix))
    from_file = f"udp {SUB2}:5000 198.51.100.2:53"
    write_config(conf, base + ["--pcp-store", str(store), "--static-mapping", from_file])
    c = net.start_cgnd(argv=[str(ct.cgnd_path()), "--config", str(conf)])
    kept = f"udp {SUB1}:6000 198.51.100.5:6000"
    replaced = f"tcp {SUB1}:8080 198.51.100.3:80"
    ok(c, f"static add {kept}")
    ok(c, f"static add {replaced}")
    winner = f"tcp {SUB1}:8080 198.51.100.4:80"
    write_config(conf, base + ["--pcp-store", str(store), "--static-mapping", winner])
    start = len(c.lines)
    c.proc.send_signal(signal.SIGHUP)
    new = wait_lines(c, start, [f"applied: static-mapping {from_file} removed",
                                f"applied: static-mapping {winner} added"])
    warning = [line for line in new if line.startswith("warning") and replaced in line]
    assert warning and winner in warning[0], "\n".join(new)
    assert sorted(static_list(c)) == sorted([kept, winner])
    tcp_through(net, "198.51.100.4", 80)
    # The store has the live one that stayed, not the one the configuration replaced.
    c.stop(timeout=5)
    write_config(conf, base + ["--pcp-store", str(store)])
    c = net.start_cgnd(argv=[str(ct.cgnd_path()), "--config", str(conf)])
    assert static_list(c) == [kept]


def test_pcp_reset_tells_each_client_that_the_state_is_lost(net):
    """`pcp reset` (RFC 6887 §14.1.3, §8.5): every PCP and NAT-PMP mapping is discarded, the
    epoch starts again at 0, and each client hears it at once on its port 5350: a PCP client
    an ANNOUNCE response of epoch 0, a NAT-PMP client an external address response of epoch 0
    (RFC 6886 §3.6), once however many mappings it had."""
    c = net.start_cgnd()
    assert "pcp reset" in control(c, "help")
    listener = listen_on_client_port(net)
    pcp_map(net, c, 8097)
    pcp_map(net, c, 8098)
    r = net.run("sub1", ["/usr/bin/natpmpc", "-g", ct.CGN_INSIDE, "-a", "8099", "8099", "udp",
                         "600"], check=False, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert len(pcp_list(c)) == 3
    time.sleep(2)  # an epoch that has counted
    reply = ok(c, "pcp reset")
    assert "3 PCP mappings discarded, 2 clients told, epoch 0" in reply, reply
    got = {}
    for _ in range(2):
        msg = read_json_line(listener, timeout=5)
        assert tuple(msg["from"]) == (ct.CGN_INSIDE, 5351), msg
        data = bytes.fromhex(msg["hex"])
        got[data[0]] = data
    assert sorted(got) == [0, 2], got  # one NAT-PMP (version 0), one PCP (version 2) message
    version, r_opcode, _, result, _lifetime, epoch = struct.unpack_from("!BBBBII", got[2])
    assert (len(got[2]), r_opcode, result, epoch) == (24, 0x80, 0, 0), got[2].hex()
    version, opcode, result, epoch = struct.unpack_from("!BBHI", got[0])
    assert (len(got[0]), opcode, result, epoch) == (12, 128, 0, 0), got[0].hex()
    assert_pool(socket.inet_ntoa(got[0][8:12]), "the NAT-PMP announcement's address")
    assert pcp_list(c) == []
    assert c.counters()["pcp_mappings"] == 0
    rc, announced, r = cgn_pcp(net, "announce")
    assert rc == 0 and announced["epoch"] <= 3, (r.stdout, announced)
