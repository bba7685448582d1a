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
    // How many IPv4 frames the subscriber (inside) and the outside received since the last
    // call (after a long advance of the clock the worker also refreshes its neighbours by ARP).
    static size_t ipv4_frames(const std::vector<Frame>& frames) {
        size_t n = 0;
        for (const auto& f : frames)
            n += common::load_be16(f.data() + common::eth::kType) == common::eth::kTypeIpv4;
        return n;
    }
    size_t inside_got() { return ipv4_frames(h.inside().drain()); }
    size_t outside_got() { return ipv4_frames(h.outside().drain()); }
    size_t tcp_sessions() { return h.worker().nat().session_count(); }
    // A three-way handshake from subscriber1:sport to server1:80; its external endpoint.
    std::pair<uint32_t, uint16_t> establish_tcp(uint16_t sport) {
        h.inside().inject(in_tcp(sport, tcp::kSyn));
        h.poll();
        EXPECT_EQ(outside_got(), 1u);
        const auto ext =
            h.worker().nat().find_mapping(ipv4::kProtoTcp, t().subscriber1.value, sport);
        EXPECT_TRUE(ext.has_value());
        h.outside().inject(
            out_tcp(ext.value_or(std::pair<uint32_t, uint16_t>{}), tcp::kSyn | tcp::kAck_));
        h.poll();
        h.inside().inject(in_tcp(sport, tcp::kAck_));
        h.poll();
        EXPECT_EQ(inside_got(), 1u);
        EXPECT_EQ(outside_got(), 1u);
        return ext.value_or(std::pair<uint32_t, uint16_t>{});
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
    // 30 s after the inbound packet, plus the up to 99 ms a refreshed session may outlive its
    // timeout (the refresh granularity; never less than the timeout: SessionDeadline below).
    h.clock().advance_ms(1'099);
    h.poll();
    EXPECT_EQ(h.counter(Counter::sessions_expired), 1u);
    EXPECT_EQ(h.counter(Counter::mappings_removed), 1u);
    EXPECT_EQ(h.worker().nat().session_count(), 0u);
    // The subscriber keeps its (now idle) port block for the hold-down (RFC 6888 REQ-8).
    EXPECT_EQ(h.worker().nat().subscriber_count(), 1u);
    EXPECT_FALSE(inbound_arrives(t().server1, 3478, ext));
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), 1u);
}

// RFC 5508 REQ-2: the query session lives its 60 s; RFC 7857 §11: its mapping (the external
// identifier) is released with it, and a late reply to that identifier finds nothing.
TEST_F(Behaviour, IcmpQueryTimeout) {
    h.settings().nat.timeouts.icmp_s = 60;
    start();
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1)
                          .icmp_echo(common::icmp::kEchoRequest, 5, 1)
                          .build());
    h.poll();
    EXPECT_EQ(outside_got(), 1u);
    const auto ext = h.worker().nat().find_mapping(ipv4::kProtoIcmp, t().subscriber1.value, 5);
    ASSERT_TRUE(ext.has_value());
    EXPECT_EQ(h.worker().nat().mapping_count(), 1u);
    h.clock().advance_ms(59'999);
    h.poll();
    EXPECT_EQ(h.worker().nat().session_count(), 1u);
    EXPECT_EQ(h.worker().nat().mapping_count(), 1u);
    h.clock().advance_ms(1);
    h.poll();
    EXPECT_EQ(h.worker().nat().session_count(), 0u);
    EXPECT_EQ(h.worker().nat().mapping_count(), 0u);
    EXPECT_EQ(h.counter(Counter::sessions_expired), 1u);
    EXPECT_EQ(h.counter(Counter::mappings_removed), 1u);
    EXPECT_FALSE(h.worker().nat().find_mapping(ipv4::kProtoIcmp, t().subscriber1.value, 5));
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server1, common::Ipv4Address{ext->first})
                           .icmp_echo(common::icmp::kEchoReply, ext->second, 1)
                           .build());
    h.poll();
    EXPECT_EQ(inside_got(), 0u);
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), 1u);
}

// RFC 4787 REQ-6: "The NAT mapping Refresh Direction MUST have a "NAT Outbound refresh
// behavior" of "True"." Two mappings opened together; only one keeps sending (outbound only,
// nothing comes back). It outlives its timeout many times over; the silent one goes at its
// timeout. Without outbound refresh both go at 30 s.
TEST_F(Behaviour, OutboundPacketsKeepAMappingAlivePastItsTimeout) {
    h.settings().nat.timeouts.udp_s = 30;
    start();
    const auto kept = open_udp(40000);
    open_udp(40001);
    for (int i = 0; i < 6; ++i) {  // 20 s apart: 120 s in all
        h.clock().advance_ms(20'000);
        h.poll();
        h.inside().inject(in_udp(40000, t().server1, 3478));
        h.poll();
        EXPECT_EQ(outside_got(), 1u);
        EXPECT_EQ(h.worker().nat().find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000),
                  kept)
            << "after " << (i + 1) * 20 << " s";
        EXPECT_EQ(h.worker()
                      .nat()
                      .find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40001)
                      .has_value(),
                  i == 0)
            << "the silent mapping after " << (i + 1) * 20 << " s";
    }
    EXPECT_EQ(h.counter(Counter::mappings_removed), 1u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 2u);
    // Outbound traffic stops: the mapping goes 30 s after its last packet.
    h.clock().advance_ms(29'999);
    h.poll();
    EXPECT_EQ(h.worker().nat().mapping_count(), 1u);
    h.clock().advance_ms(200);
    h.poll();
    EXPECT_EQ(h.worker().nat().mapping_count(), 0u);
    EXPECT_EQ(h.counter(Counter::mappings_removed), 2u);
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

// RFC 7857 §2.1: "a NAT SHOULD provide different configurable parameters for configuring the
// open and closing idle timeouts". A connection left half-open goes at the opening timeout, a
// closed one at the closing (transitory) timeout, each counted from its last SYN or FIN.
// Without the opening timeout both go at the transitory one: the half-open session outlives
// 60 s.
TEST_F(Behaviour, TcpOpeningAndClosingTimeoutsAreDistinct) {
    h.settings().nat.timeouts.tcp_opening_s = 60;
    h.settings().nat.timeouts.tcp_transitory_s = 180;
    h.settings().nat.timeouts.tcp_established_s = 7440;
    start();
    const auto ext = establish_tcp(50000);
    h.inside().inject(in_tcp(50001, tcp::kSyn));  // never answered
    h.poll();
    EXPECT_EQ(outside_got(), 1u);
    h.inside().inject(in_tcp(50000, tcp::kFin | tcp::kAck_));
    h.outside().inject(out_tcp(ext, tcp::kFin | tcp::kAck_));
    h.poll();
    h.inside().inject(in_tcp(50000, tcp::kAck_));  // the last ACK
    h.poll();
    EXPECT_EQ(tcp_sessions(), 2u);
    h.clock().advance_ms(59'999);
    h.poll();
    EXPECT_EQ(tcp_sessions(), 2u);
    h.clock().advance_ms(1);
    h.poll();
    EXPECT_EQ(tcp_sessions(), 1u) << "the half-open session outlived the opening timeout";
    EXPECT_FALSE(h.worker().nat().find_mapping(ipv4::kProtoTcp, t().subscriber1.value, 50001));
    h.clock().advance_ms(120'000 - 1);  // 179.999 s after the FINs
    h.poll();
    EXPECT_EQ(tcp_sessions(), 1u) << "the closed session went at the opening timeout";
    h.clock().advance_ms(1);
    h.poll();
    EXPECT_EQ(tcp_sessions(), 0u);
    EXPECT_EQ(h.counter(Counter::sessions_expired), 2u);
}

// The opening timeout changes live and applies to the sessions already opening.
TEST_F(Behaviour, TcpOpeningTimeoutChangesLive) {
    h.settings().nat.timeouts.tcp_opening_s = 240;
    h.settings().nat.timeouts.tcp_transitory_s = 240;
    h.start(true);
    h.resolve_neighbors();
    h.reset_counters();
    h.inside().inject(in_tcp(50000, tcp::kSyn));
    h.poll();
    h.clock().advance_ms(10'000);
    h.poll();
    EXPECT_EQ(tcp_sessions(), 1u);
    h.controller().set_timeout("tcp-opening", 10);
    h.poll();
    EXPECT_EQ(tcp_sessions(), 0u);
    EXPECT_THROW(h.controller().set_timeout("tcp-opening", 0), common::ConfigError);
    EXPECT_THROW(h.controller().set_timeout("tcp-opening", 86401), common::ConfigError);
}

// RFC 6146 §3.5.2.2 (RFC 7857 §2): in TRANS, "if a packet other than a RST packet is received,
// the lifetime is set to TCP_EST, and the state is moved to ESTABLISHED". A spurious RST does
// not end a connection that goes on.
TEST_F(Behaviour, TcpResetThenDataLivesOnTheEstablishedTimeout) {
    h.settings().nat.timeouts.tcp_established_s = 7440;
    h.settings().nat.timeouts.tcp_transitory_s = 240;
    start();
    const auto ext = establish_tcp(50000);
    h.outside().inject(out_tcp(ext, tcp::kRst));
    h.poll();
    EXPECT_EQ(inside_got(), 1u);
    h.clock().advance_ms(1'000);
    h.inside().inject(in_tcp(50000, tcp::kPsh | tcp::kAck_));
    h.poll();
    EXPECT_EQ(outside_got(), 1u);
    h.clock().advance_ms(3600'000);  // far past the transitory timeout
    h.poll();
    EXPECT_EQ(tcp_sessions(), 1u) << "data after an RST did not bring the session back";
    h.outside().inject(out_tcp(ext, tcp::kPsh | tcp::kAck_));
    h.poll();
    EXPECT_EQ(inside_got(), 1u);
    h.clock().advance_ms(7440'000 - 1);
    h.poll();
    EXPECT_EQ(tcp_sessions(), 1u);
    h.clock().advance_ms(100);  // a refreshed session may outlive its timeout by < 100 ms
    h.poll();
    EXPECT_EQ(tcp_sessions(), 0u);
}

// RFC 7857 §2.2: an RST "MUST translate the packet", and the NAT "SHOULD wait for 4 minutes
// before deleting the session ... if no packets are received during that 4-minute timeout".
// RSTs that follow are translated too, but do not restart that timer: a stream of RSTs cannot
// keep a reset session alive.
TEST_F(Behaviour, TcpResetsAloneExpireAtTheClosingTimeoutFromTheFirstReset) {
    h.settings().nat.timeouts.tcp_established_s = 7440;
    h.settings().nat.timeouts.tcp_opening_s = 30;  // not the one that counts after an RST
    h.settings().nat.timeouts.tcp_transitory_s = 240;
    start();
    const auto ext = establish_tcp(50000);
    h.inside().inject(in_tcp(50000, tcp::kRst | tcp::kAck_));
    h.poll();
    EXPECT_EQ(outside_got(), 1u);
    for (int i = 0; i < 3; ++i) {
        h.clock().advance_ms(60'000);
        h.outside().inject(out_tcp(ext, tcp::kRst));
        h.inside().inject(in_tcp(50000, tcp::kRst));
        h.poll();
        EXPECT_EQ(inside_got(), 1u) << "an RST from outside was not translated";
        EXPECT_EQ(outside_got(), 1u) << "an RST from inside was not translated";
    }
    h.clock().advance_ms(60'000 - 1);  // 239.999 s after the first RST
    h.poll();
    EXPECT_EQ(tcp_sessions(), 1u);
    h.clock().advance_ms(1);
    h.poll();
    EXPECT_EQ(tcp_sessions(), 0u) << "later RSTs restarted the closing timer";
    EXPECT_EQ(h.counter(Counter::sessions_expired), 1u);
}

// One FIN is a half-close: the other side may go on sending for hours, so the session stays on
// the established timeout (RFC 6146 §3.5.2.2, "V4 FIN RCV": "the lifetime is set to TCP_EST").
TEST_F(Behaviour, TcpHalfClosedStaysOnTheEstablishedTimeout) {
    h.settings().nat.timeouts.tcp_established_s = 7440;
    h.settings().nat.timeouts.tcp_opening_s = 60;
    h.settings().nat.timeouts.tcp_transitory_s = 240;
    start();
    const auto ext = establish_tcp(50000);
    h.inside().inject(in_tcp(50000, tcp::kFin | tcp::kAck_));
    h.poll();
    h.clock().advance_ms(3600'000);
    h.poll();
    EXPECT_EQ(tcp_sessions(), 1u);
    h.outside().inject(out_tcp(ext, tcp::kPsh | tcp::kAck_));  // the other side still sends
    h.poll();
    EXPECT_EQ(inside_got(), 1u);
    h.clock().advance_ms(7440'000 - 1);
    h.poll();
    EXPECT_EQ(tcp_sessions(), 1u);
    h.clock().advance_ms(100);  // a refreshed session may outlive its timeout by < 100 ms
    h.poll();
    EXPECT_EQ(tcp_sessions(), 0u);
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
        const auto out = h.outside().drain();
        ASSERT_EQ(out.size(), 1u) << "source port " << sport << " was not translated";
        const uint16_t port =
            common::load_be16(out[0].data() + common::eth::kHeaderLength + ipv4::kMinHeaderLength);
        EXPECT_GE(port, 1024) << "source port " << sport;
        EXPECT_EQ(
            h.worker().nat().find_mapping(ipv4::kProtoUdp, t().subscriber1.value, sport),
            (std::pair<uint32_t, uint16_t>{
                common::load_be32(out[0].data() + common::eth::kHeaderLength + ipv4::kSrc), port}));
    }
    EXPECT_EQ(h.counter(Counter::sessions_created), 64u);
}

// RFC 5382 REQ-5 ("MUST NOT be less than 2 hours and 4 minutes"), RFC 4787 REQ-5 ("MUST NOT
// expire in less than two minutes") and RFC 5508 REQ-2 ("MUST NOT expire in less than 60
// seconds") are floors, and the defaults sit on them exactly. A session whose last packet came
// at t must still be there at t + timeout - 1 ms, however the packets before fell within the
// engine's 100 ms refresh granularity, and goes within that granularity after t + timeout.
// Before, the packets at t0 + 1 and t0 + 50 were not recorded (under 100 ms after the
// session's start) and the session went at t0 + timeout, 50 ms early.
struct DeadlineCase {
    const char* name;
    uint8_t protocol;
    uint32_t timeout_s;
};
void PrintTo(const DeadlineCase& c, std::ostream* os) { *os << c.name; }

class SessionDeadline : public Behaviour, public ::testing::WithParamInterface<DeadlineCase> {
protected:
    Frame packet(uint8_t flags) {
        switch (GetParam().protocol) {
            case ipv4::kProtoTcp:
                return in_tcp(50000, flags);
            case ipv4::kProtoIcmp:
                return PacketBuilder()
                    .ethernet(t().subscriber1_mac, h.inside().mac())
                    .ipv4(t().subscriber1, t().server1)
                    .icmp_echo(common::icmp::kEchoRequest, 5, 1)
                    .build();
            default:
                return in_udp(50000, t().server1, 3478);
        }
    }
};

TEST_P(SessionDeadline, NeverExpiresBeforeTheLastPacketPlusTheTimeout) {
    const DeadlineCase c = GetParam();
    h.settings().nat.timeouts.udp_s = c.timeout_s;
    h.settings().nat.timeouts.icmp_s = c.timeout_s;
    h.settings().nat.timeouts.tcp_established_s = c.timeout_s;
    start();
    if (c.protocol == ipv4::kProtoTcp) {
        establish_tcp(50000);
    } else {
        h.inside().inject(packet(0));
        h.poll();
        EXPECT_EQ(outside_got(), 1u);
    }
    ASSERT_EQ(h.worker().nat().session_count(), 1u);
    const uint8_t data = tcp::kPsh | tcp::kAck_;
    h.clock().advance_ms(1);
    h.inside().inject(packet(data));
    h.poll();
    h.clock().advance_ms(49);
    h.inside().inject(packet(data));
    h.poll();
    EXPECT_EQ(outside_got(), 2u);
    const uint64_t last = h.clock().now_ms();
    const uint64_t deadline = last + uint64_t{c.timeout_s} * 1000;
    h.clock().set_ms(deadline - 1000);
    h.poll();
    for (uint64_t now = deadline - 1000; now < deadline; ++now) {
        h.clock().set_ms(now);
        h.poll();
        ASSERT_EQ(h.worker().nat().session_count(), 1u)
            << "expired " << deadline - now << " ms before its deadline";
    }
    uint64_t now = deadline;
    for (; now < deadline + 1000 && h.worker().nat().session_count() == 1; ++now) {
        h.clock().set_ms(now);
        h.poll();
    }
    EXPECT_EQ(h.worker().nat().session_count(), 0u);
    EXPECT_LT(now - 1, deadline + 100) << "expired later than the refresh granularity allows";
    EXPECT_EQ(h.counter(Counter::sessions_expired), 1u);
}

INSTANTIATE_TEST_SUITE_P(Rfc5382Req5Rfc4787Req5Rfc5508Req2, SessionDeadline,
                         ::testing::Values(DeadlineCase{"Udp", ipv4::kProtoUdp, 120},
                                           DeadlineCase{"TcpEstablished", ipv4::kProtoTcp, 7440},
                                           DeadlineCase{"Icmp", ipv4::kProtoIcmp, 60}),
                         [](const auto& info) { return std::string(info.param.name); });

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

// RFC 7857 §7.1: "ICMP Errors or TCP RST outbound packets sent as a response to inbound
// packets SHOULD NOT refresh the mapping." A subscriber refusing an unsolicited SYN (through a
// dynamic mapping under endpoint-independent filtering, or through a static mapping): the RST
// is translated, and the session still goes at the opening timeout counted from the SYN.
// Before, the RST restarted the timer (the session lived 240 s from the RST).
class TcpOutboundReset : public ::testing::TestWithParam<bool> {
protected:
    void start() {
        h.settings().nat.timeouts.tcp_opening_s = 240;
        h.settings().nat.timeouts.tcp_transitory_s = 240;
        h.start(true);
        h.resolve_neighbors();
        h.reset_counters();
    }
    Frame inside(uint16_t sport, common::Ipv4Address dst, uint16_t dport, uint8_t flags) {
        return PacketBuilder()
            .ethernet(h.topo().subscriber1_mac, h.inside().mac())
            .ipv4(h.topo().subscriber1, dst)
            .tcp(sport, dport, flags)
            .build();
    }
    Frame outside(common::Ipv4Address src, uint16_t sport, std::pair<uint32_t, uint16_t> ext,
                  uint8_t flags) {
        return PacketBuilder()
            .ethernet(h.topo().gateway_mac, h.outside().mac())
            .ipv4(src, common::Ipv4Address{ext.first})
            .tcp(sport, ext.second, flags)
            .build();
    }
    // An external endpoint of subscriber1:8080 that outside hosts may reach: a static mapping,
    // or a dynamic one (endpoint-independent filtering) with an established connection to
    // server1 that keeps it.
    std::pair<uint32_t, uint16_t> reachable_endpoint(bool static_mapping) {
        if (static_mapping) {
            h.controller().add_static(
                *common::StaticMapping::parse("tcp 100.64.0.11:8080 198.51.100.1:80"));
            return {h.topo().pool.address.value + 1, 80};
        }
        h.inside().inject(inside(8080, h.topo().server1, 443, tcp::kSyn));
        h.poll();
        const auto ext = *h.find_mapping(ipv4::kProtoTcp, h.topo().subscriber1.value, 8080);
        h.outside().inject(outside(h.topo().server1, 443, ext, tcp::kSyn | tcp::kAck_));
        h.poll();
        h.outside().drain();
        h.inside().drain();
        return ext;
    }
    size_t sessions() { return h.worker().nat().session_count(); }

    DataplaneHarness h;
};

TEST_P(TcpOutboundReset, AnsweringAnInboundSynDoesNotRefresh) {
    const bool static_mapping = GetParam();
    start();
    const auto ext = reachable_endpoint(static_mapping);
    const size_t before = sessions();
    h.outside().inject(outside(h.topo().server2, 4000, ext, tcp::kSyn));
    h.poll();
    EXPECT_EQ(h.inside().drain().size(), 1u);
    EXPECT_EQ(sessions(), before + 1);
    h.clock().advance_ms(200'000);
    h.inside().inject(inside(8080, h.topo().server2, 4000, tcp::kRst | tcp::kAck_));
    h.poll();
    EXPECT_EQ(h.outside().drain().size(), 1u) << "the RST was not translated";
    h.clock().advance_ms(40'000 - 1);  // 239.999 s after the SYN
    h.poll();
    EXPECT_EQ(sessions(), before + 1);
    h.clock().advance_ms(1);
    h.poll();
    EXPECT_EQ(sessions(), before) << "the subscriber's RST restarted the session's timer";
}

INSTANTIATE_TEST_SUITE_P(Rfc7857Section7_1, TcpOutboundReset, ::testing::Bool(),
                         [](const auto& info) {
                             return std::string(info.param ? "StaticMapping" : "EIF");
                         });

// The same RST does not count as the subscriber sending to that host: when filtering becomes
// address-dependent, the host it refused gets no further than any other stranger (before, the
// RST opened the filter to it).
TEST_F(TcpOutboundReset, AnsweringAnInboundSynDoesNotAdmitTheHost) {
    start();
    const auto ext = reachable_endpoint(false);
    h.outside().inject(outside(h.topo().server2, 4000, ext, tcp::kSyn));
    h.poll();
    EXPECT_EQ(h.inside().drain().size(), 1u);
    h.inside().inject(inside(8080, h.topo().server2, 4000, tcp::kRst | tcp::kAck_));
    h.poll();
    EXPECT_EQ(h.outside().drain().size(), 1u);
    h.controller().set_filtering(common::FilteringMode::address_dependent);
    h.reset_counters();
    h.outside().inject(outside(h.topo().server2, 4001, ext, tcp::kSyn));  // a new connection
    h.outside().inject(outside(h.topo().server2, 4000, ext, tcp::kSyn));  // the refused one
    h.poll();
    EXPECT_EQ(h.inside().drain().size(), 0u) << "server2 admitted after the subscriber's RST";
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 2u);
    // server1, which the subscriber did open a connection to, still gets in from another port.
    h.outside().inject(outside(h.topo().server1, 5000, ext, tcp::kSyn));
    h.poll();
    EXPECT_EQ(h.inside().drain().size(), 1u);
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

// RFC 4787 REQ-4 with port blocks: an internal port's parity is kept while any block the
// subscriber has, or may still claim, has a free port of it; only then does it get the other
// parity. 64-port blocks (32 odd ports each), two blocks at most: the first 32 odd internal
// ports fill the first block's odd ports, the next 32 claim a second block rather than take
// even ports of the first, the 65th takes an even port (no third block allowed), and the
// remaining 63 even ports serve even internal ports until the 128 are used. Without the new
// block first, the 33rd gets an even port; without the fallback, the 65th is refused.
TEST(PortParity, FallsBackToTheOtherParityOnlyWhenNoBlockHasOne) {
    DataplaneHarness h;
    h.settings().nat.port_parity = true;
    h.settings().nat.pool = {*common::Ipv4Prefix::parse("198.51.100.1/32")};
    h.settings().nat.port_range = {1024, 1279};  // four 64-port blocks
    h.settings().nat.port_block_size = 64;
    h.settings().nat.limits.max_blocks = 2;
    h.start();
    h.resolve_neighbors();
    h.reset_counters();
    const Topology& t = h.topo();
    auto send = [&](uint16_t port) -> std::optional<uint16_t> {
        h.inside().inject(common::PacketBuilder()
                              .ethernet(t.subscriber1_mac, h.inside().mac())
                              .ipv4(t.subscriber1, t.server1)
                              .udp(port, 5004)
                              .build());
        h.poll();
        h.inside().drain();
        const auto out = h.outside().drain();
        if (out.size() != 1) return std::nullopt;
        return common::load_be16(out[0].data() + common::eth::kHeaderLength +
                                 common::ipv4::kMinHeaderLength);
    };
    auto block_of = [](uint16_t port) { return (port - 1024) / 64; };
    std::set<int> odd_blocks_first, odd_blocks_second;
    for (uint16_t i = 0; i < 64; ++i) {
        const auto ext = send(static_cast<uint16_t>(5001 + 2 * i));
        ASSERT_TRUE(ext.has_value()) << "odd internal port " << i;
        EXPECT_EQ(*ext & 1, 1) << "odd internal port " << i << " -> " << *ext;
        (i < 32 ? odd_blocks_first : odd_blocks_second).insert(block_of(*ext));
        EXPECT_EQ(h.counter(common::Counter::blocks_claimed), i < 32 ? 1u : 2u) << i;
    }
    ASSERT_EQ(odd_blocks_first.size(), 1u);
    ASSERT_EQ(odd_blocks_second.size(), 1u);
    EXPECT_NE(*odd_blocks_first.begin(), *odd_blocks_second.begin());
    // No odd port left in either block and no third block: the other parity.
    const auto fallback = send(7001);
    ASSERT_TRUE(fallback.has_value()) << "refused although even ports were free";
    EXPECT_EQ(*fallback & 1, 0);
    std::set<uint16_t> even;
    even.insert(*fallback);
    for (uint16_t i = 0; i < 63; ++i) {
        const auto ext = send(static_cast<uint16_t>(6000 + 2 * i));
        ASSERT_TRUE(ext.has_value()) << "even internal port " << i;
        EXPECT_EQ(*ext & 1, 0);
        even.insert(*ext);
    }
    EXPECT_EQ(even.size(), 64u);
    for (uint16_t port : even) {
        const int b = block_of(port);
        EXPECT_TRUE(b == *odd_blocks_first.begin() || b == *odd_blocks_second.begin()) << port;
    }
    EXPECT_EQ(h.counter(common::Counter::blocks_claimed), 2u);
    EXPECT_EQ(h.counter(common::Counter::drop_quota_blocks), 0u);
    // All 128 ports of the two blocks are used: the next flow is refused.
    EXPECT_FALSE(send(9000).has_value());
    EXPECT_EQ(h.counter(common::Counter::drop_quota_blocks), 1u);
}

}  // namespace
}  // namespace cgn::test
