// cgn-session-memory: what --max-sessions costs in memory, measured rather than estimated.
//
// Builds the NAT engine of one worker (session, mapping, subscriber and filter tables on
// rte_hash, the session/mapping/subscriber arrays, the expiry lists) for a small and a large
// --max-sessions and prints, for each, the growth of the EAL heap (rte_malloc statistics), of
// the C++ heap (mallinfo2) and of the process's resident set (VmRSS), and the cost of one
// session slot: the difference between the two sizes divided by the difference in slots, so
// that what does not depend on --max-sessions drops out. Everything the engine reserves is
// written at construction (rte_hash zeroes its tables, vectors are value-initialised), so RSS
// counts it. EAL runs with --no-huge, as in the lab.
//
//   cgn-session-memory [SMALL LARGE]      (default 65536 1048576)

#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_memory.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "bench/memory_usage.hpp"
#include "common/counters.hpp"
#include "dataplane/nat/nat_engine.hpp"

namespace {

using cgn::bench::MemoryUsage;

MemoryUsage engine_cost(uint32_t max_sessions, unsigned id) {
    cgn::common::WorkerCounters counters;
    cgn::dp::NatSettings s;
    s.pool = {*cgn::common::Ipv4Prefix::parse("198.51.100.0/24")};
    s.port_range = {1024, 65535};
    s.max_sessions = max_sessions;
    const MemoryUsage before = cgn::bench::memory_usage();
    auto engine = std::make_unique<cgn::dp::NatEngine>(s, id, SOCKET_ID_ANY, counters, 1);
    const MemoryUsage after = cgn::bench::memory_usage();
    return MemoryUsage{after.eal - before.eal, after.heap - before.heap, after.rss - before.rss};
}

}  // namespace

int main(int argc, char** argv) {
    uint32_t small = 65536, large = 1048576;
    if (argc == 3) {
        small = static_cast<uint32_t>(std::strtoul(argv[1], nullptr, 10));
        large = static_cast<uint32_t>(std::strtoul(argv[2], nullptr, 10));
    }
    if (argc != 1 && argc != 3) {
        std::fprintf(stderr, "usage: cgn-session-memory [SMALL LARGE]\n");
        return 2;
    }
    if (small >= large || small < 16) {
        std::fprintf(stderr, "cgn-session-memory: SMALL must be at least 16 and below LARGE\n");
        return 2;
    }
    // Room for the large engine: about 1 KiB a slot is plenty.
    const std::string memory = std::to_string(256 + uint64_t{large} * 1024 / (1 << 20));
    const char* eal_argv[] = {"cgn-session-memory", "--no-huge", "--no-pci", "-m", memory.c_str(),
                              "--no-shconf", "--log-level=lib.eal:error", "--no-telemetry"};
    if (rte_eal_init(sizeof eal_argv / sizeof eal_argv[0], const_cast<char**>(eal_argv)) < 0) {
        std::fprintf(stderr, "EAL initialisation failed\n");
        return 1;
    }
    std::printf("%12s %14s %14s %14s\n", "max-sessions", "EAL heap MiB", "C++ heap MiB",
                "RSS MiB");
    const MemoryUsage a = engine_cost(small, 0);
    const MemoryUsage b = engine_cost(large, 1);
    for (const auto& [n, u] : {std::pair{small, a}, std::pair{large, b}})
        std::printf("%12u %14.1f %14.1f %14.1f\n", n, u.eal / (1 << 20), u.heap / (1 << 20),
                    u.rss / (1 << 20));
    const double slots = static_cast<double>(large - small);
    std::printf("per session slot: EAL heap %.0f B, C++ heap %.0f B, together %.0f B; RSS %.0f B\n",
                (b.eal - a.eal) / slots, (b.heap - a.heap) / slots,
                (b.eal - a.eal + b.heap - a.heap) / slots, (b.rss - a.rss) / slots);
    rte_eal_cleanup();
    return 0;
}
