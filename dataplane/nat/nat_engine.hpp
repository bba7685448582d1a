#pragma once
// The NAPT44 translation state of one worker and the operations on it: in2out and out2in for
// a burst of parsed packets (fast path: one bulk session lookup; slow path: mapping and session
// creation), and bounded expiry.
//
// Model (RFC 4787, RFC 5382, RFC 5508, RFC 6888):
//   Subscriber  an internal address; paired with one pool address while it holds port blocks
//               there (REQ-2 "paired" address pooling), with its limits' counters.
//   Block       a range of ports of the paired address held for one subscriber (RFC 6888
//               REQ-13/14); claimed with the first mapping that needs it, returned to the
//               pool when idle for the hold-down (REQ-8).
//   Mapping     internal endpoint (proto, addr, port) <-> external endpoint, shared by all of
//               the endpoint's sessions: endpoint-independent mapping (REQ-1).
//   Session     a mapping plus one remote endpoint; carries the idle timer and TCP state.
// Filtering (REQ-8) decides whether an inbound packet that matches a mapping but no session
// may create a session: always (endpoint-independent), when the mapping has a session with
// that remote address (address-dependent), or never (address-and-port-dependent).
//
// Sharing rule: owned by one worker, which is the only thread to read or write any of it. All
// memory is reserved in the constructor; the packet path allocates nothing and takes no lock.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "common/config.hpp"
#include "common/counters.hpp"
#include "common/deterministic.hpp"
#include "common/events.hpp"
#include "common/random.hpp"
#include "dataplane/nat/expiry_lists.hpp"
#include "dataplane/nat/flow_key.hpp"
#include "dataplane/nat/ipv4_packet.hpp"
#include "dataplane/nat/peer_filter.hpp"
#include "dataplane/nat/port_allocator.hpp"
#include "dataplane/table/explicit_mappings.hpp"
#include "dataplane/table/hash_table.hpp"

namespace cgn::dp {

struct NatSettings {
    std::vector<common::Ipv4Prefix> pool;
    common::PortRange port_range;
    common::FilteringMode filtering = common::FilteringMode::endpoint_independent;
    common::Timeouts timeouts;
    uint32_t max_sessions = 1u << 16;
    // Subscribers this worker can hold at once; 0: max_sessions / 4.
    uint32_t max_subscribers = 0;
    // This engine is worker `worker_index` of `workers`: it claims port blocks in `blocks` as
    // that worker.
    unsigned workers = 1;
    unsigned worker_index = 0;
    // The port blocks shared by all workers and the control thread (block_map.hpp); null: the
    // engine makes its own (one worker, no control thread).
    BlockMap* blocks = nullptr;
    uint32_t port_block_size = 512;  // used when `blocks` is null
    uint64_t block_hold_down_ms = 120000;
    common::SubscriberLimits limits;
    // RFC 4787 REQ-4: external ports keep the parity of the internal port when possible.
    bool port_parity = false;
    // Static (and later PCP) mappings, written by the control thread; null when there are none
    // to consult (tests of dynamic NAT only).
    const ExplicitMappingTable* explicit_mappings = nullptr;
    // Deterministic NAT (RFC 7422): subscribers it knows get their formula's address and
    // port range; null or disabled: none. `deterministic_overflow`: a full range borrows
    // dynamic blocks.
    const common::DeterministicMap* deterministic = nullptr;
    bool deterministic_overflow = false;
    // Where block and quota events go (read by the control thread); null: not recorded.
    common::EventRing* events = nullptr;
    // PCP mappings with FILTERs (RFC 6887 §13.3) this worker can hold at once (a filter set
    // each, reserved at start, 196 bytes); 0: max_sessions / 16, at least 64. At most 65535.
    uint32_t max_filtered_mappings = 0;
};

class NatEngine {
public:
    NatEngine(const NatSettings& settings, unsigned worker_id, int socket_id,
              common::WorkerCounters& counters, uint64_t seed);

    // Translate n packets in place. forward[i] tells whether packet i is to be sent on; a packet
    // not forwarded has had its drop counter incremented.
    void in2out(Ipv4Packet* const* packets, unsigned n, uint64_t now_ms, bool* forward);
    void out2in(Ipv4Packet* const* packets, unsigned n, uint64_t now_ms, bool* forward);

    // An ICMP error about a packet of one of our sessions (RFC 5508 §4.2): translated with its
    // quote; false (counted) when it matches no session. It never creates, refreshes or
    // removes a session (RFC 5508 REQ-7 spirit: errors must not keep mappings alive).
    bool translate_icmp_error(Ipv4Packet& p, bool from_inside);

    // Removes up to `budget` sessions whose idle timeout has passed. Returns how many.
    uint32_t expire(uint64_t now_ms, uint32_t budget);

    // Live changes, applied by the owning worker between bursts (from the settings the control
    // thread published, or a command it sent).
    void set_filtering(common::FilteringMode mode) { filtering_ = mode; }
    void set_timeouts(const common::Timeouts& t);
    void set_limits(const common::SubscriberLimits& limits) { limits_ = limits; }
    void set_block_hold_down_ms(uint64_t ms) { hold_down_ms_ = ms; }
    // Adds pool addresses whose port sets the control thread built (no allocation here).
    void extend_pool(AddressPool::Extension&& extension) { pool_.extend(std::move(extension)); }
    // Whether the explicit-mapping table may hold entries (skips its lookups when empty).
    void set_explicit_mappings_present(bool present) { explicit_present_ = present; }
    // Takes (or gives back) an external port of a block this worker holds for an explicit
    // mapping: kReserved, kInUse when a dynamic mapping has it, kNotHeld when this worker does
    // not hold its block (any more).
    enum ReserveResult : int { kReserved = 1, kInUse = 0, kNotHeld = 2 };
    int reserve_external_port(uint8_t protocol, uint32_t addr, uint16_t port);
    void release_external_port(uint8_t protocol, uint32_t addr, uint16_t port);
    // Removes the mapping of an internal endpoint with all its sessions, when it is of the kind
    // named: the dynamic mapping an explicit one replaces, or an explicit mapping withdrawn.
    // Returns how many sessions went. A held (PCP) mapping is not of the dynamic kind here: it
    // is never destroyed under the PCP server's feet; the control thread withdraws it first
    // (release_held_mapping), and refuses a static mapping of an endpoint PCP holds anyway.
    enum class MappingKind : uint8_t { dynamic_mapping, explicit_mapping };
    uint32_t drop_mapping(uint8_t protocol, uint32_t addr, uint16_t port, MappingKind kind);
    // Removes every mapping of an internal address, with its sessions (a one-to-one mapping
    // added or withdrawn): one pass over the mapping array, `budget` slots per call from
    // `cursor` (0 to begin; advanced here), so that a worker spreads it over its loops and
    // keeps polling (at 1M slots one pass takes tens of milliseconds). True when the pass
    // has reached the end. Held (PCP) mappings of the address go too: Basic NAT replaces the
    // address's NAPT mappings, and the control thread forgets its PCP mappings of it.
    bool drop_address(uint32_t addr, uint32_t& cursor, uint32_t budget);

    const BlockMap& block_map() const { return blocks_; }
    bool is_pool_address(uint32_t addr) const { return pool_.contains(addr); }
    std::optional<uint32_t> pool_index(uint32_t addr) const { return pool_.index_of(addr); }
    uint32_t session_count() const { return expiry_.size(); }
    uint32_t mapping_count() const { return mapping_count_; }
    uint32_t subscriber_count() const { return subscriber_count_; }
    uint32_t held_blocks() const { return pool_.held_blocks(); }
    // The blocks a subscriber holds, as (pool address, first port), in its order; and its
    // session count. For tests and the control thread's "show subscriber".
    std::vector<std::pair<uint32_t, uint16_t>> subscriber_blocks(uint32_t addr) const;
    std::optional<uint32_t> subscriber_sessions(uint32_t addr) const;
    // The external endpoint of an internal one, if mapped.
    std::optional<std::pair<uint32_t, uint16_t>> find_mapping(uint8_t protocol, uint32_t addr,
                                                              uint16_t port) const;

    // ---- PCP (RFC 6887) and NAT-PMP (RFC 6886), on the control thread's commands ----------
    // The worker that owns the subscriber runs these between bursts (pcp_mappings.cpp). A PCP
    // mapping is one of the subscriber's own dynamic mappings marked held: its port comes from
    // the subscriber's blocks on its paired address (so it counts against its quotas, and an
    // outside packet to it is steered here by the port's block and found in this worker's
    // mapping table, with no lookup in the shared ExplicitMappingTable). Held, it outlives its
    // sessions and filters endpoint-independently. TCP (6) and UDP (17) only: any other
    // protocol is not_authorized. A request is not a packet: failures count no drop reason
    // (the frame accounting balances frames only); quota refusals record their quota event.

    // Result of a PCP-side request (status values map onto PCP result codes in control/).
    enum class HoldStatus : uint8_t {
        held,  // success
        no_resources,
        user_ex_quota,
        cannot_provide_external,
        not_authorized,
    };
    struct HoldResult {
        HoldStatus status;
        uint32_t ext_addr;
        uint16_t ext_port;
        uint32_t lifetime_s;      // PEER only: the session's idle timeout
        uint16_t held_ports = 0;  // hold_port_set only: the ports of the set held
    };
    // RFC 6887 §11.3 MAP: the internal endpoint's mapping held as an explicit (PCP) mapping.
    // "If the PCP-controlled device already has a mapping for that internal address/port, it
    // returns that": an existing dynamic mapping becomes held (or stays held: a refresh) and
    // keeps its external endpoint whatever was suggested; an operator's (static) mapping of the
    // endpoint is not_authorized. Otherwise the subscriber is paired and given the suggested
    // port when it is free in a block it holds, in a free block of this worker's share it may
    // claim (RFC 6888 REQ-4 max_blocks), or in its deterministic range (RFC 7422); else, when
    // `exact`, cannot_provide_external, and otherwise a port as for its packets.
    // suggested_addr 0: none (any suggested_port then names a port of the paired address);
    // suggested_port 0: none.
    // `filters` (RFC 6887 §13.3) replace the held mapping's: only the remote peers they admit
    // may open sessions to it from outside (none given: anyone, §11.3), and sessions opened
    // from outside by peers they no longer admit are removed. No filter set free:
    // no_resources, and nothing changed.
    HoldResult hold_mapping(uint8_t protocol, uint32_t int_addr, uint16_t int_port,
                            uint32_t suggested_addr, uint16_t suggested_port, bool exact,
                            uint64_t now_ms, std::span<const PeerFilter> filters = {});
    // RFC 7753 PORT_SET: hold_mapping for up to `count` consecutive internal ports from
    // `first_int_port`, on as many consecutive external ports of ONE block (or of the
    // subscriber's deterministic range), so that one worker owns the whole set's outside
    // traffic. Returns the first external endpoint and held_ports, the set's size: fewer than
    // `count` when the ports cannot all be had (RFC 7753 lets the server map a smaller set),
    // never 0 on success. How the run is chosen:
    //   - the first internal port already mapped (§11.3): its external port starts the set,
    //     the next ports follow it where they are free or already mapped exactly there (a
    //     refresh of the set), all held;
    //   - otherwise the set stops before the first internal port already mapped (or an
    //     operator's), before the subscriber's port quota and the free filter sets run out;
    //     the suggested first external port is taken when the whole set fits there (whatever
    //     fits when `exact`; none: cannot_provide_external); else the longest run among the
    //     subscriber's blocks, its range, and a block it may still claim (a new block only
    //     when its run is longer); a tie goes to the suggestion;
    //   - `parity` (RFC 7753 §4's P bit; or the port_parity setting): the first external
    //     port has the first internal port's parity, when any such run exists.
    // Every port is one of the subscriber's ports (quota, blocks) and a held mapping with
    // `filters`. Refused (no port at all): nothing made; a port quota with no room left is
    // user_ex_quota, as is the block quota when no block has room.
    HoldResult hold_port_set(uint8_t protocol, uint32_t int_addr, uint16_t first_int_port,
                             uint16_t count, bool parity, uint32_t suggested_addr,
                             uint16_t suggested_port, bool exact, uint64_t now_ms,
                             std::span<const PeerFilter> filters = {});
    // The PCP mapping withdrawn (deleted or expired): it becomes an ordinary dynamic mapping
    // again, released when its last session goes (immediately when it has none). False when
    // it was not held.
    bool release_held_mapping(uint8_t protocol, uint32_t int_addr, uint16_t int_port,
                              uint64_t now_ms);
    // release_held_mapping for the `count` internal ports from `first_int_port` (a port set);
    // how many of them were held.
    uint32_t release_held_port_set(uint8_t protocol, uint32_t int_addr, uint16_t first_int_port,
                                   uint16_t count, uint64_t now_ms);
    // RFC 6886 §3.2 (NAT-PMP external address): the subscriber's paired pool address, pairing
    // it now if needed; nothing when it cannot be paired. A subscriber paired by this call
    // alone is given one block, whose hold-down then ends the pairing when nothing used it:
    // the address stays the one later hold_mapping calls use while the pairing lasts.
    std::optional<uint32_t> paired_address(uint32_t int_addr, uint64_t now_ms);
    // RFC 6887 §12 PEER: the outbound flow int_addr:int_port -> remote_addr:remote_port
    // created (mapping and session, as if the subscriber had sent its first packet: same
    // limits and quotas) or found (its idle timer restarted: §12.3, a PEER request extends the
    // mapping's lifetime). Returns the external endpoint and the session's idle timeout in
    // seconds as lifetime_s (a new TCP session has seen no SYN: the opening timeout).
    HoldResult peer_flow(uint8_t protocol, uint32_t int_addr, uint16_t int_port,
                         uint32_t remote_addr, uint16_t remote_port, uint64_t now_ms);
    uint32_t held_mapping_count() const { return held_count_; }
    uint32_t filtered_mapping_count() const { return filtered_count_; }

private:
    // Both endpoints are copied from the mapping so that translating a packet reads only the
    // session (one cache line), never the mapping.
    struct Session {
        uint32_t int_addr;
        uint32_t ext_addr;
        uint32_t remote_addr;
        uint16_t int_port;
        uint16_t ext_port;
        uint16_t remote_port;
        uint8_t protocol;
        uint8_t tcp;  // tcp_state::State
        // Opened by an inbound packet that the filtering let in, and the subscriber has not
        // sent on it yet (a packet that refreshes nothing, e.g. an RST refusing the SYN, is not
        // sending: RFC 7857 §7.1): it does not count as "the subscriber sent to this endpoint" for
        // filtering (filter table), and each inbound packet is checked against the filtering
        // mode of the moment, which may have become stricter since.
        uint8_t inbound_only;
        // Opened by an inbound packet (stays set when the subscriber answers): counted in its
        // mapping's inbound_sessions, not in the subscriber's sessions.
        uint8_t opened_inbound;
        uint32_t mapping;
        uint32_t next_in_mapping;  // the mapping's sessions, a doubly linked list
        uint32_t prev_in_mapping;
    };
    struct Mapping {
        uint32_t int_addr;
        uint32_t ext_addr;
        uint16_t int_port;
        uint16_t ext_port;
        uint32_t sessions;
        uint32_t inbound_sessions;  // of `sessions`, those opened from outside
        uint32_t subscriber;  // kNoSlot for an explicit mapping (no pairing, no pool port)
        uint8_t protocol;
        // A PCP mapping (hold_mapping): kept when its last session goes, and reached from any
        // remote endpoint whatever the filtering mode (RFC 6887 §11.3). In the padding.
        uint8_t held;
        // A held mapping's FILTERs (RFC 6887 §13.3): filter_sets_[filter_set - 1]; 0: none,
        // anyone may open a session. In the padding too.
        uint16_t filter_set;
        uint32_t first_session;
    };
    static_assert(sizeof(Mapping) == 32, "a mapping stays half a cache line");
    static constexpr uint32_t kNoSlot = ~uint32_t{0};
    struct Subscriber {
        uint32_t addr;
        uint32_t pool_index;
        uint32_t mappings;
        uint32_t first_block;  // AddressPool block id of its first block; kNoSlot: none
        uint16_t blocks;
        uint32_t sessions;
        uint32_t sessions_by_protocol[kProtocolCount];
        uint16_t ports_by_protocol[kProtocolCount];
        // New-session rate buckets in thousandths of a session: all protocols, then each.
        // 64 bits: one second's worth at the largest rate accepted (10 M/s) is 10^10.
        uint64_t tokens[1 + kProtocolCount];
        uint64_t tokens_ms;
        uint64_t quota_event_ms;  // last quota event recorded (at most one a second)
        uint16_t det_first;       // deterministic range (RFC 7422); det_last == 0: none
        uint16_t det_last;
    };

    // A fixed set of slots with a free list: indices are stable and double as table values.
    class SlotPool {
    public:
        explicit SlotPool(uint32_t capacity);
        std::optional<uint32_t> take();
        void give_back(uint32_t slot) { free_.push_back(slot); }
        bool empty() const { return free_.empty(); }

    private:
        std::vector<uint32_t> free_;
    };

    template <bool kFromInside>
    void translate_burst(Ipv4Packet* const* packets, unsigned n, uint64_t now_ms, bool* forward);
    void translate_in2out(Ipv4Packet& p, uint32_t session, uint64_t now_ms);
    // False when the packet was refused (an inbound-only session the filtering now forbids).
    bool translate_out2in(Ipv4Packet& p, uint32_t session, uint64_t now_ms);
    // Whether the packet restarted the session's idle timer.
    bool refresh(uint32_t session, const Ipv4Packet& p, bool from_inside, uint64_t now_ms);
    bool slow_in2out(Ipv4Packet& p, uint64_t now_ms);
    bool slow_out2in(Ipv4Packet& p, uint64_t now_ms);
    std::optional<uint32_t> create_mapping(Ipv4Packet& p, uint64_t now_ms);
    // What create_mapping does without a packet (also PEER's): the subscriber paired, its
    // session limits and port quota checked, a port allocated and the mapping made. On failure
    // nothing is counted: `reason` says why (drop_protocol: not translated).
    std::optional<uint32_t> new_dynamic_mapping(uint8_t protocol, Endpoint internal,
                                                uint64_t now_ms, common::Counter& reason);
    // The mapping of `internal` on port `port` of the subscriber's paired address (taken by
    // the caller): inserted and counted in the subscriber's quotas, or the port given back.
    std::optional<uint32_t> insert_dynamic_mapping(uint8_t protocol, Endpoint internal,
                                                   uint32_t subscriber, uint16_t port,
                                                   uint64_t now_ms, common::Counter& reason);
    // The block a subscriber has just claimed: linked to it, counted and logged.
    void adopt_block(uint32_t subscriber, uint32_t id);
    // hold_mapping's suggested port, taken for the subscriber when it may have it.
    std::optional<uint16_t> take_suggested_port(uint32_t subscriber, ProtocolIndex proto,
                                                uint16_t port, uint64_t now_ms);
    // hold_port_set's run of external ports (pcp_mappings.cpp): where it starts, how long it
    // is, and the block it lies in (AddressPool id; kNoSlot: the deterministic range), or the
    // block of this worker's share still to claim for it (kNoSlot: none; kAnyBlock: any).
    struct PortRun {
        uint16_t start = 0;
        uint32_t length = 0;
        uint32_t block = kNoSlot;
        uint32_t claim = kNoSlot;
    };
    static constexpr uint32_t kAnyBlock = kNoSlot - 1;
    // The longest run of at most `limit` free ports for the subscriber's new set, as
    // hold_port_set chooses it (no port taken, no block claimed). length 0: none; then
    // `quota_blocks` says whether the block quota is why.
    PortRun choose_port_run(uint32_t subscriber, ProtocolIndex proto, uint32_t limit, int parity,
                            uint16_t suggested_port, bool exact, bool& quota_blocks);
    // The set's mappings held with `filters`: internal port first_int_port + i on external
    // port run.start + i, taken and made where the internal port has no mapping yet (its
    // existing one is held as it is); stops at the first that cannot be made. How many are
    // held.
    uint32_t make_port_set(uint8_t protocol, uint32_t int_addr, uint16_t first_int_port,
                           uint32_t subscriber, const PortRun& run, uint64_t now_ms,
                           std::span<const PeerFilter> filters);
    // A free port for the subscriber: in its blocks, or a new block. The drop reason when none.
    std::optional<uint16_t> allocate_port(uint32_t subscriber, ProtocolIndex proto, int parity,
                                          uint64_t now_ms, common::Counter& reason);
    // RFC 6888 REQ-4/5: may the subscriber open one more session of this protocol now? When
    // not, records a quota event and returns false with the reason, which the caller counts
    // (a packet's drop; the packet marked refused, so that the worker answers the subscriber,
    // REQ-11) or reports (a PCP request).
    // `mapping`: the existing mapping the session would join (kNoSlot: a new one).
    bool admit_session(uint32_t subscriber, uint32_t mapping, uint8_t protocol, uint64_t now_ms,
                       common::Counter& reason);
    // The per-mapping limits of a session an inbound packet would open (none of the
    // subscriber's): counted and false when the mapping is at one.
    bool admit_inbound_session(uint32_t subscriber, uint32_t mapping, Ipv4Packet& p,
                               uint64_t now_ms);
    // RFC 6888 REQ-11: the notification of a refusal at a limit (the quota event, at most one
    // a second per subscriber); counting the drop is the caller's.
    void record_refusal(uint32_t subscriber, common::NatEvent::Limit limit, uint8_t protocol,
                        uint64_t now_ms);
    // A failure of a step shared by packets and PCP requests: a packet's drop is counted now
    // (`failure` null), a request's reason handed back in *failure.
    void fail(common::Counter c, common::Counter* failure) {
        if (failure != nullptr)
            *failure = c;
        else
            drop(c);
    }
    void record(const common::NatEvent& e);
    void block_released(uint32_t id, uint32_t subscriber);
    // A mapping whose external endpoint an explicit mapping names.
    std::optional<uint32_t> create_explicit_mapping(uint8_t protocol, Endpoint internal,
                                                    Endpoint external);
    // `failure`: see fail().
    std::optional<uint32_t> insert_mapping(uint8_t protocol, Endpoint internal, Endpoint external,
                                           uint32_t subscriber, common::Counter* failure = nullptr);
    std::optional<uint32_t> pair_subscriber(uint32_t addr, common::Counter* failure = nullptr);
    std::optional<uint32_t> create_session(uint32_t mapping, uint32_t remote_addr,
                                           uint16_t remote_port, uint64_t now_ms, bool inbound,
                                           common::Counter* failure = nullptr);
    // The filter table counts, per (external endpoint, remote address), the sessions the
    // subscriber has sent on.
    bool count_in_filter(const Mapping& m, uint32_t remote_addr, int delta);
    void release_session(uint32_t session);
    void release_mapping(uint32_t mapping);
    // A mapping removed on a command, held or not, with its sessions. Returns how many went.
    uint32_t remove_mapping(uint32_t mapping);
    void release_subscriber(uint32_t subscriber);
    // Releases the subscriber when nothing holds it any more (no mapping, no block).
    void release_subscriber_if_unused(uint32_t subscriber);
    bool inbound_allowed(const Mapping& m, uint32_t remote_addr, uint16_t remote_port) const;
    // The held mapping's filters replaced (pcp_mappings.cpp); false when no set is free.
    bool set_peer_filters(uint32_t mapping, std::span<const PeerFilter> filters);
    void clear_peer_filters(Mapping& m);
    bool explicit_lookups() const { return explicit_present_ && explicit_ != nullptr; }
    void drop(common::Counter c) { counters_.add(c); }

    common::FilteringMode filtering_;
    bool port_parity_;
    common::SubscriberLimits limits_;
    uint64_t hold_down_ms_;
    common::EventRing* events_;
    const common::DeterministicMap* deterministic_;
    bool deterministic_overflow_;
    unsigned worker_index_;
    uint64_t now_ms_ = 0;
    const ExplicitMappingTable* explicit_;
    bool explicit_present_ = false;
    common::WorkerCounters& counters_;
    common::Random random_;
    std::unique_ptr<BlockMap> own_blocks_;  // when the settings gave none
    BlockMap& blocks_;
    AddressPool pool_;
    ExpiryLists expiry_;

    std::vector<Session> sessions_;
    std::vector<Mapping> mappings_;
    std::vector<Subscriber> subscribers_;
    SlotPool free_sessions_;
    SlotPool free_mappings_;
    SlotPool free_subscribers_;
    uint32_t mapping_count_ = 0;
    uint32_t subscriber_count_ = 0;
    uint32_t held_count_ = 0;  // mappings with `held` set
    uint32_t filtered_count_ = 0;  // of those, with a filter set
    std::vector<PeerFilterSet> filter_sets_;
    SlotPool free_filter_sets_;
    // Sessions created since the current burst's bulk lookup: when zero, a miss is still a miss
    // and the slow path need not look the session up again.
    uint32_t created_in_burst_ = 0;

    HashTable session_table_;  // SessionKey (both sides) -> session slot
    HashTable mapping_table_;  // EndpointKey (both sides) -> mapping slot
    // FilterKey -> number of sessions. Only address-dependent filtering reads it, but it is
    // kept in every mode so the mode can change while sessions exist.
    HashTable filter_table_;
    HashTable subscriber_table_;  // internal address -> subscriber slot
};

}  // namespace cgn::dp
