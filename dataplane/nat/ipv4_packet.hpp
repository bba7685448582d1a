#pragma once
// A parsed view of an IPv4 packet in a frame buffer: offsets and the fields translation needs.
// Parsing validates the header (RFC 791, RFC 1812 §5.2.2) and returns the drop reason when the
// packet is unacceptable. No DPDK: works on plain bytes.

#include <cstddef>
#include <cstdint>
#include <optional>

#include "common/counters.hpp"

namespace cgn::dp {

struct Ipv4Packet {
    uint8_t* l3 = nullptr;  // IPv4 header
    uint8_t* l4 = nullptr;  // transport header
    uint16_t total_length = 0;
    uint16_t l4_length = 0;
    uint8_t header_length = 0;
    uint8_t protocol = 0;
    uint8_t ttl = 0;
    uint32_t src = 0;
    uint32_t dst = 0;
    bool fragment = false;  // MF set or offset non-zero
    uint16_t ip_id = 0;
    // False for a non-first fragment: no transport header; its ports (src_port, dst_port) are
    // those virtual reassembly learned from the datagram's first fragment, and translation
    // rewrites only the IP header (the transport checksum is in the first fragment).
    bool l4_header = true;
    // Transport fields (valid after parse_transport): TCP/UDP ports, or for ICMP echo the
    // identifier in both src_port and dst_port.
    uint16_t src_port = 0;
    uint16_t dst_port = 0;
    uint8_t tcp_flags = 0;
    uint8_t icmp_type = 0;
    // Set by the NAT engine when it refused an inside packet for a quota or exhausted
    // resources: the worker answers with ICMP host unreachable (RFC 6888 REQ-11).
    bool refused = false;

    // An ICMP error (destination unreachable, time exceeded, parameter problem) and the packet
    // it is about, quoted in it (RFC 792; RFC 5508 §4 for what a NAT does with it). The quote is
    // the IP header and at least 8 bytes of transport header.
    bool icmp_error = false;
    uint8_t* inner = nullptr;      // the quoted IPv4 header
    uint16_t inner_available = 0;  // bytes of the quote present, from `inner`
    uint8_t inner_header_length = 0;
    uint8_t inner_protocol = 0;
    uint32_t inner_src = 0;
    uint32_t inner_dst = 0;
    uint16_t inner_src_port = 0;  // ICMP echo: the identifier, in both
    uint16_t inner_dst_port = 0;
};

// Validates and parses the IPv4 header at `l3`, given `available` bytes after the L2 header.
// Returns the drop reason, or nothing when the header is good.
std::optional<common::Counter> parse_ipv4(uint8_t* l3, size_t available, Ipv4Packet& out);

// Parses the TCP, UDP or ICMP header. ICMP: echo request/reply (queries), and errors about a
// TCP, UDP or ICMP echo packet (icmp_error and the inner fields set).
// Fragments (RFC 4787 REQ-14): a first fragment must hold the whole transport header; a
// non-first fragment gets l4_header false and no ports (the worker's reassembly adds them).
std::optional<common::Counter> parse_transport(Ipv4Packet& p);

}  // namespace cgn::dp
