#include "common/packet_builder.hpp"

#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/headers.hpp"

namespace cgn::common {

PacketBuilder& PacketBuilder::ethernet(MacAddress src, MacAddress dst) {
    eth_ = {src, dst};
    return *this;
}

PacketBuilder& PacketBuilder::arp(uint16_t operation, MacAddress sender_mac, Ipv4Address sender_ip,
                                  MacAddress target_mac, Ipv4Address target_ip) {
    arp_.assign(arp::kLength, 0);
    store_be16(&arp_[arp::kHardwareType], arp::kHardwareEthernet);
    store_be16(&arp_[arp::kProtocolType], eth::kTypeIpv4);
    arp_[arp::kHardwareLength] = 6;
    arp_[arp::kProtocolLength] = 4;
    store_be16(&arp_[arp::kOperation], operation);
    std::copy(sender_mac.bytes.begin(), sender_mac.bytes.end(), &arp_[arp::kSenderMac]);
    store_be32(&arp_[arp::kSenderIp], sender_ip.value);
    std::copy(target_mac.bytes.begin(), target_mac.bytes.end(), &arp_[arp::kTargetMac]);
    store_be32(&arp_[arp::kTargetIp], target_ip.value);
    return *this;
}

PacketBuilder& PacketBuilder::ipv4(Ipv4Address src, Ipv4Address dst, uint8_t ttl, uint16_t id) {
    has_ipv4_ = true;
    src_ = src;
    dst_ = dst;
    ttl_ = ttl;
    id_ = id;
    return *this;
}

PacketBuilder& PacketBuilder::ipv4_fragment(uint16_t flags_and_offset) {
    fragment_ = flags_and_offset;
    return *this;
}

PacketBuilder& PacketBuilder::ipv4_tos(uint8_t tos) {
    tos_ = tos;
    return *this;
}

PacketBuilder& PacketBuilder::raw(uint8_t protocol) {
    l4_ = L4::none;
    raw_protocol_ = protocol;
    return *this;
}

PacketBuilder& PacketBuilder::ipv4_options(std::vector<uint8_t> options) {
    options_ = std::move(options);
    options_.resize((options_.size() + 3) / 4 * 4, 0);
    return *this;
}

PacketBuilder& PacketBuilder::udp(uint16_t src_port, uint16_t dst_port) {
    l4_ = L4::udp;
    sport_ = src_port;
    dport_ = dst_port;
    return *this;
}

PacketBuilder& PacketBuilder::udp_without_checksum() {
    udp_checksum_ = false;
    return *this;
}

PacketBuilder& PacketBuilder::tcp(uint16_t src_port, uint16_t dst_port, uint8_t flags, uint32_t seq,
                                  uint32_t ack) {
    l4_ = L4::tcp;
    sport_ = src_port;
    dport_ = dst_port;
    tcp_flags_ = flags;
    seq_ = seq;
    ack_ = ack;
    return *this;
}

PacketBuilder& PacketBuilder::icmp_echo(uint8_t type, uint16_t identifier, uint16_t sequence) {
    return icmp(type, 0, (uint32_t{identifier} << 16) | sequence);
}

PacketBuilder& PacketBuilder::icmp(uint8_t type, uint8_t code, uint32_t rest_of_header) {
    l4_ = L4::icmp;
    icmp_type_ = type;
    icmp_code_ = code;
    icmp_rest_ = rest_of_header;
    return *this;
}

PacketBuilder& PacketBuilder::payload(std::string_view bytes) {
    payload_.assign(bytes.begin(), bytes.end());
    return *this;
}

PacketBuilder& PacketBuilder::payload(const std::vector<uint8_t>& bytes) {
    payload_ = bytes;
    return *this;
}

std::vector<uint8_t> PacketBuilder::build() const {
    std::vector<uint8_t> out;
    if (eth_) {
        out.insert(out.end(), eth_->second.bytes.begin(), eth_->second.bytes.end());
        out.insert(out.end(), eth_->first.bytes.begin(), eth_->first.bytes.end());
        const uint16_t type = arp_.empty() ? eth::kTypeIpv4 : eth::kTypeArp;
        out.push_back(static_cast<uint8_t>(type >> 8));
        out.push_back(static_cast<uint8_t>(type));
    }
    if (!arp_.empty()) {
        out.insert(out.end(), arp_.begin(), arp_.end());
        return out;
    }
    if (!has_ipv4_) {
        out.insert(out.end(), payload_.begin(), payload_.end());
        return out;
    }

    std::vector<uint8_t> l4;
    switch (l4_) {
        case L4::none:
            break;
        case L4::udp:
            l4.resize(udp::kHeaderLength);
            store_be16(&l4[udp::kSrcPort], sport_);
            store_be16(&l4[udp::kDstPort], dport_);
            store_be16(&l4[udp::kLength],
                       static_cast<uint16_t>(udp::kHeaderLength + payload_.size()));
            break;
        case L4::tcp:
            l4.resize(tcp::kMinHeaderLength);
            store_be16(&l4[tcp::kSrcPort], sport_);
            store_be16(&l4[tcp::kDstPort], dport_);
            store_be32(&l4[tcp::kSeq], seq_);
            store_be32(&l4[tcp::kAck], ack_);
            l4[tcp::kDataOffset] = (tcp::kMinHeaderLength / 4) << 4;
            l4[tcp::kFlags] = tcp_flags_;
            store_be16(&l4[tcp::kWindow], 65535);
            break;
        case L4::icmp:
            l4.resize(icmp::kHeaderLength);
            l4[icmp::kType] = icmp_type_;
            l4[icmp::kCode] = icmp_code_;
            store_be32(&l4[4], icmp_rest_);
            break;
    }
    l4.insert(l4.end(), payload_.begin(), payload_.end());
    const auto l4_len = static_cast<uint16_t>(l4.size());
    uint8_t proto = l4_ == L4::udp   ? ipv4::kProtoUdp
                    : l4_ == L4::tcp ? ipv4::kProtoTcp
                                     : ipv4::kProtoIcmp;
    if (l4_ == L4::none && raw_protocol_ != 0) proto = raw_protocol_;
    if (l4_ == L4::udp && udp_checksum_) {
        uint16_t c = checksum_finish(checksum_partial(
            l4.data(), l4.size(), pseudo_header_sum(src_.value, dst_.value, proto, l4_len)));
        store_be16(&l4[udp::kChecksum], c == 0 ? 0xffff : c);  // RFC 768: 0 means "none"
    } else if (l4_ == L4::tcp) {
        store_be16(
            &l4[tcp::kChecksum],
            checksum_finish(checksum_partial(
                l4.data(), l4.size(), pseudo_header_sum(src_.value, dst_.value, proto, l4_len))));
    } else if (l4_ == L4::icmp) {
        store_be16(&l4[icmp::kChecksum], checksum_finish(checksum_partial(l4.data(), l4.size())));
    }

    const size_t ihl = ipv4::kMinHeaderLength + options_.size();
    std::vector<uint8_t> ip(ihl);
    ip[ipv4::kVersionIhl] = static_cast<uint8_t>(0x40 | (ihl / 4));
    ip[ipv4::kTos] = tos_;
    store_be16(&ip[ipv4::kTotalLength], static_cast<uint16_t>(ihl + l4.size()));
    store_be16(&ip[ipv4::kId], id_);
    store_be16(&ip[ipv4::kFragment], fragment_);
    ip[ipv4::kTtl] = ttl_;
    ip[ipv4::kProtocol] = proto;
    store_be32(&ip[ipv4::kSrc], src_.value);
    store_be32(&ip[ipv4::kDst], dst_.value);
    std::copy(options_.begin(), options_.end(), ip.begin() + ipv4::kMinHeaderLength);
    store_be16(&ip[ipv4::kChecksum], checksum_finish(checksum_partial(ip.data(), ip.size())));

    out.insert(out.end(), ip.begin(), ip.end());
    out.insert(out.end(), l4.begin(), l4.end());
    return out;
}

}  // namespace cgn::common
