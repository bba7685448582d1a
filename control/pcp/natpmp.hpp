#pragma once
// NAT-PMP (RFC 6886) on the PCP port: the codec. Version 0 requests are NAT-PMP's (RFC 6887
// §9, RFC 6886 §1.1); the PCP service serves them with the same mappings and quotas as PCP
// (server.hpp). Numbers and sizes from RFC 6886 §3.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace cgn::ctl::natpmp {

inline constexpr uint8_t kVersion = 0;
inline constexpr uint8_t kResponseBit = 0x80;  // §3: the response opcode is 128 + request's

enum class Opcode : uint8_t { external_address = 0, map_udp = 1, map_tcp = 2 };

// §3.5: result codes (16 bits on the wire).
enum class ResultCode : uint16_t {
    success = 0,
    unsupported_version = 1,
    not_authorized = 2,  // "Not Authorized/Refused"
    network_failure = 3,
    out_of_resources = 4,
    unsupported_opcode = 5,
};

inline constexpr size_t kAddressRequestSize = 2;    // §3.2: version, opcode
inline constexpr size_t kAddressResponseSize = 12;  // §3.2: + result, epoch, external address
inline constexpr size_t kMapRequestSize = 12;       // §3.3
inline constexpr size_t kMapResponseSize = 16;      // §3.3
inline constexpr size_t kHeadSize = 8;              // version, opcode, result, epoch
static_assert(kAddressResponseSize == kHeadSize + 4);
static_assert(kMapResponseSize == kHeadSize + 8);

struct Request {
    Opcode opcode = Opcode::external_address;
    uint16_t internal_port = 0;   // map requests
    uint16_t suggested_port = 0;  // "suggested external port"
    uint32_t lifetime = 0;        // seconds; 0 deletes (§3.4)
};

// What a datagram on the port is, as NAT-PMP: a request, an unknown opcode to return (§3.5),
// or nothing (a response, ignored as §3.5 says; a request too short for its opcode).
struct Decoded {
    enum class Kind : uint8_t { request, error, drop };
    Kind kind = Kind::drop;
    Request request;
    ResultCode error = ResultCode::success;
    uint8_t opcode = 0;  // the opcode as received (for the error answer)
    std::string_view reason;
};

Decoded decode_request(std::span<const uint8_t> packet);

// The answers (§3.2, §3.3); each returns its length (`out` has at least 16 octets). An error
// answer has the same size, its other fields zero (§3.5: "undefined (MUST be set to zero)").
size_t encode_address_response(ResultCode result, uint32_t epoch, uint32_t external_address,
                               std::span<uint8_t> out);
size_t encode_map_response(Opcode op, ResultCode result, uint32_t epoch, uint16_t internal_port,
                           uint16_t external_port, uint32_t lifetime, std::span<uint8_t> out);
// §3.5: a request with an unknown opcode (below 128) "MUST be returned to the sender, with the
// top bit of the opcode set ... and the result code set to 5": the request's own octets (up to
// `out`'s size), those two fields changed.
size_t encode_unsupported_opcode(std::span<const uint8_t> request, std::span<uint8_t> out);

// The client's side (tests): a request, and the fields of a response.
size_t encode_request(const Request& request, std::span<uint8_t> out);
struct Response {
    uint8_t opcode = 0;  // with the response bit
    ResultCode result = ResultCode::success;
    uint32_t epoch = 0;
    uint32_t external_address = 0;  // address responses
    uint16_t internal_port = 0, external_port = 0;
    uint32_t lifetime = 0;  // map responses
};
std::optional<Response> decode_response(std::span<const uint8_t> packet);

}  // namespace cgn::ctl::natpmp
