// The worker's steering between workers: which worker owns a received frame (the
// subscriber's on the inside, the external port's on the outside: steering.hpp), handing
// frames to it through the handoff rings, and taking the frames other workers handed here.
#include "dataplane/io/worker.hpp"

#include <rte_ethdev.h>

#include "common/byte_order.hpp"
#include "common/headers.hpp"

namespace cgn::dp {

using common::Counter;
using common::load_be16;
namespace eth = common::eth;

unsigned Worker::owner_of(SideIndex side, const rte_mbuf* m) const {
    namespace ipv4 = common::ipv4;
    const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
    const uint32_t length = rte_pktmbuf_data_len(m);
    if (length < eth::kHeaderLength) return index_;
    const uint16_t type = load_be16(frame + eth::kType);
    if (type == eth::kTypeArp) return kEveryWorker;
    if (type != eth::kTypeIpv4 || length < eth::kHeaderLength + ipv4::kMinHeaderLength)
        return index_;  // dropped here, whoever drops it
    const uint8_t* ip = frame + eth::kHeaderLength;
    if (side == kInside) return steering_.subscriber_owner(inside_subscriber(ip, length));
    // Outside: the owner of the destination's external port (ICMP: the query identifier).
    const uint32_t dst = common::load_be32(ip + ipv4::kDst);
    const auto pool_index = nat_.pool_index(dst);
    if (!pool_index) return index_;
    const uint32_t ihl = (ip[ipv4::kVersionIhl] & 0x0f) * 4u;
    // Every fragment of a datagram goes to one worker, which learns the ports from the first.
    if ((load_be16(ip + ipv4::kFragment) &
         (ipv4::kFragmentOffsetMask | ipv4::kFlagMoreFragments)) != 0)
        return fragment_owner(common::load_be32(ip + ipv4::kSrc), dst, load_be16(ip + ipv4::kId));
    if (length < eth::kHeaderLength + ihl + 8) return index_;
    const uint8_t* l4 = ip + ihl;
    uint8_t protocol = ip[ipv4::kProtocol];
    uint16_t port = 0;
    switch (protocol) {
        case ipv4::kProtoTcp:
        case ipv4::kProtoUdp:
            port = load_be16(l4 + common::udp::kDstPort);
            break;
        case ipv4::kProtoIcmp: {
            const uint8_t type = l4[common::icmp::kType];
            if (type == common::icmp::kEchoRequest || type == common::icmp::kEchoReply) {
                port = load_be16(l4 + common::icmp::kIdentifier);
                break;
            }
            // An ICMP error belongs where the packet it quotes came from: the quoted source
            // is one of our external endpoints.
            const uint8_t* inner = l4 + common::icmp::kHeaderLength;
            if (length < eth::kHeaderLength + ihl + 8 + ipv4::kMinHeaderLength + 8) return index_;
            const uint32_t inner_ihl = (inner[ipv4::kVersionIhl] & 0x0f) * 4u;
            if (length < eth::kHeaderLength + ihl + 8 + inner_ihl + 8 ||
                common::load_be32(inner + ipv4::kSrc) != dst)
                return index_;
            protocol = inner[ipv4::kProtocol];
            const uint8_t* inner_l4 = inner + inner_ihl;
            if (protocol == ipv4::kProtoTcp || protocol == ipv4::kProtoUdp)
                port = load_be16(inner_l4 + common::udp::kSrcPort);
            else if (protocol == ipv4::kProtoIcmp)
                port = load_be16(inner_l4 + common::icmp::kIdentifier);
            else
                return index_;
            break;
        }
        default:
            return index_;
    }
    return external_endpoint_owner(*pool_index, protocol, dst, port).value_or(index_);
}

uint32_t Worker::inside_subscriber(const uint8_t* ip, uint32_t length) {
    namespace ipv4 = common::ipv4;
    namespace icmp = common::icmp;
    const uint32_t src = common::load_be32(ip + ipv4::kSrc);
    if (ip[ipv4::kProtocol] != ipv4::kProtoIcmp) return src;
    // An ICMP error from inside is about an inbound packet it quotes (remote -> subscriber),
    // and may come from a router between cgnd and the subscriber: the subscriber is the
    // quoted destination (RFC 5508 §4.2), not the error's source.
    const uint32_t ihl = (ip[ipv4::kVersionIhl] & 0x0f) * 4u;
    if (length < eth::kHeaderLength + ihl + icmp::kHeaderLength + ipv4::kMinHeaderLength)
        return src;
    const uint8_t type = ip[ihl + icmp::kType];
    if (type != icmp::kDestUnreachable && type != icmp::kTimeExceeded &&
        type != icmp::kParameterProblem)
        return src;
    return common::load_be32(ip + ihl + icmp::kHeaderLength + ipv4::kDst);
}

std::optional<unsigned> Worker::external_endpoint_owner(uint32_t pool_index, uint8_t protocol,
                                                        uint32_t addr, uint16_t port) const {
    // A static mapping belongs to its subscriber's worker, whichever block its port is in.
    if (explicit_present_) {
        if (auto internal = control_->explicit_mappings().internal_of(protocol, {addr, port}))
            return steering_.subscriber_owner(internal->addr);
    }
    return steering_.external_owner(pool_index, port);
}

void Worker::steer(SideIndex side, rte_mbuf** mbufs, uint16_t n) {
    rte_mbuf* own[kBurst];
    uint16_t count = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = mbufs[i];
        const unsigned owner = owner_of(side, m);
        if (owner == index_) {
            own[count++] = m;
            continue;
        }
        // The receiver needs the input side; not every PMD records the port in the mbuf.
        m->port = interfaces_[side].port_id;
        if (owner != kEveryWorker) {
            hand_off(owner, m);
            continue;
        }
        // ARP: every worker learns neighbours from it; only this one answers.
        for (unsigned w = 0; w < workers_; ++w) {
            if (w == index_) continue;
            rte_mbuf* copy = rte_pktmbuf_copy(m, pool_, 0, UINT32_MAX);
            if (copy == nullptr) {
                // No frame was made, none is lost: that worker learns the neighbour later.
                counters_.add(Counter::arp_copies_failed);
                continue;
            }
            copy->port = m->port;
            set_origin(copy, common::FrameOrigin::generated);
            counters_.add(Counter::arp_copies_sent);
            hand_off(w, copy);
        }
        own[count++] = m;
    }
    process_burst(side, own, count, false);
}

void Worker::hand_off(unsigned worker, rte_mbuf* m) {
    HandoffQueue& q = handoff_out_[worker];
    if (q.count == kHandoffBatch) flush_handoff(worker);
    q.mbufs[q.count++] = m;
    ++handoff_held_[static_cast<size_t>(origin_of(m))];
    counters_.add(Counter::packets_handed_off);
}

void Worker::flush_handoff(unsigned worker) {
    HandoffQueue& q = handoff_out_[worker];
    if (q.count == 0) return;
    const unsigned sent = rte_ring_sp_enqueue_burst(
        handoff_->ring(index_, worker), reinterpret_cast<void* const*>(q.mbufs), q.count, nullptr);
    if (sent < q.count) {
        counters_.add(Counter::drop_handoff_full, q.count - sent);
        for (unsigned i = sent; i < q.count; ++i) {
            --handoff_held_[static_cast<size_t>(origin_of(q.mbufs[i]))];
            count_ended(q.mbufs[i]);
        }
        rte_pktmbuf_free_bulk(q.mbufs + sent, q.count - sent);
    }
    q.count = 0;
}

void Worker::receive_handoff() {
    const uint16_t inside_port = interfaces_[kInside].port_id;
    for (unsigned from = 0; from < workers_; ++from) {
        if (from == index_) continue;
        rte_mbuf* mbufs[kBurst];
        const unsigned n = rte_ring_sc_dequeue_burst(
            handoff_->ring(from, index_), reinterpret_cast<void**>(mbufs), kBurst, nullptr);
        if (n == 0) continue;
        counters_.add(Counter::packets_received_by_handoff, n);
        // The PMD recorded the input port in each mbuf: split by side.
        rte_mbuf* by_side[2][kBurst];
        uint16_t count[2] = {0, 0};
        for (unsigned i = 0; i < n; ++i) {
            --handoff_held_[static_cast<size_t>(origin_of(mbufs[i]))];
            const SideIndex side = mbufs[i]->port == inside_port ? kInside : kOutside;
            by_side[side][count[side]++] = mbufs[i];
        }
        process_burst(kInside, by_side[kInside], count[kInside], true);
        process_burst(kOutside, by_side[kOutside], count[kOutside], true);
    }
}

bool Worker::to_port_owner(SideIndex side, rte_mbuf* m, Ipv4Packet& p) {
    // Outside, with several workers: the ports' owner translates it.
    if (side == kOutside && workers_ > 1) {
        const auto pool_index = nat_.pool_index(p.dst);
        const auto owner = pool_index
                               ? external_endpoint_owner(*pool_index, p.protocol, p.dst, p.dst_port)
                               : std::nullopt;
        if (owner && *owner != index_) {
            m->hash.usr = (uint32_t{p.src_port} << 16) | p.dst_port;
            hand_off(*owner, m);
            return false;
        }
    }
    return true;
}

}  // namespace cgn::dp
