#include "common/counters.hpp"

#include <cstdio>

namespace cgn::common {

CounterSnapshot sum_counters(const std::vector<const WorkerCounters*>& workers) {
    CounterSnapshot total{};
    for (const auto* w : workers)
        for (size_t i = 0; i < kCounterCount; ++i)
            total[i] += w->values[i].load(std::memory_order_relaxed);
    return total;
}

std::string format_counters(const CounterSnapshot& values) {
    std::string out = "--- counters ---\n";
    char line[128];
    for (size_t i = 0; i < kCounterCount; ++i) {
        std::snprintf(line, sizeof line, "%-32.*s %llu\n",
                      static_cast<int>(kCounterNames[i].size()), kCounterNames[i].data(),
                      static_cast<unsigned long long>(values[i]));
        out += line;
    }
    out += "--- end counters ---\n";
    return out;
}

}  // namespace cgn::common
