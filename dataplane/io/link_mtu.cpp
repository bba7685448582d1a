// The MTU of the links cgnd sends on (RFC 4787 §10 REQ-13/13a, RFC 5508 §7.1.1). A packet
// longer than the MTU of the port it leaves by is refused with ICMP "fragmentation needed and
// DF set" when DF is set, and cut into fragments when it is clear. All of this is off the fast
// path: output() comes here only for a frame longer than its link's MTU, translate() only for
// a burst holding a packet longer than the smallest MTU it may leave by.

#include <rte_mbuf.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "dataplane/io/worker.hpp"
#include "dataplane/nat/ipv4_fragmenter.hpp"

namespace cgn::dp {

using common::Counter;
using common::load_be16;
namespace eth = common::eth;
namespace ipv4 = common::ipv4;
namespace icmp = common::icmp;

namespace {

// Fragments of one packet, at most: a 9000-byte packet on a 576-byte link makes 18; beyond
// this many the packet is dropped (drop_fragmentation_failed).
constexpr unsigned kMaxFragments = 128;

bool dont_fragment(const uint8_t* ip) {
    return (load_be16(ip + ipv4::kFragment) & ipv4::kFlagDontFragment) != 0;
}

}  // namespace

uint32_t Worker::keep_too_big_quotes(SideIndex side, Ipv4Packet** packets, unsigned count,
                                     uint32_t candidates) {
    uint32_t kept = 0;
    for (uint32_t bits = candidates; bits != 0; bits &= bits - 1) {
        const auto i = static_cast<unsigned>(std::countr_zero(bits));
        if (i >= count) break;
        const Ipv4Packet& p = *packets[i];
        const uint16_t mtu = interfaces_[egress_of(side, p)].mtu;
        // It fits after all (it is hairpinned, or leaves by the bigger link); or DF is clear
        // and output() fragments it; or no ICMP error may be sent about it (a non-first
        // fragment) and output() drops it, counted.
        if (p.total_length <= mtu || !dont_fragment(p.l3) || !may_answer_with_icmp_error(p))
            continue;
        TooBigQuote& q = too_big_quotes_[i];
        q.length = icmp_quote_length(p);
        q.mtu = mtu;
        std::memcpy(q.bytes, p.l3, q.length);
        kept |= 1u << i;
    }
    return kept;
}

void Worker::refuse_too_big(SideIndex side, rte_mbuf** mbufs, bool* forward, uint32_t kept) {
    for (uint32_t bits = kept; bits != 0; bits &= bits - 1) {
        const auto i = static_cast<unsigned>(std::countr_zero(bits));
        // Refused by the NAT (no mapping, filtered, a quota): dropped and counted there, with
        // no word about its size.
        if (!forward[i]) continue;
        // RFC 4787 REQ-13: "If the packet received on an internal IP address has DF=1, the NAT
        // MUST send back an ICMP message 'Fragmentation needed and DF set' to the host"; RFC
        // 5508 §7.1.1 the same for either side, with the next-hop MTU (RFC 1191 §4). The
        // Ethernet header is still the one the packet came with: its source is the sender's
        // next hop.
        const TooBigQuote& q = too_big_quotes_[i];
        send_icmp_error_quoting(side, rte_pktmbuf_mtod(mbufs[i], const uint8_t*) + eth::kSrc,
                                q.bytes, q.length, icmp::kDestUnreachable,
                                icmp::kCodeFragmentationNeeded, q.mtu,
                                Counter::icmp_frag_needed_sent);
        drop(mbufs[i], Counter::drop_too_big_df);
        mbufs[i] = nullptr;
        forward[i] = false;
    }
}

void Worker::output_too_big(SideIndex side, rte_mbuf* m, uint32_t dst) {
    const uint16_t mtu = interfaces_[side].mtu;
    const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
    const uint8_t* ip = frame + eth::kHeaderLength;
    const uint16_t total = load_be16(ip + ipv4::kTotalLength);
    if (total <= mtu) {
        // Only bytes after the IP packet (an Ethernet trailer) made the frame long; they are
        // not part of the packet and are not sent.
        rte_pktmbuf_trim(
            m, static_cast<uint16_t>(rte_pktmbuf_pkt_len(m) - eth::kHeaderLength - total));
        send_to_next_hop(side, m, dst);
        return;
    }
    if (dont_fragment(ip)) {
        // Answered before translation when an answer was due; an ICMP error or a non-first
        // fragment gets none (RFC 1812 §4.3.2.7).
        drop(m, Counter::drop_too_big_df);
        return;
    }
    // RFC 4787 REQ-13a: "If the packet has DF=0, the NAT MUST fragment the packet and SHOULD
    // send the fragments in order." All mbufs are taken at once: a datagram missing a
    // fragment is worth nothing to its receiver.
    const Ipv4Fragmenter fragmenter(ip, mtu);
    const unsigned n = fragmenter.count();
    rte_mbuf* pieces[kMaxFragments];
    if (n == 0 || n > kMaxFragments || rte_pktmbuf_alloc_bulk(pool_, pieces, n) != 0) {
        drop(m, Counter::drop_fragmentation_failed);
        return;
    }
    for (unsigned i = 0; i < n; ++i) {
        auto* out = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(
            pieces[i], static_cast<uint16_t>(eth::kHeaderLength + fragmenter.length(i))));
        if (out == nullptr) {  // an mbuf too small for the MTU: not with cgnd's own pool
            rte_pktmbuf_free_bulk(pieces, n);
            drop(m, Counter::drop_fragmentation_failed);
            return;
        }
        // The Ethernet addresses are written when the fragment is sent, like any packet's.
        std::memcpy(out, frame, eth::kHeaderLength);
        fragmenter.write(i, out + eth::kHeaderLength);
        set_origin(pieces[i], common::FrameOrigin::generated);
    }
    counters_.add(Counter::packets_fragmented);  // the packet ends here; its fragments begin
    finish(m);
    counters_.add(Counter::fragments_created, n);
    for (unsigned i = 0; i < n; ++i) send_to_next_hop(side, pieces[i], dst);
}

}  // namespace cgn::dp
