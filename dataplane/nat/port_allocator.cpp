#include "dataplane/nat/port_allocator.hpp"

#include <bit>

#include "common/headers.hpp"

namespace cgn::dp {

namespace {
// Bits [lo, hi] of a 64-bit word (0 <= lo <= hi <= 63).
uint64_t bit_span(uint32_t lo, uint32_t hi) {
    const uint64_t upto_hi = hi == 63 ? ~uint64_t{0} : (uint64_t{1} << (hi + 1)) - 1;
    return upto_hi & (~uint64_t{0} << lo);
}
}  // namespace

PortSet::PortSet(common::PortRange range, bool open)
    : range_(range),
      bits_((range.size() + 63) / 64, ~uint64_t{0}),
      open_((range.size() + 63) / 64, 0) {
    if (open) this->open(range.first, range.last);
}

void PortSet::open(uint16_t first, uint16_t last) {
    for (uint32_t offset = first - range_.first; offset <= uint32_t{last} - range_.first;
         ++offset) {
        const uint64_t bit = uint64_t{1} << (offset % 64);
        if (open_[offset / 64] & bit) continue;
        open_[offset / 64] |= bit;
        bits_[offset / 64] &= ~bit;
        ++capacity_;
    }
}

void PortSet::close(uint16_t first, uint16_t last) {
    for (uint32_t offset = first - range_.first; offset <= uint32_t{last} - range_.first;
         ++offset) {
        const uint64_t bit = uint64_t{1} << (offset % 64);
        if (!(open_[offset / 64] & bit)) continue;
        if (bits_[offset / 64] & bit) --used_;  // callers close blocks with no port in use
        --capacity_;
        open_[offset / 64] &= ~bit;
        bits_[offset / 64] |= bit;
    }
}

std::optional<uint16_t> PortSet::allocate(common::Random& random) {
    return allocate_in(random, range_.first, range_.last, -1);
}

std::optional<uint16_t> PortSet::allocate_in(common::Random& random, uint16_t first, uint16_t last,
                                             int parity) {
    if (used_ == capacity_ || first < range_.first || last > range_.last || first > last)
        return std::nullopt;
    // Bit b of a word is port range.first + 64w + b, whose parity is that of first + b.
    constexpr uint64_t kEvenBits = 0x5555555555555555ull;
    uint64_t pattern = ~uint64_t{0};
    if (parity >= 0) {
        const bool first_odd = range_.first & 1;
        pattern = ((parity == 1) != first_odd) ? ~kEvenBits : kEvenBits;
    }
    const uint32_t lo = first - range_.first;
    const uint32_t hi = uint32_t{last} - range_.first;
    return search(lo, hi, lo + random.below(hi - lo + 1), pattern);
}

std::optional<uint16_t> PortSet::search(uint32_t lo, uint32_t hi, uint32_t start,
                                        uint64_t pattern) {
    // Words lo/64 .. hi/64, each masked to [lo, hi]; the first word is visited twice: from the
    // start first, and at the end for the bits before the start.
    const uint32_t first_word = lo / 64;
    const uint32_t last_word = hi / 64;
    const uint32_t words = last_word - first_word + 1;
    auto mask_of = [&](uint32_t w) {
        const uint32_t from = w == first_word ? lo % 64 : 0;
        const uint32_t to = w == last_word ? hi % 64 : 63;
        return bit_span(from, to);
    };
    uint32_t w = start / 64;
    uint64_t free_bits = ~bits_[w] & pattern & mask_of(w) & (~uint64_t{0} << (start % 64));
    for (uint32_t step = 0; step <= words; ++step) {
        if (free_bits != 0) {
            const uint32_t offset = w * 64 + static_cast<uint32_t>(std::countr_zero(free_bits));
            take(offset);
            return static_cast<uint16_t>(range_.first + offset);
        }
        w = w == last_word ? first_word : w + 1;
        free_bits = ~bits_[w] & pattern & mask_of(w);
    }
    return std::nullopt;
}

void PortSet::take(uint32_t offset) {
    bits_[offset / 64] |= uint64_t{1} << (offset % 64);
    ++used_;
}

bool PortSet::reserve(uint16_t port) {
    if (!is_open(port) || in_use(port)) return false;
    take(port - range_.first);
    return true;
}

void PortSet::release(uint16_t port) {
    if (!is_open(port) || !in_use(port)) return;
    const uint32_t offset = port - range_.first;
    bits_[offset / 64] &= ~(uint64_t{1} << (offset % 64));
    --used_;
}

bool PortSet::in_use(uint16_t port) const {
    if (!is_open(port)) return false;
    const uint32_t offset = port - range_.first;
    return (bits_[offset / 64] >> (offset % 64)) & 1;
}

std::optional<ProtocolIndex> protocol_index(uint8_t ip_protocol) {
    switch (ip_protocol) {
        case common::ipv4::kProtoUdp:
            return ProtocolIndex::udp;
        case common::ipv4::kProtoTcp:
            return ProtocolIndex::tcp;
        case common::ipv4::kProtoIcmp:
            return ProtocolIndex::icmp;
        default:
            return std::nullopt;
    }
}

// ---- AddressPool -----------------------------------------------------------------------------

AddressPool::AddressPool(const std::vector<common::Ipv4Prefix>& prefixes, BlockMap& blocks,
                         unsigned worker)
    : blocks_(blocks), worker_(worker), holder_(BlockMap::worker_holder(worker)) {
    prefixes_.reserve(kMaxPrefixes);
    addresses_.reserve(kMaxAddresses);
    extend(build_extension(prefixes, blocks));
}

AddressPool::Extension AddressPool::build_extension(const std::vector<common::Ipv4Prefix>& prefixes,
                                                    const BlockMap& blocks) {
    Extension ext;
    ext.prefixes = prefixes;
    for (const auto& prefix : prefixes) {
        for (uint64_t i = 0; i < prefix.size(); ++i) {
            Entry e{static_cast<uint32_t>(prefix.address.value + i), {}, {}};
            e.ports.assign(kProtocolCount, PortSet(blocks.range(), false));
            e.blocks.assign(blocks.blocks_per_address(), Block{});
            ext.entries.push_back(std::move(e));
        }
    }
    return ext;
}

bool AddressPool::extend(Extension&& extension) {
    if (prefixes_.size() + extension.prefixes.size() > prefixes_.capacity() ||
        addresses_.size() + extension.entries.size() > addresses_.capacity() ||
        addresses_.size() + extension.entries.size() > blocks_.max_addresses())
        return false;
    for (auto& prefix : extension.prefixes) prefixes_.push_back(prefix);
    for (auto& entry : extension.entries) addresses_.push_back(std::move(entry));
    return true;
}

std::optional<uint32_t> AddressPool::pick_address() {
    if (addresses_.empty()) return std::nullopt;
    const auto n = static_cast<uint32_t>(addresses_.size());
    uint32_t best = n;
    uint32_t best_free = 0;
    for (uint32_t k = 0; k < n; ++k) {
        const uint32_t i = (next_ + k) % n;
        const uint32_t free = blocks_.free_blocks(i, worker_);
        if (free > best_free) {
            best = i;
            best_free = free;
        }
    }
    if (best == n) return std::nullopt;
    next_ = (best + 1) % n;
    return best;
}

std::optional<uint32_t> AddressPool::claim_block(uint32_t index, uint32_t subscriber,
                                                 uint32_t start, uint64_t now_ms) {
    const auto block = blocks_.claim_any(index, holder_, start % blocks_per_address());
    if (!block) return std::nullopt;
    return adopt(index, *block, subscriber, now_ms);
}

std::optional<uint32_t> AddressPool::claim_block_at(uint32_t index, uint32_t block,
                                                    uint32_t subscriber, uint64_t now_ms) {
    // Only the owner of a block's share may claim it (steering sends its packets there).
    if (index >= addresses_.size() || block >= blocks_per_address() ||
        blocks_.owner_of_block(block) != worker_ || !blocks_.claim(index, block, holder_))
        return std::nullopt;
    return adopt(index, block, subscriber, now_ms);
}

uint32_t AddressPool::adopt(uint32_t index, uint32_t block, uint32_t subscriber, uint64_t now_ms) {
    const uint32_t id = block_id(index, block);
    for (auto& set : addresses_[index].ports) set.open(first_port(id), last_port(id));
    Block& b = block_record(id);
    b = Block{};
    b.subscriber = subscriber;
    ++held_;
    // Idle until its first port is taken (normally at once).
    append_idle(id, now_ms);
    return id;
}

void AddressPool::append_idle(uint32_t id, uint64_t now_ms) {
    Block& b = block_record(id);
    b.idle = true;
    b.idle_since_ms = now_ms;
    b.idle_prev = idle_tail_;
    b.idle_next = kNone;
    if (idle_tail_ != kNone)
        block_record(idle_tail_).idle_next = id;
    else
        idle_head_ = id;
    idle_tail_ = id;
}

void AddressPool::unlink_idle(uint32_t id) {
    Block& b = block_record(id);
    if (b.idle_prev != kNone)
        block_record(b.idle_prev).idle_next = b.idle_next;
    else
        idle_head_ = b.idle_next;
    if (b.idle_next != kNone)
        block_record(b.idle_next).idle_prev = b.idle_prev;
    else
        idle_tail_ = b.idle_prev;
    b.idle_prev = b.idle_next = kNone;
    b.idle = false;
}

void AddressPool::port_taken(uint32_t id) {
    Block& b = block_record(id);
    if (b.idle) unlink_idle(id);
    ++b.used;
}

void AddressPool::port_freed(uint32_t id, uint64_t now_ms) {
    Block& b = block_record(id);
    if (b.used == 0 || --b.used != 0) return;
    // RFC 6888 REQ-8: the block's ports are not handed to anyone else before the hold-down.
    append_idle(id, now_ms);
}

void AddressPool::release_block(uint32_t id) {
    Block& b = block_record(id);
    if (b.idle) unlink_idle(id);
    const uint32_t index = index_of_block(id);
    for (auto& set : addresses_[index].ports) set.close(first_port(id), last_port(id));
    b = Block{};
    --held_;
    blocks_.release(index, id % blocks_per_address());
}

void AddressPool::open_range(uint32_t index, uint16_t first, uint16_t last) {
    for (auto& set : addresses_[index].ports) set.open(first, last);
}

}  // namespace cgn::dp
