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

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/address.hpp"
#include "common/clock.hpp"
#include "common/counters.hpp"
#include "dataplane/io/control_channel.hpp"
#include "dataplane/io/fragments.hpp"
#include "dataplane/io/handoff.hpp"
#include "dataplane/io/neighbor_table.hpp"
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
    // this worker computes the same owner as the NIC.
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
    uint64_t fragment_timeout_ms = 2000;
};

class Worker {
public:
    static constexpr uint16_t kBurst = 32;
    static constexpr uint32_t kExpiryBudget = 64;  // sessions expired per loop, at most
    static constexpr unsigned kNeighborTickBudget = 8;
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
    const NatEngine& nat() const { return nat_; }

private:
    enum SideIndex : uint8_t { kInside = 0, kOutside = 1 };

    struct TxQueue {
        rte_mbuf* mbufs[kTxCapacity];
        uint16_t count = 0;
    };

    // Applies a newer RuntimeSettings generation and runs pending control commands.
    void apply_control();
    // Sorts received frames by owner: ours are processed, the others' handed off; ARP is
    // processed here and a copy goes to every other worker (each keeps its own neighbours).
    void steer(SideIndex side, rte_mbuf** mbufs, uint16_t n);
    static constexpr unsigned kEveryWorker = ~0u;
    unsigned owner_of(SideIndex side, const rte_mbuf* m) const;
    // The worker owning an external endpoint: its static mapping's subscriber, else the holder
    // of its port block; nothing when no worker holds it.
    std::optional<unsigned> external_endpoint_owner(uint32_t pool_index, uint8_t protocol,
                                                    uint32_t addr, uint16_t port) const;
    void hand_off(unsigned worker, rte_mbuf* m);
    void flush_handoff(unsigned worker);
    void receive_handoff();
    // `from_handoff`: the frames come from another worker (an ARP copy is learned from, not
    // answered).
    void process_burst(SideIndex side, rte_mbuf** mbufs, uint16_t n, bool from_handoff);
    // Translates the parsed packets of a burst and sends each on (or drops it, counted).
    void translate(SideIndex side, Ipv4Packet** to_translate, rte_mbuf** translate_mbufs,
                   Ipv4Packet* parsed, unsigned count);
    // Returns true when the frame was consumed (forwarded, answered or dropped with a counter)
    // and false when it is an IPv4 packet to translate, with `parsed` filled.
    bool classify(SideIndex side, rte_mbuf* m, Ipv4Packet& parsed, bool from_handoff);
    void handle_arp(SideIndex side, rte_mbuf* m, uint8_t* arp, uint32_t length, bool answer);
    void handle_local(SideIndex side, rte_mbuf* m, Ipv4Packet& p);
    void send_time_exceeded(SideIndex side, rte_mbuf* m, const Ipv4Packet& p);
    // An ICMP error about `p` back to its sender on `side` (rate limited; not about an ICMP
    // error or a non-first fragment, RFC 1812 §4.3.2.7).
    void send_icmp_error(SideIndex side, rte_mbuf* m, const Ipv4Packet& p, uint8_t type,
                         uint8_t code, common::Counter sent);
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
    // Forwards an IPv4 packet out of `side`: next hop, neighbour, Ethernet header, TX queue.
    void output(SideIndex side, rte_mbuf* m, uint32_t dst);
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

    Interface interfaces_[2];
    unsigned index_;
    unsigned workers_;
    HandoffRings* handoff_;
    ControlChannel* control_;
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
    uint64_t icmp_tokens_ = 0;
    uint64_t icmp_refill_ms_ = 0;

    NeighborTable& neighbors(SideIndex s) {
        return s == kInside ? neighbors_inside_ : neighbors_outside_;
    }
};

}  // namespace cgn::dp
