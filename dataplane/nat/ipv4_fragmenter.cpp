#include "dataplane/nat/ipv4_fragmenter.hpp"

#include <algorithm>
#include <cstring>

#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/headers.hpp"

namespace cgn::dp {

using common::load_be16;
using common::store_be16;
namespace ipv4 = common::ipv4;

namespace {

constexpr uint8_t kOptionEnd = 0;  // RFC 791 "End of Option List"
constexpr uint8_t kOptionNop = 1;  // "No Operation"
constexpr uint8_t kOptionCopied = 0x80;

}  // namespace

Ipv4Fragmenter::Ipv4Fragmenter(const uint8_t* packet, uint16_t mtu) : packet_(packet) {
    header_length_ = static_cast<uint16_t>((packet[ipv4::kVersionIhl] & 0x0f) * 4u);
    const uint16_t total = load_be16(packet + ipv4::kTotalLength);
    if (total <= mtu || mtu < kMinMtu || total < header_length_) return;
    data_total_ = static_cast<uint16_t>(total - header_length_);
    collect_copied_options();
    // RFC 791 §3.2: every fragment but the last carries a multiple of 8 data bytes (the offset
    // counts 8-byte units); the first keeps all options, the later ones only the copied ones.
    first_data_ = static_cast<uint16_t>((mtu - header_length_) & ~7u);
    later_data_ = static_cast<uint16_t>((mtu - later_header_length_) & ~7u);
    // A fragment whose data would end past byte 65535 of its datagram cannot be described
    // (RFC 791: 13 bits of 8-byte units); such a packet is not cut.
    const uint32_t base = (load_be16(packet + ipv4::kFragment) & ipv4::kFragmentOffsetMask) * 8u;
    if (base + data_total_ > 0xffffu) return;
    const uint32_t rest = data_total_ - first_data_;
    count_ = 1 + (rest + later_data_ - 1) / later_data_;
}

void Ipv4Fragmenter::collect_copied_options() {
    const uint8_t* options = packet_ + ipv4::kMinHeaderLength;
    const unsigned length = header_length_ - ipv4::kMinHeaderLength;
    unsigned i = 0;
    while (i < length) {
        const uint8_t type = options[i];
        if (type == kOptionEnd) break;
        if (type == kOptionNop) {
            ++i;
            continue;
        }
        // A malformed option (no room for its length, or a length that runs past the header)
        // ends the walk: what follows cannot be told apart from it.
        if (i + 1 >= length || options[i + 1] < 2 || i + options[i + 1] > length) break;
        const uint8_t option_length = options[i + 1];
        if (type & kOptionCopied) {
            std::memcpy(copied_options_ + copied_options_length_, options + i, option_length);
            copied_options_length_ = static_cast<uint8_t>(copied_options_length_ + option_length);
        }
        i += option_length;
    }
    // Padded with End of Option List to a whole number of 32-bit words.
    const unsigned padded = (copied_options_length_ + 3u) & ~3u;
    later_header_length_ = static_cast<uint16_t>(ipv4::kMinHeaderLength + padded);
}

uint32_t Ipv4Fragmenter::data_offset(unsigned index) const {
    return index == 0 ? 0 : first_data_ + (index - 1) * uint32_t{later_data_};
}

uint16_t Ipv4Fragmenter::data_length(unsigned index) const {
    const uint32_t room = index == 0 ? first_data_ : later_data_;
    return static_cast<uint16_t>(std::min<uint32_t>(room, data_total_ - data_offset(index)));
}

uint16_t Ipv4Fragmenter::length(unsigned index) const {
    return static_cast<uint16_t>((index == 0 ? header_length_ : later_header_length_) +
                                 data_length(index));
}

void Ipv4Fragmenter::write(unsigned index, uint8_t* out) const {
    const uint16_t header = index == 0 ? header_length_ : later_header_length_;
    if (index == 0) {
        std::memcpy(out, packet_, header_length_);
    } else {
        std::memcpy(out, packet_, ipv4::kMinHeaderLength);
        std::memcpy(out + ipv4::kMinHeaderLength, copied_options_, copied_options_length_);
        std::memset(out + ipv4::kMinHeaderLength + copied_options_length_, kOptionEnd,
                    header - ipv4::kMinHeaderLength - copied_options_length_);
        out[ipv4::kVersionIhl] = static_cast<uint8_t>(0x40 | (header / 4));
    }
    const uint16_t length_here = length(index);
    store_be16(out + ipv4::kTotalLength, length_here);
    // The offset counts from the packet's own offset (it may be a fragment already); MF is set
    // on every piece but the last, which keeps the packet's own MF.
    const uint16_t field = load_be16(packet_ + ipv4::kFragment);
    const uint32_t offset = (field & ipv4::kFragmentOffsetMask) + data_offset(index) / 8;
    const bool last = index + 1 == count_;
    const uint16_t more =
        last ? static_cast<uint16_t>(field & ipv4::kFlagMoreFragments) : ipv4::kFlagMoreFragments;
    const uint16_t other_flags =
        field & static_cast<uint16_t>(~(ipv4::kFragmentOffsetMask | ipv4::kFlagMoreFragments));
    store_be16(out + ipv4::kFragment,
               static_cast<uint16_t>(other_flags | more | (offset & ipv4::kFragmentOffsetMask)));
    store_be16(out + ipv4::kChecksum, 0);
    store_be16(out + ipv4::kChecksum,
               common::checksum_finish(common::checksum_partial(out, header)));
    std::memcpy(out + header, packet_ + header_length_ + data_offset(index), data_length(index));
}

}  // namespace cgn::dp
