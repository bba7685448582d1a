#include "common/address.hpp"

#include <charconv>
#include <cstdio>

namespace cgn::common {

namespace {

std::optional<uint32_t> parse_decimal(std::string_view text, uint32_t max) {
    if (text.empty() || text.size() > 10) return std::nullopt;
    uint32_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || ptr != text.data() + text.size() || v > max) return std::nullopt;
    return v;
}

}  // namespace

std::optional<Ipv4Address> Ipv4Address::parse(std::string_view text) {
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
        size_t dot = text.find('.');
        if ((i < 3) != (dot != std::string_view::npos)) return std::nullopt;
        std::string_view part = text.substr(0, dot);
        // Leading zeros are refused: "010" is octal to some tools and decimal to others.
        if (part.size() > 1 && part[0] == '0') return std::nullopt;
        auto octet = parse_decimal(part, 255);
        if (!octet) return std::nullopt;
        value = (value << 8) | *octet;
        text = dot == std::string_view::npos ? std::string_view{} : text.substr(dot + 1);
    }
    return Ipv4Address{value};
}

std::string Ipv4Address::to_string() const {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", value >> 24, (value >> 16) & 0xff,
                  (value >> 8) & 0xff, value & 0xff);
    return buf;
}

std::optional<Ipv4Prefix> Ipv4Prefix::parse(std::string_view text, bool allow_host_bits) {
    size_t slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto addr = Ipv4Address::parse(text.substr(0, slash));
    auto len = parse_decimal(text.substr(slash + 1), 32);
    if (!addr || !len) return std::nullopt;
    Ipv4Prefix p{*addr, static_cast<uint8_t>(*len)};
    if ((addr->value & ~p.mask()) != 0) {
        if (!allow_host_bits) return std::nullopt;
        p.address.value &= p.mask();
    }
    return p;
}

bool Ipv4Prefix::overlaps(const Ipv4Prefix& o) const {
    return length <= o.length ? contains(o.address) : o.contains(address);
}

std::string Ipv4Prefix::to_string() const {
    return address.to_string() + "/" + std::to_string(length);
}

std::optional<InterfaceAddress> InterfaceAddress::parse(std::string_view text) {
    size_t slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    auto addr = Ipv4Address::parse(text.substr(0, slash));
    auto subnet = Ipv4Prefix::parse(text, true);
    if (!addr || !subnet) return std::nullopt;
    return InterfaceAddress{*addr, *subnet};
}

std::string InterfaceAddress::to_string() const {
    return address.to_string() + "/" + std::to_string(subnet.length);
}

std::optional<MacAddress> MacAddress::parse(std::string_view text) {
    if (text.size() != 17) return std::nullopt;
    MacAddress mac;
    for (int i = 0; i < 6; ++i) {
        if (i < 5 && text[i * 3 + 2] != ':') return std::nullopt;
        uint32_t v = 0;
        auto part = text.substr(i * 3, 2);
        auto [ptr, ec] = std::from_chars(part.data(), part.data() + 2, v, 16);
        if (ec != std::errc() || ptr != part.data() + 2) return std::nullopt;
        mac.bytes[i] = static_cast<uint8_t>(v);
    }
    return mac;
}

std::string MacAddress::to_string() const {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2],
                  bytes[3], bytes[4], bytes[5]);
    return buf;
}

}  // namespace cgn::common
