#pragma once
// TCP session state as a NAT needs it (RFC 5382 §5, RFC 7857 §2.2): which of SYN and FIN each
// side has sent and whether an RST was seen. That decides the timeout class:
//   - established (both SYNs seen, no FIN pair, no RST): the long established timeout;
//   - everything else (opening, both sides closing, after RST): the transitory timeout, so a
//     cleanly closed or reset connection releases its session within ~4 minutes.
// Pure functions on a byte of flags.

#include <cstdint>

#include "common/headers.hpp"
#include "dataplane/nat/expiry_lists.hpp"

namespace cgn::dp::tcp_state {

inline constexpr uint8_t kInsideSyn = 0x01, kOutsideSyn = 0x02, kInsideFin = 0x04,
                         kOutsideFin = 0x08, kReset = 0x10;

// Flags after a segment with TCP flags `tcp_flags` travelled from inside (in2out) or outside.
inline uint8_t update(uint8_t state, uint8_t tcp_flags, bool from_inside) {
    namespace tcp = common::tcp;
    if (tcp_flags & tcp::kRst) return static_cast<uint8_t>(state | kReset);
    if (tcp_flags & tcp::kSyn) {
        // A SYN after the previous connection on this 5-tuple closed or reset starts anew.
        const bool closed = (state & kReset) || ((state & kInsideFin) && (state & kOutsideFin));
        if (closed) state = 0;
        state |= from_inside ? kInsideSyn : kOutsideSyn;
    }
    if (tcp_flags & tcp::kFin) state |= from_inside ? kInsideFin : kOutsideFin;
    return state;
}

inline TimeoutClass timeout_class(uint8_t state) {
    const bool opened = (state & kInsideSyn) && (state & kOutsideSyn);
    const bool closing = (state & kInsideFin) && (state & kOutsideFin);
    if (opened && !closing && !(state & kReset)) return TimeoutClass::tcp_established;
    return TimeoutClass::tcp_transitory;
}

}  // namespace cgn::dp::tcp_state
