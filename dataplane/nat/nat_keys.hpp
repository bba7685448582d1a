#pragma once
// Internal to the NAT engine (dataplane/nat/*.cpp): the hash keys of sessions, mappings and the
// filter table, built from a packet or a mapping, shared by the files of NatEngine.

#include <cstdint>
#include <utility>

#include "common/headers.hpp"
#include "dataplane/nat/expiry_lists.hpp"
#include "dataplane/nat/flow_key.hpp"
#include "dataplane/nat/ipv4_packet.hpp"
#include "dataplane/nat/tcp_state.hpp"

namespace cgn::dp {

// The timeout class a new session starts in.
inline TimeoutClass initial_class(uint8_t protocol) {
    switch (protocol) {
        case common::ipv4::kProtoTcp:
            return tcp_state::timeout_class(tcp_state::kClosed);
        case common::ipv4::kProtoIcmp:
            return TimeoutClass::icmp;
        default:
            return TimeoutClass::udp;
    }
}

// ICMP query sessions have no remote port: the identifier is the only "port" (RFC 5508 §3.1).
inline uint16_t remote_port_of(uint8_t protocol, uint16_t port) {
    return protocol == common::ipv4::kProtoIcmp ? 0 : port;
}

inline SessionKey inside_key(const Ipv4Packet& p) {
    SessionKey k;
    k.local_addr = p.src;
    k.remote_addr = p.dst;
    k.local_port = p.src_port;
    k.remote_port = remote_port_of(p.protocol, p.dst_port);
    k.protocol = p.protocol;
    k.side = Side::inside;
    return k;
}

inline SessionKey outside_key(const Ipv4Packet& p) {
    SessionKey k;
    k.local_addr = p.dst;
    k.remote_addr = p.src;
    k.local_port = p.dst_port;
    k.remote_port = remote_port_of(p.protocol, p.src_port);
    k.protocol = p.protocol;
    k.side = Side::outside;
    return k;
}

inline EndpointKey endpoint_key(uint8_t protocol, uint32_t addr, uint16_t port, Side side) {
    EndpointKey k;
    k.addr = addr;
    k.port = port;
    k.protocol = protocol;
    k.side = side;
    return k;
}

inline FilterKey filter_key(uint8_t protocol, uint32_t ext_addr, uint16_t ext_port,
                            uint32_t remote) {
    FilterKey k;
    k.external_addr = ext_addr;
    k.remote_addr = remote;
    k.external_port = ext_port;
    k.protocol = protocol;
    return k;
}

// The two keys of a session: its inside 5-tuple and its outside 5-tuple.
template <class Mapping>
inline std::pair<SessionKey, SessionKey> session_keys(const Mapping& m, uint32_t remote_addr,
                                                      uint16_t remote_port) {
    SessionKey in_key;
    in_key.local_addr = m.int_addr;
    in_key.remote_addr = remote_addr;
    in_key.local_port = m.int_port;
    in_key.remote_port = remote_port;
    in_key.protocol = m.protocol;
    in_key.side = Side::inside;
    SessionKey out_key = in_key;
    out_key.local_addr = m.ext_addr;
    out_key.local_port = m.ext_port;
    out_key.side = Side::outside;
    return {in_key, out_key};
}

}  // namespace cgn::dp
