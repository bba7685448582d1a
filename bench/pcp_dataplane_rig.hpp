#pragma once
// cgn-pcp-bench's dataplane: the NAT the PCP server has in cgnd (control/pcp_nat.hpp,
// PcpDataplaneNat) over a real dp::ControlChannel, with real dp::Workers polling on EAL lcores
// of their own (ring ports, no traffic): each MAP goes as a pcp_hold command to the worker
// owning the subscriber, which runs NatEngine::hold_mapping (pairing, block claim, port,
// mapping-table inserts) and answers through its done ring. The bench's thread (the main
// lcore) is the control core: it calls poll() (ControlChannel::poll, as cgnd's control loop
// does) and the PCP service.
//
// EAL as the dataplane tests and cgn-pipeline-bench set it up: --no-huge --no-pci --no-shconf.

#include <rte_mempool.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "bench/memory_usage.hpp"
#include "common/address.hpp"
#include "common/clock.hpp"
#include "common/counters.hpp"
#include "common/events.hpp"
#include "control/pcp_nat.hpp"
#include "dataplane/io/control_channel.hpp"
#include "dataplane/io/handoff.hpp"
#include "dataplane/io/ring_port.hpp"
#include "dataplane/io/tsc_clock.hpp"
#include "dataplane/io/worker.hpp"

namespace cgn::bench {

// EAL once for the process: main lcore 0 (the control core) on CPU 0, worker lcore w + 1 on
// CPU (w + 1) modulo the CPUs there are. `memory_mb`: EAL -m. False (printed) on failure.
bool init_eal(unsigned workers, unsigned memory_mb);

// The EAL memory one mapping-table entry takes: an rte_hash built as NatEngine builds its
// mapping table (EndpointKey, `entries` keys), measured, divided by `entries`.
double mapping_table_bytes_per_entry(uint32_t entries);

struct RigSettings;

// What a worker spends on a MAP without the channel: NatEngine::hold_mapping called on this
// thread for `subscribers` x `per_subscriber` new TCP mappings (from 100.64.1.0, ports 1000
// up), on an engine built as the rig's workers are. Nanoseconds per call; throws when a call
// is not `held` or the engine does not hold them all.
double hold_mapping_ns(const RigSettings& settings, uint32_t subscribers, uint32_t per_subscriber);

struct RigSettings {
    unsigned workers = 1;
    uint32_t max_sessions = 1u << 19;  // per worker (mapping slots too): --max-sessions
    uint32_t max_subscribers = 0;      // per worker; 0: max_sessions / 4 (cgnd's)
    uint32_t port_block_size = 128;
    common::Ipv4Prefix pool;
};

class DataplaneRig {
public:
    // Builds the channel and the workers and launches them on the worker lcores.
    explicit DataplaneRig(const RigSettings& settings);
    // Stops the workers (if stop() was not called) and frees everything.
    ~DataplaneRig();
    DataplaneRig(const DataplaneRig&) = delete;
    DataplaneRig& operator=(const DataplaneRig&) = delete;

    ctl::PcpDataplaneNat& nat() { return *nat_; }
    // One step of the control loop's dataplane side: completed commands handed to their
    // callbacks (the NAT's answers), grace periods; the workers' block and quota events taken
    // (cgnd writes them out; here only counted). How much it did.
    size_t poll();
    size_t outstanding() const { return channel_->outstanding(); }
    // Stops the workers for good (they go offline); the figures below read their tables.
    void stop();

    // After stop(): summed over the workers.
    uint64_t mappings() const;
    uint64_t held_mappings() const;
    uint64_t subscribers() const;
    uint64_t events() const { return events_taken_; }
    // What building the workers reserved (their NAT engines on rte_hash, arrays, port sets,
    // neighbour and fragment tables), and how many mapping slots that is.
    const MemoryUsage& reserved() const { return reserved_; }
    uint64_t mapping_slots() const { return uint64_t{settings_.max_sessions} * settings_.workers; }

private:
    RigSettings settings_;
    unsigned id_;
    dp::TscClock clock_;
    rte_mempool* pool_ = nullptr;
    std::unique_ptr<dp::RingPort> inside_;
    std::unique_ptr<dp::RingPort> outside_;
    std::unique_ptr<dp::HandoffRings> handoff_;
    std::unique_ptr<dp::BlockMap> blocks_;
    std::unique_ptr<dp::ControlChannel> channel_;
    std::vector<std::unique_ptr<common::EventRing>> event_rings_;
    std::vector<std::unique_ptr<common::WorkerCounters>> counters_;
    std::vector<std::unique_ptr<dp::Worker>> workers_;
    std::unique_ptr<ctl::PcpDataplaneNat> nat_;
    struct Launch {
        dp::Worker* worker;
        const std::atomic<bool>* stop;
    };
    static int worker_main(void* launch);  // an lcore's function: Worker::run until stop_
    std::vector<Launch> launches_;
    std::atomic<bool> stop_{false};
    bool running_ = false;
    uint64_t events_taken_ = 0;
    MemoryUsage reserved_;
};

}  // namespace cgn::bench
