#pragma once
// The Port Control Protocol on the wire (RFC 6887, with RFC 7220's DESCRIPTION and RFC 7753's
// PORT_SET options): numbers, sizes and field offsets, checked against each other at compile
// time. The codec (codec.hpp) reads and writes messages with these and nothing else.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cgn::ctl::pcp {

// §19.1: the server listens on 5351, the client on 5350 (RFC 6886 NAT-PMP shares 5351).
inline constexpr uint16_t kServerPort = 5351;
inline constexpr uint16_t kClientPort = 5350;
// §9: this is version 2; version 0 is NAT-PMP (RFC 6886 §3.1), version 1 never shipped.
inline constexpr uint8_t kVersion = 2;
inline constexpr uint8_t kNatPmpVersion = 0;
// §7: "The maximum UDP payload length for both requests and responses is 1100 octets", and
// every message is a multiple of 4 octets.
inline constexpr size_t kMaxMessage = 1100;
inline constexpr size_t kAlignment = 4;

// §7.1 request header and §7.2 response header: both 24 octets.
inline constexpr size_t kHeaderSize = 24;
namespace header {
inline constexpr size_t kVersion = 0;
inline constexpr size_t kOpcode = 1;       // R bit (0x80) and the opcode's 7 bits
inline constexpr size_t kResultCode = 3;   // response only (request: reserved)
inline constexpr size_t kLifetime = 4;     // requested (request) or granted (response)
inline constexpr size_t kClientAddress = 8;  // request: PCP client's IP address, 16 octets
inline constexpr size_t kEpochTime = 8;    // response: epoch time, 4 octets
inline constexpr size_t kReserved = 12;    // response: 12 reserved octets
inline constexpr uint8_t kResponseBit = 0x80;
static_assert(kClientAddress + 16 == kHeaderSize);
static_assert(kReserved + 12 == kHeaderSize);
}  // namespace header

// §11.1 MAP and §12.1 PEER opcode data; ANNOUNCE (§14.1) has none.
inline constexpr size_t kNonceSize = 12;
inline constexpr size_t kMapSize = 36;
inline constexpr size_t kPeerSize = 56;
namespace opdata {
inline constexpr size_t kNonce = 0;
inline constexpr size_t kProtocol = 12;
inline constexpr size_t kInternalPort = 16;  // after 3 reserved octets
inline constexpr size_t kExternalPort = 18;  // suggested (request) or assigned (response)
inline constexpr size_t kExternalAddress = 20;
inline constexpr size_t kRemotePort = 36;    // PEER only
inline constexpr size_t kRemoteAddress = 40;  // PEER only, after 2 reserved octets
static_assert(kNonce + kNonceSize + 4 == kInternalPort);
static_assert(kExternalAddress + 16 == kMapSize);
static_assert(kRemoteAddress + 16 == kPeerSize);
}  // namespace opdata

// §7.3: every option starts with code, reserved and length; its data is padded to 4 octets
// (the length does not count the padding).
inline constexpr size_t kOptionHeaderSize = 4;
inline constexpr size_t kThirdPartySize = 16;    // §13.1: the internal IP address
inline constexpr size_t kPreferFailureSize = 0;  // §13.2
inline constexpr size_t kFilterSize = 20;        // §13.3: reserved, prefix length, port, address
inline constexpr size_t kPortSetSize = 5;        // RFC 7753 §4: size, first port, parity
namespace filter {
inline constexpr size_t kPrefixLength = 1;
inline constexpr size_t kRemotePort = 2;
inline constexpr size_t kRemoteAddress = 4;
static_assert(kRemoteAddress + 16 == kFilterSize);
}  // namespace filter

enum class Opcode : uint8_t { announce = 0, map = 1, peer = 2 };

// §7.4; the lifetime class of each error is in kLongLifetimeError below.
enum class ResultCode : uint8_t {
    success = 0,
    unsupp_version = 1,
    not_authorized = 2,
    malformed_request = 3,
    unsupp_opcode = 4,
    unsupp_option = 5,
    malformed_option = 6,
    network_failure = 7,
    no_resources = 8,
    unsupp_protocol = 9,
    user_ex_quota = 10,
    cannot_provide_external = 11,
    address_mismatch = 12,
    excessive_remote_peers = 13,
};
inline constexpr unsigned kResultCodes = 14;

// §7.3: option codes 0-127 are mandatory to process, 128-255 optional.
enum class OptionCode : uint8_t {
    third_party = 1,
    prefer_failure = 2,
    filter = 3,
    description = 128,  // RFC 7220
    port_set = 130,     // RFC 7753
};
inline constexpr uint8_t kFirstOptionalOption = 128;

// §7.4: "long lifetime" errors stay until something changes (configuration, the request),
// "short lifetime" ones may clear by themselves. §8.1.1 says how long a client waits; the
// server tells it in the Lifetime field (this server: 30 minutes and 30 seconds).
inline constexpr std::array<bool, kResultCodes> kLongLifetimeError = {
    false,  // success: the mapping's lifetime
    true,   // unsupp_version
    true,   // not_authorized
    true,   // malformed_request
    true,   // unsupp_opcode
    true,   // unsupp_option
    true,   // malformed_option
    false,  // network_failure
    false,  // no_resources
    true,   // unsupp_protocol
    false,  // user_ex_quota
    false,  // cannot_provide_external
    true,   // address_mismatch
    false,  // excessive_remote_peers
};
inline constexpr uint32_t kLongErrorLifetime = 30 * 60;
inline constexpr uint32_t kShortErrorLifetime = 30;
inline constexpr uint32_t error_lifetime(ResultCode code) {
    return kLongLifetimeError[static_cast<uint8_t>(code)] ? kLongErrorLifetime
                                                          : kShortErrorLifetime;
}

std::string_view to_string(Opcode op);
std::string_view to_string(ResultCode code);  // the RFC's name, "NO_RESOURCES"
std::string_view to_string(OptionCode code);

}  // namespace cgn::ctl::pcp
