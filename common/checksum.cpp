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

uint16_t checksum_finish(uint32_t sum) { return static_cast<uint16_t>(~fold(sum)); }

uint32_t pseudo_header_sum(uint32_t src, uint32_t dst, uint8_t protocol, uint16_t l4_length) {
    uint32_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff);
    return sum + protocol + l4_length;
}

}  // namespace cgn::common
