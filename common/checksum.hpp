#pragma once
// Internet checksum (RFC 1071) and its incremental update (RFC 1624).

#include <cstddef>
#include <cstdint>

namespace cgn::common {

// One's-complement sum of `len` bytes (big-endian 16-bit words, odd byte padded with zero),
// added to `initial`. Not folded, not complemented: combine partial sums, then finish.
uint32_t checksum_partial(const uint8_t* data, size_t len, uint32_t initial = 0);

// Folds a 32-bit partial sum to 16 bits and complements it: the value written in a header.
uint16_t checksum_finish(uint32_t sum);

// Partial sum of the IPv4 pseudo-header used by TCP and UDP (RFC 793 §3.1, RFC 768).
uint32_t pseudo_header_sum(uint32_t src, uint32_t dst, uint8_t protocol, uint16_t l4_length);

// Folds a 32-bit one's-complement sum to 16 bits (end-around carry), not complemented.
inline uint16_t checksum_fold(uint32_t sum) {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

// RFC 1624 §3, eqn. 3: HC' = ~(~HC + ~m + m'). Updates checksum `hc` for one 16-bit field
// changing from `old_value` to `new_value`. Working on the complemented checksum means a
// header whose correct checksum is 0x0000 is not turned into 0xFFFF (the flaw of RFC 1141's
// eqn. 2). Inline: it runs several times per translated packet.
inline uint16_t checksum_update16(uint16_t hc, uint16_t old_value, uint16_t new_value) {
    uint32_t sum = static_cast<uint16_t>(~hc);
    sum += static_cast<uint16_t>(~old_value);
    sum += new_value;
    return static_cast<uint16_t>(~checksum_fold(sum));
}

// The same for a 32-bit field (an IPv4 address): both of its 16-bit halves.
inline uint16_t checksum_update32(uint16_t hc, uint32_t old_value, uint32_t new_value) {
    uint32_t sum = static_cast<uint16_t>(~hc);
    sum += static_cast<uint16_t>(~(old_value >> 16));
    sum += static_cast<uint16_t>(~(old_value & 0xffff));
    sum += new_value >> 16;
    sum += new_value & 0xffff;
    return static_cast<uint16_t>(~checksum_fold(sum));
}

}  // namespace cgn::common
