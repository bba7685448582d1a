#pragma once
// Frame accounting (issue 9 item 2): every frame a worker receives ends in exactly one outcome
// (sent, a counted drop, or consumed), or is held and ends later. This header says, once, what
// every counter means for that balance, and checks it.
//
// API (no DPDK; usable from any test, fuzz harness or tool that has counters):
//
//   common::FrameHeld held = ...;     // Worker::held_frames(), summed (+=) over the workers
//   common::FrameBalance b = common::frame_balance(snapshot, held);
//   if (!b.balanced()) FAIL() << b.describe();
//
// `snapshot` is the CounterSnapshot summed over all workers (sum_counters). The balance is
// checked per origin of a frame:
//   inside     frames received on the inside port:   rx_inside  == frames_ended_inside  + held
//   outside    frames received on the outside port:  rx_outside == frames_ended_outside + held
//   generated  frames cgnd made itself (ARP requests, ICMP errors, fragments, ARP copies):
//              sum of the `generated` counters      == frames_ended_generated + held
// and across them: the `outcome` counters (tx_*, every drop of a frame, consumed ARP, a packet
// freed once cut into fragments) sum to the frames ended, so no frame ends with no counter or
// with two. With every worker idle and nothing held (fragment and ARP timeouts passed, handoff
// rings drained), every side balances to zero held.
//
// How the worker knows the origin of a frame it ends: it tags each mbuf (a dynamic field) when
// it receives or makes it, and counts frames_ended_<origin> wherever a frame leaves its hands
// for good (transmitted, freed), whatever worker that is. Handing a frame to another worker does
// not end it.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/counters.hpp"

namespace cgn::common {

enum class FrameOrigin : uint8_t { inside = 0, outside = 1, generated = 2 };
inline constexpr size_t kFrameOrigins = 3;

// What a counter says about frames.
enum class FrameRole : uint8_t {
    received,   // a frame entered from a port (rx_inside, rx_outside)
    generated,  // cgnd made a frame
    outcome,    // a frame ended: exactly one of these per frame that ends
    ended,      // frames_ended_<origin>: the per-origin tally of frames that ended
    none,       // a step on a frame's way (translated, handed off, held, ...) or not a frame
};

struct CounterRole {
    Counter counter;
    FrameRole role;
};

// Every counter, classified. A counter missing here fails the static_assert below, so a new
// counter cannot be added without saying what it means for a frame.
inline constexpr std::array<CounterRole, kCounterCount> kCounterRoles = {{
    {Counter::rx_inside, FrameRole::received},
    {Counter::rx_outside, FrameRole::received},
    // Everything a worker transmits ends there: received frames sent on, and frames it made.
    {Counter::tx_inside, FrameRole::outcome},
    {Counter::tx_outside, FrameRole::outcome},
    // Translated, answered, hairpinned, forwarded: the frame still goes out (tx_*) or is
    // dropped on its way out (drop_no_route, drop_neighbor_*, drop_tx_full, ...).
    {Counter::in2out_translated, FrameRole::none},
    {Counter::icmp_errors_translated, FrameRole::none},
    {Counter::out2in_translated, FrameRole::none},
    {Counter::hairpinned, FrameRole::none},
    {Counter::forwarded_untranslated, FrameRole::none},
    {Counter::sessions_created, FrameRole::none},
    {Counter::sessions_expired, FrameRole::none},
    {Counter::sessions_created_inbound, FrameRole::none},
    {Counter::sessions_filtered_out, FrameRole::none},
    {Counter::mappings_created, FrameRole::none},
    {Counter::mappings_removed, FrameRole::none},
    {Counter::subscribers_paired, FrameRole::none},
    {Counter::blocks_claimed, FrameRole::none},
    {Counter::blocks_released, FrameRole::none},
    {Counter::events_queued, FrameRole::none},
    {Counter::events_dropped, FrameRole::none},  // an event, not a frame
    {Counter::icmp_quota_unreachable_sent, FrameRole::generated},
    {Counter::arp_requests_answered, FrameRole::none},  // the reply is the request's mbuf: tx
    {Counter::arp_requests_sent, FrameRole::generated},
    {Counter::arp_entries_learned, FrameRole::none},  // also counted for answered requests
    {Counter::icmp_echo_answered, FrameRole::none},   // the reply is the request's mbuf: tx
    {Counter::pcp_requests_punted, FrameRole::outcome},  // the control thread frees it
    {Counter::pcp_answers_sent, FrameRole::generated},   // made by the control thread: tx
    {Counter::icmp_time_exceeded_sent, FrameRole::generated},
    {Counter::icmp_frag_needed_sent, FrameRole::generated},
    // The packet itself ends here (its mbuf is freed); its fragments are new frames.
    {Counter::packets_fragmented, FrameRole::outcome},
    {Counter::fragments_created, FrameRole::generated},
    {Counter::neighbor_packets_queued, FrameRole::none},  // held: Worker::held_frames
    {Counter::packets_handed_off, FrameRole::none},       // the receiving worker ends it
    {Counter::packets_received_by_handoff, FrameRole::none},
    {Counter::drop_runt, FrameRole::outcome},
    {Counter::drop_ethertype, FrameRole::outcome},
    {Counter::drop_not_for_us_l2, FrameRole::outcome},
    {Counter::drop_arp_malformed, FrameRole::outcome},
    {Counter::drop_arp_not_for_us, FrameRole::outcome},
    {Counter::drop_ipv4_version, FrameRole::outcome},
    {Counter::drop_ipv4_header_length, FrameRole::outcome},
    {Counter::drop_ipv4_total_length, FrameRole::outcome},
    {Counter::drop_ipv4_checksum, FrameRole::outcome},
    {Counter::drop_ipv4_fragment, FrameRole::outcome},
    {Counter::fragments_held, FrameRole::none},  // held: Worker::held_frames
    {Counter::drop_fragment_timeout, FrameRole::outcome},
    {Counter::drop_fragment_table_full, FrameRole::outcome},
    {Counter::drop_fragment_hold_full, FrameRole::outcome},
    {Counter::drop_fragment_hold_budget, FrameRole::outcome},
    {Counter::drop_fragment_no_session, FrameRole::outcome},
    {Counter::drop_ipv4_martian, FrameRole::outcome},
    {Counter::drop_ttl_exceeded, FrameRole::outcome},
    {Counter::drop_l4_truncated, FrameRole::outcome},
    {Counter::drop_protocol, FrameRole::outcome},
    {Counter::drop_icmp_type, FrameRole::outcome},
    {Counter::drop_icmp_error_malformed, FrameRole::outcome},
    {Counter::drop_icmp_error_no_session, FrameRole::outcome},
    {Counter::drop_for_us, FrameRole::outcome},
    {Counter::drop_pcp_from_outside, FrameRole::outcome},
    {Counter::drop_pcp_punt_full, FrameRole::outcome},
    {Counter::drop_pcp_rate_limited, FrameRole::outcome},
    {Counter::drop_no_route, FrameRole::outcome},
    {Counter::drop_neighbor_queue_full, FrameRole::outcome},
    {Counter::drop_neighbor_unreachable, FrameRole::outcome},
    {Counter::drop_neighbor_table_full, FrameRole::outcome},
    {Counter::drop_out2in_no_mapping, FrameRole::outcome},
    {Counter::drop_out2in_filtered, FrameRole::outcome},
    {Counter::drop_session_table_full, FrameRole::outcome},
    {Counter::drop_mapping_conflict, FrameRole::outcome},
    {Counter::drop_ports_exhausted, FrameRole::outcome},
    {Counter::drop_pool_exhausted, FrameRole::outcome},
    {Counter::drop_subscriber_table_full, FrameRole::outcome},
    {Counter::drop_quota_blocks, FrameRole::outcome},
    {Counter::drop_quota_ports, FrameRole::outcome},
    {Counter::drop_quota_sessions, FrameRole::outcome},
    {Counter::drop_quota_session_rate, FrameRole::outcome},
    {Counter::drop_quota_mapping_sessions, FrameRole::outcome},
    {Counter::drop_quota_inbound_sessions, FrameRole::outcome},
    {Counter::drop_out2in_tcp_not_syn, FrameRole::outcome},
    // An ICMP error not made (the frame it would have answered ends with its own drop).
    {Counter::drop_icmp_rate_limited, FrameRole::none},
    {Counter::drop_too_big_df, FrameRole::outcome},
    {Counter::drop_fragmentation_failed, FrameRole::outcome},
    {Counter::drop_tx_full, FrameRole::outcome},
    {Counter::drop_handoff_full, FrameRole::outcome},
    {Counter::arp_consumed, FrameRole::outcome},
    {Counter::arp_copies_sent, FrameRole::generated},
    {Counter::arp_copies_consumed, FrameRole::outcome},
    {Counter::arp_copies_failed, FrameRole::none},  // a copy not made is no frame
    {Counter::frames_ended_inside, FrameRole::ended},
    {Counter::frames_ended_outside, FrameRole::ended},
    {Counter::frames_ended_generated, FrameRole::ended},
}};

namespace detail {
constexpr bool every_counter_classified_once() {
    std::array<int, kCounterCount> seen{};
    for (const CounterRole& r : kCounterRoles) {
        const auto i = static_cast<size_t>(r.counter);
        if (i >= kCounterCount || seen[i]++ != 0) return false;
    }
    return true;
}
}  // namespace detail
static_assert(detail::every_counter_classified_once(),
              "every counter of CGN_COUNTERS needs one row in kCounterRoles "
              "(common/frame_accounting.hpp): say what it means for a frame");

constexpr FrameRole role_of(Counter c) {
    for (const CounterRole& r : kCounterRoles)
        if (r.counter == c) return r.role;
    return FrameRole::none;
}

constexpr Counter ended_counter(FrameOrigin o) {
    return o == FrameOrigin::inside    ? Counter::frames_ended_inside
           : o == FrameOrigin::outside ? Counter::frames_ended_outside
                                       : Counter::frames_ended_generated;
}

// Frames held right now, by origin (fragments waiting for their first, packets waiting for
// their next hop's MAC, frames in handoff queues and rings). A worker's own share of the
// handoff rings may be negative (it took more from them than it put in); the sum over the
// workers is not.
struct FrameHeld {
    std::array<int64_t, kFrameOrigins> by_origin{};
    FrameHeld& operator+=(const FrameHeld& other) {
        for (size_t i = 0; i < kFrameOrigins; ++i) by_origin[i] += other.by_origin[i];
        return *this;
    }
    int64_t total() const { return by_origin[0] + by_origin[1] + by_origin[2]; }
};

struct FrameBalance {
    std::array<uint64_t, kFrameOrigins> began{};  // rx_inside, rx_outside, generated
    std::array<uint64_t, kFrameOrigins> ended{};  // frames_ended_<origin>
    std::array<int64_t, kFrameOrigins> held{};
    uint64_t outcomes = 0;  // the sum of the outcome counters

    uint64_t ended_total() const { return ended[0] + ended[1] + ended[2]; }
    bool origin_balanced(FrameOrigin o) const {
        const auto i = static_cast<size_t>(o);
        return static_cast<int64_t>(began[i]) == static_cast<int64_t>(ended[i]) + held[i];
    }
    bool balanced() const {
        return origin_balanced(FrameOrigin::inside) && origin_balanced(FrameOrigin::outside) &&
               origin_balanced(FrameOrigin::generated) && outcomes == ended_total();
    }
    // One line per origin and the outcome sum, for failure messages.
    std::string describe() const {
        static constexpr const char* kNames[] = {"inside", "outside", "generated"};
        std::string out;
        for (size_t i = 0; i < kFrameOrigins; ++i) {
            out += std::string(kNames[i]) + ": began " + std::to_string(began[i]) + ", ended " +
                   std::to_string(ended[i]) + ", held " + std::to_string(held[i]) +
                   (origin_balanced(static_cast<FrameOrigin>(i)) ? "" : "  <-- unbalanced") + "\n";
        }
        out += "outcome counters " + std::to_string(outcomes) + ", frames ended " +
               std::to_string(ended_total()) + (outcomes == ended_total() ? "" : "  <-- differ") +
               "\n";
        return out;
    }
};

inline FrameBalance frame_balance(const CounterSnapshot& counters, const FrameHeld& held) {
    FrameBalance b;
    b.held = held.by_origin;
    for (const CounterRole& r : kCounterRoles) {
        const uint64_t v = counters[static_cast<size_t>(r.counter)];
        switch (r.role) {
            case FrameRole::received:
                b.began[static_cast<size_t>(r.counter == Counter::rx_inside
                                                ? FrameOrigin::inside
                                                : FrameOrigin::outside)] += v;
                break;
            case FrameRole::generated:
                b.began[static_cast<size_t>(FrameOrigin::generated)] += v;
                break;
            case FrameRole::outcome:
                b.outcomes += v;
                break;
            case FrameRole::ended:
                break;
            case FrameRole::none:
                break;
        }
    }
    for (size_t i = 0; i < kFrameOrigins; ++i)
        b.ended[i] = counters[static_cast<size_t>(ended_counter(static_cast<FrameOrigin>(i)))];
    return b;
}

}  // namespace cgn::common
