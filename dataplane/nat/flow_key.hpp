#pragma once
// Keys of the per-worker tables. Fixed-size, fully initialised (padding zeroed) so they can be
// hashed as raw bytes by rte_hash. Addresses and ports in host byte order.

#include <cstdint>

namespace cgn::dp {

// Which side of the NAT an endpoint lives on: keeps an inside key from ever matching an
// outside key with the same numbers.
enum class Side : uint8_t { inside = 1, outside = 2 };

// A session: (proto, local endpoint, remote endpoint) seen from one side. Inside: local is the
// subscriber's endpoint. Outside: local is the external (pool) endpoint. For ICMP echo the
// port is the query identifier and the remote port is 0 (RFC 5508 §3.1: the identifier plays
// the part of the port).
struct SessionKey {
    uint32_t local_addr = 0;
    uint32_t remote_addr = 0;
    uint16_t local_port = 0;
    uint16_t remote_port = 0;
    uint8_t protocol = 0;
    Side side = Side::inside;
    uint16_t zero = 0;
};
static_assert(sizeof(SessionKey) == 16);

// An endpoint-independent mapping is found by its internal endpoint (side inside) or its
// external endpoint (side outside): RFC 4787 REQ-1.
struct EndpointKey {
    uint32_t addr = 0;
    uint16_t port = 0;
    uint8_t protocol = 0;
    Side side = Side::inside;
};
static_assert(sizeof(EndpointKey) == 8);

// For address-dependent filtering (RFC 4787 REQ-8): how many sessions a mapping (by its
// external endpoint) has with one remote address.
struct FilterKey {
    uint32_t external_addr = 0;
    uint32_t remote_addr = 0;
    uint16_t external_port = 0;
    uint8_t protocol = 0;
    uint8_t zero = 0;
};
static_assert(sizeof(FilterKey) == 12);

}  // namespace cgn::dp
