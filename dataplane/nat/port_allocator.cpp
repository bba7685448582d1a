#include "dataplane/nat/port_allocator.hpp"

#include <bit>

#include "common/headers.hpp"

namespace cgn::dp {

PortSet::PortSet(common::PortRange range, PortOwnership ownership)
    : range_(range), ownership_(ownership), bits_((range.size() + 63) / 64, 0) {
    // Ports past the end of the range and ports of other workers' blocks are marked taken so
    // the search never returns them.
    const uint32_t tail = range.size() % 64;
    if (tail != 0) bits_.back() = ~uint64_t{0} << tail;
    for (uint32_t offset = 0; offset < range.size(); ++offset) {
        if (ownership_.owns_block(offset / ownership_.block_size))
            ++capacity_;
        else
            bits_[offset / 64] |= uint64_t{1} << (offset % 64);
    }
}

std::optional<uint16_t> PortSet::allocate(common::Random& random) {
    return search(random, ~uint64_t{0});
}

std::optional<uint16_t> PortSet::allocate(common::Random& random, bool odd) {
    // Bit b of a word is port first + 64w + b, whose parity is that of first + b.
    constexpr uint64_t kEvenBits = 0x5555555555555555ull;
    const bool first_odd = range_.first & 1;
    const uint64_t pattern = (odd != first_odd) ? ~kEvenBits : kEvenBits;
    if (auto port = search(random, pattern)) return port;
    return search(random, ~uint64_t{0});
}

std::optional<uint16_t> PortSet::search(common::Random& random, uint64_t pattern) {
    if (used_ == capacity_) return std::nullopt;
    const uint32_t start = random.below(range_.size());
    const size_t words = bits_.size();
    size_t w = start / 64;
    // First word: only bits at or after the start; then whole words, wrapping; finally the
    // bits of the first word before the start.
    uint64_t free_bits = ~bits_[w] & pattern & (~uint64_t{0} << (start % 64));
    for (size_t step = 0; step <= words; ++step) {
        if (free_bits != 0) {
            const uint32_t offset = static_cast<uint32_t>(w * 64 + std::countr_zero(free_bits));
            bits_[w] |= uint64_t{1} << (offset % 64);
            ++used_;
            return static_cast<uint16_t>(range_.first + offset);
        }
        w = (w + 1) % words;
        free_bits = ~bits_[w] & pattern;
    }
    return std::nullopt;
}

bool PortSet::reserve(uint16_t port) {
    if (!owned(port) || in_use(port)) return false;
    const uint32_t offset = port - range_.first;
    bits_[offset / 64] |= uint64_t{1} << (offset % 64);
    ++used_;
    return true;
}

void PortSet::release(uint16_t port) {
    if (!owned(port) || !in_use(port)) return;
    const uint32_t offset = port - range_.first;
    bits_[offset / 64] &= ~(uint64_t{1} << (offset % 64));
    --used_;
}

bool PortSet::in_use(uint16_t port) const {
    if (!owned(port)) return false;
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

AddressPool::AddressPool(const std::vector<common::Ipv4Prefix>& prefixes, common::PortRange range,
                         const Steering& steering, unsigned worker) {
    prefixes_.reserve(kMaxPrefixes);
    addresses_.reserve(kMaxAddresses);
    extend(build_extension(prefixes, range, steering, worker, 0));
}

AddressPool::Extension AddressPool::build_extension(const std::vector<common::Ipv4Prefix>& prefixes,
                                                    common::PortRange range,
                                                    const Steering& steering, unsigned worker,
                                                    uint32_t first_index) {
    Extension ext;
    ext.prefixes = prefixes;
    for (const auto& prefix : prefixes) {
        for (uint64_t i = 0; i < prefix.size(); ++i) {
            const auto index = static_cast<uint32_t>(first_index + ext.entries.size());
            Entry e{static_cast<uint32_t>(prefix.address.value + i), 0, {}};
            e.ports.assign(kProtocolCount, PortSet(range, steering.ownership(worker, index)));
            ext.entries.push_back(std::move(e));
        }
    }
    return ext;
}

bool AddressPool::extend(Extension&& extension) {
    if (prefixes_.size() + extension.prefixes.size() > prefixes_.capacity() ||
        addresses_.size() + extension.entries.size() > addresses_.capacity())
        return false;
    for (auto& prefix : extension.prefixes) prefixes_.push_back(prefix);
    for (auto& entry : extension.entries) addresses_.push_back(std::move(entry));
    return true;
}

std::optional<uint32_t> AddressPool::pair_subscriber() {
    if (addresses_.empty()) return std::nullopt;
    const auto n = static_cast<uint32_t>(addresses_.size());
    uint32_t best = n;
    for (uint32_t k = 0; k < n; ++k) {
        const uint32_t i = (next_ + k) % n;
        const auto& e = addresses_[i];
        bool has_free = false;
        for (const auto& ps : e.ports) has_free |= ps.used() < ps.capacity();
        if (!has_free) continue;
        if (best == n || e.subscribers < addresses_[best].subscribers) best = i;
    }
    if (best == n) return std::nullopt;
    ++addresses_[best].subscribers;
    next_ = (best + 1) % n;
    return best;
}

void AddressPool::unpair_subscriber(uint32_t index) {
    if (addresses_[index].subscribers > 0) --addresses_[index].subscribers;
}

}  // namespace cgn::dp
