#pragma once
// The outside placement (flow_placement.hpp) as rte_flow rules on the outside port: for each
// match, one rule per protocol (UDP and TCP on the destination port, ICMP echo replies on the
// identifier) with the action "to RX queue w". All or nothing: when the device refuses one rule,
// the ones already created are destroyed and the answer says which rule and why; packets then
// reach their owner through RSS and the handoff rings, as without rules.

#include <rte_flow.h>

#include <cstdint>
#include <span>
#include <string>

#include "dataplane/io/flow_placement.hpp"

namespace cgn::dp {

enum class PlacedProtocol : uint8_t { udp, tcp, icmp_echo_reply };
inline constexpr PlacedProtocol kPlacedProtocols[] = {
    PlacedProtocol::udp, PlacedProtocol::tcp, PlacedProtocol::icmp_echo_reply};
const char* to_string(PlacedProtocol p);

// One rule as rte_flow takes it: ETH / IPV4 / UDP|TCP|ICMP / END -> QUEUE / END. The pattern
// and actions point into the object itself, so it is neither copied nor moved.
class PlacementRule {
public:
    PlacementRule(PlacedProtocol protocol, const PortMatch& match);
    PlacementRule(const PlacementRule&) = delete;
    PlacementRule& operator=(const PlacementRule&) = delete;

    const rte_flow_attr& attr() const { return attr_; }
    const rte_flow_item* pattern() const { return pattern_; }
    const rte_flow_action* actions() const { return actions_; }
    PlacedProtocol protocol() const { return protocol_; }
    const PortMatch& match() const { return match_; }

private:
    PlacedProtocol protocol_;
    PortMatch match_;
    rte_flow_attr attr_{};
    rte_flow_item_udp udp_spec_{}, udp_mask_{};
    rte_flow_item_tcp tcp_spec_{}, tcp_mask_{};
    rte_flow_item_icmp icmp_spec_{}, icmp_mask_{};
    rte_flow_action_queue queue_{};
    rte_flow_item pattern_[4]{};
    rte_flow_action actions_[2]{};
};

struct PlacementOutcome {
    unsigned rules = 0;   // rules installed (0 when refused or nothing to place)
    std::string refused;  // why none are: empty when the rules are in place or none are needed
};

// Installs the rules of `matches` on the started port `port_id` (queue w for worker w).
PlacementOutcome install_placement(uint16_t port_id, std::span<const PortMatch> matches);

}  // namespace cgn::dp
