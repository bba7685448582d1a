#include "common/packet_builder.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/headers.hpp"
#include "tests/unit/reference_checksum.hpp"

namespace cgn::common {
namespace {

using test::expected_ipv4_checksum;
using test::expected_l4_checksum;
using test::read16;
using test::read32;

const MacAddress kSrcMac{{0x02, 0, 0, 0, 0, 1}};
const MacAddress kDstMac{{0x02, 0, 0, 0, 0, 2}};
const Ipv4Address kSrc{0x64400a02};  // 100.64.10.2
const Ipv4Address kDst{0xc6336407};  // 198.51.100.7

TEST(PacketBuilder, EthernetIpv4Udp) {
    const auto f = PacketBuilder()
                       .ethernet(kSrcMac, kDstMac)
                       .ipv4(kSrc, kDst, 17, 0xabcd)
                       .udp(5000, 53)
                       .payload("hello")
                       .build();
    ASSERT_EQ(f.size(), 14u + 20 + 8 + 5);
    EXPECT_EQ(std::vector<uint8_t>(f.begin(), f.begin() + 6),
              std::vector<uint8_t>(kDstMac.bytes.begin(), kDstMac.bytes.end()));
    EXPECT_EQ(std::vector<uint8_t>(f.begin() + 6, f.begin() + 12),
              std::vector<uint8_t>(kSrcMac.bytes.begin(), kSrcMac.bytes.end()));
    EXPECT_EQ(read16(&f[12]), eth::kTypeIpv4);
    const uint8_t* ip = &f[14];
    EXPECT_EQ(ip[0], 0x45);
    EXPECT_EQ(read16(ip + ipv4::kTotalLength), 33);
    EXPECT_EQ(read16(ip + ipv4::kId), 0xabcd);
    EXPECT_EQ(read16(ip + ipv4::kFragment), 0);
    EXPECT_EQ(ip[ipv4::kTtl], 17);
    EXPECT_EQ(ip[ipv4::kProtocol], ipv4::kProtoUdp);
    EXPECT_EQ(read32(ip + ipv4::kSrc), kSrc.value);
    EXPECT_EQ(read32(ip + ipv4::kDst), kDst.value);
    EXPECT_EQ(read16(ip + ipv4::kChecksum), expected_ipv4_checksum(ip));
    const uint8_t* udp = ip + 20;
    EXPECT_EQ(read16(udp + udp::kSrcPort), 5000);
    EXPECT_EQ(read16(udp + udp::kDstPort), 53);
    EXPECT_EQ(read16(udp + udp::kLength), 13);
    EXPECT_EQ(read16(udp + udp::kChecksum), expected_l4_checksum(ip));
    EXPECT_EQ(std::string(udp + 8, udp + 13), "hello");
}

TEST(PacketBuilder, UdpWithoutChecksum) {
    const auto f = PacketBuilder().ipv4(kSrc, kDst).udp(1, 2).udp_without_checksum().build();
    EXPECT_EQ(read16(&f[20 + udp::kChecksum]), 0);
}

TEST(PacketBuilder, TcpHeader) {
    const auto f = PacketBuilder()
                       .ipv4(kSrc, kDst)
                       .tcp(40000, 443, tcp::kSyn, 0x01020304, 0x05060708)
                       .payload("abc")
                       .build();
    ASSERT_EQ(f.size(), 20u + 20 + 3);
    EXPECT_EQ(f[ipv4::kProtocol], ipv4::kProtoTcp);
    const uint8_t* t = &f[20];
    EXPECT_EQ(read16(t + tcp::kSrcPort), 40000);
    EXPECT_EQ(read16(t + tcp::kDstPort), 443);
    EXPECT_EQ(read32(t + tcp::kSeq), 0x01020304u);
    EXPECT_EQ(read32(t + tcp::kAck), 0x05060708u);
    EXPECT_EQ(t[tcp::kDataOffset], 5 << 4);
    EXPECT_EQ(t[tcp::kFlags], tcp::kSyn);
    EXPECT_EQ(read16(t + tcp::kChecksum), expected_l4_checksum(f.data()));
}

TEST(PacketBuilder, IcmpEcho) {
    const auto f = PacketBuilder()
                       .ipv4(kSrc, kDst)
                       .icmp_echo(icmp::kEchoRequest, 0x1234, 0x0005)
                       .payload("xyz")  // odd length
                       .build();
    ASSERT_EQ(f.size(), 20u + 8 + 3);
    EXPECT_EQ(f[ipv4::kProtocol], ipv4::kProtoIcmp);
    EXPECT_EQ(f[20 + icmp::kType], icmp::kEchoRequest);
    EXPECT_EQ(f[20 + icmp::kCode], 0);
    EXPECT_EQ(read16(&f[20 + icmp::kIdentifier]), 0x1234);
    EXPECT_EQ(read16(&f[20 + icmp::kSequence]), 5);
    EXPECT_EQ(read16(&f[20 + icmp::kChecksum]), expected_l4_checksum(f.data()));
}

TEST(PacketBuilder, OptionsArePaddedToWholeWords) {
    const auto f = PacketBuilder().ipv4(kSrc, kDst).ipv4_options({1, 1, 1, 1, 1}).udp(1, 2).build();
    EXPECT_EQ(f[0], 0x47);  // 20 + 8 bytes of options
    EXPECT_EQ(read16(&f[ipv4::kTotalLength]), 28 + 8);
    EXPECT_EQ(f[25], 0);  // padding
    EXPECT_EQ(read16(&f[ipv4::kChecksum]), expected_ipv4_checksum(f.data()));
    EXPECT_EQ(read16(&f[28 + udp::kChecksum]), expected_l4_checksum(f.data()));
}

TEST(PacketBuilder, Fragment) {
    const auto f = PacketBuilder().ipv4(kSrc, kDst).ipv4_fragment(0x2010).udp(1, 2).build();
    EXPECT_EQ(read16(&f[ipv4::kFragment]), 0x2010);
    EXPECT_EQ(read16(&f[ipv4::kChecksum]), expected_ipv4_checksum(f.data()));
}

TEST(PacketBuilder, TosByte) {
    const auto f = PacketBuilder().ipv4(kSrc, kDst).ipv4_tos(0xb9).udp(1, 2).build();
    EXPECT_EQ(f[ipv4::kTos], 0xb9);
    EXPECT_EQ(read16(&f[ipv4::kChecksum]), expected_ipv4_checksum(f.data()));
}

TEST(PacketBuilder, RawPayloadUnderAnyProtocol) {
    const auto f = PacketBuilder()
                       .ipv4(kSrc, kDst)
                       .ipv4_fragment(0x00b9)
                       .raw(ipv4::kProtoUdp)
                       .payload("12345678")
                       .build();
    ASSERT_EQ(f.size(), 20u + 8);
    EXPECT_EQ(f[ipv4::kProtocol], ipv4::kProtoUdp);
    EXPECT_EQ(std::string(f.begin() + 20, f.end()), "12345678");
    EXPECT_EQ(read16(&f[ipv4::kChecksum]), expected_ipv4_checksum(f.data()));
}

TEST(PacketBuilder, Arp) {
    const auto f = PacketBuilder()
                       .ethernet(kSrcMac, MacAddress::broadcast())
                       .arp(arp::kOpRequest, kSrcMac, kSrc, MacAddress{}, kDst)
                       .build();
    ASSERT_EQ(f.size(), 14u + 28);
    EXPECT_EQ(read16(&f[eth::kType]), eth::kTypeArp);
    const uint8_t* a = &f[14];
    EXPECT_EQ(read16(a + arp::kHardwareType), 1);
    EXPECT_EQ(read16(a + arp::kProtocolType), eth::kTypeIpv4);
    EXPECT_EQ(a[arp::kHardwareLength], 6);
    EXPECT_EQ(a[arp::kProtocolLength], 4);
    EXPECT_EQ(read16(a + arp::kOperation), arp::kOpRequest);
    EXPECT_EQ(a[arp::kSenderMac + 5], 1);
    EXPECT_EQ(read32(a + arp::kSenderIp), kSrc.value);
    EXPECT_EQ(read32(a + arp::kTargetIp), kDst.value);
}

}  // namespace
}  // namespace cgn::common
