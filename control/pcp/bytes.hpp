#pragma once
// Big-endian fields of PCP and NAT-PMP messages, at an offset of a span (the codecs check the
// length first), over common/byte_order.hpp.

#include <cstddef>
#include <cstdint>
#include <span>

#include "common/byte_order.hpp"

namespace cgn::ctl::pcp::bytes {

inline uint16_t get16(std::span<const uint8_t> p, size_t at) { return common::load_be16(p.data() + at); }
inline uint32_t get32(std::span<const uint8_t> p, size_t at) { return common::load_be32(p.data() + at); }
inline void put16(std::span<uint8_t> p, size_t at, uint16_t v) { common::store_be16(p.data() + at, v); }
inline void put32(std::span<uint8_t> p, size_t at, uint32_t v) { common::store_be32(p.data() + at, v); }

}  // namespace cgn::ctl::pcp::bytes
