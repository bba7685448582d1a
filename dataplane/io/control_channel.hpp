#pragma once
// The channel from the control thread to the workers (DESIGN invariants 2, 5 and 8):
//
//   RuntimeSettings   the configuration the workers read (filtering, timeouts, pool additions,
//                     how many explicit mappings exist), swapped as a whole snapshot.
//                     Written: control thread only (publish). Read: every worker, once per loop
//                     (an acquire load of the pointer). Ordering: the control thread stores the
//                     new snapshot with release, waits until every worker has reported a
//                     quiescent state (rte_rcu_qsbr), then frees the old one; a worker reads
//                     a snapshot only within one loop iteration and copies what it keeps.
//   explicit mappings an ExplicitMappingTable (lock-free readers, one writer: control).
//   commands          one bounded single-producer/single-consumer ring per worker carrying
//                     WorkerCommand pointers (reserve or release an external port, drop a
//                     mapping): the way the control thread asks a worker to change the
//                     worker's own tables, which only that worker writes. The worker sets the
//                     command's result with a release store; the control thread waits for it.
//
// Workers report a quiescent state at the end of every loop iteration (Worker::poll_once).
// Control operations that wait (publish, synchronize, run) take a `while_waiting` callback:
// cgnd sleeps briefly there; single-threaded tests poll the workers.

#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "common/config.hpp"
#include "dataplane/nat/port_allocator.hpp"
#include "dataplane/nat/steering.hpp"
#include "dataplane/table/explicit_mappings.hpp"

namespace cgn::dp {

struct RuntimeSettings {
    uint64_t generation = 0;
    common::FilteringMode filtering = common::FilteringMode::endpoint_independent;
    common::Timeouts timeouts;
    common::SubscriberLimits limits;
    uint64_t block_hold_down_ms = 120000;
    uint32_t explicit_mappings = 0;
    // Pool addresses added by this generation, one extension per worker, built by the control
    // thread. Slot w is moved from by worker w only, once, when it applies this generation
    // (hence mutable); the control thread frees the snapshot only after every worker passed a
    // quiescent state since publishing it.
    mutable std::vector<AddressPool::Extension> pool_additions;
};

// The settings of `config` that the control thread may change live (generation 0, no
// explicit mappings, no pool additions): what cgnd starts the workers with and what each
// change publishes.
std::unique_ptr<RuntimeSettings> runtime_settings(const common::Config& config);

struct WorkerCommand {
    // drop_dynamic_mapping: the internal endpoint's dynamic mapping, which a new explicit
    // mapping replaces; drop_explicit_mapping: its explicit mapping, withdrawn.
    enum class Kind : uint8_t {
        reserve_port,
        release_port,
        drop_dynamic_mapping,
        drop_explicit_mapping,
        drop_address
    };
    static constexpr int kPending = -1;

    Kind kind = Kind::reserve_port;
    uint8_t protocol = 0;
    uint32_t addr = 0;
    uint16_t port = 0;
    // Set once by the worker: 1 done, 0 refused (port in use), 2 for reserve_port when the
    // worker does not hold the port's block (any more).
    std::atomic<int> result{kPending};
};

using WhileWaiting = std::function<void()>;

class ControlChannel {
public:
    // `blocks`: the port block map the workers claim in (not owned; outlives the channel).
    // `reta_size`: the inside port's RSS indirection table size; `deterministic`: the RFC 7422
    // formula (may be null; outlives the channel). Both make the process's Steering.
    ControlChannel(unsigned workers, int socket_id, std::unique_ptr<RuntimeSettings> initial,
                   uint32_t explicit_capacity, BlockMap& blocks,
                   uint32_t reta_size = kDefaultRetaSize,
                   const common::DeterministicMap* deterministic = nullptr);
    ~ControlChannel();
    ControlChannel(const ControlChannel&) = delete;
    ControlChannel& operator=(const ControlChannel&) = delete;

    unsigned workers() const { return workers_; }

    // ---- workers ----
    const RuntimeSettings* settings() const { return current_.load(std::memory_order_acquire); }
    void quiescent(unsigned worker) { rte_rcu_qsbr_quiescent(qsbr_, worker); }
    // A worker is online from construction; offline() when it stops polling for good, so
    // the control thread never waits for it.
    void offline(unsigned worker) { rte_rcu_qsbr_thread_offline(qsbr_, worker); }
    // The next command for `worker`, or null.
    WorkerCommand* next_command(unsigned worker);
    const ExplicitMappingTable& explicit_mappings() const { return *explicit_; }
    // Who owns a packet or a subscriber: the one Steering of the process, fixed at start (its
    // indirection table size is the inside port's), which every worker copies and the control
    // thread sends its commands by. Read-only after construction.
    const Steering& steering() const { return steering_; }

    // ---- control thread ----
    ExplicitMappingTable& explicit_mappings() { return *explicit_; }
    BlockMap& blocks() { return blocks_; }
    // Makes `next` current (its generation is set here), frees the previous snapshot once no
    // worker can hold it, and returns once every worker has applied `next`.
    void publish(std::unique_ptr<RuntimeSettings> next, const WhileWaiting& while_waiting);
    // Returns once every worker has reported a quiescent state after the call began.
    void synchronize(const WhileWaiting& while_waiting);
    // Sends `command` to `worker` and waits for its result; false on timeout or a full ring.
    bool run(unsigned worker, WorkerCommand& command, const WhileWaiting& while_waiting,
             std::chrono::milliseconds timeout = std::chrono::seconds(2));

private:
    unsigned workers_;
    rte_rcu_qsbr* qsbr_ = nullptr;
    std::atomic<const RuntimeSettings*> current_{nullptr};
    std::vector<rte_ring*> commands_;
    std::unique_ptr<ExplicitMappingTable> explicit_;
    BlockMap& blocks_;
    const Steering steering_;
};

}  // namespace cgn::dp
