#pragma once
// TCP session tracking, RFC 7857 §2: "The TCP state machine depicted in Figure 1, adapted from
// [RFC6146], SHOULD be implemented by a NAT for TCP session tracking purposes."
//
// States (RFC 6146 §3.5.2.2 names, with inside for its IPv6 side and outside for its IPv4 side):
//
//   closed              no SYN seen yet (a session opened by another segment)     opening
//   inside SYN seen     opening from inside ("V6 INIT")                           opening
//   outside SYN seen    opening from outside ("V4 INIT")                          opening
//   established         a SYN from each side                                      established
//   inside FIN seen     half-closed by the inside ("V6 FIN RCV")                  established
//   outside FIN seen    half-closed by the outside ("V4 FIN RCV")                 established
//   both FINs seen      "V4 FIN + V6 FIN RCV"                                     transitory
//   trans               after an RST ("TRANS")                                    transitory
//
// The last column is the timeout class (RFC 7857 §2.1: separate opening and closing idle
// timeouts; the closing one is --timeout-tcp-transitory). Every segment makes one step: a next
// state, and whether the session's idle timer restarts. It does not in these cases:
//   - an opening session restarts only on a SYN (RFC 6146: other packets leave it unchanged);
//   - an RST while opening or closed is translated and changes nothing: it is the answer to an
//     unsolicited SYN or segment (RFC 7857 §7.1: "TCP RST outbound packets sent as a response
//     to inbound packets SHOULD NOT refresh the mapping"); the engine does not count such a
//     packet as the subscriber sending to the remote either;
//   - both FINs seen: the closing timer runs from the second FIN, only a new SYN restarts it
//     (RFC 6146: the lifetime is not updated);
//   - trans: further RSTs do not restart the timer (RFC 7857 §2.2: the session is deleted
//     "if no packets are received during that 4-minute timeout"), so a stream of RSTs cannot
//     keep a reset session alive; any other packet brings it back to established.
// A SYN after both FINs or an RST opens the 5-tuple anew (a new connection reusing it).
//
// The steps are a 128-byte table built at compile time from transition() below; the fast path
// makes one load per segment.

#include <array>
#include <cstdint>

#include "common/headers.hpp"
#include "dataplane/nat/expiry_lists.hpp"

namespace cgn::dp::tcp_state {

enum State : uint8_t {
    kClosed = 0,
    kInsideSynSeen,
    kOutsideSynSeen,
    kEstablished,
    kInsideFinSeen,
    kOutsideFinSeen,
    kBothFinsSeen,
    kTrans,
};
inline constexpr unsigned kStateCount = 8;

struct Step {
    uint8_t state;
    bool restart_timer;
};

namespace detail {

// One segment's effect, written out; the table below is built from it.
constexpr Step transition(uint8_t state, uint8_t tcp_flags, bool from_inside) {
    namespace tcp = common::tcp;
    const bool rst = tcp_flags & tcp::kRst;
    const bool syn = !rst && (tcp_flags & tcp::kSyn);
    const bool fin = !rst && !syn && (tcp_flags & tcp::kFin);
    const uint8_t own_syn = from_inside ? kInsideSynSeen : kOutsideSynSeen;
    const uint8_t own_fin = from_inside ? kInsideFinSeen : kOutsideFinSeen;
    const uint8_t other_fin = from_inside ? kOutsideFinSeen : kInsideFinSeen;
    switch (state) {
        case kClosed:
            // RFC 7857 §7.1: "TCP RST outbound packets sent as a response to inbound packets
            // SHOULD NOT refresh the mapping" (and an inbound RST has nothing to refresh).
            if (rst) return {kClosed, false};
            if (syn) return {own_syn, true};
            return {kClosed, true};
        case kInsideSynSeen:
        case kOutsideSynSeen:
            // RFC 6146 §3.5.2.2: a SYN from the other side establishes; the opener's SYN (a
            // retransmission) restarts the timer; "any other packet ... the state remains
            // unchanged", an RST refusing the SYN included (RFC 7857 §7.1, as above).
            if (syn) return state == own_syn ? Step{state, true} : Step{kEstablished, true};
            return {state, false};
        case kEstablished:
            // RFC 7857 §2.2: on an RST "the NAT SHOULD wait for 4 minutes before deleting the
            // session": the closing timer, from the RST.
            if (rst) return {kTrans, true};
            if (fin) return {own_fin, true};
            return {kEstablished, true};
        case kInsideFinSeen:
        case kOutsideFinSeen:
            // Half-closed: the other side may send for a long time, on the established timer.
            if (rst) return {kTrans, true};
            if (fin && state == other_fin) return {kBothFinsSeen, true};
            return {state, true};
        case kBothFinsSeen:
            if (syn) return {own_syn, true};
            return {kBothFinsSeen, false};
        case kTrans:
            // RFC 6146 §3.5.2.2: "If a packet other than a RST packet is received, the lifetime
            // is set to TCP_EST, and the state is moved to ESTABLISHED." More RSTs leave the
            // timer running (RFC 7857 §2.2: deleted "if no packets are received").
            if (rst) return {kTrans, false};
            if (syn) return {own_syn, true};
            return {kEstablished, true};
        default:  // not a state (the table masks the state to three bits)
            return {kClosed, true};
    }
}

constexpr unsigned kFlagBits = common::tcp::kFin | common::tcp::kSyn | common::tcp::kRst;
static_assert(kFlagBits == 0x07, "the table is indexed by the low three TCP flag bits");

constexpr unsigned index(uint8_t state, uint8_t tcp_flags, bool from_inside) {
    return (state & (kStateCount - 1)) << 4 | unsigned{from_inside} << 3 | (tcp_flags & kFlagBits);
}

// Entry: the next state in the low bits, kRestart when the idle timer restarts.
inline constexpr uint8_t kRestart = 0x80;

inline constexpr unsigned kTableSize = kStateCount * 16;

constexpr std::array<uint8_t, kTableSize> make_table() {
    std::array<uint8_t, kTableSize> table{};
    for (uint8_t state = 0; state < kStateCount; ++state)
        for (bool inside : {false, true})
            for (uint8_t flags = 0; flags <= kFlagBits; ++flags) {
                const Step s = transition(state, flags, inside);
                table[index(state, flags, inside)] =
                    static_cast<uint8_t>(s.state | (s.restart_timer ? kRestart : 0));
            }
    return table;
}

inline constexpr std::array<uint8_t, kTableSize> kTable = make_table();

inline constexpr std::array<TimeoutClass, kStateCount> kClassOf = {
    TimeoutClass::tcp_opening,     TimeoutClass::tcp_opening,     TimeoutClass::tcp_opening,
    TimeoutClass::tcp_established, TimeoutClass::tcp_established, TimeoutClass::tcp_established,
    TimeoutClass::tcp_transitory,  TimeoutClass::tcp_transitory,
};

}  // namespace detail

// The step a segment with TCP flags `tcp_flags` makes, travelling from inside (in2out) or from
// outside, on a session in `state`.
inline Step step(uint8_t state, uint8_t tcp_flags, bool from_inside) {
    const uint8_t e = detail::kTable[detail::index(state, tcp_flags, from_inside)];
    return {static_cast<uint8_t>(e & ~detail::kRestart), (e & detail::kRestart) != 0};
}

inline TimeoutClass timeout_class(uint8_t state) {
    return detail::kClassOf[state & (kStateCount - 1)];
}

}  // namespace cgn::dp::tcp_state
