#include "dataplane/io/flow_placement.hpp"

#include <algorithm>
#include <bit>
#include <cstdio>

namespace cgn::dp {

namespace {

// The range's whole blocks, as BlockMap cuts them.
struct Blocks {
    uint32_t first;   // first port of block 0
    uint32_t size;    // ports per block
    uint32_t count;   // whole blocks
    unsigned workers;
    uint32_t end() const { return first + size * count; }  // one past the last owned port
};

// One match per worker on the block number's low bits, when the geometry allows it: block b
// covers ports first + b*size ... so with size = 2^s and first % size == 0 the block number is
// (port >> s) - first/size, and with N = 2^n its residue mod N is a field of n bits shifted by
// the constant first/size.
std::optional<std::vector<PortMatch>> strided(const Blocks& b) {
    if (!std::has_single_bit(b.size) || b.first % b.size != 0 ||
        !std::has_single_bit(b.workers) || uint64_t{b.workers} * b.size > 65536)
        return std::nullopt;
    const unsigned shift = static_cast<unsigned>(std::countr_zero(b.size));
    const uint32_t offset = (b.first / b.size) % b.workers;
    std::vector<PortMatch> out;
    for (unsigned w = 0; w < b.workers; ++w)
        out.push_back({static_cast<uint16_t>(((w + offset) % b.workers) << shift),
                       static_cast<uint16_t>((b.workers - 1) << shift), w});
    return out;
}

// Aligned power-of-two port ranges (prefixes of the 16-bit port): a prefix whose owned ports
// all lie in one block becomes one match; one with none is left out; any other is split.
void prefixes(const Blocks& b, uint32_t lo, unsigned bits, std::vector<PortMatch>& out) {
    const uint32_t hi = lo + (uint32_t{1} << bits) - 1;
    const uint32_t from = std::max(lo, b.first), to = std::min(hi, b.end() - 1);
    if (from > to) return;  // owns nothing
    const uint32_t first_block = (from - b.first) / b.size, last_block = (to - b.first) / b.size;
    if (first_block == last_block) {
        out.push_back({static_cast<uint16_t>(lo), static_cast<uint16_t>(0xffffu << bits),
                       first_block % b.workers});
        return;
    }
    prefixes(b, lo, bits - 1, out);
    prefixes(b, lo + (uint32_t{1} << (bits - 1)), bits - 1, out);
}

}  // namespace

std::vector<PortMatch> outside_placement(common::PortRange range, uint32_t block_size,
                                         unsigned workers) {
    if (workers <= 1 || block_size == 0) return {};
    const Blocks b{range.first, block_size, static_cast<uint32_t>(range.size() / block_size),
                   workers};
    if (b.count == 0) return {};
    if (auto s = strided(b)) return *s;
    std::vector<PortMatch> out;
    prefixes(b, 0, 16, out);
    return out;
}

std::optional<unsigned> placed_worker(std::span<const PortMatch> matches, uint16_t port) {
    for (const PortMatch& m : matches)
        if (m.matches(port)) return m.worker;
    return std::nullopt;
}

std::string to_string(const PortMatch& m) {
    char text[48];
    std::snprintf(text, sizeof text, "port %u/0x%04x -> queue %u", m.value, m.mask, m.worker);
    return text;
}

}  // namespace cgn::dp
