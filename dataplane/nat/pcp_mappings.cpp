// PCP (RFC 6887) and NAT-PMP (RFC 6886) on the dataplane side: what the worker owning a
// subscriber does when the control thread's PCP server asks it for a MAP mapping (held), a
// PEER flow, or the subscriber's external address. A PCP mapping is one of the subscriber's
// own dynamic mappings, marked held: it is found by the packet path like any other, in this
// worker's mapping table, with no lookup in the shared explicit-mapping table.
//
// None of this is a packet: a failure counts no drop reason (the frame accounting balances
// frames, common/frame_accounting.hpp); the control side counts and answers it.
#include <algorithm>

#include "common/headers.hpp"
#include "dataplane/nat/nat_engine.hpp"
#include "dataplane/nat/nat_keys.hpp"

namespace cgn::dp {

using common::Counter;
namespace ipv4 = common::ipv4;

namespace {

// PCP maps TCP and UDP here; an ICMP "mapping" has no port a remote host could address.
bool pcp_protocol(uint8_t protocol) {
    return protocol == ipv4::kProtoTcp || protocol == ipv4::kProtoUdp;
}

NatEngine::HoldResult failed(NatEngine::HoldStatus status) { return {status, 0, 0, 0}; }

// The refusal a packet would have been dropped for, as a PCP result: a subscriber's limit
// (RFC 6887 §7.4 USER_EX_QUOTA) or the NAT's own resources (NO_RESOURCES).
NatEngine::HoldStatus status_of(Counter reason) {
    switch (reason) {
        case Counter::drop_quota_blocks:
        case Counter::drop_quota_ports:
        case Counter::drop_quota_sessions:
        case Counter::drop_quota_session_rate:
        case Counter::drop_quota_mapping_sessions:
        case Counter::drop_quota_inbound_sessions:
            return NatEngine::HoldStatus::user_ex_quota;
        default:
            return NatEngine::HoldStatus::no_resources;
    }
}

}  // namespace

NatEngine::HoldResult NatEngine::hold_mapping(uint8_t protocol, uint32_t int_addr,
                                              uint16_t int_port, uint32_t suggested_addr,
                                              uint16_t suggested_port, bool exact,
                                              uint64_t now_ms,
                                              std::span<const PeerFilter> filters) {
    now_ms_ = now_ms;
    if (!pcp_protocol(protocol) || filters.size() > kMaxPeerFilters)
        return failed(HoldStatus::not_authorized);
    const Endpoint internal{int_addr, int_port};
    const EndpointKey k = endpoint_key(protocol, int_addr, int_port, Side::inside);
    uint64_t slot = 0;
    if (mapping_table_.lookup(&k, slot)) {
        Mapping& m = mappings_[slot];
        // An operator's mapping (static or one-to-one) is not PCP's to take.
        if (m.subscriber == kNoSlot) return failed(HoldStatus::not_authorized);
        // RFC 6887 §11.3: "If the PCP-controlled device already has a mapping for that
        // internal address/port, it returns that", whatever was suggested; held already: a
        // refresh.
        if (!set_peer_filters(static_cast<uint32_t>(slot), filters))
            return failed(HoldStatus::no_resources);
        if (!m.held) {
            m.held = 1;
            ++held_count_;
        }
        return {HoldStatus::held, m.ext_addr, m.ext_port, 0};
    }
    // A new mapping needs a filter set for its filters: none free, nothing is made.
    if (!filters.empty() && free_filter_sets_.empty()) return failed(HoldStatus::no_resources);
    // An operator's mapping not made here yet (that happens on the endpoint's first packet).
    if (explicit_lookups() && explicit_->external_of(protocol, internal))
        return failed(HoldStatus::not_authorized);

    Counter reason = Counter::drop_pool_exhausted;
    const auto sub = pair_subscriber(int_addr, &reason);
    if (!sub) return failed(HoldStatus::no_resources);
    const ProtocolIndex proto = *protocol_index(protocol);
    const size_t pi = static_cast<size_t>(proto);
    const uint32_t port_limit = limits_.max_ports_per_protocol[pi];
    HoldStatus status = HoldStatus::held;
    std::optional<uint16_t> port;
    if (port_limit != 0 && subscribers_[*sub].ports_by_protocol[pi] >= port_limit) {
        // RFC 6888 REQ-4: the PCP mapping is one of the subscriber's ports.
        record_refusal(*sub, common::NatEvent::Limit::ports, protocol, now_ms);
        status = HoldStatus::user_ex_quota;
    } else {
        const uint32_t paired = pool_.address(subscribers_[*sub].pool_index);
        // RFC 6887 §11.3: the suggested external address and port are honoured when they can
        // be; only the paired address can be (RFC 4787 REQ-2), a zero address names it too.
        if (suggested_port != 0 && (suggested_addr == 0 || suggested_addr == paired))
            port = take_suggested_port(*sub, proto, suggested_port, now_ms);
        if (!port && exact) {
            // §13.2 PREFER_FAILURE: that endpoint or nothing.
            status = HoldStatus::cannot_provide_external;
        } else if (!port) {
            port = allocate_port(*sub, proto, port_parity_ ? (int_port & 1) : -1, now_ms, reason);
            if (!port) {
                record_refusal(*sub,
                               reason == Counter::drop_quota_blocks
                                   ? common::NatEvent::Limit::blocks
                                   : common::NatEvent::Limit::pool,
                               protocol, now_ms);
                status = status_of(reason);
            }
        }
    }
    std::optional<uint32_t> created;
    if (port) {
        created = insert_dynamic_mapping(protocol, internal, *sub, *port, now_ms, reason);
        if (!created) status = HoldStatus::no_resources;
    }
    if (!created) {
        release_subscriber_if_unused(*sub);
        return failed(status);
    }
    Mapping& m = mappings_[*created];
    m.held = 1;
    ++held_count_;
    set_peer_filters(*created, filters);  // a set is free (checked above)
    return {HoldStatus::held, m.ext_addr, m.ext_port, 0};
}

bool NatEngine::set_peer_filters(uint32_t mapping, std::span<const PeerFilter> filters) {
    Mapping& m = mappings_[mapping];
    if (filters.empty()) {
        clear_peer_filters(m);
        return true;
    }
    if (m.filter_set == 0) {
        const auto set = free_filter_sets_.take();
        if (!set) return false;
        m.filter_set = static_cast<uint16_t>(*set + 1);
        ++filtered_count_;
    }
    PeerFilterSet& fs = filter_sets_[m.filter_set - 1u];
    fs.count = static_cast<uint8_t>(filters.size());
    std::copy(filters.begin(), filters.end(), fs.filters.begin());
    // Sessions opened from outside by peers the filters no longer admit end now: a new list
    // takes effect for connections already in place as for new ones. The subscriber's own
    // (outbound) sessions stay. Releasing a session of a held mapping never releases the
    // mapping, so the list can be walked while it shrinks.
    for (uint32_t s = m.first_session; s != kNoSlot;) {
        const Session& session = sessions_[s];
        const uint32_t next = session.next_in_mapping;
        if (session.opened_inbound && !fs.admits(session.remote_addr, session.remote_port)) {
            release_session(s);
            counters_.add(Counter::sessions_filtered_out);
        }
        s = next;
    }
    return true;
}

void NatEngine::clear_peer_filters(Mapping& m) {
    if (m.filter_set == 0) return;
    free_filter_sets_.give_back(m.filter_set - 1u);
    m.filter_set = 0;
    --filtered_count_;
}

std::optional<uint16_t> NatEngine::take_suggested_port(uint32_t sub_slot, ProtocolIndex proto,
                                                       uint16_t port, uint64_t now_ms) {
    Subscriber& sub = subscribers_[sub_slot];
    PortSet& ports = pool_.ports(sub.pool_index, proto);
    // RFC 7422: a deterministic subscriber's own range is its to give.
    if (sub.det_last != 0 && port >= sub.det_first && port <= sub.det_last) {
        if (!ports.reserve(port)) return std::nullopt;
        return port;
    }
    // A block this worker holds: the subscriber's own (still in its hold-down or not), or
    // another subscriber's, whose ports are not this one's.
    if (const auto id = pool_.held_block(sub.pool_index, port)) {
        if (pool_.block_record(*id).subscriber != sub_slot || !ports.reserve(port))
            return std::nullopt;
        pool_.port_taken(*id);
        return port;
    }
    // A free block of this worker's share, claimed for the subscriber as its first mapping
    // there would (RFC 6888 REQ-4 max_blocks; a deterministic subscriber only with overflow).
    const auto block = blocks_.block_of(port);
    if (!block || (sub.det_last != 0 && !deterministic_overflow_) ||
        (limits_.max_blocks != 0 && sub.blocks >= limits_.max_blocks))
        return std::nullopt;
    const auto id = pool_.claim_block_at(sub.pool_index, *block, sub_slot, now_ms);
    if (!id) return std::nullopt;
    adopt_block(sub_slot, *id);
    // Just opened: the port is free (were it not, the idle block would go at its hold-down).
    if (!ports.reserve(port)) return std::nullopt;
    pool_.port_taken(*id);
    return port;
}

bool NatEngine::release_held_mapping(uint8_t protocol, uint32_t int_addr, uint16_t int_port,
                                     uint64_t now_ms) {
    now_ms_ = now_ms;
    const EndpointKey k = endpoint_key(protocol, int_addr, int_port, Side::inside);
    uint64_t slot = 0;
    if (!mapping_table_.lookup(&k, slot)) return false;
    Mapping& m = mappings_[slot];
    if (!m.held) return false;
    m.held = 0;
    --held_count_;
    clear_peer_filters(m);  // an ordinary dynamic mapping filters by --filtering again
    // An ordinary dynamic mapping again: it goes with its last session, now if it has none
    // (the port then frees, and its block's hold-down starts when it was the last).
    if (m.sessions == 0) release_mapping(static_cast<uint32_t>(slot));
    return true;
}

namespace {

// A port of `ports` the worker may hand out now: open here (its block held, or a
// deterministic range) and not in use.
bool free_port(const PortSet& ports, uint32_t port) {
    return port <= 0xffff && ports.is_open(static_cast<uint16_t>(port)) &&
           !ports.in_use(static_cast<uint16_t>(port));
}

// How many free ports follow one another from `start` (free itself or not), up to `last` and
// at most `limit`.
uint32_t free_run_from(const PortSet& ports, uint32_t start, uint32_t last, uint32_t limit) {
    uint32_t n = 0;
    while (n < limit && start + n <= last && free_port(ports, start + n)) ++n;
    return n;
}

}  // namespace

NatEngine::PortRun NatEngine::choose_port_run(uint32_t sub_slot, ProtocolIndex proto,
                                              uint32_t limit, int parity, uint16_t suggested_port,
                                              bool exact, bool& quota_blocks) {
    const Subscriber& sub = subscribers_[sub_slot];
    const PortSet& ports = pool_.ports(sub.pool_index, proto);
    quota_blocks = false;
    // The longest run in [lo, hi] whose first port has the parity (-1: any); the first of
    // that length.
    auto longest = [&](uint32_t lo, uint32_t hi, uint32_t block) {
        PortRun best;
        best.block = block;
        for (uint32_t p = lo; p <= hi && best.length < limit;) {
            if (!free_port(ports, p)) {
                ++p;
                continue;
            }
            uint32_t end = p;  // the free ports [p, end]
            while (end + 1 <= hi && free_port(ports, end + 1)) ++end;
            const uint32_t start = parity >= 0 && int(p & 1) != parity ? p + 1 : p;
            if (start <= end && std::min(limit, end - start + 1) > best.length) {
                best.start = static_cast<uint16_t>(start);
                best.length = std::min(limit, end - start + 1);
            }
            p = end + 1;
        }
        return best;
    };
    const bool deterministic = sub.det_last != 0;
    const bool blocks_allowed = !deterministic || deterministic_overflow_;
    const bool may_claim = limits_.max_blocks == 0 || sub.blocks < limits_.max_blocks;

    // The suggested first external port (RFC 6887 §11.3), when it may be the subscriber's: in
    // its range, in a block it holds, or in a free block of this worker's share it may claim
    // (as take_suggested_port decides for one port).
    PortRun suggested;
    if (suggested_port != 0 && (parity < 0 || int(suggested_port & 1) == parity)) {
        if (deterministic && suggested_port >= sub.det_first && suggested_port <= sub.det_last) {
            suggested.length = free_run_from(ports, suggested_port, sub.det_last, limit);
        } else if (const auto id = pool_.held_block(sub.pool_index, suggested_port)) {
            if (pool_.block_record(*id).subscriber == sub_slot) {
                suggested.block = *id;
                suggested.length =
                    free_run_from(ports, suggested_port, pool_.last_port(*id), limit);
            }
        } else if (const auto block = blocks_.block_of(suggested_port);
                   block && blocks_allowed && may_claim &&
                   blocks_.owner_of_block(*block) == worker_index_ &&
                   blocks_.holder(sub.pool_index, *block) == BlockMap::kFree) {
            // A free block opens with every port free.
            suggested.claim = *block;
            suggested.length =
                std::min<uint32_t>(limit, blocks_.last_port(*block) - suggested_port + 1u);
        }
        suggested.start = suggested_port;
    }
    // §13.2 PREFER_FAILURE: a set at the suggested port or none; and a suggestion that holds
    // the whole set is taken as it is.
    if (exact || suggested.length == limit) return suggested;

    PortRun best = suggested;  // a tie goes to the suggestion
    auto consider = [&](const PortRun& r) {
        if (r.length > best.length) best = r;
    };
    // RFC 7422: a deterministic subscriber's own range first; past it only with overflow.
    if (deterministic) consider(longest(sub.det_first, sub.det_last, kNoSlot));
    if (!blocks_allowed) return best;
    for (uint32_t id = sub.first_block; id != kNoSlot && best.length < limit;
         id = pool_.block_record(id).next)
        consider(longest(pool_.first_port(id), pool_.last_port(id), id));
    if (best.length < limit) {
        // A new block has all its ports free; its first port's parity is known once it is
        // claimed, so with a parity one port may go to it. Claimed only when its run is the
        // longest.
        if (!may_claim) {
            quota_blocks = best.length == 0;
        } else if (blocks_.free_blocks(sub.pool_index, worker_index_) != 0) {
            PortRun fresh;
            fresh.claim = kAnyBlock;
            fresh.length = std::min(limit, blocks_.block_size() - (parity >= 0 ? 1u : 0u));
            consider(fresh);
        }
    }
    return best;
}

uint32_t NatEngine::make_port_set(uint8_t protocol, uint32_t int_addr, uint16_t first_int_port,
                                  uint32_t sub_slot, const PortRun& run, uint64_t now_ms,
                                  std::span<const PeerFilter> filters) {
    const Subscriber& sub = subscribers_[sub_slot];
    const ProtocolIndex proto = *protocol_index(protocol);
    PortSet& ports = pool_.ports(sub.pool_index, proto);
    uint32_t held = 0;
    for (; held < run.length; ++held) {
        const auto int_port = static_cast<uint16_t>(first_int_port + held);
        const auto ext_port = static_cast<uint16_t>(run.start + held);
        const EndpointKey k = endpoint_key(protocol, int_addr, int_port, Side::inside);
        uint64_t slot = 0;
        if (!mapping_table_.lookup(&k, slot)) {
            if (!ports.reserve(ext_port)) break;
            if (run.block != kNoSlot) pool_.port_taken(run.block);
            Counter reason = Counter::drop_pool_exhausted;
            const auto created = insert_dynamic_mapping(protocol, {int_addr, int_port}, sub_slot,
                                                        ext_port, now_ms, reason);
            if (!created) break;  // its port given back
            slot = *created;
        }
        Mapping& m = mappings_[slot];
        if (!m.held) {
            m.held = 1;
            ++held_count_;
        }
        set_peer_filters(static_cast<uint32_t>(slot), filters);  // sets counted by the caller
    }
    return held;
}

NatEngine::HoldResult NatEngine::hold_port_set(uint8_t protocol, uint32_t int_addr,
                                               uint16_t first_int_port, uint16_t count, bool parity,
                                               uint32_t suggested_addr, uint16_t suggested_port,
                                               bool exact, uint64_t now_ms,
                                               std::span<const PeerFilter> filters) {
    now_ms_ = now_ms;
    if (!pcp_protocol(protocol) || filters.size() > kMaxPeerFilters || count == 0)
        return failed(HoldStatus::not_authorized);
    const ProtocolIndex proto = *protocol_index(protocol);
    const size_t pi = static_cast<size_t>(proto);
    // Mapped already, and by whom: the set's internal ports one after the other.
    auto mapping_of = [&](uint32_t int_port) -> std::optional<uint32_t> {
        const EndpointKey k =
            endpoint_key(protocol, int_addr, static_cast<uint16_t>(int_port), Side::inside);
        uint64_t slot = 0;
        if (mapping_table_.lookup(&k, slot)) return static_cast<uint32_t>(slot);
        return std::nullopt;
    };
    auto operators = [&](uint32_t int_port) {
        return explicit_lookups() &&
               explicit_->external_of(protocol, {int_addr, static_cast<uint16_t>(int_port)});
    };
    // The set cannot run past port 65535.
    const uint32_t asked = std::min<uint32_t>(count, 0x10000u - first_int_port);
    const auto first = mapping_of(first_int_port);
    // An operator's mapping (static or one-to-one) is not PCP's to take.
    if (first ? mappings_[*first].subscriber == kNoSlot : operators(first_int_port))
        return failed(HoldStatus::not_authorized);
    Counter reason = Counter::drop_pool_exhausted;
    const auto sub = first ? std::optional<uint32_t>(mappings_[*first].subscriber)
                           : pair_subscriber(int_addr, &reason);
    if (!sub) return failed(HoldStatus::no_resources);
    const Subscriber& s = subscribers_[*sub];
    const PortSet& ports = pool_.ports(s.pool_index, proto);
    // Room for new ports (RFC 6888 REQ-4: the set's ports are the subscriber's) and for their
    // filter sets (each held mapping with FILTERs needs one).
    const uint32_t port_limit = limits_.max_ports_per_protocol[pi];
    const uint32_t port_room =
        port_limit == 0 ? ~uint32_t{0}
                        : port_limit - std::min<uint32_t>(port_limit, s.ports_by_protocol[pi]);
    uint32_t filter_room = filters.empty()
                               ? ~uint32_t{0}
                               : static_cast<uint32_t>(filter_sets_.size()) - filtered_count_;
    auto refuse = [&](HoldStatus status) {
        if (!first) release_subscriber_if_unused(*sub);
        return failed(status);
    };

    PortRun run;
    if (first) {
        // §11.3: the first internal port's mapping is the answer: its external port starts
        // the set, and the set follows it in its block (or range) as far as the next ports
        // are free or already the set's (a refresh).
        const Mapping& m0 = mappings_[*first];
        run.start = m0.ext_port;
        uint32_t last = m0.ext_port;
        if (s.det_last != 0 && m0.ext_port >= s.det_first && m0.ext_port <= s.det_last)
            last = s.det_last;
        else if (const auto id = pool_.held_block(s.pool_index, m0.ext_port)) {
            run.block = *id;
            last = pool_.last_port(*id);
        }
        if (!filters.empty() && m0.filter_set == 0 && filter_room-- == 0)
            return failed(HoldStatus::no_resources);
        uint32_t new_ports = 0;
        for (run.length = 1; run.length < asked; ++run.length) {
            const uint32_t ext = uint32_t{run.start} + run.length;
            const uint32_t int_port = uint32_t{first_int_port} + run.length;
            if (ext > last) break;
            if (const auto slot = mapping_of(int_port)) {
                const Mapping& m = mappings_[*slot];
                if (m.subscriber != *sub || m.ext_addr != m0.ext_addr || m.ext_port != ext) break;
                if (!filters.empty() && m.filter_set == 0 && filter_room-- == 0) break;
                continue;
            }
            if (operators(int_port) || !free_port(ports, ext) || new_ports == port_room ||
                (!filters.empty() && filter_room-- == 0))
                break;
            ++new_ports;
        }
    } else {
        const uint32_t paired = pool_.address(s.pool_index);
        // The set ends before the first internal port already mapped (or an operator's), and
        // where the quota or the filter sets run out.
        uint32_t limit = std::min({asked, port_room, filter_room});
        for (uint32_t i = 1; i < limit; ++i)
            if (mapping_of(uint32_t{first_int_port} + i) || operators(uint32_t{first_int_port} + i))
                limit = i;
        if (limit == 0) {
            if (port_room == 0) {
                record_refusal(*sub, common::NatEvent::Limit::ports, protocol, now_ms);
                return refuse(HoldStatus::user_ex_quota);
            }
            return refuse(HoldStatus::no_resources);  // no filter set free
        }
        // Only the paired address can be given (RFC 4787 REQ-2); a zero address names it.
        const uint16_t suggestion =
            suggested_addr == 0 || suggested_addr == paired ? suggested_port : 0;
        const int first_parity = first_int_port & 1;
        bool quota_blocks = false;
        // RFC 7753 §4's P bit (or REQ-4's port parity) is a preference: a set of the other
        // parity when none of this one can be had.
        const bool want_parity = parity || port_parity_;
        run = choose_port_run(*sub, proto, limit, want_parity ? first_parity : -1, suggestion,
                              exact && suggestion != 0, quota_blocks);
        if (run.length == 0 && want_parity && !(exact && suggestion != 0))
            run = choose_port_run(*sub, proto, limit, -1, suggestion, false, quota_blocks);
        if (exact && (suggestion == 0 || run.length == 0))
            return refuse(HoldStatus::cannot_provide_external);
        if (run.length == 0) {
            record_refusal(
                *sub,
                quota_blocks ? common::NatEvent::Limit::blocks : common::NatEvent::Limit::pool,
                protocol, now_ms);
            return refuse(quota_blocks ? HoldStatus::user_ex_quota : HoldStatus::no_resources);
        }
        if (run.claim != kNoSlot) {
            // The run is in a block still to claim: claimed now, as the subscriber's.
            const auto id =
                run.claim == kAnyBlock
                    ? pool_.claim_block(s.pool_index, *sub,
                                        random_.below(pool_.blocks_per_address()), now_ms)
                    : pool_.claim_block_at(s.pool_index, run.claim, *sub, now_ms);
            if (!id) return refuse(HoldStatus::no_resources);
            adopt_block(*sub, *id);
            run.block = *id;
            if (run.claim == kAnyBlock) {
                // Every port of it is free: the run starts at its first port of the parity.
                run.start = pool_.first_port(*id);
                if (want_parity && (run.start & 1) != first_parity) ++run.start;
                run.length = std::min<uint32_t>(limit, pool_.last_port(*id) - run.start + 1u);
            }
        }
    }
    const uint32_t held =
        make_port_set(protocol, int_addr, first_int_port, *sub, run, now_ms, filters);
    if (held == 0) return refuse(HoldStatus::no_resources);
    HoldResult r{HoldStatus::held, pool_.address(s.pool_index), run.start, 0};
    r.held_ports = static_cast<uint16_t>(held);
    return r;
}

uint32_t NatEngine::release_held_port_set(uint8_t protocol, uint32_t int_addr,
                                          uint16_t first_int_port, uint16_t count,
                                          uint64_t now_ms) {
    uint32_t released = 0;
    for (uint32_t i = 0; i < count && first_int_port + i <= 0xffff; ++i)
        released += release_held_mapping(protocol, int_addr,
                                         static_cast<uint16_t>(first_int_port + i), now_ms);
    return released;
}

std::optional<uint32_t> NatEngine::paired_address(uint32_t int_addr, uint64_t now_ms) {
    now_ms_ = now_ms;
    // A one-to-one mapped subscriber (Basic NAT) appears as its mapped address, not a pool one.
    if (explicit_lookups())
        if (auto e = explicit_->external_of(ExplicitMappingTable::kAnyProtocol, {int_addr, 0}))
            return e->addr;
    // RFC 7422: a deterministic subscriber's address is its formula's, paired or not (the
    // pairing hold_mapping makes later gives the same).
    if (deterministic_ != nullptr)
        if (auto det = deterministic_->forward(common::Ipv4Address{int_addr}))
            return pool_.address(det->pool_index);
    Counter reason = Counter::drop_pool_exhausted;
    const auto sub = pair_subscriber(int_addr, &reason);
    if (!sub) return std::nullopt;
    Subscriber& s = subscribers_[*sub];
    // Paired by this call alone, the subscriber would hold nothing, and nothing would ever
    // release its slot (only a mapping's or a block's end does). It gets one block, as its
    // first mapping would: the address is then the one its mappings use while the pairing
    // lasts, and when nothing uses the block its hold-down returns it and the subscriber with
    // it (block_released).
    if (s.blocks == 0 && s.mappings == 0) {
        const auto id = pool_.claim_block(s.pool_index, *sub,
                                          random_.below(pool_.blocks_per_address()), now_ms);
        if (!id) {
            release_subscriber(*sub);
            return std::nullopt;
        }
        adopt_block(*sub, *id);
    }
    return pool_.address(s.pool_index);
}

NatEngine::HoldResult NatEngine::peer_flow(uint8_t protocol, uint32_t int_addr, uint16_t int_port,
                                           uint32_t remote_addr, uint16_t remote_port,
                                           uint64_t now_ms) {
    now_ms_ = now_ms;
    if (!pcp_protocol(protocol)) return failed(HoldStatus::not_authorized);
    auto timeout_s = [this](TimeoutClass c) {
        return static_cast<uint32_t>(expiry_.timeout(c) / 1000);
    };
    SessionKey key;
    key.local_addr = int_addr;
    key.remote_addr = remote_addr;
    key.local_port = int_port;
    key.remote_port = remote_port;
    key.protocol = protocol;
    key.side = Side::inside;
    uint64_t found = 0;
    if (session_table_.lookup(&key, found)) {
        // RFC 6887 §12.3: a PEER request for an existing flow extends its lifetime; here, up to
        // the idle timeout of its class, restarted now. The subscriber uses the flow: it counts
        // as having sent on it, as its answer would (translate_in2out).
        const auto session = static_cast<uint32_t>(found);
        Session& s = sessions_[session];
        expiry_.touch(session, now_ms);
        if (s.inbound_only) {
            s.inbound_only = 0;
            count_in_filter(mappings_[s.mapping], s.remote_addr, +1);
        }
        return {HoldStatus::held, s.ext_addr, s.ext_port, timeout_s(expiry_.class_of(session))};
    }
    // As the slow path does for the flow's first packet (slow_in2out).
    const Endpoint internal{int_addr, int_port};
    const EndpointKey ek = endpoint_key(protocol, int_addr, int_port, Side::inside);
    uint64_t mapping = 0;
    Counter reason = Counter::drop_session_table_full;
    if (!mapping_table_.lookup(&ek, mapping)) {
        std::optional<uint32_t> created;
        if (auto external =
                explicit_lookups() ? explicit_->external_of(protocol, internal) : std::nullopt)
            created = insert_mapping(protocol, internal, *external, kNoSlot, &reason);
        else
            created = new_dynamic_mapping(protocol, internal, now_ms, reason);
        if (!created) return failed(status_of(reason));
        mapping = *created;
    } else if (const uint32_t sub = mappings_[mapping].subscriber; sub != kNoSlot) {
        if (!admit_session(sub, static_cast<uint32_t>(mapping), protocol, now_ms, reason))
            return failed(status_of(reason));
    }
    const auto session = create_session(static_cast<uint32_t>(mapping), remote_addr, remote_port,
                                        now_ms, false, &reason);
    if (!session) return failed(HoldStatus::no_resources);
    const Session& s = sessions_[*session];
    // A TCP session made without a segment has seen no SYN: it starts in the opening class
    // (tcp_state.hpp, closed), as it would before the subscriber's SYN.
    return {HoldStatus::held, s.ext_addr, s.ext_port, timeout_s(initial_class(protocol))};
}

}  // namespace cgn::dp
