// ARP (RFC 826) and next-hop resolution through the worker loop.

#include <gtest/gtest.h>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace arp = common::arp;

class Arp : public ::testing::Test {
protected:
    void SetUp() override { h.start(); }
    const Topology& t() { return h.topo(); }
    Frame udp_from_subscriber(uint16_t sport) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(t().subscriber1, t().server1)
            .udp(sport, 53)
            .payload("q")
            .build();
    }
    // ARP requests are padded to the 60-byte Ethernet minimum.
    Frame padded(Frame f) {
        f.resize(60, 0);
        return f;
    }
    DataplaneHarness h;
};

TEST_F(Arp, AnswersForInsideAddressAndLearnsTheAsker) {
    h.inside().inject(arp_request(t().subscriber1_mac, t().subscriber1, t().inside.address));
    h.poll();
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], arp_reply(h.inside().mac(), t().inside.address, t().subscriber1_mac,
                               t().subscriber1));
    EXPECT_EQ(h.counter(Counter::arp_requests_answered), 1u);
    EXPECT_EQ(h.counter(Counter::arp_entries_learned), 1u);
}

// Found by cgn-fuzz-packet-path (docs/security.md): the reply, written over the request, kept
// the request's length, so the request's trailing bytes went back with it, and a request
// longer than the MTU (a port may receive one) was answered with a frame longer than the MTU.
TEST_F(Arp, ReplyIsTheArpMessageOnlyWhateverFollowedTheRequest) {
    for (const size_t length : {size_t{60}, size_t{1600}}) {
        Frame request = arp_request(t().subscriber1_mac, t().subscriber1, t().inside.address);
        request.resize(length, 0xab);
        h.inside().inject(request);
        h.poll();
        auto in = h.inside().drain();
        ASSERT_EQ(in.size(), 1u) << length;
        EXPECT_EQ(in[0], arp_reply(h.inside().mac(), t().inside.address, t().subscriber1_mac,
                                   t().subscriber1))
            << "request of " << length << " bytes, reply\n"
            << hex(in[0]);
    }
    EXPECT_EQ(h.counter(Counter::arp_requests_answered), 2u);
}

TEST_F(Arp, AnswersForPoolAddressesOnTheOutsideOnly) {
    const auto pool_addr = *common::Ipv4Address::parse("198.51.100.3");
    h.outside().inject(arp_request(t().gateway_mac, t().gateway, pool_addr));
    h.inside().inject(arp_request(t().subscriber1_mac, t().subscriber1, pool_addr));
    h.poll();
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], arp_reply(h.outside().mac(), pool_addr, t().gateway_mac, t().gateway));
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_arp_not_for_us), 1u);
}

TEST_F(Arp, IgnoresRequestsForOtherHostsAndMalformedArp) {
    h.inside().inject(arp_request(t().subscriber1_mac, t().subscriber1, t().subscriber2));
    Frame bad = arp_request(t().subscriber1_mac, t().subscriber1, t().inside.address);
    bad[common::eth::kHeaderLength + arp::kHardwareLength] = 8;
    h.inside().inject(bad);
    h.poll();
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_arp_not_for_us), 1u);
    EXPECT_EQ(h.counter(Counter::drop_arp_malformed), 1u);
}

TEST_F(Arp, PacketsWaitForResolutionThenLeaveInOrder) {
    for (uint16_t i = 0; i < 5; ++i)
        h.inside().inject(udp_from_subscriber(static_cast<uint16_t>(40000 + i)));
    h.poll();
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);  // only the ARP request for the gateway
    EXPECT_EQ(out[0], padded(PacketBuilder()
                                 .ethernet(h.outside().mac(), common::MacAddress::broadcast())
                                 .arp(arp::kOpRequest, h.outside().mac(), t().outside.address,
                                      common::MacAddress{}, t().gateway)
                                 .build()));
    EXPECT_EQ(h.counter(Counter::neighbor_packets_queued), 4u);
    EXPECT_EQ(h.counter(Counter::drop_neighbor_queue_full), 1u);

    h.outside().inject(
        arp_reply(t().gateway_mac, t().gateway, h.outside().mac(), t().outside.address));
    h.poll();
    out = h.outside().drain();
    ASSERT_EQ(out.size(), 4u);
    for (uint16_t i = 0; i < 4; ++i) {
        EXPECT_TRUE(
            std::equal(t().gateway_mac.bytes.begin(), t().gateway_mac.bytes.end(), out[i].begin()));
        const auto m = h.worker().nat().find_mapping(common::ipv4::kProtoUdp, t().subscriber1.value,
                                                     40000 + i);
        ASSERT_TRUE(m.has_value());
        const uint8_t* l4 = out[i].data() + common::eth::kHeaderLength + 20;
        EXPECT_EQ((l4[0] << 8) | l4[1], m->second) << "packet " << i << " out of order";
    }
}

TEST_F(Arp, UnansweredResolutionGivesUpAfterThreeRequests) {
    h.inside().inject(udp_from_subscriber(40000));
    h.inside().inject(udp_from_subscriber(40001));
    h.poll();
    for (int s = 0; s < 3; ++s) {
        h.clock().advance_ms(1'000);
        h.poll(1000);  // the housekeeping visits every slot
    }
    size_t requests = 0;
    for (const auto& f : h.outside().drain()) requests += is_arp_request_for(f, t().gateway);
    EXPECT_EQ(requests, 3u);
    EXPECT_EQ(h.counter(Counter::arp_requests_sent), 3u);
    EXPECT_EQ(h.counter(Counter::drop_neighbor_unreachable), 2u);
    // During the hold-down new packets are dropped at once, then resolution is tried again.
    h.inside().inject(udp_from_subscriber(40002));
    h.poll();
    EXPECT_EQ(h.counter(Counter::drop_neighbor_unreachable), 3u);
}

TEST_F(Arp, ReplyToAnotherHostIsNotLearned) {
    // RFC 826 merges a sender only when it has an entry or the packet targets us.
    h.outside().inject(arp_reply(t().gateway_mac, t().gateway, h.outside().mac(),
                                 *common::Ipv4Address::parse("192.0.2.77")));
    h.poll();
    EXPECT_EQ(h.counter(Counter::drop_arp_not_for_us), 1u);
    EXPECT_EQ(h.counter(Counter::arp_entries_learned), 0u);
}

}  // namespace
}  // namespace cgn::test
