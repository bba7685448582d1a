// Session and mapping lifecycle: creating dynamic and explicit mappings and their sessions,
// the filter table's counts, expiry of idle sessions and blocks, and releasing sessions,
// mappings and subscribers.
#include "dataplane/nat/nat_engine.hpp"

#include "dataplane/nat/nat_keys.hpp"

namespace cgn::dp {

using common::Counter;

std::optional<uint32_t> NatEngine::create_mapping(Ipv4Packet& p, uint64_t now_ms) {
    Counter reason = Counter::drop_protocol;
    auto slot = new_dynamic_mapping(p.protocol, {p.src, p.src_port}, now_ms, reason);
    if (!slot) {
        drop(reason);
        // RFC 6888 REQ-11: resources exhausted or a quota reached (not so for a protocol the
        // NAT does not translate).
        if (reason != Counter::drop_protocol) p.refused = true;
    }
    return slot;
}

std::optional<uint32_t> NatEngine::new_dynamic_mapping(uint8_t protocol, Endpoint internal,
                                                       uint64_t now_ms, Counter& reason) {
    const auto proto = protocol_index(protocol);
    if (!proto) {
        reason = Counter::drop_protocol;
        return std::nullopt;
    }
    auto sub = pair_subscriber(internal.addr, &reason);
    if (!sub) return std::nullopt;
    const size_t pi = static_cast<size_t>(*proto);
    std::optional<uint32_t> slot;
    if (admit_session(*sub, kNoSlot, protocol, now_ms, reason)) {
        const uint32_t port_limit = limits_.max_ports_per_protocol[pi];
        std::optional<uint16_t> port;
        if (port_limit != 0 && subscribers_[*sub].ports_by_protocol[pi] >= port_limit) {
            reason = Counter::drop_quota_ports;
            record_refusal(*sub, common::NatEvent::Limit::ports, protocol, now_ms);
        } else if (!(port = allocate_port(*sub, *proto, port_parity_ ? (internal.port & 1) : -1,
                                          now_ms, reason))) {
            record_refusal(*sub,
                           reason == Counter::drop_quota_blocks ? common::NatEvent::Limit::blocks
                                                                : common::NatEvent::Limit::pool,
                           protocol, now_ms);
        } else {
            slot = insert_dynamic_mapping(protocol, internal, *sub, *port, now_ms, reason);
        }
    }
    if (!slot) release_subscriber_if_unused(*sub);
    return slot;
}

std::optional<uint32_t> NatEngine::insert_dynamic_mapping(uint8_t protocol, Endpoint internal,
                                                          uint32_t sub_slot, uint16_t port,
                                                          uint64_t now_ms, Counter& reason) {
    Subscriber& sub = subscribers_[sub_slot];
    const auto proto = *protocol_index(protocol);
    auto slot = insert_mapping(protocol, internal, {pool_.address(sub.pool_index), port}, sub_slot,
                               &reason);
    if (!slot) {
        pool_.ports(sub.pool_index, proto).release(port);
        if (auto id = pool_.held_block(sub.pool_index, port)) pool_.port_freed(*id, now_ms);
        return std::nullopt;
    }
    ++sub.mappings;
    ++sub.ports_by_protocol[static_cast<size_t>(proto)];
    return slot;
}

std::optional<uint32_t> NatEngine::create_explicit_mapping(uint8_t protocol, Endpoint internal,
                                                           Endpoint external) {
    // The external port was reserved for it by the control thread (on whichever worker owns
    // its block) when the static mapping was added.
    return insert_mapping(protocol, internal, external, kNoSlot, nullptr);
}

std::optional<uint32_t> NatEngine::insert_mapping(uint8_t protocol, Endpoint internal,
                                                  Endpoint external, uint32_t subscriber,
                                                  Counter* failure) {
    auto slot = free_mappings_.take();
    const EndpointKey in_key = endpoint_key(protocol, internal.addr, internal.port, Side::inside);
    const EndpointKey out_key = endpoint_key(protocol, external.addr, external.port, Side::outside);
    bool ok = slot && mapping_table_.insert(&in_key, *slot);
    if (ok && !mapping_table_.insert(&out_key, *slot)) {
        mapping_table_.erase(&in_key);
        ok = false;
    }
    if (!ok) {
        if (slot) free_mappings_.give_back(*slot);
        // A key never changes hands: an explicit mapping added while the internal endpoint
        // still has its dynamic mapping waits until the control thread's command has dropped
        // that one (an inbound packet meanwhile is refused, not given the dynamic mapping's key).
        uint64_t other = 0;
        fail(mapping_table_.lookup(&in_key, other) || mapping_table_.lookup(&out_key, other)
                 ? Counter::drop_mapping_conflict
                 : Counter::drop_session_table_full,
             failure);
        return std::nullopt;
    }
    mappings_[*slot] = Mapping{
        internal.addr, external.addr, internal.port, external.port, 0, 0, subscriber, protocol, 0,
        0, kNoSlot};
    ++mapping_count_;
    counters_.add(Counter::mappings_created);
    return *slot;
}

bool NatEngine::count_in_filter(const Mapping& m, uint32_t remote_addr, int delta) {
    const FilterKey fk = filter_key(m.protocol, m.ext_addr, m.ext_port, remote_addr);
    uint64_t count = 0;
    filter_table_.lookup(&fk, count);
    if (delta > 0) return filter_table_.assign(&fk, count + 1);
    if (count <= 1)
        filter_table_.erase(&fk);
    else
        filter_table_.assign(&fk, count - 1);
    return true;
}

std::optional<uint32_t> NatEngine::create_session(uint32_t mapping, uint32_t remote_addr,
                                                  uint16_t remote_port, uint64_t now_ms,
                                                  bool inbound, Counter* failure) {
    Mapping& m = mappings_[mapping];
    auto slot = free_sessions_.take();
    const auto [in_key, out_key] = session_keys(m, remote_addr, remote_port);

    bool ok = slot && session_table_.insert(&in_key, *slot);
    if (ok && !session_table_.insert(&out_key, *slot)) {
        session_table_.erase(&in_key);
        ok = false;
    }
    if (ok && !inbound && !count_in_filter(m, remote_addr, +1)) {
        session_table_.erase(&in_key);
        session_table_.erase(&out_key);
        ok = false;
    }
    if (!ok) {
        if (slot) free_sessions_.give_back(*slot);
        fail(Counter::drop_session_table_full, failure);
        // A held (PCP) mapping stays without sessions; any other goes with its last.
        if (m.sessions == 0 && !m.held) release_mapping(mapping);
        return std::nullopt;
    }
    if (inbound) {
        ++m.inbound_sessions;
    } else if (m.subscriber != kNoSlot) {
        Subscriber& sub = subscribers_[m.subscriber];
        ++sub.sessions;
        ++sub.sessions_by_protocol[static_cast<size_t>(*protocol_index(m.protocol))];
    }
    sessions_[*slot] =
        Session{m.int_addr,  m.ext_addr,      remote_addr, m.int_port,       m.ext_port,
                remote_port, m.protocol,      0,           uint8_t{inbound}, uint8_t{inbound},
                mapping,     m.first_session, kNoSlot};
    if (m.first_session != kNoSlot) sessions_[m.first_session].prev_in_mapping = *slot;
    m.first_session = *slot;
    ++m.sessions;
    ++created_in_burst_;
    expiry_.insert(*slot, initial_class(m.protocol), now_ms);
    counters_.add(Counter::sessions_created);
    return *slot;
}

// ---- expiry ----------------------------------------------------------------------------------

uint32_t NatEngine::expire(uint64_t now_ms, uint32_t budget) {
    now_ms_ = now_ms;
    const uint32_t n = expiry_.expire(now_ms, budget, [this](uint32_t session) {
        release_session(session);
        counters_.add(Counter::sessions_expired);
    });
    // RFC 6888 REQ-8: a block idle for the hold-down goes back to the pool.
    pool_.expire_blocks(now_ms, hold_down_ms_, 4,
                        [this](uint32_t id, uint32_t sub) { block_released(id, sub); });
    return n;
}

void NatEngine::block_released(uint32_t id, uint32_t sub_slot) {
    Subscriber& sub = subscribers_[sub_slot];
    // Unlink the block from the subscriber's list (a handful of blocks at most).
    if (sub.first_block == id) {
        sub.first_block = pool_.block_record(id).next;
    } else {
        for (uint32_t b = sub.first_block; b != kNoSlot; b = pool_.block_record(b).next) {
            if (pool_.block_record(b).next == id) {
                pool_.block_record(b).next = pool_.block_record(id).next;
                break;
            }
        }
    }
    --sub.blocks;
    counters_.add(Counter::blocks_released);
    common::NatEvent e;
    e.kind = common::NatEvent::Kind::block_released;
    e.subscriber = sub.addr;
    e.external = pool_.address(sub.pool_index);
    e.first_port = pool_.first_port(id);
    e.last_port = pool_.last_port(id);
    record(e);
    // The AddressPool closes and frees the block after this returns; the subscriber may go.
    if (sub.blocks == 0 && sub.mappings == 0) release_subscriber(sub_slot);
}

void NatEngine::release_session(uint32_t session) {
    const Session& s = sessions_[session];
    Mapping& m = mappings_[s.mapping];
    const auto [in_key, out_key] = session_keys(m, s.remote_addr, s.remote_port);
    session_table_.erase(&in_key);
    session_table_.erase(&out_key);

    if (!s.inbound_only) count_in_filter(m, s.remote_addr, -1);
    if (s.prev_in_mapping != kNoSlot)
        sessions_[s.prev_in_mapping].next_in_mapping = s.next_in_mapping;
    else
        m.first_session = s.next_in_mapping;
    if (s.next_in_mapping != kNoSlot)
        sessions_[s.next_in_mapping].prev_in_mapping = s.prev_in_mapping;
    expiry_.remove(session);
    free_sessions_.give_back(session);
    if (s.opened_inbound) {
        --m.inbound_sessions;
    } else if (m.subscriber != kNoSlot) {
        Subscriber& sub = subscribers_[m.subscriber];
        --sub.sessions;
        --sub.sessions_by_protocol[static_cast<size_t>(*protocol_index(m.protocol))];
    }
    // A held (PCP) mapping outlives its sessions until the PCP mapping is withdrawn
    // (release_held_mapping).
    if (--m.sessions == 0 && !m.held) release_mapping(s.mapping);
}

void NatEngine::release_mapping(uint32_t mapping) {
    Mapping& m = mappings_[mapping];
    clear_peer_filters(m);
    const EndpointKey in_key = endpoint_key(m.protocol, m.int_addr, m.int_port, Side::inside);
    const EndpointKey out_key = endpoint_key(m.protocol, m.ext_addr, m.ext_port, Side::outside);
    mapping_table_.erase(&in_key);
    mapping_table_.erase(&out_key);
    free_mappings_.give_back(mapping);
    --mapping_count_;
    counters_.add(Counter::mappings_removed);
    // An explicit mapping's port stays reserved for it while the static mapping exists.
    if (m.subscriber == kNoSlot) return;
    Subscriber& sub = subscribers_[m.subscriber];
    const auto proto = *protocol_index(m.protocol);
    pool_.ports(sub.pool_index, proto).release(m.ext_port);
    --sub.ports_by_protocol[static_cast<size_t>(proto)];
    --sub.mappings;
    // The block stays with the subscriber until its hold-down has passed (expire()).
    if (auto id = pool_.held_block(sub.pool_index, m.ext_port)) pool_.port_freed(*id, now_ms_);
    release_subscriber_if_unused(m.subscriber);
}

void NatEngine::release_subscriber_if_unused(uint32_t subscriber) {
    const Subscriber& sub = subscribers_[subscriber];
    if (sub.mappings == 0 && sub.blocks == 0) release_subscriber(subscriber);
}

void NatEngine::release_subscriber(uint32_t subscriber) {
    const Subscriber& sub = subscribers_[subscriber];
    subscriber_table_.erase(&sub.addr);
    free_subscribers_.give_back(subscriber);
    --subscriber_count_;
}

}  // namespace cgn::dp
