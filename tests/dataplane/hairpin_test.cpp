// Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8, RFC 5508 §3.3): subscriber A reaches subscriber
// B through B's external endpoint, and B sees A's external endpoint as the source; with one
// and with two workers (the second leg then belongs to the owner of B's external port).

#include <gtest/gtest.h>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace ipv4 = common::ipv4;
namespace tcp = common::tcp;

class Hairpin : public ::testing::TestWithParam<unsigned> {
protected:
    Hairpin() : h(GetParam()) {}
    void SetUp() override {
        h.start();
        h.resolve_neighbors();
    }
    const Topology& t() { return h.topo(); }
    // B (subscriber 2) talks to a server first, which gives it an external endpoint.
    std::pair<uint32_t, uint16_t> open_b(uint8_t protocol, uint16_t port) {
        PacketBuilder b;
        b.ethernet(t().subscriber2_mac, h.inside().mac()).ipv4(t().subscriber2, t().server1);
        if (protocol == ipv4::kProtoUdp) b.udp(port, 3478);
        if (protocol == ipv4::kProtoTcp) b.tcp(port, 443, tcp::kSyn);
        h.inside().inject(b.build());
        h.poll(2);
        h.outside().drain();
        h.reset_counters();
        return *h.find_mapping(protocol, t().subscriber2.value, port);
    }
    DataplaneHarness h;
};

TEST_P(Hairpin, UdpFromAReachesBWithAsExternalEndpoint) {
    const auto b = open_b(ipv4::kProtoUdp, 5000);
    const common::Ipv4Address b_ext{b.first};
    for (uint16_t q = 0; q < h.workers(); ++q) {
        h.inside().inject(PacketBuilder()
                              .ethernet(t().subscriber1_mac, h.inside().mac())
                              .ipv4(t().subscriber1, b_ext, 64, 3)
                              .udp(6000, b.second)
                              .payload("hello B")
                              .build(),
                          q);
        h.poll(2);
        auto in = h.inside().drain();
        ASSERT_EQ(in.size(), 1u) << "queue " << q;
        EXPECT_TRUE(h.outside().drain().empty());
        const auto a = *h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 6000);
        EXPECT_EQ(in[0], PacketBuilder()
                             .ethernet(h.inside().mac(), t().subscriber2_mac)
                             .ipv4(common::Ipv4Address{a.first}, t().subscriber2, 63, 3)
                             .udp(a.second, 5000)
                             .payload("hello B")
                             .build());
    }
    EXPECT_EQ(h.counter(Counter::hairpinned), h.workers());
    // B answers A's external endpoint: back to A, from B's external endpoint.
    const auto a = *h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 6000);
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber2_mac, h.inside().mac())
                          .ipv4(t().subscriber2, common::Ipv4Address{a.first}, 64, 4)
                          .udp(5000, a.second)
                          .payload("hello A")
                          .build());
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(b_ext, t().subscriber1, 63, 4)
                         .udp(b.second, 6000)
                         .payload("hello A")
                         .build());
}

TEST_P(Hairpin, TcpSynFromAReachesB) {
    const auto b = open_b(ipv4::kProtoTcp, 8080);
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, common::Ipv4Address{b.first})
                          .tcp(50000, b.second, tcp::kSyn)
                          .build());
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    const auto a = *h.find_mapping(ipv4::kProtoTcp, t().subscriber1.value, 50000);
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber2_mac)
                         .ipv4(common::Ipv4Address{a.first}, t().subscriber2, 63, 1)
                         .tcp(a.second, 8080, tcp::kSyn)
                         .build());
}

TEST_P(Hairpin, IcmpErrorAboutAHairpinnedPacketGoesBackToItsSender) {
    const auto b = open_b(ipv4::kProtoUdp, 5000);
    const common::Ipv4Address b_ext{b.first};
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, b_ext)
                          .udp(6000, b.second)
                          .build());
    h.poll(2);
    ASSERT_EQ(h.inside().drain().size(), 1u);
    const auto a = *h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 6000);
    const common::Ipv4Address a_ext{a.first};
    // B has no socket: its port unreachable quotes the packet as B received it.
    auto quote = [](common::Ipv4Address src, uint16_t sport, common::Ipv4Address dst,
                    uint16_t dport) {
        return PacketBuilder().ipv4(src, dst, 63, 1).udp(sport, dport).build();
    };
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber2_mac, h.inside().mac())
                          .ipv4(t().subscriber2, a_ext, 64, 9)
                          .icmp(common::icmp::kDestUnreachable, 3, 0)
                          .payload(quote(a_ext, a.second, t().subscriber2, 5000))
                          .build());
    h.poll(2);
    EXPECT_TRUE(h.outside().drain().empty()) << "the error left through the outside port";
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    // A gets it from B's external address, about the packet A sent to B's external endpoint.
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(b_ext, t().subscriber1, 63, 9)
                         .icmp(common::icmp::kDestUnreachable, 3, 0)
                         .payload(quote(t().subscriber1, 6000, b_ext, b.second))
                         .build());
}

TEST_P(Hairpin, ToAnUnmappedPoolEndpointIsDroppedAsFromOutside) {
    h.reset_counters();
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, *common::Ipv4Address::parse("198.51.100.2"))
                          .udp(6000, 40000)
                          .build());
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_TRUE(h.outside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), 1u);
}

INSTANTIATE_TEST_SUITE_P(Workers, Hairpin, ::testing::Values(1u, 2u),
                         [](const auto& info) { return std::to_string(info.param) + "workers"; });

}  // namespace
}  // namespace cgn::test
