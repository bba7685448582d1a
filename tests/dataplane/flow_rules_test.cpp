// The outside placement as rte_flow rules (dataplane/io/flow_rules.hpp): the pattern and action
// each rule hands the device, and what happens on a device that takes no rules (every lab PMD
// here: net_ring, net_af_packet, net_af_xdp, and net_tap on a kernel without TC flower). No
// device on this machine accepts rte_flow rules, so a NIC taking them is not shown here.
#include "dataplane/io/flow_rules.hpp"

#include <gtest/gtest.h>
#include <rte_byteorder.h>
#include <rte_ethdev.h>

#include "harness.hpp"

namespace cgn::test {
namespace {

using dp::PlacedProtocol;
using dp::PlacementRule;
using dp::PortMatch;

TEST(FlowRules, UdpAndTcpRulesMatchTheMaskedDestinationPortAndNameTheQueue) {
    const PortMatch match{0x0200, 0x0600, 1};
    for (PlacedProtocol p : {PlacedProtocol::udp, PlacedProtocol::tcp}) {
        SCOPED_TRACE(dp::to_string(p));
        const PlacementRule rule(p, match);
        EXPECT_EQ(rule.attr().ingress, 1u);
        const rte_flow_item* item = rule.pattern();
        EXPECT_EQ(item[0].type, RTE_FLOW_ITEM_TYPE_ETH);
        EXPECT_EQ(item[0].spec, nullptr) << "any Ethernet frame";
        EXPECT_EQ(item[1].type, RTE_FLOW_ITEM_TYPE_IPV4);
        EXPECT_EQ(item[1].spec, nullptr) << "any addresses";
        EXPECT_EQ(item[3].type, RTE_FLOW_ITEM_TYPE_END);
        rte_be16_t spec_port = 0, mask_port = 0, src_mask = 1;
        if (p == PlacedProtocol::udp) {
            ASSERT_EQ(item[2].type, RTE_FLOW_ITEM_TYPE_UDP);
            spec_port = static_cast<const rte_flow_item_udp*>(item[2].spec)->hdr.dst_port;
            mask_port = static_cast<const rte_flow_item_udp*>(item[2].mask)->hdr.dst_port;
            src_mask = static_cast<const rte_flow_item_udp*>(item[2].mask)->hdr.src_port;
        } else {
            ASSERT_EQ(item[2].type, RTE_FLOW_ITEM_TYPE_TCP);
            spec_port = static_cast<const rte_flow_item_tcp*>(item[2].spec)->hdr.dst_port;
            mask_port = static_cast<const rte_flow_item_tcp*>(item[2].mask)->hdr.dst_port;
            src_mask = static_cast<const rte_flow_item_tcp*>(item[2].mask)->hdr.src_port;
        }
        EXPECT_EQ(item[2].last, nullptr);
        EXPECT_EQ(rte_be_to_cpu_16(spec_port), 0x0200) << "network byte order";
        EXPECT_EQ(rte_be_to_cpu_16(mask_port), 0x0600);
        EXPECT_EQ(src_mask, 0) << "the source port is not matched";
        const rte_flow_action* action = rule.actions();
        ASSERT_EQ(action[0].type, RTE_FLOW_ACTION_TYPE_QUEUE);
        EXPECT_EQ(static_cast<const rte_flow_action_queue*>(action[0].conf)->index, 1);
        EXPECT_EQ(action[1].type, RTE_FLOW_ACTION_TYPE_END);
    }
}

TEST(FlowRules, IcmpRulesMatchEchoRepliesByIdentifier) {
    const PlacementRule rule(PlacedProtocol::icmp_echo_reply, PortMatch{0x0400, 0x0c00, 2});
    const rte_flow_item& item = rule.pattern()[2];
    ASSERT_EQ(item.type, RTE_FLOW_ITEM_TYPE_ICMP);
    const auto* spec = static_cast<const rte_flow_item_icmp*>(item.spec);
    const auto* mask = static_cast<const rte_flow_item_icmp*>(item.mask);
    EXPECT_EQ(spec->hdr.icmp_type, 0) << "echo reply";
    EXPECT_EQ(mask->hdr.icmp_type, 0xff);
    EXPECT_EQ(rte_be_to_cpu_16(spec->hdr.icmp_ident), 0x0400);
    EXPECT_EQ(rte_be_to_cpu_16(mask->hdr.icmp_ident), 0x0c00);
    EXPECT_EQ(mask->hdr.icmp_seq_nb, 0);
    EXPECT_EQ(static_cast<const rte_flow_action_queue*>(rule.actions()[0].conf)->index, 2);
}

// A device without rte_flow: nothing installed, the reason names the rule and the device's
// answer, and the port keeps working (the handoff rings place the packets).
TEST(FlowRules, ADeviceWithoutFlowRulesRefusesAndThePortKeepsWorking) {
    DataplaneHarness h(2);
    const auto matches = dp::outside_placement(common::PortRange{}, 512, 2);
    ASSERT_EQ(matches.size(), 2u);
    const dp::PlacementOutcome out = dp::install_placement(h.outside().port_id(), matches);
    EXPECT_EQ(out.rules, 0u);
    EXPECT_NE(out.refused.find("the device refused the rule for UDP port 0/0x0200 -> queue 0"),
              std::string::npos)
        << out.refused;
    rte_eth_link link{};
    EXPECT_EQ(rte_eth_link_get_nowait(h.outside().port_id(), &link), 0);
}

TEST(FlowRules, TooManyRulesAreNotTried) {
    DataplaneHarness h(2);
    std::vector<PortMatch> matches(dp::kMaxPlacementMatches + 1, PortMatch{0, 0xffff, 0});
    const dp::PlacementOutcome out = dp::install_placement(h.outside().port_id(), matches);
    EXPECT_EQ(out.rules, 0u);
    EXPECT_NE(out.refused.find("1025 rules per protocol needed, more than 1024"),
              std::string::npos)
        << out.refused;
}

TEST(FlowRules, NoMatchesNothingToRefuse) {
    DataplaneHarness h(1);
    const dp::PlacementOutcome out = dp::install_placement(h.outside().port_id(), {});
    EXPECT_EQ(out.rules, 0u);
    EXPECT_TRUE(out.refused.empty());
}

}  // namespace
}  // namespace cgn::test
