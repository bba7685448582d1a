#include "tests/dataplane/harness.hpp"

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "dataplane/io/port.hpp"

namespace cgn::test {

namespace {
unsigned g_instance = 0;  // unique names for rings, ports, pools and tables
}

DataplaneHarness::DataplaneHarness(unsigned workers, unsigned mbufs, unsigned ring_size)
    : workers_(workers) {
    const unsigned id = ++g_instance;
    pool_ = rte_pktmbuf_pool_create(("tmb" + std::to_string(id)).c_str(), mbufs, 0, 0,
                                    RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (pool_ == nullptr) throw std::runtime_error("cannot create mbuf pool");
    const auto queues = static_cast<uint16_t>(workers);
    inside_ = std::make_unique<dp::RingPort>("tin" + std::to_string(id), pool_, ring_size, queues);
    outside_ =
        std::make_unique<dp::RingPort>("tout" + std::to_string(id), pool_, ring_size, queues);
    if (workers > 1)
        handoff_ = std::make_unique<dp::HandoffRings>("tho" + std::to_string(id), workers, 1024,
                                                      SOCKET_ID_ANY);
    for (unsigned w = 0; w < workers; ++w)
        counters_.push_back(std::make_unique<common::WorkerCounters>());
    settings_.worker_id = 1000 + id * 16;
    settings_.workers = workers;
    settings_.handoff = handoff_.get();
    settings_.socket_id = SOCKET_ID_ANY;
    settings_.seed = 42 + id;
    settings_.inside = {inside_->port_id(), 0, 0, inside_->mac(), topo_.inside, std::nullopt};
    settings_.outside = {outside_->port_id(), 0, 0, outside_->mac(), topo_.outside, topo_.gateway};
    settings_.nat.pool = {topo_.pool};
    settings_.nat.max_sessions = 1024;
    settings_.nat.workers = workers;
    settings_.neighbor_capacity = 64;
}

DataplaneHarness::~DataplaneHarness() {
    controller_.reset();
    workers_list_.clear();
    channel_.reset();
    handoff_.reset();
    inside_.reset();
    outside_.reset();
    rte_mempool_free(pool_);
}

void DataplaneHarness::start(bool with_control, dp::WhileWaiting while_waiting) {
    // The port blocks every worker (and the controller) claims in.
    blocks_ = std::make_unique<dp::BlockMap>(settings_.nat.port_range,
                                             settings_.nat.port_block_size);
    settings_.nat.blocks = blocks_.get();
    if (const common::DeterministicMap* det = settings_.nat.deterministic) {
        for (uint32_t i = 0; i < det->addresses_used(); ++i)
            for (uint32_t b = 0; b < det->first_dynamic_block(i); ++b) blocks_->reserve(i, b);
    }
    for (unsigned w = 0; w < workers_; ++w)
        events_.push_back(std::make_unique<common::EventRing>(1024));
    if (with_control) {
        auto initial = std::make_unique<dp::RuntimeSettings>();
        initial->filtering = settings_.nat.filtering;
        initial->timeouts = settings_.nat.timeouts;
        initial->limits = settings_.nat.limits;
        initial->block_hold_down_ms = settings_.nat.block_hold_down_ms;
        channel_ = std::make_unique<dp::ControlChannel>(workers_, SOCKET_ID_ANY,
                                                        std::move(initial), 1024, *blocks_);
        settings_.control = channel_.get();
        settings_.nat.explicit_mappings = &channel_->explicit_mappings();
    }
    for (unsigned w = 0; w < workers_; ++w) {
        dp::WorkerSettings ws = settings_;
        ws.worker_id = settings_.worker_id + w;
        ws.worker_index = w;
        ws.nat.worker_index = w;
        ws.seed = settings_.seed + w;
        ws.nat.events = events_[w].get();
        ws.inside.rx_queue = ws.inside.tx_queue = static_cast<uint16_t>(w);
        ws.outside.rx_queue = ws.outside.tx_queue = static_cast<uint16_t>(w);
        workers_list_.push_back(std::make_unique<dp::Worker>(ws, pool_, *counters_[w], clock_));
    }
    if (with_control) {
        common::Config config;
        config.inside_address = topo_.inside;
        config.outside_address = topo_.outside;
        config.outside_gateway = topo_.gateway;
        config.inside_mtu = settings_.inside.mtu;
        config.outside_mtu = settings_.outside.mtu;
        config.pool = settings_.nat.pool;
        config.port_range = settings_.nat.port_range;
        config.filtering = settings_.nat.filtering;
        config.timeouts = settings_.nat.timeouts;
        config.limits = settings_.nat.limits;
        config.port_block_size = settings_.nat.port_block_size;
        config.block_hold_down_s = static_cast<uint32_t>(settings_.nat.block_hold_down_ms / 1000);
        controller_ = std::make_unique<ctl::Controller>(
            *channel_, config, [] { return std::string("(counters)\n"); },
            while_waiting ? std::move(while_waiting) : dp::WhileWaiting([this] { poll(); }));
    }
}

uint64_t DataplaneHarness::counter(common::Counter c) const {
    uint64_t sum = 0;
    for (const auto& w : counters_) sum += w->get(c);
    return sum;
}

common::CounterSnapshot DataplaneHarness::counters() const {
    std::vector<const common::WorkerCounters*> all;
    for (const auto& w : counters_) all.push_back(w.get());
    return common::sum_counters(all);
}

common::FrameBalance DataplaneHarness::frame_balance() const {
    common::FrameHeld held;
    for (const auto& w : workers_list_) held += w->held_frames();
    return common::frame_balance(counters(), held);
}

std::optional<std::pair<uint32_t, uint16_t>> DataplaneHarness::find_mapping(uint8_t protocol,
                                                                            uint32_t addr,
                                                                            uint16_t port) const {
    for (const auto& w : workers_list_)
        if (auto m = w->nat().find_mapping(protocol, addr, port)) return m;
    return std::nullopt;
}

void DataplaneHarness::poll(int iterations) {
    for (int i = 0; i < iterations; ++i)
        for (auto& w : workers_list_) w->poll_once();
}

void DataplaneHarness::resolve_neighbors() {
    // Subscribers announce themselves by asking for their gateway (RFC 826 merge).
    inside().inject(arp_request(topo_.subscriber1_mac, topo_.subscriber1, topo_.inside.address));
    inside().inject(arp_request(topo_.subscriber2_mac, topo_.subscriber2, topo_.inside.address));
    // The outside gateway announces itself the same way.
    outside().inject(arp_request(topo_.gateway_mac, topo_.gateway, topo_.outside.address));
    poll(2);  // the receiving worker answers and passes copies to the others
    inside().drain();
    outside().drain();
}

Frame arp_request(common::MacAddress sender_mac, common::Ipv4Address sender_ip,
                  common::Ipv4Address target_ip) {
    return common::PacketBuilder()
        .ethernet(sender_mac, common::MacAddress::broadcast())
        .arp(common::arp::kOpRequest, sender_mac, sender_ip, common::MacAddress{}, target_ip)
        .build();
}

Frame arp_reply(common::MacAddress sender_mac, common::Ipv4Address sender_ip,
                common::MacAddress target_mac, common::Ipv4Address target_ip) {
    return common::PacketBuilder()
        .ethernet(sender_mac, target_mac)
        .arp(common::arp::kOpReply, sender_mac, sender_ip, target_mac, target_ip)
        .build();
}

bool is_arp_request_for(const Frame& f, common::Ipv4Address target) {
    namespace arp = common::arp;
    if (f.size() < common::eth::kHeaderLength + arp::kLength) return false;
    const uint8_t* a = f.data() + common::eth::kHeaderLength;
    return common::load_be16(f.data() + common::eth::kType) == common::eth::kTypeArp &&
           common::load_be16(a + arp::kOperation) == arp::kOpRequest &&
           common::load_be32(a + arp::kTargetIp) == target.value;
}

std::string hex(const Frame& f) {
    std::string out;
    char b[4];
    for (size_t i = 0; i < f.size(); ++i) {
        std::snprintf(b, sizeof b, "%02x", f[i]);
        out += b;
        out += (i % 16 == 15) ? '\n' : ' ';
    }
    return out;
}

}  // namespace cgn::test
