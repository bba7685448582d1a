#include "dataplane/nat/expiry_lists.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace cgn::dp {
namespace {

constexpr uint64_t kUdp = 1'000, kEstablished = 7'440'000, kOpening = 120'000,
                   kTransitory = 240'000, kIcmp = 60'000;

ExpiryLists make_lists(uint32_t capacity = 64, uint64_t granularity_ms = 0) {
    ExpiryLists lists(capacity, granularity_ms);
    lists.set_timeout(TimeoutClass::udp, kUdp);
    lists.set_timeout(TimeoutClass::tcp_established, kEstablished);
    lists.set_timeout(TimeoutClass::tcp_opening, kOpening);
    lists.set_timeout(TimeoutClass::tcp_transitory, kTransitory);
    lists.set_timeout(TimeoutClass::icmp, kIcmp);
    return lists;
}

// The ids expire() reports, in order.
std::vector<uint32_t> expire(ExpiryLists& lists, uint64_t now_ms, uint32_t budget = 1000) {
    std::vector<uint32_t> out;
    const uint32_t n = lists.expire(now_ms, budget, [&](uint32_t id) {
        EXPECT_FALSE(lists.tracked(id)) << "removed before the callback";
        out.push_back(id);
    });
    EXPECT_EQ(n, out.size());
    return out;
}

using Ids = std::vector<uint32_t>;

TEST(ExpiryLists, TimeoutsAreSetPerClass) {
    auto lists = make_lists();
    EXPECT_EQ(lists.timeout(TimeoutClass::udp), kUdp);
    EXPECT_EQ(lists.timeout(TimeoutClass::tcp_established), kEstablished);
    EXPECT_EQ(lists.timeout(TimeoutClass::tcp_opening), kOpening);
    EXPECT_EQ(lists.timeout(TimeoutClass::tcp_transitory), kTransitory);
    EXPECT_EQ(lists.timeout(TimeoutClass::icmp), kIcmp);
}

TEST(ExpiryLists, InsertTracks) {
    auto lists = make_lists();
    EXPECT_EQ(lists.size(), 0u);
    EXPECT_FALSE(lists.tracked(7));
    lists.insert(7, TimeoutClass::icmp, 5000);
    EXPECT_TRUE(lists.tracked(7));
    EXPECT_EQ(lists.class_of(7), TimeoutClass::icmp);
    EXPECT_EQ(lists.last_active(7), 5000u);
    EXPECT_EQ(lists.size(), 1u);
}

TEST(ExpiryLists, ExpiresExactlyWhenLastActivePlusTimeoutIsReached) {
    auto lists = make_lists();
    lists.insert(3, TimeoutClass::udp, 5000);
    EXPECT_EQ(expire(lists, 5000), Ids{});
    EXPECT_EQ(expire(lists, 5999), Ids{});
    EXPECT_TRUE(lists.tracked(3));
    EXPECT_EQ(expire(lists, 6000), Ids{3});
    EXPECT_FALSE(lists.tracked(3));
    EXPECT_EQ(lists.size(), 0u);
    EXPECT_EQ(expire(lists, 100'000), Ids{});
}

TEST(ExpiryLists, ExpiresInOrderOfLastActivity) {
    auto lists = make_lists();
    for (uint32_t i = 0; i < 10; ++i) lists.insert(i, TimeoutClass::udp, i * 10);
    for (uint32_t i = 0; i < 10; ++i) {
        EXPECT_EQ(expire(lists, kUdp + i * 10 - 1), Ids{}) << i;
        EXPECT_EQ(expire(lists, kUdp + i * 10), Ids{i});
    }
    EXPECT_EQ(lists.size(), 0u);
}

TEST(ExpiryLists, TouchPostponesExpiry) {
    auto lists = make_lists();  // granularity 0: every touch counts
    lists.insert(1, TimeoutClass::udp, 0);
    lists.touch(1, 700);
    EXPECT_EQ(lists.last_active(1), 700u);
    EXPECT_EQ(expire(lists, 1000), Ids{});
    EXPECT_EQ(expire(lists, 1699), Ids{});
    EXPECT_EQ(expire(lists, 1700), Ids{1});
}

TEST(ExpiryLists, TouchMovesTheEntryBehindLaterOnes) {
    auto lists = make_lists();
    lists.insert(1, TimeoutClass::udp, 0);
    lists.insert(2, TimeoutClass::udp, 10);
    lists.insert(3, TimeoutClass::udp, 20);
    lists.touch(1, 500);
    EXPECT_EQ(expire(lists, 1020), (Ids{2, 3}));
    EXPECT_EQ(expire(lists, 1499), Ids{});
    EXPECT_EQ(expire(lists, 1500), Ids{1});
}

// A touch later than the recorded time relinks the entry and covers the next granularity - 1
// ms; touches within that are not recorded (no relink) and need not be: the entry's timeout
// already counts from a time no earlier than theirs.
TEST(ExpiryLists, TouchWithinTheGranularityIsCoveredByTheLastRelink) {
    auto lists = make_lists(8, 100);
    lists.insert(1, TimeoutClass::udp, 0);
    EXPECT_EQ(lists.last_active(1), 0u);  // insert records the exact time
    lists.touch(1, 0);
    EXPECT_EQ(lists.last_active(1), 0u);
    lists.touch(1, 1);
    EXPECT_EQ(lists.last_active(1), 100u);  // 1 + 99: covers the touches up to 100
    lists.touch(1, 100);
    EXPECT_EQ(lists.last_active(1), 100u);
    lists.touch(1, 101);
    EXPECT_EQ(lists.last_active(1), 200u);
    EXPECT_EQ(expire(lists, 1199), Ids{});
    EXPECT_EQ(expire(lists, 1200), Ids{1});
}

// RFC 4787 REQ-5, RFC 5382 REQ-5, RFC 5508 REQ-2: the timers are floors ("MUST NOT expire in
// less than"). An entry whose last touch came at t expires not before t + timeout, whatever
// the granularity, and at most granularity - 1 ms after it. Before, a touch within the
// granularity of the recorded time was forgotten and the entry expired up to 99 ms early.
TEST(ExpiryLists, NeverExpiresBeforeTheLastTouchPlusTheTimeout) {
    constexpr uint64_t kGranularity = 100;
    for (uint64_t last_touch = 0; last_touch < 2 * kGranularity; ++last_touch) {
        auto lists = make_lists(8, kGranularity);
        lists.insert(1, TimeoutClass::udp, 0);
        // Touches every 7 ms up to last_touch, then silence.
        for (uint64_t t = 7; t < last_touch; t += 7) lists.touch(1, t);
        lists.touch(1, last_touch);
        uint64_t now = last_touch;
        while (expire(lists, now).empty()) ++now;
        EXPECT_GE(now, last_touch + kUdp) << "expired early; last touch at " << last_touch;
        EXPECT_LT(now, last_touch + kUdp + kGranularity) << "last touch at " << last_touch;
    }
}

// The same bound on random traffic over many entries: never before the true deadline, and less
// than the granularity after it.
TEST(ExpiryLists, ExpiryStaysWithinTheGranularityAfterTheTrueDeadline) {
    constexpr uint64_t kGranularity = 100;
    constexpr uint32_t kEntries = 64;
    auto lists = make_lists(kEntries, kGranularity);
    std::mt19937_64 rng(99);
    std::vector<uint64_t> true_last(kEntries, 0);
    uint64_t now = 10'000;
    for (uint32_t id = 0; id < kEntries; ++id) {
        lists.insert(id, TimeoutClass::udp, now);
        true_last[id] = now;
    }
    int expired_total = 0;
    for (int step = 0; step < 20000; ++step) {
        now += rng() % 30;
        for (uint32_t id = 0; id < kEntries; ++id) {
            if (rng() % 40 != 0) continue;
            if (lists.tracked(id)) {
                lists.touch(id, now);
            } else {
                lists.insert(id, TimeoutClass::udp, now);
            }
            true_last[id] = now;
        }
        for (uint32_t id : expire(lists, now)) {
            ++expired_total;
            ASSERT_GE(now, true_last[id] + kUdp)
                << "entry " << id << " expired too early at " << now;
        }
        for (uint32_t id = 0; id < kEntries; ++id) {
            if (lists.tracked(id)) {
                // An entry ahead of it in its list was linked no later than its own last
                // touch, so covers at most granularity - 1 ms past that.
                ASSERT_LT(now, true_last[id] + kUdp + kGranularity - 1)
                    << "entry " << id << " overdue at " << now;
                ASSERT_GE(lists.last_active(id), true_last[id]);
                ASSERT_LT(lists.last_active(id), true_last[id] + kGranularity);
            }
        }
    }
    EXPECT_GT(expired_total, 1000);  // the traffic really exercised expiry
}

TEST(ExpiryLists, ChangeClassMovesToTheOtherTimeout) {
    auto lists = make_lists();
    lists.insert(4, TimeoutClass::tcp_transitory, 0);
    lists.change_class(4, TimeoutClass::tcp_established, 500);
    EXPECT_EQ(lists.class_of(4), TimeoutClass::tcp_established);
    EXPECT_EQ(lists.last_active(4), 500u);
    EXPECT_EQ(lists.size(), 1u);
    EXPECT_EQ(expire(lists, kTransitory + 500), Ids{});
    EXPECT_EQ(expire(lists, kEstablished + 499), Ids{});
    EXPECT_EQ(expire(lists, kEstablished + 500), Ids{4});

    // And back: established -> transitory shortens it.
    lists.insert(5, TimeoutClass::tcp_established, 0);
    lists.change_class(5, TimeoutClass::tcp_transitory, 1000);
    EXPECT_EQ(expire(lists, kTransitory + 999), Ids{});
    EXPECT_EQ(expire(lists, kTransitory + 1000), Ids{5});
}

TEST(ExpiryLists, ChangeClassLeavesTheOldListIntact) {
    auto lists = make_lists();
    lists.insert(1, TimeoutClass::udp, 0);
    lists.insert(2, TimeoutClass::udp, 1);
    lists.insert(3, TimeoutClass::udp, 2);
    lists.change_class(2, TimeoutClass::icmp, 3);
    EXPECT_EQ(expire(lists, kUdp + 2), (Ids{1, 3}));
    EXPECT_EQ(expire(lists, kIcmp + 3), Ids{2});
}

TEST(ExpiryLists, BudgetBoundsEachCallAndTheRestFollowOldestFirst) {
    auto lists = make_lists();
    for (uint32_t i = 0; i < 10; ++i) lists.insert(20 + i, TimeoutClass::udp, i);
    const uint64_t later = 50'000;
    EXPECT_EQ(expire(lists, later, 3), (Ids{20, 21, 22}));
    EXPECT_EQ(lists.size(), 7u);
    EXPECT_EQ(expire(lists, later, 3), (Ids{23, 24, 25}));
    EXPECT_EQ(expire(lists, later, 3), (Ids{26, 27, 28}));
    EXPECT_EQ(expire(lists, later, 3), Ids{29});
    EXPECT_EQ(expire(lists, later, 3), Ids{});
    EXPECT_EQ(lists.size(), 0u);
}

TEST(ExpiryLists, ZeroBudgetDoesNothing) {
    auto lists = make_lists();
    lists.insert(1, TimeoutClass::udp, 0);
    EXPECT_EQ(expire(lists, 1'000'000, 0), Ids{});
    EXPECT_TRUE(lists.tracked(1));
}

TEST(ExpiryLists, BudgetIsSharedAcrossClasses) {
    auto lists = make_lists();
    lists.insert(1, TimeoutClass::udp, 0);
    lists.insert(2, TimeoutClass::udp, 1);
    lists.insert(3, TimeoutClass::icmp, 0);
    lists.insert(4, TimeoutClass::icmp, 1);
    const auto first = expire(lists, kIcmp + 1, 3);
    EXPECT_EQ(first.size(), 3u);
    const auto second = expire(lists, kIcmp + 1, 3);
    EXPECT_EQ(second.size(), 1u);
    std::vector<uint32_t> all(first);
    all.insert(all.end(), second.begin(), second.end());
    std::sort(all.begin(), all.end());
    EXPECT_EQ(all, (Ids{1, 2, 3, 4}));
}

TEST(ExpiryLists, AFloodInOneClassDoesNotStarveTheOthers) {
    auto lists = make_lists(256);
    for (uint32_t id = 0; id < 200; ++id) lists.insert(id, TimeoutClass::udp, 0);
    lists.insert(200, TimeoutClass::icmp, 0);
    // Each call can only expire 4; the ICMP entry must not wait for 200 UDP ones.
    bool icmp_expired = false;
    for (size_t call = 0; call < kTimeoutClassCount && !icmp_expired; ++call)
        for (uint32_t id : expire(lists, kIcmp, 4)) icmp_expired |= id == 200;
    EXPECT_TRUE(icmp_expired);
}

TEST(ExpiryLists, RemoveUntracks) {
    auto lists = make_lists();
    lists.insert(1, TimeoutClass::udp, 0);
    lists.insert(2, TimeoutClass::udp, 0);
    lists.insert(3, TimeoutClass::udp, 0);
    lists.remove(2);
    EXPECT_FALSE(lists.tracked(2));
    EXPECT_EQ(lists.size(), 2u);
    lists.remove(2);   // again: no effect
    lists.remove(40);  // never inserted: no effect
    EXPECT_EQ(lists.size(), 2u);
    EXPECT_EQ(expire(lists, kUdp), (Ids{1, 3}));
    // Removing the head, the tail and the only entry keeps the list usable.
    lists.insert(5, TimeoutClass::udp, 0);
    lists.insert(6, TimeoutClass::udp, 0);
    lists.insert(7, TimeoutClass::udp, 0);
    lists.remove(5);
    lists.remove(7);
    lists.insert(8, TimeoutClass::udp, 0);
    EXPECT_EQ(expire(lists, kUdp), (Ids{6, 8}));
    lists.insert(9, TimeoutClass::udp, 0);
    lists.remove(9);
    EXPECT_EQ(expire(lists, kUdp), Ids{});
    EXPECT_EQ(lists.size(), 0u);
}

TEST(ExpiryLists, ClassesAreIndependent) {
    auto lists = make_lists();
    lists.insert(1, TimeoutClass::tcp_established, 0);
    lists.insert(2, TimeoutClass::tcp_transitory, 0);
    lists.insert(3, TimeoutClass::icmp, 0);
    lists.insert(4, TimeoutClass::udp, 0);
    lists.insert(5, TimeoutClass::tcp_opening, 0);
    EXPECT_EQ(expire(lists, kUdp - 1), Ids{});
    EXPECT_EQ(expire(lists, kUdp), Ids{4});
    EXPECT_EQ(expire(lists, kIcmp - 1), Ids{});
    EXPECT_EQ(expire(lists, kIcmp), Ids{3});
    EXPECT_EQ(expire(lists, kOpening - 1), Ids{});
    EXPECT_EQ(expire(lists, kOpening), Ids{5});
    EXPECT_EQ(expire(lists, kTransitory - 1), Ids{});
    EXPECT_EQ(expire(lists, kTransitory), Ids{2});
    EXPECT_EQ(expire(lists, kEstablished - 1), Ids{});
    EXPECT_EQ(expire(lists, kEstablished), Ids{1});
}

// An entry still alive at the head of one class does not hold back expired entries of another.
TEST(ExpiryLists, AnAliveHeadDoesNotBlockOtherClasses) {
    auto lists = make_lists();
    lists.insert(1, TimeoutClass::udp, kIcmp - 10);  // alive until kIcmp + 990
    lists.insert(2, TimeoutClass::icmp, 0);
    EXPECT_EQ(expire(lists, kIcmp), Ids{2});
    EXPECT_TRUE(lists.tracked(1));
}

TEST(ExpiryLists, ReinsertRestartsTheEntry) {
    auto lists = make_lists();
    lists.insert(1, TimeoutClass::udp, 0);
    lists.insert(1, TimeoutClass::icmp, 500);
    EXPECT_EQ(lists.size(), 1u);
    EXPECT_EQ(lists.class_of(1), TimeoutClass::icmp);
    EXPECT_EQ(lists.last_active(1), 500u);
    EXPECT_EQ(expire(lists, kUdp + 500), Ids{});
    EXPECT_EQ(expire(lists, kIcmp + 500), Ids{1});
}

TEST(ExpiryLists, TheCallbackMayReuseTheEntry) {
    auto lists = make_lists();
    lists.insert(1, TimeoutClass::udp, 0);
    lists.insert(2, TimeoutClass::udp, 0);
    std::vector<uint32_t> seen;
    lists.expire(kUdp, 10, [&](uint32_t id) {
        seen.push_back(id);
        lists.insert(id, TimeoutClass::udp, kUdp);  // a new session in the freed slot
    });
    EXPECT_EQ(seen, (Ids{1, 2}));
    EXPECT_EQ(lists.size(), 2u);
    EXPECT_EQ(expire(lists, 2 * kUdp), (Ids{1, 2}));
}

TEST(ExpiryLists, TheLastIdOfTheCapacityWorks) {
    auto lists = make_lists(16);
    lists.insert(15, TimeoutClass::udp, 0);
    lists.insert(0, TimeoutClass::udp, 0);
    EXPECT_EQ(expire(lists, kUdp), (Ids{15, 0}));
}

}  // namespace
}  // namespace cgn::dp
