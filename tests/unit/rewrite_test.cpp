#include "dataplane/nat/rewrite.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/unit/reference_checksum.hpp"

namespace cgn::dp {
namespace {

using common::Ipv4Address;
using common::PacketBuilder;
using test::expected_ipv4_checksum;
using test::expected_l4_checksum;
using test::read16;
using test::read32;
namespace ipv4 = common::ipv4;

constexpr uint32_t kCgnSpace = 0x64400000;  // 100.64.0.0/10
constexpr uint32_t kTestNet2 = 0xc6336400;  // 198.51.100.0/24
constexpr uint32_t kTestNet1 = 0xc0000200;  // 192.0.2.0/24

// Offset of the L4 checksum field for a protocol.
size_t l4_checksum_offset(uint8_t protocol) {
    switch (protocol) {
        case ipv4::kProtoTcp:
            return common::tcp::kChecksum;
        case ipv4::kProtoUdp:
            return common::udp::kChecksum;
        default:
            return common::icmp::kChecksum;
    }
}

uint16_t stored_l4_checksum(const uint8_t* l3) {
    const size_t ihl = (l3[0] & 0x0f) * 4u;
    return read16(l3 + ihl + l4_checksum_offset(l3[ipv4::kProtocol]));
}

// Checks both checksums of the packet at `l3` against a full recomputation. `udp_unchecked`:
// the UDP sender sent checksum 0, which must survive.
::testing::AssertionResult checksums_valid(const uint8_t* l3, bool udp_unchecked) {
    const uint16_t ip_stored = read16(l3 + ipv4::kChecksum);
    const uint16_t ip_expected = expected_ipv4_checksum(l3);
    if (ip_stored != ip_expected)
        return ::testing::AssertionFailure() << "IPv4 header checksum " << std::hex << ip_stored
                                             << ", recomputed " << ip_expected;
    const uint8_t protocol = l3[ipv4::kProtocol];
    const uint16_t l4_stored = stored_l4_checksum(l3);
    uint16_t l4_expected = expected_l4_checksum(l3);
    if (protocol == ipv4::kProtoUdp) {
        // RFC 768: no checksum stays 0; a computed 0 is transmitted as all ones.
        if (udp_unchecked)
            l4_expected = 0;
        else if (l4_expected == 0)
            l4_expected = 0xffff;
    }
    if (l4_stored != l4_expected)
        return ::testing::AssertionFailure()
               << "protocol " << int{protocol} << " checksum " << std::hex << l4_stored
               << ", recomputed " << l4_expected;
    return ::testing::AssertionSuccess();
}

// A frame (no Ethernet header: L3 at offset 0) and its parsed view.
struct Parsed {
    std::vector<uint8_t> bytes;
    Ipv4Packet p;
};

void parse_into(Parsed& out) {
    ASSERT_EQ(parse_ipv4(out.bytes.data(), out.bytes.size(), out.p), std::nullopt);
    ASSERT_EQ(parse_transport(out.p), std::nullopt);
}

// ---- Random packets: every rewrite keeps every checksum equal to a full recomputation ---------

class RandomPackets {
public:
    explicit RandomPackets(uint64_t seed) : rng_(seed) {}

    uint32_t below(uint32_t n) { return static_cast<uint32_t>(rng_() % n); }
    uint32_t subscriber() { return kCgnSpace + below(1u << 22); }
    uint32_t outside() { return (below(2) ? kTestNet1 : kTestNet2) + below(256); }
    uint16_t port() { return static_cast<uint16_t>(1 + below(65535)); }

    struct Spec {
        uint8_t protocol;
        bool udp_unchecked;
        std::vector<uint8_t> bytes;
    };

    Spec next() {
        std::vector<uint8_t> payload(below(4) == 0 ? below(4) : below(300));  // odd lengths too
        for (auto& b : payload) b = static_cast<uint8_t>(rng_());
        const bool inbound = below(2) == 1;
        const Ipv4Address src{inbound ? outside() : subscriber()};
        const Ipv4Address dst{inbound ? subscriber() : outside()};
        PacketBuilder b;
        b.ipv4(src, dst, static_cast<uint8_t>(2 + below(254)), static_cast<uint16_t>(rng_()));
        if (below(5) == 0) {
            std::vector<uint8_t> options(1 + below(40));
            for (auto& o : options) o = static_cast<uint8_t>(rng_());
            b.ipv4_options(options);
        }
        if (below(4) == 0) b.ipv4_fragment(ipv4::kFlagDontFragment);
        Spec s{};
        switch (below(3)) {
            case 0:
                s.protocol = ipv4::kProtoUdp;
                b.udp(port(), port());
                s.udp_unchecked = below(5) == 0;
                if (s.udp_unchecked) b.udp_without_checksum();
                break;
            case 1:
                s.protocol = ipv4::kProtoTcp;
                b.tcp(port(), port(), static_cast<uint8_t>(rng_()), static_cast<uint32_t>(rng_()),
                      static_cast<uint32_t>(rng_()));
                break;
            default:
                s.protocol = ipv4::kProtoIcmp;
                b.icmp_echo(below(2) ? common::icmp::kEchoRequest : common::icmp::kEchoReply,
                            static_cast<uint16_t>(rng_()), static_cast<uint16_t>(rng_()));
                break;
        }
        s.bytes = b.payload(payload).build();
        return s;
    }

private:
    std::mt19937_64 rng_;
};

TEST(Rewrite, IncrementalChecksumsEqualFullRecomputeOverRandomPackets) {
    RandomPackets gen(0x5eed);
    int udp_unchecked_seen = 0, icmp_seen = 0, tcp_seen = 0, udp_seen = 0;
    for (int round = 0; round < 6000; ++round) {
        auto spec = gen.next();
        Parsed x{spec.bytes, {}};
        ASSERT_NO_FATAL_FAILURE(parse_into(x)) << "round " << round;
        ASSERT_TRUE(checksums_valid(x.bytes.data(), spec.udp_unchecked)) << "as built";
        const std::vector<uint8_t> payload_before(x.p.l4 + 8, x.bytes.data() + x.bytes.size());
        const uint16_t sport = x.p.src_port, dport = x.p.dst_port;
        const uint32_t src = x.p.src, dst = x.p.dst;
        const uint8_t ttl = x.p.ttl;

        // One, two or three of the rewrites, each with fresh random values.
        const uint32_t what = 1 + gen.below(7);
        uint32_t new_src = src, new_dst = dst;
        uint16_t new_sport = sport, new_dport = dport;
        if (what & 1) {
            new_src = gen.outside();
            new_sport = gen.port();
            rewrite_source(x.p, new_src, new_sport);
            if (spec.protocol == ipv4::kProtoIcmp) new_dport = new_sport;
        }
        if (what & 2) {
            new_dst = gen.subscriber();
            new_dport = gen.port();
            rewrite_destination(x.p, new_dst, new_dport);
            if (spec.protocol == ipv4::kProtoIcmp) new_sport = new_dport;
        }
        if (what & 4) decrement_ttl(x.p);

        const uint8_t* l3 = x.bytes.data();
        const std::string where = "round " + std::to_string(round) + " protocol " +
                                  std::to_string(spec.protocol) + " rewrites " +
                                  std::to_string(what);
        ASSERT_TRUE(checksums_valid(l3, spec.udp_unchecked)) << where;
        if (spec.udp_unchecked) {
            ASSERT_EQ(stored_l4_checksum(l3), 0) << where;
        }

        // The fields changed, in the packet and in the view; nothing else did.
        EXPECT_EQ(read32(l3 + ipv4::kSrc), new_src) << where;
        EXPECT_EQ(read32(l3 + ipv4::kDst), new_dst) << where;
        EXPECT_EQ(x.p.src, new_src) << where;
        EXPECT_EQ(x.p.dst, new_dst) << where;
        EXPECT_EQ(x.p.src_port, new_sport) << where;
        EXPECT_EQ(x.p.dst_port, new_dport) << where;
        const uint8_t expected_ttl = (what & 4) ? ttl - 1 : ttl;
        EXPECT_EQ(l3[ipv4::kTtl], expected_ttl) << where;
        EXPECT_EQ(x.p.ttl, expected_ttl) << where;
        EXPECT_EQ(l3[ipv4::kProtocol], spec.protocol) << where;
        if (spec.protocol == ipv4::kProtoIcmp) {
            EXPECT_EQ(read16(x.p.l4 + common::icmp::kIdentifier), new_sport) << where;
            ++icmp_seen;
        } else {
            EXPECT_EQ(read16(x.p.l4 + 0), new_sport) << where;
            EXPECT_EQ(read16(x.p.l4 + 2), new_dport) << where;
            (spec.protocol == ipv4::kProtoTcp ? tcp_seen : udp_seen) += 1;
        }
        udp_unchecked_seen += spec.udp_unchecked;
        const std::vector<uint8_t> payload_after(x.p.l4 + 8, x.bytes.data() + x.bytes.size());
        if (spec.protocol == ipv4::kProtoTcp) {
            // Bytes 8.. of a TCP header hold seq/ack/flags/window and the checksum (16-17).
            std::vector<uint8_t> a = payload_before, b = payload_after;
            a[8] = a[9] = b[8] = b[9] = 0;
            EXPECT_EQ(a, b) << where;
        } else {
            EXPECT_EQ(payload_before, payload_after) << where;
        }

        // And the result still parses (the header checksum is checked there).
        Ipv4Packet again;
        ASSERT_EQ(parse_ipv4(x.bytes.data(), x.bytes.size(), again), std::nullopt) << where;
    }
    // The generator really produced every kind.
    EXPECT_GT(udp_unchecked_seen, 100);
    EXPECT_GT(udp_seen, 1000);
    EXPECT_GT(tcp_seen, 1000);
    EXPECT_GT(icmp_seen, 1000);
}

// ---- Deliberate corner cases -----------------------------------------------------------------

std::vector<uint8_t> udp_packet(uint16_t sport, bool with_checksum = true) {
    PacketBuilder b;
    b.ipv4(Ipv4Address{0x64400a02}, Ipv4Address{0xc6336407}).udp(sport, 53).payload("abc");
    if (!with_checksum) b.udp_without_checksum();
    return b.build();
}

// The source port that, with source address `addr`, makes the recomputed L4 checksum of
// `bytes` (L3 at 0) zero. Independent of the code under test: brute force over the reference.
std::optional<uint16_t> source_port_giving_zero_checksum(std::vector<uint8_t> bytes,
                                                         uint32_t addr) {
    test::write32(&bytes[ipv4::kSrc], addr);
    const size_t ihl = (bytes[0] & 0x0f) * 4u;
    for (uint32_t port = 1; port <= 0xffff; ++port) {
        test::write16(&bytes[ihl], static_cast<uint16_t>(port));
        if (expected_l4_checksum(bytes.data()) == 0) return static_cast<uint16_t>(port);
    }
    return std::nullopt;
}

TEST(Rewrite, UdpWithoutChecksumStaysWithout) {
    Parsed x{udp_packet(40000, false), {}};
    ASSERT_NO_FATAL_FAILURE(parse_into(x));
    ASSERT_EQ(stored_l4_checksum(x.bytes.data()), 0);
    rewrite_source(x.p, 0xc6336401, 1024);
    EXPECT_EQ(stored_l4_checksum(x.bytes.data()), 0);
    rewrite_destination(x.p, 0x64400001, 2000);
    EXPECT_EQ(stored_l4_checksum(x.bytes.data()), 0);
    EXPECT_EQ(read16(x.p.l4 + common::udp::kSrcPort), 1024);
    EXPECT_EQ(read16(x.p.l4 + common::udp::kDstPort), 2000);
    EXPECT_TRUE(checksums_valid(x.bytes.data(), true));
}

TEST(Rewrite, UdpChecksumThatWouldBecomeZeroIsSentAsAllOnes) {
    Parsed x{udp_packet(40000), {}};
    ASSERT_NO_FATAL_FAILURE(parse_into(x));
    const uint32_t new_addr = 0xc6336405;
    const auto port = source_port_giving_zero_checksum(x.bytes, new_addr);
    ASSERT_TRUE(port.has_value());
    rewrite_source(x.p, new_addr, *port);
    EXPECT_EQ(stored_l4_checksum(x.bytes.data()), 0xffff);
    EXPECT_TRUE(checksums_valid(x.bytes.data(), false));
    // 0xffff is a valid transmission of a zero sum: the whole segment sums to all ones.
    std::vector<uint8_t> pseudo_and_segment(x.bytes.begin() + 12, x.bytes.begin() + 20);
    pseudo_and_segment.insert(pseudo_and_segment.end(), {0, ipv4::kProtoUdp, 0, 11});
    pseudo_and_segment.insert(pseudo_and_segment.end(), x.bytes.begin() + 20, x.bytes.end());
    EXPECT_EQ(test::reference_folded_sum(pseudo_and_segment), 0xffff);
}

TEST(Rewrite, UdpChecksumSentAsAllOnesIsUpdatedNotMistakenForNone) {
    // A packet whose computed UDP checksum is 0, which the builder (like any sender) sends as
    // 0xffff.
    const auto base = udp_packet(40000);
    const auto port = source_port_giving_zero_checksum(base, read32(&base[ipv4::kSrc]));
    ASSERT_TRUE(port.has_value());
    Parsed x{udp_packet(*port), {}};
    ASSERT_NO_FATAL_FAILURE(parse_into(x));
    ASSERT_EQ(stored_l4_checksum(x.bytes.data()), 0xffff);
    rewrite_source(x.p, 0xc0000209, 33333);
    EXPECT_NE(stored_l4_checksum(x.bytes.data()), 0);
    EXPECT_TRUE(checksums_valid(x.bytes.data(), false));
}

TEST(Rewrite, TcpChecksumThatBecomesZeroStaysZero) {
    // TCP has no "no checksum" value: a computed 0 is sent as 0 (RFC 1624 eqn. 3 gets this
    // right where eqn. 2 of RFC 1141 gave 0xffff).
    auto bytes = PacketBuilder()
                     .ipv4(Ipv4Address{0x64400a02}, Ipv4Address{0xc6336407})
                     .tcp(40000, 443, common::tcp::kSyn, 12345)
                     .build();
    Parsed x{bytes, {}};
    ASSERT_NO_FATAL_FAILURE(parse_into(x));
    const uint32_t new_addr = 0xc6336405;
    const auto port = source_port_giving_zero_checksum(x.bytes, new_addr);
    ASSERT_TRUE(port.has_value());
    rewrite_source(x.p, new_addr, *port);
    EXPECT_EQ(stored_l4_checksum(x.bytes.data()), 0x0000);
    EXPECT_TRUE(checksums_valid(x.bytes.data(), false));
}

TEST(Rewrite, SourceRewriteOfAnIcmpEchoChangesTheIdentifier) {
    Parsed x{PacketBuilder()
                 .ipv4(Ipv4Address{0x64400a02}, Ipv4Address{0xc6336407})
                 .icmp_echo(common::icmp::kEchoRequest, 0x1111, 9)
                 .payload("ping!")
                 .build(),
             {}};
    ASSERT_NO_FATAL_FAILURE(parse_into(x));
    rewrite_source(x.p, 0xc0000201, 0x2222);
    EXPECT_EQ(x.p.src, 0xc0000201u);
    EXPECT_EQ(x.p.dst, 0xc6336407u);
    EXPECT_EQ(x.p.src_port, 0x2222);
    EXPECT_EQ(x.p.dst_port, 0x2222);
    EXPECT_EQ(read16(x.p.l4 + common::icmp::kIdentifier), 0x2222);
    EXPECT_EQ(read16(x.p.l4 + common::icmp::kSequence), 9);
    EXPECT_TRUE(checksums_valid(x.bytes.data(), false));
}

TEST(Rewrite, DestinationRewriteOfAnIcmpEchoReplyChangesTheIdentifier) {
    Parsed x{PacketBuilder()
                 .ipv4(Ipv4Address{0xc6336407}, Ipv4Address{0xc0000201})
                 .icmp_echo(common::icmp::kEchoReply, 0x2222, 9)
                 .build(),
             {}};
    ASSERT_NO_FATAL_FAILURE(parse_into(x));
    rewrite_destination(x.p, 0x64400a02, 0x1111);
    EXPECT_EQ(x.p.dst, 0x64400a02u);
    EXPECT_EQ(x.p.src_port, 0x1111);
    EXPECT_EQ(x.p.dst_port, 0x1111);
    EXPECT_EQ(read32(x.bytes.data() + ipv4::kDst), 0x64400a02u);
    EXPECT_EQ(read16(x.p.l4 + common::icmp::kIdentifier), 0x1111);
    EXPECT_TRUE(checksums_valid(x.bytes.data(), false));
}

TEST(Rewrite, DestinationRewriteLeavesTheSourceAlone) {
    Parsed x{PacketBuilder()
                 .ipv4(Ipv4Address{0xc6336407}, Ipv4Address{0xc0000201})
                 .tcp(443, 1024, common::tcp::kSyn | common::tcp::kAck_)
                 .build(),
             {}};
    ASSERT_NO_FATAL_FAILURE(parse_into(x));
    rewrite_destination(x.p, 0x64400a02, 40000);
    EXPECT_EQ(read32(x.bytes.data() + ipv4::kSrc), 0xc6336407u);
    EXPECT_EQ(read16(x.p.l4 + common::tcp::kSrcPort), 443);
    EXPECT_EQ(read32(x.bytes.data() + ipv4::kDst), 0x64400a02u);
    EXPECT_EQ(read16(x.p.l4 + common::tcp::kDstPort), 40000);
    EXPECT_EQ(x.p.src_port, 443);
    EXPECT_TRUE(checksums_valid(x.bytes.data(), false));
}

TEST(Rewrite, DecrementTtlDownToOne) {
    Parsed x{PacketBuilder()
                 .ipv4(Ipv4Address{0x64400a02}, Ipv4Address{0xc6336407}, 255)
                 .udp(1, 2)
                 .build(),
             {}};
    ASSERT_NO_FATAL_FAILURE(parse_into(x));
    const uint16_t udp_checksum = stored_l4_checksum(x.bytes.data());
    for (int expected = 254; expected >= 1; --expected) {
        decrement_ttl(x.p);
        ASSERT_EQ(x.bytes[ipv4::kTtl], expected);
        ASSERT_EQ(x.p.ttl, expected);
        ASSERT_EQ(x.bytes[ipv4::kProtocol], ipv4::kProtoUdp);
        ASSERT_TRUE(checksums_valid(x.bytes.data(), false)) << "ttl " << expected;
    }
    // The TTL is not in the pseudo-header: the UDP checksum is untouched.
    EXPECT_EQ(stored_l4_checksum(x.bytes.data()), udp_checksum);
}

// A header checksum that was wrong stays wrong by the same amount (the rewrite does not
// "repair" corruption, which would hide it from the end host).
TEST(Rewrite, AWrongL4ChecksumStaysWrong) {
    Parsed x{udp_packet(40000), {}};
    ASSERT_NO_FATAL_FAILURE(parse_into(x));
    const size_t at = 20 + common::udp::kChecksum;
    test::write16(&x.bytes[at], static_cast<uint16_t>(read16(&x.bytes[at]) ^ 0x0100));
    rewrite_source(x.p, 0xc0000201, 4000);
    EXPECT_FALSE(checksums_valid(x.bytes.data(), false));
}

// RFC 5508 §4.2: an ICMP error and its quote, translated incrementally, equal the same error
// built from scratch around the translated quote: every checksum (outer IP, ICMP, quoted IP,
// quoted transport) comes out right.
struct QuotedCase {
    const char* name;
    uint8_t protocol;
};

std::vector<uint8_t> quoted_packet(uint8_t protocol, Ipv4Address src, uint16_t sport,
                                   Ipv4Address dst, uint16_t dport) {
    PacketBuilder b;
    b.ipv4(src, dst, 63, 4242);
    if (protocol == ipv4::kProtoUdp) b.udp(sport, dport).payload("datagram");
    if (protocol == ipv4::kProtoTcp) b.tcp(sport, dport, common::tcp::kSyn, 777);
    if (protocol == ipv4::kProtoIcmp)
        b.icmp_echo(common::icmp::kEchoRequest, sport, 9).payload("ping");
    return b.build();
}

std::vector<uint8_t> icmp_error(Ipv4Address src, Ipv4Address dst,
                                const std::vector<uint8_t>& quote) {
    return PacketBuilder()
        .ipv4(src, dst, 60, 99)
        .icmp(common::icmp::kDestUnreachable, 3, 0)
        .payload(quote)
        .build();
}

class IcmpErrorRewrite : public ::testing::TestWithParam<QuotedCase> {};

TEST_P(IcmpErrorRewrite, Out2InEqualsTheErrorBuiltFromScratch) {
    const uint8_t proto = GetParam().protocol;
    const Ipv4Address ext{kTestNet2 + 7}, internal{kCgnSpace + 11}, server{kTestNet1 + 10};
    const uint16_t dport = proto == ipv4::kProtoIcmp ? 51000 : 9;
    auto packet = icmp_error(server, ext, quoted_packet(proto, ext, 51000, server, dport));
    Ipv4Packet p;
    ASSERT_FALSE(parse_ipv4(packet.data(), packet.size(), p));
    ASSERT_FALSE(parse_transport(p));
    rewrite_icmp_error_out2in(p, internal.value, 40000);
    const uint16_t new_dport = proto == ipv4::kProtoIcmp ? 40000 : 9;
    EXPECT_EQ(packet, icmp_error(server, internal,
                                 quoted_packet(proto, internal, 40000, server, new_dport)));
    EXPECT_EQ(p.dst, internal.value);
    EXPECT_EQ(p.inner_src_port, 40000);
}

TEST_P(IcmpErrorRewrite, In2OutEqualsTheErrorBuiltFromScratch) {
    const uint8_t proto = GetParam().protocol;
    const Ipv4Address ext{kTestNet2 + 7}, internal{kCgnSpace + 11}, server{kTestNet1 + 10};
    const uint16_t sport = proto == ipv4::kProtoIcmp ? 40000 : 5353;
    auto packet =
        icmp_error(internal, server, quoted_packet(proto, server, sport, internal, 40000));
    Ipv4Packet p;
    ASSERT_FALSE(parse_ipv4(packet.data(), packet.size(), p));
    ASSERT_FALSE(parse_transport(p));
    rewrite_icmp_error_in2out(p, ext.value, 51000);
    const uint16_t new_sport = proto == ipv4::kProtoIcmp ? 51000 : 5353;
    EXPECT_EQ(packet, icmp_error(ext, server, quoted_packet(proto, server, new_sport, ext, 51000)));
}

INSTANTIATE_TEST_SUITE_P(Quoted, IcmpErrorRewrite,
                         ::testing::Values(QuotedCase{"udp", ipv4::kProtoUdp},
                                           QuotedCase{"tcp", ipv4::kProtoTcp},
                                           QuotedCase{"icmp", ipv4::kProtoIcmp}),
                         [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace cgn::dp
