#pragma once
// RFC 6887 §13.3 FILTER as the workers apply it: the remote peers (an IPv4 prefix and a port,
// or any port) that may open sessions to a PCP mapping from outside. The PCP server keeps the
// option's list (control/pcp/server.cpp); the worker owning the mapping gets a copy with each
// pcp_hold command (dataplane/io/control_channel.hpp) and keeps it in its own table of filter
// sets (NatEngine), which only it reads and writes.
//
// What a filter decides: whether an unsolicited inbound packet may open a session on the
// mapping ("filtering incoming packets", §13.3), whatever --filtering says. The subscriber's
// own outbound flows, and the answers to them, are not filtered: they are sessions the
// subscriber opened, as with every filtering mode of RFC 4787 REQ-8.

#include <array>
#include <cstddef>
#include <cstdint>

namespace cgn::dp {

struct PeerFilter {
    uint32_t addr = 0;  // host order, already masked
    uint32_t mask = 0;  // host order; the prefix length's leading ones
    uint16_t port = 0;  // 0: any port (§13.3: a Remote Peer Port of 0 means all ports)

    bool admits(uint32_t remote_addr, uint16_t remote_port) const {
        return (remote_addr & mask) == addr && (port == 0 || port == remote_port);
    }
    // A filter of an IPv4 prefix of `length` bits (1 to 32; 0 is not a filter: §13.3 uses it
    // to remove them all, which the server does before the list reaches a worker).
    static PeerFilter prefix(uint32_t addr, unsigned length, uint16_t port) {
        const uint32_t mask = length == 0 ? 0 : ~uint32_t{0} << (32 - length);
        return {addr & mask, mask, port};
    }
};

// §13.3 leaves the number of filters to the server (EXCESSIVE_REMOTE_PEERS past it); cgn's
// PCP server keeps at most this many per mapping (control/pcp/server.hpp kMaxFilters).
constexpr size_t kMaxPeerFilters = 16;

struct PeerFilterSet {
    uint8_t count = 0;
    std::array<PeerFilter, kMaxPeerFilters> filters{};

    // §13.3: a mapping's filters add up; a peer any one of them admits is permitted.
    bool admits(uint32_t remote_addr, uint16_t remote_port) const {
        for (uint8_t i = 0; i < count; ++i)
            if (filters[i].admits(remote_addr, remote_port)) return true;
        return false;
    }
};

}  // namespace cgn::dp
