#pragma once
// IPv4 fragmentation (RFC 791 §2.3 "Fragmentation", §3.2 "Fragmentation" procedure): cuts one
// packet into fragments that fit a link's MTU. Plain bytes, no DPDK and no allocation: the
// caller provides the buffer each fragment is written into (in the worker, an mbuf from its
// pool), so it is unit-tested on byte arrays.
//
// RFC 4787 REQ-13a: a NAT MUST fragment a packet without DF that is too big for the link it
// leaves on, and SHOULD send the fragments in order; fragment 0 is the first.

#include <cstdint>

namespace cgn::dp {

class Ipv4Fragmenter {
public:
    // The smallest link MTU fragmentation copes with whatever the header: 60 bytes of header
    // and 8 of data (RFC 791: "every internet module must be able to forward a datagram of 68
    // octets without further fragmentation").
    static constexpr uint16_t kMinMtu = 68;

    // `packet`: a parsed IPv4 packet (header length and total length consistent, as parse_ipv4
    // checked), bigger than `mtu`. The fragments keep the packet's identification, TOS, TTL,
    // protocol, addresses and the DF/reserved flag bits; a packet that is itself a fragment
    // keeps its offset base, and its last piece keeps its MF flag (RFC 791 §3.2).
    Ipv4Fragmenter(const uint8_t* packet, uint16_t mtu);

    // 0 when the packet is not to be cut for this MTU: it fits already, the MTU is below
    // kMinMtu, or its data would end past byte 65535 of the datagram (a bad fragment).
    unsigned count() const { return count_; }
    // Bytes of fragment `index` (IP header and data): at most the MTU.
    uint16_t length(unsigned index) const;
    // Writes fragment `index` (length(index) bytes) to `out`, header checksum included.
    void write(unsigned index, uint8_t* out) const;

private:
    // Options a later fragment carries: RFC 791 §3.1 copies only options whose "copied" flag
    // (the top bit of the type) is set into every fragment.
    void collect_copied_options();
    uint32_t data_offset(unsigned index) const;  // of the fragment's data in the packet's data
    uint16_t data_length(unsigned index) const;

    const uint8_t* packet_;
    uint16_t header_length_ = 0;        // the packet's (and the first fragment's)
    uint16_t later_header_length_ = 0;  // fixed header, copied options, padding
    uint16_t data_total_ = 0;           // the packet's data bytes
    uint16_t first_data_ = 0;           // data bytes in the first fragment (a multiple of 8)
    uint16_t later_data_ = 0;           // in each later one (a multiple of 8), the last aside
    unsigned count_ = 0;
    uint8_t copied_options_[40] = {};
    uint8_t copied_options_length_ = 0;
};

}  // namespace cgn::dp
