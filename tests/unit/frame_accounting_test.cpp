// The frame balance of common/frame_accounting.hpp on hand-made counter snapshots: it holds when
// every frame ended once, and says which origin is off when a frame ended uncounted, twice, or
// not at all. (That every counter is classified is a static_assert in the header.)

#include "common/frame_accounting.hpp"

#include <gtest/gtest.h>

namespace cgn::common {
namespace {

CounterSnapshot& set(CounterSnapshot& s, Counter c, uint64_t v) {
    s[static_cast<size_t>(c)] = v;
    return s;
}

// 3 inside frames: 2 translated and sent, 1 dropped; 2 outside frames: an ARP request answered
// and one held fragment; cgnd made 1 ARP request, sent.
CounterSnapshot example() {
    CounterSnapshot s{};
    set(s, Counter::rx_inside, 3);
    set(s, Counter::rx_outside, 2);
    set(s, Counter::in2out_translated, 2);
    set(s, Counter::drop_ipv4_checksum, 1);
    set(s, Counter::arp_requests_answered, 1);
    set(s, Counter::fragments_held, 1);
    set(s, Counter::arp_requests_sent, 1);
    set(s, Counter::tx_outside, 4);  // 2 translated, the ARP reply, the ARP request
    set(s, Counter::frames_ended_inside, 3);
    set(s, Counter::frames_ended_outside, 1);
    set(s, Counter::frames_ended_generated, 1);
    return s;
}

FrameHeld one_outside_held() {
    FrameHeld h;
    h.by_origin[static_cast<size_t>(FrameOrigin::outside)] = 1;
    return h;
}

TEST(FrameAccounting, BalancedWhenEveryFrameEndedOnceOrIsHeld) {
    const FrameBalance b = frame_balance(example(), one_outside_held());
    EXPECT_TRUE(b.balanced()) << b.describe();
    EXPECT_EQ(b.began[0], 3u);
    EXPECT_EQ(b.began[1], 2u);
    EXPECT_EQ(b.began[2], 1u);
    EXPECT_EQ(b.outcomes, 5u);
}

TEST(FrameAccounting, AHeldFrameNotReportedIsAnImbalanceOfItsOrigin) {
    const FrameBalance b = frame_balance(example(), FrameHeld{});
    EXPECT_FALSE(b.balanced());
    EXPECT_TRUE(b.origin_balanced(FrameOrigin::inside));
    EXPECT_FALSE(b.origin_balanced(FrameOrigin::outside));
}

TEST(FrameAccounting, AFrameEndedWithoutItsCounterOrWithTwoIsCaught) {
    CounterSnapshot s = example();
    set(s, Counter::drop_ipv4_checksum, 0);  // freed, not counted
    EXPECT_FALSE(frame_balance(s, one_outside_held()).balanced());
    s = example();
    set(s, Counter::drop_ttl_exceeded, 1);  // a second drop for one frame
    EXPECT_FALSE(frame_balance(s, one_outside_held()).balanced());
    // Counters that are steps on the way, not outcomes, do not enter the sum.
    s = example();
    set(s, Counter::packets_handed_off, 7);
    set(s, Counter::drop_icmp_rate_limited, 2);
    EXPECT_TRUE(frame_balance(s, one_outside_held()).balanced());
}

TEST(FrameAccounting, EveryDropOfAFrameIsAnOutcome) {
    for (size_t i = 0; i < kCounterCount; ++i) {
        const auto c = static_cast<Counter>(i);
        // The one drop_* that is no frame: an ICMP error that was not made.
        if (kCounterNames[i].starts_with("drop_") && c != Counter::drop_icmp_rate_limited) {
            EXPECT_EQ(role_of(c), FrameRole::outcome) << kCounterNames[i];
        }
    }
}

}  // namespace
}  // namespace cgn::common
