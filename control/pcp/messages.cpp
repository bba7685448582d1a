#include "control/pcp/messages.hpp"

#include <arpa/inet.h>

#include <algorithm>

namespace cgn::ctl::pcp {

namespace {
constexpr std::array<uint8_t, 12> kIpv4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
}

IpAddress IpAddress::from_ipv4(common::Ipv4Address a) {
    IpAddress out;
    std::copy(kIpv4MappedPrefix.begin(), kIpv4MappedPrefix.end(), out.bytes.begin());
    for (int i = 0; i < 4; ++i)
        out.bytes[12 + static_cast<size_t>(i)] = static_cast<uint8_t>(a.value >> (24 - 8 * i));
    return out;
}

bool IpAddress::is_ipv4() const {
    return std::equal(kIpv4MappedPrefix.begin(), kIpv4MappedPrefix.end(), bytes.begin());
}

std::optional<common::Ipv4Address> IpAddress::ipv4() const {
    if (!is_ipv4()) return std::nullopt;
    return common::Ipv4Address{uint32_t{bytes[12]} << 24 | uint32_t{bytes[13]} << 16 |
                               uint32_t{bytes[14]} << 8 | bytes[15]};
}

bool IpAddress::is_zero() const {
    return std::all_of(bytes.begin(), bytes.end(), [](uint8_t b) { return b == 0; });
}

std::string IpAddress::to_string() const {
    if (auto v4 = ipv4()) return v4->to_string();
    char text[INET6_ADDRSTRLEN];
    if (inet_ntop(AF_INET6, bytes.data(), text, sizeof text) == nullptr) return "?";
    return text;
}

}  // namespace cgn::ctl::pcp
