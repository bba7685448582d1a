#pragma once
// PCP messages as values (RFC 6887 §7, §11-§14; RFC 7220; RFC 7753): what the codec reads a
// request into and writes a response from. Plain data, no behaviour beyond conversions.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/address.hpp"
#include "control/pcp/wire.hpp"

namespace cgn::ctl::pcp {

// A 128-bit address field: an IPv6 address, or an IPv4 address in the IPv4-mapped form
// ::ffff:a.b.c.d (§5). "All-zeros" is :: for IPv6 and ::ffff:0.0.0.0 for IPv4.
struct IpAddress {
    std::array<uint8_t, 16> bytes{};

    static IpAddress from_ipv4(common::Ipv4Address a);
    static IpAddress ipv4_any() { return from_ipv4(common::Ipv4Address{}); }
    // §5: "all of the first 96 bits MUST be checked for the pattern".
    bool is_ipv4() const;
    std::optional<common::Ipv4Address> ipv4() const;
    bool is_zero() const;  // :: (the IPv6 all-zeros address)
    std::string to_string() const;  // "198.51.100.1" or the IPv6 text form
    friend bool operator==(const IpAddress&, const IpAddress&) = default;
};

using Nonce = std::array<uint8_t, kNonceSize>;

// The data of MAP (§11.1) and, with the remote peer, PEER (§12.1). In a request the external
// port and address are suggestions; in a response, what was assigned.
struct MapData {
    Nonce nonce{};
    uint8_t protocol = 0;  // IANA protocol number; 0: all protocols
    uint16_t internal_port = 0;
    uint16_t external_port = 0;
    IpAddress external_address;
    friend bool operator==(const MapData&, const MapData&) = default;
};
struct PeerData : MapData {
    uint16_t remote_port = 0;
    IpAddress remote_address;
    friend bool operator==(const PeerData&, const PeerData&) = default;
};

// §13.3 (with erratum 3891): remote peers allowed to send to a MAP mapping. Prefix length 0
// removes every filter; otherwise 97-128 for an IPv4 address (96 + its prefix length) and
// 1-128 for IPv6.
struct Filter {
    uint8_t prefix_length = 0;
    uint16_t remote_port = 0;  // 0: any port
    IpAddress remote_address;
    friend bool operator==(const Filter&, const Filter&) = default;
};

// RFC 7753 §4: a set of `size` consecutive ports. In a request: the internal port the set
// starts at and whether the external ports should keep its parity; in a response, what was
// mapped (the MAP data's external port is the first external port of the set).
struct PortSet {
    uint16_t size = 0;
    uint16_t first_internal_port = 0;
    bool parity = false;
    friend bool operator==(const PortSet&, const PortSet&) = default;
};

// The options this server understands (§13, RFC 7220, RFC 7753). Optional-to-process options
// it does not know are skipped and named in `ignored` (§7.3).
struct Options {
    std::optional<IpAddress> third_party;  // §13.1
    bool prefer_failure = false;           // §13.2
    std::vector<Filter> filters;           // §13.3, in the order given
    std::optional<std::string> description;  // RFC 7220 (UTF-8, not NUL-terminated)
    std::optional<PortSet> port_set;       // RFC 7753
    std::vector<uint8_t> ignored;          // codes of unknown optional options
    friend bool operator==(const Options&, const Options&) = default;
};

struct Request {
    uint8_t version = kVersion;
    Opcode opcode = Opcode::announce;
    uint32_t lifetime = 0;  // requested, seconds
    IpAddress client_address;
    std::optional<MapData> map;    // MAP
    std::optional<PeerData> peer;  // PEER
    Options options;
    friend bool operator==(const Request&, const Request&) = default;
};

struct Response {
    uint8_t version = kVersion;
    Opcode opcode = Opcode::announce;
    ResultCode result = ResultCode::success;
    uint32_t lifetime = 0;  // granted, or how long an error holds (§7.4)
    uint32_t epoch = 0;     // §8.5: seconds since the server's state began
    std::optional<MapData> map;
    std::optional<PeerData> peer;
    Options options;  // those the server processed, echoed (§7.3)
    friend bool operator==(const Response&, const Response&) = default;
};

}  // namespace cgn::ctl::pcp
