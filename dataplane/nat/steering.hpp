#pragma once
// Which worker owns a packet (DESIGN invariant 3), as pure functions every worker evaluates the
// same way:
//   - inside traffic belongs to the worker its subscriber (source address) hashes to, so a
//     subscriber's mappings, sessions and pool pairing live on one core;
//   - outside traffic belongs to the worker whose share the destination port's block is in
//     (block b of every address is worker b % workers', and a worker hands out ports only from
//     blocks of its share that it claimed for its subscribers), so the owner of any external
//     endpoint follows from the port alone, as a NIC could compute it.
// No DPDK. Nothing shared is read per packet.

#include <cstdint>
#include <optional>

#include "common/config.hpp"
#include "common/deterministic.hpp"
#include "dataplane/nat/block_map.hpp"

namespace cgn::dp {

// The Toeplitz hash (Microsoft RSS) of an IPv4 source address, as a NIC computes it for RSS
// on the source address only (the input is the address in network byte order). Computing it
// here lets cgnd program a NIC's RSS with the same key and indirection table, so that inside
// packets arrive on their owner's queue and need no handoff; ports without RSS get the same
// owner through the handoff rings.
inline constexpr uint8_t kRssKey[40] = {0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                        0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                        0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
                                        0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a};

namespace detail {
// The Toeplitz hash is linear in its input bits: the hash of an address is the XOR of the
// hashes of its four bytes in their positions. Tables of those (4 x 256 entries, built at
// compile time) make the per-packet cost four lookups instead of 32 data-dependent branches.
struct ToeplitzTables {
    uint32_t byte[4][256];
};

constexpr ToeplitzTables make_toeplitz_tables() {
    ToeplitzTables t{};
    for (int position = 0; position < 4; ++position) {
        for (int value = 0; value < 256; ++value) {
            uint32_t hash = 0;
            for (int bit = 0; bit < 8; ++bit) {
                if (!((value >> (7 - bit)) & 1)) continue;
                // Input bit i (0 = most significant of the address) XORs in the 32-bit window
                // of the key starting at key bit i.
                const int i = position * 8 + bit;
                uint32_t window = 0;
                for (int k = 0; k < 32; ++k) {
                    const int key_bit = i + k;
                    const uint32_t b = (kRssKey[key_bit / 8] >> (7 - key_bit % 8)) & 1;
                    window = (window << 1) | b;
                }
                hash ^= window;
            }
            t.byte[position][value] = hash;
        }
    }
    return t;
}

inline constexpr ToeplitzTables kToeplitzTables = make_toeplitz_tables();
}  // namespace detail

inline uint32_t toeplitz_hash_ipv4(uint32_t addr) {
    const auto& t = detail::kToeplitzTables.byte;
    return t[0][addr >> 24] ^ t[1][(addr >> 16) & 0xff] ^ t[2][(addr >> 8) & 0xff] ^
           t[3][addr & 0xff];
}

// The RSS indirection table size assumed when the port has no RSS (and the one cgnd programs
// when it has): queue = table[hash % size], table[i] = i % workers.
inline constexpr uint32_t kDefaultRetaSize = 128;

class Steering {
public:
    Steering(unsigned workers, const BlockMap* blocks, uint32_t reta_size = kDefaultRetaSize,
             const common::DeterministicMap* deterministic = nullptr)
        : workers_(workers),
          blocks_(blocks),
          reta_size_(reta_size),
          deterministic_(deterministic != nullptr && deterministic->enabled() ? deterministic
                                                                                : nullptr) {}

    unsigned workers() const { return workers_; }

    unsigned subscriber_owner(uint32_t subscriber_addr) const {
        if (workers_ == 1) return 0;
        return (toeplitz_hash_ipv4(subscriber_addr) % reta_size_) % workers_;
    }

    // The worker holding the block of external `port` of the pool address with index
    // `pool_index`; nothing when no worker holds it (no dynamic mapping can use it).
    // A port of a deterministic range (RFC 7422) belongs to the worker of the subscriber the
    // formula gives, whether or not its block is a whole one.
    std::optional<unsigned> external_owner(uint32_t pool_index, uint16_t port) const {
        if (deterministic_ != nullptr) {
            if (auto k = deterministic_->reverse_index(pool_index, port))
                return subscriber_owner(deterministic_->subscriber_address(*k).value);
        }
        if (blocks_ == nullptr) return std::nullopt;
        return blocks_->owner_of_port(port);
    }

private:
    unsigned workers_;
    const BlockMap* blocks_;
    uint32_t reta_size_;
    const common::DeterministicMap* deterministic_;
};

}  // namespace cgn::dp
