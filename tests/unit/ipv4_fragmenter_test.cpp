// IPv4 fragmentation (RFC 791 §2.3, §3.2) on plain byte buffers: fragments compared byte for
// byte with frames built independently, header checksums against the reference checksum, and
// reassembly (by offset, as a receiver does it) giving back the packet's data.

#include "dataplane/nat/ipv4_fragmenter.hpp"

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
using test::read16;
namespace ipv4 = common::ipv4;

using Bytes = std::vector<uint8_t>;

const Ipv4Address kSrc{0xc6336402};  // 198.51.100.2
const Ipv4Address kDst{0xcb00710a};  // 203.0.113.10

Bytes pattern(size_t n, unsigned seed = 1) {
    Bytes b(n);
    for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>(i * 7 + seed);
    return b;
}

std::vector<Bytes> fragments_of(const Bytes& packet, uint16_t mtu) {
    const Ipv4Fragmenter f(packet.data(), mtu);
    std::vector<Bytes> out;
    for (unsigned i = 0; i < f.count(); ++i) {
        Bytes piece(f.length(i));
        f.write(i, piece.data());
        out.push_back(std::move(piece));
    }
    return out;
}

// What a receiver rebuilds (RFC 791 §3.2 reassembly): the data of each fragment at its offset;
// the datagram ends with the fragment whose MF is clear.
struct Reassembled {
    Bytes data;
    bool complete = false;
};
Reassembled reassemble(const std::vector<Bytes>& fragments, uint32_t base_offset = 0) {
    Reassembled r;
    std::vector<bool> seen;
    uint32_t end = 0;
    for (const Bytes& f : fragments) {
        const uint32_t ihl = (f[0] & 0x0f) * 4u;
        const uint16_t field = read16(&f[ipv4::kFragment]);
        const uint32_t offset = (field & ipv4::kFragmentOffsetMask) * 8u - base_offset;
        const uint32_t length = read16(&f[ipv4::kTotalLength]) - ihl;
        if (r.data.size() < offset + length) {
            r.data.resize(offset + length);
            seen.resize(offset + length);
        }
        for (uint32_t i = 0; i < length; ++i) {
            r.data[offset + i] = f[ihl + i];
            seen[offset + i] = true;
        }
        if ((field & ipv4::kFlagMoreFragments) == 0) end = offset + length;
    }
    r.complete = end == r.data.size();
    for (bool b : seen) r.complete = r.complete && b;
    return r;
}

TEST(Ipv4Fragmenter, UdpDatagramTooBigForTheLinkBecomesTwoFragmentsByteForByte) {
    // 1400 bytes: 20 of header, 8 of UDP header, 1372 of payload.
    const Bytes payload = pattern(1372);
    const Bytes packet =
        PacketBuilder().ipv4(kSrc, kDst, 63, 0x1234).udp(40000, 53).payload(payload).build();
    ASSERT_EQ(packet.size(), 1400u);
    const auto pieces = fragments_of(packet, 1280);
    ASSERT_EQ(pieces.size(), 2u);
    // The first holds (1280 - 20) rounded down to 8 = 1256 bytes of data: the UDP header and
    // 1248 bytes of payload.
    const Bytes data(packet.begin() + 20, packet.end());
    const Bytes expected_first = PacketBuilder()
                                     .ipv4(kSrc, kDst, 63, 0x1234)
                                     .ipv4_fragment(ipv4::kFlagMoreFragments)
                                     .raw(ipv4::kProtoUdp)
                                     .payload(Bytes(data.begin(), data.begin() + 1256))
                                     .build();
    const Bytes expected_second = PacketBuilder()
                                      .ipv4(kSrc, kDst, 63, 0x1234)
                                      .ipv4_fragment(1256 / 8)
                                      .raw(ipv4::kProtoUdp)
                                      .payload(Bytes(data.begin() + 1256, data.end()))
                                      .build();
    EXPECT_EQ(pieces[0], expected_first);
    EXPECT_EQ(pieces[1], expected_second);
    EXPECT_EQ(pieces[0].size(), 1276u);
    EXPECT_EQ(pieces[1].size(), 20u + 124);
    const Reassembled r = reassemble(pieces);
    EXPECT_TRUE(r.complete);
    EXPECT_EQ(r.data, data);
}

TEST(Ipv4Fragmenter, APacketThatFitsIsNotCut) {
    const Bytes exactly = PacketBuilder().ipv4(kSrc, kDst).udp(1, 2).payload(pattern(1252)).build();
    ASSERT_EQ(exactly.size(), 1280u);
    EXPECT_EQ(Ipv4Fragmenter(exactly.data(), 1280).count(), 0u);
    EXPECT_EQ(Ipv4Fragmenter(exactly.data(), 1500).count(), 0u);
    EXPECT_EQ(Ipv4Fragmenter(exactly.data(), 1279).count(), 2u);
}

TEST(Ipv4Fragmenter, AnMtuBelowSixtyEightBytesCutsNothing) {
    const Bytes packet = PacketBuilder().ipv4(kSrc, kDst).udp(1, 2).payload(pattern(200)).build();
    EXPECT_EQ(Ipv4Fragmenter(packet.data(), 67).count(), 0u);
    EXPECT_EQ(Ipv4Fragmenter(packet.data(), 68).count(), 5u);  // 48 data bytes each
}

TEST(Ipv4Fragmenter, AFragmentKeepsItsOffsetBaseAndItsLastPieceItsMoreFragmentsFlag) {
    // Data bytes 800 to 2199 of some datagram, with more to come.
    const Bytes data = pattern(1400, 9);
    for (const bool more : {true, false}) {
        const uint16_t field =
            static_cast<uint16_t>((more ? ipv4::kFlagMoreFragments : 0) | (800 / 8));
        const Bytes packet = PacketBuilder()
                                 .ipv4(kSrc, kDst, 60, 77)
                                 .ipv4_fragment(field)
                                 .raw(17)
                                 .payload(data)
                                 .build();
        const auto pieces = fragments_of(packet, 576);
        // (576 - 20) rounded down to 8 = 552 bytes each: 552 + 552 + 296.
        ASSERT_EQ(pieces.size(), 3u);
        const uint16_t offsets[] = {100, 169, 238};
        for (unsigned i = 0; i < 3; ++i) {
            const uint16_t got = read16(&pieces[i][ipv4::kFragment]);
            EXPECT_EQ(got & ipv4::kFragmentOffsetMask, offsets[i]) << i;
            const bool mf = (got & ipv4::kFlagMoreFragments) != 0;
            EXPECT_EQ(mf, i < 2 || more) << i << " of a fragment with MF " << more;
            EXPECT_EQ(read16(&pieces[i][ipv4::kId]), 77);
            EXPECT_EQ(read16(&pieces[i][ipv4::kChecksum]),
                      expected_ipv4_checksum(pieces[i].data()));
        }
        EXPECT_EQ(pieces[2].size(), 20u + 296);
        const Reassembled r = reassemble(pieces, 800);
        EXPECT_EQ(r.data, data);
        EXPECT_EQ(r.complete, !more);
    }
}

TEST(Ipv4Fragmenter, LaterFragmentsCarryOnlyTheCopiedOptions) {
    // Router alert (type 148: copied, RFC 2113) and record route (type 7: not copied), padded.
    const Bytes options = {148, 4, 0, 0, 7, 7, 4, 0, 0, 0, 0};
    const Bytes data = pattern(1000, 3);
    const Bytes packet = PacketBuilder()
                             .ipv4(kSrc, kDst, 64, 5)
                             .ipv4_options(options)
                             .raw(ipv4::kProtoUdp)
                             .payload(data)
                             .build();
    ASSERT_EQ(packet[0] & 0x0f, 8);  // 32-byte header
    const auto pieces = fragments_of(packet, 576);
    // First: (576 - 32) rounded down to 8 = 544 bytes with every option; then (576 - 24) = 552
    // with the router alert alone: 544 + 456.
    ASSERT_EQ(pieces.size(), 2u);
    EXPECT_EQ(pieces[0], PacketBuilder()
                             .ipv4(kSrc, kDst, 64, 5)
                             .ipv4_options(options)
                             .ipv4_fragment(ipv4::kFlagMoreFragments)
                             .raw(ipv4::kProtoUdp)
                             .payload(Bytes(data.begin(), data.begin() + 544))
                             .build());
    EXPECT_EQ(pieces[1], PacketBuilder()
                             .ipv4(kSrc, kDst, 64, 5)
                             .ipv4_options({148, 4, 0, 0})
                             .ipv4_fragment(544 / 8)
                             .raw(ipv4::kProtoUdp)
                             .payload(Bytes(data.begin() + 544, data.end()))
                             .build());
}

TEST(Ipv4Fragmenter, DontFragmentAndReservedBitsAndTosAreKept) {
    // The worker never cuts a DF packet; the fragmenter itself leaves the flag bits it does not
    // own as they were.
    Bytes packet =
        PacketBuilder().ipv4(kSrc, kDst).ipv4_tos(0xb8).udp(1, 2).payload(pattern(700)).build();
    packet[ipv4::kFragment] |= 0x80;  // the reserved ("evil") bit
    test::fix_ipv4_checksum(packet.data());
    for (const Bytes& piece : fragments_of(packet, 576)) {
        EXPECT_EQ(piece[ipv4::kFragment] & 0xc0, 0x80);
        EXPECT_EQ(piece[ipv4::kTos], 0xb8);
    }
}

TEST(Ipv4Fragmenter, AFragmentEndingPastOffset65535IsNotCut) {
    const Bytes packet = PacketBuilder()
                             .ipv4(kSrc, kDst)
                             .ipv4_fragment(static_cast<uint16_t>(65000 / 8))
                             .raw(ipv4::kProtoUdp)
                             .payload(pattern(1000))
                             .build();
    EXPECT_EQ(Ipv4Fragmenter(packet.data(), 576).count(), 0u);
}

TEST(Ipv4Fragmenter, AnySizeOnAnyLinkReassemblesToTheSameDataInPiecesThatFit) {
    std::mt19937 rng(7);
    for (int round = 0; round < 500; ++round) {
        const auto mtu = static_cast<uint16_t>(std::uniform_int_distribution<>(68, 9000)(rng));
        const auto size = static_cast<size_t>(
            std::uniform_int_distribution<>(0, std::min(9000 - 28, 4 * mtu))(rng));
        const Bytes packet = PacketBuilder()
                                 .ipv4(kSrc, kDst, 64, static_cast<uint16_t>(round))
                                 .udp(1000, 2000)
                                 .payload(pattern(size, static_cast<unsigned>(round)))
                                 .build();
        const auto pieces = fragments_of(packet, mtu);
        if (packet.size() <= mtu) {
            EXPECT_TRUE(pieces.empty());
            continue;
        }
        ASSERT_GE(pieces.size(), 2u) << "mtu " << mtu << " size " << packet.size();
        for (size_t i = 0; i < pieces.size(); ++i) {
            const Bytes& f = pieces[i];
            EXPECT_LE(f.size(), mtu);
            EXPECT_EQ(read16(&f[ipv4::kTotalLength]), f.size());
            EXPECT_EQ(read16(&f[ipv4::kChecksum]), expected_ipv4_checksum(f.data()));
            if (i + 1 < pieces.size()) {
                EXPECT_EQ((f.size() - 20) % 8, 0u);
            }
        }
        const Reassembled r = reassemble(pieces);
        EXPECT_TRUE(r.complete);
        EXPECT_EQ(r.data, Bytes(packet.begin() + 20, packet.end()));
    }
}

}  // namespace
}  // namespace cgn::dp
