// ICMP errors through the worker (RFC 5508 §4): an error about a packet of a session is
// translated with its quote, in both directions, whichever worker's queue it arrives on; it
// never creates or refreshes a session; an error about nothing of ours is dropped and counted.

#include <gtest/gtest.h>

#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace icmp = common::icmp;

class IcmpErrors : public ::testing::TestWithParam<unsigned> {
protected:
    IcmpErrors() : h(GetParam()) {}
    void SetUp() override {
        h.settings().nat.timeouts.udp_s = 30;
        h.start();
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }
    std::vector<uint8_t> udp(common::Ipv4Address src, uint16_t sport, common::Ipv4Address dst,
                             uint16_t dport, uint8_t ttl) {
        return PacketBuilder().ipv4(src, dst, ttl, 5).udp(sport, dport).payload("data").build();
    }
    // Subscriber 1 sends UDP 40000 -> server 1 port 9 ("data", IP ID 5); the external
    // endpoint it got.
    std::pair<uint32_t, uint16_t> open_udp() {
        h.inside().inject(PacketBuilder()
                              .ethernet(t().subscriber1_mac, h.inside().mac())
                              .ipv4(t().subscriber1, t().server1, 64, 5)
                              .udp(40000, 9)
                              .payload("data")
                              .build());
        h.poll(2);
        h.outside().drain();
        return *h.find_mapping(common::ipv4::kProtoUdp, t().subscriber1.value, 40000);
    }
    DataplaneHarness h;
};

TEST_P(IcmpErrors, PortUnreachableFromOutsideReachesTheSubscriber) {
    const auto ext = open_udp();
    const common::Ipv4Address ext_addr{ext.first};
    // The server's answer quotes the packet as it arrived there (TTL 63).
    for (uint16_t q = 0; q < h.workers(); ++q) {
        h.outside().inject(PacketBuilder()
                               .ethernet(t().gateway_mac, h.outside().mac())
                               .ipv4(t().server1, ext_addr, 64, 77)
                               .icmp(icmp::kDestUnreachable, 3, 0)
                               .payload(udp(ext_addr, ext.second, t().server1, 9, 63))
                               .build(),
                           q);
        h.poll(2);
        auto in = h.inside().drain();
        ASSERT_EQ(in.size(), 1u) << "queue " << q;
        EXPECT_EQ(in[0], PacketBuilder()
                             .ethernet(h.inside().mac(), t().subscriber1_mac)
                             .ipv4(t().server1, t().subscriber1, 63, 77)
                             .icmp(icmp::kDestUnreachable, 3, 0)
                             .payload(udp(t().subscriber1, 40000, t().server1, 9, 63))
                             .build());
    }
    EXPECT_EQ(h.counter(Counter::icmp_errors_translated), h.workers());
    EXPECT_EQ(h.counter(Counter::sessions_created), 1u);
}

TEST_P(IcmpErrors, PortUnreachableFromTheSubscriberReachesOutside) {
    const auto ext = open_udp();
    const common::Ipv4Address ext_addr{ext.first};
    // An inbound datagram the subscriber has no socket for: it answers port unreachable,
    // quoting the datagram as it received it.
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1, 64, 8)
                          .icmp(icmp::kDestUnreachable, 3, 0)
                          .payload(udp(t().server1, 9, t().subscriber1, 40000, 62))
                          .build());
    h.poll(2);
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], PacketBuilder()
                          .ethernet(h.outside().mac(), t().gateway_mac)
                          .ipv4(ext_addr, t().server1, 63, 8)
                          .icmp(icmp::kDestUnreachable, 3, 0)
                          .payload(udp(t().server1, 9, ext_addr, ext.second, 62))
                          .build());
}

TEST_P(IcmpErrors, ErrorsNeverKeepASessionAliveOrMatchAnother) {
    const auto ext = open_udp();
    const common::Ipv4Address ext_addr{ext.first};
    auto error_about = [&](uint16_t port) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(t().server1, ext_addr)
            .icmp(icmp::kTimeExceeded, 0, 0)
            .payload(udp(ext_addr, port, t().server1, 9, 1))
            .build();
    };
    // Errors at 10, 20, 35 and 45 s: the session still expires at 30 s (the errors do not
    // refresh it), and the later ones find nothing.
    for (uint64_t step : {10'000, 10'000, 15'000, 10'000}) {
        h.clock().advance_ms(step);
        h.poll();  // expiry runs at the end of a loop: let it see the new time first
        h.outside().inject(error_about(ext.second));
        h.poll(2);
    }
    EXPECT_EQ(h.counter(Counter::sessions_expired), 1u);
    EXPECT_EQ(h.counter(Counter::icmp_errors_translated), 2u);  // at 10 s and 20 s
    EXPECT_EQ(h.counter(Counter::drop_icmp_error_no_session), 2u);
    // About a port of no session: dropped, nothing created.
    h.outside().inject(error_about(static_cast<uint16_t>(ext.second ^ 1)));
    h.poll(2);
    EXPECT_EQ(h.counter(Counter::drop_icmp_error_no_session), 3u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 1u);
    EXPECT_EQ(h.inside().drain().size(), 2u);
}

// RFC 5508 REQ-3b: "the NAT MUST step over IP options in the quote to find its transport
// header" — the quoted packet carries 8 bytes of options (record route).
TEST_P(IcmpErrors, QuoteWithIpOptionsIsFoundAndTranslated) {
    const auto ext = open_udp();
    const common::Ipv4Address ext_addr{ext.first};
    const std::vector<uint8_t> options = {7, 7, 4, 0, 0, 0, 0, 0};  // record route, one slot
    auto quote = [&](common::Ipv4Address src, uint16_t sport) {
        return PacketBuilder()
            .ipv4(src, t().server1, 63, 5)
            .ipv4_options(options)
            .udp(sport, 9)
            .payload("data")
            .build();
    };
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server1, ext_addr, 64, 77)
                           .icmp(icmp::kDestUnreachable, 3, 0)
                           .payload(quote(ext_addr, ext.second))
                           .build());
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(t().server1, t().subscriber1, 63, 77)
                         .icmp(icmp::kDestUnreachable, 3, 0)
                         .payload(quote(t().subscriber1, 40000))
                         .build());
}

// RFC 5508 REQ-3d with RFC 4884: an error carrying ICMP extensions (the quote padded to 128
// bytes, its length in 32-bit words in the header, then an extension structure). The quote is
// translated; the padding and the extensions pass unchanged, and nothing in them is taken for
// the quoted transport header or its checksum.
TEST_P(IcmpErrors, ErrorWithIcmpExtensionsKeepsPaddingAndExtensions) {
    const auto ext = open_udp();
    const common::Ipv4Address ext_addr{ext.first};
    // Extension structure: version 2, checksum, one object (class 2 "interface information",
    // 4 bytes of data).
    std::vector<uint8_t> extension = {0x20, 0, 0, 0, 0, 8, 2, 1, 0xde, 0xad, 0xbe, 0xef};
    const uint16_t sum =
        common::checksum_finish(common::checksum_partial(extension.data(), extension.size()));
    extension[2] = static_cast<uint8_t>(sum >> 8);
    extension[3] = static_cast<uint8_t>(sum);
    auto message = [&](common::Ipv4Address src, uint16_t sport) {
        auto body = udp(src, sport, t().server1, 9, 63);
        body.resize(128, 0);
        body.insert(body.end(), extension.begin(), extension.end());
        return body;
    };
    const uint32_t length_words = 128 / 4;  // RFC 4884 §4.1: the second byte of the header
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server1, ext_addr, 64, 78)
                           .icmp(icmp::kTimeExceeded, 0, length_words << 16)
                           .payload(message(ext_addr, ext.second))
                           .build());
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(t().server1, t().subscriber1, 63, 78)
                         .icmp(icmp::kTimeExceeded, 0, length_words << 16)
                         .payload(message(t().subscriber1, 40000))
                         .build())
        << hex(in[0]);
}

// Spoils the 16-bit checksum at `offset`: adds `delta` to the one's complement sum it stands for.
// A checksum updated incrementally (RFC 1624) keeps such an error: the translated field is the
// right one spoiled by the same delta.
void spoil_checksum(std::vector<uint8_t>& packet, size_t offset, uint16_t delta = 0x1234) {
    uint32_t sum = static_cast<uint16_t>(~common::load_be16(packet.data() + offset)) + delta;
    sum = (sum & 0xffff) + (sum >> 16);
    common::store_be16(packet.data() + offset, static_cast<uint16_t>(~sum));
}

// RFC 5508 REQ-3c: "the NAT SHOULD NOT validate the transport checksum of the embedded packet
// ... even when it could". Errors about a UDP datagram and a TCP segment whose quoted transport
// checksums are wrong (the quote is complete, so the checksum could be checked) are translated
// both ways; the quoted checksum is updated incrementally and stays wrong by the same amount.
TEST_P(IcmpErrors, QuotedTransportChecksumIsNotValidated) {
    const auto udp_ext = open_udp();
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1, 64, 6)
                          .tcp(40001, 80, common::tcp::kSyn)
                          .build());
    h.poll(2);
    ASSERT_EQ(h.outside().drain().size(), 1u);
    const auto tcp_ext = *h.find_mapping(common::ipv4::kProtoTcp, t().subscriber1.value, 40001);
    constexpr size_t kUdpChecksum = common::ipv4::kMinHeaderLength + 6;
    constexpr size_t kTcpChecksum = common::ipv4::kMinHeaderLength + 16;
    auto udp_quote = [&](common::Ipv4Address src, uint16_t sport, common::Ipv4Address dst,
                         uint16_t dport) {
        auto q = udp(src, sport, dst, dport, 63);
        spoil_checksum(q, kUdpChecksum);
        return q;
    };
    auto tcp_quote = [&](common::Ipv4Address src, uint16_t sport, common::Ipv4Address dst,
                         uint16_t dport) {
        auto q = PacketBuilder().ipv4(src, dst, 63, 6).tcp(sport, dport, common::tcp::kSyn).build();
        spoil_checksum(q, kTcpChecksum);
        return q;
    };
    auto from_outside = [&](std::vector<uint8_t> quote, common::Ipv4Address to) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(t().server1, to, 64, 90)
            .icmp(icmp::kDestUnreachable, 3, 0)
            .payload(quote)
            .build();
    };
    auto to_subscriber = [&](std::vector<uint8_t> quote) {
        return PacketBuilder()
            .ethernet(h.inside().mac(), t().subscriber1_mac)
            .ipv4(t().server1, t().subscriber1, 63, 90)
            .icmp(icmp::kDestUnreachable, 3, 0)
            .payload(quote)
            .build();
    };
    const common::Ipv4Address udp_addr{udp_ext.first}, tcp_addr{tcp_ext.first};

    h.outside().inject(from_outside(udp_quote(udp_addr, udp_ext.second, t().server1, 9), udp_addr));
    h.outside().inject(
        from_outside(tcp_quote(tcp_addr, tcp_ext.second, t().server1, 80), tcp_addr));
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 2u);
    EXPECT_EQ(in[0], to_subscriber(udp_quote(t().subscriber1, 40000, t().server1, 9)))
        << hex(in[0]);
    EXPECT_EQ(in[1], to_subscriber(tcp_quote(t().subscriber1, 40001, t().server1, 80)))
        << hex(in[1]);

    // From the subscriber: it quotes the datagram as it received it, with a wrong checksum.
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1, 64, 91)
                          .icmp(icmp::kDestUnreachable, 3, 0)
                          .payload(udp_quote(t().server1, 9, t().subscriber1, 40000))
                          .build());
    h.poll(2);
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], PacketBuilder()
                          .ethernet(h.outside().mac(), t().gateway_mac)
                          .ipv4(udp_addr, t().server1, 63, 91)
                          .icmp(icmp::kDestUnreachable, 3, 0)
                          .payload(udp_quote(t().server1, 9, udp_addr, udp_ext.second))
                          .build())
        << hex(out[0]);
    EXPECT_EQ(h.counter(Counter::icmp_errors_translated), 3u);
    EXPECT_EQ(h.counter(Counter::drop_icmp_error_malformed), 0u);
}

INSTANTIATE_TEST_SUITE_P(Workers, IcmpErrors, ::testing::Values(1u, 2u),
                         [](const auto& info) { return std::to_string(info.param) + "workers"; });

}  // namespace
}  // namespace cgn::test
