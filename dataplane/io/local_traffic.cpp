// Traffic cgnd itself answers or originates: ARP (RFC 826), ICMP echo to its own addresses
// (RFC 792) and the ICMP errors it sends: time exceeded (RFC 792, RFC 1812 §4.3.2.3), host
// unreachable for a refused subscriber (RFC 6888 REQ-11), fragmentation needed (RFC 1191, RFC
// 4787 REQ-13).

#include <rte_mbuf.h>

#include <algorithm>
#include <cstring>

#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/headers.hpp"
#include "dataplane/io/worker.hpp"

namespace cgn::dp {

using common::Counter;
using common::load_be16;
using common::load_be32;
using common::store_be16;
using common::store_be32;
namespace eth = common::eth;
namespace arp = common::arp;
namespace ipv4 = common::ipv4;
namespace icmp = common::icmp;
namespace udp = common::udp;

namespace {

constexpr uint8_t kDefaultTtl = 64;
// RFC 6887 §19.1: the PCP server port (NAT-PMP's too, RFC 6886 §1.1).
constexpr uint16_t kPcpPort = 5351;

void write_ethernet(uint8_t* frame, const common::MacAddress& dst, const common::MacAddress& src,
                    uint16_t type) {
    std::memcpy(frame + eth::kDst, dst.bytes.data(), 6);
    std::memcpy(frame + eth::kSrc, src.bytes.data(), 6);
    store_be16(frame + eth::kType, type);
}

void write_arp(uint8_t* a, uint16_t op, const common::MacAddress& sender_mac, uint32_t sender_ip,
               const common::MacAddress& target_mac, uint32_t target_ip) {
    store_be16(a + arp::kHardwareType, arp::kHardwareEthernet);
    store_be16(a + arp::kProtocolType, eth::kTypeIpv4);
    a[arp::kHardwareLength] = 6;
    a[arp::kProtocolLength] = 4;
    store_be16(a + arp::kOperation, op);
    std::memcpy(a + arp::kSenderMac, sender_mac.bytes.data(), 6);
    store_be32(a + arp::kSenderIp, sender_ip);
    std::memcpy(a + arp::kTargetMac, target_mac.bytes.data(), 6);
    store_be32(a + arp::kTargetIp, target_ip);
}

common::MacAddress mac_at(const uint8_t* p) {
    common::MacAddress mac;
    std::memcpy(mac.bytes.data(), p, 6);
    return mac;
}

}  // namespace

void Worker::handle_arp(SideIndex side, rte_mbuf* m, uint8_t* a, uint32_t length, bool answer) {
    const Interface& itf = interfaces_[side];
    if (length < arp::kLength || load_be16(a + arp::kHardwareType) != arp::kHardwareEthernet ||
        load_be16(a + arp::kProtocolType) != eth::kTypeIpv4 || a[arp::kHardwareLength] != 6 ||
        a[arp::kProtocolLength] != 4) {
        // A copy's original was counted by the worker that received it.
        if (answer)
            drop(m, Counter::drop_arp_malformed);
        else
            consume_arp_copy(m);
        return;
    }
    const uint16_t op = load_be16(a + arp::kOperation);
    const uint32_t sender_ip = load_be32(a + arp::kSenderIp);
    const uint32_t target_ip = load_be32(a + arp::kTargetIp);
    const common::MacAddress sender_mac = mac_at(a + arp::kSenderMac);
    const bool for_us = target_ip == itf.address.address.value ||
                        (side == kOutside && nat_.is_pool_address(target_ip)) ||
                        (side == kInside && pcp_other_ && is_pcp_server(target_ip));

    // RFC 826 "merge": refresh an entry we have; create one when the sender asks for us (it is
    // about to talk to us, and we will answer it).
    bool learned = false;
    if (itf.address.subnet.contains(common::Ipv4Address{sender_ip}) &&
        sender_ip != itf.address.address.value) {
        NeighborTable::Entry* e = neighbors(side).find(sender_ip);
        if (e == nullptr && for_us) e = neighbors(side).find_or_create(sender_ip, now_ms_);
        if (e != nullptr) {
            e->mac = sender_mac;
            e->state = NeighborTable::State::reachable;
            e->confirmed_ms = now_ms_;
            e->requests = 0;
            learned = true;
            counters_.add(Counter::arp_entries_learned);
            for (unsigned i = 0; i < e->queued; ++i) transmit_to(side, e->queue[i], e->mac);
            e->queued = 0;
        }
    }

    if (!answer) {
        // A copy from the worker that received it: it answers and counts; we only learn.
        consume_arp_copy(m);
        return;
    }
    if (op == arp::kOpRequest && for_us) {
        // Answer in place: the request's buffer becomes the reply.
        uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
        write_ethernet(frame, sender_mac, itf.mac, eth::kTypeArp);
        write_arp(a, arp::kOpReply, itf.mac, target_ip, sender_mac, sender_ip);
        // The reply is the ARP message alone: whatever followed the request (its padding, or
        // more, even past the MTU) is not sent back.
        rte_pktmbuf_data_len(m) = eth::kHeaderLength + arp::kLength;
        rte_pktmbuf_pkt_len(m) = rte_pktmbuf_data_len(m);
        counters_.add(Counter::arp_requests_answered);
        enqueue_tx(side, m);
        return;
    }
    if (learned) {
        // A reply (or request) that taught us a neighbour: consumed.
        counters_.add(Counter::arp_consumed);
        finish(m);
        return;
    }
    drop(m, op == arp::kOpRequest || op == arp::kOpReply ? Counter::drop_arp_not_for_us
                                                         : Counter::drop_arp_malformed);
}

void Worker::send_arp_request(SideIndex side, uint32_t target) {
    const Interface& itf = interfaces_[side];
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) return;         // pool empty: the retransmit timer asks again
    constexpr uint16_t kLength = 60;  // minimum Ethernet frame without FCS
    if (rte_pktmbuf_append(m, kLength) == nullptr) {
        rte_pktmbuf_free(m);
        return;
    }
    uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
    std::memset(frame, 0, kLength);
    write_ethernet(frame, common::MacAddress::broadcast(), itf.mac, eth::kTypeArp);
    write_arp(frame + eth::kHeaderLength, arp::kOpRequest, itf.mac, itf.address.address.value,
              common::MacAddress{}, target);
    set_origin(m, common::FrameOrigin::generated);
    counters_.add(Counter::arp_requests_sent);
    enqueue_tx(side, m);
}

// RFC 6887 §7 (and RFC 6886 §3): PCP and NAT-PMP arrive as UDP to port 5351. The server is the
// control thread's and serves the inside only (§18: not the Internet).
bool Worker::take_pcp_request(SideIndex side, rte_mbuf* m, const Ipv4Packet& p) {
    if (p.protocol != ipv4::kProtoUdp || p.fragment || p.l4_length < udp::kHeaderLength ||
        load_be16(p.l4 + udp::kDstPort) != kPcpPort)
        return false;
    if (side == kOutside) {
        drop(m, Counter::drop_pcp_from_outside);
        return true;
    }
    if (pcp_requests_ == nullptr || !is_pcp_server(p.dst)) return false;
    // §18: each subscriber at its own rate, before the ring all of this worker's subscribers
    // share.
    if (!pcp_limiter_->admit(p.src, now_ms_)) {
        drop(m, Counter::drop_pcp_rate_limited);
        return true;
    }
    if (rte_ring_sp_enqueue(pcp_requests_, m) != 0) {
        drop(m, Counter::drop_pcp_punt_full);
        return true;
    }
    // The frame leaves this worker for good: the control thread frees it.
    counters_.add(Counter::pcp_requests_punted);
    count_ended(m);
    return true;
}

// The control thread's answers: whole frames for the inside port, addressed to the requester.
void Worker::send_pcp_answers() {
    rte_mbuf* answers[kBurst];
    const unsigned n = rte_ring_sc_dequeue_burst(pcp_answers_, reinterpret_cast<void**>(answers),
                                                 kBurst, nullptr);
    for (unsigned i = 0; i < n; ++i) {
        rte_mbuf* m = answers[i];
        set_origin(m, common::FrameOrigin::generated);
        counters_.add(Counter::pcp_answers_sent);
        // An answer goes back to the Ethernet address its request came from. An unsolicited
        // one (RFC 6887 §14, after a restart: no request to answer) has none (all zeros) and
        // is routed to its destination like any packet for the inside (ARP included).
        const uint8_t* frame = rte_pktmbuf_mtod(m, const uint8_t*);
        if (mac_at(frame + eth::kDst) == common::MacAddress{})
            send_to_next_hop(kInside, m, load_be32(frame + eth::kHeaderLength + ipv4::kDst));
        else
            enqueue_tx(kInside, m);
    }
}

void Worker::handle_local(SideIndex side, rte_mbuf* m, Ipv4Packet& p) {
    if (take_pcp_request(side, m, p)) return;
    // Only ICMP echo requests to our own addresses are served (ping the gateway).
    if (p.protocol != ipv4::kProtoIcmp || p.fragment || p.l4_length < icmp::kHeaderLength ||
        p.l4[icmp::kType] != icmp::kEchoRequest) {
        drop(m, Counter::drop_for_us);
        return;
    }
    uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
    const common::MacAddress requester = mac_at(frame + eth::kSrc);
    uint8_t* ip = p.l3;
    store_be32(ip + ipv4::kSrc, p.dst);
    store_be32(ip + ipv4::kDst, p.src);
    ip[ipv4::kTtl] = kDefaultTtl;
    store_be16(ip + ipv4::kChecksum, 0);
    store_be16(ip + ipv4::kChecksum,
               common::checksum_finish(common::checksum_partial(ip, p.header_length)));
    const uint16_t old_word = load_be16(p.l4);
    p.l4[icmp::kType] = icmp::kEchoReply;
    store_be16(p.l4 + icmp::kChecksum, common::checksum_update16(load_be16(p.l4 + icmp::kChecksum),
                                                                 old_word, load_be16(p.l4)));
    counters_.add(Counter::icmp_echo_answered);
    // The reply is the IP packet alone: an Ethernet trailer after the request is not sent back.
    // No frame longer than the link's MTU leaves either: a request that long (a port may
    // receive one) is answered in fragments, or not at all with DF set. (Both caught by the
    // output checks of cgn-fuzz-packet-path, docs/security.md.)
    rte_pktmbuf_trim(
        m, static_cast<uint16_t>(rte_pktmbuf_pkt_len(m) - eth::kHeaderLength - p.total_length));
    if (rte_pktmbuf_pkt_len(m) > frame_limit_[side]) [[unlikely]] {
        output_too_big(side, m, p.src);
        return;
    }
    transmit_to(side, m, requester);
}

bool Worker::take_icmp_token() {
    // Token bucket: icmp_error_rate_ tokens per second, burst of one second's worth. Kept in
    // thousandths of a token, so that a millisecond adds exactly icmp_error_rate_ of them: a
    // whole-token count would round a millisecond's share down to nothing below 1000/s, and a
    // bucket asked every millisecond would never refill.
    if (now_ms_ > icmp_refill_ms_) {
        icmp_tokens_ = std::min<uint64_t>(
            uint64_t{icmp_error_rate_} * 1000,
            icmp_tokens_ + std::min<uint64_t>(now_ms_ - icmp_refill_ms_, 1000) * icmp_error_rate_);
        icmp_refill_ms_ = now_ms_;
    }
    if (icmp_tokens_ < 1000) return false;
    icmp_tokens_ -= 1000;
    return true;
}

void Worker::send_time_exceeded(SideIndex side, rte_mbuf* m, const Ipv4Packet& p) {
    send_icmp_error(side, m, p, icmp::kTimeExceeded, icmp::kCodeTtlExceeded,
                    Counter::icmp_time_exceeded_sent);
}

bool Worker::may_answer_with_icmp_error(const Ipv4Packet& p) {
    // RFC 1812 §4.3.2.7: no ICMP error about an ICMP error or a non-first fragment.
    if ((load_be16(p.l3 + ipv4::kFragment) & ipv4::kFragmentOffsetMask) != 0) return false;
    return p.protocol != ipv4::kProtoIcmp ||
           (p.l4_length >= 1 && (p.l4[0] == icmp::kEchoRequest || p.l4[0] == icmp::kEchoReply));
}

void Worker::send_icmp_error(SideIndex side, rte_mbuf* m, const Ipv4Packet& p, uint8_t type,
                             uint8_t code, Counter sent, uint16_t next_hop_mtu) {
    if (!may_answer_with_icmp_error(p)) return;
    send_icmp_error_quoting(side, rte_pktmbuf_mtod(m, const uint8_t*) + eth::kSrc, p.l3,
                            icmp_quote_length(p), type, code, next_hop_mtu, sent);
}

void Worker::send_icmp_error_quoting(SideIndex side, const uint8_t* sender_mac,
                                     const uint8_t* quote, uint16_t quote_length, uint8_t type,
                                     uint8_t code, uint16_t next_hop_mtu, Counter sent) {
    if (!take_icmp_token()) {
        counters_.add(Counter::drop_icmp_rate_limited);
        return;
    }
    rte_mbuf* reply = rte_pktmbuf_alloc(pool_);
    if (reply == nullptr) return;
    const Interface& itf = interfaces_[side];
    const uint16_t ip_length =
        static_cast<uint16_t>(ipv4::kMinHeaderLength + icmp::kHeaderLength + quote_length);
    const uint16_t frame_length = static_cast<uint16_t>(eth::kHeaderLength + ip_length);
    if (rte_pktmbuf_append(reply, frame_length) == nullptr) {
        rte_pktmbuf_free(reply);
        return;
    }
    uint8_t* frame = rte_pktmbuf_mtod(reply, uint8_t*);
    write_ethernet(frame, mac_at(sender_mac), itf.mac, eth::kTypeIpv4);
    uint8_t* ip = frame + eth::kHeaderLength;
    std::memset(ip, 0, ipv4::kMinHeaderLength + icmp::kHeaderLength);
    ip[ipv4::kVersionIhl] = 0x45;
    // RFC 5508 §7.7: "ICMP messages generated by the NAT device SHOULD copy the DiffServ
    // codepoint of the packet that caused the ICMP message"; the ECN bits are not copied (RFC
    // 3168 §5: they belong to the transport that set them).
    ip[ipv4::kTos] = quote[ipv4::kTos] & ipv4::kDscpMask;
    store_be16(ip + ipv4::kTotalLength, ip_length);
    ip[ipv4::kTtl] = kDefaultTtl;
    ip[ipv4::kProtocol] = ipv4::kProtoIcmp;
    store_be32(ip + ipv4::kSrc, itf.address.address.value);
    store_be32(ip + ipv4::kDst, load_be32(quote + ipv4::kSrc));
    store_be16(ip + ipv4::kChecksum,
               common::checksum_finish(common::checksum_partial(ip, ipv4::kMinHeaderLength)));
    uint8_t* ic = ip + ipv4::kMinHeaderLength;
    ic[icmp::kType] = type;
    ic[icmp::kCode] = code;
    // RFC 1191 §4: the next-hop MTU of "fragmentation needed"; 0 (unused) in the others.
    store_be16(ic + icmp::kNextHopMtu, next_hop_mtu);
    std::memcpy(ic + icmp::kHeaderLength, quote, quote_length);
    store_be16(ic + icmp::kChecksum, common::checksum_finish(common::checksum_partial(
                                         ic, icmp::kHeaderLength + quote_length)));
    set_origin(reply, common::FrameOrigin::generated);
    counters_.add(sent);
    enqueue_tx(side, reply);
}

}  // namespace cgn::dp
