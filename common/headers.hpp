#pragma once
// Wire-format constants and field offsets of the headers cgnd reads and writes. Code reads
// fields with load_be16/32 at these offsets; the sizes are checked against the RFCs here once.

#include <cstddef>
#include <cstdint>

namespace cgn::common {

namespace eth {
inline constexpr size_t kHeaderLength = 14;
inline constexpr size_t kDst = 0, kSrc = 6, kType = 12;
inline constexpr uint16_t kTypeIpv4 = 0x0800;
inline constexpr uint16_t kTypeArp = 0x0806;
inline constexpr uint16_t kTypeVlan = 0x8100;
inline constexpr uint16_t kTypeIpv6 = 0x86dd;
}  // namespace eth

// RFC 826, for Ethernet hardware and IPv4 protocol addresses.
namespace arp {
inline constexpr size_t kLength = 28;
inline constexpr size_t kHardwareType = 0, kProtocolType = 2, kHardwareLength = 4,
                        kProtocolLength = 5, kOperation = 6, kSenderMac = 8, kSenderIp = 14,
                        kTargetMac = 18, kTargetIp = 24;
inline constexpr uint16_t kHardwareEthernet = 1;
inline constexpr uint16_t kOpRequest = 1, kOpReply = 2;
static_assert(kTargetIp + 4 == kLength);
}  // namespace arp

// RFC 791 §3.1.
namespace ipv4 {
inline constexpr size_t kMinHeaderLength = 20;
inline constexpr size_t kVersionIhl = 0, kTos = 1, kTotalLength = 2, kId = 4, kFragment = 6,
                        kTtl = 8, kProtocol = 9, kChecksum = 10, kSrc = 12, kDst = 16;
inline constexpr uint16_t kFlagMoreFragments = 0x2000;
inline constexpr uint16_t kFlagDontFragment = 0x4000;
inline constexpr uint16_t kFragmentOffsetMask = 0x1fff;
inline constexpr uint8_t kProtoIcmp = 1, kProtoTcp = 6, kProtoUdp = 17;
// The TOS byte is the DS field (RFC 2474 §3: the DSCP, top 6 bits) and ECN (RFC 3168 §5: the
// low 2 bits).
inline constexpr uint8_t kDscpMask = 0xfc;
static_assert(kDst + 4 == kMinHeaderLength);
}  // namespace ipv4

// RFC 768.
namespace udp {
inline constexpr size_t kHeaderLength = 8;
inline constexpr size_t kSrcPort = 0, kDstPort = 2, kLength = 4, kChecksum = 6;
}  // namespace udp

// RFC 793 §3.1 (RFC 9293 §3.1).
namespace tcp {
inline constexpr size_t kMinHeaderLength = 20;
inline constexpr size_t kSrcPort = 0, kDstPort = 2, kSeq = 4, kAck = 8, kDataOffset = 12,
                        kFlags = 13, kWindow = 14, kChecksum = 16, kUrgent = 18;
inline constexpr uint8_t kFin = 0x01, kSyn = 0x02, kRst = 0x04, kPsh = 0x08, kAck_ = 0x10;
}  // namespace tcp

// RFC 792.
namespace icmp {
inline constexpr size_t kHeaderLength = 8;
inline constexpr size_t kType = 0, kCode = 1, kChecksum = 2, kIdentifier = 4, kSequence = 6;
// RFC 1191 §4: "fragmentation needed and DF set" carries the next-hop MTU in the low-order 16
// bits of the header's second word.
inline constexpr size_t kNextHopMtu = 6;
inline constexpr uint8_t kEchoReply = 0, kDestUnreachable = 3, kEchoRequest = 8, kTimeExceeded = 11,
                         kParameterProblem = 12;
inline constexpr uint8_t kCodeTtlExceeded = 0;
inline constexpr uint8_t kCodeHostUnreachable = 1, kCodeFragmentationNeeded = 4;
}  // namespace icmp

}  // namespace cgn::common
