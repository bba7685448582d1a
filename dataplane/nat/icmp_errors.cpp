// ICMP errors about a packet of one of our sessions (RFC 5508 §4.2): the session found from the
// quoted packet, the error and its quote translated.
#include "dataplane/nat/nat_engine.hpp"

#include "dataplane/nat/nat_keys.hpp"
#include "dataplane/nat/rewrite.hpp"

namespace cgn::dp {

using common::Counter;

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

}  // namespace cgn::dp
