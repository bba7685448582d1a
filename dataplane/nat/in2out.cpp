// Inside to outside: the burst (fast path, fast_path.hpp), the rewrite of a packet of a known
// session, and the slow path that finds or creates the mapping and opens the session.
#include "dataplane/nat/nat_engine.hpp"

#include "common/headers.hpp"
#include "dataplane/nat/fast_path.hpp"
#include "dataplane/nat/nat_keys.hpp"
#include "dataplane/nat/rewrite.hpp"

namespace cgn::dp {

using common::Counter;
namespace ipv4 = common::ipv4;

void NatEngine::in2out(Ipv4Packet* const* packets, unsigned n, uint64_t now_ms, bool* forward) {
    now_ms_ = now_ms;
    translate_burst<true>(packets, n, now_ms, forward);
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
        Counter reason = Counter::drop_quota_sessions;
        if (!admit_session(sub, static_cast<uint32_t>(mapping), p.protocol, now_ms, reason)) {
            drop(reason);
            p.refused = true;  // RFC 6888 REQ-11: the worker answers the subscriber
            return false;
        }
    }
    auto session = create_session(static_cast<uint32_t>(mapping), p.dst,
                                  remote_port_of(p.protocol, p.dst_port), now_ms, false);
    if (!session) return false;
    translate_in2out(p, *session, now_ms);
    return true;
}

}  // namespace cgn::dp
