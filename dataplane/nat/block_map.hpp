#pragma once
// Who holds each port block of each pool address: the one structure the workers and the
// control thread share for dynamic ports (DESIGN invariants 3 and 4).
//
// Each pool address's port range is cut into blocks of `block_size` ports starting at the
// range's first port. Block b of every address belongs to worker b % workers: only that worker
// claims it for its subscribers, so the owner of an outside packet follows from its destination
// port alone (no load of this map per packet), and a NIC can place it on its owner's queue by
// the port's block bits (docs/architecture.md, "Outside traffic on a NIC") (RFC 6888 REQ-13/14: ports are handed to subscribers in blocks, so the
// logs need one event per block). A block is free, held by one worker (for one of its
// subscribers), held by the control thread (static mappings in a block no subscriber has), or
// never dynamic (a deterministic NAT range). Ports past the last whole block are never used
// dynamically.
//
// Sharing rule: a worker claims a free block of its own share, the control thread any free
// block, with a compare-and-swap (rare: a subscriber's first mapping, or growth), and only the
// holder releases it (a release store). Steering computes the owner from the block number
// (owner_of_port) and reads nothing here; an outside packet for a block no subscriber holds
// reaches its worker, which has no mapping for it and drops and counts it. The free counts
// (per address and worker share) are advisory (load spreading) and updated with relaxed
// atomics. The map is sized for the largest pool at construction, so
// pool addresses added at run time need no reallocation.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "common/config.hpp"

namespace cgn::dp {

class BlockMap {
public:
    static constexpr uint8_t kFree = 0;
    static constexpr uint8_t kControl = 0xfe;   // static mappings, claimed by the control thread
    static constexpr uint8_t kReserved = 0xff;  // never dynamic (deterministic NAT)
    static constexpr unsigned kMaxWorkers = 0xfd;
    static uint8_t worker_holder(unsigned worker) { return static_cast<uint8_t>(worker + 1); }
    static bool is_worker(uint8_t holder) { return holder != kFree && holder < kControl; }
    static unsigned worker_of(uint8_t holder) { return holder - 1u; }

    // `workers`: how many workers share the blocks (block b is worker b % workers's); no default,
    // since a map built for fewer workers than run gives the others no block at all.
    BlockMap(common::PortRange range, uint32_t block_size, unsigned workers,
             size_t max_addresses = common::kMaxPoolAddresses)
        : range_(range),
          block_size_(block_size),
          blocks_per_address_(range.size() / block_size),
          workers_(workers == 0 ? 1 : workers),
          max_addresses_(max_addresses),
          holders_(new std::atomic<uint8_t>[max_addresses * blocks_per_address_]),
          free_(new std::atomic<uint32_t>[max_addresses * workers_]) {
        for (size_t i = 0; i < max_addresses * blocks_per_address_; ++i)
            holders_[i].store(kFree, std::memory_order_relaxed);
        for (size_t i = 0; i < max_addresses; ++i)
            for (unsigned w = 0; w < workers_; ++w)
                free_[i * workers_ + w].store(share_size(w), std::memory_order_relaxed);
    }

    common::PortRange range() const { return range_; }
    uint32_t block_size() const { return block_size_; }
    uint32_t blocks_per_address() const { return blocks_per_address_; }
    size_t max_addresses() const { return max_addresses_; }
    unsigned workers() const { return workers_; }
    // The worker whose subscribers may hold block `block` (of any address).
    unsigned owner_of_block(uint32_t block) const { return block % workers_; }
    // The worker that owns an external port of any pool address: the owner of its block;
    // nothing outside the range or past the last whole block.
    std::optional<unsigned> owner_of_port(uint16_t port) const {
        const auto block = block_of(port);
        if (!block) return std::nullopt;
        return owner_of_block(*block);
    }
    // Blocks of one address in worker `w`'s share.
    uint32_t share_size(unsigned w) const {
        return blocks_per_address_ / workers_ + (w < blocks_per_address_ % workers_ ? 1 : 0);
    }

    // The block holding `port`; nothing outside the range or past the last whole block.
    std::optional<uint32_t> block_of(uint16_t port) const {
        if (port < range_.first || port > range_.last) return std::nullopt;
        const uint32_t block = (port - range_.first) / block_size_;
        if (block >= blocks_per_address_) return std::nullopt;
        return block;
    }
    uint16_t first_port(uint32_t block) const {
        return static_cast<uint16_t>(range_.first + block * block_size_);
    }
    uint16_t last_port(uint32_t block) const {
        return static_cast<uint16_t>(first_port(block) + block_size_ - 1);
    }

    uint8_t holder(uint32_t address, uint32_t block) const {
        return slot(address, block).load(std::memory_order_acquire);
    }
    // The worker holding the block of `port`, if a worker holds it.
    std::optional<unsigned> worker_holding(uint32_t address, uint16_t port) const {
        const auto block = block_of(port);
        if (!block || address >= max_addresses_) return std::nullopt;
        const uint8_t h = holder(address, *block);
        if (!is_worker(h)) return std::nullopt;
        return worker_of(h);
    }

    // Takes a free block for `holder`; false when someone holds it.
    bool claim(uint32_t address, uint32_t block, uint8_t holder) {
        uint8_t expected = kFree;
        if (!slot(address, block)
                 .compare_exchange_strong(expected, holder, std::memory_order_acq_rel,
                                          std::memory_order_acquire))
            return false;
        free_count(address, block).fetch_sub(1, std::memory_order_relaxed);
        return true;
    }
    // Any free block of the address that `holder` may take (a worker: of its share), the
    // search starting at `start` (callers pass a random block so that block numbers are not
    // predictable).
    std::optional<uint32_t> claim_any(uint32_t address, uint8_t holder, uint32_t start) {
        const bool worker = is_worker(holder);
        for (uint32_t k = 0; k < blocks_per_address_; ++k) {
            const uint32_t block = (start + k) % blocks_per_address_;
            if (worker && owner_of_block(block) != worker_of(holder)) continue;
            if (slot(address, block).load(std::memory_order_relaxed) == kFree &&
                claim(address, block, holder))
                return block;
        }
        return std::nullopt;
    }
    // Gives a block back (only its holder calls this).
    void release(uint32_t address, uint32_t block) {
        slot(address, block).store(kFree, std::memory_order_release);
        free_count(address, block).fetch_add(1, std::memory_order_relaxed);
    }
    // At set-up, before any worker runs: a block that is never dynamic.
    void reserve(uint32_t address, uint32_t block) {
        if (slot(address, block).exchange(kReserved, std::memory_order_relaxed) == kFree)
            free_count(address, block).fetch_sub(1, std::memory_order_relaxed);
    }
    // Free blocks of the address, all shares, or worker `w`'s share.
    uint32_t free_blocks(uint32_t address) const {
        uint32_t n = 0;
        for (unsigned w = 0; w < workers_; ++w) n += free_blocks(address, w);
        return n;
    }
    uint32_t free_blocks(uint32_t address, unsigned w) const {
        return free_[size_t{address} * workers_ + w].load(std::memory_order_relaxed);
    }

private:
    std::atomic<uint8_t>& slot(uint32_t address, uint32_t block) const {
        return holders_[size_t{address} * blocks_per_address_ + block];
    }
    std::atomic<uint32_t>& free_count(uint32_t address, uint32_t block) const {
        return free_[size_t{address} * workers_ + owner_of_block(block)];
    }

    common::PortRange range_;
    uint32_t block_size_;
    uint32_t blocks_per_address_;
    unsigned workers_;
    size_t max_addresses_;
    std::unique_ptr<std::atomic<uint8_t>[]> holders_;
    std::unique_ptr<std::atomic<uint32_t>[]> free_;
};

}  // namespace cgn::dp
