#pragma once
// Every counter a worker keeps, defined once (drop reasons and outcomes alike). The X-macro
// yields the enum, the names printed by cgnd and the help text; every drop in the dataplane
// increments exactly one `drop_*` counter.
//
// Sharing rule: a WorkerCounters block is written only by its worker (relaxed atomic
// load+store, no read-modify-write needed with one writer) and read by any thread (relaxed
// loads): a reader may see a value a few packets old, never a torn one.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace cgn::common {

// X(name, help)
#define CGN_COUNTERS(X)                                                                       \
    X(rx_inside, "frames received on the inside port")                                        \
    X(rx_outside, "frames received on the outside port")                                      \
    X(tx_inside, "frames sent on the inside port")                                            \
    X(tx_outside, "frames sent on the outside port")                                          \
    X(in2out_translated, "packets translated inside to outside")                              \
    X(icmp_errors_translated, "ICMP errors translated with the packet they quote")            \
    X(out2in_translated, "packets translated outside to inside")                              \
    X(hairpinned, "inside packets to a pool address sent back inside (RFC 4787 REQ-9)")       \
    X(forwarded_untranslated, "packets to or from an exempt destination, routed as they are") \
    X(sessions_created, "sessions created")                                                   \
    X(sessions_expired, "sessions removed after their idle timeout")                          \
    X(sessions_created_inbound, "sessions created by an inbound packet the filter allowed")   \
    X(sessions_filtered_out, "sessions from outside ended by a PCP mapping's new FILTERs")     \
    X(mappings_created, "endpoint-independent mappings created")                              \
    X(mappings_removed, "mappings removed with their last session")                           \
    X(subscribers_paired, "subscribers given a paired external address")                      \
    X(blocks_claimed, "port blocks given to subscribers (RFC 6888 REQ-13/14)")                  \
    X(blocks_released, "port blocks returned to the pool after their hold-down")               \
    X(events_queued, "events (blocks, quotas) queued for the logs")                            \
    X(events_dropped, "events lost because the event queue was full")                          \
    X(icmp_quota_unreachable_sent, "ICMP host unreachable sent for a quota (RFC 6888 REQ-11)") \
    X(arp_requests_answered, "ARP requests answered for our or pool addresses")               \
    X(arp_requests_sent, "ARP requests sent to resolve a next hop")                           \
    X(arp_entries_learned, "neighbour entries learned or refreshed from ARP")                 \
    X(icmp_echo_answered, "ICMP echo requests to our own addresses answered")                 \
    X(pcp_requests_punted, "PCP and NAT-PMP requests handed to the PCP server")               \
    X(pcp_answers_sent, "PCP and NAT-PMP answers from the PCP server sent on the inside")     \
    X(icmp_time_exceeded_sent, "ICMP time exceeded messages sent")                            \
    X(icmp_frag_needed_sent,                                                                  \
      "ICMP fragmentation needed (with the next-hop MTU) sent for a DF packet too big for "   \
      "its link (RFC 4787 REQ-13, RFC 5508 §7.1.1)")                                          \
    X(packets_fragmented, "packets without DF too big for their link, sent as fragments "     \
                          "(RFC 4787 REQ-13a)")                                               \
    X(fragments_created, "fragments made of those packets")                                   \
    X(neighbor_packets_queued, "packets held while their next hop was resolved")              \
    X(packets_handed_off, "packets handed to the worker that owns them")                      \
    X(packets_received_by_handoff, "packets received from another worker's queue")            \
    X(drop_runt, "dropped: frame shorter than its headers")                                   \
    X(drop_ethertype, "dropped: ethertype not handled (not IPv4 or ARP)")                     \
    X(drop_not_for_us_l2, "dropped: unicast frame for another MAC address")                   \
    X(drop_arp_malformed, "dropped: ARP not Ethernet/IPv4 or truncated")                      \
    X(drop_arp_not_for_us, "dropped: ARP for an address we do not answer")                    \
    X(drop_ipv4_version, "dropped: IP version not 4")                                         \
    X(drop_ipv4_header_length, "dropped: IHL below 5 or beyond the frame")                    \
    X(drop_ipv4_total_length, "dropped: total length inconsistent with the frame")            \
    X(drop_ipv4_checksum, "dropped: IPv4 header checksum wrong")                              \
    X(drop_ipv4_fragment, "dropped: fragmented ICMP error (not translated)")                   \
    X(fragments_held, "fragments held until their datagram's first fragment came")           \
    X(drop_fragment_timeout, "dropped: held fragment whose first fragment never came")       \
    X(drop_fragment_table_full, "dropped: fragment of a datagram the full table cannot track") \
    X(drop_fragment_hold_full, "dropped: fragment beyond the few held per datagram")         \
    X(drop_fragment_hold_budget,                                                              \
      "dropped: fragment to hold while the worker holds its share of the mbuf pool")          \
    X(drop_fragment_no_session, "dropped: fragment of a datagram whose first was not let in") \
    X(drop_ipv4_martian, "dropped: source or destination address not acceptable")             \
    X(drop_ttl_exceeded, "dropped: TTL expired in transit (ICMP time exceeded sent)")         \
    X(drop_l4_truncated, "dropped: TCP/UDP/ICMP header truncated or malformed")               \
    X(drop_protocol, "dropped: IP protocol not translated")                                   \
    X(drop_icmp_type, "dropped: ICMP type not translated (only echo for now)")                \
    X(drop_icmp_error_malformed,                                                              \
      "dropped: ICMP error with a bad checksum or quoting too little or an error")            \
    X(drop_icmp_error_no_session, "dropped: ICMP error about no session of ours")             \
    X(drop_for_us, "dropped: packet for our own address that we do not serve")                \
    X(drop_pcp_from_outside, "dropped: PCP or NAT-PMP request from the outside (served inside only)") \
    X(drop_pcp_punt_full, "dropped: PCP request while the queue to the PCP server was full")  \
    X(drop_pcp_rate_limited, "dropped: PCP request over its subscriber's rate (--pcp-request-rate)") \
    X(drop_no_route, "dropped: no route to the destination")                                  \
    X(drop_neighbor_queue_full, "dropped: next hop unresolved and its wait queue full")       \
    X(drop_neighbor_unreachable, "dropped: next hop did not answer ARP")                      \
    X(drop_neighbor_table_full, "dropped: neighbour table full")                              \
    X(drop_out2in_no_mapping, "dropped: inbound packet matching no mapping")                  \
    X(drop_out2in_filtered, "dropped: inbound packet refused by the filtering mode")          \
    X(drop_session_table_full, "dropped: session or mapping table full")                      \
    X(drop_mapping_conflict, "dropped: explicit mapping not made yet, its internal endpoint "  \
                             "still has the dynamic mapping being replaced")                   \
    X(drop_ports_exhausted, "dropped: no free port block on the subscriber's address")     \
    X(drop_pool_exhausted, "dropped: no pool address with free ports for a new subscriber")   \
    X(drop_subscriber_table_full, "dropped: subscriber table full")                            \
    X(drop_quota_blocks, "dropped: subscriber holds its maximum of port blocks, all full")     \
    X(drop_quota_ports, "dropped: subscriber at its per-protocol port limit")                  \
    X(drop_quota_sessions, "dropped: subscriber at its session limit")                         \
    X(drop_quota_session_rate, "dropped: subscriber over its new-sessions-per-second limit")   \
    X(drop_quota_mapping_sessions, "dropped: mapping at its session limit")                    \
    X(drop_quota_inbound_sessions,                                                            \
      "dropped: inbound packet for a new session on a mapping at its inbound-session limit")  \
    X(drop_out2in_tcp_not_syn,                                                                \
      "dropped: inbound TCP segment for no session that is not a SYN (RFC 7857 §2)")         \
    X(drop_icmp_rate_limited, "dropped: ICMP error suppressed by the rate limit")             \
    X(drop_too_big_df, "dropped: DF set and bigger than the MTU of the link it leaves on")     \
    X(drop_fragmentation_failed,                                                              \
      "dropped: too big for its link without DF, and not fragmented (mbuf pool empty, or a "  \
      "fragment ending past offset 65535)")                                                   \
    X(drop_tx_full, "dropped: transmit queue full")                                           \
    X(drop_handoff_full, "dropped: handoff ring to the owning worker full")                  \
    X(arp_consumed, "ARP frames that taught us a neighbour and needed no answer")             \
    X(arp_copies_sent, "copies of received ARP frames given to the other workers to learn")   \
    X(arp_copies_consumed, "ARP copies from another worker, learned from and freed")          \
    X(arp_copies_failed, "ARP copies not made (mbuf pool empty): that worker learns later")   \
    X(frames_ended_inside, "frames received inside that ended: sent, dropped or consumed")    \
    X(frames_ended_outside, "frames received outside that ended: sent, dropped or consumed")  \
    X(frames_ended_generated, "frames cgnd made (ARP, ICMP errors, fragments, ARP copies) "   \
                              "that ended: sent or dropped")

enum class Counter : uint16_t {
#define CGN_COUNTER_ENUM(name, help) name,
    CGN_COUNTERS(CGN_COUNTER_ENUM)
#undef CGN_COUNTER_ENUM
};

inline constexpr size_t kCounterCount = 0
#define CGN_COUNTER_ONE(name, help) +1
    CGN_COUNTERS(CGN_COUNTER_ONE)
#undef CGN_COUNTER_ONE
    ;

inline constexpr std::array<std::string_view, kCounterCount> kCounterNames = {
#define CGN_COUNTER_NAME(name, help) #name,
    CGN_COUNTERS(CGN_COUNTER_NAME)
#undef CGN_COUNTER_NAME
};

inline constexpr std::array<std::string_view, kCounterCount> kCounterHelp = {
#define CGN_COUNTER_HELP(name, help) help,
    CGN_COUNTERS(CGN_COUNTER_HELP)
#undef CGN_COUNTER_HELP
};

inline std::string_view counter_name(Counter c) { return kCounterNames[static_cast<size_t>(c)]; }

struct alignas(64) WorkerCounters {
    std::array<std::atomic<uint64_t>, kCounterCount> values{};

    // Single writer: a plain load+store is enough and avoids a locked instruction.
    void add(Counter c, uint64_t n = 1) {
        auto& v = values[static_cast<size_t>(c)];
        v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    uint64_t get(Counter c) const {
        return values[static_cast<size_t>(c)].load(std::memory_order_relaxed);
    }
};

using CounterSnapshot = std::array<uint64_t, kCounterCount>;

}  // namespace cgn::common

#include <string>
#include <vector>

namespace cgn::common {

// Sum over workers, read with relaxed loads (any thread).
CounterSnapshot sum_counters(const std::vector<const WorkerCounters*>& workers);

// "--- counters ---", one "name value" line per counter, "--- end counters ---".
std::string format_counters(const CounterSnapshot& values);

}  // namespace cgn::common
