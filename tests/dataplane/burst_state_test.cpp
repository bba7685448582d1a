// State must not leak between the packets of one burst: the worker parses a burst into reused
// views, and a field left from one packet (an ICMP error's quote above all) must never decide
// what happens to the next. Each test here puts a whole burst on the ring before one poll.

#include <gtest/gtest.h>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace icmp = common::icmp;

class BurstState : public ::testing::Test {
protected:
    void SetUp() override {
        h.start();
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }
    Frame udp_from_subscriber(uint16_t sport) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(t().subscriber1, t().server1, 64, sport)
            .udp(sport, 9)
            .payload("data")
            .build();
    }
    DataplaneHarness h;
};

// Seen from outside before the fix: 100 pairs "malformed ICMP error, valid UDP datagram" from
// a subscriber; none of the datagrams left, all counted as errors about no session.
TEST_F(BurstState, DatagramAfterAMalformedIcmpErrorIsTranslated) {
    constexpr unsigned kPairs = dp::Worker::kBurst / 2;
    for (unsigned i = 0; i < kPairs; ++i) {
        // A port unreachable whose quote is too short to name a session.
        h.inside().inject(PacketBuilder()
                              .ethernet(t().subscriber1_mac, h.inside().mac())
                              .ipv4(t().subscriber1, t().server1)
                              .icmp(icmp::kDestUnreachable, 3, 0)
                              .payload("short quote")
                              .build());
        h.inside().inject(udp_from_subscriber(static_cast<uint16_t>(40000 + i)));
    }
    h.poll(2);
    const auto out = h.outside().drain();
    EXPECT_EQ(out.size(), kPairs);
    EXPECT_EQ(h.counter(Counter::drop_icmp_error_malformed), kPairs);
    EXPECT_EQ(h.counter(Counter::drop_icmp_error_no_session), 0u);
    EXPECT_EQ(h.counter(Counter::in2out_translated), kPairs);
}

// A valid error followed by a datagram: the datagram must not be taken for an error and
// rewritten through the previous packet's quote.
TEST_F(BurstState, DatagramAfterATranslatedIcmpErrorIsTranslatedOnItsOwn) {
    h.inside().inject(udp_from_subscriber(40000));
    h.poll(2);
    h.outside().drain();
    const auto ext = *h.find_mapping(common::ipv4::kProtoUdp, t().subscriber1.value, 40000);
    const common::Ipv4Address ext_addr{ext.first};
    h.reset_counters();

    const Frame error = PacketBuilder()
                            .ethernet(t().gateway_mac, h.outside().mac())
                            .ipv4(t().server1, ext_addr, 64, 77)
                            .icmp(icmp::kDestUnreachable, 3, 0)
                            .payload(PacketBuilder()
                                         .ipv4(ext_addr, t().server1, 63, 5)
                                         .udp(ext.second, 9)
                                         .payload("data")
                                         .build())
                            .build();
    const Frame reply = PacketBuilder()
                            .ethernet(t().gateway_mac, h.outside().mac())
                            .ipv4(t().server1, ext_addr, 64, 78)
                            .udp(9, ext.second)
                            .payload("reply")
                            .build();
    h.outside().inject(error);
    h.outside().inject(reply);
    h.poll(2);
    const auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 2u);
    EXPECT_EQ(in[1], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(t().server1, t().subscriber1, 63, 78)
                         .udp(9, 40000)
                         .payload("reply")
                         .build());
    EXPECT_EQ(h.counter(Counter::icmp_errors_translated), 1u);
    EXPECT_EQ(h.counter(Counter::out2in_translated), 1u);
}

}  // namespace
}  // namespace cgn::test
