// The MTU of the link a packet leaves on (RFC 4787 §10 REQ-13/13a, RFC 5508 §7.1.1) and the DS
// field of the ICMP errors cgnd sends (RFC 5508 §7.7), through the real worker loop with one
// and two workers: a packet longer than the MTU with DF set is dropped and its sender gets ICMP
// "fragmentation needed and DF set" with the next-hop MTU, quoting the packet as it sent it; one
// without DF leaves in fragments, in order. Every frame is compared byte for byte with one built
// independently here.

#include <gtest/gtest.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <vector>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::Ipv4Address;
using common::MacAddress;
using common::PacketBuilder;
namespace eth = common::eth;
namespace ipv4 = common::ipv4;
namespace icmp = common::icmp;

constexpr uint16_t kDf = ipv4::kFlagDontFragment;
constexpr uint8_t kExpedited = 46 << 2;  // DSCP EF (RFC 3246) in the TOS byte
constexpr uint8_t kEct1 = 0x01;          // an ECN codepoint (RFC 3168), never copied

std::vector<uint8_t> pattern(size_t n) {
    std::vector<uint8_t> b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 13 + 5);
    return b;
}

// The IP packet of a frame, and what follows its IP header.
Frame ip_of(const Frame& frame) { return Frame(frame.begin() + eth::kHeaderLength, frame.end()); }
Frame data_of(const Frame& ip) { return Frame(ip.begin() + (ip[0] & 0x0f) * 4, ip.end()); }

// RFC 792: an ICMP error quotes the IP header and the first 8 bytes of the payload.
Frame quote_of(const Frame& frame) {
    const Frame ip = ip_of(frame);
    return Frame(ip.begin(), ip.begin() + (ip[0] & 0x0f) * 4 + 8);
}

// The fragments RFC 791 §3.2 makes of a datagram without options for a link of `mtu` bytes:
// (mtu - 20) rounded down to 8 data bytes each, MF on all but the last.
struct Datagram {
    MacAddress from_mac, to_mac;
    Ipv4Address src, dst;
    uint8_t ttl;
    uint16_t id;
    uint8_t tos;
    Frame data;  // after the IP header: transport header and payload
};
std::vector<Frame> fragments_of(const Datagram& d, uint16_t mtu) {
    const size_t per_fragment = (mtu - 20u) & ~7u;
    std::vector<Frame> out;
    for (size_t offset = 0; offset < d.data.size(); offset += per_fragment) {
        const size_t length = std::min(per_fragment, d.data.size() - offset);
        const bool more = offset + length < d.data.size();
        out.push_back(PacketBuilder()
                          .ethernet(d.from_mac, d.to_mac)
                          .ipv4(d.src, d.dst, d.ttl, d.id)
                          .ipv4_tos(d.tos)
                          .ipv4_fragment(static_cast<uint16_t>(
                              (more ? ipv4::kFlagMoreFragments : 0) | offset / 8))
                          .raw(ipv4::kProtoUdp)
                          .payload(Frame(d.data.begin() + static_cast<long>(offset),
                                         d.data.begin() + static_cast<long>(offset + length)))
                          .build());
    }
    return out;
}

// What the receiver reassembles from fragments (by their offsets): the datagram's data.
Frame reassembled(const std::vector<Frame>& frames) {
    Frame data;
    for (const Frame& f : frames) {
        const Frame ip = ip_of(f);
        const size_t offset =
            (common::load_be16(&ip[ipv4::kFragment]) & ipv4::kFragmentOffsetMask) * 8u;
        const Frame piece = data_of(ip);
        if (data.size() < offset + piece.size()) data.resize(offset + piece.size());
        std::copy(piece.begin(), piece.end(), data.begin() + static_cast<long>(offset));
    }
    return data;
}

class LinkMtu : public ::testing::TestWithParam<unsigned> {
protected:
    LinkMtu() : h(GetParam()) {}
    void start(uint16_t inside_mtu, uint16_t outside_mtu) {
        h.settings().inside.mtu = inside_mtu;
        h.settings().outside.mtu = outside_mtu;
        h.start();
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }

    // A UDP datagram of `total` bytes (IP header included) from subscriber 1.
    Frame from_subscriber(uint16_t total, uint16_t fragment_field, uint8_t tos = 0,
                          Ipv4Address dst = Ipv4Address{}, uint16_t dport = 53) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(t().subscriber1, dst.value ? dst : t().server1, 64, 0x1234)
            .ipv4_fragment(fragment_field)
            .ipv4_tos(tos)
            .udp(40000, dport)
            .payload(pattern(total - 28u))
            .build();
    }
    // The same datagram once translated (TTL 63, source the external endpoint), without
    // Ethernet header.
    Frame translated_ip(uint16_t total, uint16_t fragment_field, uint8_t tos = 0) {
        const auto ext = *h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000);
        return PacketBuilder()
            .ipv4(Ipv4Address{ext.first}, t().server1, 63, 0x1234)
            .ipv4_fragment(fragment_field)
            .ipv4_tos(tos)
            .udp(ext.second, 53)
            .payload(pattern(total - 28u))
            .build();
    }
    // ICMP "fragmentation needed and DF set" (type 3 code 4, RFC 792) with the next-hop MTU in
    // the second half of its second word (RFC 1191 §4), quoting `offending`.
    Frame fragmentation_needed(MacAddress from_mac, MacAddress to_mac, Ipv4Address from,
                               Ipv4Address to, uint8_t tos, uint16_t mtu, const Frame& offending) {
        return PacketBuilder()
            .ethernet(from_mac, to_mac)
            .ipv4(from, to, 64, 0)
            .ipv4_tos(tos)
            .icmp(icmp::kDestUnreachable, icmp::kCodeFragmentationNeeded, mtu)
            .payload(quote_of(offending))
            .build();
    }
    // Subscriber 1 opens a UDP session with server 1 (40000 -> 53); its external endpoint.
    std::pair<Ipv4Address, uint16_t> open_session() {
        h.inside().inject(from_subscriber(100, 0));
        h.poll(2);
        EXPECT_EQ(h.outside().drain().size(), 1u);
        h.reset_counters();
        const auto ext = *h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000);
        return {Ipv4Address{ext.first}, ext.second};
    }
    // Server 1's answer of `total` bytes to the external endpoint.
    Frame from_server(std::pair<Ipv4Address, uint16_t> ext, uint16_t total, uint16_t fragment_field,
                      uint8_t tos = 0) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(t().server1, ext.first, 50, 0x4321)
            .ipv4_fragment(fragment_field)
            .ipv4_tos(tos)
            .udp(53, ext.second)
            .payload(pattern(total - 28u))
            .build();
    }

    DataplaneHarness h;
};

// RFC 4787 REQ-13, RFC 5508 §7.1.1: a subscriber's DF packet bigger than the outside MTU is
// dropped and answered from cgnd's inside address with type 3 code 4, next-hop MTU 1280,
// quoting the packet with the subscriber's own address and port (as it sent it), in the DS
// class of that packet (RFC 5508 §7.7; ECN cleared). A packet the subscriber then sizes to the
// MTU goes through. Without the MTU check the 1400-byte packet leaves on the outside.
TEST_P(LinkMtu, DfPacketTooBigForTheOutsideIsAnsweredWithFragmentationNeeded) {
    start(1500, 1280);
    const Frame big = from_subscriber(1400, kDf, kExpedited | kEct1);
    h.inside().inject(big);
    h.poll(2);
    EXPECT_TRUE(h.outside().drain().empty()) << "a DF packet bigger than the MTU left";
    const auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    const Frame expected =
        fragmentation_needed(h.inside().mac(), t().subscriber1_mac, t().inside.address,
                             t().subscriber1, kExpedited, 1280, big);
    EXPECT_EQ(in[0], expected) << "got\n" << hex(in[0]) << "\nexpected\n" << hex(expected);
    EXPECT_EQ(h.counter(Counter::icmp_frag_needed_sent), 1u);
    EXPECT_EQ(h.counter(Counter::drop_too_big_df), 1u);
    EXPECT_EQ(h.counter(Counter::tx_outside), 0u);

    h.inside().inject(from_subscriber(1280, kDf, kExpedited));
    h.poll(2);
    const auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(ip_of(out[0]), translated_ip(1280, kDf, kExpedited));
    EXPECT_TRUE(h.inside().drain().empty());
}

// RFC 4787 REQ-13a: without DF the translated packet leaves in two fragments, in order: the
// first with the translated addresses and ports (its UDP checksum covers the whole translated
// datagram), offsets in 8-byte units, MF on the first, the original identification; put
// together they are the translated datagram. Without fragmentation one 1400-byte frame leaves.
TEST_P(LinkMtu, WithoutDfTheTranslatedPacketLeavesInFragmentsInOrder) {
    start(1500, 1280);
    h.inside().inject(from_subscriber(1400, 0, 0x28));
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    const auto out = h.outside().drain();
    const auto ext = *h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000);
    const Frame translated = translated_ip(1400, 0, 0x28);
    const auto expected = fragments_of({h.outside().mac(), t().gateway_mac, Ipv4Address{ext.first},
                                        t().server1, 63, 0x1234, 0x28, data_of(translated)},
                                       1280);
    ASSERT_EQ(expected.size(), 2u);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0], expected[0]) << "got\n" << hex(out[0]) << "\nexpected\n" << hex(expected[0]);
    EXPECT_EQ(out[1], expected[1]) << "got\n" << hex(out[1]) << "\nexpected\n" << hex(expected[1]);
    EXPECT_EQ(out[0].size(), eth::kHeaderLength + 1276);
    EXPECT_EQ(reassembled(out), data_of(translated));
    EXPECT_EQ(h.counter(Counter::in2out_translated), 1u);
    EXPECT_EQ(h.counter(Counter::packets_fragmented), 1u);
    EXPECT_EQ(h.counter(Counter::fragments_created), 2u);
    EXPECT_EQ(h.counter(Counter::tx_outside), 2u);
    EXPECT_EQ(h.counter(Counter::icmp_frag_needed_sent), 0u);
}

// The other direction, with a small inside MTU: a server's DF answer too big for the inside is
// refused to the server from cgnd's outside address, quoting it as the server sent it (to the
// external endpoint); without DF it reaches the subscriber translated, in fragments.
TEST_P(LinkMtu, OutsideToSubscriberOverASmallInsideMtu) {
    start(1280, 1500);
    const auto ext = open_session();
    const Frame big = from_server(ext, 1400, kDf, kExpedited);
    h.outside().inject(big);
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    const Frame expected =
        fragmentation_needed(h.outside().mac(), t().gateway_mac, t().outside.address, t().server1,
                             kExpedited, 1280, big);
    EXPECT_EQ(out[0], expected) << "got\n" << hex(out[0]) << "\nexpected\n" << hex(expected);
    EXPECT_EQ(h.counter(Counter::icmp_frag_needed_sent), 1u);
    EXPECT_EQ(h.counter(Counter::drop_too_big_df), 1u);

    h.outside().inject(from_server(ext, 1400, 0));
    h.poll(2);
    EXPECT_TRUE(h.outside().drain().empty());
    const auto in = h.inside().drain();
    const Frame translated = PacketBuilder()
                                 .ipv4(t().server1, t().subscriber1, 49, 0x4321)
                                 .udp(53, 40000)
                                 .payload(pattern(1400 - 28))
                                 .build();
    const auto expected_in = fragments_of({h.inside().mac(), t().subscriber1_mac, t().server1,
                                           t().subscriber1, 49, 0x4321, 0, data_of(translated)},
                                          1280);
    EXPECT_EQ(in, expected_in);
    EXPECT_EQ(reassembled(in), data_of(translated));
    EXPECT_EQ(h.counter(Counter::out2in_translated), 2u);
    EXPECT_EQ(h.counter(Counter::fragments_created), 2u);
}

// Exactly the MTU is not too big; one byte more is. Without the check's bound being right, the
// 1280-byte packet is refused or the 1281-byte one leaves whole.
TEST_P(LinkMtu, APacketOfExactlyTheMtuPassesWhole) {
    start(1500, 1280);
    h.inside().inject(from_subscriber(1280, kDf));
    h.poll(2);
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(ip_of(out[0]), translated_ip(1280, kDf));
    h.inside().inject(from_subscriber(1281, 0));
    h.poll(2);
    out = h.outside().drain();
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].size(), eth::kHeaderLength + 1276);
    EXPECT_EQ(out[1].size(), eth::kHeaderLength + 20 + 5);
    h.inside().inject(from_subscriber(1281, kDf));
    h.poll(2);
    EXPECT_TRUE(h.outside().drain().empty());
    EXPECT_EQ(h.inside().drain().size(), 1u);
    EXPECT_EQ(h.counter(Counter::packets_fragmented), 1u);
    EXPECT_EQ(h.counter(Counter::icmp_frag_needed_sent), 1u);
}

// RFC 1812 §4.3.2.7: no ICMP error about a non-first fragment or an ICMP error. Too big with DF
// they are dropped (counted) without an answer; an ICMP error without DF is fragmented.
TEST_P(LinkMtu, NoAnswerAboutANonFirstFragmentOrAnIcmpError) {
    start(1500, 1280);
    // A datagram's first fragment (translated as ever), then a later one with DF set.
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1, 64, 0x77)
                          .ipv4_fragment(ipv4::kFlagMoreFragments)
                          .udp(40001, 53)
                          .payload(pattern(16))
                          .build());
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 1u);
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1, 64, 0x77)
                          .ipv4_fragment(kDf | 3)
                          .raw(ipv4::kProtoUdp)
                          .payload(pattern(1380))
                          .build());
    h.poll(2);
    EXPECT_TRUE(h.outside().drain().empty());
    EXPECT_TRUE(h.inside().drain().empty()) << "an ICMP error about a non-first fragment";
    EXPECT_EQ(h.counter(Counter::drop_too_big_df), 1u);

    // The subscriber's port unreachable about a (long) inbound datagram of a session.
    const auto ext = open_session();
    auto error = [&](uint16_t fragment_field) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(t().subscriber1, t().server1, 64, 8)
            .ipv4_fragment(fragment_field)
            .icmp(icmp::kDestUnreachable, 3, 0)
            .payload(PacketBuilder()
                         .ipv4(t().server1, t().subscriber1, 50, 9)
                         .udp(53, 40000)
                         .payload(pattern(1400 - 28 - 28))
                         .build())
            .build();
    };
    ASSERT_EQ(error(kDf).size(), eth::kHeaderLength + 1400);
    h.inside().inject(error(kDf));
    h.poll(2);
    EXPECT_TRUE(h.outside().drain().empty());
    EXPECT_TRUE(h.inside().drain().empty()) << "an ICMP error about an ICMP error";
    EXPECT_EQ(h.counter(Counter::drop_too_big_df), 1u);
    EXPECT_EQ(h.counter(Counter::icmp_errors_translated), 1u);
    h.inside().inject(error(0));
    h.poll(2);
    const auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 2u);
    const Frame ip = ip_of(out[0]);
    EXPECT_EQ(common::load_be32(&ip[ipv4::kSrc]), ext.first.value);
    EXPECT_EQ(ip[ipv4::kProtocol], ipv4::kProtoIcmp);
    EXPECT_EQ(h.counter(Counter::icmp_frag_needed_sent), 0u);
    EXPECT_EQ(h.counter(Counter::packets_fragmented), 1u);
}

// The answers share the worker's ICMP error budget (--icmp-error-rate): at most 3 a second
// here, the rest counted; the packets are dropped all the same.
TEST_P(LinkMtu, FragmentationNeededIsRateLimited) {
    h.settings().icmp_error_rate = 3;
    start(1500, 1280);
    auto burst = [&] {
        for (int i = 0; i < 10; ++i) h.inside().inject(from_subscriber(1400, kDf));
        h.poll(2);
        EXPECT_TRUE(h.outside().drain().empty());
        return h.inside().drain();
    };
    EXPECT_EQ(burst().size(), 3u);
    EXPECT_EQ(h.counter(Counter::icmp_frag_needed_sent), 3u);
    EXPECT_EQ(h.counter(Counter::drop_icmp_rate_limited), 7u);
    EXPECT_EQ(h.counter(Counter::drop_too_big_df), 10u);
    h.clock().advance_ms(1000);
    EXPECT_EQ(burst().size(), 3u);
    EXPECT_EQ(h.counter(Counter::icmp_frag_needed_sent), 6u);
    EXPECT_EQ(h.counter(Counter::drop_too_big_df), 20u);
}

// A hairpinned packet leaves on the inside: the inside MTU counts. With DF the sender is told,
// quoting the packet as it sent it (to B's external endpoint); without DF B gets fragments.
TEST_P(LinkMtu, HairpinnedPacketsMeetTheInsideMtu) {
    start(1280, 1500);
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber2_mac, h.inside().mac())
                          .ipv4(t().subscriber2, t().server1)
                          .udp(5000, 3478)
                          .build());
    h.poll(2);
    h.outside().drain();
    const auto b = *h.find_mapping(ipv4::kProtoUdp, t().subscriber2.value, 5000);
    const Ipv4Address b_ext{b.first};
    h.reset_counters();
    const Frame big = from_subscriber(1400, kDf, kExpedited, b_ext, b.second);
    h.inside().inject(big);
    h.poll(3);
    EXPECT_TRUE(h.outside().drain().empty());
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], fragmentation_needed(h.inside().mac(), t().subscriber1_mac, t().inside.address,
                                          t().subscriber1, kExpedited, 1280, big));

    h.inside().inject(from_subscriber(1400, 0, 0, b_ext, b.second));
    h.poll(3);
    in = h.inside().drain();
    const auto a = *h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000);
    const Frame translated = PacketBuilder()
                                 .ipv4(Ipv4Address{a.first}, t().subscriber2, 63, 0x1234)
                                 .udp(a.second, 5000)
                                 .payload(pattern(1400 - 28))
                                 .build();
    EXPECT_EQ(in, fragments_of({h.inside().mac(), t().subscriber2_mac, Ipv4Address{a.first},
                                t().subscriber2, 63, 0x1234, 0, data_of(translated)},
                               1280));
    EXPECT_EQ(h.counter(Counter::hairpinned), 1u);  // the DF one was refused before
    EXPECT_EQ(h.counter(Counter::drop_too_big_df), 1u);
}

// Exempt destinations (RFC 6888 REQ-6) are routed untranslated, on the same links.
TEST_P(LinkMtu, ExemptTrafficMeetsTheMtuToo) {
    h.settings().exempt_destinations = {*common::Ipv4Prefix::parse("203.0.113.128/25")};
    start(1500, 1280);
    const Ipv4Address dns = Topology::ip("203.0.113.200");
    const Frame big = from_subscriber(1400, kDf, 0, dns);
    h.inside().inject(big);
    h.poll(2);
    EXPECT_TRUE(h.outside().drain().empty());
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], fragmentation_needed(h.inside().mac(), t().subscriber1_mac, t().inside.address,
                                          t().subscriber1, 0, 1280, big));
    h.inside().inject(from_subscriber(1400, 0, 0, dns));
    h.poll(2);
    const Frame untranslated = ip_of(from_subscriber(1400, 0, 0, dns));
    EXPECT_EQ(h.outside().drain(),
              fragments_of({h.outside().mac(), t().gateway_mac, t().subscriber1, dns, 63, 0x1234, 0,
                            data_of(untranslated)},
                           1280));
    EXPECT_EQ(h.counter(Counter::forwarded_untranslated), 1u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 0u);
}

// The fragments come from the worker's mbuf pool; with the pool empty the packet is dropped,
// counted, and nothing half-built leaves.
TEST_P(LinkMtu, FragmentationWithAnEmptyPoolDropsThePacket) {
    start(1500, 1280);
    h.inside().inject(from_subscriber(1400, 0));
    std::vector<rte_mbuf*> taken;
    while (rte_mbuf* m = rte_pktmbuf_alloc(h.pool())) taken.push_back(m);
    h.poll(2);
    for (rte_mbuf* m : taken) rte_pktmbuf_free(m);
    EXPECT_TRUE(h.outside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_fragmentation_failed), 1u);
    EXPECT_EQ(h.counter(Counter::fragments_created), 0u);
    h.inside().inject(from_subscriber(1400, 0));
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 2u);
}

// RFC 5508 §7.7: time exceeded copies the DS field of the packet whose TTL ran out (the ECN
// bits are not copied). Before, the DS field of every ICMP error cgnd sent was 0.
TEST_P(LinkMtu, TimeExceededCopiesTheDiffServCodepoint) {
    start(1500, 1500);
    const Frame dying = PacketBuilder()
                            .ethernet(t().subscriber1_mac, h.inside().mac())
                            .ipv4(t().subscriber1, t().server1, 1, 0x1234)
                            .ipv4_tos(kExpedited | kEct1)
                            .udp(40000, 53)
                            .payload("hello")
                            .build();
    h.inside().inject(dying);
    h.poll(2);
    const auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    const Frame expected = PacketBuilder()
                               .ethernet(h.inside().mac(), t().subscriber1_mac)
                               .ipv4(t().inside.address, t().subscriber1, 64, 0)
                               .ipv4_tos(0xb8)
                               .icmp(icmp::kTimeExceeded, icmp::kCodeTtlExceeded, 0)
                               .payload(quote_of(dying))
                               .build();
    EXPECT_EQ(in[0], expected) << "got\n" << hex(in[0]) << "\nexpected\n" << hex(expected);
}

INSTANTIATE_TEST_SUITE_P(Workers, LinkMtu, ::testing::Values(1u, 2u),
                         [](const auto& info) { return std::to_string(info.param) + "Workers"; });

// The MTUs are fixed at start: a SIGHUP with other values says so and changes nothing.
TEST(LinkMtuReload, MtuChangesNeedARestart) {
    DataplaneHarness h;
    h.settings().outside.mtu = 1280;
    h.start(true);
    common::Config next = h.controller().config();
    EXPECT_EQ(next.outside_mtu, 1280u);
    next.outside_mtu = 1400;
    next.inside_mtu = 9000;
    const std::string report = h.controller().apply_config(next);
    EXPECT_NE(report.find("not applied (needs a restart): --outside-mtu"), std::string::npos)
        << report;
    EXPECT_NE(report.find("not applied (needs a restart): --inside-mtu"), std::string::npos)
        << report;
    EXPECT_EQ(report.find("applied:"), std::string::npos) << report;
}

}  // namespace
}  // namespace cgn::test
