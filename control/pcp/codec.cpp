#include "control/pcp/codec.hpp"

#include <algorithm>
#include <cstring>

#include "control/pcp/bytes.hpp"

namespace cgn::ctl::pcp {

namespace {

using bytes::get16;
using bytes::get32;
using bytes::put16;
using bytes::put32;

IpAddress get_address(std::span<const uint8_t> p, size_t at) {
    IpAddress a;
    std::copy_n(p.begin() + static_cast<std::ptrdiff_t>(at), 16, a.bytes.begin());
    return a;
}
void put_address(std::span<uint8_t> p, size_t at, const IpAddress& a) {
    std::copy(a.bytes.begin(), a.bytes.end(), p.begin() + static_cast<std::ptrdiff_t>(at));
}
constexpr size_t padded(size_t n) { return (n + kAlignment - 1) / kAlignment * kAlignment; }

size_t opcode_size(Opcode op) {
    switch (op) {
        case Opcode::announce:
            return 0;
        case Opcode::map:
            return kMapSize;
        case Opcode::peer:
            return kPeerSize;
    }
    return 0;
}

std::optional<Opcode> known_opcode(uint8_t value) {
    if (value <= static_cast<uint8_t>(Opcode::peer)) return static_cast<Opcode>(value);
    return std::nullopt;
}

MapData get_map(std::span<const uint8_t> d) {
    MapData m;
    std::copy_n(d.begin(), kNonceSize, m.nonce.begin());
    m.protocol = d[opdata::kProtocol];
    m.internal_port = get16(d, opdata::kInternalPort);
    m.external_port = get16(d, opdata::kExternalPort);
    m.external_address = get_address(d, opdata::kExternalAddress);
    return m;
}
PeerData get_peer(std::span<const uint8_t> d) {
    PeerData p;
    static_cast<MapData&>(p) = get_map(d);
    p.remote_port = get16(d, opdata::kRemotePort);
    p.remote_address = get_address(d, opdata::kRemoteAddress);
    return p;
}
void put_map(std::span<uint8_t> d, const MapData& m) {
    std::fill_n(d.begin(), kMapSize, uint8_t{0});
    std::copy(m.nonce.begin(), m.nonce.end(), d.begin());
    d[opdata::kProtocol] = m.protocol;
    put16(d, opdata::kInternalPort, m.internal_port);
    put16(d, opdata::kExternalPort, m.external_port);
    put_address(d, opdata::kExternalAddress, m.external_address);
}
void put_peer(std::span<uint8_t> d, const PeerData& p) {
    std::fill_n(d.begin(), kPeerSize, uint8_t{0});
    put_map(d, p);
    put16(d, opdata::kRemotePort, p.remote_port);
    put_address(d, opdata::kRemoteAddress, p.remote_address);
}

// RFC 7220 §3: the description is UTF-8. A strict check (RFC 3629 §4): no overlong forms,
// no surrogates, nothing above U+10FFFF.
bool valid_utf8(std::span<const uint8_t> s) {
    size_t i = 0;
    while (i < s.size()) {
        const uint8_t c = s[i];
        size_t n = 0;
        uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + n >= s.size()) return false;  // cut short
        for (size_t k = 1; k <= n; ++k) {
            if ((s[i + k] & 0xc0) != 0x80) return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
        if (cp < kMin[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += n + 1;
    }
    return true;
}

// Which opcodes may carry each option (§13.1-§13.3, RFC 7220 §3, RFC 7753 §4).
bool allowed(OptionCode code, Opcode op) {
    switch (code) {
        case OptionCode::third_party:
        case OptionCode::description:
            return op == Opcode::map || op == Opcode::peer;
        case OptionCode::prefer_failure:
        case OptionCode::filter:
        case OptionCode::port_set:
            return op == Opcode::map;
    }
    return false;
}

bool known_option(uint8_t code) {
    switch (static_cast<OptionCode>(code)) {
        case OptionCode::third_party:
        case OptionCode::prefer_failure:
        case OptionCode::filter:
        case OptionCode::description:
        case OptionCode::port_set:
            return true;
    }
    return false;
}

struct OptionError {
    ResultCode code;
    std::string_view reason;
};

// One option's data into `options`; an error names what is wrong.
std::optional<OptionError> take_option(OptionCode code, std::span<const uint8_t> data,
                                       Options& options) {
    const auto exactly = [&](size_t n) { return data.size() == n; };
    switch (code) {
        case OptionCode::third_party:  // §13.1: 16 octets, at most once
            if (!exactly(kThirdPartySize))
                return OptionError{ResultCode::malformed_option, "THIRD_PARTY length is not 16"};
            if (options.third_party)
                return OptionError{ResultCode::malformed_option, "THIRD_PARTY appears twice"};
            options.third_party = get_address(data, 0);
            return std::nullopt;
        case OptionCode::prefer_failure:  // §13.2: no data, at most once
            if (!exactly(kPreferFailureSize))
                return OptionError{ResultCode::malformed_option, "PREFER_FAILURE has data"};
            if (options.prefer_failure)
                return OptionError{ResultCode::malformed_option, "PREFER_FAILURE appears twice"};
            options.prefer_failure = true;
            return std::nullopt;
        case OptionCode::filter: {  // §13.3 with erratum 3891: 20 octets, any number of them
            if (!exactly(kFilterSize))
                return OptionError{ResultCode::malformed_option, "FILTER length is not 20"};
            Filter f;
            f.prefix_length = data[filter::kPrefixLength];
            f.remote_port = get16(data, filter::kRemotePort);
            f.remote_address = get_address(data, filter::kRemoteAddress);
            const unsigned lowest = f.remote_address.is_ipv4() ? 97 : 1;
            if (f.prefix_length != 0 && (f.prefix_length < lowest || f.prefix_length > 128))
                return OptionError{ResultCode::malformed_option,
                                   "FILTER prefix length out of range"};
            options.filters.push_back(f);
            return std::nullopt;
        }
        case OptionCode::description:  // RFC 7220 §3: UTF-8 text, at most once
            if (options.description)
                return OptionError{ResultCode::malformed_option, "DESCRIPTION appears twice"};
            if (!valid_utf8(data))
                return OptionError{ResultCode::malformed_option, "DESCRIPTION is not UTF-8"};
            options.description = std::string(data.begin(), data.end());
            return std::nullopt;
        case OptionCode::port_set: {  // RFC 7753 §4: 5 octets, at most once, size not 0
            if (!exactly(kPortSetSize))
                return OptionError{ResultCode::malformed_option, "PORT_SET length is not 5"};
            if (options.port_set)
                return OptionError{ResultCode::malformed_option, "PORT_SET appears twice"};
            PortSet s{get16(data, 0), get16(data, 2), (data[4] & 1) != 0};
            if (s.size == 0)
                return OptionError{ResultCode::malformed_option, "PORT_SET size 0"};
            options.port_set = s;
            return std::nullopt;
        }
    }
    return std::nullopt;
}

// §7.3: options follow the opcode data to the end of the message, processed in order.
std::optional<OptionError> read_options(std::span<const uint8_t> p, Opcode op, Options& out,
                                        bool strict) {
    size_t at = 0;
    while (at < p.size()) {
        if (p.size() - at < kOptionHeaderSize)
            return OptionError{ResultCode::malformed_option, "option header cut short"};
        const uint8_t code = p[at];
        const size_t length = get16(p, at + 2);
        if (p.size() - at - kOptionHeaderSize < padded(length))
            return OptionError{ResultCode::malformed_option, "option runs past the message"};
        const auto data = p.subspan(at + kOptionHeaderSize, length);
        at += kOptionHeaderSize + padded(length);
        if (!known_option(code)) {
            // §7.3: an unknown mandatory-to-process option is an error; an unknown optional
            // one is skipped.
            if (code < kFirstOptionalOption && strict)
                return OptionError{ResultCode::unsupp_option, "unknown mandatory option"};
            out.ignored.push_back(code);
            continue;
        }
        const auto known = static_cast<OptionCode>(code);
        if (strict && !allowed(known, op))
            return OptionError{ResultCode::malformed_request, "option not valid for the opcode"};
        if (auto e = take_option(known, data, out); e && strict) return e;
    }
    return std::nullopt;
}

// Writes one option; returns the octets used, or 0 when it would pass `end`.
size_t put_option(std::span<uint8_t> out, size_t at, OptionCode code,
                  std::span<const uint8_t> data) {
    const size_t total = kOptionHeaderSize + padded(data.size());
    if (at + total > out.size()) return 0;
    out[at] = static_cast<uint8_t>(code);
    out[at + 1] = 0;
    put16(out, at + 2, static_cast<uint16_t>(data.size()));
    std::copy(data.begin(), data.end(), out.begin() + static_cast<std::ptrdiff_t>(at + 4));
    std::fill(out.begin() + static_cast<std::ptrdiff_t>(at + 4 + data.size()),
              out.begin() + static_cast<std::ptrdiff_t>(at + total), uint8_t{0});
    return total;
}

// The options in the order of §13 (THIRD_PARTY first, then the rest); 0 when they do not fit.
size_t put_options(std::span<uint8_t> out, size_t at, const Options& o) {
    const size_t start = at;
    auto put = [&](OptionCode code, std::span<const uint8_t> data) {
        const size_t n = put_option(out, at, code, data);
        if (n == 0) return false;
        at += n;
        return true;
    };
    if (o.third_party && !put(OptionCode::third_party, o.third_party->bytes)) return 0;
    if (o.prefer_failure && !put(OptionCode::prefer_failure, {})) return 0;
    for (const Filter& f : o.filters) {
        std::array<uint8_t, kFilterSize> d{};
        d[filter::kPrefixLength] = f.prefix_length;
        put16(d, filter::kRemotePort, f.remote_port);
        put_address(d, filter::kRemoteAddress, f.remote_address);
        if (!put(OptionCode::filter, d)) return 0;
    }
    if (o.description) {
        const auto* text = reinterpret_cast<const uint8_t*>(o.description->data());
        if (!put(OptionCode::description, {text, o.description->size()})) return 0;
    }
    if (o.port_set) {
        std::array<uint8_t, kPortSetSize> d{};
        put16(d, 0, o.port_set->size);
        put16(d, 2, o.port_set->first_internal_port);
        d[4] = o.port_set->parity ? 1 : 0;
        if (!put(OptionCode::port_set, d)) return 0;
    }
    return at - start;
}

// The opcode data present (an error about a request cut short has none).
size_t put_opcode_data(std::span<uint8_t> out, Opcode op, const std::optional<MapData>& map,
                       const std::optional<PeerData>& peer) {
    if (op == Opcode::map && map) {
        put_map(out.subspan(kHeaderSize, kMapSize), *map);
        return kHeaderSize + kMapSize;
    }
    if (op == Opcode::peer && peer) {
        put_peer(out.subspan(kHeaderSize, kPeerSize), *peer);
        return kHeaderSize + kPeerSize;
    }
    return kHeaderSize;
}

// Header, opcode data and options; the header's first 24 octets are the caller's.
size_t put_body(std::span<uint8_t> out, Opcode op, const std::optional<MapData>& map,
                const std::optional<PeerData>& peer, const Options& options) {
    if (out.size() < kMaxMessage) return 0;
    const auto message = out.first(kMaxMessage);
    const size_t at = put_opcode_data(message, op, map, peer);
    const bool any = options.third_party || options.prefer_failure || !options.filters.empty() ||
                     options.description || options.port_set;
    if (!any) return at;
    const size_t n = put_options(message, at, options);
    return n == 0 ? 0 : at + n;
}

}  // namespace

Decoded decode_request(std::span<const uint8_t> p) {
    Decoded d;
    auto drop = [&](std::string_view why) {
        d.kind = Decoded::Kind::drop;
        d.reason = why;
        return d;
    };
    auto error = [&](ResultCode code, std::string_view why) {
        d.kind = Decoded::Kind::error;
        d.error = code;
        d.reason = why;
        return d;
    };
    // §8.3, in its order.
    if (p.size() < 2) return drop("shorter than 2 octets");
    if (p[header::kOpcode] & header::kResponseBit) return drop("R bit set (a response)");
    if (p[header::kVersion] != kVersion) return error(ResultCode::unsupp_version, "version not 2");
    if (p.size() < kHeaderSize) return drop("shorter than the 24-octet header");
    if (p.size() > kMaxMessage) return error(ResultCode::malformed_request, "longer than 1100");
    if (p.size() % kAlignment != 0)
        return error(ResultCode::malformed_request, "length not a multiple of 4");
    const auto op = known_opcode(p[header::kOpcode] & 0x7f);
    if (!op) return error(ResultCode::unsupp_opcode, "unknown opcode");
    if (p.size() < kHeaderSize + opcode_size(*op))
        return error(ResultCode::malformed_request, "too short for its opcode");

    Request& r = d.request;
    r.version = p[header::kVersion];
    r.opcode = *op;
    r.lifetime = get32(p, header::kLifetime);
    r.client_address = get_address(p, header::kClientAddress);
    const auto data = p.subspan(kHeaderSize, opcode_size(*op));
    if (*op == Opcode::map) r.map = get_map(data);
    if (*op == Opcode::peer) r.peer = get_peer(data);
    if (auto e = read_options(p.subspan(kHeaderSize + opcode_size(*op)), *op, r.options, true))
        return error(e->code, e->reason);
    d.kind = Decoded::Kind::request;
    return d;
}

size_t encode_response(const Response& r, std::span<uint8_t> out) {
    if (out.size() < kMaxMessage) return 0;
    std::fill_n(out.begin(), kHeaderSize, uint8_t{0});
    out[header::kVersion] = r.version;
    out[header::kOpcode] = header::kResponseBit | static_cast<uint8_t>(r.opcode);
    out[header::kResultCode] = static_cast<uint8_t>(r.result);
    put32(out, header::kLifetime, r.lifetime);
    put32(out, header::kEpochTime, r.epoch);
    return put_body(out, r.opcode, r.map, r.peer, r.options);
}

size_t encode_error(std::span<const uint8_t> request, ResultCode code, uint32_t lifetime,
                    uint32_t epoch, std::span<uint8_t> out) {
    if (out.size() < kMaxMessage) return 0;
    const size_t copied = std::min(request.size(), kMaxMessage);
    const size_t length = std::min(padded(std::max(copied, kHeaderSize)), kMaxMessage);
    std::fill_n(out.begin(), length, uint8_t{0});
    std::copy_n(request.begin(), copied, out.begin());
    out[header::kVersion] = kVersion;  // §9: the version this server speaks
    out[header::kOpcode] = static_cast<uint8_t>(header::kResponseBit | (out[header::kOpcode] & 0x7f));
    out[2] = 0;
    out[header::kResultCode] = static_cast<uint8_t>(code);
    put32(out, header::kLifetime, lifetime);
    put32(out, header::kEpochTime, epoch);
    std::fill_n(out.begin() + header::kReserved, 12, uint8_t{0});
    return length;
}

size_t encode_request(const Request& r, std::span<uint8_t> out) {
    if (out.size() < kMaxMessage) return 0;
    std::fill_n(out.begin(), kHeaderSize, uint8_t{0});
    out[header::kVersion] = r.version;
    out[header::kOpcode] = static_cast<uint8_t>(r.opcode);
    put32(out, header::kLifetime, r.lifetime);
    put_address(out, header::kClientAddress, r.client_address);
    return put_body(out, r.opcode, r.map, r.peer, r.options);
}

std::optional<Response> decode_response(std::span<const uint8_t> p, std::string* why) {
    auto fail = [&](const char* what) -> std::optional<Response> {
        if (why != nullptr) *why = what;
        return std::nullopt;
    };
    if (p.size() < kHeaderSize) return fail("shorter than the 24-octet header");
    if (p.size() > kMaxMessage || p.size() % kAlignment != 0)
        return fail("length not a multiple of 4 up to 1100");
    if (!(p[header::kOpcode] & header::kResponseBit)) return fail("R bit clear (a request)");
    Response r;
    r.version = p[header::kVersion];
    const auto op = known_opcode(p[header::kOpcode] & 0x7f);
    if (!op) return fail("unknown opcode");
    r.opcode = *op;
    if (p[header::kResultCode] >= kResultCodes) return fail("unknown result code");
    r.result = static_cast<ResultCode>(p[header::kResultCode]);
    r.lifetime = get32(p, header::kLifetime);
    r.epoch = get32(p, header::kEpochTime);
    if (r.version != kVersion) {
        // §9: an UNSUPP_VERSION answer from a server of another version: header only.
        if (r.result != ResultCode::unsupp_version) return fail("version not 2");
        return r;
    }
    if (p.size() < kHeaderSize + opcode_size(*op)) {
        if (r.result == ResultCode::success) return fail("too short for its opcode");
        return r;  // an error about a request cut short
    }
    const auto data = p.subspan(kHeaderSize, opcode_size(*op));
    if (*op == Opcode::map) r.map = get_map(data);
    if (*op == Opcode::peer) r.peer = get_peer(data);
    if (read_options(p.subspan(kHeaderSize + opcode_size(*op)), *op, r.options, false)) {
        // An error answer copies the request it refuses (§7.3), malformed options and all.
        if (r.result == ResultCode::success) return fail("options cut short");
        r.options = Options{};
    }
    return r;
}

// ---- names and addresses ----------------------------------------------------------------

std::string_view to_string(Opcode op) {
    switch (op) {
        case Opcode::announce:
            return "ANNOUNCE";
        case Opcode::map:
            return "MAP";
        case Opcode::peer:
            return "PEER";
    }
    return "?";
}

std::string_view to_string(ResultCode code) {
    static constexpr std::string_view kNames[kResultCodes] = {
        "SUCCESS",        "UNSUPP_VERSION",   "NOT_AUTHORIZED",
        "MALFORMED_REQUEST", "UNSUPP_OPCODE", "UNSUPP_OPTION",
        "MALFORMED_OPTION", "NETWORK_FAILURE", "NO_RESOURCES",
        "UNSUPP_PROTOCOL", "USER_EX_QUOTA",   "CANNOT_PROVIDE_EXTERNAL",
        "ADDRESS_MISMATCH", "EXCESSIVE_REMOTE_PEERS"};
    const auto i = static_cast<uint8_t>(code);
    return i < kResultCodes ? kNames[i] : "?";
}

std::string_view to_string(OptionCode code) {
    switch (code) {
        case OptionCode::third_party:
            return "THIRD_PARTY";
        case OptionCode::prefer_failure:
            return "PREFER_FAILURE";
        case OptionCode::filter:
            return "FILTER";
        case OptionCode::description:
            return "DESCRIPTION";
        case OptionCode::port_set:
            return "PORT_SET";
    }
    return "?";
}

}  // namespace cgn::ctl::pcp
