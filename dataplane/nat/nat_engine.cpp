// NatEngine's construction and settings: the tables and slot pools reserved once, the
// deterministic ranges opened, the timeouts. The packet path is in in2out.cpp and out2in.cpp.
#include "dataplane/nat/nat_engine.hpp"

#include <algorithm>
#include <string>

namespace cgn::dp {

using common::Counter;

namespace {

// Refreshing a session relinks it at most this often: precise enough for timeouts of seconds.
constexpr uint64_t kRefreshGranularityMs = 100;

std::string table_name(const char* what, unsigned worker) {
    return std::string("cgn_") + what + "_w" + std::to_string(worker);
}

uint32_t subscriber_capacity(const NatSettings& s) {
    if (s.max_subscribers != 0) return s.max_subscribers;
    return std::max<uint32_t>(16, s.max_sessions / 4);
}

// Mapping::filter_set is 16 bits, 0 meaning none.
uint32_t filter_set_capacity(const NatSettings& s) {
    const uint32_t wanted =
        s.max_filtered_mappings != 0 ? s.max_filtered_mappings
                                     : std::max<uint32_t>(64, s.max_sessions / 16);
    return std::min<uint32_t>(wanted, 65535);
}

}  // namespace

NatEngine::SlotPool::SlotPool(uint32_t capacity) {
    free_.reserve(capacity);
    for (uint32_t i = capacity; i > 0; --i) free_.push_back(i - 1);
}

std::optional<uint32_t> NatEngine::SlotPool::take() {
    if (free_.empty()) return std::nullopt;
    const uint32_t slot = free_.back();
    free_.pop_back();
    return slot;
}

NatEngine::NatEngine(const NatSettings& settings, unsigned worker_id, int socket_id,
                     common::WorkerCounters& counters, uint64_t seed)
    : filtering_(settings.filtering),
      port_parity_(settings.port_parity),
      limits_(settings.limits),
      hold_down_ms_(settings.block_hold_down_ms),
      events_(settings.events),
      deterministic_(settings.deterministic != nullptr && settings.deterministic->enabled()
                         ? settings.deterministic
                         : nullptr),
      deterministic_overflow_(settings.deterministic_overflow),
      worker_index_(settings.worker_index),
      explicit_(settings.explicit_mappings),
      counters_(counters),
      random_(seed),
      own_blocks_(settings.blocks != nullptr
                      ? nullptr
                      : std::make_unique<BlockMap>(settings.port_range, settings.port_block_size,
                                                   settings.workers)),
      blocks_(settings.blocks != nullptr ? *settings.blocks : *own_blocks_),
      pool_(settings.pool, blocks_, settings.worker_index),
      expiry_(settings.max_sessions, kRefreshGranularityMs),
      sessions_(settings.max_sessions),
      mappings_(settings.max_sessions),
      subscribers_(subscriber_capacity(settings)),
      free_sessions_(settings.max_sessions),
      free_mappings_(settings.max_sessions),
      free_subscribers_(subscriber_capacity(settings)),
      filter_sets_(filter_set_capacity(settings)),
      free_filter_sets_(filter_set_capacity(settings)),
      session_table_(table_name("sessions", worker_id), 2 * settings.max_sessions,
                     sizeof(SessionKey), socket_id),
      mapping_table_(table_name("mappings", worker_id), 2 * settings.max_sessions,
                     sizeof(EndpointKey), socket_id),
      filter_table_(table_name("filter", worker_id), settings.max_sessions, sizeof(FilterKey),
                    socket_id),
      subscriber_table_(table_name("subscribers", worker_id), subscriber_capacity(settings),
                        sizeof(uint32_t), socket_id) {
    set_timeouts(settings.timeouts);
    // RFC 7422: the deterministic ranges are open in every worker (each allocates only in the
    // ranges of its own subscribers) and their blocks are never dynamic (the BlockMap owner
    // reserved them).
    if (deterministic_ != nullptr) {
        const uint32_t used = std::min<uint32_t>(deterministic_->addresses_used(),
                                                 static_cast<uint32_t>(pool_.size()));
        for (uint32_t i = 0; i < used; ++i) {
            const uint32_t n = deterministic_->subscribers_on(i);
            if (n == 0) continue;
            const uint32_t first = deterministic_->port_range().first;
            pool_.open_range(
                i, static_cast<uint16_t>(first),
                static_cast<uint16_t>(first + n * deterministic_->ports_per_subscriber() - 1));
        }
    }
}

void NatEngine::set_timeouts(const common::Timeouts& t) {
    // Every session of a class shares the class's timeout, so a change applies to the sessions
    // already there as well: the expiry lists stay ordered.
    expiry_.set_timeout(TimeoutClass::udp, uint64_t{t.udp_s} * 1000);
    expiry_.set_timeout(TimeoutClass::tcp_established, uint64_t{t.tcp_established_s} * 1000);
    expiry_.set_timeout(TimeoutClass::tcp_opening, uint64_t{t.tcp_opening_s} * 1000);
    expiry_.set_timeout(TimeoutClass::tcp_transitory, uint64_t{t.tcp_transitory_s} * 1000);
    expiry_.set_timeout(TimeoutClass::icmp, uint64_t{t.icmp_s} * 1000);
}

}  // namespace cgn::dp
