#include "dataplane/nat/nat_engine.hpp"

#include <algorithm>
#include <string>

#include "common/headers.hpp"
#include "dataplane/nat/rewrite.hpp"
#include "dataplane/nat/tcp_state.hpp"

namespace cgn::dp {

using common::Counter;
using common::FilteringMode;
namespace ipv4 = common::ipv4;

namespace {

// Refreshing a session relinks it at most this often: precise enough for timeouts of seconds.
constexpr uint64_t kRefreshGranularityMs = 100;

TimeoutClass initial_class(uint8_t protocol) {
    switch (protocol) {
        case ipv4::kProtoTcp:
            return tcp_state::timeout_class(tcp_state::kClosed);
        case ipv4::kProtoIcmp:
            return TimeoutClass::icmp;
        default:
            return TimeoutClass::udp;
    }
}

// ICMP query sessions have no remote port: the identifier is the only "port" (RFC 5508 §3.1).
uint16_t remote_port_of(uint8_t protocol, uint16_t port) {
    return protocol == ipv4::kProtoIcmp ? 0 : port;
}

SessionKey inside_key(const Ipv4Packet& p) {
    SessionKey k;
    k.local_addr = p.src;
    k.remote_addr = p.dst;
    k.local_port = p.src_port;
    k.remote_port = remote_port_of(p.protocol, p.dst_port);
    k.protocol = p.protocol;
    k.side = Side::inside;
    return k;
}

SessionKey outside_key(const Ipv4Packet& p) {
    SessionKey k;
    k.local_addr = p.dst;
    k.remote_addr = p.src;
    k.local_port = p.dst_port;
    k.remote_port = remote_port_of(p.protocol, p.src_port);
    k.protocol = p.protocol;
    k.side = Side::outside;
    return k;
}

EndpointKey endpoint_key(uint8_t protocol, uint32_t addr, uint16_t port, Side side) {
    EndpointKey k;
    k.addr = addr;
    k.port = port;
    k.protocol = protocol;
    k.side = side;
    return k;
}

FilterKey filter_key(uint8_t protocol, uint32_t ext_addr, uint16_t ext_port, uint32_t remote) {
    FilterKey k;
    k.external_addr = ext_addr;
    k.remote_addr = remote;
    k.external_port = ext_port;
    k.protocol = protocol;
    return k;
}

// The two keys of a session: its inside 5-tuple and its outside 5-tuple.
template <class Mapping>
std::pair<SessionKey, SessionKey> session_keys(const Mapping& m, uint32_t remote_addr,
                                               uint16_t remote_port) {
    SessionKey in_key;
    in_key.local_addr = m.int_addr;
    in_key.remote_addr = remote_addr;
    in_key.local_port = m.int_port;
    in_key.remote_port = remote_port;
    in_key.protocol = m.protocol;
    in_key.side = Side::inside;
    SessionKey out_key = in_key;
    out_key.local_addr = m.ext_addr;
    out_key.local_port = m.ext_port;
    out_key.side = Side::outside;
    return {in_key, out_key};
}

std::string table_name(const char* what, unsigned worker) {
    return std::string("cgn_") + what + "_w" + std::to_string(worker);
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

namespace {
uint32_t subscriber_capacity(const NatSettings& s) {
    if (s.max_subscribers != 0) return s.max_subscribers;
    return std::max<uint32_t>(16, s.max_sessions / 4);
}
}  // namespace

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
                      : std::make_unique<BlockMap>(settings.port_range, settings.port_block_size)),
      blocks_(settings.blocks != nullptr ? *settings.blocks : *own_blocks_),
      pool_(settings.pool, blocks_, settings.worker_index),
      expiry_(settings.max_sessions, kRefreshGranularityMs),
      sessions_(settings.max_sessions),
      mappings_(settings.max_sessions),
      subscribers_(subscriber_capacity(settings)),
      free_sessions_(settings.max_sessions),
      free_mappings_(settings.max_sessions),
      free_subscribers_(subscriber_capacity(settings)),
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
            pool_.open_range(i, static_cast<uint16_t>(first),
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

// ---- fast path -------------------------------------------------------------------------------

void NatEngine::in2out(Ipv4Packet* const* packets, unsigned n, uint64_t now_ms, bool* forward) {
    now_ms_ = now_ms;
    translate_burst<true>(packets, n, now_ms, forward);
}

void NatEngine::out2in(Ipv4Packet* const* packets, unsigned n, uint64_t now_ms, bool* forward) {
    now_ms_ = now_ms;
    translate_burst<false>(packets, n, now_ms, forward);
}

// Fast path: the keys of up to 64 packets, one bulk lookup, then each hit is rewritten; a miss
// goes to the slow path.
template <bool kFromInside>
void NatEngine::translate_burst(Ipv4Packet* const* packets, unsigned n, uint64_t now_ms,
                                bool* forward) {
    for (unsigned base = 0; base < n; base += HashTable::kMaxBulk) {
        const unsigned count = std::min(n - base, HashTable::kMaxBulk);
        SessionKey keys[HashTable::kMaxBulk];
        const void* key_ptrs[HashTable::kMaxBulk];
        uint64_t slots[HashTable::kMaxBulk];
        for (unsigned i = 0; i < count; ++i) {
            keys[i] =
                kFromInside ? inside_key(*packets[base + i]) : outside_key(*packets[base + i]);
            key_ptrs[i] = &keys[i];
        }
        const uint64_t hits = session_table_.lookup_bulk(key_ptrs, count, slots);
        created_in_burst_ = 0;
        // The sessions (and their timer entries) of a large table are rarely in cache: start
        // every load of the burst before the first is needed.
        for (unsigned i = 0; i < count; ++i) {
            if (hits & (uint64_t{1} << i)) {
                __builtin_prefetch(&sessions_[slots[i]], 1);
                expiry_.prefetch(static_cast<uint32_t>(slots[i]));
            }
        }
        for (unsigned i = 0; i < count; ++i) {
            Ipv4Packet& p = *packets[base + i];
            if (hits & (uint64_t{1} << i)) {
                if constexpr (kFromInside) {
                    translate_in2out(p, static_cast<uint32_t>(slots[i]), now_ms);
                    forward[base + i] = true;
                } else {
                    forward[base + i] =
                        translate_out2in(p, static_cast<uint32_t>(slots[i]), now_ms);
                }
            } else {
                forward[base + i] = kFromInside ? slow_in2out(p, now_ms) : slow_out2in(p, now_ms);
            }
        }
    }
}

void NatEngine::translate_in2out(Ipv4Packet& p, uint32_t session, uint64_t now_ms) {
    Session& s = sessions_[session];
    rewrite_source(p, s.ext_addr, s.ext_port);
    // The subscriber answers: from now on it has sent to this remote endpoint. Not so for a
    // packet that does not refresh the session (RFC 7857 §7.1: an RST "sent as a response to
    // inbound packets"): it must not open the filter to the host it refuses.
    if (refresh(session, p, true, now_ms) && s.inbound_only) {
        s.inbound_only = 0;
        count_in_filter(mappings_[s.mapping], s.remote_addr, +1);
    }
    counters_.add(Counter::in2out_translated);
}

bool NatEngine::translate_out2in(Ipv4Packet& p, uint32_t session, uint64_t now_ms) {
    const Session& s = sessions_[session];
    // RFC 4787 REQ-8 with a mode that may have changed since the session was let in.
    if (s.inbound_only && filtering_ != FilteringMode::endpoint_independent &&
        !inbound_allowed(mappings_[s.mapping], p.src)) {
        drop(Counter::drop_out2in_filtered);
        return false;
    }
    rewrite_destination(p, s.int_addr, s.int_port);
    refresh(session, p, false, now_ms);
    counters_.add(Counter::out2in_translated);
    return true;
}

// Restarts the idle timer; for TCP, steps the session's state machine (tcp_state.hpp), which
// says whether the segment restarts the timer and may move the session to another timeout
// class. Returns whether the timer restarted.
bool NatEngine::refresh(uint32_t session, const Ipv4Packet& p, bool from_inside, uint64_t now_ms) {
    if (p.protocol == ipv4::kProtoTcp) {
        Session& s = sessions_[session];
        const tcp_state::Step step = tcp_state::step(s.tcp, p.tcp_flags, from_inside);
        s.tcp = step.state;
        // Only a step that restarts the timer changes the class (a step that keeps the timer
        // keeps the state).
        if (!step.restart_timer) return false;
        const TimeoutClass c = tcp_state::timeout_class(step.state);
        if (c != expiry_.class_of(session)) {
            expiry_.change_class(session, c, now_ms);
            return true;
        }
    }
    expiry_.touch(session, now_ms);
    return true;
}

bool NatEngine::translate_icmp_error(Ipv4Packet& p, bool from_inside) {
    SessionKey key;
    key.protocol = p.inner_protocol;
    if (from_inside) {
        // The quote is an inbound packet as the subscriber received it: remote -> internal.
        key.local_addr = p.inner_dst;
        key.local_port = p.inner_dst_port;
        key.remote_addr = p.inner_src;
        key.remote_port = remote_port_of(p.inner_protocol, p.inner_src_port);
        key.side = Side::inside;
    } else {
        // The quote is an outbound packet as it left us: external -> remote, and the error
        // came back to its source.
        key.local_addr = p.inner_src;
        key.local_port = p.inner_src_port;
        key.remote_addr = p.inner_dst;
        key.remote_port = remote_port_of(p.inner_protocol, p.inner_dst_port);
        key.side = Side::outside;
    }
    uint64_t slot = 0;
    if ((!from_inside && p.dst != p.inner_src) || !session_table_.lookup(&key, slot)) {
        drop(Counter::drop_icmp_error_no_session);
        return false;
    }
    const Session& s = sessions_[slot];
    if (from_inside)
        rewrite_icmp_error_in2out(p, s.ext_addr, s.ext_port);
    else
        rewrite_icmp_error_out2in(p, s.int_addr, s.int_port);
    counters_.add(Counter::icmp_errors_translated);
    return true;
}

// ---- slow path -------------------------------------------------------------------------------

bool NatEngine::slow_in2out(Ipv4Packet& p, uint64_t now_ms) {
    // RFC 5508 §3.1: only echo requests open an ICMP query mapping from inside (a later
    // fragment has no ICMP header: its first fragment was an echo).
    if (p.protocol == ipv4::kProtoIcmp && p.l4_header &&
        p.icmp_type != common::icmp::kEchoRequest) {
        drop(Counter::drop_icmp_type);
        return false;
    }
    // An earlier packet of this burst may have created the session since the bulk lookup.
    const SessionKey key = inside_key(p);
    uint64_t slot = 0;
    if (created_in_burst_ != 0 && session_table_.lookup(&key, slot)) {
        translate_in2out(p, static_cast<uint32_t>(slot), now_ms);
        return true;
    }
    // Only a first fragment (or a whole packet) may open a session: a later fragment whose
    // first was refused has nothing to follow.
    if (!p.l4_header) {
        drop(Counter::drop_fragment_no_session);
        return false;
    }
    const EndpointKey ek = endpoint_key(p.protocol, p.src, p.src_port, Side::inside);
    uint64_t mapping = 0;
    if (!mapping_table_.lookup(&ek, mapping)) {
        // An explicit (static) mapping of this internal endpoint fixes its external one.
        std::optional<uint32_t> created;
        if (auto external = explicit_lookups()
                                ? explicit_->external_of(p.protocol, {p.src, p.src_port})
                                : std::nullopt)
            created = create_explicit_mapping(p.protocol, {p.src, p.src_port}, *external);
        else
            created = create_mapping(p, now_ms);
        if (!created) return false;
        mapping = *created;
    } else if (const uint32_t sub = mappings_[mapping].subscriber; sub != kNoSlot) {
        if (!admit_session(sub, static_cast<uint32_t>(mapping), *protocol_index(p.protocol), p,
                           true, now_ms))
            return false;
    }
    auto session = create_session(static_cast<uint32_t>(mapping), p.dst,
                                  remote_port_of(p.protocol, p.dst_port), now_ms, false);
    if (!session) return false;
    translate_in2out(p, *session, now_ms);
    return true;
}

bool NatEngine::slow_out2in(Ipv4Packet& p, uint64_t now_ms) {
    // From outside, an echo reply answers a subscriber's query. An echo request opens a query
    // session only towards a one-to-one mapped subscriber (Basic NAT: RFC 5508 REQ-7 asks
    // that hairpinned queries reach it; a NAPT address has no host to ask).
    if (p.protocol == ipv4::kProtoIcmp && p.l4_header &&
        p.icmp_type != common::icmp::kEchoReply &&
        !(p.icmp_type == common::icmp::kEchoRequest && explicit_lookups() &&
          explicit_->internal_of(p.protocol, {p.dst, p.dst_port}))) {
        drop(Counter::drop_icmp_type);
        return false;
    }
    const SessionKey key = outside_key(p);
    uint64_t slot = 0;
    if (created_in_burst_ != 0 && session_table_.lookup(&key, slot))
        return translate_out2in(p, static_cast<uint32_t>(slot), now_ms);
    if (!p.l4_header) {
        drop(Counter::drop_fragment_no_session);
        return false;
    }
    const EndpointKey ek = endpoint_key(p.protocol, p.dst, p.dst_port, Side::outside);
    uint64_t mapping = 0;
    if (!mapping_table_.lookup(&ek, mapping)) {
        // A static mapping accepts inbound traffic before its subscriber has sent anything.
        auto internal = explicit_lookups() ? explicit_->internal_of(p.protocol, {p.dst, p.dst_port})
                                           : std::nullopt;
        auto created = internal
                           ? create_explicit_mapping(p.protocol, *internal, {p.dst, p.dst_port})
                           : std::nullopt;
        if (!created) {
            if (!internal) drop(Counter::drop_out2in_no_mapping);
            return false;
        }
        mapping = *created;
    }
    if (!inbound_allowed(mappings_[mapping], p.src)) {
        drop(Counter::drop_out2in_filtered);
        return false;
    }
    // RFC 7857 §2 adopts the RFC 6146 state machine (§3.5.2.2): in the CLOSED state only a SYN
    // opens a session. Any other unsolicited segment (an ACK, a FIN, an RST, a SYN-ACK) has no
    // connection to belong to and opens nothing.
    if (p.protocol == ipv4::kProtoTcp &&
        (p.tcp_flags & (common::tcp::kSyn | common::tcp::kAck_ | common::tcp::kRst)) !=
            common::tcp::kSyn) {
        drop(Counter::drop_out2in_tcp_not_syn);
        return false;
    }
    if (const uint32_t sub = mappings_[mapping].subscriber;
        sub != kNoSlot && !admit_inbound_session(sub, static_cast<uint32_t>(mapping), p, now_ms))
        return false;
    auto session = create_session(static_cast<uint32_t>(mapping), p.src,
                                  remote_port_of(p.protocol, p.src_port), now_ms, true);
    if (!session) return false;
    counters_.add(Counter::sessions_created_inbound);
    return translate_out2in(p, *session, now_ms);
}

bool NatEngine::inbound_allowed(const Mapping& m, uint32_t remote_addr) const {
    // An explicit mapping is there to be reached from outside: no filtering (RFC 6887 §11.3
    // gives a MAP mapping endpoint-independent filtering; a static mapping is the same).
    if (m.subscriber == kNoSlot) return true;
    switch (filtering_) {
        case FilteringMode::endpoint_independent:
            return true;
        case FilteringMode::address_dependent: {
            const FilterKey fk = filter_key(m.protocol, m.ext_addr, m.ext_port, remote_addr);
            uint64_t count = 0;
            return filter_table_.lookup(&fk, count) && count > 0;
        }
        case FilteringMode::address_and_port_dependent:
            // Only an exact session match passes, and that was the fast path's lookup.
            return false;
    }
    return false;
}

std::optional<uint32_t> NatEngine::pair_subscriber(uint32_t addr) {
    uint64_t slot = 0;
    if (subscriber_table_.lookup(&addr, slot)) return static_cast<uint32_t>(slot);
    auto index = free_subscribers_.take();
    if (!index) {
        drop(Counter::drop_subscriber_table_full);
        return std::nullopt;
    }
    // RFC 7422: a deterministic subscriber's address and port range come from the formula.
    std::optional<common::DeterministicMap::Range> det;
    if (deterministic_ != nullptr) det = deterministic_->forward(common::Ipv4Address{addr});
    auto pool_index = det ? std::optional<uint32_t>(det->pool_index) : pool_.pick_address();
    if (!pool_index) {
        free_subscribers_.give_back(*index);
        drop(Counter::drop_pool_exhausted);
        return std::nullopt;
    }
    if (!subscriber_table_.insert(&addr, *index)) {
        free_subscribers_.give_back(*index);
        drop(Counter::drop_subscriber_table_full);
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

std::optional<uint32_t> NatEngine::create_mapping(Ipv4Packet& p, uint64_t now_ms) {
    const auto proto = protocol_index(p.protocol);
    if (!proto) {
        drop(Counter::drop_protocol);
        return std::nullopt;
    }
    auto sub = pair_subscriber(p.src);
    if (!sub) {
        p.refused = true;  // RFC 6888 REQ-11: resources exhausted
        return std::nullopt;
    }
    const size_t pi = static_cast<size_t>(*proto);
    std::optional<uint32_t> slot;
    if (admit_session(*sub, kNoSlot, *proto, p, true, now_ms)) {
        const uint32_t port_limit = limits_.max_ports_per_protocol[pi];
        Counter reason = Counter::drop_ports_exhausted;
        std::optional<uint16_t> port;
        if (port_limit != 0 && subscribers_[*sub].ports_by_protocol[pi] >= port_limit) {
            refuse(*sub, Counter::drop_quota_ports, common::NatEvent::Limit::ports, p, true,
                   now_ms);
        } else if (!(port = allocate_port(*sub, *proto, port_parity_ ? (p.src_port & 1) : -1,
                                          now_ms, reason))) {
            refuse(*sub, reason,
                   reason == Counter::drop_quota_blocks ? common::NatEvent::Limit::blocks
                                                        : common::NatEvent::Limit::pool,
                   p, true, now_ms);
        } else {
            const Subscriber& subscriber = subscribers_[*sub];
            slot = insert_mapping(p.protocol, {p.src, p.src_port},
                                  {pool_.address(subscriber.pool_index), *port}, *sub);
            if (!slot) {
                pool_.ports(subscriber.pool_index, *proto).release(*port);
                if (auto id = pool_.held_block(subscriber.pool_index, *port))
                    pool_.port_freed(*id, now_ms);
                p.refused = true;
            }
        }
    }
    if (!slot) {
        release_subscriber_if_unused(*sub);
        return std::nullopt;
    }
    Subscriber& subscriber = subscribers_[*sub];
    ++subscriber.mappings;
    ++subscriber.ports_by_protocol[pi];
    return slot;
}

std::optional<uint16_t> NatEngine::allocate_port(uint32_t sub_slot, ProtocolIndex proto,
                                                 int parity, uint64_t now_ms, Counter& reason) {
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
            AddressPool::Block& b = pool_.block_record(*id);
            b.next = sub.first_block;
            sub.first_block = *id;
            ++sub.blocks;
            counters_.add(Counter::blocks_claimed);
            common::NatEvent e;
            // A deterministic subscriber past its range: the one case its ports need a log.
            e.kind = sub.det_last != 0 ? common::NatEvent::Kind::deterministic_overflow
                                       : common::NatEvent::Kind::block_allocated;
            e.subscriber = sub.addr;
            e.external = pool_.address(sub.pool_index);
            e.first_port = pool_.first_port(*id);
            e.last_port = pool_.last_port(*id);
            record(e);
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

bool NatEngine::admit_session(uint32_t sub_slot, uint32_t mapping, ProtocolIndex proto,
                              Ipv4Packet& p, bool from_inside, uint64_t now_ms) {
    Subscriber& sub = subscribers_[sub_slot];
    const size_t pi = static_cast<size_t>(proto);
    using Limit = common::NatEvent::Limit;
    // RFC 6888 REQ-5: "A CGN SHOULD support limiting the amount of state memory allocated per
    // mapping and per subscriber": per mapping, its sessions (one per remote endpoint).
    if (mapping != kNoSlot && limits_.max_sessions_per_mapping != 0 &&
        mappings_[mapping].sessions >= limits_.max_sessions_per_mapping) {
        refuse(sub_slot, Counter::drop_quota_mapping_sessions, Limit::mapping_sessions, p,
               from_inside, now_ms);
        return false;
    }
    if ((limits_.max_sessions != 0 && sub.sessions >= limits_.max_sessions) ||
        (limits_.max_sessions_per_protocol[pi] != 0 &&
         sub.sessions_by_protocol[pi] >= limits_.max_sessions_per_protocol[pi])) {
        refuse(sub_slot, Counter::drop_quota_sessions, Limit::sessions, p, from_inside, now_ms);
        return false;
    }
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
    if ((rate_all != 0 && sub.tokens[0] < 1000) ||
        (rate_proto != 0 && sub.tokens[1 + pi] < 1000)) {
        refuse(sub_slot, Counter::drop_quota_session_rate, Limit::session_rate, p, from_inside,
               now_ms);
        return false;
    }
    if (rate_all != 0) sub.tokens[0] -= 1000;
    if (rate_proto != 0) sub.tokens[1 + pi] -= 1000;
    return true;
}

// Sessions opened from outside have limits of their own, per mapping, and take nothing of the
// subscriber's session limits or new-session rate: a remote host spraying a mapped endpoint
// from many ports must not lock the subscriber out of its own outbound sessions.
bool NatEngine::admit_inbound_session(uint32_t sub_slot, uint32_t mapping, Ipv4Packet& p,
                                      uint64_t now_ms) {
    const Mapping& m = mappings_[mapping];
    using Limit = common::NatEvent::Limit;
    if (limits_.max_sessions_per_mapping != 0 && m.sessions >= limits_.max_sessions_per_mapping) {
        refuse(sub_slot, Counter::drop_quota_mapping_sessions, Limit::mapping_sessions, p, false,
               now_ms);
        return false;
    }
    if (limits_.max_inbound_sessions_per_mapping != 0 &&
        m.inbound_sessions >= limits_.max_inbound_sessions_per_mapping) {
        refuse(sub_slot, Counter::drop_quota_inbound_sessions, Limit::inbound_sessions, p, false,
               now_ms);
        return false;
    }
    return true;
}

void NatEngine::refuse(uint32_t sub_slot, Counter reason, common::NatEvent::Limit limit,
                       Ipv4Packet& p, bool from_inside, uint64_t now_ms) {
    drop(reason);
    // RFC 6888 REQ-11: the packet is dropped, the sender gets destination unreachable (host
    // unreachable; the worker sends it, rate limited), a notification goes to the logs, and no
    // existing mapping is removed to make room.
    if (from_inside) p.refused = true;
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
    e.protocol = p.protocol;
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

std::optional<uint32_t> NatEngine::create_explicit_mapping(uint8_t protocol, Endpoint internal,
                                                           Endpoint external) {
    // The external port was reserved for it by the control thread (on whichever worker owns
    // its block) when the static mapping was added.
    return insert_mapping(protocol, internal, external, kNoSlot);
}

std::optional<uint32_t> NatEngine::insert_mapping(uint8_t protocol, Endpoint internal,
                                                  Endpoint external, uint32_t subscriber) {
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
        drop(mapping_table_.lookup(&in_key, other) || mapping_table_.lookup(&out_key, other)
                 ? Counter::drop_mapping_conflict
                 : Counter::drop_session_table_full);
        return std::nullopt;
    }
    mappings_[*slot] = Mapping{internal.addr, external.addr, internal.port, external.port, 0, 0,
                               subscriber,    protocol,      kNoSlot};
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
                                                  bool inbound) {
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
        drop(Counter::drop_session_table_full);
        if (m.sessions == 0) release_mapping(mapping);
        return std::nullopt;
    }
    if (inbound) {
        ++m.inbound_sessions;
    } else if (m.subscriber != kNoSlot) {
        Subscriber& sub = subscribers_[m.subscriber];
        ++sub.sessions;
        ++sub.sessions_by_protocol[static_cast<size_t>(*protocol_index(m.protocol))];
    }
    sessions_[*slot] = Session{m.int_addr,   m.ext_addr, remote_addr,     m.int_port,
                               m.ext_port,   remote_port, m.protocol,     0,
                               uint8_t{inbound}, uint8_t{inbound}, mapping, m.first_session,
                               kNoSlot};
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
    if (--m.sessions == 0) release_mapping(s.mapping);
}

void NatEngine::release_mapping(uint32_t mapping) {
    const Mapping& m = mappings_[mapping];
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

uint32_t NatEngine::drop_mapping(uint8_t protocol, uint32_t addr, uint16_t port,
                                 MappingKind kind) {
    const EndpointKey k = endpoint_key(protocol, addr, port, Side::inside);
    uint64_t slot = 0;
    if (!mapping_table_.lookup(&k, slot)) return 0;
    // The command names the mapping it means: the dynamic one an explicit mapping replaces
    // must not take the explicit one with it when that was made first.
    if ((mappings_[slot].subscriber == kNoSlot) != (kind == MappingKind::explicit_mapping))
        return 0;
    // Releasing the last session releases the mapping: count first, then walk.
    const uint32_t n = mappings_[slot].sessions;
    for (uint32_t i = 0; i < n; ++i) release_session(mappings_[slot].first_session);
    return n;
}

bool NatEngine::drop_address(uint32_t addr, uint32_t& cursor, uint32_t budget) {
    const auto end = static_cast<uint32_t>(
        std::min<size_t>(mappings_.size(), size_t{cursor} + budget));
    for (uint32_t slot = cursor; slot < end; ++slot) {
        const Mapping& m = mappings_[slot];
        if (m.int_addr != addr) continue;
        // A free slot keeps its old contents: the table says whether it is this mapping.
        const EndpointKey k = endpoint_key(m.protocol, m.int_addr, m.int_port, Side::inside);
        uint64_t found = 0;
        if (!mapping_table_.lookup(&k, found) || found != slot) continue;
        drop_mapping(m.protocol, m.int_addr, m.int_port,
                     m.subscriber == kNoSlot ? MappingKind::explicit_mapping
                                             : MappingKind::dynamic_mapping);
    }
    cursor = end;
    return end == mappings_.size();
}

int NatEngine::reserve_external_port(uint8_t protocol, uint32_t addr, uint16_t port) {
    const auto index = pool_.index_of(addr);
    const auto proto = protocol_index(protocol);
    if (!index || !proto) return kNotHeld;
    const auto id = pool_.held_block(*index, port);
    if (!id) return kNotHeld;
    if (!pool_.ports(*index, *proto).reserve(port)) return kInUse;
    // The reservation keeps the block (and so its subscriber) until the static mapping goes.
    pool_.port_taken(*id);
    return kReserved;
}

void NatEngine::release_external_port(uint8_t protocol, uint32_t addr, uint16_t port) {
    const auto index = pool_.index_of(addr);
    const auto proto = protocol_index(protocol);
    if (!index || !proto) return;
    const auto id = pool_.held_block(*index, port);
    if (!id || !pool_.ports(*index, *proto).in_use(port)) return;
    pool_.ports(*index, *proto).release(port);
    pool_.port_freed(*id, now_ms_);
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

std::optional<std::pair<uint32_t, uint16_t>> NatEngine::find_mapping(uint8_t protocol,
                                                                     uint32_t addr,
                                                                     uint16_t port) const {
    const EndpointKey k = endpoint_key(protocol, addr, port, Side::inside);
    uint64_t slot = 0;
    if (!mapping_table_.lookup(&k, slot)) return std::nullopt;
    const Mapping& m = mappings_[slot];
    return std::make_pair(m.ext_addr, m.ext_port);
}

std::vector<std::pair<uint32_t, uint16_t>> NatEngine::subscriber_blocks(uint32_t addr) const {
    std::vector<std::pair<uint32_t, uint16_t>> out;
    uint64_t slot = 0;
    if (!subscriber_table_.lookup(&addr, slot)) return out;
    const Subscriber& sub = subscribers_[slot];
    for (uint32_t id = sub.first_block; id != kNoSlot; id = pool_.block_record(id).next)
        out.emplace_back(pool_.address(pool_.index_of_block(id)), pool_.first_port(id));
    return out;
}

std::optional<uint32_t> NatEngine::subscriber_sessions(uint32_t addr) const {
    uint64_t slot = 0;
    if (!subscriber_table_.lookup(&addr, slot)) return std::nullopt;
    return subscribers_[slot].sessions;
}

}  // namespace cgn::dp
