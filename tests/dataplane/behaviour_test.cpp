// NAT behaviour through the worker loop: filtering modes (RFC 4787 REQ-8), idle timeouts with
// an injected clock (REQ-5, RFC 5382 REQ-5, RFC 5508), TCP state, table limits, port range.

#include <gtest/gtest.h>

#include <set>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::FilteringMode;
using common::PacketBuilder;
namespace tcp = common::tcp;
namespace ipv4 = common::ipv4;

class Behaviour : public ::testing::Test {
protected:
    void start() {
        h.start();
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }

    Frame out_udp(common::Ipv4Address src, uint16_t sport, common::Ipv4Address dst,
                  uint16_t dport) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(src, dst)
            .udp(sport, dport)
            .payload("in")
            .build();
    }
    Frame in_udp(uint16_t sport, common::Ipv4Address dst, uint16_t dport) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(t().subscriber1, dst)
            .udp(sport, dport)
            .payload("out")
            .build();
    }
    Frame in_tcp(uint16_t sport, uint8_t flags) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(t().subscriber1, t().server1)
            .tcp(sport, 80, flags)
            .build();
    }
    Frame out_tcp(std::pair<uint32_t, uint16_t> ext, uint8_t flags) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(t().server1, common::Ipv4Address{ext.first})
            .tcp(80, ext.second, flags)
            .build();
    }
    std::pair<uint32_t, uint16_t> open_udp(uint16_t sport) {
        h.inside().inject(in_udp(sport, t().server1, 3478));
        h.poll();
        EXPECT_EQ(h.outside().drain().size(), 1u);
        auto m = h.worker().nat().find_mapping(ipv4::kProtoUdp, t().subscriber1.value, sport);
        EXPECT_TRUE(m.has_value());
        return m.value_or(std::pair<uint32_t, uint16_t>{});
    }
    // Sends one inbound datagram to the external endpoint; true when the subscriber got it.
    bool inbound_arrives(common::Ipv4Address from, uint16_t from_port,
                         std::pair<uint32_t, uint16_t> ext) {
        h.outside().inject(out_udp(from, from_port, common::Ipv4Address{ext.first}, ext.second));
        h.poll();
        return h.inside().drain().size() == 1;
    }

    DataplaneHarness h;
};

struct FilteringCase {
    FilteringMode mode;
    bool other_host;  // a host the subscriber never sent to
    bool same_host_other_port;
    bool same_endpoint;
};

class Filtering : public Behaviour, public ::testing::WithParamInterface<FilteringCase> {};

TEST_P(Filtering, UnsolicitedInboundAcceptedAsConfigured) {
    const auto c = GetParam();
    h.settings().nat.filtering = c.mode;
    start();
    const auto ext = open_udp(40000);
    EXPECT_EQ(inbound_arrives(t().server2, 3478, ext), c.other_host);
    EXPECT_EQ(inbound_arrives(t().server1, 9999, ext), c.same_host_other_port);
    EXPECT_EQ(inbound_arrives(t().server1, 3478, ext), c.same_endpoint);
    const uint64_t refused = 3 - (c.other_host + c.same_host_other_port + c.same_endpoint);
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), refused);
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Rfc4787Req8, Filtering,
    ::testing::Values(FilteringCase{FilteringMode::endpoint_independent, true, true, true},
                      FilteringCase{FilteringMode::address_dependent, false, true, true},
                      FilteringCase{FilteringMode::address_and_port_dependent, false, false, true}),
    [](const auto& info) {
        return std::string(info.param.mode == FilteringMode::endpoint_independent ? "EIF"
                           : info.param.mode == FilteringMode::address_dependent  ? "ADF"
                                                                                  : "APDF");
    });

TEST_F(Behaviour, AddressDependentFilterForgetsAddressWhenItsSessionsExpire) {
    h.settings().nat.filtering = FilteringMode::address_dependent;
    h.settings().nat.timeouts.udp_s = 10;
    start();
    const auto ext = open_udp(40000);
    // A second remote keeps the mapping alive after server1's session has expired.
    h.clock().advance_ms(6'000);
    h.inside().inject(in_udp(40000, t().server2, 3478));
    h.poll();
    h.outside().drain();
    h.clock().advance_ms(5'000);  // server1's session: 11 s idle; server2's: 5 s
    h.poll();
    EXPECT_EQ(h.counter(Counter::sessions_expired), 1u);
    EXPECT_FALSE(inbound_arrives(t().server1, 3478, ext));
    EXPECT_TRUE(inbound_arrives(t().server2, 9, ext));
}

TEST_F(Behaviour, UdpSessionExpiresAfterIdleTimeoutNotBefore) {
    h.settings().nat.timeouts.udp_s = 30;
    start();
    const auto ext = open_udp(40000);
    h.clock().advance_ms(29'000);
    h.poll();
    EXPECT_EQ(h.counter(Counter::sessions_expired), 0u);
    // Traffic refreshes the session: idle time starts again.
    EXPECT_TRUE(inbound_arrives(t().server1, 3478, ext));
    h.clock().advance_ms(29'000);
    h.poll();
    EXPECT_EQ(h.counter(Counter::sessions_expired), 0u);
    h.clock().advance_ms(1'000);
    h.poll();
    EXPECT_EQ(h.counter(Counter::sessions_expired), 1u);
    EXPECT_EQ(h.counter(Counter::mappings_removed), 1u);
    EXPECT_EQ(h.worker().nat().session_count(), 0u);
    // The subscriber keeps its (now idle) port block for the hold-down (RFC 6888 REQ-8).
    EXPECT_EQ(h.worker().nat().subscriber_count(), 1u);
    EXPECT_FALSE(inbound_arrives(t().server1, 3478, ext));
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), 1u);
}

TEST_F(Behaviour, IcmpQueryTimeout) {
    h.settings().nat.timeouts.icmp_s = 60;
    start();
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1)
                          .icmp_echo(common::icmp::kEchoRequest, 5, 1)
                          .build());
    h.poll();
    h.clock().advance_ms(59'999);
    h.poll();
    EXPECT_EQ(h.worker().nat().session_count(), 1u);
    h.clock().advance_ms(1);
    h.poll();
    EXPECT_EQ(h.worker().nat().session_count(), 0u);
}

TEST_F(Behaviour, TcpEstablishedUsesLongTimeoutAndClosedUsesTransitory) {
    h.settings().nat.timeouts.tcp_established_s = 7440;
    h.settings().nat.timeouts.tcp_transitory_s = 240;
    start();
    h.inside().inject(in_tcp(50000, tcp::kSyn));
    h.poll();
    h.outside().drain();
    const auto ext = *h.worker().nat().find_mapping(ipv4::kProtoTcp, t().subscriber1.value, 50000);
    h.outside().inject(out_tcp(ext, tcp::kSyn | tcp::kAck_));
    h.inside().inject(in_tcp(50000, tcp::kAck_));
    h.poll();
    // Established: survives well past the transitory timeout.
    h.clock().advance_ms(3600'000);
    h.poll();
    EXPECT_EQ(h.worker().nat().session_count(), 1u);
    // Both FINs: transitory again, gone after 240 s idle.
    h.inside().inject(in_tcp(50000, tcp::kFin | tcp::kAck_));
    h.outside().inject(out_tcp(ext, tcp::kFin | tcp::kAck_));
    h.poll();
    h.clock().advance_ms(239'000);
    h.poll();
    EXPECT_EQ(h.worker().nat().session_count(), 1u);
    h.clock().advance_ms(1'000);
    h.poll();
    EXPECT_EQ(h.worker().nat().session_count(), 0u);
}

TEST_F(Behaviour, TcpHalfOpenAndResetUseTransitoryTimeout) {
    h.settings().nat.timeouts.tcp_transitory_s = 240;
    start();
    h.inside().inject(in_tcp(50001, tcp::kSyn));  // never answered
    h.inside().inject(in_tcp(50002, tcp::kSyn));
    h.poll();
    const auto ext = *h.worker().nat().find_mapping(ipv4::kProtoTcp, t().subscriber1.value, 50002);
    h.outside().inject(out_tcp(ext, tcp::kSyn | tcp::kAck_));
    h.poll();
    h.outside().inject(out_tcp(ext, tcp::kRst));  // RFC 7857 §2.2: kept ~4 minutes after RST
    h.poll();
    h.clock().advance_ms(240'000);
    h.poll();
    EXPECT_EQ(h.worker().nat().session_count(), 0u);
    EXPECT_EQ(h.counter(Counter::sessions_expired), 2u);
}

TEST_F(Behaviour, ExpiryWorkPerLoopIsBounded) {
    h.settings().nat.timeouts.udp_s = 1;
    start();
    const unsigned flows = 3 * dp::Worker::kExpiryBudget;
    for (unsigned i = 0; i < flows; ++i) {
        h.inside().inject(in_udp(static_cast<uint16_t>(20000 + i), t().server1, 53));
        if (i % 32 == 31) h.poll();
    }
    h.poll();
    EXPECT_EQ(h.worker().nat().session_count(), flows);
    h.clock().advance_ms(2'000);
    h.poll();
    EXPECT_EQ(h.counter(Counter::sessions_expired), dp::Worker::kExpiryBudget);
    h.poll(2);
    EXPECT_EQ(h.counter(Counter::sessions_expired), flows);
}

TEST_F(Behaviour, SessionTableFullDropsNewFlowsOnly) {
    h.settings().nat.max_sessions = 16;
    start();
    for (uint16_t i = 0; i < 20; ++i)
        h.inside().inject(in_udp(static_cast<uint16_t>(30000 + i), t().server1, 53));
    h.poll();
    EXPECT_EQ(h.outside().drain().size(), 16u);
    EXPECT_EQ(h.counter(Counter::drop_session_table_full), 4u);
    // Existing flows keep working.
    h.inside().inject(in_udp(30000, t().server1, 53));
    h.poll();
    EXPECT_EQ(h.outside().drain().size(), 1u);
}

TEST_F(Behaviour, ExternalPortsStayInConfiguredRange) {
    h.settings().nat.port_range = {5000, 5063};
    h.settings().nat.port_block_size = 64;
    h.settings().nat.pool = {*common::Ipv4Prefix::parse("198.51.100.1/32")};
    start();
    std::set<uint16_t> seen;
    for (uint16_t i = 0; i < 70; ++i) {
        h.inside().inject(in_udp(static_cast<uint16_t>(100 + i), t().server1, 53));
        h.poll();
        for (const auto& f : h.outside().drain()) {
            const uint16_t port =
                common::load_be16(f.data() + common::eth::kHeaderLength + ipv4::kMinHeaderLength);
            EXPECT_GE(port, 5000);
            EXPECT_LE(port, 5063);
            seen.insert(port);
        }
    }
    EXPECT_EQ(seen.size(), 64u);  // every port used once, then exhausted
    EXPECT_EQ(h.counter(Counter::drop_ports_exhausted), 6u);
}

TEST_F(Behaviour, ExpiredMappingsGiveTheirPortsBack) {
    h.settings().nat.port_range = {5000, 5063};
    h.settings().nat.port_block_size = 64;
    h.settings().nat.pool = {*common::Ipv4Prefix::parse("198.51.100.1/32")};
    h.settings().nat.timeouts.udp_s = 10;
    start();
    for (uint16_t i = 0; i < 64; ++i) {
        h.inside().inject(in_udp(static_cast<uint16_t>(100 + i), t().server1, 53));
        h.poll();
    }
    EXPECT_EQ(h.outside().drain().size(), 64u);
    h.inside().inject(in_udp(300, t().server1, 53));
    h.poll();
    EXPECT_EQ(h.counter(Counter::drop_ports_exhausted), 1u);
    h.clock().advance_ms(10'000);
    h.poll(2);
    EXPECT_EQ(h.counter(Counter::mappings_removed), 64u);
    for (uint16_t i = 0; i < 64; ++i) {
        h.inside().inject(in_udp(static_cast<uint16_t>(400 + i), t().server1, 53));
        h.poll();
    }
    EXPECT_EQ(h.outside().drain().size(), 64u);
    EXPECT_EQ(h.counter(Counter::drop_ports_exhausted), 1u);
}

TEST_F(Behaviour, DefaultRangeNeverUsesPortsBelow1024EvenForLowSourcePorts) {
    start();
    for (uint16_t sport = 1; sport <= 64; ++sport) {
        h.inside().inject(in_udp(sport, t().server1, 53));
        h.poll();
        for (const auto& f : h.outside().drain())
            EXPECT_GE(
                common::load_be16(f.data() + common::eth::kHeaderLength + ipv4::kMinHeaderLength),
                1024);
    }
}

}  // namespace
}  // namespace cgn::test

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace tcp = common::tcp;
namespace ipv4 = common::ipv4;

// RFC 5382 REQ-2 / RFC 7857 §2.1: simultaneous open (both ends send SYN) establishes the
// session, which then lives on the established timeout.
TEST(TcpBehaviour, SimultaneousOpenEstablishes) {
    DataplaneHarness h;
    h.settings().nat.filtering = common::FilteringMode::address_and_port_dependent;
    h.settings().nat.timeouts.tcp_transitory_s = 240;
    h.start();
    h.resolve_neighbors();
    const Topology& t = h.topo();
    h.inside().inject(PacketBuilder()
                          .ethernet(t.subscriber1_mac, h.inside().mac())
                          .ipv4(t.subscriber1, t.server1)
                          .tcp(50000, 7000, tcp::kSyn)
                          .build());
    h.poll();
    h.outside().drain();
    const auto ext = *h.find_mapping(ipv4::kProtoTcp, t.subscriber1.value, 50000);
    // The server's own SYN (not a SYN-ACK) crosses ours: it must get through.
    h.outside().inject(PacketBuilder()
                           .ethernet(t.gateway_mac, h.outside().mac())
                           .ipv4(t.server1, common::Ipv4Address{ext.first})
                           .tcp(7000, ext.second, tcp::kSyn)
                           .build());
    h.poll();
    EXPECT_EQ(h.inside().drain().size(), 1u);
    h.clock().advance_ms(600'000);  // well past the transitory timeout
    h.poll();
    EXPECT_EQ(h.worker().nat().session_count(), 1u);
}

// RFC 5382 REQ-4: an unsolicited inbound SYN that the filtering refuses is dropped silently
// (no RST, no ICMP is sent back) and creates nothing.
TEST(TcpBehaviour, UnsolicitedSynRefusedSilently) {
    DataplaneHarness h;
    h.settings().nat.filtering = common::FilteringMode::address_and_port_dependent;
    h.start();
    h.resolve_neighbors();
    h.reset_counters();
    const Topology& t = h.topo();
    h.inside().inject(PacketBuilder()
                          .ethernet(t.subscriber1_mac, h.inside().mac())
                          .ipv4(t.subscriber1, t.server1)
                          .tcp(50000, 443, tcp::kSyn)
                          .build());
    h.poll();
    h.outside().drain();
    const auto ext = *h.find_mapping(ipv4::kProtoTcp, t.subscriber1.value, 50000);
    h.outside().inject(PacketBuilder()
                           .ethernet(t.gateway_mac, h.outside().mac())
                           .ipv4(t.server2, common::Ipv4Address{ext.first})
                           .tcp(80, ext.second, tcp::kSyn)
                           .build());
    h.poll(3);
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_TRUE(h.outside().drain().empty()) << "something was sent back to the SYN's source";
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 1u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 1u);
}

}  // namespace
}  // namespace cgn::test

namespace cgn::test {
namespace {

TEST(PortParity, ExternalPortKeepsTheInternalPortsParity) {
    DataplaneHarness h;
    h.settings().nat.port_parity = true;
    h.start();
    h.resolve_neighbors();
    const Topology& t = h.topo();
    for (uint16_t port = 5000; port < 5040; ++port)
        h.inside().inject(common::PacketBuilder()
                              .ethernet(t.subscriber1_mac, h.inside().mac())
                              .ipv4(t.subscriber1, t.server1)
                              .udp(port, 5004)
                              .build());
    h.poll(4);
    for (uint16_t port = 5000; port < 5040; ++port) {
        const auto ext = h.find_mapping(common::ipv4::kProtoUdp, t.subscriber1.value, port);
        ASSERT_TRUE(ext.has_value());
        EXPECT_EQ(ext->second & 1, port & 1) << port << " -> " << ext->second;
    }
}

}  // namespace
}  // namespace cgn::test
