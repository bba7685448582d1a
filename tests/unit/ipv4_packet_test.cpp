#include "dataplane/nat/ipv4_packet.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/unit/reference_checksum.hpp"

namespace cgn::dp {
namespace {

using common::Counter;
using common::Ipv4Address;
using common::MacAddress;
using common::PacketBuilder;
using test::fix_ipv4_checksum;
using test::write16;

constexpr size_t kEth = common::eth::kHeaderLength;
const Ipv4Address kSubscriber{0x64400a02};  // 100.64.10.2
const Ipv4Address kServer{0xc6336407};      // 198.51.100.7
const MacAddress kMacA{{0x02, 0, 0, 0, 0, 1}};
const MacAddress kMacB{{0x02, 0, 0, 0, 0, 2}};

PacketBuilder udp_frame() {
    return PacketBuilder()
        .ethernet(kMacA, kMacB)
        .ipv4(kSubscriber, kServer, 63, 0x1234)
        .udp(40000, 53)
        .payload("query");
}

// Parses the IPv4 header of an Ethernet frame.
std::optional<Counter> parse_frame(std::vector<uint8_t>& frame, Ipv4Packet& p) {
    return parse_ipv4(frame.data() + kEth, frame.size() - kEth, p);
}

// Both steps; the first drop reason.
std::optional<Counter> parse_all(std::vector<uint8_t>& frame, Ipv4Packet& p) {
    if (auto reason = parse_frame(frame, p)) return reason;
    return parse_transport(p);
}

// Sets the IPv4 total length (and the header checksum to match).
void set_total_length(std::vector<uint8_t>& frame, uint16_t total) {
    write16(&frame[kEth + common::ipv4::kTotalLength], total);
    fix_ipv4_checksum(&frame[kEth]);
}

void set_protocol(std::vector<uint8_t>& frame, uint8_t protocol) {
    frame[kEth + common::ipv4::kProtocol] = protocol;
    fix_ipv4_checksum(&frame[kEth]);
}

// ---- parse_ipv4 ------------------------------------------------------------------------------

TEST(ParseIpv4, ReadsTheHeaderFields) {
    auto frame = udp_frame().build();
    Ipv4Packet p;
    ASSERT_EQ(parse_frame(frame, p), std::nullopt);
    EXPECT_EQ(p.l3, frame.data() + kEth);
    EXPECT_EQ(p.l4, frame.data() + kEth + 20);
    EXPECT_EQ(p.header_length, 20);
    EXPECT_EQ(p.total_length, 20 + 8 + 5);
    EXPECT_EQ(p.l4_length, 8 + 5);
    EXPECT_EQ(p.protocol, common::ipv4::kProtoUdp);
    EXPECT_EQ(p.ttl, 63);
    EXPECT_EQ(p.src, kSubscriber.value);
    EXPECT_EQ(p.dst, kServer.value);
    EXPECT_FALSE(p.fragment);
}

TEST(ParseIpv4, ShorterThanAHeaderIsARunt) {
    auto frame = udp_frame().build();
    Ipv4Packet p;
    EXPECT_EQ(parse_ipv4(frame.data() + kEth, 19, p), Counter::drop_runt);
    EXPECT_EQ(parse_ipv4(frame.data() + kEth, 0, p), Counter::drop_runt);
}

TEST(ParseIpv4, RejectsVersionOtherThanFour) {
    for (uint8_t version : {0, 5, 6, 15}) {
        auto frame = udp_frame().build();
        frame[kEth] = static_cast<uint8_t>((version << 4) | 5);
        fix_ipv4_checksum(&frame[kEth]);
        Ipv4Packet p;
        EXPECT_EQ(parse_frame(frame, p), Counter::drop_ipv4_version) << int{version};
    }
}

TEST(ParseIpv4, RejectsHeaderLengthBelowFive) {
    for (uint8_t ihl : {0, 1, 4}) {
        auto frame = udp_frame().build();
        frame[kEth] = static_cast<uint8_t>(0x40 | ihl);
        Ipv4Packet p;
        EXPECT_EQ(parse_frame(frame, p), Counter::drop_ipv4_header_length) << int{ihl};
    }
}

TEST(ParseIpv4, RejectsHeaderLengthBeyondTheFrame) {
    // 20 + 8 + 5 = 33 bytes of IP: IHL 9 (36 bytes) does not fit.
    auto frame = udp_frame().build();
    frame[kEth] = 0x49;
    Ipv4Packet p;
    EXPECT_EQ(parse_frame(frame, p), Counter::drop_ipv4_header_length);
    // IHL 15 (60 bytes).
    frame[kEth] = 0x4f;
    EXPECT_EQ(parse_frame(frame, p), Counter::drop_ipv4_header_length);
    // A header with options cut by the end of the frame: 22 of its 24 bytes.
    auto with_options = udp_frame().ipv4_options({1, 1, 1, 1}).build();
    EXPECT_EQ(parse_ipv4(with_options.data() + kEth, 22, p), Counter::drop_ipv4_header_length);
}

TEST(ParseIpv4, RejectsTotalLengthBeyondTheFrame) {
    auto frame = udp_frame().build();
    set_total_length(frame, static_cast<uint16_t>(frame.size() - kEth + 1));
    Ipv4Packet p;
    EXPECT_EQ(parse_frame(frame, p), Counter::drop_ipv4_total_length);
    set_total_length(frame, 0xffff);
    EXPECT_EQ(parse_frame(frame, p), Counter::drop_ipv4_total_length);
}

TEST(ParseIpv4, RejectsTotalLengthBelowTheHeaderLength) {
    auto frame = udp_frame().build();
    for (uint16_t total : {0, 1, 19}) {
        set_total_length(frame, total);
        Ipv4Packet p;
        EXPECT_EQ(parse_frame(frame, p), Counter::drop_ipv4_total_length) << total;
    }
    // With options (IHL 6, 24 bytes), a total of 20..23 is still below the header.
    auto with_options = udp_frame().ipv4_options({1, 1, 1, 1}).build();
    set_total_length(with_options, 23);
    Ipv4Packet p;
    EXPECT_EQ(parse_frame(with_options, p), Counter::drop_ipv4_total_length);
}

TEST(ParseIpv4, AcceptsTotalLengthEqualToTheHeader) {
    auto frame = udp_frame().build();
    set_total_length(frame, 20);
    Ipv4Packet p;
    ASSERT_EQ(parse_frame(frame, p), std::nullopt);
    EXPECT_EQ(p.l4_length, 0);
}

TEST(ParseIpv4, RejectsAWrongHeaderChecksum) {
    auto frame = udp_frame().build();
    frame[kEth + common::ipv4::kChecksum] ^= 0x01;
    Ipv4Packet p;
    EXPECT_EQ(parse_frame(frame, p), Counter::drop_ipv4_checksum);

    // A changed field without a checksum update is caught too.
    auto changed = udp_frame().build();
    changed[kEth + common::ipv4::kTtl] = 1;
    EXPECT_EQ(parse_frame(changed, p), Counter::drop_ipv4_checksum);
}

TEST(ParseIpv4, ChecksumCoversTheOptions) {
    auto frame = udp_frame().ipv4_options({7, 7, 4, 0, 0, 0, 0, 0}).build();
    frame[kEth + 20 + 4] = 0x42;  // inside the option, after the header checksum was computed
    Ipv4Packet p;
    EXPECT_EQ(parse_frame(frame, p), Counter::drop_ipv4_checksum);
}

TEST(ParseIpv4, AcceptsOptions) {
    // Record route, 7 bytes, padded by the builder to 8: IHL 7.
    auto frame = udp_frame().ipv4_options({7, 7, 4, 0, 0, 0, 0}).build();
    Ipv4Packet p;
    ASSERT_EQ(parse_all(frame, p), std::nullopt);
    EXPECT_EQ(p.header_length, 28);
    EXPECT_EQ(p.l4, frame.data() + kEth + 28);
    EXPECT_EQ(p.total_length, 28 + 8 + 5);
    EXPECT_EQ(p.l4_length, 8 + 5);
    EXPECT_EQ(p.src_port, 40000);
    EXPECT_EQ(p.dst_port, 53);

    // The largest header: IHL 15, 40 bytes of options.
    auto largest = udp_frame().ipv4_options(std::vector<uint8_t>(40, 1)).build();
    ASSERT_EQ(parse_all(largest, p), std::nullopt);
    EXPECT_EQ(p.header_length, 60);
    EXPECT_EQ(p.src_port, 40000);
}

TEST(ParseIpv4, AcceptsTrailingEthernetPadding) {
    // A 1-byte UDP payload gives a 43-byte frame; Ethernet pads it to 60 bytes.
    auto frame = udp_frame().payload("x").build();
    ASSERT_EQ(frame.size(), kEth + 29);
    frame.resize(60, 0);
    Ipv4Packet p;
    ASSERT_EQ(parse_all(frame, p), std::nullopt);
    EXPECT_EQ(p.total_length, 29);
    EXPECT_EQ(p.l4_length, 9);
    EXPECT_EQ(p.src_port, 40000);
}

TEST(ParseIpv4, FlagsFragments) {
    struct Case {
        uint16_t flags_and_offset;
        bool fragment;
    };
    const Case cases[] = {
        {0x0000, false},                           // whole datagram
        {common::ipv4::kFlagDontFragment, false},  // DF only
        {common::ipv4::kFlagMoreFragments, true},  // first fragment
        {0x0001, true},                            // last fragment (offset 8 bytes)
        {0x2000 | 0x00b9, true},                   // middle fragment
        {0x1fff, true},                            // largest offset
    };
    for (const auto& c : cases) {
        auto frame = udp_frame().ipv4_fragment(c.flags_and_offset).build();
        Ipv4Packet p;
        ASSERT_EQ(parse_frame(frame, p), std::nullopt);
        EXPECT_EQ(p.fragment, c.fragment) << std::hex << c.flags_and_offset;
    }
}

// ---- parse_transport -------------------------------------------------------------------------

TEST(ParseTransport, ReadsUdpPorts) {
    auto frame = udp_frame().build();
    Ipv4Packet p;
    ASSERT_EQ(parse_all(frame, p), std::nullopt);
    EXPECT_EQ(p.src_port, 40000);
    EXPECT_EQ(p.dst_port, 53);
}

TEST(ParseTransport, AcceptsUdpWithoutChecksumAndEmptyPayload) {
    auto frame = udp_frame().udp_without_checksum().payload("").build();
    Ipv4Packet p;
    ASSERT_EQ(parse_all(frame, p), std::nullopt);
    EXPECT_EQ(p.l4_length, 8);
}

TEST(ParseTransport, RejectsTruncatedUdp) {
    Ipv4Packet p;
    // Fewer than 8 bytes after the IP header.
    auto short_l4 = udp_frame().build();
    set_total_length(short_l4, 20 + 7);
    EXPECT_EQ(parse_all(short_l4, p), Counter::drop_l4_truncated);
    // UDP length field below the header size.
    auto small_length = udp_frame().build();
    write16(&small_length[kEth + 20 + common::udp::kLength], 7);
    EXPECT_EQ(parse_all(small_length, p), Counter::drop_l4_truncated);
    // UDP length field beyond the IP payload.
    auto large_length = udp_frame().build();
    write16(&large_length[kEth + 20 + common::udp::kLength], 8 + 5 + 1);
    EXPECT_EQ(parse_all(large_length, p), Counter::drop_l4_truncated);
}

TEST(ParseTransport, RejectsUdpPortZero) {
    Ipv4Packet p;
    auto src_zero =
        PacketBuilder().ethernet(kMacA, kMacB).ipv4(kSubscriber, kServer).udp(0, 53).build();
    EXPECT_EQ(parse_all(src_zero, p), Counter::drop_l4_truncated);
    auto dst_zero =
        PacketBuilder().ethernet(kMacA, kMacB).ipv4(kSubscriber, kServer).udp(53, 0).build();
    EXPECT_EQ(parse_all(dst_zero, p), Counter::drop_l4_truncated);
}

TEST(ParseTransport, ReadsTcpPortsAndFlags) {
    const uint8_t syn_ack = common::tcp::kSyn | common::tcp::kAck_;
    auto frame = PacketBuilder()
                     .ethernet(kMacA, kMacB)
                     .ipv4(kSubscriber, kServer)
                     .tcp(51000, 443, syn_ack, 1000, 2000)
                     .payload("hello")
                     .build();
    Ipv4Packet p;
    ASSERT_EQ(parse_all(frame, p), std::nullopt);
    EXPECT_EQ(p.protocol, common::ipv4::kProtoTcp);
    EXPECT_EQ(p.src_port, 51000);
    EXPECT_EQ(p.dst_port, 443);
    EXPECT_EQ(p.tcp_flags, syn_ack);
    EXPECT_EQ(p.l4_length, 20 + 5);
}

TEST(ParseTransport, ChecksTheTcpDataOffset) {
    auto build = [] {
        return PacketBuilder()
            .ethernet(kMacA, kMacB)
            .ipv4(kSubscriber, kServer)
            .tcp(51000, 443, common::tcp::kAck_)
            .payload("0123456789")  // 20 + 10 = 30 bytes of segment
            .build();
    };
    const size_t offset_byte = kEth + 20 + common::tcp::kDataOffset;
    Ipv4Packet p;
    for (uint8_t words : {0, 4}) {
        auto frame = build();
        frame[offset_byte] = static_cast<uint8_t>(words << 4);
        EXPECT_EQ(parse_all(frame, p), Counter::drop_l4_truncated) << int{words};
    }
    // 32 bytes of header in a 30-byte segment.
    auto beyond = build();
    beyond[offset_byte] = 8 << 4;
    EXPECT_EQ(parse_all(beyond, p), Counter::drop_l4_truncated);
    // 28 bytes of header (options) fit.
    auto options = build();
    options[offset_byte] = 7 << 4;
    EXPECT_EQ(parse_all(options, p), std::nullopt);
    // Exactly the segment.
    auto exact = PacketBuilder()
                     .ethernet(kMacA, kMacB)
                     .ipv4(kSubscriber, kServer)
                     .tcp(51000, 443, common::tcp::kAck_)
                     .payload("01234567")
                     .build();
    exact[offset_byte] = 7 << 4;
    EXPECT_EQ(parse_all(exact, p), std::nullopt);
}

TEST(ParseTransport, RejectsTruncatedTcp) {
    auto frame = PacketBuilder()
                     .ethernet(kMacA, kMacB)
                     .ipv4(kSubscriber, kServer)
                     .tcp(51000, 443, common::tcp::kSyn)
                     .build();
    set_total_length(frame, 20 + 19);
    Ipv4Packet p;
    EXPECT_EQ(parse_all(frame, p), Counter::drop_l4_truncated);
}

TEST(ParseTransport, RejectsTcpPortZero) {
    Ipv4Packet p;
    auto src_zero = PacketBuilder()
                        .ethernet(kMacA, kMacB)
                        .ipv4(kSubscriber, kServer)
                        .tcp(0, 443, common::tcp::kSyn)
                        .build();
    EXPECT_EQ(parse_all(src_zero, p), Counter::drop_l4_truncated);
    auto dst_zero = PacketBuilder()
                        .ethernet(kMacA, kMacB)
                        .ipv4(kSubscriber, kServer)
                        .tcp(51000, 0, common::tcp::kSyn)
                        .build();
    EXPECT_EQ(parse_all(dst_zero, p), Counter::drop_l4_truncated);
}

TEST(ParseTransport, IcmpEchoIdentifierIsBothPorts) {
    for (uint8_t type : {common::icmp::kEchoRequest, common::icmp::kEchoReply}) {
        auto frame = PacketBuilder()
                         .ethernet(kMacA, kMacB)
                         .ipv4(kSubscriber, kServer)
                         .icmp_echo(type, 0xbeef, 7)
                         .payload("ping")
                         .build();
        Ipv4Packet p;
        ASSERT_EQ(parse_all(frame, p), std::nullopt);
        EXPECT_EQ(p.protocol, common::ipv4::kProtoIcmp);
        EXPECT_EQ(p.icmp_type, type);
        EXPECT_EQ(p.src_port, 0xbeef);
        EXPECT_EQ(p.dst_port, 0xbeef);
    }
}

TEST(ParseTransport, RejectsIcmpOtherThanEchoAndErrors) {
    for (uint8_t type : {uint8_t{5}, uint8_t{13}, uint8_t{4}}) {
        auto frame = PacketBuilder()
                         .ethernet(kMacA, kMacB)
                         .ipv4(kSubscriber, kServer)
                         .icmp(type, 0, 0)
                         .build();
        Ipv4Packet p;
        EXPECT_EQ(parse_all(frame, p), Counter::drop_icmp_type) << int{type};
    }
}

TEST(ParseTransport, IcmpErrorsExposeTheQuotedPacket) {
    const auto quoted =
        PacketBuilder().ipv4(kSubscriber, kServer).udp(40000, 53).payload("q").build();
    for (uint8_t type : {common::icmp::kDestUnreachable, common::icmp::kTimeExceeded,
                         common::icmp::kParameterProblem}) {
        auto frame = PacketBuilder()
                         .ethernet(kMacA, kMacB)
                         .ipv4(kServer, kSubscriber)
                         .icmp(type, 3, 0)
                         .payload(quoted)
                         .build();
        Ipv4Packet p;
        ASSERT_EQ(parse_all(frame, p), std::nullopt) << int{type};
        EXPECT_TRUE(p.icmp_error);
        EXPECT_EQ(p.inner_protocol, common::ipv4::kProtoUdp);
        EXPECT_EQ(p.inner_src, kSubscriber.value);
        EXPECT_EQ(p.inner_dst, kServer.value);
        EXPECT_EQ(p.inner_src_port, 40000);
        EXPECT_EQ(p.inner_dst_port, 53);
    }
}

TEST(ParseTransport, IcmpErrorsQuotingTooLittleOrAnErrorAreRefused) {
    auto error_with = [](const std::vector<uint8_t>& quote) {
        return PacketBuilder()
            .ethernet(kMacA, kMacB)
            .ipv4(kServer, kSubscriber)
            .icmp(common::icmp::kDestUnreachable, 1, 0)
            .payload(quote)
            .build();
    };
    auto udp = PacketBuilder().ipv4(kSubscriber, kServer).udp(40000, 53).build();
    std::vector<uint8_t> short_quote(udp.begin(), udp.begin() + 20 + 7);
    auto inner_error =
        PacketBuilder().ipv4(kSubscriber, kServer).icmp(common::icmp::kTimeExceeded, 0, 0).build();
    auto fragment =
        PacketBuilder().ipv4(kSubscriber, kServer).ipv4_fragment(100).udp(40000, 53).build();
    auto gre = udp;
    gre[9] = 47;
    for (const auto& quote : {short_quote, inner_error, fragment, gre}) {
        Ipv4Packet p;
        auto frame = error_with(quote);
        EXPECT_EQ(parse_all(frame, p), Counter::drop_icmp_error_malformed);
    }
    // RFC 5508 REQ-3: a good quote behind a wrong ICMP checksum is refused too; REQ-3a: so is
    // a quote whose own IP header checksum is wrong (the ICMP checksum being right).
    auto corrupted = error_with(udp);
    corrupted.back() ^= 0x40;
    Ipv4Packet p;
    EXPECT_EQ(parse_all(corrupted, p), Counter::drop_icmp_error_malformed);
    auto bad_quote = udp;
    bad_quote[common::ipv4::kChecksum] ^= 0x01;
    auto bad_quote_frame = error_with(bad_quote);
    EXPECT_EQ(parse_all(bad_quote_frame, p), Counter::drop_icmp_error_malformed);
    auto intact = error_with(udp);
    EXPECT_EQ(parse_all(intact, p), std::nullopt);
}

TEST(ParseTransport, RejectsTruncatedIcmp) {
    auto frame = PacketBuilder()
                     .ethernet(kMacA, kMacB)
                     .ipv4(kSubscriber, kServer)
                     .icmp_echo(common::icmp::kEchoRequest, 1, 1)
                     .build();
    set_total_length(frame, 20 + 7);
    Ipv4Packet p;
    EXPECT_EQ(parse_all(frame, p), Counter::drop_l4_truncated);
}

TEST(ParseTransport, RejectsOtherProtocols) {
    for (uint8_t protocol : {uint8_t{0}, uint8_t{2}, uint8_t{41}, uint8_t{47}, uint8_t{50},
                             uint8_t{132}, uint8_t{255}}) {
        auto frame = udp_frame().build();
        set_protocol(frame, protocol);
        Ipv4Packet p;
        EXPECT_EQ(parse_all(frame, p), Counter::drop_protocol) << int{protocol};
    }
}

// RFC 4787 REQ-14: fragments of UDP, TCP and ICMP echo are parsed for virtual reassembly: a
// first fragment with its ports, a later one without a transport header.
TEST(ParseTransport, FragmentsOfTranslatedProtocolsAreParsed) {
    const std::vector<uint8_t> firsts[] = {
        udp_frame().ipv4_fragment(common::ipv4::kFlagMoreFragments).build(),
        PacketBuilder()
            .ethernet(kMacA, kMacB)
            .ipv4(kSubscriber, kServer)
            .ipv4_fragment(common::ipv4::kFlagMoreFragments)
            .tcp(1, 2, common::tcp::kSyn)
            .build(),
        PacketBuilder()
            .ethernet(kMacA, kMacB)
            .ipv4(kSubscriber, kServer)
            .ipv4_fragment(common::ipv4::kFlagMoreFragments)
            .icmp_echo(common::icmp::kEchoRequest, 77, 1)
            .build(),
    };
    for (auto frame : firsts) {
        Ipv4Packet p;
        EXPECT_EQ(parse_all(frame, p), std::nullopt);
        EXPECT_TRUE(p.fragment);
        EXPECT_TRUE(p.l4_header);
        EXPECT_NE(p.src_port, 0);
    }
    for (uint16_t offset : {uint16_t{0x0010}, uint16_t{0x0003 | common::ipv4::kFlagMoreFragments}}) {
        auto later = udp_frame().ipv4_fragment(offset).build();
        Ipv4Packet p;
        EXPECT_EQ(parse_all(later, p), std::nullopt);
        EXPECT_TRUE(p.fragment);
        EXPECT_FALSE(p.l4_header) << "a later fragment's payload is no transport header";
        EXPECT_EQ(p.src_port, 0);
    }
    // A fragment of a protocol we do not translate is a protocol drop.
    auto gre = udp_frame().ipv4_fragment(0x0020).build();
    set_protocol(gre, 47);
    Ipv4Packet p;
    EXPECT_EQ(parse_all(gre, p), Counter::drop_protocol);
    // DF alone is not a fragment.
    auto df = udp_frame().ipv4_fragment(common::ipv4::kFlagDontFragment).build();
    EXPECT_EQ(parse_all(df, p), std::nullopt);
    EXPECT_FALSE(p.fragment);
}

}  // namespace
}  // namespace cgn::dp
