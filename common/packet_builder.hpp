#pragma once
// Builds well-formed frames for tests and benchmarks (never used on the packet path):
//   auto frame = PacketBuilder().ethernet(src_mac, dst_mac)
//                    .ipv4(src, dst).udp(5000, 53).payload("hello").build();
// Lengths and checksums are computed at build(); `raw` hooks let a test break them on purpose.

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "common/address.hpp"

namespace cgn::common {

class PacketBuilder {
public:
    PacketBuilder& ethernet(MacAddress src, MacAddress dst);
    PacketBuilder& arp(uint16_t operation, MacAddress sender_mac, Ipv4Address sender_ip,
                       MacAddress target_mac, Ipv4Address target_ip);
    PacketBuilder& ipv4(Ipv4Address src, Ipv4Address dst, uint8_t ttl = 64, uint16_t id = 1);
    PacketBuilder& ipv4_fragment(uint16_t flags_and_offset);
    PacketBuilder& ipv4_tos(uint8_t tos);  // the DS field and ECN bits (default 0)
    PacketBuilder& ipv4_options(std::vector<uint8_t> options);
    PacketBuilder& udp(uint16_t src_port, uint16_t dst_port);
    PacketBuilder& udp_without_checksum();  // UDP checksum 0: "not computed" (RFC 768)
    PacketBuilder& tcp(uint16_t src_port, uint16_t dst_port, uint8_t flags, uint32_t seq = 1,
                       uint32_t ack = 0);
    PacketBuilder& icmp_echo(uint8_t type, uint16_t identifier, uint16_t sequence);
    PacketBuilder& icmp(uint8_t type, uint8_t code, uint32_t rest_of_header);
    // No transport header: the payload follows the IP header as it is, under this protocol
    // number (e.g. the data of a later fragment).
    PacketBuilder& raw(uint8_t protocol);
    PacketBuilder& payload(std::string_view bytes);
    PacketBuilder& payload(const std::vector<uint8_t>& bytes);

    std::vector<uint8_t> build() const;

private:
    enum class L4 { none, udp, tcp, icmp };
    std::optional<std::pair<MacAddress, MacAddress>> eth_;
    std::vector<uint8_t> arp_;
    bool has_ipv4_ = false;
    Ipv4Address src_, dst_;
    uint8_t ttl_ = 64;
    uint16_t id_ = 1;
    uint16_t fragment_ = 0;
    uint8_t tos_ = 0;
    uint8_t raw_protocol_ = 0;
    std::vector<uint8_t> options_;
    L4 l4_ = L4::none;
    uint16_t sport_ = 0, dport_ = 0;
    bool udp_checksum_ = true;
    uint8_t tcp_flags_ = 0;
    uint32_t seq_ = 0, ack_ = 0;
    uint8_t icmp_type_ = 0, icmp_code_ = 0;
    uint32_t icmp_rest_ = 0;
    std::vector<uint8_t> payload_;
};

}  // namespace cgn::common
