#include "dataplane/io/flow_rules.hpp"

#include <rte_byteorder.h>
#include <rte_errno.h>

#include <vector>

namespace cgn::dp {

const char* to_string(PlacedProtocol p) {
    switch (p) {
        case PlacedProtocol::udp:
            return "UDP";
        case PlacedProtocol::tcp:
            return "TCP";
        case PlacedProtocol::icmp_echo_reply:
            return "ICMP echo reply";
    }
    return "?";
}

PlacementRule::PlacementRule(PlacedProtocol protocol, const PortMatch& match)
    : protocol_(protocol), match_(match) {
    attr_.ingress = 1;
    const rte_be16_t value = rte_cpu_to_be_16(match.value);
    const rte_be16_t mask = rte_cpu_to_be_16(match.mask);
    pattern_[0].type = RTE_FLOW_ITEM_TYPE_ETH;  // any Ethernet frame ...
    pattern_[1].type = RTE_FLOW_ITEM_TYPE_IPV4;  // ... carrying IPv4 (any addresses) ...
    rte_flow_item& l4 = pattern_[2];
    switch (protocol) {
        case PlacedProtocol::udp:
            udp_spec_.hdr.dst_port = value;
            udp_mask_.hdr.dst_port = mask;
            l4 = {RTE_FLOW_ITEM_TYPE_UDP, &udp_spec_, nullptr, &udp_mask_};
            break;
        case PlacedProtocol::tcp:
            tcp_spec_.hdr.dst_port = value;
            tcp_mask_.hdr.dst_port = mask;
            l4 = {RTE_FLOW_ITEM_TYPE_TCP, &tcp_spec_, nullptr, &tcp_mask_};
            break;
        case PlacedProtocol::icmp_echo_reply:
            // The identifier of an echo reply is the external "port" of its mapping.
            icmp_spec_.hdr.icmp_type = 0;  // echo reply (RFC 792)
            icmp_mask_.hdr.icmp_type = 0xff;
            icmp_spec_.hdr.icmp_ident = value;
            icmp_mask_.hdr.icmp_ident = mask;
            l4 = {RTE_FLOW_ITEM_TYPE_ICMP, &icmp_spec_, nullptr, &icmp_mask_};
            break;
    }
    pattern_[3].type = RTE_FLOW_ITEM_TYPE_END;
    queue_.index = static_cast<uint16_t>(match.worker);
    actions_[0] = {RTE_FLOW_ACTION_TYPE_QUEUE, &queue_};
    actions_[1] = {RTE_FLOW_ACTION_TYPE_END, nullptr};
}

namespace {

std::string refusal(const PlacementRule& rule, int rc, const rte_flow_error& error) {
    const std::string code = rte_strerror(-rc);
    std::string why = error.message != nullptr ? error.message : code;
    if (why != code) why += " (" + code + ")";
    return std::string("the device refused the rule for ") + to_string(rule.protocol()) + " " +
           to_string(rule.match()) + ": " + why;
}

}  // namespace

PlacementOutcome install_placement(uint16_t port_id, std::span<const PortMatch> matches) {
    PlacementOutcome out;
    if (matches.empty()) return out;
    if (matches.size() > kMaxPlacementMatches) {
        out.refused = std::to_string(matches.size()) + " rules per protocol needed, more than " +
                      std::to_string(kMaxPlacementMatches) +
                      " (a --port-block-size that is a power of two and divides the first port "
                      "of --port-range, with a power-of-two number of workers, needs one per "
                      "worker)";
        return out;
    }
    std::vector<rte_flow*> created;
    for (PlacedProtocol protocol : kPlacedProtocols) {
        for (const PortMatch& m : matches) {
            const PlacementRule rule(protocol, m);
            rte_flow_error error{};
            int rc = rte_flow_validate(port_id, &rule.attr(), rule.pattern(), rule.actions(),
                                       &error);
            rte_flow* flow = nullptr;
            if (rc == 0) {
                flow = rte_flow_create(port_id, &rule.attr(), rule.pattern(), rule.actions(),
                                       &error);
                if (flow == nullptr) rc = -(rte_errno != 0 ? rte_errno : EINVAL);
            }
            if (flow == nullptr) {
                out.refused = refusal(rule, rc, error);
                for (rte_flow* f : created) rte_flow_destroy(port_id, f, &error);
                return out;
            }
            created.push_back(flow);
        }
    }
    out.rules = static_cast<unsigned>(created.size());
    return out;
}

}  // namespace cgn::dp
