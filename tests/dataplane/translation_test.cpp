// NAPT44 through the real worker loop on ring ports: every output byte is compared with the
// frame the RFCs say should come out, and the counters with the packets sent.

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <set>
#include <vector>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace tcp = common::tcp;
namespace icmp = common::icmp;

class Translation : public ::testing::Test {
protected:
    void SetUp() override {
        h.start();
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }

    // A UDP datagram from a subscriber to a server, as the subscriber sends it.
    Frame udp_in(common::Ipv4Address src, uint16_t sport, common::Ipv4Address dst, uint16_t dport,
                 const char* payload = "hello", uint8_t ttl = 64) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(src, dst, ttl, 0x1234)
            .udp(sport, dport)
            .payload(payload)
            .build();
    }
    std::pair<common::Ipv4Address, uint16_t> mapping_of(uint8_t proto, common::Ipv4Address a,
                                                        uint16_t port) {
        auto m = h.worker().nat().find_mapping(proto, a.value, port);
        EXPECT_TRUE(m.has_value());
        if (!m) return {};
        return {common::Ipv4Address{m->first}, m->second};
    }

    DataplaneHarness h;
};

TEST_F(Translation, UdpIn2OutRewritesSourceToPoolEndpointByteForByte) {
    h.inside().inject(udp_in(t().subscriber1, 40000, t().server1, 53));
    h.poll();
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    auto [ext_addr, ext_port] = mapping_of(common::ipv4::kProtoUdp, t().subscriber1, 40000);
    EXPECT_TRUE(t().pool.contains(ext_addr));
    EXPECT_GE(ext_port, 1024);
    const Frame expected = PacketBuilder()
                               .ethernet(h.outside().mac(), t().gateway_mac)
                               .ipv4(ext_addr, t().server1, 63, 0x1234)
                               .udp(ext_port, 53)
                               .payload("hello")
                               .build();
    EXPECT_EQ(out[0], expected) << "got\n" << hex(out[0]) << "\nexpected\n" << hex(expected);
    EXPECT_EQ(h.counter(Counter::in2out_translated), 1u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 1u);
    EXPECT_EQ(h.counter(Counter::mappings_created), 1u);
    EXPECT_EQ(h.counter(Counter::tx_outside), 1u);
}

TEST_F(Translation, UdpOut2InReplyReachesSubscriberByteForByte) {
    h.inside().inject(udp_in(t().subscriber1, 40000, t().server1, 53));
    h.poll();
    h.outside().drain();
    auto [ext_addr, ext_port] = mapping_of(common::ipv4::kProtoUdp, t().subscriber1, 40000);
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server1, ext_addr, 50, 7)
                           .udp(53, ext_port)
                           .payload("answer")
                           .build());
    h.poll();
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    const Frame expected = PacketBuilder()
                               .ethernet(h.inside().mac(), t().subscriber1_mac)
                               .ipv4(t().server1, t().subscriber1, 49, 7)
                               .udp(53, 40000)
                               .payload("answer")
                               .build();
    EXPECT_EQ(in[0], expected) << "got\n" << hex(in[0]) << "\nexpected\n" << hex(expected);
    EXPECT_EQ(h.counter(Counter::out2in_translated), 1u);
}

TEST_F(Translation, UdpChecksumZeroStaysZero) {
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1)
                          .udp(40001, 9)
                          .udp_without_checksum()
                          .payload("no checksum")
                          .build());
    h.poll();
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    const size_t udp_at = common::eth::kHeaderLength + common::ipv4::kMinHeaderLength;
    EXPECT_EQ(common::load_be16(&out[0][udp_at + common::udp::kChecksum]), 0);
}

TEST_F(Translation, TcpBothDirectionsByteForByte) {
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1, 64, 99)
                          .tcp(50000, 443, tcp::kSyn, 1000)
                          .build());
    h.poll();
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    auto [ext_addr, ext_port] = mapping_of(common::ipv4::kProtoTcp, t().subscriber1, 50000);
    EXPECT_EQ(out[0], PacketBuilder()
                          .ethernet(h.outside().mac(), t().gateway_mac)
                          .ipv4(ext_addr, t().server1, 63, 99)
                          .tcp(ext_port, 443, tcp::kSyn, 1000)
                          .build());
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server1, ext_addr, 60, 5)
                           .tcp(443, ext_port, tcp::kSyn | tcp::kAck_, 7000, 1001)
                           .build());
    h.poll();
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(t().server1, t().subscriber1, 59, 5)
                         .tcp(443, 50000, tcp::kSyn | tcp::kAck_, 7000, 1001)
                         .build());
}

TEST_F(Translation, IcmpEchoIdentifierTranslatedBothWays) {
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1, 64, 3)
                          .icmp_echo(icmp::kEchoRequest, 0x4242, 1)
                          .payload("ping")
                          .build());
    h.poll();
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    auto [ext_addr, ext_id] = mapping_of(common::ipv4::kProtoIcmp, t().subscriber1, 0x4242);
    EXPECT_EQ(out[0], PacketBuilder()
                          .ethernet(h.outside().mac(), t().gateway_mac)
                          .ipv4(ext_addr, t().server1, 63, 3)
                          .icmp_echo(icmp::kEchoRequest, ext_id, 1)
                          .payload("ping")
                          .build());
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server1, ext_addr, 64, 4)
                           .icmp_echo(icmp::kEchoReply, ext_id, 1)
                           .payload("ping")
                           .build());
    h.poll();
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(t().server1, t().subscriber1, 63, 4)
                         .icmp_echo(icmp::kEchoReply, 0x4242, 1)
                         .payload("ping")
                         .build());
}

TEST_F(Translation, EndpointIndependentMappingAndPairedPooling) {
    // RFC 4787 REQ-1: one internal endpoint, two remote hosts -> one external endpoint.
    h.inside().inject(udp_in(t().subscriber1, 40000, t().server1, 53));
    h.inside().inject(udp_in(t().subscriber1, 40000, t().server2, 123));
    // REQ-2 paired pooling: another port of the same subscriber, same external address.
    h.inside().inject(udp_in(t().subscriber1, 40001, t().server1, 53));
    h.poll();
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 3u);
    auto src = [](const Frame& f) {
        const uint8_t* ip = f.data() + common::eth::kHeaderLength;
        return std::make_pair(common::load_be32(ip + common::ipv4::kSrc),
                              common::load_be16(ip + common::ipv4::kMinHeaderLength));
    };
    EXPECT_EQ(src(out[0]), src(out[1]));
    EXPECT_EQ(src(out[0]).first, src(out[2]).first);
    EXPECT_NE(src(out[0]).second, src(out[2]).second);
    EXPECT_EQ(h.counter(Counter::mappings_created), 2u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 3u);
    EXPECT_EQ(h.counter(Counter::subscribers_paired), 1u);
}

// RFC 7857 §5/§6 (protocol independence of endpoint-independent mapping and filtering): what
// cgnd does. Mappings are per protocol: UDP and TCP from the same internal port get their own
// external ports (drawn independently) on the same paired address, and an inbound packet is
// matched only against mappings of its own protocol, so a UDP packet to the external port of
// a TCP mapping opens nothing.
TEST_F(Translation, MappingsAndFilteringArePerProtocol) {
    // UDP and TCP from the same four internal ports: eight mappings, ports drawn independently
    // per protocol on the one paired address.
    std::set<uint16_t> udp_ports, tcp_ports;
    common::Ipv4Address ext_addr{};
    for (uint16_t sport = 40000; sport < 40004; ++sport) {
        h.inside().inject(udp_in(t().subscriber1, sport, t().server1, 53));
        h.inside().inject(PacketBuilder()
                              .ethernet(t().subscriber1_mac, h.inside().mac())
                              .ipv4(t().subscriber1, t().server1)
                              .tcp(sport, 443, common::tcp::kSyn)
                              .build());
        h.poll();
        EXPECT_EQ(h.outside().drain().size(), 2u);
        const auto udp = mapping_of(common::ipv4::kProtoUdp, t().subscriber1, sport);
        const auto tcp = mapping_of(common::ipv4::kProtoTcp, t().subscriber1, sport);
        EXPECT_EQ(udp.first, tcp.first);  // paired pooling covers every protocol
        ext_addr = udp.first;
        udp_ports.insert(udp.second);
        tcp_ports.insert(tcp.second);
    }
    EXPECT_EQ(h.counter(Counter::mappings_created), 8u);
    // Endpoint-independent filtering (the default) lets any host reach a UDP mapping...
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server2, ext_addr)
                           .udp(9999, *udp_ports.begin())
                           .build());
    h.poll();
    EXPECT_EQ(h.inside().drain().size(), 1u);
    // ...but UDP to a port only a TCP mapping has, and TCP to a port only a UDP mapping has,
    // find nothing. Four ports of each protocol drawn at random from a 512-port block: the two
    // sets are equal (no such port) with a probability far below 1e-9; the test then fails.
    std::vector<uint16_t> tcp_only, udp_only;
    std::set_difference(tcp_ports.begin(), tcp_ports.end(), udp_ports.begin(), udp_ports.end(),
                        std::back_inserter(tcp_only));
    std::set_difference(udp_ports.begin(), udp_ports.end(), tcp_ports.begin(), tcp_ports.end(),
                        std::back_inserter(udp_only));
    ASSERT_FALSE(tcp_only.empty());
    ASSERT_FALSE(udp_only.empty());
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server2, ext_addr)
                           .udp(9999, tcp_only[0])
                           .build());
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server2, ext_addr)
                           .tcp(9999, udp_only[0], common::tcp::kSyn)
                           .build());
    h.poll();
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), 2u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 9u);
}

// RFC 5382 REQ-1: "A NAT MUST have an "Endpoint-Independent Mapping" behavior for TCP." One
// internal TCP endpoint connects to two servers on different ports: both connections leave
// from one external endpoint, byte for byte. Without endpoint-independent mapping (a mapping
// per destination) the second SYN gets another external port.
TEST_F(Translation, TcpMappingIsEndpointIndependent) {
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1, 64, 21)
                          .tcp(50000, 443, tcp::kSyn, 1000)
                          .build());
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server2, 64, 22)
                          .tcp(50000, 80, tcp::kSyn, 2000)
                          .build());
    h.poll();
    const auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 2u);
    const auto [ext_addr, ext_port] = mapping_of(common::ipv4::kProtoTcp, t().subscriber1, 50000);
    EXPECT_EQ(out[0], PacketBuilder()
                          .ethernet(h.outside().mac(), t().gateway_mac)
                          .ipv4(ext_addr, t().server1, 63, 21)
                          .tcp(ext_port, 443, tcp::kSyn, 1000)
                          .build())
        << hex(out[0]);
    EXPECT_EQ(out[1], PacketBuilder()
                          .ethernet(h.outside().mac(), t().gateway_mac)
                          .ipv4(ext_addr, t().server2, 63, 22)
                          .tcp(ext_port, 80, tcp::kSyn, 2000)
                          .build())
        << hex(out[1]);
    EXPECT_EQ(h.counter(Counter::mappings_created), 1u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 2u);
    // Both servers' answers reach the one internal endpoint.
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server1, ext_addr, 64, 23)
                           .tcp(443, ext_port, tcp::kSyn | tcp::kAck_, 7000, 1001)
                           .build());
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server2, ext_addr, 64, 24)
                           .tcp(80, ext_port, tcp::kSyn | tcp::kAck_, 8000, 2001)
                           .build());
    h.poll();
    const auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 2u);
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(t().server1, t().subscriber1, 63, 23)
                         .tcp(443, 50000, tcp::kSyn | tcp::kAck_, 7000, 1001)
                         .build());
    EXPECT_EQ(in[1], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(t().server2, t().subscriber1, 63, 24)
                         .tcp(80, 50000, tcp::kSyn | tcp::kAck_, 8000, 2001)
                         .build());
}

TEST_F(Translation, SubscribersSpreadOverPoolAddresses) {
    h.inside().inject(udp_in(t().subscriber1, 40000, t().server1, 53));
    h.inside().inject(udp_in(t().subscriber2, 40000, t().server1, 53));
    h.poll();
    auto a = mapping_of(common::ipv4::kProtoUdp, t().subscriber1, 40000);
    auto b = mapping_of(common::ipv4::kProtoUdp, t().subscriber2, 40000);
    EXPECT_NE(a.first, b.first);
    EXPECT_EQ(h.counter(Counter::subscribers_paired), 2u);
}

TEST_F(Translation, UnsolicitedInboundWithoutMappingIsDroppedAndCounted) {
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server1, *common::Ipv4Address::parse("198.51.100.1"))
                           .udp(53, 40000)
                           .build());
    h.poll();
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), 1u);
}

TEST_F(Translation, TtlExpiringInTransitGetsTimeExceededFromInsideAddress) {
    const Frame original = udp_in(t().subscriber1, 40000, t().server1, 53, "hello", 1);
    h.inside().inject(original);
    h.poll();
    EXPECT_TRUE(h.outside().drain().empty());
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    // RFC 792: type 11 code 0, the offending IP header and 8 bytes of its payload.
    std::vector<uint8_t> quoted(original.begin() + common::eth::kHeaderLength,
                                original.begin() + common::eth::kHeaderLength + 20 + 8);
    const Frame expected = PacketBuilder()
                               .ethernet(h.inside().mac(), t().subscriber1_mac)
                               .ipv4(t().inside.address, t().subscriber1, 64, 0)
                               .icmp(icmp::kTimeExceeded, 0, 0)
                               .payload(quoted)
                               .build();
    EXPECT_EQ(in[0], expected) << "got\n" << hex(in[0]) << "\nexpected\n" << hex(expected);
    EXPECT_EQ(h.counter(Counter::drop_ttl_exceeded), 1u);
    EXPECT_EQ(h.counter(Counter::icmp_time_exceeded_sent), 1u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 0u);
}

TEST_F(Translation, PingToOwnAddressAnswered) {
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().inside.address, 64, 9)
                          .icmp_echo(icmp::kEchoRequest, 7, 1)
                          .payload("abc")
                          .build());
    h.poll();
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(t().inside.address, t().subscriber1, 64, 9)
                         .icmp_echo(icmp::kEchoReply, 7, 1)
                         .payload("abc")
                         .build());
    EXPECT_EQ(h.counter(Counter::icmp_echo_answered), 1u);
}

// Caught by the output checks of cgn-fuzz-packet-path (docs/security.md): the reply, written
// over the request, kept the request's Ethernet trailer, and a request longer than the MTU (a
// port may receive one) was answered with a frame longer than the MTU.
TEST_F(Translation, PingReplyIsTheIpPacketAloneAndFitsTheMtu) {
    const Frame request = PacketBuilder()
                              .ethernet(t().subscriber1_mac, h.inside().mac())
                              .ipv4(t().subscriber1, t().inside.address, 64, 9)
                              .icmp_echo(icmp::kEchoRequest, 7, 1)
                              .payload("abc")
                              .build();
    const Frame reply = PacketBuilder()
                            .ethernet(h.inside().mac(), t().subscriber1_mac)
                            .ipv4(t().inside.address, t().subscriber1, 64, 9)
                            .icmp_echo(icmp::kEchoReply, 7, 1)
                            .payload("abc")
                            .build();
    for (const size_t length : {size_t{60}, size_t{1600}}) {
        Frame padded = request;
        padded.resize(length, 0xab);
        h.inside().inject(padded);
        h.poll();
        auto in = h.inside().drain();
        ASSERT_EQ(in.size(), 1u) << length;
        EXPECT_EQ(in[0], reply) << "request of " << length << " bytes, reply\n" << hex(in[0]);
    }
    // An echo request of 1600 bytes of IP (no DF) is answered in fragments that fit.
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().inside.address, 64, 10)
                          .icmp_echo(icmp::kEchoRequest, 7, 2)
                          .payload(std::string(1572, 'x'))
                          .build());
    h.poll();
    const auto fragments = h.inside().drain();
    ASSERT_EQ(fragments.size(), 2u);
    for (const Frame& f : fragments)
        EXPECT_LE(f.size(), common::eth::kHeaderLength + h.settings().inside.mtu);
    EXPECT_EQ(h.counter(Counter::icmp_echo_answered), 3u);
    EXPECT_EQ(h.counter(Counter::packets_fragmented), 1u);
}

TEST_F(Translation, MalformedIpv4DroppedWithItsReason) {
    Frame bad_checksum = udp_in(t().subscriber1, 40000, t().server1, 53);
    bad_checksum[common::eth::kHeaderLength + common::ipv4::kChecksum] ^= 0x55;
    Frame bad_version = udp_in(t().subscriber1, 40000, t().server1, 53);
    bad_version[common::eth::kHeaderLength] = 0x65;
    Frame truncated = udp_in(t().subscriber1, 40000, t().server1, 53);
    truncated.resize(common::eth::kHeaderLength + 24);
    Frame fragment = PacketBuilder()
                         .ethernet(t().subscriber1_mac, h.inside().mac())
                         .ipv4(t().subscriber1, t().server1)
                         .ipv4_fragment(common::ipv4::kFlagMoreFragments)
                         .icmp_echo(common::icmp::kDestUnreachable, 1, 1)
                         .payload("part")
                         .build();
    Frame gre = PacketBuilder()
                    .ethernet(t().subscriber1_mac, h.inside().mac())
                    .ipv4(t().subscriber1, t().server1)
                    .payload("gre!")
                    .build();
    gre[common::eth::kHeaderLength + common::ipv4::kProtocol] = 47;
    // Fix the header checksum after changing the protocol so only the protocol is "wrong".
    gre[common::eth::kHeaderLength + common::ipv4::kChecksum] = 0;
    gre[common::eth::kHeaderLength + common::ipv4::kChecksum + 1] = 0;
    {
        uint32_t s = 0;
        for (size_t i = 0; i < 20; i += 2)
            s += common::load_be16(&gre[common::eth::kHeaderLength + i]);
        while (s >> 16) s = (s & 0xffff) + (s >> 16);
        common::store_be16(&gre[common::eth::kHeaderLength + common::ipv4::kChecksum],
                           static_cast<uint16_t>(~s));
    }
    // A fragmented ICMP error is not translated (errors are small; RFC 4787 REQ-14 is about
    // queries and data).
    for (const auto& f : {bad_checksum, bad_version, truncated, fragment, gre})
        h.inside().inject(f);
    h.poll();
    EXPECT_TRUE(h.outside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_ipv4_checksum), 1u);
    EXPECT_EQ(h.counter(Counter::drop_ipv4_version), 1u);
    EXPECT_EQ(h.counter(Counter::drop_ipv4_total_length), 1u);
    EXPECT_EQ(h.counter(Counter::drop_ipv4_fragment), 1u);
    EXPECT_EQ(h.counter(Counter::drop_protocol), 1u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 0u);
}

TEST_F(Translation, ForeignFramesAndInsideDestinationsCounted) {
    // A unicast frame for another MAC (promiscuous capture on a shared segment).
    Frame other = udp_in(t().subscriber1, 40000, t().server1, 53);
    other[0] = 0x02;
    other[5] = 0x99;
    h.inside().inject(other);
    // To another inside host: never forwarded to the outside.
    h.inside().inject(udp_in(t().subscriber1, 40000, t().subscriber2, 53));
    h.poll();
    EXPECT_TRUE(h.outside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_not_for_us_l2), 1u);
    EXPECT_EQ(h.counter(Counter::drop_ipv4_martian), 1u);
}

TEST_F(Translation, CountersAddUpOverAMixedBurst) {
    for (uint16_t i = 0; i < 20; ++i)
        h.inside().inject(
            udp_in(t().subscriber1, static_cast<uint16_t>(41000 + i), t().server1, 53));
    Frame bad = udp_in(t().subscriber1, 40000, t().server1, 53);
    bad[common::eth::kHeaderLength + common::ipv4::kChecksum] ^= 1;
    for (int i = 0; i < 5; ++i) h.inside().inject(bad);
    h.poll(3);
    EXPECT_EQ(h.outside().drain().size(), 20u);
    EXPECT_EQ(h.counter(Counter::rx_inside), 25u);
    EXPECT_EQ(h.counter(Counter::in2out_translated) + h.counter(Counter::drop_ipv4_checksum),
              h.counter(Counter::rx_inside));
    EXPECT_EQ(h.counter(Counter::tx_outside), 20u);
}

}  // namespace
}  // namespace cgn::test
