#pragma once
// A small, fast PRNG for port choice (xoshiro256** seeded by splitmix64). Not for secrets; it
// only has to make external ports hard to predict from outside (RFC 6056 spirit). Each worker
// owns one, so no state is shared.

#include <cstdint>

namespace cgn::common {

class Random {
public:
    explicit Random(uint64_t seed) {
        for (auto& s : state_) {
            seed += 0x9e3779b97f4a7c15ull;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            s = z ^ (z >> 31);
        }
    }

    uint64_t next() {
        const uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

    // Uniform in [0, bound) by multiply-shift (bias below 2^-32 for bound < 2^32).
    uint32_t below(uint32_t bound) {
        return static_cast<uint32_t>(((next() >> 32) * uint64_t{bound}) >> 32);
    }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t state_[4];
};

}  // namespace cgn::common
