#pragma once
// Time is injected (DESIGN invariant 7): logic takes a Clock or a `now` value, never reads the
// system clock itself, so tests drive time. Milliseconds on a monotonic base.

#include <chrono>
#include <cstdint>

namespace cgn::common {

class Clock {
public:
    virtual ~Clock() = default;
    virtual uint64_t now_ms() const = 0;
};

class SteadyClock final : public Clock {
public:
    uint64_t now_ms() const override {
        return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::steady_clock::now().time_since_epoch())
                                         .count());
    }
};

// Wall-clock time (Unix ms): for what must survive a restart (stored PCP expiries, §8.5's
// epoch start). Not monotonic: only compared across restarts.
class SystemClock final : public Clock {
public:
    uint64_t now_ms() const override {
        return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
    }
};

// A clock that moves only when told: for tests.
class ManualClock final : public Clock {
public:
    explicit ManualClock(uint64_t start_ms = 1'000'000) : now_(start_ms) {}
    uint64_t now_ms() const override { return now_; }
    void advance_ms(uint64_t ms) { now_ += ms; }
    void set_ms(uint64_t ms) { now_ = ms; }

private:
    uint64_t now_;
};

}  // namespace cgn::common
