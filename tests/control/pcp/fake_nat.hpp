#pragma once
// A NAT for the PCP service's tests (NatControl): one paired address for every subscriber,
// ports handed out from 20000 up, a suggestion honoured when free; dynamic and static
// mappings set by the test.

#include <map>
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
    std::vector<std::pair<MappingKey, uint32_t>> peers;  // PEER calls: key, lifetime

    std::optional<Endpoint> dynamic_mapping(const MappingKey& k) override {
        auto it = dynamic.find(k);
        if (it == dynamic.end()) return std::nullopt;
        return it->second;
    }
    bool static_mapping(const MappingKey& k) override { return statics.count(k) != 0; }
    Grant reserve(const MappingKey& k, std::optional<Endpoint> suggested, bool exact) override {
        if (fail_with != ResultCode::success) return {fail_with, {}};
        Endpoint e{kPaired, 0};
        const bool usable = suggested && (suggested->address.value == 0 ||
                                          suggested->address == kPaired);
        if (usable && (taken.count(suggested->port) == 0 || dynamic_mapping(k) == suggested)) {
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
    void release(const MappingKey& k, const Endpoint& e) override {
        taken.erase(e.port);
        reserved.erase(k);
    }
    std::optional<Ipv4Address> external_address(Ipv4Address) override {
        if (fail_with == ResultCode::network_failure) return std::nullopt;
        return kPaired;
    }
    Grant peer(const MappingKey& k, const Endpoint&, std::optional<Endpoint>,
               uint32_t lifetime) override {
        peers.emplace_back(k, lifetime);
        if (fail_with != ResultCode::success) return {fail_with, {}};
        return {ResultCode::success, Endpoint{kPaired, 31000}};
    }
};


}  // namespace cgn::ctl::pcp::test
