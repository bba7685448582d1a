#pragma once
// NAT events for the logs (DESIGN invariant 6): a worker records what the logs must show — a
// port block given to or taken back from a subscriber (RFC 6888 REQ-13/14: one log line per
// block instead of per session), a subscriber refused at a quota (RFC 6888 REQ-11 c) — and the
// control thread writes them out. They cross threads through an EventRing per worker.

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace cgn::common {

struct NatEvent {
    enum class Kind : uint8_t {
        block_allocated,
        block_released,
        quota_exceeded,
        deterministic_overflow,  // a deterministic subscriber took a dynamic block
    };
    enum class Limit : uint8_t {
        none,
        blocks,
        ports,
        sessions,
        session_rate,
        pool,
        mapping_sessions,
        inbound_sessions
    };
    uint64_t time_ms = 0;  // the worker's clock
    uint32_t subscriber = 0;
    uint32_t external = 0;  // pool address (blocks)
    uint16_t first_port = 0;
    uint16_t last_port = 0;
    Kind kind = Kind::block_allocated;
    Limit limit = Limit::none;
    uint8_t protocol = 0;  // quota: the protocol of the refused packet
    uint8_t worker = 0;
};

// One log line, e.g. "block-allocated subscriber 100.64.0.11 external 198.51.100.1 ports
// 1536-2047" or "quota-exceeded subscriber 100.64.0.11 limit sessions protocol tcp".
std::string to_string(const NatEvent& e);

// A bounded single-producer single-consumer queue of events: the worker pushes (never waits;
// a full ring refuses and the worker counts the loss), the control thread pops. Head and tail
// are the only shared variables: the producer publishes an entry with a release store of the
// tail, the consumer frees it with a release store of the head.
class EventRing {
public:
    explicit EventRing(uint32_t capacity_pow2 = 4096)
        : slots_(capacity_pow2), mask_(capacity_pow2 - 1) {}

    bool push(const NatEvent& e) {
        const uint32_t tail = tail_.load(std::memory_order_relaxed);
        if (tail - head_.load(std::memory_order_acquire) == slots_.size()) return false;
        slots_[tail & mask_] = e;
        tail_.store(tail + 1, std::memory_order_release);
        return true;
    }
    bool pop(NatEvent& e) {
        const uint32_t head = head_.load(std::memory_order_relaxed);
        if (head == tail_.load(std::memory_order_acquire)) return false;
        e = slots_[head & mask_];
        head_.store(head + 1, std::memory_order_release);
        return true;
    }

private:
    std::vector<NatEvent> slots_;
    uint32_t mask_;
    alignas(64) std::atomic<uint32_t> head_{0};
    alignas(64) std::atomic<uint32_t> tail_{0};
};

}  // namespace cgn::common
