#pragma once
// Idle-timeout tracking for sessions with a bounded cost per call (no table scan).
//
// Each timeout class (UDP, TCP established, TCP opening, TCP transitory, ICMP) has one
// intrusive list in least-recently-used order. All entries of a class share one timeout, so
// the head of a list is (to within the refresh granularity) the next to expire: expiry looks
// only at list heads, and stops at the first entry still alive or when its budget is spent. A
// refresh moves an entry to its list's tail, but only once per `refresh_granularity_ms` so a
// busy flow does not relink on every packet (see touch() for how this never shortens a
// timeout).
//
// Time is passed in (milliseconds); nothing here reads a clock. Owned by one worker.

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace cgn::dp {

// TCP transitory is the closing timer (both FINs, or after an RST); TCP opening covers a
// connection not yet established (RFC 7857 §2.1).
enum class TimeoutClass : uint8_t { udp, tcp_established, tcp_opening, tcp_transitory, icmp };
inline constexpr size_t kTimeoutClassCount = 5;

class ExpiryLists {
public:
    static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

    ExpiryLists(uint32_t capacity, uint64_t refresh_granularity_ms);

    void set_timeout(TimeoutClass c, uint64_t timeout_ms) { timeout_[index(c)] = timeout_ms; }
    uint64_t timeout(TimeoutClass c) const { return timeout_[index(c)]; }

    // Starts tracking entry `id` (< capacity), last active now.
    void insert(uint32_t id, TimeoutClass c, uint64_t now_ms);
    void remove(uint32_t id);
    // Activity on `id`, which must be tracked (the engine only touches live sessions).
    //
    // The recorded time is a "covered until" time, never earlier than the true last activity:
    // a touch later than it relinks the entry and records now + granularity - 1, so the touches
    // of the next granularity - 1 ms cost one comparison each and are already covered. An entry
    // therefore never expires before its true deadline (RFC 5382 REQ-5, RFC 4787 REQ-5 and RFC
    // 5508 REQ-2 are floors: "MUST NOT expire in less than"), and at most granularity - 1 ms
    // after it. insert() and change_class() record the exact time (their packet is the last).
    void touch(uint32_t id, uint64_t now_ms) {
        if (now_ms > last_[id]) relink_tail(id, now_ms + credit_ms_);
    }
    // Moves `id` (tracked or not) to class `c`, as active now.
    void change_class(uint32_t id, TimeoutClass c, uint64_t now_ms);

    // Starts loading `id`'s timer state (for a burst about to touch several entries).
    void prefetch(uint32_t id) const { __builtin_prefetch(&last_[id], 1); }

    TimeoutClass class_of(uint32_t id) const { return static_cast<TimeoutClass>(class_[id]); }
    // The time the entry's timeout counts from: its last activity, or up to granularity - 1 ms
    // later (see touch()).
    uint64_t last_active(uint32_t id) const { return last_[id]; }
    bool tracked(uint32_t id) const { return class_[id] != kUntracked; }
    uint32_t size() const { return size_; }

    // Calls on_expired(id) for up to `budget` expired entries, after removing each from its
    // list. Oldest first within a class (an entry relinked by touch() may hold back the entries
    // linked after it for less than the granularity, never longer); the class visited first rotates
    // from call to call so that a flood of expiring UDP sessions cannot hold back the other
    // classes. Returns how many expired.
    template <class F>
    uint32_t expire(uint64_t now_ms, uint32_t budget, F&& on_expired) {
        uint32_t done = 0;
        const size_t first = first_class_;
        first_class_ = (first_class_ + 1) % kTimeoutClassCount;
        for (size_t k = 0; k < kTimeoutClassCount && done < budget; ++k) {
            const size_t c = (first + k) % kTimeoutClassCount;
            while (done < budget) {
                const uint32_t id = head_[c];
                if (id == kNone || last_[id] + timeout_[c] > now_ms) break;
                remove(id);
                on_expired(id);
                ++done;
            }
        }
        return done;
    }

private:
    static constexpr uint8_t kUntracked = 0xff;
    static size_t index(TimeoutClass c) { return static_cast<size_t>(c); }
    void link_tail(uint32_t id, size_t c);
    void unlink(uint32_t id);
    void relink_tail(uint32_t id, uint64_t covered_until_ms);

    // granularity - 1 (0 without granularity): how far past a relinking touch it covers.
    uint64_t credit_ms_;
    std::array<uint64_t, kTimeoutClassCount> timeout_{};
    std::array<uint32_t, kTimeoutClassCount> head_;
    std::array<uint32_t, kTimeoutClassCount> tail_;
    std::vector<uint64_t> last_;
    std::vector<uint32_t> prev_;
    std::vector<uint32_t> next_;
    std::vector<uint8_t> class_;
    uint32_t size_ = 0;
    size_t first_class_ = 0;
};

}  // namespace cgn::dp
