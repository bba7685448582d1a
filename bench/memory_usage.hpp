// What a benchmark process holds, for the benches that measure memory (cgn-session-memory,
// cgn-pcp-bench).
#pragma once

namespace cgn::bench {

// What the process holds now: EAL heap (rte_malloc), C++ heap (mallinfo2, small and mmapped
// blocks) and resident set (VmRSS), in bytes.
struct MemoryUsage {
    double eal = 0;
    double heap = 0;
    double rss = 0;
};
MemoryUsage memory_usage();

}  // namespace cgn::bench
