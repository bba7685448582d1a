#include "dataplane/nat/ipv4_packet.hpp"

#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/headers.hpp"

namespace cgn::dp {

using common::Counter;
using common::load_be16;
using common::load_be32;
namespace ipv4 = common::ipv4;

std::optional<Counter> parse_ipv4(uint8_t* l3, size_t available, Ipv4Packet& out) {
    if (available < ipv4::kMinHeaderLength) return Counter::drop_runt;
    // RFC 1812 §5.2.2: version, header length, total length and checksum are checked before a
    // router acts on a packet.
    if ((l3[ipv4::kVersionIhl] >> 4) != 4) return Counter::drop_ipv4_version;
    const uint8_t ihl = static_cast<uint8_t>((l3[ipv4::kVersionIhl] & 0x0f) * 4);
    if (ihl < ipv4::kMinHeaderLength || ihl > available) return Counter::drop_ipv4_header_length;
    const uint16_t total = load_be16(l3 + ipv4::kTotalLength);
    if (total < ihl || total > available) return Counter::drop_ipv4_total_length;
    if (common::checksum_finish(common::checksum_partial(l3, ihl)) != 0)
        return Counter::drop_ipv4_checksum;

    const uint16_t frag = load_be16(l3 + ipv4::kFragment);
    out.l3 = l3;
    out.header_length = ihl;
    out.total_length = total;
    out.l4 = l3 + ihl;
    out.l4_length = static_cast<uint16_t>(total - ihl);
    out.protocol = l3[ipv4::kProtocol];
    out.ttl = l3[ipv4::kTtl];
    out.src = load_be32(l3 + ipv4::kSrc);
    out.dst = load_be32(l3 + ipv4::kDst);
    out.fragment = (frag & (ipv4::kFlagMoreFragments | ipv4::kFragmentOffsetMask)) != 0;
    return std::nullopt;
}

std::optional<Counter> parse_transport(Ipv4Packet& p) {
    namespace tcp = common::tcp;
    namespace udp = common::udp;
    namespace icmp = common::icmp;
    if (p.fragment) return Counter::drop_ipv4_fragment;
    switch (p.protocol) {
        case ipv4::kProtoUdp:
            if (p.l4_length < udp::kHeaderLength ||
                load_be16(p.l4 + udp::kLength) < udp::kHeaderLength ||
                load_be16(p.l4 + udp::kLength) > p.l4_length)
                return Counter::drop_l4_truncated;
            p.src_port = load_be16(p.l4 + udp::kSrcPort);
            p.dst_port = load_be16(p.l4 + udp::kDstPort);
            if (p.src_port == 0 || p.dst_port == 0) return Counter::drop_l4_truncated;
            return std::nullopt;
        case ipv4::kProtoTcp: {
            if (p.l4_length < tcp::kMinHeaderLength) return Counter::drop_l4_truncated;
            const unsigned offset = (p.l4[tcp::kDataOffset] >> 4) * 4u;
            if (offset < tcp::kMinHeaderLength || offset > p.l4_length)
                return Counter::drop_l4_truncated;
            p.src_port = load_be16(p.l4 + tcp::kSrcPort);
            p.dst_port = load_be16(p.l4 + tcp::kDstPort);
            if (p.src_port == 0 || p.dst_port == 0) return Counter::drop_l4_truncated;
            p.tcp_flags = p.l4[tcp::kFlags];
            return std::nullopt;
        }
        case ipv4::kProtoIcmp:
            if (p.l4_length < icmp::kHeaderLength) return Counter::drop_l4_truncated;
            p.icmp_type = p.l4[icmp::kType];
            if (p.icmp_type != icmp::kEchoRequest && p.icmp_type != icmp::kEchoReply)
                return Counter::drop_icmp_type;
            p.src_port = p.dst_port = load_be16(p.l4 + icmp::kIdentifier);
            return std::nullopt;
        default:
            return Counter::drop_protocol;
    }
}

}  // namespace cgn::dp
