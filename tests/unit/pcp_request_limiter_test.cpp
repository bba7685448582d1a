// The worker's per-subscriber PCP request rate (dataplane/io/pcp_request_limiter.hpp): a
// token bucket per subscriber, refilled in thousandths, and what two subscribers sharing a
// slot do to each other.
#include "dataplane/io/pcp_request_limiter.hpp"

#include <gtest/gtest.h>

#include <cstdint>

namespace cgn::dp {
namespace {

constexpr uint32_t kSub1 = 0x6440000b;  // 100.64.0.11
constexpr uint32_t kSub2 = 0x6440000d;  // 100.64.0.13

unsigned admitted(PcpRequestLimiter& l, uint32_t sub, unsigned tries, uint64_t now_ms) {
    unsigned n = 0;
    for (unsigned i = 0; i < tries; ++i) n += l.admit(sub, now_ms) ? 1 : 0;
    return n;
}

// Without the bucket all 100 are admitted; without the refill in thousandths, a rate of 10 a
// second never gives anything back within 100 ms steps.
TEST(PcpRequestLimiter, EachSubscriberHasItsBurstThenItsRate) {
    PcpRequestLimiter l(10, 20);
    EXPECT_EQ(admitted(l, kSub1, 100, 1000), 20u);
    EXPECT_EQ(admitted(l, kSub2, 100, 1000), 20u) << "another subscriber's bucket is its own";
    EXPECT_EQ(admitted(l, kSub1, 100, 1050), 0u) << "half a token";
    EXPECT_EQ(admitted(l, kSub1, 100, 1100), 1u);
    EXPECT_EQ(admitted(l, kSub1, 100, 2100), 10u) << "a second: the rate";
    EXPECT_EQ(admitted(l, kSub1, 100, 60'000), 20u) << "never more than the burst";
    EXPECT_EQ(admitted(l, kSub1, 1, 59'000), 0u) << "a clock that went back refills nothing";
}

// Two subscribers in one slot take it from each other with a full bucket: a collision lets
// more through, never less.
TEST(PcpRequestLimiter, SubscribersSharingASlotNeverHoldEachOtherBack) {
    PcpRequestLimiter l(1, 2);
    // Find another address in kSub1's slot.
    const auto slot = [](uint32_t a) {
        return (a * 2654435761u) >> (32 - PcpRequestLimiter::kSlotBits);
    };
    uint32_t other = kSub1 + 1;
    while (slot(other) != slot(kSub1)) ++other;
    EXPECT_EQ(admitted(l, kSub1, 10, 0), 2u);
    EXPECT_EQ(admitted(l, other, 10, 0), 2u);
    EXPECT_EQ(admitted(l, kSub1, 10, 0), 2u) << "its slot was taken: a fresh bucket";
}

}  // namespace
}  // namespace cgn::dp
