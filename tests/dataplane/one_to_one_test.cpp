// One-to-one static mappings ("ip INTERNAL EXTERNAL"): Basic NAT (RFC 3022 §2.1) for one
// subscriber address inside the NAPT. Every protocol and port keeps its number, ICMP echo
// included, and hosts outside reach the subscriber on any port. It makes ICMP query
// hairpinning (RFC 5508 REQ-7) possible: subscriber A pings B's external address, B sees A's
// external endpoint (address and query identifier) as the source, and B's reply goes back to
// A from B's external address. Real frames, one and two workers.

#include <gtest/gtest.h>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace icmp = common::icmp;
namespace ipv4 = common::ipv4;
namespace tcp = common::tcp;

common::Ipv4Address ip(const char* text) { return *common::Ipv4Address::parse(text); }

const common::Ipv4Address kB1to1 = ip("198.51.100.3");

class OneToOne : public ::testing::TestWithParam<unsigned> {
protected:
    OneToOne() : h(GetParam()) {}
    void SetUp() override {
        h.settings().nat.filtering = common::FilteringMode::address_and_port_dependent;
        h.start(true);
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }
    void map_b() {
        h.controller().add_static(*common::StaticMapping::parse("ip 100.64.0.12 198.51.100.3"));
    }
    PacketBuilder from_sub(common::Ipv4Address src, common::Ipv4Address dst, uint16_t id = 1) {
        PacketBuilder b;
        b.ethernet(src == t().subscriber1 ? t().subscriber1_mac : t().subscriber2_mac,
                   h.inside().mac())
            .ipv4(src, dst, 64, id);
        return b;
    }
    PacketBuilder from_outside(common::Ipv4Address src, common::Ipv4Address dst,
                               uint16_t id = 1) {
        PacketBuilder b;
        b.ethernet(t().gateway_mac, h.outside().mac()).ipv4(src, dst, 64, id);
        return b;
    }
    PacketBuilder to_sub(common::Ipv4Address src, common::Ipv4Address dst, uint16_t id = 1) {
        PacketBuilder b;
        b.ethernet(h.inside().mac(), dst == t().subscriber1 ? t().subscriber1_mac
                                                            : t().subscriber2_mac)
            .ipv4(src, dst, 63, id);
        return b;
    }
    PacketBuilder to_outside(common::Ipv4Address src, common::Ipv4Address dst, uint16_t id = 1) {
        PacketBuilder b;
        b.ethernet(h.outside().mac(), t().gateway_mac).ipv4(src, dst, 63, id);
        return b;
    }
    // The only frame that left on `port`.
    Frame only(RingPort& port) {
        auto frames = port.drain();
        EXPECT_EQ(frames.size(), 1u);
        return frames.size() == 1 ? frames[0] : Frame{};
    }
    // Holder of every block of pool address `index`.
    std::vector<uint8_t> holders(uint32_t index) {
        std::vector<uint8_t> out;
        for (uint32_t b = 0; b < h.blocks().blocks_per_address(); ++b)
            out.push_back(h.blocks().holder(index, b));
        return out;
    }

    DataplaneHarness h;
};

TEST_P(OneToOne, PortsAndIdentifiersKeepTheirNumbersBothWays) {
    map_b();
    // Outbound: the address changes, nothing else (a well-known port and one outside
    // --port-range included).
    h.inside().inject(from_sub(t().subscriber2, t().server1).udp(53, 53).payload("q").build());
    h.poll(2);
    EXPECT_EQ(only(h.outside()),
              to_outside(kB1to1, t().server1).udp(53, 53).payload("q").build());
    h.inside().inject(from_sub(t().subscriber2, t().server1).tcp(40001, 443, tcp::kSyn).build());
    h.poll(2);
    EXPECT_EQ(only(h.outside()),
              to_outside(kB1to1, t().server1).tcp(40001, 443, tcp::kSyn).build());
    h.inside().inject(
        from_sub(t().subscriber2, t().server1).icmp_echo(icmp::kEchoRequest, 0x4242, 7).build());
    h.poll(2);
    EXPECT_EQ(only(h.outside()),
              to_outside(kB1to1, t().server1).icmp_echo(icmp::kEchoRequest, 0x4242, 7).build());

    // Inbound to any port, unsolicited, whatever the filtering (the mapping is explicit).
    h.outside().inject(from_outside(t().server2, kB1to1).tcp(50000, 22, tcp::kSyn).build());
    h.poll(2);
    EXPECT_EQ(only(h.inside()),
              to_sub(t().server2, t().subscriber2).tcp(50000, 22, tcp::kSyn).build());
    h.outside().inject(from_outside(t().server2, kB1to1).udp(5353, 9).payload("u").build());
    h.poll(2);
    EXPECT_EQ(only(h.inside()),
              to_sub(t().server2, t().subscriber2).udp(5353, 9).payload("u").build());
    // An outside host pings the subscriber, and the subscriber's reply goes out.
    h.outside().inject(
        from_outside(t().server2, kB1to1, 9).icmp_echo(icmp::kEchoRequest, 99, 1).build());
    h.poll(2);
    EXPECT_EQ(only(h.inside()),
              to_sub(t().server2, t().subscriber2, 9).icmp_echo(icmp::kEchoRequest, 99, 1).build());
    h.inside().inject(
        from_sub(t().subscriber2, t().server2, 10).icmp_echo(icmp::kEchoReply, 99, 1).build());
    h.poll(2);
    EXPECT_EQ(only(h.outside()),
              to_outside(kB1to1, t().server2, 10).icmp_echo(icmp::kEchoReply, 99, 1).build());
    EXPECT_EQ(h.counter(Counter::drop_icmp_type), 0u);
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 0u);
}

TEST_P(OneToOne, EchoFromAnotherSubscriberHairpinsAndBSeesAsExternalEndpoint) {
    map_b();
    // A (subscriber 1, dynamic) pings B's external address.
    h.inside().inject(
        from_sub(t().subscriber1, kB1to1, 5).icmp_echo(icmp::kEchoRequest, 0x1234, 1).build());
    h.poll(3);
    EXPECT_TRUE(h.outside().drain().empty());
    const auto a = h.find_mapping(ipv4::kProtoIcmp, t().subscriber1.value, 0x1234);
    ASSERT_TRUE(a);
    const common::Ipv4Address a_ext{a->first};
    EXPECT_NE(a_ext, kB1to1);
    // RFC 4787 REQ-9a as RFC 5508 applies it to queries: B sees A's external address and the
    // query identifier of A's mapping.
    EXPECT_EQ(only(h.inside()), to_sub(a_ext, t().subscriber2, 5)
                                    .icmp_echo(icmp::kEchoRequest, a->second, 1)
                                    .build());
    // B's kernel answers A's external endpoint; A gets the reply from B's external address.
    h.inside().inject(
        from_sub(t().subscriber2, a_ext, 6).icmp_echo(icmp::kEchoReply, a->second, 1).build());
    h.poll(3);
    EXPECT_TRUE(h.outside().drain().empty());
    EXPECT_EQ(only(h.inside()),
              to_sub(kB1to1, t().subscriber1, 6).icmp_echo(icmp::kEchoReply, 0x1234, 1).build());
    EXPECT_EQ(h.counter(Counter::hairpinned), 2u);
    EXPECT_EQ(h.counter(Counter::drop_icmp_type), 0u);
}

TEST_P(OneToOne, UdpAndTcpHairpinToAnyPortOfB) {
    map_b();
    h.inside().inject(from_sub(t().subscriber1, kB1to1).udp(6000, 7000).payload("hi").build());
    h.poll(3);
    const auto a = h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 6000);
    ASSERT_TRUE(a);
    EXPECT_EQ(only(h.inside()), to_sub(common::Ipv4Address{a->first}, t().subscriber2)
                                    .udp(a->second, 7000)
                                    .payload("hi")
                                    .build());
    h.inside().inject(from_sub(t().subscriber1, kB1to1).tcp(6001, 22, tcp::kSyn).build());
    h.poll(3);
    const auto at = h.find_mapping(ipv4::kProtoTcp, t().subscriber1.value, 6001);
    ASSERT_TRUE(at);
    EXPECT_EQ(only(h.inside()), to_sub(common::Ipv4Address{at->first}, t().subscriber2)
                                    .tcp(at->second, 22, tcp::kSyn)
                                    .build());
    EXPECT_TRUE(h.outside().drain().empty());
}

TEST_P(OneToOne, EchoRequestToASharedPoolAddressIsStillDropped) {
    map_b();
    // A NAPT address has no host to ask: the query opens nothing (RFC 5508 §3.1).
    h.outside().inject(
        from_outside(t().server2, ip("198.51.100.1")).icmp_echo(icmp::kEchoRequest, 1, 1).build());
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_icmp_type), 1u);
}

TEST_P(OneToOne, TheAddressIsHeldWholeAndNobodyIsPairedWithIt) {
    map_b();
    for (uint8_t holder : holders(3)) EXPECT_EQ(holder, dp::BlockMap::kControl);
    // Sixty subscribers spread over the other three addresses only.
    for (uint32_t i = 0; i < 60; ++i) {
        const common::Ipv4Address sub{ip("100.64.1.0").value + i};
        h.inside().inject(PacketBuilder()
                              .ethernet(t().subscriber1_mac, h.inside().mac())
                              .ipv4(sub, t().server1)
                              .udp(5000, 53)
                              .build());
        h.poll(2);
        const auto m = h.find_mapping(ipv4::kProtoUdp, sub.value, 5000);
        ASSERT_TRUE(m) << sub.to_string();
        EXPECT_NE(common::Ipv4Address{m->first}, kB1to1) << sub.to_string();
    }
}

TEST_P(OneToOne, AddingReplacesDynamicMappingsAndRemovingFreesTheAddress) {
    // B first has a dynamic mapping (on one of the four addresses); the one-to-one mapping
    // then goes on another.
    h.inside().inject(from_sub(t().subscriber2, t().server1).udp(5000, 53).payload("a").build());
    h.poll(2);
    h.outside().drain();
    const auto dynamic = h.find_mapping(ipv4::kProtoUdp, t().subscriber2.value, 5000);
    ASSERT_TRUE(dynamic);
    const common::Ipv4Address external{dynamic->first == kB1to1.value ? ip("198.51.100.2").value
                                                                      : kB1to1.value};
    const uint32_t index = external.value - t().pool.address.value;
    const auto text = "ip 100.64.0.12 " + external.to_string();
    h.controller().add_static(*common::StaticMapping::parse(text));
    // The dynamic mapping is gone: its external endpoint leads nowhere, B's next packet takes
    // the one-to-one address with its own port.
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t().subscriber2.value, 5000) &&
                 h.find_mapping(ipv4::kProtoUdp, t().subscriber2.value, 5000)->first ==
                     dynamic->first);
    h.outside().inject(from_outside(t().server1, common::Ipv4Address{dynamic->first})
                           .udp(53, dynamic->second)
                           .payload("r")
                           .build());
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    h.inside().inject(from_sub(t().subscriber2, t().server1).udp(5000, 53).payload("b").build());
    h.poll(2);
    EXPECT_EQ(only(h.outside()), to_outside(external, t().server1).udp(5000, 53).payload("b").build());

    // Withdrawn: B's one-to-one mappings go, the address's blocks return to the pool, and B's
    // next packet gets a dynamic mapping again.
    h.controller().remove_static(common::StaticMapping::kOneToOne, t().subscriber2, 0);
    for (uint8_t holder : holders(index)) EXPECT_EQ(holder, dp::BlockMap::kFree);
    EXPECT_EQ(h.blocks().free_blocks(index), h.blocks().blocks_per_address());
    h.reset_counters();
    h.outside().inject(from_outside(t().server1, external).udp(53, 5000).payload("r").build());
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), 1u);
    h.inside().inject(from_sub(t().subscriber2, t().server1).udp(5000, 53).payload("c").build());
    h.poll(2);
    const auto again = h.find_mapping(ipv4::kProtoUdp, t().subscriber2.value, 5000);
    ASSERT_TRUE(again);
    EXPECT_TRUE(h.blocks().block_of(again->second).has_value());
    EXPECT_TRUE(dp::BlockMap::is_worker(
        h.blocks().holder(again->first - t().pool.address.value,
                          *h.blocks().block_of(again->second))));
    EXPECT_EQ(h.outside().drain().size(), 1u);
}

TEST_P(OneToOne, RefusedOnAnAddressWhereSubscribersHoldBlocks) {
    h.inside().inject(from_sub(t().subscriber1, t().server1).udp(5000, 53).payload("a").build());
    h.poll(2);
    const auto a = h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000);
    ASSERT_TRUE(a);
    const common::Ipv4Address taken{a->first};
    const uint32_t index = taken.value - t().pool.address.value;
    const auto before = holders(index);
    try {
        h.controller().add_static(
            *common::StaticMapping::parse("ip 100.64.0.12 " + taken.to_string()));
        FAIL() << "a one-to-one mapping took an address a subscriber uses";
    } catch (const common::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find(taken.to_string() + " is in use"), std::string::npos)
            << e.what();
    }
    // Nothing was left claimed, and A's mapping still works.
    EXPECT_EQ(holders(index), before);
    h.outside().inject(from_outside(t().server1, taken).udp(53, a->second).payload("r").build());
    h.poll(2);
    EXPECT_EQ(h.inside().drain().size(), 1u);
}

TEST_P(OneToOne, StaticPortMappingsOfEitherAddressConflict) {
    map_b();
    EXPECT_THROW(h.controller().add_static(
                     *common::StaticMapping::parse("tcp 100.64.0.12:80 198.51.100.2:80")),
                 common::ConfigError);
    EXPECT_THROW(h.controller().add_static(
                     *common::StaticMapping::parse("tcp 100.64.0.11:80 198.51.100.3:80")),
                 common::ConfigError);
    EXPECT_THROW(
        h.controller().add_static(*common::StaticMapping::parse("ip 100.64.0.11 198.51.100.3")),
        common::ConfigError);
}

INSTANTIATE_TEST_SUITE_P(Workers, OneToOne, ::testing::Values(1u, 2u),
                         [](const auto& info) { return std::to_string(info.param) + "workers"; });

}  // namespace
}  // namespace cgn::test
