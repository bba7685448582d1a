#include "control/pcp/server_selection.hpp"

#include <algorithm>

namespace cgn::ctl::pcp {

namespace {

// The MAP data of an answer (PEER's includes it), or none.
const MapData* mapping_of(const Response& r) {
    if (r.map) return &*r.map;
    if (r.peer) return &*r.peer;
    return nullptr;
}

}  // namespace

KnownServer::KnownServer(std::vector<IpAddress> addresses,
                         std::vector<common::Ipv4Prefix> declared_external)
    : addresses_(order_server_addresses(std::move(addresses))),
      declared_external_(std::move(declared_external)) {}

std::vector<IpAddress> KnownServer::addresses_to_try() const {
    std::vector<IpAddress> out = addresses_;
    if (answered_by_) {
        const auto it = std::find(out.begin(), out.end(), *answered_by_);
        if (it != out.end()) std::rotate(out.begin(), it, it + 1);
    }
    return out;
}

std::string KnownServer::name() const {
    return addresses_.empty() ? std::string("(no address)") : addresses_.front().to_string();
}

bool KnownServer::answered(const IpAddress& by, const Response& response, uint64_t client_seconds) {
    if (std::find(addresses_.begin(), addresses_.end(), by) != addresses_.end()) answered_by_ = by;
    const MapData* m = mapping_of(response);
    // Only a granted mapping says where this server's NAT puts it; an error answer carries
    // back the request's own suggestion (RFC 6887 §7.3: a copy of the request).
    if (m && response.result == ResultCode::success && response.lifetime != 0 &&
        !no_address_wanted(m->external_address) &&
        std::find(seen_external_.begin(), seen_external_.end(), m->external_address) ==
            seen_external_.end())
        seen_external_.push_back(m->external_address);
    return epoch_.valid(response.epoch, client_seconds);
}

KnownServer::Control KnownServer::controls(const IpAddress& external) const {
    if (!declared_external_.empty()) {
        const auto v4 = external.ipv4();
        const bool inside =
            v4 && std::any_of(declared_external_.begin(), declared_external_.end(),
                              [&](const common::Ipv4Prefix& p) { return p.contains(*v4); });
        return inside ? Control::yes : Control::no;  // the operator's word is final
    }
    if (std::find(seen_external_.begin(), seen_external_.end(), external) != seen_external_.end())
        return Control::yes;
    // A server that gave other addresses may still own this one (a CGN has a pool), so it is
    // not ruled out, only asked after those never seen.
    return seen_external_.empty() ? Control::unknown : Control::elsewhere;
}

bool no_address_wanted(const IpAddress& wanted_external) {
    return wanted_external.is_zero() || wanted_external == IpAddress::ipv4_any();
}

bool grants_address(const Response& response, const IpAddress& wanted_external) {
    const MapData* m = mapping_of(response);
    return m && response.result == ResultCode::success && response.lifetime != 0 &&
           m->external_address == wanted_external;
}

MappingPlan plan_mapping(const KnownServers& servers, const IpAddress& wanted_external,
                         bool deleting) {
    MappingPlan plan;
    std::vector<size_t> all(servers.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    // One server: RFC 6887 alone applies, where a suggested address is a hint (§11.3): the
    // server is asked whatever it controls.
    if (servers.size() == 1) return {MappingPlan::Kind::owner, all};
    if (no_address_wanted(wanted_external)) return {MappingPlan::Kind::every_server, all};

    std::vector<size_t> unknown, elsewhere;
    for (size_t i : all) {
        switch (servers[i].controls(wanted_external)) {
            case KnownServer::Control::yes:
                return {MappingPlan::Kind::owner, {i}};  // the first known owner: one mapping
            case KnownServer::Control::unknown:
                unknown.push_back(i);
                break;
            case KnownServer::Control::elsewhere:
                elsewhere.push_back(i);
                break;
            case KnownServer::Control::no:
                break;  // declared another's: never asked for this address
        }
    }
    plan.servers = std::move(unknown);
    plan.servers.insert(plan.servers.end(), elsewhere.begin(), elsewhere.end());
    if (plan.servers.empty())
        plan.kind = MappingPlan::Kind::nobody;
    else
        plan.kind = deleting ? MappingPlan::Kind::every_server : MappingPlan::Kind::in_turn;
    return plan;
}

}  // namespace cgn::ctl::pcp
