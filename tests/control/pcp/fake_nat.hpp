#pragma once
// A NAT for the PCP service's tests (NatControl): one paired address for every subscriber,
// ports handed out from 20000 up, a suggestion honoured when free; dynamic and static
// mappings set by the test. Port sets (RFC 7753) as consecutive free ports, at most
// port_set_limit of them.

#include <algorithm>
#include <map>
#include <optional>
#include <utility>
#include <set>
#include <vector>

#include "control/pcp/server.hpp"

namespace cgn::ctl::pcp::test {

using common::Ipv4Address;

inline Ipv4Address ip(const char* text) { return *Ipv4Address::parse(text); }

inline const Ipv4Address kSub1 = ip("100.64.0.11");
inline const Ipv4Address kSub2 = ip("100.64.0.13");
inline const Ipv4Address kOperator = ip("100.64.255.1");  // an operator system on the inside
inline const Ipv4Address kPaired = ip("198.51.100.1");     // every subscriber's paired address

class FakeNat final : public NatControl {
public:
    std::map<MappingKey, Endpoint> dynamic;
    std::set<MappingKey> statics;
    std::set<uint16_t> taken;
    std::map<MappingKey, Endpoint> reserved;
    ResultCode fail_with = ResultCode::success;
    uint16_t next = 20000;
    std::vector<std::pair<MappingKey, uint32_t>> peers;  // PEER requests: key, lifetime
    uint32_t peer_lifetime = 0;                          // what PEER answers as the NAT's
    uint16_t port_set_limit = 0xffff;  // the largest port set granted (fewer ports free)
    std::vector<std::pair<MappingKey, uint16_t>> released_sets;  // release_port_set calls
    // While true, answers are kept back until answer_later() (the workers are slow).
    bool defer = false;
    std::vector<NatRequest> asked;  // every request, in order
    std::vector<NatAnswer> held_back;

    bool static_mapping(const MappingKey& k) override { return statics.count(k) != 0; }
    void submit(const NatRequest& q) override {
        asked.push_back(q);
        NatAnswer a{q.id, grant(q)};
        (defer ? held_back : ready_).push_back(a);
    }
    void release(const MappingKey& k, const Endpoint& e) override {
        taken.erase(e.port);
        reserved.erase(k);
    }
    void release_port_set(const MappingKey& first, const Endpoint& e, uint16_t size) override {
        released_sets.emplace_back(first, size);
        NatControl::release_port_set(first, e, size);
    }
    std::vector<NatAnswer> take_answers() override { return std::exchange(ready_, {}); }
    // The answers kept back become ready.
    void answer_later() {
        for (auto& a : held_back) ready_.push_back(a);
        held_back.clear();
    }

private:
    Grant grant(const NatRequest& q) {
        switch (q.kind) {
            case NatRequest::Kind::map:
                if (q.port_set_size != 0) return map_set(q);
                return map(q.key, q.suggested, q.exact);
            case NatRequest::Kind::peer:
                peers.emplace_back(q.key, q.lifetime);
                if (fail_with != ResultCode::success) return {fail_with, {}};
                return {ResultCode::success, Endpoint{kPaired, 31000}, peer_lifetime};
            case NatRequest::Kind::external_address:
                if (fail_with == ResultCode::network_failure) return {fail_with, {}};
                return {ResultCode::success, Endpoint{kPaired, 0}};
        }
        return {ResultCode::network_failure, {}};
    }
    // §11.3 as the dataplane does it: the existing dynamic mapping, else the suggestion when
    // free, else (unless exact) the next free port.
    Grant map(const MappingKey& k, std::optional<Endpoint> suggested, bool exact) {
        if (fail_with != ResultCode::success) return {fail_with, {}};
        if (auto it = dynamic.find(k); it != dynamic.end()) {
            reserved[k] = it->second;
            return {ResultCode::success, it->second};
        }
        Endpoint e{kPaired, 0};
        const bool usable = suggested && (suggested->address.value == 0 ||
                                          suggested->address == kPaired);
        if (usable && taken.count(suggested->port) == 0) {
            e.port = suggested->port;
        } else if (exact && suggested) {
            return {ResultCode::cannot_provide_external, {}};
        } else {
            while (taken.count(next)) ++next;
            e.port = next;
        }
        taken.insert(e.port);
        reserved[k] = e;
        return {ResultCode::success, e};
    }
    // RFC 7753 as the dataplane does it, simplified: the suggestion when the whole set is
    // free there (exactly it, when exact), else the first run of free ports from `next`
    // (starting on the first internal port's parity when asked); no more than port_set_limit.
    Grant map_set(const NatRequest& q) {
        if (fail_with != ResultCode::success) return {fail_with, {}};
        const uint32_t n = std::min<uint32_t>(q.port_set_size, port_set_limit);
        auto free_run = [&](uint32_t start) {
            uint32_t k = 0;
            while (k < n && start + k <= 0xffff && taken.count(start + k) == 0) ++k;
            return k;
        };
        // The first port is mapped already: its set is the answer (a refresh), as far as the
        // next ports are mapped after it.
        if (const auto it = reserved.find(q.key); it != reserved.end()) {
            uint32_t k = 1;
            while (k < n) {
                const auto member =
                    reserved.find(MappingKey{q.key.internal, q.key.protocol,
                                             static_cast<uint16_t>(q.key.internal_port + k)});
                if (member == reserved.end() || member->second.port != it->second.port + k) break;
                ++k;
            }
            Grant g{ResultCode::success, it->second};
            g.port_set_size = static_cast<uint16_t>(k);
            return g;
        }
        auto parity_ok = [&](uint32_t port) {
            return !q.port_set_parity || ((port ^ q.key.internal_port) & 1) == 0;
        };
        uint32_t start = 0;
        if (q.suggested && (q.suggested->address.value == 0 || q.suggested->address == kPaired) &&
            free_run(q.suggested->port) == n && parity_ok(q.suggested->port)) {
            start = q.suggested->port;
        } else if (q.exact && q.suggested) {
            return {ResultCode::cannot_provide_external, {}};
        } else {
            start = next;
            while (free_run(start) < n || !parity_ok(start)) ++start;
        }
        for (uint32_t i = 0; i < n; ++i) {
            taken.insert(static_cast<uint16_t>(start + i));
            reserved[MappingKey{q.key.internal, q.key.protocol,
                                static_cast<uint16_t>(q.key.internal_port + i)}] =
                Endpoint{kPaired, static_cast<uint16_t>(start + i)};
        }
        Grant g{ResultCode::success, Endpoint{kPaired, static_cast<uint16_t>(start)}};
        g.port_set_size = static_cast<uint16_t>(n);
        return g;
    }
    std::vector<NatAnswer> ready_;
};

// A request served to its end against a FakeNat that answers at once (or when the test lets
// it): the outcome of `r` itself.
inline Outcome serve_now(Server& server, Received r) {
    static uint64_t tags = 0;
    r.tag = ++tags;
    Outcome out = server.handle(r);
    if (!out.pending) return out;
    for (Outcome& o : server.poll_nat())
        if (o.tag == r.tag) return o;
    return out;  // still pending
}

}  // namespace cgn::ctl::pcp::test
