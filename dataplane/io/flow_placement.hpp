#pragma once
// Placing outside packets on their owner's RX queue in the NIC (docs/architecture.md, "Outside
// traffic on a NIC"). The owner of an outside packet follows from its destination port alone:
// block b of every pool address is worker b % N's (BlockMap::owner_of_port). So a set of
// masked matches on the destination port (the ICMP identifier for echo replies), one action
// "to queue w" each, puts every packet where it will be translated, and no worker parses and
// hands on another's share.
//
// The placement is a hint, never the rule: a worker still computes the owner of what it
// receives and hands on what is not its own (fragments without ports, ICMP errors, a NIC that
// matched something else). So a wrong or missing rule costs a handoff, never a wrong
// translation.
//
// No DPDK here: the matches are computed (and checked against the block map, port by port) in
// plain C++; dataplane/io/flow_rules.cpp turns them into rte_flow rules.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace cgn::dp {

// Destination ports p with (p & mask) == value go to worker (RX queue) `worker`.
struct PortMatch {
    uint16_t value = 0;
    uint16_t mask = 0;
    unsigned worker = 0;
    bool matches(uint16_t port) const { return (port & mask) == value; }
};

// At most this many matches per protocol are installed: beyond that a NIC's rule table
// (thousands of entries on the big ones, fewer on others) is better left to other users.
inline constexpr size_t kMaxPlacementMatches = 1024;

// Disjoint matches that place every port of the whole blocks of `range` on its owner
// (BlockMap(range, block_size, workers).owner_of_port), the fewest this finds: with a
// power-of-two block size aligned to the range's first port and a power-of-two number of
// workers, one match per worker on the block number's low bits (mask (N-1) x block size);
// otherwise aligned power-of-two port ranges, at least one per block. Ports outside the whole
// blocks are no one's: a match may cover them. Empty for one worker.
std::vector<PortMatch> outside_placement(common::PortRange range, uint32_t block_size,
                                         unsigned workers);

// The worker the matches place `port` on; nothing when no match covers it.
std::optional<unsigned> placed_worker(std::span<const PortMatch> matches, uint16_t port);

// "value/mask -> queue w", for messages.
std::string to_string(const PortMatch& m);

}  // namespace cgn::dp
