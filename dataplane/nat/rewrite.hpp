#pragma once
// Header rewrites of a translated packet with incremental checksum updates (RFC 1624): the
// cost does not depend on the payload length, and a checksum that was wrong stays wrong (the
// end host, not the NAT, decides what to do with a corrupted segment).

#include <cstdint>

#include "dataplane/nat/ipv4_packet.hpp"

namespace cgn::dp {

// in2out: the source endpoint becomes the external one. For ICMP echo, `port` is the
// identifier.
void rewrite_source(Ipv4Packet& p, uint32_t addr, uint16_t port);

// out2in: the destination endpoint becomes the internal one.
void rewrite_destination(Ipv4Packet& p, uint32_t addr, uint16_t port);

// ICMP errors (RFC 5508 §4.2): the quoted packet is translated the way its own direction
// was, and every checksum that covers a changed field is updated: the outer IP header, the
// quoted IP header, the quoted transport checksum when the quote holds it, and the ICMP
// checksum over all of it.
//   in2out (a subscriber's error about an inbound packet): the outer source and the quoted
//     destination endpoint become the external endpoint.
//   out2in (an error from outside about an outbound packet): the outer destination and the
//     quoted source endpoint become the internal endpoint.
void rewrite_icmp_error_in2out(Ipv4Packet& p, uint32_t addr, uint16_t port);
void rewrite_icmp_error_out2in(Ipv4Packet& p, uint32_t addr, uint16_t port);

// Forwarding: TTL minus one, header checksum updated (RFC 1812 §5.3.1). The caller has already
// checked that TTL > 1.
void decrement_ttl(Ipv4Packet& p);

}  // namespace cgn::dp
