#include "dataplane/nat/rewrite.hpp"

#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/headers.hpp"

namespace cgn::dp {

using common::checksum_update16;
using common::checksum_update32;
using common::load_be16;
using common::load_be32;
using common::store_be16;
using common::store_be32;
namespace ipv4 = common::ipv4;

namespace {

// Rewrites one endpoint (address at `addr_offset` of the IP header, port at `port_offset` of
// the transport header) and fixes every checksum that covers it.
void rewrite_endpoint(Ipv4Packet& p, size_t addr_offset, size_t port_offset, uint32_t old_addr,
                      uint32_t addr, uint16_t old_port, uint16_t port) {
    uint8_t* ip = p.l3;
    store_be16(ip + ipv4::kChecksum,
               checksum_update32(load_be16(ip + ipv4::kChecksum), old_addr, addr));
    store_be32(ip + addr_offset, addr);
    // A non-first fragment has no transport header: the first fragment's checksum update
    // covers the whole datagram's pseudo-header and port change.
    if (!p.l4_header) return;

    uint8_t* l4 = p.l4;
    switch (p.protocol) {
        case ipv4::kProtoTcp: {
            // The TCP checksum covers the pseudo-header, so the address change counts too.
            uint16_t c = load_be16(l4 + common::tcp::kChecksum);
            c = checksum_update32(c, old_addr, addr);
            c = checksum_update16(c, old_port, port);
            store_be16(l4 + common::tcp::kChecksum, c);
            store_be16(l4 + port_offset, port);
            break;
        }
        case ipv4::kProtoUdp: {
            uint16_t c = load_be16(l4 + common::udp::kChecksum);
            // RFC 768: checksum 0 means the sender computed none; it stays 0 (RFC 4787 does not
            // ask a NAT to add one). A computed 0 is sent as all ones.
            if (c != 0) {
                c = checksum_update32(c, old_addr, addr);
                c = checksum_update16(c, old_port, port);
                store_be16(l4 + common::udp::kChecksum, c == 0 ? 0xffff : c);
            }
            store_be16(l4 + port_offset, port);
            break;
        }
        case ipv4::kProtoIcmp: {
            // ICMP has no pseudo-header: only the identifier is covered.
            uint16_t c = load_be16(l4 + common::icmp::kChecksum);
            store_be16(l4 + common::icmp::kChecksum, checksum_update16(c, old_port, port));
            store_be16(l4 + common::icmp::kIdentifier, port);
            break;
        }
        default:
            break;
    }
}

}  // namespace

void rewrite_source(Ipv4Packet& p, uint32_t addr, uint16_t port) {
    rewrite_endpoint(p, ipv4::kSrc, common::udp::kSrcPort, p.src, addr, p.src_port, port);
    p.src = addr;
    p.src_port = port;
    if (p.protocol == ipv4::kProtoIcmp) p.dst_port = port;
}

void rewrite_destination(Ipv4Packet& p, uint32_t addr, uint16_t port) {
    rewrite_endpoint(p, ipv4::kDst, common::udp::kDstPort, p.dst, addr, p.dst_port, port);
    p.dst = addr;
    p.dst_port = port;
    if (p.protocol == ipv4::kProtoIcmp) p.src_port = port;
}

namespace {

// Writes a 16-bit word of the ICMP payload (the quote) and keeps the ICMP checksum right.
void set_quoted16(Ipv4Packet& p, uint8_t* at, uint16_t value) {
    uint8_t* icmp_checksum = p.l4 + common::icmp::kChecksum;
    store_be16(icmp_checksum, checksum_update16(load_be16(icmp_checksum), load_be16(at), value));
    store_be16(at, value);
}

void set_quoted32(Ipv4Packet& p, uint8_t* at, uint32_t value) {
    set_quoted16(p, at, static_cast<uint16_t>(value >> 16));
    set_quoted16(p, at + 2, static_cast<uint16_t>(value));
}

// Changes one endpoint of the quoted packet (address at `addr_offset` of its IP header, port at
// `port_offset` of its transport header) with every checksum that covers it.
void rewrite_quoted_endpoint(Ipv4Packet& p, size_t addr_offset, size_t port_offset, uint32_t addr,
                             uint16_t port) {
    uint8_t* ip = p.inner;
    uint8_t* l4 = ip + p.inner_header_length;
    const size_t l4_available = p.inner_available - p.inner_header_length;
    const uint32_t old_addr = load_be32(ip + addr_offset);
    const uint16_t old_port = load_be16(l4 + port_offset);
    // The quoted IP header checksum, then the address itself.
    set_quoted16(p, ip + ipv4::kChecksum,
                 checksum_update32(load_be16(ip + ipv4::kChecksum), old_addr, addr));
    set_quoted32(p, ip + addr_offset, addr);
    // The quoted transport checksum, when the quote holds it.
    switch (p.inner_protocol) {
        case ipv4::kProtoUdp:
            if (l4_available >= common::udp::kHeaderLength) {
                const uint16_t c = load_be16(l4 + common::udp::kChecksum);
                if (c != 0) {
                    uint16_t n = checksum_update32(c, old_addr, addr);
                    n = checksum_update16(n, old_port, port);
                    set_quoted16(p, l4 + common::udp::kChecksum, n == 0 ? 0xffff : n);
                }
            }
            break;
        case ipv4::kProtoTcp:
            if (l4_available >= common::tcp::kChecksum + 2) {
                uint16_t n =
                    checksum_update32(load_be16(l4 + common::tcp::kChecksum), old_addr, addr);
                n = checksum_update16(n, old_port, port);
                set_quoted16(p, l4 + common::tcp::kChecksum, n);
            }
            break;
        case ipv4::kProtoIcmp:
            // The quoted echo's checksum covers its identifier only (no pseudo-header).
            set_quoted16(
                p, l4 + common::icmp::kChecksum,
                checksum_update16(load_be16(l4 + common::icmp::kChecksum), old_port, port));
            break;
        default:
            break;
    }
    set_quoted16(p, l4 + port_offset, port);
}

}  // namespace

namespace {

// The outer address at `outer_offset` (source or destination) and the quoted endpoint on the
// other side of the quote become `addr`/`port`.
void rewrite_icmp_error(Ipv4Packet& p, size_t outer_offset, uint32_t& outer, size_t inner_offset,
                        size_t inner_port_offset, uint32_t addr, uint16_t port) {
    uint8_t* ip = p.l3;
    store_be16(ip + ipv4::kChecksum,
               checksum_update32(load_be16(ip + ipv4::kChecksum), outer, addr));
    store_be32(ip + outer_offset, addr);
    outer = addr;
    const size_t port_offset =
        p.inner_protocol == ipv4::kProtoIcmp ? common::icmp::kIdentifier : inner_port_offset;
    rewrite_quoted_endpoint(p, inner_offset, port_offset, addr, port);
}

}  // namespace

void rewrite_icmp_error_in2out(Ipv4Packet& p, uint32_t addr, uint16_t port) {
    rewrite_icmp_error(p, ipv4::kSrc, p.src, ipv4::kDst, common::udp::kDstPort, addr, port);
    p.inner_dst = addr;
    p.inner_dst_port = port;
}

void rewrite_icmp_error_out2in(Ipv4Packet& p, uint32_t addr, uint16_t port) {
    rewrite_icmp_error(p, ipv4::kDst, p.dst, ipv4::kSrc, common::udp::kSrcPort, addr, port);
    p.inner_src = addr;
    p.inner_src_port = port;
}

void decrement_ttl(Ipv4Packet& p) {
    uint8_t* ip = p.l3;
    const uint16_t old_word = load_be16(ip + ipv4::kTtl);  // TTL and protocol share a word
    ip[ipv4::kTtl] = static_cast<uint8_t>(ip[ipv4::kTtl] - 1);
    store_be16(ip + ipv4::kChecksum, checksum_update16(load_be16(ip + ipv4::kChecksum), old_word,
                                                       load_be16(ip + ipv4::kTtl)));
    p.ttl = ip[ipv4::kTtl];
}

}  // namespace cgn::dp
