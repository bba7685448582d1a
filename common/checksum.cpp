#include "common/checksum.hpp"

namespace cgn::common {

uint32_t checksum_partial(const uint8_t* data, size_t len, uint32_t initial) {
    uint64_t sum = initial;
    size_t i = 0;
    for (; i + 1 < len; i += 2) sum += (uint32_t{data[i]} << 8) | data[i + 1];
    if (i < len) sum += uint32_t{data[i]} << 8;
    while (sum >> 32) sum = (sum & 0xffffffffu) + (sum >> 32);
    return static_cast<uint32_t>(sum);
}

static uint16_t fold(uint32_t sum) {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return static_cast<uint16_t>(sum);
}

uint16_t checksum_finish(uint32_t sum) {
    return static_cast<uint16_t>(~fold(sum));
}

uint32_t pseudo_header_sum(uint32_t src, uint32_t dst, uint8_t protocol, uint16_t l4_length) {
    uint32_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);
    return sum + protocol + l4_length;
}

// RFC 1624 eqn. 3 works on the complemented checksum so that a header whose correct checksum
// is 0x0000 (all-ones sum) is not turned into 0xFFFF, the ambiguity eqn. 2 of RFC 1141 had.
uint16_t checksum_update16(uint16_t hc, uint16_t old_value, uint16_t new_value) {
    uint32_t sum = static_cast<uint16_t>(~hc);
    sum += static_cast<uint16_t>(~old_value);
    sum += new_value;
    return static_cast<uint16_t>(~fold(sum));
}

uint16_t checksum_update32(uint16_t hc, uint32_t old_value, uint32_t new_value) {
    uint32_t sum = static_cast<uint16_t>(~hc);
    sum += static_cast<uint16_t>(~(old_value >> 16));
    sum += static_cast<uint16_t>(~(old_value & 0xffff));
    sum += new_value >> 16;
    sum += new_value & 0xffff;
    return static_cast<uint16_t>(~fold(sum));
}

}  // namespace cgn::common
