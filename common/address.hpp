#pragma once
// IPv4 addresses, prefixes and MAC addresses: value types with parsing and formatting.
// Addresses are kept in host byte order; conversion happens at the packet boundary.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace cgn::common {

struct Ipv4Address {
    uint32_t value = 0;  // host byte order

    static std::optional<Ipv4Address> parse(std::string_view text);
    std::string to_string() const;
    friend bool operator==(Ipv4Address, Ipv4Address) = default;
    friend auto operator<=>(Ipv4Address, Ipv4Address) = default;
};

struct Ipv4Prefix {
    Ipv4Address address;  // network address, host bits zero
    uint8_t length = 0;

    // "a.b.c.d/n". Host bits must be zero unless `allow_host_bits` (for "address/len" of an
    // interface, where the address is the point).
    static std::optional<Ipv4Prefix> parse(std::string_view text, bool allow_host_bits = false);
    uint32_t mask() const { return length == 0 ? 0 : ~uint32_t{0} << (32 - length); }
    bool contains(Ipv4Address a) const { return (a.value & mask()) == address.value; }
    bool overlaps(const Ipv4Prefix& o) const;
    uint64_t size() const { return uint64_t{1} << (32 - length); }
    std::string to_string() const;
    friend bool operator==(const Ipv4Prefix&, const Ipv4Prefix&) = default;
};

// An interface address with its on-link prefix, e.g. 100.64.0.1/10.
struct InterfaceAddress {
    Ipv4Address address;
    Ipv4Prefix subnet;

    static std::optional<InterfaceAddress> parse(std::string_view text);
    std::string to_string() const;
};

struct MacAddress {
    std::array<uint8_t, 6> bytes{};

    static std::optional<MacAddress> parse(std::string_view text);
    static MacAddress broadcast() { return {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }
    std::string to_string() const;
    bool is_zero() const { return bytes == std::array<uint8_t, 6>{}; }
    friend bool operator==(const MacAddress&, const MacAddress&) = default;
};

}  // namespace cgn::common
