// Subscribers and their limits (RFC 6888): pairing a subscriber with a pool address, port
// allocation in its blocks (claiming new ones), the session quotas and rate, refusals and the
// events they record.
#include "dataplane/nat/nat_engine.hpp"

#include <algorithm>

namespace cgn::dp {

using common::Counter;

std::optional<uint32_t> NatEngine::pair_subscriber(uint32_t addr, Counter* failure) {
    uint64_t slot = 0;
    if (subscriber_table_.lookup(&addr, slot)) return static_cast<uint32_t>(slot);
    auto index = free_subscribers_.take();
    if (!index) {
        fail(Counter::drop_subscriber_table_full, failure);
        return std::nullopt;
    }
    // RFC 7422: a deterministic subscriber's address and port range come from the formula.
    std::optional<common::DeterministicMap::Range> det;
    if (deterministic_ != nullptr) det = deterministic_->forward(common::Ipv4Address{addr});
    auto pool_index = det ? std::optional<uint32_t>(det->pool_index) : pool_.pick_address();
    if (!pool_index) {
        free_subscribers_.give_back(*index);
        fail(Counter::drop_pool_exhausted, failure);
        return std::nullopt;
    }
    if (!subscriber_table_.insert(&addr, *index)) {
        free_subscribers_.give_back(*index);
        fail(Counter::drop_subscriber_table_full, failure);
        return std::nullopt;
    }
    Subscriber& sub = subscribers_[*index];
    sub = Subscriber{};
    sub.addr = addr;
    sub.pool_index = *pool_index;
    sub.first_block = kNoSlot;
    // Full buckets: a new subscriber may start with a second's worth of sessions.
    sub.tokens[0] = uint64_t{limits_.new_sessions_per_second} * 1000;
    for (size_t i = 0; i < kProtocolCount; ++i)
        sub.tokens[1 + i] = uint64_t{limits_.new_sessions_per_second_per_protocol[i]} * 1000;
    sub.tokens_ms = now_ms_;
    sub.quota_event_ms = 0;
    sub.det_first = det ? det->first_port : 0;
    sub.det_last = det ? det->last_port : 0;
    ++subscriber_count_;
    counters_.add(Counter::subscribers_paired);
    return *index;
}

std::optional<uint16_t> NatEngine::allocate_port(uint32_t sub_slot, ProtocolIndex proto, int parity,
                                                 uint64_t now_ms, Counter& reason) {
    Subscriber& sub = subscribers_[sub_slot];
    PortSet& ports = pool_.ports(sub.pool_index, proto);
    auto take = [&](uint32_t id, int want) -> std::optional<uint16_t> {
        auto port = ports.allocate_in(random_, pool_.first_port(id), pool_.last_port(id), want);
        if (port) pool_.port_taken(id);
        return port;
    };
    // A deterministic subscriber's own range first (RFC 7422); past it only with overflow.
    if (sub.det_last != 0) {
        auto port = ports.allocate_in(random_, sub.det_first, sub.det_last, parity);
        if (!port && parity >= 0) port = ports.allocate_in(random_, sub.det_first, sub.det_last);
        if (port) return port;
        if (!deterministic_overflow_) {
            reason = Counter::drop_ports_exhausted;
            return std::nullopt;
        }
    }
    // The subscriber's blocks first (with the wanted parity, RFC 4787 REQ-4, when asked).
    for (uint32_t id = sub.first_block; id != kNoSlot; id = pool_.block_record(id).next)
        if (auto port = take(id, parity)) return port;
    // Then a new block, while the subscriber may have one more (RFC 6888 REQ-4; 0: no limit,
    // as for every field of SubscriberLimits).
    if (limits_.max_blocks == 0 || sub.blocks < limits_.max_blocks) {
        if (auto id = pool_.claim_block(sub.pool_index, sub_slot,
                                        random_.below(pool_.blocks_per_address()), now_ms)) {
            adopt_block(sub_slot, *id);
            if (auto port = take(*id, parity)) return port;
            if (auto port = take(*id, -1)) return port;
        }
        reason = Counter::drop_ports_exhausted;
    } else {
        reason = Counter::drop_quota_blocks;
    }
    // Parity is a preference: any free port of the blocks held before giving up.
    if (parity >= 0)
        for (uint32_t id = sub.first_block; id != kNoSlot; id = pool_.block_record(id).next)
            if (auto port = take(id, -1)) return port;
    return std::nullopt;
}

void NatEngine::adopt_block(uint32_t sub_slot, uint32_t id) {
    Subscriber& sub = subscribers_[sub_slot];
    AddressPool::Block& b = pool_.block_record(id);
    b.next = sub.first_block;
    sub.first_block = id;
    ++sub.blocks;
    counters_.add(Counter::blocks_claimed);
    common::NatEvent e;
    // A deterministic subscriber past its range: the one case its ports need a log.
    e.kind = sub.det_last != 0 ? common::NatEvent::Kind::deterministic_overflow
                               : common::NatEvent::Kind::block_allocated;
    e.subscriber = sub.addr;
    e.external = pool_.address(sub.pool_index);
    e.first_port = pool_.first_port(id);
    e.last_port = pool_.last_port(id);
    record(e);
}

bool NatEngine::admit_session(uint32_t sub_slot, uint32_t mapping, uint8_t protocol,
                              uint64_t now_ms, Counter& reason) {
    Subscriber& sub = subscribers_[sub_slot];
    const size_t pi = static_cast<size_t>(*protocol_index(protocol));
    auto refuse = [&](Counter why, common::NatEvent::Limit limit) {
        reason = why;
        record_refusal(sub_slot, limit, protocol, now_ms);
        return false;
    };
    using Limit = common::NatEvent::Limit;
    // RFC 6888 REQ-5: "A CGN SHOULD support limiting the amount of state memory allocated per
    // mapping and per subscriber": per mapping, its sessions (one per remote endpoint).
    if (mapping != kNoSlot && limits_.max_sessions_per_mapping != 0 &&
        mappings_[mapping].sessions >= limits_.max_sessions_per_mapping)
        return refuse(Counter::drop_quota_mapping_sessions, Limit::mapping_sessions);
    if ((limits_.max_sessions != 0 && sub.sessions >= limits_.max_sessions) ||
        (limits_.max_sessions_per_protocol[pi] != 0 &&
         sub.sessions_by_protocol[pi] >= limits_.max_sessions_per_protocol[pi]))
        return refuse(Counter::drop_quota_sessions, Limit::sessions);
    const uint32_t rate_all = limits_.new_sessions_per_second;
    const uint32_t rate_proto = limits_.new_sessions_per_second_per_protocol[pi];
    if (rate_all == 0 && rate_proto == 0) return true;
    // Token buckets refilled at the rate per second, holding one second's worth: a token is
    // 1000 units and the rate in units per millisecond is the rate per second.
    // A second refills a bucket: more elapsed time adds nothing (and cannot overflow).
    const uint64_t elapsed = std::min<uint64_t>(now_ms - sub.tokens_ms, 1000);
    sub.tokens_ms = now_ms;
    auto refill = [&](uint64_t& tokens, uint32_t rate) {
        if (rate == 0) return;
        const uint64_t cap = uint64_t{rate} * 1000;
        tokens = std::min<uint64_t>(cap, tokens + elapsed * rate);
    };
    refill(sub.tokens[0], rate_all);
    for (size_t i = 0; i < kProtocolCount; ++i)
        refill(sub.tokens[1 + i], limits_.new_sessions_per_second_per_protocol[i]);
    if ((rate_all != 0 && sub.tokens[0] < 1000) || (rate_proto != 0 && sub.tokens[1 + pi] < 1000))
        return refuse(Counter::drop_quota_session_rate, Limit::session_rate);
    if (rate_all != 0) sub.tokens[0] -= 1000;
    if (rate_proto != 0) sub.tokens[1 + pi] -= 1000;
    return true;
}

void NatEngine::record_refusal(uint32_t sub_slot, common::NatEvent::Limit limit, uint8_t protocol,
                               uint64_t now_ms) {
    // RFC 6888 REQ-11: the packet is dropped (counted by the caller), the sender gets
    // destination unreachable (host unreachable; the worker sends it, rate limited, for a
    // packet the caller marked refused), a notification goes to the logs, and no existing
    // mapping is removed to make room.
    Subscriber& sub = subscribers_[sub_slot];
    // One event a second per subscriber at most: a subscriber hammering its limit must not
    // flood the logs (the counters keep the exact number).
    if (sub.quota_event_ms != 0 && now_ms - sub.quota_event_ms < 1000) return;
    sub.quota_event_ms = now_ms == 0 ? 1 : now_ms;
    common::NatEvent e;
    e.kind = common::NatEvent::Kind::quota_exceeded;
    e.subscriber = sub.addr;
    e.external = pool_.address(sub.pool_index);
    e.limit = limit;
    e.protocol = protocol;
    record(e);
}

void NatEngine::record(const common::NatEvent& event) {
    if (events_ == nullptr) return;
    common::NatEvent e = event;
    e.time_ms = now_ms_;
    e.worker = static_cast<uint8_t>(worker_index_);
    if (events_->push(e))
        counters_.add(Counter::events_queued);
    else
        counters_.add(Counter::events_dropped);
}

}  // namespace cgn::dp
