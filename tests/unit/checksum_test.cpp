#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/checksum.hpp"
#include "tests/unit/reference_checksum.hpp"

namespace cgn::common {
namespace {

using test::reference_checksum;

// RFC 1071 §3 worked example: the one's complement sum of these words is 0xddf2.
TEST(Checksum, Rfc1071Example) {
    const uint8_t data[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    EXPECT_EQ(checksum_finish(checksum_partial(data, sizeof data)), static_cast<uint16_t>(~0xddf2));
}

// A widely quoted IPv4 header (192.168.0.1 -> 192.168.0.199, UDP) whose checksum is 0xb861.
TEST(Checksum, KnownIpv4Header) {
    uint8_t header[] = {0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
                        0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7};
    EXPECT_EQ(checksum_finish(checksum_partial(header, sizeof header)), 0xb861);
    header[10] = 0xb8;
    header[11] = 0x61;
    // A header that carries its checksum sums to all ones: finish gives zero.
    EXPECT_EQ(checksum_finish(checksum_partial(header, sizeof header)), 0);
}

TEST(Checksum, OddLengthPadsTheLastByteWithZero) {
    const uint8_t one[] = {0xab};
    EXPECT_EQ(checksum_partial(one, 1), 0xab00u);
    const uint8_t three[] = {0x12, 0x34, 0x56};
    EXPECT_EQ(checksum_finish(checksum_partial(three, 3)),
              static_cast<uint16_t>(~(0x1234 + 0x5600)));
}

TEST(Checksum, EmptyDataKeepsTheInitialValue) {
    EXPECT_EQ(checksum_partial(nullptr, 0, 0x1234), 0x1234u);
    EXPECT_EQ(checksum_finish(0), 0xffff);
}

TEST(Checksum, FinishFoldsCarriesTwice) {
    // 0x1fffe folds to 0xffff (0x0001 + 0xfffe) and complements to 0; 0xffff0001 needs two folds.
    EXPECT_EQ(checksum_finish(0x1fffe), 0x0000);
    EXPECT_EQ(checksum_finish(0xffff0001u), static_cast<uint16_t>(~0x0001));
    // Many 0xffff words: the carry must wrap around, not be lost.
    std::vector<uint8_t> ones(100'000, 0xff);
    EXPECT_EQ(checksum_finish(checksum_partial(ones.data(), ones.size())), 0x0000);
    EXPECT_EQ(checksum_finish(checksum_partial(ones.data(), ones.size(), 0xfffffff0u)),
              test::reference_checksum({0xff, 0xff, 0xff, 0xf0}));
}

TEST(Checksum, PartialSumsCombine) {
    std::mt19937_64 rng(7);
    for (int round = 0; round < 200; ++round) {
        std::vector<uint8_t> data(rng() % 300);
        for (auto& b : data) b = static_cast<uint8_t>(rng());
        const size_t split = (rng() % (data.size() / 2 + 1)) * 2;  // even: words stay aligned
        const uint32_t first = checksum_partial(data.data(), split);
        const uint32_t both = checksum_partial(data.data() + split, data.size() - split, first);
        EXPECT_EQ(checksum_finish(both), reference_checksum(data)) << "size " << data.size();
    }
}

TEST(Checksum, PseudoHeaderMatchesTheBytesOfRfc768) {
    std::mt19937_64 rng(11);
    for (int round = 0; round < 200; ++round) {
        const auto src = static_cast<uint32_t>(rng());
        const auto dst = static_cast<uint32_t>(rng());
        const auto protocol = static_cast<uint8_t>(rng());
        const auto length = static_cast<uint16_t>(rng());
        std::vector<uint8_t> bytes(12);
        test::write32(&bytes[0], src);
        test::write32(&bytes[4], dst);
        bytes[9] = protocol;
        test::write16(&bytes[10], length);
        EXPECT_EQ(checksum_finish(pseudo_header_sum(src, dst, protocol, length)),
                  reference_checksum(bytes));
    }
}

// RFC 1624 §4: HC 0xdd2f, a word 0x5555 -> 0x3285. Eqn. 3 yields 0x0000 (eqn. 2 gave 0xffff).
TEST(Checksum, Rfc1624Example) { EXPECT_EQ(checksum_update16(0xdd2f, 0x5555, 0x3285), 0x0000); }

TEST(Checksum, UpdateWithTheSameValueChangesNothing) {
    EXPECT_EQ(checksum_update16(0x1234, 0xabcd, 0xabcd), 0x1234);
    EXPECT_EQ(checksum_update32(0x1234, 0xc0000201u, 0xc0000201u), 0x1234);
}

// Incremental update of one 16-bit or 32-bit field equals a full recomputation.
TEST(Checksum, IncrementalUpdateEqualsRecompute) {
    std::mt19937_64 rng(2024);
    for (int round = 0; round < 5000; ++round) {
        // At least 8 bytes, so that the field never covers all of them: an all-zero buffer has
        // two equivalent checksums (0x0000 and 0xffff), which no real header can be.
        std::vector<uint8_t> data((rng() % 60 + 8) & ~size_t{1});
        for (auto& b : data) b = static_cast<uint8_t>(rng());
        // Occasionally a field of extremes, where the one's-complement corner cases live.
        const uint32_t extremes[] = {0, 0xffffffffu, 0x0000ffffu, 0xffff0000u};
        const uint16_t before = reference_checksum(data);
        if (round % 2 == 0) {
            const size_t at = (rng() % (data.size() / 2)) * 2;
            const uint16_t old_value = test::read16(&data[at]);
            const auto new_value =
                static_cast<uint16_t>(round % 16 == 0 ? extremes[rng() % 4] : rng());
            test::write16(&data[at], new_value);
            EXPECT_EQ(checksum_update16(before, old_value, new_value), reference_checksum(data));
        } else {
            const size_t at = (rng() % (data.size() / 2 - 1)) * 2;
            const uint32_t old_value = test::read32(&data[at]);
            const auto new_value =
                static_cast<uint32_t>(round % 16 == 1 ? extremes[rng() % 4] : rng());
            test::write32(&data[at], new_value);
            EXPECT_EQ(checksum_update32(before, old_value, new_value), reference_checksum(data));
        }
    }
}

}  // namespace
}  // namespace cgn::common
