#pragma once
// An independent, deliberately naive Internet checksum (RFC 1071) for the tests: the code under
// test is checked against this, never against itself. Works on plain byte vectors built here.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace cgn::test {

// One's-complement sum of big-endian 16-bit words (odd byte padded with zero), folded.
inline uint16_t reference_folded_sum(const std::vector<uint8_t>& bytes) {
    uint64_t sum = 0;
    for (size_t i = 0; i < bytes.size(); i += 2) {
        const uint64_t high = bytes[i];
        const uint64_t low = i + 1 < bytes.size() ? bytes[i + 1] : 0;
        sum += (high << 8) | low;
    }
    while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

// The checksum a sender writes: the complement of the folded sum.
inline uint16_t reference_checksum(const std::vector<uint8_t>& bytes) {
    return static_cast<uint16_t>(~reference_folded_sum(bytes));
}

inline uint16_t read16(const uint8_t* p) {
    return static_cast<uint16_t>((p[0] << 8) | p[1]);
}

inline void write16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
}

inline uint32_t read32(const uint8_t* p) {
    return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

inline void write32(uint8_t* p, uint32_t v) {
    write16(p, static_cast<uint16_t>(v >> 16));
    write16(p + 2, static_cast<uint16_t>(v));
}

// The IPv4 header checksum `l3` should carry, recomputed from scratch.
inline uint16_t expected_ipv4_checksum(const uint8_t* l3) {
    const size_t ihl = (l3[0] & 0x0f) * 4u;
    std::vector<uint8_t> header(l3, l3 + ihl);
    header[10] = header[11] = 0;
    return reference_checksum(header);
}

// Recomputes and stores the IPv4 header checksum (for tests that edit header fields).
inline void fix_ipv4_checksum(uint8_t* l3) {
    write16(l3 + 10, expected_ipv4_checksum(l3));
}

// The TCP/UDP checksum over pseudo-header and segment with the checksum field taken as zero,
// or the ICMP checksum over the message, as a fresh sender would compute it (before UDP's
// "0 is sent as 0xffff" rule).
inline uint16_t expected_l4_checksum(const uint8_t* l3) {
    const size_t ihl = (l3[0] & 0x0f) * 4u;
    const size_t total = read16(l3 + 2);
    const uint8_t protocol = l3[9];
    std::vector<uint8_t> bytes;
    size_t checksum_offset = 0;
    if (protocol == 6 || protocol == 17) {
        // RFC 793 §3.1 / RFC 768: source, destination, zero, protocol, L4 length.
        bytes.insert(bytes.end(), l3 + 12, l3 + 20);
        bytes.push_back(0);
        bytes.push_back(protocol);
        bytes.push_back(static_cast<uint8_t>((total - ihl) >> 8));
        bytes.push_back(static_cast<uint8_t>(total - ihl));
        checksum_offset = bytes.size() + (protocol == 6 ? 16 : 6);
    } else {
        checksum_offset = 2;
    }
    bytes.insert(bytes.end(), l3 + ihl, l3 + total);
    if (bytes.size() < checksum_offset + 2) return 0;  // too short to hold its checksum
    bytes.at(checksum_offset) = 0;
    bytes.at(checksum_offset + 1) = 0;
    return reference_checksum(bytes);
}

}  // namespace cgn::test
