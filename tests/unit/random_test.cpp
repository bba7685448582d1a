#include "common/random.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "common/clock.hpp"

namespace cgn::common {
namespace {

TEST(Random, SameSeedSameSequence) {
    Random a(12345), b(12345), c(12346);
    bool differs = false;
    for (int i = 0; i < 100; ++i) {
        const uint64_t x = a.next();
        EXPECT_EQ(x, b.next());
        differs |= x != c.next();
    }
    EXPECT_TRUE(differs);
}

TEST(Random, BelowStaysBelowTheBound) {
    Random r(1);
    for (uint32_t bound : {1u, 2u, 3u, 7u, 64512u, 65535u, 0xffffffffu}) {
        for (int i = 0; i < 2000; ++i) ASSERT_LT(r.below(bound), bound) << bound;
    }
}

TEST(Random, BelowIsRoughlyUniform) {
    Random r(2);
    std::vector<int> buckets(10);
    constexpr int kDraws = 100'000;
    for (int i = 0; i < kDraws; ++i) ++buckets[r.below(10)];
    for (int count : buckets) {
        EXPECT_GT(count, kDraws / 10 - 600);
        EXPECT_LT(count, kDraws / 10 + 600);
    }
}

TEST(ManualClock, MovesOnlyWhenTold) {
    ManualClock clock(5000);
    EXPECT_EQ(clock.now_ms(), 5000u);
    EXPECT_EQ(clock.now_ms(), 5000u);
    clock.advance_ms(250);
    EXPECT_EQ(clock.now_ms(), 5250u);
    clock.set_ms(10);
    EXPECT_EQ(clock.now_ms(), 10u);
}

}  // namespace
}  // namespace cgn::common
