#pragma once
// The world the packet-path fuzzer runs each input in: two real Workers (classify, steering
// and handoff, NAT engine, fragments, ARP, ICMP errors, hairpin) on ring ports
// (tests/dataplane/harness.hpp), a fixed prelude that gives them state, and the checks that
// abort() on a broken invariant. The fuzz target (packet_path_fuzzer.cpp) and the seed
// generator (packet_path_seeds.cpp) share it, so the seeds are built for the state the fuzzer
// starts from.
//
// Input format (every byte sequence is valid; the parse never fails, it only stops):
//   input  := item*
//   item   := frame | tick | pcp
//   frame  := tag:u8 (< 0x80)  length:u16 (big endian, at most kMaxFrame)  bytes[length]
//             tag bit 0: received on the outside port (else inside); bit 1: RX queue 1 (else
//             0, i.e. the worker whose queue it arrives on). A short last frame is cut.
//   tick   := tag:u8 (0x80, or 0x86 to 0xff)  advance:u8
//             the frames given since the last tick are received as one burst per port and
//             queue, the workers are polled until quiet, then the clock moves by
//             advance^2 * 8 ms (0 to 520 s: ARP retransmits, fragment timeouts, session
//             expiry, block hold-down) and the workers are polled until quiet again.
//   pcp    := the control thread's side of PCP (RFC 6887, RFC 6886), between polls: the
//             frames given before it are received and the workers polled until quiet first,
//             so that it acts after them and before the frames that follow it.
//     0x81 hold     who:u8 port:u16 suggested_port:u16 flags:u8 count:u8 filter*(count % 17)
//                   NatEngine::hold_mapping (MAP, §11.3) on the worker owning the host;
//                   flags bit 0: exact (PREFER_FAILURE, §13.2; with a suggested port only),
//                   bits 1-3: the suggested external address: 0 none, 1-4 pool address 0-3,
//                   5-7 cgnd's outside address (not the pool's).
//       filter  := addr:u32 length:u8 port:u16: PeerFilter::prefix(addr, length % 32 + 1,
//                   port) (FILTER, §13.3; port 0: any).
//     0x82 release  who:u8 port:u16          release_held_mapping (delete or expiry)
//     0x83 peer     who:u8 port:u16 remote_addr:u32 remote_port:u16     peer_flow (§12)
//     0x84 paired   who:u8                   paired_address (RFC 6886 §3.2)
//     0x85 answer   which:u8 flags:u8 offset:u8 value:u8
//                   a frame on the answer ring: flags bit 0 clear, the answer to one of the
//                   last requests the world took from the request ring (`which`, newest
//                   first; none taken yet: as if set), its payload with the R bit set and byte
//                   `offset` (modulo its length) xor `value`, from the address and port it was
//                   sent to, to the MAC it came from (as control/pcp_transport.cpp); bit 0
//                   set, an unsolicited message (§14: no MAC, routed by the worker, ARP
//                   included) to the host `which` names as `who` does.
//     who := bits 0-1 the internal host: 0, 1 the prelude's subscribers (on worker 0, 1), 2
//            the silent subscriber, 3 a host the prelude never saw; bits 2-3 the protocol:
//            UDP, TCP, ICMP (refused by the worker: PCP maps TCP and UDP only), UDP.
//     As the control thread never does, a hold, release or peer of internal port 0 and a peer
//     to remote port 0 are not made (the item is read and skipped). An item cut short ends
//     the input.
// The request ring is drained after every poll until quiet (the frames counted; the last 8
// from the inside prefix, the subscribers the server answers (§18), kept for 0x85). The input
// ends with an implicit tick of 0. Then every mapping still held is released, the world is
// run down (clock moved past every hold time) and the invariants are checked; then the clock
// moves past every session timeout and block hold-down, and the NAT must be empty, with every
// filter set free.
//
// One world per input (a fresh harness, same seed, same prelude), so an input's outcome
// depends on its bytes only and every crash reproduces from its file.

#include <rte_mempool.h>
#include <rte_ring.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/address.hpp"
#include "common/counters.hpp"
#include "dataplane/nat/nat_engine.hpp"
#include "dataplane/nat/peer_filter.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::fuzz {

// The encoding above, for the seed generator (and tests of the format).
class InputWriter {
public:
    // `who` of the PCP items: the host and the protocol.
    enum Host : uint8_t { kSubscriber0 = 0, kSubscriber1 = 1, kSilentHost = 2, kNewHost = 3 };
    static uint8_t who(Host host, uint8_t protocol);
    struct Filter {
        common::Ipv4Address addr;
        uint8_t length;     // 1 to 32
        uint16_t port = 0;  // 0: any
    };
    static constexpr uint8_t kExact = 1;
    static uint8_t suggest_pool_address(unsigned index) {
        return static_cast<uint8_t>((index + 1) << 1);
    }
    static constexpr uint8_t kUnsolicited = 1;

    InputWriter& frame(bool outside, unsigned queue, const std::vector<uint8_t>& bytes);
    InputWriter& tick(uint8_t advance = 0);
    InputWriter& hold(uint8_t who, uint16_t port, const std::vector<Filter>& filters = {},
                      uint16_t suggested_port = 0, uint8_t flags = 0);
    InputWriter& release(uint8_t who, uint16_t port);
    InputWriter& peer(uint8_t who, uint16_t port, common::Ipv4Address remote, uint16_t remote_port);
    InputWriter& paired_address(uint8_t who);
    InputWriter& answer(uint8_t which, uint8_t flags = 0, uint8_t offset = 0, uint8_t value = 0);
    const std::vector<uint8_t>& bytes() const { return bytes_; }

private:
    void put16(uint16_t v);
    void put32(uint32_t v);
    std::vector<uint8_t> bytes_;
};

class PacketPathWorld {
public:
    static constexpr unsigned kWorkers = 2;
    static constexpr size_t kMaxFrame = 2048;  // an mbuf's data room
    static constexpr size_t kMaxFrames = 512;  // per input; the rest is ignored
    static constexpr uint8_t kTickTag = 0x80;
    static constexpr uint8_t kHoldTag = 0x81;
    static constexpr uint8_t kReleaseTag = 0x82;
    static constexpr uint8_t kPeerTag = 0x83;
    static constexpr uint8_t kPairedTag = 0x84;
    static constexpr uint8_t kAnswerTag = 0x85;
    static constexpr uint64_t kTickUnitMs = 8;
    // Filter sets per worker (NatSettings::max_filtered_mappings): few, so that running out is
    // reachable.
    static constexpr uint32_t kFilterSets = 4;
    // The PCP rings: small, so that a full request ring is reachable. Each subscriber may
    // send kPcpBurst requests at once, kPcpRate a second.
    static constexpr unsigned kPcpRingSize = 8;  // holds 7
    static constexpr uint32_t kPcpRate = 10;
    static constexpr uint32_t kPcpBurst = 4;
    static constexpr uint16_t kPcpPort = 5351;

    // A flow the prelude opened: its internal and external endpoints.
    struct Flow {
        uint8_t protocol;
        common::Ipv4Address internal_addr;
        uint16_t internal_port;  // ICMP: the echo identifier
        common::Ipv4Address remote_addr;
        uint16_t remote_port;
        common::Ipv4Address external_addr;
        uint16_t external_port;
    };
    // What a PCP item did (kept with keep_output, for the seed generator): the item's tag, the
    // NatEngine's answer (HoldStatus as a number; paired: 0 with an address, else 1) and the
    // external endpoint (paired: the address). `made` is false for an item skipped.
    struct PcpResult {
        uint8_t tag;
        bool made;
        uint8_t status;
        common::Ipv4Address ext_addr;
        uint16_t ext_port;
    };

    // Builds the harness and runs the prelude: neighbours resolved (two subscribers, one on
    // each worker, and the gateway), a UDP flow, an established TCP connection and an ICMP
    // echo flow per subscriber (flows()[3w .. 3w+2]), and a UDP flow of a third subscriber
    // whose MAC no worker knows (flows()[6]). Counters are zeroed afterwards.
    // `worker_id`: the first worker's id, which names its tables; two worlds alive at once
    // need different ones.
    explicit PacketPathWorld(unsigned worker_id = 100);
    ~PacketPathWorld();

    // Runs one input, then runs the world down and checks every invariant (abort() on a
    // failure, after printing what broke).
    void run(const uint8_t* data, size_t size);

    const test::Topology& topo() const { return harness_->topo(); }
    common::MacAddress inside_mac() const { return harness_->inside().mac(); }
    common::MacAddress outside_mac() const { return harness_->outside().mac(); }
    // The subscriber on worker `w` (and its MAC), and the flows the prelude opened.
    common::Ipv4Address subscriber(unsigned w) const { return subscribers_[w]; }
    common::MacAddress subscriber_mac(unsigned w) const { return subscriber_macs_[w]; }
    const std::vector<Flow>& flows() const { return flows_; }
    common::Ipv4Address silent_subscriber() const {
        return common::Ipv4Address{topo().inside.subnet.address.value | 0x3301};
    }
    // The host `who` names in a PCP item (bits 0-1).
    common::Ipv4Address pcp_host(uint8_t who) const;
    // Frames the last run transmitted and what its PCP items did (kept only when asked: the
    // seed generator prints them and reads the external endpoints the holds got).
    void keep_output(bool keep) { keep_output_ = keep; }
    const std::vector<std::vector<uint8_t>>& output() const { return output_; }
    const std::vector<PcpResult>& pcp_results() const { return pcp_results_; }
    // A counter summed over the workers (since the prelude).
    uint64_t counter(common::Counter c) const { return harness_->counter(c); }

private:
    // A mapping the world holds (as the control thread's PCP server would), on the worker
    // that owns its subscriber, with the external endpoint it was given.
    struct Hold {
        uint8_t protocol;
        uint32_t addr;
        uint16_t port;
        bool filtered;
        uint32_t ext_addr;
        uint16_t ext_port;
        dp::PeerFilterSet filters;  // as given with the hold in force (count 0: none)
    };
    // A TCP or UDP packet's endpoints (a first fragment or a whole packet).
    struct Endpoints {
        uint8_t protocol;
        uint32_t src;
        uint16_t src_port;
        uint32_t dst;
        uint16_t dst_port;
        friend bool operator==(const Endpoints&, const Endpoints&) = default;
    };
    // A request taken from the request ring, as the control thread reads it
    // (control/pcp_transport.cpp): where its answer goes.
    struct Request {
        common::MacAddress mac;
        common::Ipv4Address client;
        common::Ipv4Address server;
        uint16_t client_port;
        std::vector<uint8_t> payload;
    };
    // What the world put on the workers' rings and took from them; each must equal the
    // workers' own count (check_ledger).
    struct Ledger {
        uint64_t received[2] = {};     // frames put on the RX rings (inside, outside): rx_*
        uint64_t transmitted[2] = {};  // frames taken from the TX rings: tx_*
        uint64_t requests = 0;         // taken from the request ring: pcp_requests_punted
        uint64_t answers = 0;          // put on the answer ring: pcp_answers_sent
    };

    // Polls every worker until kQuietPolls loops in a row move no counter (so the neighbour
    // housekeeping has visited every slot); checks and frees what they sent, then drains the
    // PCP request ring.
    void poll_until_quiet();
    void inject(bool outside, unsigned queue, const uint8_t* bytes, size_t length);
    void drain_and_check_output();
    void check_output_frame(bool outside, const uint8_t* frame, uint32_t length);
    // RFC 6887 §13.3: a packet delivered to the internal endpoint of a held mapping with
    // FILTERs comes from a peer they admit, or from one the subscriber itself sent to (a
    // frame it sent the world injected, a prelude flow or a PEER: sent_).
    void check_filtered_delivery(const uint8_t* frame, uint32_t length);
    void drain_pcp_requests();
    uint64_t counter_total() const;
    void open_flows();
    // One PCP item at data[pos] (after its tag); false when it is cut short.
    bool pcp_item(uint8_t tag, const uint8_t* data, size_t size, size_t& pos);
    void pcp_hold(uint8_t who, uint16_t port, uint16_t suggested_port, uint8_t flags,
                  std::span<const dp::PeerFilter> filters);
    void pcp_release(uint8_t who, uint16_t port);
    void pcp_peer(uint8_t who, uint16_t port, uint32_t remote_addr, uint16_t remote_port);
    void pcp_paired(uint8_t who);
    void pcp_answer(uint8_t which, uint8_t flags, uint8_t offset, uint8_t value);
    void record(uint8_t tag, bool made, uint8_t status = 0, uint32_t addr = 0, uint16_t port = 0);
    unsigned owner_of(common::Ipv4Address host) const;
    dp::NatEngine& nat(unsigned w) { return harness_->worker(w).nat(); }
    // The external endpoint a worker gave a PCP request is one outside packets reach it at:
    // a pool address, a port of the range whose block this worker holds.
    void check_external(unsigned w, uint32_t addr, uint16_t port, const char* what);
    // The held mappings of worker `w` are the world's: as many, as many filtered, each where it
    // was given.
    void check_holds(unsigned w);
    // Releases every mapping still held, as the control thread does when they expire.
    void release_all_holds();
    // The clock past every session timeout and block hold-down: the NAT must be empty, the
    // block map free, and every filter set back in its pool (probe_filter_sets).
    void run_down_nat();
    void probe_filter_sets(unsigned w);
    // The frame balance (common/frame_accounting.hpp) and the world's ledger; with
    // `nothing_held`, also that no frame is held any more.
    void check_invariants(bool nothing_held);
    [[noreturn]] void fail(const char* what) const;

    std::unique_ptr<test::DataplaneHarness> harness_;
    // Received frames come from a pool of their own: their buffers are poisoned outside the
    // frame (see poison_outside_frame), which the workers' own mbufs must not be.
    rte_mempool* input_pool_ = nullptr;
    // The PCP rings, the world standing for the control thread. DataplaneHarness gives every
    // worker the same WorkerSettings, so both workers share one pair (cgnd gives each its own);
    // polled in turn from one thread, a ring with one producer and one consumer flag is safe.
    rte_ring* pcp_requests_ = nullptr;
    rte_ring* pcp_answers_ = nullptr;
    common::Ipv4Address subscribers_[kWorkers];
    common::MacAddress subscriber_macs_[kWorkers];
    std::vector<Flow> flows_;
    unsigned mbufs_free_after_prelude_ = 0;
    bool keep_output_ = false;
    bool frames_pending_ = false;  // frames injected since the last poll
    std::vector<std::vector<uint8_t>> output_;
    std::vector<PcpResult> pcp_results_;
    std::vector<Hold> holds_[kWorkers];
    std::vector<Request> requests_;  // the last kKeptRequests taken, oldest first
    // Every (internal endpoint, remote endpoint) a subscriber sent to, or might have: each TCP
    // or UDP frame injected on the inside, whatever became of it, the prelude's flows and the
    // PEERs. An over-approximation of the sessions the subscribers opened.
    std::vector<Endpoints> sent_;
    Ledger ledger_;
};

// EAL for the process (--no-huge --no-pci, main lcore only), as the dataplane tests do.
void init_eal(const char* program);

}  // namespace cgn::fuzz
