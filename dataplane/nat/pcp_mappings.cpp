// PCP (RFC 6887) and NAT-PMP (RFC 6886) on the dataplane side: what the worker owning a
// subscriber does when the control thread's PCP server asks it for a MAP mapping (held), a
// PEER flow, or the subscriber's external address. A PCP mapping is one of the subscriber's
// own dynamic mappings, marked held: it is found by the packet path like any other, in this
// worker's mapping table, with no lookup in the shared explicit-mapping table.
//
// None of this is a packet: a failure counts no drop reason (the frame accounting balances
// frames, common/frame_accounting.hpp); the control side counts and answers it.
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
                                              uint64_t now_ms) {
    now_ms_ = now_ms;
    if (!pcp_protocol(protocol)) return failed(HoldStatus::not_authorized);
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
        if (!m.held) {
            m.held = 1;
            ++held_count_;
        }
        return {HoldStatus::held, m.ext_addr, m.ext_port, 0};
    }
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
    return {HoldStatus::held, m.ext_addr, m.ext_port, 0};
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
    // An ordinary dynamic mapping again: it goes with its last session, now if it has none
    // (the port then frees, and its block's hold-down starts when it was the last).
    if (m.sessions == 0) release_mapping(static_cast<uint32_t>(slot));
    return true;
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
