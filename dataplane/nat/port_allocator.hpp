#pragma once
// External port choice. A PortSet tracks the ports of one (external address, protocol) in the
// configured range; an AddressPool holds every pool address with its three PortSets and the
// port blocks this worker holds. All memory is reserved at construction: allocating a port on
// the packet path allocates no memory. Owned and used by one worker only (the BlockMap it
// claims blocks in is shared; see block_map.hpp).

#include <cstdint>
#include <optional>
#include <vector>

#include "common/address.hpp"
#include "common/config.hpp"
#include "common/random.hpp"
#include "dataplane/nat/block_map.hpp"

namespace cgn::dp {

class PortSet {
public:
    // The ports of `range`, all free (`open`) or all taken until opened block by block.
    explicit PortSet(common::PortRange range, bool open = true);

    // A free port, chosen unpredictably: the search starts at a random port of the range
    // (RFC 6056 §3.3.1 spirit, RFC 4787 REQ-1 needs only that it is free). Nothing when full.
    std::optional<uint16_t> allocate(common::Random& random);
    // A free port of [first, last] (both in the range), from a random start; `parity` 0 or 1
    // restricts it to even or odd ports (RFC 4787 REQ-4: an even internal port, e.g. RTP,
    // keeps an even external port so that RTCP can sit on the next odd one), -1 takes any.
    // Nothing when no free port qualifies: falling back to the other parity, after the
    // subscriber's other blocks, is the NAT engine's choice (NatEngine::allocate_port).
    std::optional<uint16_t> allocate_in(common::Random& random, uint16_t first, uint16_t last,
                                        int parity = -1);
    // Takes a given port; false when it is outside the range, not open or already taken.
    bool reserve(uint16_t port);
    void release(uint16_t port);
    bool in_use(uint16_t port) const;
    // Opening makes the ports of [first, last] free (a block given to this worker); closing
    // makes them taken again (the block went back). Both expect none of them in use.
    void open(uint16_t first, uint16_t last);
    void close(uint16_t first, uint16_t last);
    bool is_open(uint16_t port) const {
        if (port < range_.first || port > range_.last) return false;
        const uint32_t offset = port - range_.first;
        return (open_[offset / 64] >> (offset % 64)) & 1;
    }
    uint32_t used() const { return used_; }
    uint32_t capacity() const { return capacity_; }

private:
    // The first port at or after `start` whose bit is clear in taken and set in `pattern`,
    // among the offsets [lo, hi], wrapping inside them.
    std::optional<uint16_t> search(uint32_t lo, uint32_t hi, uint32_t start, uint64_t pattern);
    void take(uint32_t offset);

    common::PortRange range_;
    std::vector<uint64_t> bits_;  // bit (port - first) set when taken or not open
    std::vector<uint64_t> open_;  // bit set when the port is open to this worker
    uint32_t capacity_ = 0;
    uint32_t used_ = 0;
};

// Index of a translated protocol in per-protocol arrays.
enum class ProtocolIndex : uint8_t { udp = 0, tcp = 1, icmp = 2 };
inline constexpr size_t kProtocolCount = 3;
std::optional<ProtocolIndex> protocol_index(uint8_t ip_protocol);

// The index of `addr` among the addresses of `prefixes`, taken in order (the pool's address
// numbering, shared by the workers' AddressPool, the BlockMap and the control thread).
// Inline: asked for every packet (is the destination a pool address?).
inline std::optional<uint32_t> pool_index_of(const std::vector<common::Ipv4Prefix>& prefixes,
                                             uint32_t addr) {
    uint32_t base = 0;
    for (const auto& prefix : prefixes) {
        if (prefix.contains(common::Ipv4Address{addr})) return base + (addr - prefix.address.value);
        base += static_cast<uint32_t>(prefix.size());
    }
    return std::nullopt;
}

// The pool as one worker sees it: every pool address with one PortSet per protocol, whose
// ports are open only in the blocks this worker holds (and in deterministic ranges), and the
// worker's record of each block it holds: for which subscriber, how many ports are in use, and
// since when it is idle (RFC 6888 REQ-8 hold-down). Which worker holds a block is decided in
// the shared BlockMap. All memory is reserved at construction (or built by the control thread
// for addresses added at run time): the packet path allocates nothing.
class AddressPool {
public:
    static constexpr uint32_t kNone = ~uint32_t{0};

    // This worker's view of `prefixes`, claiming blocks in `blocks` as worker `worker`.
    AddressPool(const std::vector<common::Ipv4Prefix>& prefixes, BlockMap& blocks, unsigned worker);

    size_t size() const { return addresses_.size(); }
    uint32_t address(uint32_t index) const { return addresses_[index].addr; }
    std::optional<uint32_t> index_of(uint32_t addr) const { return pool_index_of(prefixes_, addr); }
    bool contains(uint32_t addr) const { return index_of(addr).has_value(); }

    // Paired pooling (RFC 4787 REQ-2) with even load: a new subscriber gets the address with
    // the most free blocks in this worker's share; ties take turns. Nothing when no
    // address has a free block.
    std::optional<uint32_t> pick_address();

    PortSet& ports(uint32_t index, ProtocolIndex p) {
        return addresses_[index].ports[static_cast<size_t>(p)];
    }

    // ---- blocks: a block id is index * blocks_per_address + block ----
    struct Block {
        uint32_t subscriber = kNone;  // kNone: not held by this worker
        uint32_t next = kNone;        // the subscriber's next block
        uint32_t idle_prev = kNone;   // the idle list (blocks with no port in use), oldest first
        uint32_t idle_next = kNone;
        uint64_t idle_since_ms = 0;
        uint16_t used = 0;  // ports in use, all protocols (mappings and reservations)
        bool idle = false;
    };
    uint32_t blocks_per_address() const { return blocks_.blocks_per_address(); }
    uint32_t block_id(uint32_t index, uint32_t block) const {
        return index * blocks_per_address() + block;
    }
    uint32_t index_of_block(uint32_t id) const { return id / blocks_per_address(); }
    uint16_t first_port(uint32_t id) const { return blocks_.first_port(id % blocks_per_address()); }
    uint16_t last_port(uint32_t id) const { return blocks_.last_port(id % blocks_per_address()); }
    // The id of the block holding `port` on address `index`, when this worker holds it.
    std::optional<uint32_t> held_block(uint32_t index, uint16_t port) const {
        const auto block = blocks_.block_of(port);
        if (!block) return std::nullopt;
        const uint32_t id = block_id(index, *block);
        if (block_record(id).subscriber == kNone) return std::nullopt;
        return id;
    }
    Block& block_record(uint32_t id) {
        return addresses_[index_of_block(id)].blocks[id % blocks_per_address()];
    }
    const Block& block_record(uint32_t id) const {
        return addresses_[index_of_block(id)].blocks[id % blocks_per_address()];
    }
    // Claims a free block of address `index` for `subscriber` in the shared map (searching
    // from block `start`) and opens its ports here. The block starts idle (no port in use).
    std::optional<uint32_t> claim_block(uint32_t index, uint32_t subscriber, uint32_t start,
                                        uint64_t now_ms);
    // Claims block `block` of address `index` itself (a port a PCP client suggested), when it
    // is free and in this worker's share; as claim_block otherwise.
    std::optional<uint32_t> claim_block_at(uint32_t index, uint32_t block, uint32_t subscriber,
                                           uint64_t now_ms);
    // A port of a held block was taken or freed: keeps the use count and the idle list.
    void port_taken(uint32_t id);
    void port_freed(uint32_t id, uint64_t now_ms);
    // Gives back, oldest first, up to `budget` blocks idle for at least `hold_down_ms`:
    // `on_release(id, subscriber)` is called first (the subscriber forgets the block), then the
    // ports are closed here and the block is freed in the shared map. Returns how many.
    template <class OnRelease>
    uint32_t expire_blocks(uint64_t now_ms, uint64_t hold_down_ms, uint32_t budget,
                           OnRelease&& on_release) {
        uint32_t n = 0;
        while (n < budget && idle_head_ != kNone) {
            const uint32_t id = idle_head_;
            Block& b = block_record(id);
            if (now_ms - b.idle_since_ms < hold_down_ms) break;
            on_release(id, b.subscriber);
            release_block(id);
            ++n;
        }
        return n;
    }
    // Gives a held block back at once (it must have no port in use).
    void release_block(uint32_t id);
    uint32_t held_blocks() const { return held_; }

    // Pool addresses added at run time: built by the control thread (which allocates), adopted
    // by the worker (which must not). The pool reserves room for kMaxAddresses addresses and
    // kMaxPrefixes prefixes at construction, so adopting never reallocates.
    struct Entry;
    struct Extension {
        std::vector<common::Ipv4Prefix> prefixes;
        std::vector<Entry> entries;
    };
    static Extension build_extension(const std::vector<common::Ipv4Prefix>& prefixes,
                                     const BlockMap& blocks);
    // False (nothing adopted) when the extension would exceed the reserved room.
    bool extend(Extension&& extension);
    static constexpr size_t kMaxAddresses = common::kMaxPoolAddresses;
    static constexpr size_t kMaxPrefixes = common::kMaxPoolPrefixes;

    // Deterministic ranges (RFC 7422): ports [first, last] of address `index` are open in
    // every worker, outside any block; each worker allocates there only for its own
    // deterministic subscribers, whose ranges do not overlap.
    void open_range(uint32_t index, uint16_t first, uint16_t last);

    struct Entry {
        uint32_t addr;
        std::vector<PortSet> ports;
        std::vector<Block> blocks;
    };

private:
    // A block just claimed in the shared map: opened here, held for `subscriber`, idle.
    uint32_t adopt(uint32_t index, uint32_t block, uint32_t subscriber, uint64_t now_ms);
    void unlink_idle(uint32_t id);
    void append_idle(uint32_t id, uint64_t now_ms);

    BlockMap& blocks_;
    unsigned worker_;  // this worker's index: its share of the blocks
    uint8_t holder_;
    std::vector<common::Ipv4Prefix> prefixes_;
    std::vector<Entry> addresses_;
    uint32_t next_ = 0;
    uint32_t idle_head_ = kNone;
    uint32_t idle_tail_ = kNone;
    uint32_t held_ = 0;
};

}  // namespace cgn::dp
