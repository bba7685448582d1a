#include "dataplane/io/control_channel.hpp"

#include <rte_errno.h>
#include <rte_malloc.h>

#include <stdexcept>
#include <string>

namespace cgn::dp {

namespace {
unsigned g_channels = 0;  // unique ring and table names when several channels exist (tests)
}

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
    : workers_(workers), blocks_(blocks), steering_(workers, &blocks, reta_size, deterministic) {
    const std::string name = "cgn_ctl" + std::to_string(g_channels++);
    const size_t size = rte_rcu_qsbr_get_memsize(workers);
    qsbr_ = static_cast<rte_rcu_qsbr*>(
        rte_zmalloc_socket(name.c_str(), size, RTE_CACHE_LINE_SIZE, socket_id));
    if (qsbr_ == nullptr || rte_rcu_qsbr_init(qsbr_, workers) != 0)
        throw std::runtime_error("cannot create the RCU QSBR variable");
    for (unsigned w = 0; w < workers; ++w) {
        rte_rcu_qsbr_thread_register(qsbr_, w);
        rte_rcu_qsbr_thread_online(qsbr_, w);
        const std::string ring_name = name + "_cmd" + std::to_string(w);
        rte_ring* r =
            rte_ring_create(ring_name.c_str(), 64, socket_id, RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (r == nullptr)
            throw std::runtime_error("cannot create command ring " + ring_name + ": " +
                                     rte_strerror(rte_errno));
        commands_.push_back(r);
    }
    explicit_ = std::make_unique<ExplicitMappingTable>(name + "_explicit", explicit_capacity,
                                                       socket_id, qsbr_);
    initial->generation = 1;
    current_.store(initial.release(), std::memory_order_release);
}

ControlChannel::~ControlChannel() {
    explicit_.reset();
    delete current_.load();
    for (rte_ring* r : commands_) rte_ring_free(r);
    rte_free(qsbr_);
}

WorkerCommand* ControlChannel::next_command(unsigned worker) {
    void* command = nullptr;
    if (rte_ring_sc_dequeue(commands_[worker], &command) != 0) return nullptr;
    return static_cast<WorkerCommand*>(command);
}

void ControlChannel::publish(std::unique_ptr<RuntimeSettings> next,
                             const WhileWaiting& while_waiting) {
    next->generation = settings()->generation + 1;
    const RuntimeSettings* previous = current_.exchange(next.release(), std::memory_order_acq_rel);
    // After one grace period no worker holds `previous` any more. After a second one, every
    // worker has also run a whole loop that began after the swap, so it has applied this
    // generation (and adopted its pool additions) before the next publish can replace it.
    synchronize(while_waiting);
    delete previous;
    synchronize(while_waiting);
}

void ControlChannel::synchronize(const WhileWaiting& while_waiting) {
    const uint64_t token = rte_rcu_qsbr_start(qsbr_);
    while (rte_rcu_qsbr_check(qsbr_, token, false) == 0) while_waiting();
}

bool ControlChannel::run(unsigned worker, WorkerCommand& command, const WhileWaiting& while_waiting,
                         std::chrono::milliseconds timeout) {
    command.result.store(WorkerCommand::kPending, std::memory_order_relaxed);
    if (rte_ring_sp_enqueue(commands_[worker], &command) != 0) return false;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (command.result.load(std::memory_order_acquire) == WorkerCommand::kPending) {
        if (std::chrono::steady_clock::now() > deadline) {
            // The worker may still take the command later: it must stay valid. Callers keep
            // commands alive for the channel's lifetime when this happens (see Controller).
            return false;
        }
        while_waiting();
    }
    return command.result.load(std::memory_order_relaxed) == 1;
}

}  // namespace cgn::dp
