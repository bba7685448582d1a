#pragma once
// One packet worker: polls its RX queue on the inside and outside ports, classifies each frame
// (ARP, for us, translate, drop), translates bursts through its NatEngine, resolves next hops
// and transmits. One Worker object per worker lcore; everything it touches is its own
// (session tables, neighbour caches, counters) except the mempool and the ports' queues
// assigned to it. No globals: the context is passed to the constructor.
//
// DESIGN invariant 1: the loop takes no lock, makes no syscall (the PMD's own TX kick aside),
// allocates no memory (mbufs come from the preallocated pool) and throws nothing.

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/address.hpp"
#include "common/clock.hpp"
#include "common/counters.hpp"
#include "common/frame_accounting.hpp"
#include "dataplane/io/control_channel.hpp"
#include "dataplane/io/fragments.hpp"
#include "dataplane/io/handoff.hpp"
#include "dataplane/io/neighbor_table.hpp"
#include "dataplane/io/pcp_request_limiter.hpp"
#include "dataplane/nat/ipv4_packet.hpp"
#include "dataplane/nat/nat_engine.hpp"
#include "dataplane/nat/steering.hpp"

namespace cgn::dp {

// One side of the NAT as a worker sees it.
struct Interface {
    uint16_t port_id = 0;
    uint16_t rx_queue = 0;
    uint16_t tx_queue = 0;
    common::MacAddress mac;
    common::InterfaceAddress address;
    std::optional<common::Ipv4Address> gateway;
    // The IP MTU of the link (RFC 4787 REQ-13/13a, RFC 5508 §7.1.1): no packet longer leaves
    // on this side; a longer one is fragmented (DF clear) or refused with ICMP fragmentation
    // needed (DF set).
    uint16_t mtu = 1500;
};

struct WorkerSettings {
    unsigned worker_id = 0;  // unique in the process: names the worker's tables
    // This worker's place among the workers (also nat.worker_index / nat.workers), and the
    // rings to hand packets to the others (null with one worker).
    unsigned worker_index = 0;
    unsigned workers = 1;
    HandoffRings* handoff = nullptr;
    // Settings, explicit mappings and commands from the control thread (null: the settings
    // given here stay as they are, and there are no explicit mappings).
    ControlChannel* control = nullptr;
    // The RSS indirection table size the inside port hashes with (see PortSteering), so that
    // this worker computes the same owner as the NIC. Only without a control channel: with
    // one, the channel's Steering is the one source of truth for workers and control thread.
    uint32_t reta_size = kDefaultRetaSize;
    int socket_id = 0;
    uint64_t seed = 1;
    Interface inside;
    Interface outside;
    NatSettings nat;
    uint32_t icmp_error_rate = 1000;  // per second
    // Destinations forwarded without translation (RFC 6888 REQ-6), both ways.
    std::vector<common::Ipv4Prefix> exempt_destinations;
    uint32_t neighbor_capacity = 4096;
    // Virtual reassembly (RFC 4787 REQ-14): datagrams tracked at once, and how long one waits
    // for its first fragment.
    uint32_t fragment_capacity = 4096;
    // Mbufs this worker may keep held (fragments waiting for their first): its share of the
    // pool (common::MbufBudget::held_per_worker in cgnd).
    uint32_t fragment_hold_budget = 1024;
    uint64_t fragment_timeout_ms = 2000;
    // PCP and NAT-PMP (RFC 6887 §7, RFC 6886: UDP to port 5351), served by the control thread.
    // A request from the inside to the inside address goes on `pcp_requests` (this worker is
    // its only producer; the control thread takes each frame and frees it); the frames the
    // control thread puts on `pcp_answers` (its only producer; this worker the only consumer)
    // go out of the inside port. Both null: no PCP server here, and such requests are dropped
    // as for us. A request from the outside is never served (drop_pcp_from_outside).
    rte_ring* pcp_requests = nullptr;
    rte_ring* pcp_answers = nullptr;
    // The addresses the PCP server answers at on the inside (RFC 7488 §3); empty: the inside
    // address. Those other than the inside address are answered for ARP too.
    std::vector<common::Ipv4Address> pcp_servers;
    // Each subscriber's PCP requests a second, and its burst (--pcp-request-rate, -burst):
    // the excess is dropped here (drop_pcp_rate_limited), before the ring (pcp_request_limiter.hpp).
    uint32_t pcp_request_rate = 10;
    uint32_t pcp_request_burst = 20;
};

class Worker {
public:
    static constexpr uint16_t kBurst = 32;
    static constexpr uint32_t kExpiryBudget = 64;  // sessions expired per loop, at most
    static constexpr unsigned kNeighborTickBudget = 8;
    // Mapping slots a drop_address command walks per loop (a compare each, a lookup for the
    // address's own): about ten microseconds.
    static constexpr uint32_t kDropAddressBudget = 8192;
    // Control commands a loop executes, at most (each a few table operations).
    static constexpr unsigned kCommandsPerLoop = 32;
    static constexpr uint16_t kTxCapacity = 4 * kBurst;
    static constexpr uint16_t kHandoffBatch = 2 * kBurst;

    Worker(const WorkerSettings& settings, rte_mempool* pool, common::WorkerCounters& counters,
           const common::Clock& clock);
    ~Worker();
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    // One iteration of the poll loop: RX and process both ports, housekeeping, TX.
    void poll_once();
    // Polls until `stop` becomes true (release store by the control thread).
    void run(const std::atomic<bool>& stop);

    NatEngine& nat() { return nat_; }
    const FragmentTable& fragments() const { return fragments_; }
    const NatEngine& nat() const { return nat_; }

    // Frames this worker holds now, by origin (common/frame_accounting.hpp): fragments waiting
    // for their first fragment or their replay, packets waiting for a next hop's MAC, frames in
    // its TX and handoff queues, and its share of the frames in the handoff rings (+1 for each
    // it put in, -1 for each it took out). Summed over the workers, it closes the balance of
    // common::frame_balance. Reads worker-owned state: call it from the worker's own thread or
    // while the worker is idle (tests, fuzz harnesses); it walks the tables, not for the
    // packet path.
    common::FrameHeld held_frames() const;

private:
    enum SideIndex : uint8_t { kInside = 0, kOutside = 1 };

    struct TxQueue {
        rte_mbuf* mbufs[kTxCapacity];
        uint16_t count = 0;
    };

    // Applies a newer RuntimeSettings generation and runs pending control commands.
    void apply_control();
    // Hands an executed command back to the control thread (its done ring); false when it has
    // to wait for the next loop (kept in unanswered_).
    bool answer(WorkerCommand* command);
    // Sorts received frames by owner: ours are processed, the others' handed off; ARP is
    // processed here and a copy goes to every other worker (each keeps its own neighbours).
    void steer(SideIndex side, rte_mbuf** mbufs, uint16_t n);
    static constexpr unsigned kEveryWorker = ~0u;
    unsigned owner_of(SideIndex side, const rte_mbuf* m) const;
    // The worker owning an external endpoint: its static mapping's subscriber, else the holder
    // of its port block; nothing when no worker holds it.
    // The subscriber an inside packet belongs to: its source, or for an ICMP error the
    // destination of the packet it quotes. `length`: bytes of the frame.
    static uint32_t inside_subscriber(const uint8_t* ip, uint32_t length);
    std::optional<unsigned> external_endpoint_owner(uint32_t pool_index, uint8_t protocol,
                                                    uint32_t addr, uint16_t port) const;
    void hand_off(unsigned worker, rte_mbuf* m);
    void flush_handoff(unsigned worker);
    void receive_handoff();
    // `from_handoff`: the frames come from another worker (an ARP copy is learned from, not
    // answered).
    void process_burst(SideIndex side, rte_mbuf** mbufs, uint16_t n, bool from_handoff);
    // Translates the parsed packets of a burst and sends each on (or drops it, counted).
    // `too_big`: bit i set when packet i is longer than the smallest MTU it may leave by.
    void translate(SideIndex side, Ipv4Packet** to_translate, rte_mbuf** translate_mbufs,
                   Ipv4Packet* parsed, unsigned count, uint32_t too_big);
    // Returns true when the frame was consumed (forwarded, answered or dropped with a counter)
    // and false when it is an IPv4 packet to translate, with `parsed` filled.
    bool classify(SideIndex side, rte_mbuf* m, Ipv4Packet& parsed, bool from_handoff);
    // Sends a packet to or from an exempt destination on untranslated (RFC 6888 REQ-6).
    void forward_exempt(SideIndex side, rte_mbuf* m, Ipv4Packet& p);
    void handle_arp(SideIndex side, rte_mbuf* m, uint8_t* arp, uint32_t length, bool answer);
    void handle_local(SideIndex side, rte_mbuf* m, Ipv4Packet& p);
    // A PCP or NAT-PMP request for the control thread; true when `m` was taken (punted or
    // dropped).
    bool take_pcp_request(SideIndex side, rte_mbuf* m, const Ipv4Packet& p);
    void send_pcp_answers();
    int pcp_command(WorkerCommand& command);
    void send_time_exceeded(SideIndex side, rte_mbuf* m, const Ipv4Packet& p);
    // An ICMP error about `p` back to its sender on `side` (rate limited; not about an ICMP
    // error or a non-first fragment, RFC 1812 §4.3.2.7).
    void send_icmp_error(SideIndex side, rte_mbuf* m, const Ipv4Packet& p, uint8_t type,
                         uint8_t code, common::Counter sent, uint16_t next_hop_mtu = 0);
    // Whether an ICMP error may be sent about `p` at all (RFC 1812 §4.3.2.7).
    static bool may_answer_with_icmp_error(const Ipv4Packet& p);
    // RFC 792: an ICMP error quotes the offending IP header and the first 8 bytes of its
    // payload.
    static uint16_t icmp_quote_length(const Ipv4Packet& p) {
        return static_cast<uint16_t>(p.header_length + std::min<uint16_t>(8, p.l4_length));
    }
    // The ICMP error itself, to the sender of `quote` (its IP header and 8 bytes of payload, as
    // the sender sent them) at `sender_mac` on `side`, from our address there; rate limited.
    void send_icmp_error_quoting(SideIndex side, const uint8_t* sender_mac, const uint8_t* quote,
                                 uint16_t quote_length, uint8_t type, uint8_t code,
                                 uint16_t next_hop_mtu, common::Counter sent);
    void send_arp_request(SideIndex side, uint32_t target);
    // Virtual reassembly: gives a fragment its datagram's ports (from the first fragment).
    // True when it is to be translated here now; false when it was held, handed to the
    // worker owning its ports, or dropped (counted).
    bool resolve_fragment(SideIndex side, rte_mbuf* m, Ipv4Packet& p, bool from_handoff);
    // Hands an outside fragment whose ports are known to their owner (ports in hash.usr);
    // true when this worker is the owner.
    bool to_port_owner(SideIndex side, rte_mbuf* m, Ipv4Packet& p);
    // The worker that tracks an outside datagram's fragments (those after the first carry no
    // port to steer by): by its source, destination and IP ID.
    unsigned fragment_owner(uint32_t src, uint32_t dst, uint16_t id) const {
        return (toeplitz_hash_ipv4(src ^ dst) ^ id) % workers_;
    }
    // Sends a translated inside packet addressed to a pool address back inside.
    void hairpin(rte_mbuf* m, Ipv4Packet& p);
    // Forwards an IPv4 packet out of `side`: MTU check, next hop, neighbour, Ethernet header,
    // TX queue.
    void output(SideIndex side, rte_mbuf* m, uint32_t dst) {
        // RFC 4787 REQ-13/13a: one compare per packet; what is too big takes the cold path.
        if (rte_pktmbuf_pkt_len(m) > frame_limit_[side]) [[unlikely]] {
            output_too_big(side, m, dst);
            return;
        }
        send_to_next_hop(side, m, dst);
    }
    void send_to_next_hop(SideIndex side, rte_mbuf* m, uint32_t dst);
    // A packet longer than the MTU of `side` (already translated): dropped when DF is set (the
    // ICMP answer, when one is due, was sent before translation: see keep_too_big_quotes),
    // otherwise cut into fragments (RFC 4787 REQ-13a), each sent on in order.
    [[gnu::cold]] void output_too_big(SideIndex side, rte_mbuf* m, uint32_t dst);
    // RFC 4787 REQ-13, RFC 5508 §7.1.1, before translation: of the packets of a burst marked
    // in `candidates` (longer than the smallest MTU they may leave by), keeps those with DF set
    // that are too big for the side they will leave on and may be answered with an ICMP error,
    // their IP header and 8 bytes as the sender sent them copied aside. Returns those kept.
    [[gnu::cold]] uint32_t keep_too_big_quotes(SideIndex side, Ipv4Packet** packets, unsigned count,
                                               uint32_t candidates);
    // After translation: each kept packet the NAT would forward is answered with ICMP
    // fragmentation needed quoting its copy, and dropped (its mbuf pointer cleared).
    [[gnu::cold]] void refuse_too_big(SideIndex side, rte_mbuf** mbufs, bool* forward,
                                      uint32_t kept);
    SideIndex egress_of(SideIndex side, const Ipv4Packet& p) const {
        // Inside packets to a pool address are hairpinned back inside.
        if (side == kOutside || nat_.is_pool_address(p.dst)) return kInside;
        return kOutside;
    }
    void transmit_to(SideIndex side, rte_mbuf* m, const common::MacAddress& dst_mac);
    void enqueue_tx(SideIndex side, rte_mbuf* m);
    void flush_tx(SideIndex side);
    bool take_icmp_token();
    bool is_exempt(uint32_t addr) const {
        for (const auto& p : exempt_) {
            if (p.contains(common::Ipv4Address{addr})) return true;
        }
        return false;
    }
    void drop(rte_mbuf* m, common::Counter c);
    // Frame accounting: the origin of a frame travels in an mbuf dynamic field, set when the
    // worker receives or makes it; every frame that leaves the worker's hands for good (freed or
    // transmitted) counts frames_ended_<origin>. The counter saying how it ended is the caller's.
    void set_origin(rte_mbuf* m, common::FrameOrigin o) const {
        *RTE_MBUF_DYNFIELD(m, origin_offset_, uint8_t*) = static_cast<uint8_t>(o);
    }
    // Never beyond the last origin, so that it may index arrays even for a frame tagged wrongly
    // (that shows as an imbalance, not as memory corruption).
    common::FrameOrigin origin_of(const rte_mbuf* m) const {
        return static_cast<common::FrameOrigin>(
            std::min<uint8_t>(*RTE_MBUF_DYNFIELD(m, origin_offset_, const uint8_t*),
                              static_cast<uint8_t>(common::FrameOrigin::generated)));
    }
    void count_ended(const rte_mbuf* m) { counters_.add(common::ended_counter(origin_of(m))); }
    // Frees a frame whose outcome counter the caller (or the NAT engine) has counted.
    void finish(rte_mbuf* m) {
        count_ended(m);
        rte_pktmbuf_free(m);
    }
    // The end of an ARP copy another worker made for us (see steer()).
    void consume_arp_copy(rte_mbuf* m) {
        counters_.add(common::Counter::arp_copies_consumed);
        finish(m);
    }

    int origin_offset_ = -1;  // the mbuf dynamic field holding a frame's FrameOrigin
    // This worker's share of the frames in the handoff queues and rings, by origin.
    std::array<int64_t, common::kFrameOrigins> handoff_held_{};
    Interface interfaces_[2];
    unsigned index_;
    unsigned workers_;
    HandoffRings* handoff_;
    ControlChannel* control_;
    rte_ring* pcp_requests_;
    rte_ring* pcp_answers_;
    std::unique_ptr<PcpRequestLimiter> pcp_limiter_;  // with pcp_requests_
    // The PCP server's addresses (at most common::kMaxPcpServers); pcp_other_: one of them is
    // not the inside address (only then does the packet path compare against the list).
    std::array<uint32_t, common::kMaxPcpServers> pcp_servers_{};
    unsigned pcp_server_count_ = 0;
    bool pcp_other_ = false;
    bool is_pcp_server(uint32_t addr) const {
        for (unsigned i = 0; i < pcp_server_count_; ++i)
            if (pcp_servers_[i] == addr) return true;
        return false;
    }
    uint64_t applied_generation_ = 0;
    bool explicit_present_ = false;
    // Frames waiting to be handed to each worker (flushed when full and at the end of a loop).
    struct HandoffQueue {
        rte_mbuf* mbufs[kHandoffBatch];
        uint16_t count = 0;
    };
    std::vector<HandoffQueue> handoff_out_;
    rte_mempool* pool_;
    common::WorkerCounters& counters_;
    const common::Clock& clock_;
    NatEngine nat_;
    Steering steering_;  // after nat_: reads the block map the engine uses
    FragmentTable fragments_;
    // Held fragments set free by their first fragment, processed at the end of the burst.
    rte_mbuf* replay_[2][kBurst];
    uint16_t replay_count_[2] = {0, 0};
    bool replaying_ = false;  // processing replay_: the fragments carry their ports
    NeighborTable neighbors_inside_;
    NeighborTable neighbors_outside_;
    TxQueue tx_[2];
    // The entry output() used last on each side (entries never move; a forgotten one has its
    // address cleared, so a stale pointer simply misses).
    NeighborTable::Entry* last_neighbor_[2] = {nullptr, nullptr};
    uint64_t now_ms_ = 0;
    uint32_t icmp_error_rate_;
    std::vector<common::Ipv4Prefix> exempt_;
    // A drop_address command spread over several loops, and where its pass has reached.
    WorkerCommand* unfinished_ = nullptr;
    uint32_t unfinished_cursor_ = 0;
    // An executed command the done ring had no room for (see answer()).
    WorkerCommand* unanswered_ = nullptr;
    uint64_t icmp_tokens_ = 0;  // thousandths of a token
    uint64_t icmp_refill_ms_ = 0;
    // Per side: the longest frame (MTU plus Ethernet header) sent as it is, and the smallest
    // MTU a packet received there may leave by (inside: the outside's, or the inside's when
    // hairpinned).
    uint32_t frame_limit_[2];
    uint16_t smallest_egress_mtu_[2];
    // Per packet of the burst being translated: the IP header and 8 bytes of a DF packet too
    // big for its link, as received, quoted by the ICMP error once the NAT has accepted it,
    // and the MTU of that link.
    struct TooBigQuote {
        uint8_t bytes[60 + 8];
        uint16_t length;
        uint16_t mtu;
    };
    TooBigQuote too_big_quotes_[kBurst];
    static_assert(kBurst <= 32, "a burst's packets are marked in a 32-bit mask");

    NeighborTable& neighbors(SideIndex s) {
        return s == kInside ? neighbors_inside_ : neighbors_outside_;
    }
};

}  // namespace cgn::dp
