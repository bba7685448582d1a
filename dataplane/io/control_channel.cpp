#include "dataplane/io/control_channel.hpp"

#include <rte_errno.h>
#include <rte_malloc.h>

#include <algorithm>
#include <optional>
#include <stdexcept>
#include <string>

namespace cgn::dp {

namespace {
unsigned g_channels = 0;  // unique ring and table names when several channels exist (tests)
constexpr unsigned kCompletionBurst = 64;

rte_ring* make_ring(const std::string& name, int socket_id) {
    // Exact size: the ring holds kCommandRingCapacity pointers, the limit submit() keeps.
    rte_ring* r = rte_ring_create(name.c_str(), ControlChannel::kCommandRingCapacity, socket_id,
                                  RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
    if (r == nullptr)
        throw std::runtime_error("cannot create ring " + name + ": " + rte_strerror(rte_errno));
    return r;
}
}  // namespace

std::unique_ptr<RuntimeSettings> runtime_settings(const common::Config& config) {
    auto settings = std::make_unique<RuntimeSettings>();
    settings->filtering = config.filtering;
    settings->timeouts = config.timeouts;
    settings->limits = config.limits;
    settings->block_hold_down_ms = uint64_t{config.block_hold_down_s} * 1000;
    return settings;
}

ControlChannel::ControlChannel(unsigned workers, int socket_id,
                               std::unique_ptr<RuntimeSettings> initial, uint32_t explicit_capacity,
                               BlockMap& blocks, uint32_t reta_size,
                               const common::DeterministicMap* deterministic)
    : workers_(workers),
      done_ring_full_(std::make_unique<DoneRingFull[]>(workers)),
      lanes_(workers),
      blocks_(blocks),
      steering_(workers, &blocks, reta_size, deterministic) {
    const std::string name = "cgn_ctl" + std::to_string(g_channels++);
    const size_t size = rte_rcu_qsbr_get_memsize(workers);
    qsbr_ = static_cast<rte_rcu_qsbr*>(
        rte_zmalloc_socket(name.c_str(), size, RTE_CACHE_LINE_SIZE, socket_id));
    if (qsbr_ == nullptr || rte_rcu_qsbr_init(qsbr_, workers) != 0)
        throw std::runtime_error("cannot create the RCU QSBR variable");
    for (unsigned w = 0; w < workers; ++w) {
        rte_rcu_qsbr_thread_register(qsbr_, w);
        rte_rcu_qsbr_thread_online(qsbr_, w);
        command_rings_.push_back(make_ring(name + "_cmd" + std::to_string(w), socket_id));
        done_rings_.push_back(make_ring(name + "_done" + std::to_string(w), socket_id));
    }
    explicit_ = std::make_unique<ExplicitMappingTable>(name + "_explicit", explicit_capacity,
                                                       socket_id, qsbr_);
    initial->generation = 1;
    current_has_additions_ = !initial->pool_additions.empty();
    current_.store(initial.release(), std::memory_order_release);
}

ControlChannel::~ControlChannel() {
    explicit_.reset();
    delete current_.load();
    for (rte_ring* r : command_rings_) rte_ring_free(r);
    for (rte_ring* r : done_rings_) rte_ring_free(r);
    rte_free(qsbr_);
    // The commands still out, snapshots retired or waiting: freed with their members.
}

// ---- workers ----

WorkerCommand* ControlChannel::next_command(unsigned worker) {
    void* command = nullptr;
    if (rte_ring_sc_dequeue(command_rings_[worker], &command) != 0) return nullptr;
    return static_cast<WorkerCommand*>(command);
}

bool ControlChannel::done(unsigned worker, WorkerCommand* command) {
    if (rte_ring_sp_enqueue(done_rings_[worker], command) == 0) return true;
    done_ring_full_[worker].count.fetch_add(1, std::memory_order_relaxed);
    return false;
}

uint64_t ControlChannel::done_ring_full() const {
    uint64_t sum = 0;
    for (unsigned w = 0; w < workers_; ++w)
        sum += done_ring_full_[w].count.load(std::memory_order_relaxed);
    return sum;
}

// ---- control thread: commands ----

bool ControlChannel::submit(unsigned worker, std::unique_ptr<WorkerCommand> command,
                            Completion done) {
    if (command == nullptr || worker >= workers_) return false;
    Lane& lane = lanes_[worker];
    // Straight into the ring only when nothing older waits: a worker's commands stay in order.
    if (lane.backlog.empty() && lane.in_ring.size() < kCommandRingCapacity &&
        rte_ring_sp_enqueue(command_rings_[worker], command.get()) == 0) {
        lane.in_ring.push_back({std::move(command), std::move(done)});
    } else if (lane.backlog.size() < kBacklogCapacity) {
        lane.backlog.push_back({std::move(command), std::move(done)});
    } else {
        return false;
    }
    ++outstanding_;
    return true;
}

// Every completion the worker has put in its done ring, in bursts (at most the ring's
// capacity a call): a step of the control loop concludes all the answers that came, so a
// batch of requests larger than one burst costs one store commit, not one per burst.
size_t ControlChannel::collect_completions(Lane& lane, unsigned worker) {
    void* completed[kCompletionBurst];
    size_t total = 0;
    while (total < kCommandRingCapacity) {
        const unsigned n =
            rte_ring_sc_dequeue_burst(done_rings_[worker], completed, kCompletionBurst, nullptr);
        for (unsigned i = 0; i < n; ++i) {
            // A worker executes its commands in order, so this is the oldest one out; the
            // search is only a safety net.
            auto it = lane.in_ring.begin();
            while (it != lane.in_ring.end() && it->command.get() != completed[i]) ++it;
            if (it == lane.in_ring.end()) continue;  // not ours: cannot happen
            Pending finished = std::move(*it);
            lane.in_ring.erase(it);
            --outstanding_;
            // The callback may submit more: `lane` is not held across it.
            if (finished.done) finished.done(*finished.command);
        }
        total += n;
        if (n < kCompletionBurst) break;
    }
    return total;
}

size_t ControlChannel::push_backlog(Lane& lane, unsigned worker) {
    size_t moved = 0;
    while (!lane.backlog.empty() && lane.in_ring.size() < kCommandRingCapacity) {
        if (rte_ring_sp_enqueue(command_rings_[worker], lane.backlog.front().command.get()) != 0)
            break;
        lane.in_ring.push_back(std::move(lane.backlog.front()));
        lane.backlog.pop_front();
        ++moved;
    }
    return moved;
}

int ControlChannel::run(unsigned worker, WorkerCommand command, const WhileWaiting& while_waiting,
                        std::chrono::milliseconds timeout) {
    check_not_polling("run");
    // Shared with the completion, which may run after a timeout, when this frame is gone.
    auto answer = std::make_shared<std::optional<int>>();
    if (!submit(worker, std::make_unique<WorkerCommand>(command),
                [answer](const WorkerCommand& c) { *answer = c.result; }))
        return -1;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        poll();
        if (answer->has_value()) return **answer;
        if (std::chrono::steady_clock::now() > deadline) return -1;
        while_waiting();
    }
}

// ---- control thread: publication ----

uint64_t ControlChannel::publish_async(std::unique_ptr<RuntimeSettings> next,
                                       std::function<void()> visible) {
    const uint64_t generation = next_generation_++;
    next->generation = generation;
    if (visible) visible_callbacks_.push_back({generation, std::move(visible)});
    // A snapshot with pool additions stays until every worker has adopted them.
    if (waiting_.empty() && (!current_has_additions_ || visible_ >= current_generation_))
        swap_in(std::move(next));
    else
        waiting_.push_back(std::move(next));
    return generation;
}

void ControlChannel::swap_in(std::unique_ptr<RuntimeSettings> next) {
    const uint64_t generation = next->generation;
    current_has_additions_ = !next->pool_additions.empty();
    const RuntimeSettings* previous = current_.load(std::memory_order_relaxed);
    // Release: a worker that loads the pointer sees the snapshot's contents.
    current_.store(next.release(), std::memory_order_release);
    retired_.push_back({std::unique_ptr<const RuntimeSettings>(previous), generation});
    current_generation_ = generation;
}

size_t ControlChannel::advance_publications() {
    size_t progressed = 0;
    if (grace_running_ && rte_rcu_qsbr_check(qsbr_, grace_token_, false) == 1) {
        grace_running_ = false;
        // Every worker passed a quiescent state after the swaps this grace period covers (no
        // one holds what they replaced), and after the first grace period of those it had
        // already seen completed (so it has since run a whole iteration that read them).
        safe_ = std::max(safe_, grace_covers_current_);
        visible_ = std::max(visible_, grace_covers_safe_);
        ++progressed;
    }
    const auto freed = std::remove_if(retired_.begin(), retired_.end(),
                                      [&](const Retired& r) { return r.replaced_by <= safe_; });
    progressed += static_cast<size_t>(retired_.end() - freed);
    retired_.erase(freed, retired_.end());
    // Callbacks before the next grace period starts: what they publish rides on it.
    while (!visible_callbacks_.empty() && visible_callbacks_.front().generation <= visible_) {
        std::function<void()> callback = std::move(visible_callbacks_.front().callback);
        visible_callbacks_.pop_front();
        callback();
        ++progressed;
    }
    while (!waiting_.empty() && (!current_has_additions_ || visible_ >= current_generation_)) {
        swap_in(std::move(waiting_.front()));
        waiting_.pop_front();
        ++progressed;
    }
    // One grace period at a time, covering every swap made before it starts.
    if (!grace_running_ && visible_ < current_generation_) {
        grace_covers_current_ = current_generation_;
        grace_covers_safe_ = safe_;
        grace_token_ = rte_rcu_qsbr_start(qsbr_);
        grace_running_ = true;
        ++grace_periods_started_;
    }
    return progressed;
}

void ControlChannel::publish(std::unique_ptr<RuntimeSettings> next,
                             const WhileWaiting& while_waiting) {
    check_not_polling("publish");
    const uint64_t generation = publish_async(std::move(next));
    for (;;) {
        poll();
        if (visible_ >= generation) return;
        while_waiting();
    }
}

// ---- control thread: the step ----

size_t ControlChannel::poll() {
    if (polling_) return 0;  // from a callback: the outer poll() goes on
    polling_ = true;
    struct Clear {
        bool& flag;
        ~Clear() { flag = false; }
    } clear{polling_};
    size_t progressed = 0;
    for (unsigned w = 0; w < workers_; ++w) {
        progressed += collect_completions(lanes_[w], w);
        progressed += push_backlog(lanes_[w], w);
    }
    progressed += advance_publications();
    return progressed;
}

void ControlChannel::check_not_polling(const char* what) const {
    if (polling_)
        throw std::logic_error(std::string("ControlChannel::") + what +
                               " called from a poll() callback: it would wait inside poll()");
}

}  // namespace cgn::dp
