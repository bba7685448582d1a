#include "common/counters.hpp"

#include <gtest/gtest.h>

#include <set>
#include <sstream>
#include <string>

namespace cgn::common {
namespace {

TEST(Counters, NamesAreUniqueAndDescribed) {
    std::set<std::string_view> names;
    for (size_t i = 0; i < kCounterCount; ++i) {
        EXPECT_FALSE(kCounterNames[i].empty()) << i;
        EXPECT_FALSE(kCounterHelp[i].empty()) << kCounterNames[i];
        EXPECT_TRUE(names.insert(kCounterNames[i]).second) << "duplicate " << kCounterNames[i];
        // Names are printed as metric names: lower case, digits and underscores only.
        for (char ch : kCounterNames[i])
            EXPECT_TRUE((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')
                << kCounterNames[i];
    }
    EXPECT_EQ(names.size(), kCounterCount);
}

TEST(Counters, EnumAndNamesAgree) {
    EXPECT_EQ(counter_name(Counter::rx_inside), "rx_inside");
    EXPECT_EQ(counter_name(Counter::drop_ipv4_checksum), "drop_ipv4_checksum");
    EXPECT_EQ(counter_name(Counter::drop_tx_full), "drop_tx_full");
    // Every enumerator's name is its own: the X-macro yields both from one list.
    EXPECT_EQ(counter_name(Counter::drop_handoff_full), "drop_handoff_full");
    EXPECT_EQ(static_cast<size_t>(Counter::rx_inside), 0u);
}

TEST(Counters, WorkerCountersAddAndGet) {
    WorkerCounters w;
    for (size_t i = 0; i < kCounterCount; ++i) EXPECT_EQ(w.get(static_cast<Counter>(i)), 0u);
    w.add(Counter::drop_runt);
    w.add(Counter::drop_runt);
    w.add(Counter::tx_outside, 40);
    EXPECT_EQ(w.get(Counter::drop_runt), 2u);
    EXPECT_EQ(w.get(Counter::tx_outside), 40u);
    EXPECT_EQ(w.get(Counter::tx_inside), 0u);
    EXPECT_EQ(alignof(WorkerCounters), 64u);
}

TEST(Counters, SumOverWorkers) {
    WorkerCounters a, b;
    a.add(Counter::rx_inside, 5);
    b.add(Counter::rx_inside, 7);
    b.add(Counter::drop_protocol, 1);
    const auto total = sum_counters({&a, &b});
    EXPECT_EQ(total[static_cast<size_t>(Counter::rx_inside)], 12u);
    EXPECT_EQ(total[static_cast<size_t>(Counter::drop_protocol)], 1u);
    EXPECT_EQ(total[static_cast<size_t>(Counter::rx_outside)], 0u);
    EXPECT_EQ(sum_counters({}), CounterSnapshot{});
}

TEST(Counters, FormatPrintsEveryCounterBetweenTheMarkers) {
    CounterSnapshot values{};
    for (size_t i = 0; i < kCounterCount; ++i) values[i] = i * 1000 + 7;
    values[0] = 18446744073709551615ull;  // the largest value prints in full
    const std::string text = format_counters(values);

    std::istringstream in(text);
    std::string line;
    ASSERT_TRUE(std::getline(in, line));
    EXPECT_EQ(line, "--- counters ---");
    for (size_t i = 0; i < kCounterCount; ++i) {
        ASSERT_TRUE(std::getline(in, line)) << "missing " << kCounterNames[i];
        std::istringstream fields(line);
        std::string name;
        unsigned long long value = 0;
        fields >> name >> value;
        EXPECT_FALSE(fields.fail()) << line;
        EXPECT_EQ(name, kCounterNames[i]) << line;
        EXPECT_EQ(value, values[i]) << line;
        std::string rest;
        EXPECT_FALSE(fields >> rest) << "trailing text: " << line;
    }
    ASSERT_TRUE(std::getline(in, line));
    EXPECT_EQ(line, "--- end counters ---");
    EXPECT_FALSE(std::getline(in, line)) << "after the end marker: " << line;
    EXPECT_EQ(text.back(), '\n');
}

}  // namespace
}  // namespace cgn::common
