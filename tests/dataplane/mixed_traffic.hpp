#pragma once
// Helpers for the tests that feed the worker mixed bursts (accounting_test, oracle_test):
// cutting a frame into IPv4 fragments, mutating frames, and the seed a run uses.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/headers.hpp"
#include "common/random.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {

// Cuts a whole Ethernet+IPv4 frame (no options needed) into fragments carrying at most
// `chunk` payload bytes each (a multiple of 8, RFC 791), all with IP ID `id`, in order.
inline std::vector<Frame> cut_into_fragments(const Frame& whole, size_t chunk, uint16_t id) {
    namespace ipv4 = common::ipv4;
    constexpr size_t kIp = common::eth::kHeaderLength;
    const size_t ihl = (whole[kIp] & 0x0f) * 4u;
    const size_t payload = common::load_be16(&whole[kIp + ipv4::kTotalLength]) - ihl;
    std::vector<Frame> out;
    for (size_t off = 0; off < payload; off += chunk) {
        const size_t len = std::min(chunk, payload - off);
        Frame f(whole.begin(), whole.begin() + static_cast<long>(kIp + ihl));
        const auto from = whole.begin() + static_cast<long>(kIp + ihl + off);
        f.insert(f.end(), from, from + static_cast<long>(len));
        common::store_be16(&f[kIp + ipv4::kTotalLength], static_cast<uint16_t>(ihl + len));
        common::store_be16(&f[kIp + ipv4::kId], id);
        const bool more = off + len < payload;
        common::store_be16(
            &f[kIp + ipv4::kFragment],
            static_cast<uint16_t>((off / 8) | (more ? ipv4::kFlagMoreFragments : 0)));
        common::store_be16(&f[kIp + ipv4::kChecksum], 0);
        common::store_be16(&f[kIp + ipv4::kChecksum],
                           common::checksum_finish(common::checksum_partial(&f[kIp], ihl)));
        out.push_back(std::move(f));
    }
    return out;
}

// A copy of `f` broken at random: some bytes changed, or cut short (never empty).
inline Frame mutate(Frame f, common::Random& rng) {
    switch (rng.below(3)) {
        case 0:  // a few bytes anywhere
            for (uint32_t n = 1 + rng.below(3); n > 0; --n)
                f[rng.below(static_cast<uint32_t>(f.size()))] ^=
                    static_cast<uint8_t>(1 + rng.below(255));
            break;
        case 1:  // a byte of the IP header or just after it
            if (f.size() > 40) f[14 + rng.below(26)] ^= static_cast<uint8_t>(1 + rng.below(255));
            break;
        default:  // truncated
            f.resize(1 + rng.below(static_cast<uint32_t>(f.size())));
            break;
    }
    return f;
}

// In-place Fisher-Yates with the test's generator (std::shuffle's result differs between
// standard libraries).
template <class T>
void shuffle(std::vector<T>& v, common::Random& rng) {
    for (size_t i = v.size(); i > 1; --i)
        std::swap(v[i - 1], v[rng.below(static_cast<uint32_t>(i))]);
}

// The seeds a randomised test runs with: CGN_TEST_SEED=<n> runs that one only (to reproduce a
// failure), otherwise `defaults`.
inline std::vector<uint64_t> test_seeds(std::vector<uint64_t> defaults) {
    if (const char* s = std::getenv("CGN_TEST_SEED")) return {std::strtoull(s, nullptr, 0)};
    return defaults;
}

}  // namespace cgn::test
