// Outside to inside: the burst (fast path, fast_path.hpp), the rewrite of a packet of a known
// session, the slow path that lets an inbound packet open a session (filtering, RFC 4787
// REQ-8), and the per-mapping limits of inbound sessions.
#include "dataplane/nat/nat_engine.hpp"

#include "common/headers.hpp"
#include "dataplane/nat/fast_path.hpp"
#include "dataplane/nat/nat_keys.hpp"
#include "dataplane/nat/rewrite.hpp"

namespace cgn::dp {

using common::Counter;
using common::FilteringMode;
namespace ipv4 = common::ipv4;

void NatEngine::out2in(Ipv4Packet* const* packets, unsigned n, uint64_t now_ms, bool* forward) {
    now_ms_ = now_ms;
    translate_burst<false>(packets, n, now_ms, forward);
}

bool NatEngine::translate_out2in(Ipv4Packet& p, uint32_t session, uint64_t now_ms) {
    const Session& s = sessions_[session];
    // RFC 4787 REQ-8 with a mode that may have changed since the session was let in.
    if (s.inbound_only && filtering_ != FilteringMode::endpoint_independent &&
        !inbound_allowed(mappings_[s.mapping], p.src, p.src_port)) {
        drop(Counter::drop_out2in_filtered);
        return false;
    }
    rewrite_destination(p, s.int_addr, s.int_port);
    refresh(session, p, false, now_ms);
    counters_.add(Counter::out2in_translated);
    return true;
}

bool NatEngine::slow_out2in(Ipv4Packet& p, uint64_t now_ms) {
    // From outside, an echo reply answers a subscriber's query. An echo request opens a query
    // session only towards a one-to-one mapped subscriber (Basic NAT: RFC 5508 REQ-7 asks
    // that hairpinned queries reach it; a NAPT address has no host to ask).
    if (p.protocol == ipv4::kProtoIcmp && p.l4_header && p.icmp_type != common::icmp::kEchoReply &&
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
    if (!inbound_allowed(mappings_[mapping], p.src, p.src_port)) {
        drop(Counter::drop_out2in_filtered);
        return false;
    }
    // RFC 7857 §2 adopts the RFC 6146 state machine (§3.5.2.2): in the CLOSED state only a SYN
    // opens a session. Any other unsolicited segment (an ACK, a FIN, an RST, a SYN-ACK) has no
    // connection to belong to and opens nothing.
    if (p.protocol == ipv4::kProtoTcp && (p.tcp_flags & (common::tcp::kSyn | common::tcp::kAck_ |
                                                         common::tcp::kRst)) != common::tcp::kSyn) {
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

bool NatEngine::inbound_allowed(const Mapping& m, uint32_t remote_addr,
                                uint16_t remote_port) const {
    // An explicit mapping is there to be reached from outside: no filtering by the mode.
    // RFC 6887 §11.3: a MAP mapping filters endpoint-independently, unless its FILTERs
    // (§13.3) name the remote peers it admits; a static mapping admits anyone. This also keeps
    // the inbound-only sessions of a held mapping through translate_out2in's re-check under
    // a stricter mode (a change of filters removes those they no longer admit at once).
    if (m.held)
        return m.filter_set == 0 || filter_sets_[m.filter_set - 1u].admits(remote_addr, remote_port);
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

// Sessions opened from outside have limits of their own, per mapping, and take nothing of the
// subscriber's session limits or new-session rate: a remote host spraying a mapped endpoint
// from many ports must not lock the subscriber out of its own outbound sessions.
bool NatEngine::admit_inbound_session(uint32_t sub_slot, uint32_t mapping, Ipv4Packet& p,
                                      uint64_t now_ms) {
    const Mapping& m = mappings_[mapping];
    using Limit = common::NatEvent::Limit;
    if (limits_.max_sessions_per_mapping != 0 && m.sessions >= limits_.max_sessions_per_mapping) {
        drop(Counter::drop_quota_mapping_sessions);
        record_refusal(sub_slot, Limit::mapping_sessions, p.protocol, now_ms);
        return false;
    }
    if (limits_.max_inbound_sessions_per_mapping != 0 &&
        m.inbound_sessions >= limits_.max_inbound_sessions_per_mapping) {
        drop(Counter::drop_quota_inbound_sessions);
        record_refusal(sub_slot, Limit::inbound_sessions, p.protocol, now_ms);
        return false;
    }
    return true;
}

}  // namespace cgn::dp
