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
#include <span>
#include <string>
#include <utility>
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

// A NAT with one address: an internal port that is a multiple of 7 has a dynamic mapping
// (returned, held); otherwise a suggested port when free, else the next free one; at most 64.
// Its answers come at once or, while `slow`, when the input lets them.
class SmallNat final : public pcp::NatControl {
public:
    std::map<pcp::MappingKey, pcp::Endpoint> held;
    std::set<uint16_t> ports;
    bool slow = false;
    std::vector<pcp::NatAnswer> late;

    bool static_mapping(const pcp::MappingKey& k) override { return k.internal_port == 5060; }
    void submit(const pcp::NatRequest& q) override {
        const pcp::NatAnswer a{q.id, grant(q)};
        (slow ? late : ready).push_back(a);
    }
    void release(const pcp::MappingKey& k, const pcp::Endpoint& e) override {
        if (!held.count(k) || !(held[k] == e)) broken("a release of what was not reserved");
        ports.erase(e.port);
        held.erase(k);
    }
    std::vector<pcp::NatAnswer> take_answers() override { return std::exchange(ready, {}); }
    void let_late_in() {
        for (auto& a : late) ready.push_back(a);
        late.clear();
    }

private:
    pcp::Grant grant(const pcp::NatRequest& q) {
        const auto paired = ip("198.51.100.1");
        switch (q.kind) {
            case pcp::NatRequest::Kind::peer:
                return {pcp::ResultCode::success, pcp::Endpoint{paired, 50000}, 300};
            case pcp::NatRequest::Kind::external_address:
                return {pcp::ResultCode::success, pcp::Endpoint{paired, 0}};
            case pcp::NatRequest::Kind::map:
                break;
        }
        const pcp::MappingKey& k = q.key;
        if (held.count(k)) {
            // A refresh that changes the mapping's FILTERs asks again, at the endpoint it holds
            // (the dataplane answers a held mapping with itself, §11.3); anything else would be
            // a second reservation of one internal endpoint.
            if (!q.suggested || !(*q.suggested == held[k]))
                broken("a second reservation for one internal endpoint");
            return {pcp::ResultCode::success, held[k]};
        }
        if (k.internal_port % 7 == 0) {
            held[k] = pcp::Endpoint{paired, uint16_t(k.internal_port | 1)};
            return {pcp::ResultCode::success, held[k]};
        }
        if (ports.size() >= 64) return {pcp::ResultCode::no_resources, {}};
        const auto& s = q.suggested;
        uint16_t port = 0;
        if (s && s->port != 0 && !ports.count(s->port)) port = s->port;
        else if (q.exact && s) return {pcp::ResultCode::cannot_provide_external, {}};
        else for (port = 40000; ports.count(port); ++port) {}
        ports.insert(port);
        held[k] = pcp::Endpoint{paired, port};
        return {pcp::ResultCode::success, held[k]};
    }
    std::vector<pcp::NatAnswer> ready;
};

void check_answer(const pcp::Outcome& out, std::span<const uint8_t> payload, bool outside) {
    if (out.reply.empty()) return;
    if (outside) broken("an answer to an outside host");
    // A PCP response on the wire (§7.2), whatever it answers; one about a known opcode
    // decodes in full (an UNSUPP_OPCODE answer carries the opcode it did not know).
    const auto& r = out.reply;
    if (!payload.empty() && payload[0] == 0) {
        // NAT-PMP (RFC 6886): a response with the request's opcode + 128.
        if (r.size() < 2 || r[0] != 0 || r[1] != (payload[1] | 0x80))
            broken("a NAT-PMP answer that is not a NAT-PMP response");
    } else {
        if (r.size() < pcp::kHeaderSize || r.size() > pcp::kMaxMessage || r.size() % 4 != 0 ||
            r[0] != pcp::kVersion || !(r[1] & 0x80) || r[3] >= pcp::kResultCodes)
            broken("an answer that is not a PCP response");
        if ((r[1] & 0x7f) <= 2 && !pcp::decode_response(r))
            broken("an answer about a known opcode that does not decode");
    }
}

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

    // The payloads of requests still waiting, by tag (an answer is checked against its own).
    std::map<uint64_t, std::pair<std::vector<uint8_t>, bool>> asked;
    uint64_t tag = 0;
    auto conclude = [&](const pcp::Outcome& out) {
        const auto it = asked.find(out.tag);
        if (it == asked.end()) broken("an outcome for no request");
        check_answer(out, it->second.first, it->second.second);
        asked.erase(it);
    };
    size_t at = 0;
    while (at + 3 <= size) {
        const uint8_t control = data[at];
        const size_t length = std::min<size_t>(size - at - 3, (size_t{data[at + 1]} << 8 | data[at + 2]) % 1200);
        const std::span<const uint8_t> payload(data + at + 3, length);
        at += 3 + length;
        const Ipv4Address source = kSources[control & 3];
        // Bits 2-3: the NAT answers at once (0, 1), later (2), or lets the late ones in (3).
        nat.slow = (control >> 2 & 3) == 2;
        if ((control >> 2 & 3) == 3) nat.let_late_in();
        clock.advance_ms(static_cast<uint64_t>(control >> 4) * 1000);
        server.expire();
        asked[++tag] = {std::vector<uint8_t>(payload.begin(), payload.end()), source == kSources[3]};
        const pcp::Outcome out = server.handle(pcp::Received{source, 5350, payload, tag});
        if (!out.pending) conclude(out);
        for (const pcp::Outcome& o : server.poll_nat()) conclude(o);
        if (server.waiting() != asked.size()) broken("requests waiting and outcomes disagree");
        if (server.waiting() != 0) continue;  // the NAT has reservations the server awaits
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
