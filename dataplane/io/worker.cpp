// The worker: its poll loop, applying the control thread's settings and commands, classifying
// received frames, translating bursts (the NAT engine), hairpinning, and sending on. Steering
// between workers is in worker_steering.cpp, ARP and local traffic in local_traffic.cpp.
#include "dataplane/io/worker.hpp"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_prefetch.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "dataplane/nat/rewrite.hpp"

namespace cgn::dp {

using common::Counter;
using common::load_be16;
namespace eth = common::eth;

namespace {

bool is_broadcast(const uint8_t* mac) {
    return (mac[0] & mac[1] & mac[2] & mac[3] & mac[4] & mac[5]) == 0xff;
}

// Addresses a router never forwards from or to (RFC 1812 §5.3.7): unspecified, loopback,
// multicast and reserved, limited broadcast.
bool is_martian(uint32_t addr) {
    const uint32_t first = addr >> 24;
    return first == 0 || first == 127 || first >= 224;
}

}  // namespace

Worker::Worker(const WorkerSettings& settings, rte_mempool* pool, common::WorkerCounters& counters,
               const common::Clock& clock)
    : interfaces_{settings.inside, settings.outside},
      index_(settings.worker_index),
      workers_(settings.workers),
      handoff_(settings.handoff),
      control_(settings.control),
      pcp_requests_(settings.pcp_requests),
      pcp_answers_(settings.pcp_answers),
      pcp_limiter_(settings.pcp_requests != nullptr
                       ? std::make_unique<PcpRequestLimiter>(settings.pcp_request_rate,
                                                             settings.pcp_request_burst)
                       : nullptr),
      handoff_out_(settings.workers),
      pool_(pool),
      counters_(counters),
      clock_(clock),
      nat_(settings.nat, settings.worker_id, settings.socket_id, counters, settings.seed),
      steering_(settings.control != nullptr
                    ? settings.control->steering()
                    : Steering(settings.workers, &nat_.block_map(), settings.reta_size,
                               settings.nat.deterministic)),
      fragments_("cgn_frag_w" + std::to_string(settings.worker_id), settings.fragment_capacity,
                 settings.fragment_timeout_ms, settings.socket_id, settings.fragment_hold_budget),
      neighbors_inside_("cgn_nbr_in_w" + std::to_string(settings.worker_id),
                        settings.neighbor_capacity, settings.socket_id),
      neighbors_outside_("cgn_nbr_out_w" + std::to_string(settings.worker_id),
                         settings.neighbor_capacity, settings.socket_id),
      icmp_error_rate_(settings.icmp_error_rate),
      exempt_(settings.exempt_destinations),
      frame_limit_{static_cast<uint32_t>(eth::kHeaderLength + settings.inside.mtu),
                   static_cast<uint32_t>(eth::kHeaderLength + settings.outside.mtu)},
      smallest_egress_mtu_{std::min(settings.inside.mtu, settings.outside.mtu),
                           settings.inside.mtu} {
    // Registered once per process (the same name gives every worker the same offset).
    static const rte_mbuf_dynfield kOriginField = {"cgn_frame_origin", sizeof(uint8_t),
                                                   alignof(uint8_t), 0};
    origin_offset_ = rte_mbuf_dynfield_register(&kOriginField);
    if (settings.pcp_servers.size() > pcp_servers_.size())
        throw std::invalid_argument("at most " + std::to_string(pcp_servers_.size()) +
                                    " PCP server addresses");
    if (settings.pcp_servers.empty())
        pcp_servers_[pcp_server_count_++] = settings.inside.address.address.value;
    for (const common::Ipv4Address a : settings.pcp_servers) {
        pcp_servers_[pcp_server_count_++] = a.value;
        if (a != settings.inside.address.address) pcp_other_ = true;
    }
    if (origin_offset_ < 0)
        throw std::runtime_error("cannot register the mbuf field cgn_frame_origin: " +
                                 std::string(rte_strerror(rte_errno)));
}

common::FrameHeld Worker::held_frames() const {
    common::FrameHeld held;
    const auto add = [&](const rte_mbuf* m) {
        ++held.by_origin[static_cast<size_t>(origin_of(m))];
    };
    fragments_.for_each_held(add);
    for (unsigned side = 0; side < 2; ++side) {
        for (uint16_t i = 0; i < replay_count_[side]; ++i) add(replay_[side][i]);
        for (uint16_t i = 0; i < tx_[side].count; ++i) add(tx_[side].mbufs[i]);
    }
    neighbors_inside_.for_each_queued(add);
    neighbors_outside_.for_each_queued(add);
    for (size_t o = 0; o < common::kFrameOrigins; ++o) held.by_origin[o] += handoff_held_[o];
    return held;
}

Worker::~Worker() {
    for (unsigned side = 0; side < 2; ++side)
        rte_pktmbuf_free_bulk(replay_[side], replay_count_[side]);
    for (auto& q : tx_) rte_pktmbuf_free_bulk(q.mbufs, q.count);
    for (auto& q : handoff_out_) rte_pktmbuf_free_bulk(q.mbufs, q.count);
}

void Worker::run(const std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_acquire)) poll_once();
    if (control_ != nullptr) control_->offline(index_);
}

void Worker::apply_control() {
    const RuntimeSettings* settings = control_->settings();
    if (settings->generation != applied_generation_) {
        nat_.set_filtering(settings->filtering);
        nat_.set_timeouts(settings->timeouts);
        nat_.set_limits(settings->limits);
        nat_.set_block_hold_down_ms(settings->block_hold_down_ms);
        explicit_present_ = settings->explicit_mappings > 0;
        nat_.set_explicit_mappings_present(explicit_present_);
        if (index_ < settings->pool_additions.size())
            nat_.extend_pool(std::move(settings->pool_additions[index_]));
        applied_generation_ = settings->generation;
    }
    // A command whose answer did not fit in the done ring (never: the channel keeps at most a
    // ring's worth out per worker) is handed back before anything else.
    if (unanswered_ != nullptr) {
        if (!control_->done(index_, unanswered_)) return;
        unanswered_ = nullptr;
    }
    // A drop_address under way goes on first: its command is answered when the pass is done,
    // and the commands after it wait (they may depend on it).
    if (unfinished_ != nullptr) {
        if (!nat_.drop_address(unfinished_->addr, unfinished_cursor_, kDropAddressBudget)) return;
        WorkerCommand* command = unfinished_;
        unfinished_ = nullptr;
        command->result = 1;
        if (!answer(command)) return;
    }
    // Commands are a handful of table operations each; a bounded number per loop keeps the
    // loop's length bounded while the control thread serves bursts (PCP).
    for (unsigned i = 0; i < kCommandsPerLoop; ++i) {
        WorkerCommand* command = control_->next_command(index_);
        if (command == nullptr) break;
        int result = 1;
        switch (command->kind) {
            case WorkerCommand::Kind::reserve_port:
                result =
                    nat_.reserve_external_port(command->protocol, command->addr, command->port);
                break;
            case WorkerCommand::Kind::release_port:
                nat_.release_external_port(command->protocol, command->addr, command->port);
                break;
            case WorkerCommand::Kind::drop_dynamic_mapping:
                nat_.drop_mapping(command->protocol, command->addr, command->port,
                                  NatEngine::MappingKind::dynamic_mapping);
                break;
            case WorkerCommand::Kind::drop_explicit_mapping:
                nat_.drop_mapping(command->protocol, command->addr, command->port,
                                  NatEngine::MappingKind::explicit_mapping);
                break;
            case WorkerCommand::Kind::drop_address:
                unfinished_cursor_ = 0;
                if (!nat_.drop_address(command->addr, unfinished_cursor_, kDropAddressBudget)) {
                    unfinished_ = command;
                    return;
                }
                break;
            case WorkerCommand::Kind::pcp_hold:
            case WorkerCommand::Kind::pcp_release:
            case WorkerCommand::Kind::pcp_paired_address:
            case WorkerCommand::Kind::pcp_peer:
                result = pcp_command(*command);
                break;
        }
        // The results first, then the hand-back: the done ring's enqueue publishes them.
        command->result = result;
        if (!answer(command)) return;
    }
}

// The PCP server's questions about the subscriber `addr`, which this worker owns
// (control/pcp_nat.cpp turns the answers into PCP results).
int Worker::pcp_command(WorkerCommand& c) {
    using Status = NatEngine::HoldStatus;
    NatEngine::HoldResult r{Status::no_resources, 0, 0, 0};
    switch (c.kind) {
        case WorkerCommand::Kind::pcp_hold: {
            const std::span<const PeerFilter> filters(
                c.filters.data(), std::min<size_t>(c.filter_count, c.filters.size()));
            const bool exact = (c.flags & WorkerCommand::kExact) != 0;
            if (c.port_count == 0) {
                r = nat_.hold_mapping(c.protocol, c.addr, c.port, c.addr2, c.port2, exact, now_ms_,
                                      filters);
                break;
            }
            // RFC 7753: a port set; how many ports were held goes back in result_value.
            r = nat_.hold_port_set(c.protocol, c.addr, c.port, c.port_count,
                                   (c.flags & WorkerCommand::kParity) != 0, c.addr2, c.port2, exact,
                                   now_ms_, filters);
            r.lifetime_s = r.held_ports;
            break;
        }
        case WorkerCommand::Kind::pcp_release: {
            const bool released =
                c.port_count == 0 ? nat_.release_held_mapping(c.protocol, c.addr, c.port, now_ms_)
                                  : nat_.release_held_port_set(c.protocol, c.addr, c.port,
                                                               c.port_count, now_ms_) != 0;
            r.status = released ? Status::held : Status::not_authorized;
            break;
        }
        case WorkerCommand::Kind::pcp_paired_address:
            if (const auto a = nat_.paired_address(c.addr, now_ms_)) r = {Status::held, *a, 0, 0};
            break;
        case WorkerCommand::Kind::pcp_peer:
            r = nat_.peer_flow(c.protocol, c.addr, c.port, c.addr2, c.port2, now_ms_);
            break;
        default:
            break;
    }
    c.result_addr = r.ext_addr;
    c.result_port = r.ext_port;
    c.result_value = r.lifetime_s;
    return static_cast<int>(r.status);
}

bool Worker::answer(WorkerCommand* command) {
    if (control_->done(index_, command)) return true;
    unanswered_ = command;  // counted by the channel; handed back at the next loop
    return false;
}

void Worker::poll_once() {
    now_ms_ = clock_.now_ms();
    if (control_ != nullptr) apply_control();
    rte_mbuf* mbufs[kBurst];
    for (SideIndex side : {kInside, kOutside}) {
        const Interface& itf = interfaces_[side];
        const uint16_t n = rte_eth_rx_burst(itf.port_id, itf.rx_queue, mbufs, kBurst);
        if (n == 0) continue;
        counters_.add(side == kInside ? Counter::rx_inside : Counter::rx_outside, n);
        const auto origin =
            side == kInside ? common::FrameOrigin::inside : common::FrameOrigin::outside;
        for (uint16_t i = 0; i < n; ++i) set_origin(mbufs[i], origin);
        if (workers_ == 1)
            process_burst(side, mbufs, n, false);
        else
            steer(side, mbufs, n);
    }
    if (workers_ > 1) receive_handoff();
    if (pcp_answers_ != nullptr) send_pcp_answers();
    for (SideIndex side : {kInside, kOutside}) {
        neighbors(side).tick(
            now_ms_, kNeighborTickBudget,
            [&](NeighborTable::Entry& e) {
                e.last_request_ms = now_ms_;
                ++e.requests;
                send_arp_request(side, e.ip);
            },
            [&](NeighborTable::Entry& e) {
                for (unsigned i = 0; i < e.queued; ++i)
                    drop(e.queue[i], Counter::drop_neighbor_unreachable);
            });
    }
    nat_.expire(now_ms_, kExpiryBudget);
    fragments_.expire(now_ms_, kExpiryBudget,
                      [this](rte_mbuf* m) { drop(m, Counter::drop_fragment_timeout); });
    for (unsigned w = 0; w < workers_; ++w) flush_handoff(w);
    flush_tx(kInside);
    flush_tx(kOutside);
    // Nothing read from the control channel in this loop is used after this point.
    if (control_ != nullptr) control_->quiescent(index_);
}

// RFC 4787 REQ-9, RFC 5382 REQ-8: a subscriber reaching another subscriber through its
// external endpoint. The packet has been translated inside to outside (its source is now the
// sender's external endpoint, as REQ-9 asks the receiver to see); it then goes through the
// outside to inside translation as if it had come from outside, on the worker that owns its
// destination, and leaves on the inside port.
void Worker::hairpin(rte_mbuf* m, Ipv4Packet& p) {
    counters_.add(Counter::hairpinned);
    const unsigned owner = workers_ == 1 ? index_ : owner_of(kOutside, m);
    if (owner != index_) {
        // The owner takes it as a frame received on the outside port.
        m->port = interfaces_[kOutside].port_id;
        std::memcpy(rte_pktmbuf_mtod(m, uint8_t*) + eth::kDst,
                    interfaces_[kOutside].mac.bytes.data(), 6);
        hand_off(owner, m);
        return;
    }
    Ipv4Packet* packet = &p;
    bool forward = false;
    if (p.icmp_error)
        forward = nat_.translate_icmp_error(p, false);
    else
        nat_.out2in(&packet, 1, now_ms_, &forward);
    if (!forward) {
        finish(m);  // counted by the NAT engine
        return;
    }
    decrement_ttl(p);
    output(kInside, m, p.dst);
}

void Worker::process_burst(SideIndex side, rte_mbuf** mbufs, uint16_t n, bool from_handoff) {
    Ipv4Packet parsed[kBurst];
    Ipv4Packet* to_translate[kBurst];
    rte_mbuf* translate_mbufs[kBurst];
    unsigned count = 0;
    uint32_t too_big = 0;  // bit i: to_translate[i] may not fit the link it leaves on
    for (uint16_t i = 0; i < n; ++i) {
        if (i + 1 < n) rte_prefetch0(rte_pktmbuf_mtod(mbufs[i + 1], void*));
        if (classify(side, mbufs[i], parsed[count], from_handoff)) continue;
        if (parsed[count].icmp_error) {
            // Rare: translated one by one, outside the burst's bulk lookup.
            if (nat_.translate_icmp_error(parsed[count], side == kInside)) {
                if (side == kInside && nat_.is_pool_address(parsed[count].dst)) {
                    hairpin(mbufs[i], parsed[count]);  // about a hairpinned packet
                    continue;
                }
                decrement_ttl(parsed[count]);
                output(side == kInside ? kOutside : kInside, mbufs[i], parsed[count].dst);
            } else {
                finish(mbufs[i]);  // counted by the NAT engine
            }
            continue;
        }
        if (parsed[count].fragment &&
            !resolve_fragment(side, mbufs[i], parsed[count], from_handoff))
            continue;
        to_translate[count] = &parsed[count];
        translate_mbufs[count] = mbufs[i];
        too_big |= uint32_t{parsed[count].total_length > smallest_egress_mtu_[side]} << count;
        ++count;
    }
    if (count != 0) translate(side, to_translate, translate_mbufs, parsed, count, too_big);
    // Fragments that waited for the first fragment of their datagram, which this burst brought.
    if (replay_count_[side] != 0) {
        rte_mbuf* replay[kBurst];
        const uint16_t n_replay = replay_count_[side];
        std::memcpy(replay, replay_[side], n_replay * sizeof(rte_mbuf*));
        replay_count_[side] = 0;
        replaying_ = true;
        process_burst(side, replay, n_replay, false);
        replaying_ = false;
    }
}

void Worker::translate(SideIndex side, Ipv4Packet** to_translate, rte_mbuf** translate_mbufs,
                       Ipv4Packet* parsed, unsigned count, uint32_t too_big) {
    // A DF packet too big for its link is answered quoting it as its sender sent it (RFC 5508
    // §7.1.1: the sender must recognise it), so its header is copied before translation; it is
    // answered only if the NAT accepts it (no ICMP for what filtering or a quota refuses).
    if (too_big != 0) [[unlikely]]
        too_big = keep_too_big_quotes(side, to_translate, count, too_big);
    bool forward[kBurst];
    if (side == kInside)
        nat_.in2out(to_translate, count, now_ms_, forward);
    else
        nat_.out2in(to_translate, count, now_ms_, forward);
    if (too_big != 0) [[unlikely]]
        refuse_too_big(side, translate_mbufs, forward, too_big);
    const SideIndex out = side == kInside ? kOutside : kInside;
    for (unsigned i = 0; i < count; ++i) {
        if (!forward[i]) {
            if (translate_mbufs[i] == nullptr) continue;  // too big: dropped by refuse_too_big
            // RFC 6888 REQ-11: a subscriber refused at a quota (or for want of ports) is told
            // with destination unreachable, host unreachable, at the ICMP error rate.
            if (parsed[i].refused)
                send_icmp_error(kInside, translate_mbufs[i], parsed[i],
                                common::icmp::kDestUnreachable, common::icmp::kCodeHostUnreachable,
                                Counter::icmp_quota_unreachable_sent);
            finish(translate_mbufs[i]);  // counted by the NAT engine
            continue;
        }
        if (side == kInside && nat_.is_pool_address(parsed[i].dst)) {
            hairpin(translate_mbufs[i], parsed[i]);
            continue;
        }
        decrement_ttl(parsed[i]);
        output(out, translate_mbufs[i], parsed[i].dst);
    }
}

bool Worker::resolve_fragment(SideIndex side, rte_mbuf* m, Ipv4Packet& p, bool from_handoff) {
    const uint16_t frag = load_be16(p.l3 + common::ipv4::kFragment);
    const uint32_t offset_bytes = (frag & common::ipv4::kFragmentOffsetMask) * 8u;
    const bool last = (frag & common::ipv4::kFlagMoreFragments) == 0;
    // Resolved by the outside datagram's fragment owner and handed here, to the owner of its
    // ports, with the ports in the mbuf's hash field.
    if (side == kOutside && workers_ > 1 && from_handoff &&
        fragment_owner(p.src, p.dst, p.ip_id) != index_) {
        if (!p.l4_header) {
            p.src_port = static_cast<uint16_t>(m->hash.usr >> 16);
            p.dst_port = static_cast<uint16_t>(m->hash.usr & 0xffff);
        }
        return true;
    }
    if (replaying_) {
        // Held until its first fragment came, which gave it its ports (already counted).
        p.src_port = static_cast<uint16_t>(m->hash.usr >> 16);
        p.dst_port = static_cast<uint16_t>(m->hash.usr & 0xffff);
        return to_port_owner(side, m, p);
    }
    const FragmentTable::Key key{p.src, p.dst, p.ip_id, p.protocol, static_cast<uint8_t>(side)};
    FragmentTable::Entry* e = fragments_.find_or_create(key, now_ms_);
    if (e == nullptr) {
        // Untracked: a first fragment still goes through (it has its ports); the others
        // cannot.
        if (p.l4_header) return true;
        drop(m, Counter::drop_fragment_table_full);
        return false;
    }
    if (p.l4_header) {
        // The first fragment: the datagram's ports, and the fragments that waited for them.
        e->known = true;
        e->src_port = p.src_port;
        e->dst_port = p.dst_port;
        const uint32_t ports = (uint32_t{p.src_port} << 16) | p.dst_port;
        rte_mbuf* held_mbufs[FragmentTable::kMaxHeld];
        const unsigned n_held = fragments_.take_held(e, held_mbufs);
        for (unsigned i = 0; i < n_held; ++i) {
            rte_mbuf* held = held_mbufs[i];
            if (replay_count_[side] == kBurst) {
                drop(held, Counter::drop_fragment_hold_full);
                continue;
            }
            // Count its bytes now: the entry may be complete (and gone) before it is replayed.
            const uint8_t* ip = rte_pktmbuf_mtod(held, const uint8_t*) + eth::kHeaderLength;
            const uint16_t held_frag = load_be16(ip + common::ipv4::kFragment);
            const uint32_t held_len =
                load_be16(ip + common::ipv4::kTotalLength) - (ip[0] & 0x0f) * 4u;
            FragmentTable::add_bytes(e, (held_frag & common::ipv4::kFragmentOffsetMask) * 8u,
                                     held_len, (held_frag & common::ipv4::kFlagMoreFragments) == 0);
            held->hash.usr = ports;
            replay_[side][replay_count_[side]++] = held;
        }
    } else if (!e->known) {
        // REQ-14a: the few held per datagram, and the worker's share of the mbuf pool.
        switch (fragments_.hold(e, m)) {
            case FragmentTable::HoldResult::held:
                counters_.add(Counter::fragments_held);
                break;
            case FragmentTable::HoldResult::datagram_full:
                drop(m, Counter::drop_fragment_hold_full);
                break;
            case FragmentTable::HoldResult::budget_full:
                drop(m, Counter::drop_fragment_hold_budget);
                break;
        }
        return false;
    } else {
        p.src_port = e->src_port;
        p.dst_port = e->dst_port;
    }
    fragments_.account(e, offset_bytes, p.l4_length, last);  // may free e
    return to_port_owner(side, m, p);
}

bool Worker::classify(SideIndex side, rte_mbuf* m, Ipv4Packet& p, bool from_handoff) {
    const Interface& itf = interfaces_[side];
    uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
    const uint32_t length = rte_pktmbuf_data_len(m);
    if (length < eth::kHeaderLength) {
        drop(m, Counter::drop_runt);
        return true;
    }
    const uint8_t* dst_mac = frame + eth::kDst;
    const bool broadcast = is_broadcast(dst_mac);
    const uint16_t type = load_be16(frame + eth::kType);
    if (!broadcast && std::memcmp(dst_mac, itf.mac.bytes.data(), 6) != 0) {
        // An ARP copy (see steer()) of a frame the worker that received it dropped, and
        // counted: the copy ends without a second drop.
        if (from_handoff && type == eth::kTypeArp)
            consume_arp_copy(m);
        else
            drop(m, Counter::drop_not_for_us_l2);
        return true;
    }
    if (type == eth::kTypeArp) {
        handle_arp(side, m, frame + eth::kHeaderLength, length - eth::kHeaderLength, !from_handoff);
        return true;
    }
    if (type != eth::kTypeIpv4 || broadcast) {
        drop(m, type != eth::kTypeIpv4 ? Counter::drop_ethertype : Counter::drop_not_for_us_l2);
        return true;
    }
    if (auto reason = parse_ipv4(frame + eth::kHeaderLength, length - eth::kHeaderLength, p)) {
        drop(m, *reason);
        return true;
    }
    if (p.dst == interfaces_[kInside].address.address.value ||
        p.dst == interfaces_[kOutside].address.address.value ||
        (pcp_other_ && side == kInside && is_pcp_server(p.dst))) {
        handle_local(side, m, p);
        return true;
    }
    if (is_martian(p.src) || is_martian(p.dst) ||
        p.dst == (itf.address.subnet.address.value | ~itf.address.subnet.mask())) {
        drop(m, Counter::drop_ipv4_martian);
        return true;
    }
    // Inside hosts reach each other directly; sent to us, such a packet would leave through
    // the outside port with a private destination.
    if (side == kInside && itf.address.subnet.contains(common::Ipv4Address{p.dst})) {
        drop(m, Counter::drop_ipv4_martian);
        return true;
    }
    // RFC 6888 REQ-6: traffic between subscribers and an exempt destination is routed as it
    // is, both ways.
    const bool exempt =
        !exempt_.empty() &&
        (side == kInside ? is_exempt(p.dst) : is_exempt(p.src) && !nat_.is_pool_address(p.dst));
    if (side == kOutside && !exempt && !nat_.is_pool_address(p.dst)) {
        drop(m, Counter::drop_ipv4_martian);
        return true;
    }
    // RFC 1812 §5.3.1: a packet whose TTL would reach zero is discarded with time exceeded.
    if (p.ttl <= 1) {
        send_time_exceeded(side, m, p);
        drop(m, Counter::drop_ttl_exceeded);
        return true;
    }
    if (exempt) {
        forward_exempt(side, m, p);
        return true;
    }
    if (auto reason = parse_transport(p)) {
        drop(m, *reason);
        return true;
    }
    return false;
}

// RFC 6888 REQ-6: a packet to or from an exempt destination leaves untranslated.
void Worker::forward_exempt(SideIndex side, rte_mbuf* m, Ipv4Packet& p) {
    const SideIndex out = side == kInside ? kOutside : kInside;
    // RFC 4787 REQ-13: untranslated, so the packet itself is the quote (before its TTL
    // changes). Without DF, output() fragments it.
    if (p.total_length > interfaces_[out].mtu && (load_be16(p.l3 + common::ipv4::kFragment) &
                                                  common::ipv4::kFlagDontFragment)) [[unlikely]] {
        send_icmp_error(side, m, p, common::icmp::kDestUnreachable,
                        common::icmp::kCodeFragmentationNeeded, Counter::icmp_frag_needed_sent,
                        interfaces_[out].mtu);
        drop(m, Counter::drop_too_big_df);
        return;
    }
    counters_.add(Counter::forwarded_untranslated);
    decrement_ttl(p);
    output(out, m, p.dst);
}

void Worker::send_to_next_hop(SideIndex side, rte_mbuf* m, uint32_t dst) {
    const Interface& itf = interfaces_[side];
    uint32_t next_hop = dst;
    if (!itf.address.subnet.contains(common::Ipv4Address{dst})) {
        if (!itf.gateway) {
            drop(m, Counter::drop_no_route);
            return;
        }
        next_hop = itf.gateway->value;
    }
    // Most packets of a side share one next hop (the gateway, or the BNG): reuse the last
    // entry while it still holds that address, and skip the hash lookup.
    NeighborTable::Entry* e = last_neighbor_[side];
    if (e == nullptr || e->ip != next_hop || e->state == NeighborTable::State::free) {
        e = neighbors(side).find_or_create(next_hop, now_ms_);
        last_neighbor_[side] = e;
    }
    if (e == nullptr) {
        drop(m, Counter::drop_neighbor_table_full);
        return;
    }
    e->last_used_ms = now_ms_;
    switch (e->state) {
        case NeighborTable::State::reachable:
            if (now_ms_ - e->confirmed_ms > NeighborTable::kReachableMs &&
                now_ms_ - e->last_request_ms > NeighborTable::kRetransmitMs) {
                // Still usable; ask again so a moved host is noticed.
                e->last_request_ms = now_ms_;
                send_arp_request(side, next_hop);
            }
            transmit_to(side, m, e->mac);
            return;
        case NeighborTable::State::failed:
            if (now_ms_ - e->last_request_ms < NeighborTable::kFailedHoldMs) {
                drop(m, Counter::drop_neighbor_unreachable);
                return;
            }
            e->state = NeighborTable::State::incomplete;
            e->requests = 0;
            [[fallthrough]];
        case NeighborTable::State::incomplete:
        case NeighborTable::State::free:
            if (e->queued == NeighborTable::kQueueLength) {
                drop(m, Counter::drop_neighbor_queue_full);
                return;
            }
            e->queue[e->queued++] = m;
            counters_.add(Counter::neighbor_packets_queued);
            if (e->requests == 0) {
                e->requests = 1;
                e->last_request_ms = now_ms_;
                send_arp_request(side, next_hop);
            }
            return;
    }
}

void Worker::transmit_to(SideIndex side, rte_mbuf* m, const common::MacAddress& dst_mac) {
    uint8_t* frame = rte_pktmbuf_mtod(m, uint8_t*);
    std::memcpy(frame + eth::kDst, dst_mac.bytes.data(), 6);
    std::memcpy(frame + eth::kSrc, interfaces_[side].mac.bytes.data(), 6);
    enqueue_tx(side, m);
}

void Worker::enqueue_tx(SideIndex side, rte_mbuf* m) {
    TxQueue& q = tx_[side];
    if (q.count == kTxCapacity) flush_tx(side);
    if (q.count == kTxCapacity) {
        drop(m, Counter::drop_tx_full);
        return;
    }
    q.mbufs[q.count++] = m;
}

void Worker::flush_tx(SideIndex side) {
    TxQueue& q = tx_[side];
    if (q.count == 0) return;
    const Interface& itf = interfaces_[side];
    // Every queued frame ends here, sent or dropped: counted before the PMD owns them.
    uint64_t ended[common::kFrameOrigins] = {};
    for (uint16_t i = 0; i < q.count; ++i) ++ended[static_cast<size_t>(origin_of(q.mbufs[i]))];
    for (size_t o = 0; o < common::kFrameOrigins; ++o)
        if (ended[o] != 0)
            counters_.add(common::ended_counter(static_cast<common::FrameOrigin>(o)), ended[o]);
    const uint16_t sent = rte_eth_tx_burst(itf.port_id, itf.tx_queue, q.mbufs, q.count);
    counters_.add(side == kInside ? Counter::tx_inside : Counter::tx_outside, sent);
    if (sent < q.count) {
        counters_.add(Counter::drop_tx_full, q.count - sent);
        rte_pktmbuf_free_bulk(q.mbufs + sent, q.count - sent);
    }
    q.count = 0;
}

void Worker::drop(rte_mbuf* m, Counter c) {
    counters_.add(c);
    finish(m);
}

}  // namespace cgn::dp
