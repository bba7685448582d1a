#pragma once
// How many mbufs cgnd needs, and how many each worker may keep held, from the pool's size
// (--mbufs) and the number of workers. One place for the figures the ports and rings are
// made with, so that the start-up check and the ports cannot disagree.
//
// What pins mbufs while cgnd runs:
//   per worker  the RX descriptors of its two queues (filled with mbufs at start), the TX
//               descriptors (a sent mbuf is freed only when the device is done with it), its
//               own TX staging and handoff batches, the fragments it replays, and its mbuf
//               cache (the mempool keeps up to 1.5 times the cache size per lcore);
//   per worker  its two PCP rings (requests to the control thread, answers from it), full in
//               the worst case;
//   per pair    the handoff ring between two workers, full in the worst case;
//   per worker  held mbufs: fragments waiting for their datagram's first fragment. These are
//               bounded by a budget: what the fixed needs leave, half of it (the other half is
//               for packets in flight and what the control thread sends), split between the
//               workers.

#include <cstdint>

namespace cgn::common {

struct MbufBudget {
    static constexpr uint32_t kRxDescriptors = 1024;              // per queue
    static constexpr uint32_t kTxDescriptors = 1024;              // per queue
    static constexpr uint32_t kCache = 256;                       // mempool cache per lcore
    static constexpr uint32_t kHandoffRing = 1024;                // per ordered worker pair
    static constexpr uint32_t kWorkerBuffers = 2 * 128 + 2 * 32;  // TX staging, replay
    static constexpr uint32_t kHandoffBatch = 64;                 // per destination worker
    static constexpr uint32_t kControl = 512;                     // the control thread's own frames
    static constexpr uint32_t kPcpRing = 256;                     // per direction per worker
    // The smallest hold budget a worker may have: a few datagrams' worth of held fragments.
    static constexpr uint32_t kMinHeldPerWorker = 128;

    // Mbufs pinned whatever the traffic, with `workers` workers.
    static constexpr uint64_t fixed(unsigned workers) {
        const uint64_t per_worker = 2 * kRxDescriptors + 2 * kTxDescriptors + kWorkerBuffers +
                                    uint64_t{kHandoffBatch} * workers + kCache * 3 / 2 +
                                    2 * kPcpRing;
        return per_worker * workers + uint64_t{kHandoffRing} * workers * (workers - 1) + kControl +
               kCache * 3 / 2;
    }
    // The smallest --mbufs that works with `workers` workers.
    static constexpr uint64_t minimum(unsigned workers) {
        return fixed(workers) + 2 * uint64_t{kMinHeldPerWorker} * workers;
    }
    // Mbufs one worker may hold (held fragments); 0 when `mbufs` is below minimum().
    static constexpr uint32_t held_per_worker(uint64_t mbufs, unsigned workers) {
        if (mbufs < minimum(workers)) return 0;
        return static_cast<uint32_t>((mbufs - fixed(workers)) / 2 / workers);
    }
};

}  // namespace cgn::common
