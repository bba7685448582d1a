#pragma once
// The channel from the control thread to the workers (DESIGN invariants 2, 5 and 8). The
// control side never blocks: it submits commands and publishes snapshots, and poll() (called
// from the control thread's loop) collects what the workers have done. Blocking wrappers
// (run, publish) are built on that for the rare operator commands.
//
//   RuntimeSettings   the configuration the workers read (filtering, timeouts, pool additions,
//                     how many explicit mappings exist), swapped as a whole snapshot.
//                     Written: control thread only (publish_async swaps the pointer with a
//                     release store; the snapshot is not written after that, except
//                     pool_additions[w], moved from by worker w). Read: every worker, at the
//                     start of each loop iteration (acquire load, Worker::apply_control),
//                     copying what it keeps; it holds no pointer into it past the quiescent
//                     state it reports at the end of that iteration (Worker::poll_once).
//                     Freed by the control thread (poll) after one grace period of
//                     rte_rcu_qsbr that started after it was replaced.
//   explicit mappings an ExplicitMappingTable (lock-free readers, one writer: control).
//   command ring      one bounded single-producer/single-consumer rte_ring per worker,
//                     control -> worker, carrying WorkerCommand pointers: the way the control
//                     thread asks a worker to change the worker's own tables, which only that
//                     worker writes. The control thread writes the arguments before the
//                     enqueue and does not touch the command again until it comes back.
//   done ring         one SP/SC rte_ring per worker, worker -> control, same capacity: the
//                     worker writes the result fields, then enqueues the pointer; the control
//                     thread reads them after the dequeue (poll). No field of WorkerCommand is
//                     atomic: rte_ring orders them. Its enqueue stores the tail after the
//                     element and everything written before it (a store-release in the C11
//                     variant, rte_smp_wmb in the generic one); its dequeue reads that tail
//                     before the element (load-acquire, or rte_smp_rmb). So what one side
//                     wrote before the enqueue is visible to the other after the dequeue, on
//                     both rings. At most ring-capacity commands per worker are out (in the
//                     command ring, being executed, or in the done ring) at any time; the rest
//                     wait in the control thread's backlog. Hence neither enqueue can fail.
//
// Grace periods (rte_rcu_qsbr on one variable, one reader slot per worker; the explicit
// mapping table's defer queue uses the same variable): a worker reports a quiescent state at
// the end of every loop iteration, and goes offline when it stops (offline counts as
// quiescent for rte_rcu_qsbr_check, so a stopped worker holds nothing up). The control thread
// only ever calls rte_rcu_qsbr_start and rte_rcu_qsbr_check(..., wait = false).
//
// Publication, for generation G swapped in at time S:
//   - safe:    a grace period that started after S has completed, so no worker still holds
//              the snapshot G replaced: it is freed.
//   - visible: a second grace period, started after the first completed, has completed. Each
//              worker then ran a whole iteration that began after its first quiescent state
//              following S, and that iteration read generation G or a newer one: every worker
//              has applied G (or something newer). visible_generation() says G; the `visible`
//              callbacks of generations up to G run.
// One grace period runs at a time and covers every publication swapped in before it started,
// so N publications made between two poll() calls cost two grace periods together, not 2N.
// poll() starts the grace periods: publish a batch, then poll.
//
// Pool additions: each worker moves its slot of pool_additions out when it applies a
// generation. A worker that skipped that generation (two publications before it looked) would
// lose them. So a snapshot that carries pool additions is never replaced before it is
// visible: a publication made meanwhile (any kind) waits in the channel, in order, and poll()
// swaps it in once the snapshot before it is visible. Its generation is still given by
// publish_async. Pool additions are rare operator commands; the price is that publications
// behind one wait for its two grace periods.

#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "common/config.hpp"
#include "dataplane/nat/peer_filter.hpp"
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
    // (hence mutable). The channel never replaces a snapshot carrying additions before every
    // worker has applied it (see above).
    mutable std::vector<AddressPool::Extension> pool_additions;
};

// The settings of `config` that the control thread may change live (generation 0, no
// explicit mappings, no pool additions): what cgnd starts the workers with and what each
// change publishes.
std::unique_ptr<RuntimeSettings> runtime_settings(const common::Config& config);

// A request to one worker, and its answer. The control thread fills the arguments; the worker
// executes it and fills the results; then the control thread reads them (ordering: see the
// rings above). Arguments beyond kind/protocol/addr/port are for kinds that need a second
// endpoint or options (PCP: a suggested external endpoint, a peer).
struct WorkerCommand {
    // drop_dynamic_mapping: the internal endpoint's dynamic mapping, which a new explicit
    // mapping replaces; drop_explicit_mapping: its explicit mapping, withdrawn; drop_address:
    // every mapping of the internal address (spread over the worker's loops).
    // The pcp_* kinds serve the PCP server (control/pcp_nat.hpp) on the worker owning the
    // subscriber `addr` (NatEngine, "PCP"): their `result` is a NatEngine::HoldStatus value.
    //   pcp_hold            MAP: (protocol, addr, port) held; addr2/port2 the suggested
    //                       external endpoint (0: none), flags kExact; `filters` (RFC 6887
    //                       §13.3) replace the mapping's; result_addr/port the external
    //                       endpoint. With port_count n > 0, a port set (RFC 7753): up to
    //                       n consecutive internal ports from `port` held on as many
    //                       consecutive external ports of one block, flags kParity for the
    //                       P bit; result_addr/port the first external endpoint,
    //                       result_value how many were held.
    //   pcp_release         the held mapping of (protocol, addr, port) given back; result
    //                       held (released) or not_authorized (it was not held). With
    //                       port_count n > 0: the n held mappings from `port` (a port set).
    //   pcp_paired_address  NAT-PMP: addr's paired pool address in result_addr.
    //   pcp_peer            PEER: the flow (protocol, addr, port) -> addr2:port2; its
    //                       external endpoint, and its idle timeout (s) in result_value.
    enum class Kind : uint8_t {
        reserve_port,
        release_port,
        drop_dynamic_mapping,
        drop_explicit_mapping,
        drop_address,
        pcp_hold,
        pcp_release,
        pcp_paired_address,
        pcp_peer,
    };
    static constexpr uint8_t kExact = 1;   // flags of pcp_hold
    static constexpr uint8_t kParity = 2;  // flags of pcp_hold with a port set
    static constexpr int kPending = -1;

    // Arguments (control thread).
    Kind kind = Kind::reserve_port;
    uint8_t protocol = 0;
    uint32_t addr = 0;
    uint16_t port = 0;
    uint32_t addr2 = 0;  // a second endpoint, by kind
    uint16_t port2 = 0;
    uint8_t flags = 0;  // options, by kind
    uint8_t filter_count = 0;  // pcp_hold: filters[0, filter_count)
    uint16_t port_count = 0;   // pcp_hold, pcp_release: 0 one endpoint; n a port set
    std::array<PeerFilter, kMaxPeerFilters> filters{};
    // Results (the worker, before it hands the command back). `result`: 1 done, 0 refused
    // (reserve_port: a dynamic mapping has the port), 2 reserve_port where the worker does not
    // hold the port's block (any more); the pcp_* kinds above; kPending until executed. The
    // others by kind.
    int result = kPending;
    uint32_t result_addr = 0;
    uint16_t result_port = 0;
    uint32_t result_value = 0;
    // The submitter's; the channel and the worker do not look at it.
    uint64_t tag = 0;
};

using WhileWaiting = std::function<void()>;

class ControlChannel {
public:
    // Commands out at one worker at once (command ring, executing, done ring).
    static constexpr unsigned kCommandRingCapacity = 1024;
    // Commands per worker waiting in the control thread for room in the ring.
    static constexpr size_t kBacklogCapacity = 4096;

    using Completion = std::function<void(const WorkerCommand&)>;

    // `blocks`: the port block map the workers claim in (not owned; outlives the channel).
    // `reta_size`: the inside port's RSS indirection table size; `deterministic`: the RFC 7422
    // formula (may be null; outlives the channel). Both make the process's Steering.
    // The destructor must run after every worker has stopped for good: it frees the commands
    // still out (their completions are not called) and every snapshot.
    ControlChannel(unsigned workers, int socket_id, std::unique_ptr<RuntimeSettings> initial,
                   uint32_t explicit_capacity, BlockMap& blocks,
                   uint32_t reta_size = kDefaultRetaSize,
                   const common::DeterministicMap* deterministic = nullptr);
    ~ControlChannel();
    ControlChannel(const ControlChannel&) = delete;
    ControlChannel& operator=(const ControlChannel&) = delete;

    unsigned workers() const { return workers_; }

    // ---- workers (worker w calls these with its own index only) ----
    const RuntimeSettings* settings() const { return current_.load(std::memory_order_acquire); }
    void quiescent(unsigned worker) { rte_rcu_qsbr_quiescent(qsbr_, worker); }
    // A worker is online from construction; offline() when it stops polling for good, so
    // grace periods no longer wait for it.
    void offline(unsigned worker) { rte_rcu_qsbr_thread_offline(qsbr_, worker); }
    // The next command for `worker`, or null. The worker owns it until it calls done().
    WorkerCommand* next_command(unsigned worker);
    // Hands an executed command (results written) back to the control thread. False only if
    // the done ring is full, which the limit on outstanding commands rules out; the caller
    // keeps the command and tries again.
    bool done(unsigned worker, WorkerCommand* command);
    const ExplicitMappingTable& explicit_mappings() const { return *explicit_; }
    // Who owns a packet or a subscriber: the one Steering of the process, fixed at start (its
    // indirection table size is the inside port's), which every worker copies and the control
    // thread sends its commands by. Read-only after construction.
    const Steering& steering() const { return steering_; }

    // ---- control thread only: nothing below blocks except run() and publish() ----
    ExplicitMappingTable& explicit_mappings() { return *explicit_; }
    BlockMap& blocks() { return blocks_; }

    // Queues `command` for `worker`; `done` (may be empty) runs in poll() once the worker has
    // executed it, with the results. Commands beyond the ring's room wait in a per-worker
    // backlog (FIFO: a worker executes its commands in submission order) and are pushed as
    // room frees. False, and nothing queued, when that backlog is full too.
    bool submit(unsigned worker, std::unique_ptr<WorkerCommand> command, Completion done);

    // Makes `next` current (its generation is set here) and returns at once. The previous
    // snapshot is freed, and `visible` runs, from poll() once it is safe / once every worker
    // has applied `next` (see above). When the current snapshot carries pool additions not yet
    // visible, `next` waits in the channel and poll() swaps it in later. Returns `next`'s
    // generation.
    uint64_t publish_async(std::unique_ptr<RuntimeSettings> next,
                           std::function<void()> visible = {});
    // The newest generation every worker has applied (0 before the first publication is
    // visible: the initial snapshot is generation 1).
    uint64_t visible_generation() const { return visible_; }
    // The generation of the newest publication (current or waiting).
    uint64_t published_generation() const { return next_generation_ - 1; }

    // One non-blocking step: hands completed commands to their callbacks (in each worker's
    // order) and frees them, moves backlog into the rings, swaps in waiting publications,
    // checks the running grace period and starts the next, frees snapshots and runs `visible`
    // callbacks (in generation order). Returns how many things it completed (commands, backlog
    // moves, swaps, grace periods, callbacks); 0 when nothing moved. Callbacks may call
    // submit() and publish_async(), not poll(), run() or publish() (those throw
    // std::logic_error there); they must not throw themselves.
    size_t poll();
    // Commands submitted and not completed yet (backlog included).
    size_t outstanding() const { return outstanding_; }
    // Grace periods this channel started (rte_rcu_qsbr_start), for batching figures and tests.
    uint64_t grace_periods_started() const { return grace_periods_started_; }
    // Replaced snapshots not freed yet (waiting for their grace period).
    size_t retired_snapshots() const { return retired_.size(); }
    // Publications waiting behind a snapshot with pool additions.
    size_t waiting_publications() const { return waiting_.size(); }
    // Times a worker found its done ring full (0 unless the outstanding limit is broken).
    uint64_t done_ring_full() const;

    // Blocking wrappers, for operator commands: poll() until done, calling `while_waiting`
    // between polls (cgnd sleeps there; single-threaded tests poll the workers).
    // The command's result, or -1 on timeout or a full backlog. After a timeout the command
    // still completes later (harmlessly: its result is dropped).
    int run(unsigned worker, WorkerCommand command, const WhileWaiting& while_waiting,
            std::chrono::milliseconds timeout = std::chrono::seconds(2));
    // publish_async, then returns once `next` is visible: every worker has applied it and no
    // worker holds anything of the snapshots before it (explicit-mapping erases made before
    // the call included: a worker can no longer find them).
    void publish(std::unique_ptr<RuntimeSettings> next, const WhileWaiting& while_waiting);

private:
    struct Pending {
        std::unique_ptr<WorkerCommand> command;
        Completion done;
    };
    // One worker's commands, control thread only.
    struct Lane {
        std::deque<Pending> in_ring;  // pushed to the worker, not back yet, oldest first
        std::deque<Pending> backlog;  // waiting for room
    };
    // Written by one worker (relaxed), read by anyone: its own cache line.
    struct alignas(RTE_CACHE_LINE_SIZE) DoneRingFull {
        std::atomic<uint64_t> count{0};
    };
    struct Retired {
        std::unique_ptr<const RuntimeSettings> snapshot;
        uint64_t replaced_by;  // the generation whose swap retired it
    };
    struct Visible {
        uint64_t generation;
        std::function<void()> callback;
    };

    void swap_in(std::unique_ptr<RuntimeSettings> next);
    size_t collect_completions(Lane& lane, unsigned worker);
    size_t push_backlog(Lane& lane, unsigned worker);
    size_t advance_publications();
    void check_not_polling(const char* what) const;

    unsigned workers_;
    rte_rcu_qsbr* qsbr_ = nullptr;
    // The current snapshot: stored by the control thread (release), loaded by the workers.
    std::atomic<const RuntimeSettings*> current_{nullptr};
    // Both read-only after construction (the workers read them every loop: kept apart from
    // the control thread's own state).
    std::vector<rte_ring*> command_rings_;
    std::vector<rte_ring*> done_rings_;
    std::unique_ptr<DoneRingFull[]> done_ring_full_;
    std::vector<Lane> lanes_;
    size_t outstanding_ = 0;
    std::unique_ptr<ExplicitMappingTable> explicit_;
    BlockMap& blocks_;
    const Steering steering_;

    // Publication state, control thread only.
    uint64_t next_generation_ = 2;  // the initial snapshot is 1
    uint64_t current_generation_ = 1;
    bool current_has_additions_ = false;
    uint64_t safe_ = 0;     // snapshots replaced by generations up to this one may be freed
    uint64_t visible_ = 0;  // every worker applied this generation
    bool grace_running_ = false;
    uint64_t grace_token_ = 0;
    uint64_t grace_covers_current_ = 0;  // current_generation_ when the grace period started
    uint64_t grace_covers_safe_ = 0;     // safe_ when it started
    uint64_t grace_periods_started_ = 0;
    // Publications behind a snapshot with pool additions, oldest first.
    std::deque<std::unique_ptr<RuntimeSettings>> waiting_;
    std::vector<Retired> retired_;
    std::deque<Visible> visible_callbacks_;  // generation order
    bool polling_ = false;
};

}  // namespace cgn::dp
