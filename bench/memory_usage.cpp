#include "bench/memory_usage.hpp"

#include <malloc.h>
#include <rte_malloc.h>

#include <fstream>
#include <string>

namespace cgn::bench {

MemoryUsage memory_usage() {
    MemoryUsage u;
    rte_malloc_socket_stats stats{};
    for (unsigned s = 0; s < RTE_MAX_NUMA_NODES; ++s)
        if (rte_malloc_get_socket_stats(static_cast<int>(s), &stats) == 0)
            u.eal += static_cast<double>(stats.heap_allocsz_bytes);
    const struct mallinfo2 m = mallinfo2();
    u.heap = static_cast<double>(m.uordblks + m.hblkhd);
    std::ifstream status("/proc/self/status");
    std::string key;
    while (status >> key) {
        if (key == "VmRSS:") {
            double kb = 0;
            status >> kb;
            u.rss = kb * 1024;
            break;
        }
        status.ignore(4096, '\n');
    }
    return u;
}

}  // namespace cgn::bench
