#include "bench/pcp_dataplane_rig.hpp"

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

#include "dataplane/nat/flow_key.hpp"
#include "dataplane/table/hash_table.hpp"

namespace cgn::bench {

namespace {

unsigned g_rigs = 0;  // unique names for pools, ports and tables

}  // namespace

int DataplaneRig::worker_main(void* arg) {
    const auto* launch = static_cast<const Launch*>(arg);
    launch->worker->run(*launch->stop);
    return 0;
}

bool init_eal(unsigned workers, unsigned memory_mb) {
    const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
    std::string lcores;
    for (unsigned l = 0; l <= workers; ++l)
        lcores += (l == 0 ? "" : ",") + std::to_string(l) + "@" + std::to_string(l % cpus);
    const std::string memory = std::to_string(memory_mb);
    const char* eal_argv[] = {"cgn-pcp-bench",
                              "--no-huge",
                              "--no-pci",
                              "-m",
                              memory.c_str(),
                              "--no-shconf",
                              "--lcores",
                              lcores.c_str(),
                              "--log-level=lib.eal:error",
                              "--no-telemetry"};
    if (rte_eal_init(sizeof eal_argv / sizeof eal_argv[0], const_cast<char**>(eal_argv)) < 0) {
        std::fprintf(stderr, "cgn-pcp-bench: EAL initialisation failed (--lcores %s -m %s)\n",
                     lcores.c_str(), memory.c_str());
        return false;
    }
    std::printf("EAL: --no-huge -m %s --lcores %s (control: lcore 0; workers: lcores 1-%u)%s\n",
                memory.c_str(), lcores.c_str(), workers,
                workers + 1 > cpus ? "; more lcores than CPUs: they share" : "");
    return true;
}

double mapping_table_bytes_per_entry(uint32_t entries) {
    const double before = memory_usage().eal;
    double grown = 0;
    {
        dp::HashTable table("pcpb_probe" + std::to_string(++g_rigs), entries,
                            sizeof(dp::EndpointKey), SOCKET_ID_ANY);
        grown = memory_usage().eal - before;
    }
    return grown / entries;
}

double hold_mapping_ns(const RigSettings& settings, uint32_t subscribers, uint32_t per_subscriber) {
    common::WorkerCounters counters;
    dp::NatSettings ns;
    ns.pool = {settings.pool};
    ns.max_sessions = settings.max_sessions;
    ns.max_subscribers = settings.max_subscribers;
    ns.port_block_size = settings.port_block_size;  // its own block map: one worker
    dp::NatEngine engine(ns, ++g_rigs * 16, SOCKET_ID_ANY, counters, 42);
    const uint64_t hz = rte_get_tsc_hz();
    const uint64_t start = rte_rdtsc();
    for (uint32_t s = 0; s < subscribers; ++s)
        for (uint32_t k = 0; k < per_subscriber; ++k) {
            const auto r = engine.hold_mapping(6, 0x64400100u + s, static_cast<uint16_t>(1000 + k),
                                               0, 0, false, 1000);
            if (r.status != dp::NatEngine::HoldStatus::held)
                throw std::runtime_error("hold_mapping refused a mapping");
        }
    const uint64_t cycles = rte_rdtsc() - start;
    const uint64_t calls = uint64_t{subscribers} * per_subscriber;
    if (engine.held_mapping_count() != calls)
        throw std::runtime_error("the engine does not hold every mapping");
    return static_cast<double>(cycles) * 1e9 / static_cast<double>(hz) / static_cast<double>(calls);
}

DataplaneRig::DataplaneRig(const RigSettings& settings) : settings_(settings), id_(++g_rigs) {
    if (rte_lcore_count() < settings.workers + 1)
        throw std::runtime_error("not enough lcores for the workers");
    const std::string name = "pcpb" + std::to_string(id_);
    const auto queues = static_cast<uint16_t>(settings.workers);
    pool_ = rte_pktmbuf_pool_create((name + "_mbufs").c_str(), 4095, 256, 0,
                                    RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (pool_ == nullptr) throw std::runtime_error("cannot create the mbuf pool");
    inside_ = std::make_unique<dp::RingPort>(name + "_in", pool_, 1024, queues);
    outside_ = std::make_unique<dp::RingPort>(name + "_out", pool_, 1024, queues);
    if (settings.workers > 1)
        handoff_ =
            std::make_unique<dp::HandoffRings>(name + "_ho", settings.workers, 1024, SOCKET_ID_ANY);
    common::PortRange range;  // cgnd's default, 1024-65535
    blocks_ = std::make_unique<dp::BlockMap>(range, settings.port_block_size, settings.workers);
    channel_ = std::make_unique<dp::ControlChannel>(
        settings.workers, SOCKET_ID_ANY, std::make_unique<dp::RuntimeSettings>(), 1024, *blocks_);

    dp::WorkerSettings ws;
    ws.workers = settings.workers;
    ws.handoff = handoff_.get();
    ws.control = channel_.get();
    ws.socket_id = SOCKET_ID_ANY;
    // The dataplane tests' topology (documentation and shared ranges); no frame is sent.
    const auto inside_address = *common::InterfaceAddress::parse("100.64.0.1/10");
    const auto outside_address = *common::InterfaceAddress::parse("192.0.2.1/24");
    const auto gateway = common::Ipv4Address::parse("192.0.2.254");
    ws.inside = {inside_->port_id(), 0, 0, inside_->mac(), inside_address, std::nullopt};
    ws.outside = {outside_->port_id(), 0, 0, outside_->mac(), outside_address, gateway};
    ws.nat.pool = {settings.pool};
    ws.nat.port_range = range;
    ws.nat.max_sessions = settings.max_sessions;
    ws.nat.max_subscribers = settings.max_subscribers;
    ws.nat.workers = settings.workers;
    ws.nat.blocks = blocks_.get();
    ws.nat.port_block_size = settings.port_block_size;
    ws.nat.explicit_mappings = &channel_->explicit_mappings();
    ws.neighbor_capacity = 64;

    const MemoryUsage before = memory_usage();
    for (unsigned w = 0; w < settings.workers; ++w) {
        dp::WorkerSettings mine = ws;
        mine.worker_id = id_ * 16 + w;
        mine.worker_index = mine.nat.worker_index = w;
        mine.seed = 42 + w;
        mine.inside.rx_queue = mine.inside.tx_queue = static_cast<uint16_t>(w);
        mine.outside.rx_queue = mine.outside.tx_queue = static_cast<uint16_t>(w);
        event_rings_.push_back(std::make_unique<common::EventRing>());
        mine.nat.events = event_rings_.back().get();
        counters_.push_back(std::make_unique<common::WorkerCounters>());
        workers_.push_back(std::make_unique<dp::Worker>(mine, pool_, *counters_.back(), clock_));
    }
    const MemoryUsage after = memory_usage();
    reserved_ = {after.eal - before.eal, after.heap - before.heap, after.rss - before.rss};

    nat_ = std::make_unique<ctl::PcpDataplaneNat>(*channel_, ctl::PcpDataplaneNat::StaticQuery{});
    launches_.reserve(settings.workers);
    unsigned w = 0;
    unsigned lcore = 0;
    RTE_LCORE_FOREACH_WORKER(lcore) {
        if (w == settings.workers) break;
        launches_.push_back({workers_[w].get(), &stop_});
        if (rte_eal_remote_launch(worker_main, &launches_.back(), lcore) != 0) {
            stop();
            throw std::runtime_error("cannot launch a worker on lcore " + std::to_string(lcore));
        }
        running_ = true;
        ++w;
    }
}

DataplaneRig::~DataplaneRig() {
    stop();
    nat_.reset();
    workers_.clear();
    channel_.reset();  // after the workers: frees the commands still out
    handoff_.reset();
    inside_.reset();
    outside_.reset();
    rte_mempool_free(pool_);
}

size_t DataplaneRig::poll() {
    size_t work = channel_->poll();
    common::NatEvent event;
    for (auto& ring : event_rings_)
        while (ring->pop(event)) {
            ++events_taken_;
            ++work;
        }
    return work;
}

void DataplaneRig::stop() {
    stop_.store(true, std::memory_order_release);
    if (running_) rte_eal_mp_wait_lcore();
    running_ = false;
}

uint64_t DataplaneRig::mappings() const {
    uint64_t n = 0;
    for (const auto& w : workers_) n += w->nat().mapping_count();
    return n;
}

uint64_t DataplaneRig::held_mappings() const {
    uint64_t n = 0;
    for (const auto& w : workers_) n += w->nat().held_mapping_count();
    return n;
}

uint64_t DataplaneRig::subscribers() const {
    uint64_t n = 0;
    for (const auto& w : workers_) n += w->nat().subscriber_count();
    return n;
}

}  // namespace cgn::bench
