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
    // Every parse starts from a clean view: a worker reuses the views of a burst, and a field
    // left from the previous packet (an ICMP error's quote above all) would describe another
    // mbuf.
    out = Ipv4Packet{};
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
    out.ip_id = load_be16(l3 + ipv4::kId);
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

namespace {

// RFC 5508 §4: the quoted packet must be complete enough to find its session: its IP header
// and 8 bytes of transport (ports, or the ICMP query identifier). An error about an error, or
// about a non-first fragment, cannot be matched and is dropped (RFC 1812 §4.3.2.7).
std::optional<Counter> parse_icmp_error(Ipv4Packet& p) {
    namespace icmp = common::icmp;
    if (p.l4_length < icmp::kHeaderLength + ipv4::kMinHeaderLength + 8)
        return Counter::drop_icmp_error_malformed;
    // RFC 5508 REQ-3: an error whose ICMP checksum is wrong is dropped, not translated
    // (translating it incrementally would hand the host a corrupted quote with a checksum
    // that looks right). Errors are rare: the full sum costs nothing that matters.
    if (common::checksum_finish(common::checksum_partial(p.l4, p.l4_length)) != 0)
        return Counter::drop_icmp_error_malformed;
    uint8_t* inner = p.l4 + icmp::kHeaderLength;
    const auto available = static_cast<uint16_t>(p.l4_length - icmp::kHeaderLength);
    const uint8_t ihl = static_cast<uint8_t>((inner[ipv4::kVersionIhl] & 0x0f) * 4);
    if ((inner[ipv4::kVersionIhl] >> 4) != 4 || ihl < ipv4::kMinHeaderLength ||
        available < ihl + 8 ||
        (load_be16(inner + ipv4::kFragment) & ipv4::kFragmentOffsetMask) != 0)
        return Counter::drop_icmp_error_malformed;
    // RFC 5508 REQ-3a: nor is one whose quoted IP header checksum is wrong.
    if (common::checksum_finish(common::checksum_partial(inner, ihl)) != 0)
        return Counter::drop_icmp_error_malformed;
    p.inner = inner;
    p.inner_available = available;
    p.inner_header_length = ihl;
    p.inner_protocol = inner[ipv4::kProtocol];
    p.inner_src = load_be32(inner + ipv4::kSrc);
    p.inner_dst = load_be32(inner + ipv4::kDst);
    const uint8_t* l4 = inner + ihl;
    switch (p.inner_protocol) {
        case ipv4::kProtoUdp:
        case ipv4::kProtoTcp:
            p.inner_src_port = load_be16(l4);
            p.inner_dst_port = load_be16(l4 + 2);
            break;
        case ipv4::kProtoIcmp:
            if (l4[icmp::kType] != icmp::kEchoRequest && l4[icmp::kType] != icmp::kEchoReply)
                return Counter::drop_icmp_error_malformed;
            p.inner_src_port = p.inner_dst_port = load_be16(l4 + icmp::kIdentifier);
            break;
        default:
            return Counter::drop_icmp_error_malformed;
    }
    // Only a validated error is one: a refused one must not mark the view.
    p.icmp_error = true;
    return std::nullopt;
}

}  // namespace

std::optional<Counter> parse_transport(Ipv4Packet& p) {
    namespace tcp = common::tcp;
    namespace udp = common::udp;
    namespace icmp = common::icmp;
    if (p.fragment) {
        if (p.protocol != ipv4::kProtoUdp && p.protocol != ipv4::kProtoTcp &&
            p.protocol != ipv4::kProtoIcmp)
            return Counter::drop_protocol;
        if ((load_be16(p.l3 + ipv4::kFragment) & ipv4::kFragmentOffsetMask) != 0) {
            p.l4_header = false;
            return std::nullopt;
        }
        // An ICMP error is small; a fragmented one is not translated.
        if (p.protocol == ipv4::kProtoIcmp &&
            (p.l4_length < icmp::kHeaderLength ||
             (p.l4[icmp::kType] != icmp::kEchoRequest && p.l4[icmp::kType] != icmp::kEchoReply)))
            return Counter::drop_ipv4_fragment;
    }
    switch (p.protocol) {
        case ipv4::kProtoUdp:
            // The UDP length covers the whole datagram: more than a first fragment holds.
            if (p.l4_length < udp::kHeaderLength ||
                load_be16(p.l4 + udp::kLength) < udp::kHeaderLength ||
                (!p.fragment && load_be16(p.l4 + udp::kLength) > p.l4_length))
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
            if (p.icmp_type == icmp::kEchoRequest || p.icmp_type == icmp::kEchoReply) {
                p.src_port = p.dst_port = load_be16(p.l4 + icmp::kIdentifier);
                return std::nullopt;
            }
            if (p.icmp_type == icmp::kDestUnreachable || p.icmp_type == icmp::kTimeExceeded ||
                p.icmp_type == icmp::kParameterProblem)
                return parse_icmp_error(p);
            return Counter::drop_icmp_type;
        default:
            return Counter::drop_protocol;
    }
}

}  // namespace cgn::dp
