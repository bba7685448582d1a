// What inbound traffic may open (issue 9 item 6): under endpoint-independent filtering a packet
// from a new remote endpoint opens a session on the mapping, but
//   - such sessions are bounded per mapping (--max-inbound-sessions-per-mapping, default 256)
//     and take nothing of the subscriber's own session quota or new-session rate, so a remote
//     host spraying a mapped endpoint cannot lock the subscriber out;
//   - an inbound TCP segment opens a session only when it is a SYN (RFC 7857 §2, the RFC 6146
//     state machine: in CLOSED only a SYN opens a session).

#include <gtest/gtest.h>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace ipv4 = common::ipv4;
namespace tcp = common::tcp;

class InboundSessions : public ::testing::Test {
protected:
    void start() {
        h.start();
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }
    Frame inside_udp(uint16_t sport, uint16_t dport) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(t().subscriber1, t().server1)
            .udp(sport, dport)
            .payload("out")
            .build();
    }
    Frame outside_udp(std::pair<uint32_t, uint16_t> ext, uint16_t sport) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(t().server2, common::Ipv4Address{ext.first})
            .udp(sport, ext.second)
            .payload("in")
            .build();
    }
    Frame inside_tcp(uint16_t sport, uint8_t flags) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(t().subscriber1, t().server1)
            .tcp(sport, 80, flags, 1000)
            .build();
    }
    Frame outside_tcp(std::pair<uint32_t, uint16_t> ext, uint16_t sport, uint8_t flags) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(t().server2, common::Ipv4Address{ext.first})
            .tcp(sport, ext.second, flags, 5000)
            .build();
    }
    DataplaneHarness h;
};

// The lock-out seen before: with a subscriber session limit of 16, 300 inbound datagrams from
// 300 source ports to one mapped endpoint used up the subscriber's sessions; its next
// outbound flows were refused with host unreachable.
TEST_F(InboundSessions, ASprayFromOutsideLeavesTheSubscribersQuotaAlone) {
    h.settings().nat.limits.max_sessions = 16;
    start();
    EXPECT_EQ(h.settings().nat.limits.max_inbound_sessions_per_mapping, 256u);  // the default
    h.inside().inject(inside_udp(40000, 9));
    h.poll(2);
    ASSERT_EQ(h.outside().drain().size(), 1u);
    const auto ext = *h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000);
    // In full bursts, as a real spray arrives.
    for (uint16_t i = 0; i < 300; ++i) {
        h.outside().inject(outside_udp(ext, static_cast<uint16_t>(10000 + i)));
        if (i % 32 == 31) h.poll();
    }
    h.poll(2);
    EXPECT_EQ(h.inside().drain().size(), 256u);
    EXPECT_EQ(h.counter(Counter::sessions_created_inbound), 256u);
    EXPECT_EQ(h.counter(Counter::drop_quota_inbound_sessions), 300u - 256u);
    EXPECT_EQ(h.counter(Counter::drop_quota_sessions), 0u);
    // The subscriber still opens the 15 outbound sessions its quota leaves (one is used), and
    // no more: the quota itself still holds.
    for (uint16_t i = 0; i < 16; ++i) h.inside().inject(inside_udp(40000, 100 + i));
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 15u);
    EXPECT_EQ(h.counter(Counter::drop_quota_sessions), 1u);
    EXPECT_EQ(*h.worker().nat().subscriber_sessions(t().subscriber1.value), 16u);
    // When the inbound sessions expire, the mapping's inbound room comes back.
    h.clock().advance_ms(uint64_t{h.settings().nat.timeouts.udp_s} * 1000 + 1000);
    h.poll(40);
    h.inside().inject(inside_udp(40000, 9));
    h.poll(2);
    h.outside().drain();
    h.outside().inject(outside_udp(ext, 20000));
    h.poll(2);
    EXPECT_EQ(h.inside().drain().size(), 1u);
}

// RFC 7857 §2 / RFC 6146 §3.5.2.2: only a SYN opens a session from outside. ACK, FIN, RST,
// SYN-ACK and a bare segment to a mapped TCP endpoint open nothing and are counted.
TEST_F(InboundSessions, OnlyAnInboundSynOpensATcpSession) {
    start();
    h.inside().inject(inside_tcp(40000, tcp::kSyn));
    h.poll(2);
    ASSERT_EQ(h.outside().drain().size(), 1u);
    const auto ext = *h.find_mapping(ipv4::kProtoTcp, t().subscriber1.value, 40000);
    const uint8_t not_syn[] = {tcp::kAck_,
                               tcp::kFin | tcp::kAck_,
                               tcp::kRst,
                               tcp::kRst | tcp::kAck_,
                               tcp::kSyn | tcp::kAck_,
                               0,
                               tcp::kSyn | tcp::kRst,
                               tcp::kPsh | tcp::kAck_};
    uint16_t port = 30000;
    for (uint8_t flags : not_syn) h.outside().inject(outside_tcp(ext, port++, flags));
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_out2in_tcp_not_syn), std::size(not_syn));
    EXPECT_EQ(h.counter(Counter::sessions_created_inbound), 0u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 1u);
    // A SYN (with ECN bits, as Linux may send) opens one and reaches the subscriber.
    h.outside().inject(outside_tcp(ext, 31000, tcp::kSyn | 0xc0));
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(t().server2, t().subscriber1, 63)
                         .tcp(31000, 40000, tcp::kSyn | 0xc0, 5000)
                         .build());
    EXPECT_EQ(h.counter(Counter::sessions_created_inbound), 1u);
    // Segments of the session it opened pass, whatever their flags.
    h.outside().inject(outside_tcp(ext, 31000, tcp::kAck_));
    h.poll(2);
    EXPECT_EQ(h.inside().drain().size(), 1u);
}

}  // namespace
}  // namespace cgn::test
