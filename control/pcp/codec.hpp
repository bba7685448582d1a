#pragma once
// The PCP codec: bytes into the value types of messages.hpp and back, nothing else. No state,
// no clock, no side effect; responses are written into a buffer of the caller's, never over
// the request. Each check names the RFC 6887 section (RFC 7220, RFC 7753 for their options)
// that asks for it. Policy (who may ask what, address checks against the packet's source,
// lifetimes, quotas) is the server's (server.hpp), not the codec's.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "control/pcp/messages.hpp"

namespace cgn::ctl::pcp {

// What a received request comes to (§8.3): a request to serve, an error to answer with
// (encode_error), or nothing: the packet is dropped without an answer.
struct Decoded {
    enum class Kind : uint8_t { request, error, drop };
    Kind kind = Kind::drop;
    Request request;                          // kind == request
    ResultCode error = ResultCode::success;   // kind == error
    std::string_view reason;                  // kind != request: why, for counters and logs
};

// Decodes a request as the server receives it (the UDP payload). A NAT-PMP request (version
// 0) is the NAT-PMP codec's: here it is an unsupported version like any other.
Decoded decode_request(std::span<const uint8_t> packet);

// Writes `response` into `out` (at least kMaxMessage octets); returns its length, a multiple
// of 4, or 0 when it does not fit in kMaxMessage (§7.3: the server then answers with an error).
size_t encode_response(const Response& response, std::span<uint8_t> out);

// An error response (§7.3, §8.3): a copy of the request, cut to kMaxMessage and padded to a
// multiple of 4 (at least the 24-octet header), with the response header written over the
// request header: this server's version, the R bit, `code`, `lifetime` and `epoch`.
size_t encode_error(std::span<const uint8_t> request, ResultCode code, uint32_t lifetime,
                    uint32_t epoch, std::span<uint8_t> out);

// The client's side (cgn-pcp and the tests): a request to send, a response received. A
// response that is not a well-formed PCP response gives nothing, and `why` says what is wrong.
size_t encode_request(const Request& request, std::span<uint8_t> out);
std::optional<Response> decode_response(std::span<const uint8_t> packet,
                                        std::string* why = nullptr);

}  // namespace cgn::ctl::pcp
