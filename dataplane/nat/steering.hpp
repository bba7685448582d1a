#pragma once
// Which worker owns a packet (DESIGN invariant 3), as pure functions every worker evaluates the
// same way:
//   - inside traffic belongs to the worker its subscriber (source address) hashes to, so a
//     subscriber's mappings, sessions and pool pairing live on one core;
//   - outside traffic belongs to the worker that owns the destination external port: the port
//     range of every pool address is cut into blocks of kPortBlockSize ports, and block b of
//     pool address i belongs to worker (i + b) mod N. A worker hands out ports only from its
//     own blocks, so the owner of any external endpoint it created is found from the endpoint
//     alone. (Per-subscriber port blocks claimed at run time replace this fixed interleaving
//     with RFC 6888 REQ-13/14 block allocation.)
// No DPDK, no shared state: the answer depends only on the packet and the configuration.

#include <cstdint>
#include <optional>

#include "common/config.hpp"

namespace cgn::dp {

inline constexpr uint32_t kPortBlockSize = 512;

// The blocks of one pool address that one worker may allocate from: those with
// block % stride == offset.
struct PortOwnership {
    uint32_t block_size = kPortBlockSize;
    uint32_t stride = 1;
    uint32_t offset = 0;
    bool owns_block(uint32_t block) const { return block % stride == offset; }
};

// The Toeplitz hash (Microsoft RSS) of an IPv4 source address, as a NIC computes it for RSS
// on the source address only (the input is the address in network byte order). Computing it
// here lets cgnd program a NIC's RSS with the same key and indirection table, so that inside
// packets arrive on their owner's queue and need no handoff; ports without RSS get the same
// owner through the handoff rings.
inline constexpr uint8_t kRssKey[40] = {
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a};

inline uint32_t toeplitz_hash_ipv4(uint32_t addr) {
    // The 32-bit window of the key starting at bit i is XORed in for every set input bit i.
    uint64_t window = (uint64_t{kRssKey[0]} << 56) | (uint64_t{kRssKey[1]} << 48) |
                      (uint64_t{kRssKey[2]} << 40) | (uint64_t{kRssKey[3]} << 32) |
                      (uint64_t{kRssKey[4]} << 24) | (uint64_t{kRssKey[5]} << 16) |
                      (uint64_t{kRssKey[6]} << 8) | uint64_t{kRssKey[7]};
    uint32_t hash = 0;
    for (int bit = 31; bit >= 0; --bit) {
        if ((addr >> bit) & 1) hash ^= static_cast<uint32_t>(window >> 32);
        window <<= 1;
    }
    return hash;
}

// The RSS indirection table size assumed when the port has no RSS (and the one cgnd programs
// when it has): queue = table[hash % size], table[i] = i % workers.
inline constexpr uint32_t kDefaultRetaSize = 128;

class Steering {
public:
    Steering(unsigned workers, common::PortRange range, uint32_t reta_size = kDefaultRetaSize)
        : workers_(workers), range_(range), reta_size_(reta_size) {}

    unsigned workers() const { return workers_; }

    unsigned subscriber_owner(uint32_t subscriber_addr) const {
        if (workers_ == 1) return 0;
        return (toeplitz_hash_ipv4(subscriber_addr) % reta_size_) % workers_;
    }

    // The owner of external `port` of the pool address with index `pool_index`; nothing for a
    // port outside the range (no mapping can use it).
    std::optional<unsigned> external_owner(uint32_t pool_index, uint16_t port) const {
        if (port < range_.first || port > range_.last) return std::nullopt;
        const uint32_t block = (port - range_.first) / kPortBlockSize;
        return static_cast<unsigned>((pool_index + block) % workers_);
    }

    PortOwnership ownership(unsigned worker, uint32_t pool_index) const {
        return PortOwnership{kPortBlockSize, workers_,
                             (worker + workers_ - pool_index % workers_) % workers_};
    }

private:
    unsigned workers_;
    common::PortRange range_;
    uint32_t reta_size_;
};

}  // namespace cgn::dp
