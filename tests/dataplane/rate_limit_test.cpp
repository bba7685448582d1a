// Token buckets of the worker: the ICMP error budget (--icmp-error-rate) and the per-subscriber
// new-session rate (--max-new-sessions-per-second). Both refill in thousandths of a token per
// millisecond: no rounding may starve a bucket asked often, and no rate the options accept may
// overflow it.

#include <gtest/gtest.h>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;

class RateLimits : public ::testing::Test {
protected:
    void start() {
        h.start();
        h.resolve_neighbors();
        h.reset_counters();
    }
    Frame udp(uint16_t sport, uint8_t ttl = 64) {
        return PacketBuilder()
            .ethernet(h.topo().subscriber1_mac, h.inside().mac())
            .ipv4(h.topo().subscriber1, h.topo().server1, ttl)
            .udp(sport, 9)
            .payload("x")
            .build();
    }
    DataplaneHarness h;
};

// Below 1000 errors a second a millisecond's share is less than one error: rounded down and
// the refill time reset, a bucket asked every millisecond never refilled. 100/s asked every
// millisecond for a second must give 100 answers.
TEST_F(RateLimits, IcmpErrorBucketRefillsWhenAskedEveryMillisecond) {
    h.settings().icmp_error_rate = 100;
    start();
    // Empty the full bucket (one second's worth).
    for (uint16_t i = 0; i < 150; ++i) {
        h.inside().inject(udp(static_cast<uint16_t>(1000 + i), 1));
        if (i % 32 == 31) h.poll();
    }
    h.poll(2);
    EXPECT_EQ(h.counter(Counter::icmp_time_exceeded_sent), 100u);
    EXPECT_EQ(h.counter(Counter::drop_icmp_rate_limited), 50u);
    h.inside().drain();
    h.reset_counters();
    for (int ms = 0; ms < 1000; ++ms) {
        h.clock().advance_ms(1);
        h.inside().inject(udp(2000, 1));
        h.poll();
    }
    EXPECT_EQ(h.counter(Counter::icmp_time_exceeded_sent), 100u);
    EXPECT_EQ(h.counter(Counter::drop_icmp_rate_limited), 900u);
    EXPECT_EQ(h.inside().drain().size(), 100u);
}

// 4 294 968 sessions a second is 4 294 968 000 thousandths: past 2^32, a 32-bit bucket held 704
// of them, less than one session, and refused the first one. The option accepts up to 10 M.
TEST_F(RateLimits, NewSessionRateAboveFourMillionPerSecondIsNotTruncated) {
    h.settings().nat.limits.new_sessions_per_second = 4'294'968;
    h.settings().nat.limits.new_sessions_per_second_per_protocol[0] = 10'000'000;
    start();
    for (uint16_t i = 0; i < 20; ++i) h.inside().inject(udp(static_cast<uint16_t>(3000 + i)));
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 20u);
    EXPECT_EQ(h.counter(Counter::drop_quota_session_rate), 0u);
    h.clock().advance_ms(5000);  // long idle: the bucket is full again, not wrapped
    for (uint16_t i = 0; i < 20; ++i) h.inside().inject(udp(static_cast<uint16_t>(4000 + i)));
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 20u);
    EXPECT_EQ(h.counter(Counter::drop_quota_session_rate), 0u);
}

// The rate still limits: 10 a second, 25 asked in one burst after a long idle.
TEST_F(RateLimits, NewSessionRateStillLimits) {
    h.settings().nat.limits.new_sessions_per_second = 10;
    start();
    h.clock().advance_ms(100'000);
    for (uint16_t i = 0; i < 25; ++i) h.inside().inject(udp(static_cast<uint16_t>(5000 + i)));
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 10u);
    EXPECT_EQ(h.counter(Counter::drop_quota_session_rate), 15u);
    h.clock().advance_ms(300);  // three more tokens
    for (uint16_t i = 0; i < 5; ++i) h.inside().inject(udp(static_cast<uint16_t>(6000 + i)));
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 3u);
}

}  // namespace
}  // namespace cgn::test
