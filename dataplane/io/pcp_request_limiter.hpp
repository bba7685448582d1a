#pragma once
// The per-subscriber PCP request rate (RFC 6887 §18: a server limits how fast it will work for
// any one client), applied by the worker that owns the subscriber before a request reaches
// the shared ring to the control thread. The control thread applies the exact limit again
// (control/pcp/server.cpp); this one exists so that one subscriber's flood cannot fill the
// worker's ring and crowd out the other subscribers' requests (a full ring drops whatever
// comes next, drop_pcp_punt_full).
//
// A token bucket per subscriber address in a fixed direct-mapped table: no allocation, a hash
// and a compare per request. Two subscribers that share a slot take it from each other, each
// arriving with a full bucket: a collision can only let more through (the control thread's
// limit still holds), never hold a subscriber back for another's traffic.
//
// Sharing rule: owned by one worker, which alone reads and writes it.

#include <algorithm>
#include <array>
#include <cstdint>

namespace cgn::dp {

class PcpRequestLimiter {
public:
    static constexpr unsigned kSlotBits = 12;  // 4096 subscribers tracked at once per worker
    static constexpr uint32_t kSlots = 1u << kSlotBits;

    // `per_second` requests a second with bursts of `burst` (both at least 1).
    PcpRequestLimiter(uint32_t per_second, uint32_t burst)
        : per_second_(std::max<uint32_t>(per_second, 1)),
          capacity_milli_(uint64_t{std::max<uint32_t>(burst, 1)} * 1000) {}

    // Whether a request from `subscriber` at `now_ms` is within its rate (and counts it).
    bool admit(uint32_t subscriber, uint64_t now_ms) {
        Bucket& b = slots_[slot_of(subscriber)];
        if (!b.used || b.subscriber != subscriber) {
            b = Bucket{subscriber, true, capacity_milli_, now_ms};
        } else if (now_ms > b.refilled_ms) {
            // Thousandths of a request, so that rates below one a millisecond refill.
            b.tokens_milli =
                std::min(capacity_milli_, b.tokens_milli + (now_ms - b.refilled_ms) * per_second_);
            b.refilled_ms = now_ms;
        }
        if (b.tokens_milli < 1000) return false;
        b.tokens_milli -= 1000;
        return true;
    }

private:
    struct Bucket {
        uint32_t subscriber = 0;
        bool used = false;
        uint64_t tokens_milli = 0;
        uint64_t refilled_ms = 0;
    };
    static uint32_t slot_of(uint32_t subscriber) {
        // Fibonacci hashing: neighbouring addresses spread over the table.
        return (subscriber * 2654435761u) >> (32 - kSlotBits);
    }

    uint32_t per_second_;
    uint64_t capacity_milli_;
    std::array<Bucket, kSlots> slots_{};
};

}  // namespace cgn::dp
