#pragma once
// The workers' clock: the CPU's timestamp counter, read once per loop (DESIGN invariant 7).

#include <rte_cycles.h>

#include "common/clock.hpp"

namespace cgn::dp {

class TscClock final : public common::Clock {
public:
    TscClock() : cycles_per_ms_(rte_get_tsc_hz() / 1000) {}
    uint64_t now_ms() const override { return rte_get_tsc_cycles() / cycles_per_ms_; }

private:
    uint64_t cycles_per_ms_;
};

}  // namespace cgn::dp
