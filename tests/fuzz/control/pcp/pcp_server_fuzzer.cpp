// libFuzzer target of the PCP service (control/pcp/server.hpp): the input is a sequence of
// requests, each from one of four sources (two subscribers, an operator system allowed
// THIRD_PARTY, an outside host), with time passing between them. Besides ASan/UBSan findings
// it checks, after every request: an answer, when there is one, is a PCP response (and
// decodes, for a known opcode);
// nothing is answered to the outside host; every PCP mapping holds exactly one NAT
// reservation and no subscriber holds more than its quota.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "control/pcp/server.hpp"

namespace pcp = cgn::ctl::pcp;
using cgn::common::Ipv4Address;

namespace {

[[noreturn]] void broken(const char* what) {
    std::fprintf(stderr, "pcp server fuzzer: %s\n", what);
    std::abort();
}

Ipv4Address ip(const char* text) { return *Ipv4Address::parse(text); }

// A NAT with one address: a suggested port when free, else the next free one; at most 64.
class SmallNat final : public pcp::NatControl {
public:
    std::map<pcp::MappingKey, pcp::Endpoint> held;
    std::set<uint16_t> ports;

    std::optional<pcp::Endpoint> dynamic_mapping(const pcp::MappingKey& k) override {
        if (k.internal_port % 7 == 0) return pcp::Endpoint{ip("198.51.100.1"), uint16_t(k.internal_port | 1)};
        return std::nullopt;
    }
    bool static_mapping(const pcp::MappingKey& k) override { return k.internal_port == 5060; }
    pcp::Grant reserve(const pcp::MappingKey& k, std::optional<pcp::Endpoint> s,
                       bool exact) override {
        if (held.count(k)) broken("a second reservation for one internal endpoint");
        if (ports.size() >= 64) return {pcp::ResultCode::no_resources, {}};
        uint16_t port = 0;
        if (s && s->port != 0 && !ports.count(s->port)) port = s->port;
        else if (exact && s) return {pcp::ResultCode::cannot_provide_external, {}};
        else for (port = 40000; ports.count(port); ++port) {}
        ports.insert(port);
        held[k] = pcp::Endpoint{ip("198.51.100.1"), port};
        return {pcp::ResultCode::success, held[k]};
    }
    void release(const pcp::MappingKey& k, const pcp::Endpoint& e) override {
        if (!held.count(k) || !(held[k] == e)) broken("a release of what was not reserved");
        ports.erase(e.port);
        held.erase(k);
    }
    std::optional<Ipv4Address> external_address(Ipv4Address) override {
        return ip("198.51.100.1");
    }
    pcp::Grant peer(const pcp::MappingKey&, const pcp::Endpoint&, std::optional<pcp::Endpoint>,
                    uint32_t) override {
        return {pcp::ResultCode::success, pcp::Endpoint{ip("198.51.100.1"), 50000}};
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const Ipv4Address kSources[] = {ip("100.64.0.11"), ip("100.64.0.13"),
                                           ip("100.64.255.1"), ip("192.0.2.10")};
    pcp::ServerSettings s;
    s.subscribers = {*cgn::common::Ipv4Prefix::parse("100.64.0.0/10")};
    s.third_party_sources = {*cgn::common::Ipv4Prefix::parse("100.64.255.0/24")};
    s.max_mappings_per_subscriber = 8;
    s.min_lifetime = 1;
    s.max_lifetime = 600;
    s.request_burst = 1000;
    cgn::common::ManualClock clock;
    SmallNat nat;
    pcp::Server server(s, nat, clock);

    size_t at = 0;
    while (at + 3 <= size) {
        const uint8_t control = data[at];
        const size_t length = std::min<size_t>(size - at - 3, (size_t{data[at + 1]} << 8 | data[at + 2]) % 1200);
        const std::span<const uint8_t> payload(data + at + 3, length);
        at += 3 + length;
        const Ipv4Address source = kSources[control & 3];
        clock.advance_ms(static_cast<uint64_t>(control >> 2) * 1000);
        server.expire();
        const pcp::Outcome out = server.handle(pcp::Received{source, 5350, payload});
        if (!out.reply.empty()) {
            if (source == kSources[3]) broken("an answer to an outside host");
            // A PCP response on the wire (§7.2), whatever it answers; one about a known opcode
            // decodes in full (an UNSUPP_OPCODE answer carries the opcode it did not know).
            const auto& r = out.reply;
            if (!payload.empty() && payload[0] == 0) {
                // NAT-PMP (RFC 6886): a response with the request's opcode + 128.
                if (r.size() < 2 || r[0] != 0 || r[1] != (payload[1] | 0x80))
                    broken("a NAT-PMP answer that is not a NAT-PMP response");
            } else {
                if (r.size() < pcp::kHeaderSize || r.size() > pcp::kMaxMessage ||
                    r.size() % 4 != 0 || r[0] != pcp::kVersion || !(r[1] & 0x80) ||
                    r[3] >= pcp::kResultCodes)
                    broken("an answer that is not a PCP response");
                if ((r[1] & 0x7f) <= 2 && !pcp::decode_response(r))
                    broken("an answer about a known opcode that does not decode");
            }
        }
        if (nat.held.size() != server.mappings().size())
            broken("PCP mappings and NAT reservations disagree");
        for (const auto& [key, m] : server.mappings()) {
            if (!nat.held.count(key) || !(nat.held[key] == m.external))
                broken("a mapping without its reservation");
            if (server.mappings_of(key.internal) > s.max_mappings_per_subscriber)
                broken("a subscriber over its mapping quota");
        }
    }
    return 0;
}
