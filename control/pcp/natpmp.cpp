#include "control/pcp/natpmp.hpp"

#include <algorithm>

#include "control/pcp/bytes.hpp"

namespace cgn::ctl::natpmp {

namespace {

using pcp::bytes::get16;
using pcp::bytes::get32;
using pcp::bytes::put16;
using pcp::bytes::put32;

// Version, opcode, result code, epoch: the 8 octets every response starts with (§3.2, §3.3).
void put_head(std::span<uint8_t> out, uint8_t opcode, ResultCode result, uint32_t epoch) {
    out[0] = kVersion;
    out[1] = opcode;
    put16(out, 2, static_cast<uint16_t>(result));
    put32(out, 4, epoch);
}

}  // namespace

Decoded decode_request(std::span<const uint8_t> p) {
    Decoded d;
    auto drop = [&](std::string_view why) {
        d.kind = Decoded::Kind::drop;
        d.reason = why;
        return d;
    };
    if (p.size() < 2) return drop("shorter than 2 octets");
    if (p[0] != kVersion) return drop("not NAT-PMP (version not 0)");
    d.opcode = p[1];
    // §3.5: "If the opcode in the request is 128 or greater, then this is not a request; it's
    // a response, and the NAT-PMP server MUST silently ignore it."
    if (p[1] & kResponseBit) return drop("a response (opcode 128 or more)");
    if (p[1] > static_cast<uint8_t>(Opcode::map_tcp)) {
        d.kind = Decoded::Kind::error;
        d.error = ResultCode::unsupported_opcode;
        d.reason = "unknown opcode";
        return d;
    }
    d.request.opcode = static_cast<Opcode>(p[1]);
    const size_t wanted =
        d.request.opcode == Opcode::external_address ? kAddressRequestSize : kMapRequestSize;
    // A request shorter than its opcode's can not be served; longer is tolerated (the fields
    // are all in their places).
    if (p.size() < wanted) return drop("shorter than its opcode's request");
    if (d.request.opcode != Opcode::external_address) {
        d.request.internal_port = get16(p, 4);
        d.request.suggested_port = get16(p, 6);
        d.request.lifetime = get32(p, 8);
    }
    d.kind = Decoded::Kind::request;
    return d;
}

size_t encode_address_response(ResultCode result, uint32_t epoch, uint32_t external_address,
                               std::span<uint8_t> out) {
    if (out.size() < kAddressResponseSize) return 0;
    put_head(out, kResponseBit | static_cast<uint8_t>(Opcode::external_address), result, epoch);
    put32(out, 8, external_address);
    return kAddressResponseSize;
}

size_t encode_map_response(Opcode op, ResultCode result, uint32_t epoch, uint16_t internal_port,
                           uint16_t external_port, uint32_t lifetime, std::span<uint8_t> out) {
    if (out.size() < kMapResponseSize) return 0;
    put_head(out, kResponseBit | static_cast<uint8_t>(op), result, epoch);
    put16(out, 8, internal_port);
    put16(out, 10, external_port);
    put32(out, 12, lifetime);
    return kMapResponseSize;
}

size_t encode_unsupported_opcode(std::span<const uint8_t> request, std::span<uint8_t> out) {
    const size_t n = std::min(request.size(), out.size());
    if (n < 2) return 0;
    std::copy_n(request.begin(), n, out.begin());
    out[1] = static_cast<uint8_t>(out[1] | kResponseBit);
    if (n >= 4) put16(out, 2, static_cast<uint16_t>(ResultCode::unsupported_opcode));
    return n;
}

size_t encode_request(const Request& r, std::span<uint8_t> out) {
    if (out.size() < kMapRequestSize) return 0;
    out[0] = kVersion;
    out[1] = static_cast<uint8_t>(r.opcode);
    if (r.opcode == Opcode::external_address) return kAddressRequestSize;
    put16(out, 2, 0);
    put16(out, 4, r.internal_port);
    put16(out, 6, r.suggested_port);
    put32(out, 8, r.lifetime);
    return kMapRequestSize;
}

std::optional<Response> decode_response(std::span<const uint8_t> p) {
    if (p.size() < kHeadSize || p[0] != kVersion || !(p[1] & kResponseBit))
        return std::nullopt;
    Response r;
    r.opcode = p[1];
    r.result = static_cast<ResultCode>(get16(p, 2));
    r.epoch = get32(p, 4);
    const uint8_t op = p[1] & 0x7f;
    if (op > static_cast<uint8_t>(Opcode::map_tcp)) return r;  // an unsupported opcode returned
    if (op == static_cast<uint8_t>(Opcode::external_address)) {
        if (p.size() < kAddressResponseSize) return std::nullopt;
        r.external_address = get32(p, 8);
    } else {
        if (p.size() < kMapResponseSize) return std::nullopt;
        r.internal_port = get16(p, 8);
        r.external_port = get16(p, 10);
        r.lifetime = get32(p, 12);
    }
    return r;
}

}  // namespace cgn::ctl::natpmp
