#pragma once
// Internal to the NAT engine: the fast path both directions share, a template instantiated in
// in2out.cpp and out2in.cpp so that each direction's per-packet rewrite inlines into its burst
// loop, and the session refresh both call per packet.

#include <algorithm>

#include "common/headers.hpp"
#include "dataplane/nat/nat_engine.hpp"
#include "dataplane/nat/nat_keys.hpp"
#include "dataplane/nat/tcp_state.hpp"

namespace cgn::dp {

// Fast path: the keys of up to 64 packets, one bulk lookup, then each hit is rewritten; a miss
// goes to the slow path.
template <bool kFromInside>
void NatEngine::translate_burst(Ipv4Packet* const* packets, unsigned n, uint64_t now_ms,
                                bool* forward) {
    for (unsigned base = 0; base < n; base += HashTable::kMaxBulk) {
        const unsigned count = std::min(n - base, HashTable::kMaxBulk);
        SessionKey keys[HashTable::kMaxBulk];
        const void* key_ptrs[HashTable::kMaxBulk];
        uint64_t slots[HashTable::kMaxBulk];
        for (unsigned i = 0; i < count; ++i) {
            keys[i] =
                kFromInside ? inside_key(*packets[base + i]) : outside_key(*packets[base + i]);
            key_ptrs[i] = &keys[i];
        }
        const uint64_t hits = session_table_.lookup_bulk(key_ptrs, count, slots);
        created_in_burst_ = 0;
        // The sessions (and their timer entries) of a large table are rarely in cache: start
        // every load of the burst before the first is needed.
        for (unsigned i = 0; i < count; ++i) {
            if (hits & (uint64_t{1} << i)) {
                __builtin_prefetch(&sessions_[slots[i]], 1);
                expiry_.prefetch(static_cast<uint32_t>(slots[i]));
            }
        }
        for (unsigned i = 0; i < count; ++i) {
            Ipv4Packet& p = *packets[base + i];
            if (hits & (uint64_t{1} << i)) {
                if constexpr (kFromInside) {
                    translate_in2out(p, static_cast<uint32_t>(slots[i]), now_ms);
                    forward[base + i] = true;
                } else {
                    forward[base + i] =
                        translate_out2in(p, static_cast<uint32_t>(slots[i]), now_ms);
                }
            } else {
                forward[base + i] = kFromInside ? slow_in2out(p, now_ms) : slow_out2in(p, now_ms);
            }
        }
    }
}

// Restarts the idle timer; for TCP, steps the session's state machine (tcp_state.hpp), which
// says whether the segment restarts the timer and may move the session to another timeout
// class. Returns whether the timer restarted.
inline bool NatEngine::refresh(uint32_t session, const Ipv4Packet& p, bool from_inside,
                               uint64_t now_ms) {
    if (p.protocol == common::ipv4::kProtoTcp) {
        Session& s = sessions_[session];
        const tcp_state::Step step = tcp_state::step(s.tcp, p.tcp_flags, from_inside);
        s.tcp = step.state;
        // Only a step that restarts the timer changes the class (a step that keeps the timer
        // keeps the state).
        if (!step.restart_timer) return false;
        const TimeoutClass c = tcp_state::timeout_class(step.state);
        if (c != expiry_.class_of(session)) {
            expiry_.change_class(session, c, now_ms);
            return true;
        }
    }
    expiry_.touch(session, now_ms);
    return true;
}

}  // namespace cgn::dp
