// The outside placement (dataplane/io/flow_placement.hpp): masked destination-port matches that
// put every port on the queue of the worker owning its block. Checked port by port, all 65536,
// against the block map itself, for the geometries cgnd accepts.
#include "dataplane/io/flow_placement.hpp"

#include <gtest/gtest.h>

#include <tuple>

#include "dataplane/nat/block_map.hpp"

namespace cgn::dp {
namespace {

using common::PortRange;

// Every port a worker owns is placed on that worker by exactly one match; ports no one owns
// may be covered by a match (any worker) but by no more than one.
void expect_places_every_port(PortRange range, uint32_t block_size, unsigned workers) {
    SCOPED_TRACE(testing::Message() << "ports " << range.first << "-" << range.last
                                    << ", blocks of " << block_size << ", " << workers
                                    << " workers");
    const BlockMap blocks(range, block_size, workers, 1);
    const auto matches = outside_placement(range, block_size, workers);
    ASSERT_FALSE(matches.empty());
    unsigned wrong = 0, unplaced = 0, overlapping = 0;
    for (uint32_t p = 0; p <= 0xffff; ++p) {
        const auto port = static_cast<uint16_t>(p);
        unsigned covering = 0;
        for (const PortMatch& m : matches) covering += m.matches(port);
        overlapping += covering > 1;
        const auto owner = blocks.owner_of_port(port);
        if (!owner) continue;
        const auto placed = placed_worker(matches, port);
        unplaced += !placed.has_value();
        wrong += placed.has_value() && *placed != *owner;
    }
    EXPECT_EQ(wrong, 0u);
    EXPECT_EQ(unplaced, 0u);
    EXPECT_EQ(overlapping, 0u);
    for (const PortMatch& m : matches) {
        EXPECT_LT(m.worker, workers);
        EXPECT_EQ(m.value & ~m.mask, 0) << to_string(m) << ": value bits outside the mask";
    }
}

TEST(FlowPlacement, OneWorkerNeedsNoRule) {
    EXPECT_TRUE(outside_placement(PortRange{}, 512, 1).empty());
}

// The default geometry (1024-65535 in blocks of 512) with 2 or 4 workers: one match per
// worker, on the block number's low bits.
TEST(FlowPlacement, PowerOfTwoWorkersOnAlignedBlocksNeedOneMatchEach) {
    for (unsigned workers : {2u, 4u, 8u}) {
        const auto matches = outside_placement(PortRange{}, 512, workers);
        ASSERT_EQ(matches.size(), workers);
        for (const PortMatch& m : matches) EXPECT_EQ(m.mask, (workers - 1) << 9) << to_string(m);
        expect_places_every_port(PortRange{}, 512, workers);
    }
    // Block 0 starts at 1024 = 2 x 512: port 1024 is worker 0's, 1536 worker 1's.
    const auto two = outside_placement(PortRange{}, 512, 2);
    EXPECT_EQ(placed_worker(two, 1024), std::optional<unsigned>(0));
    EXPECT_EQ(placed_worker(two, 1536), std::optional<unsigned>(1));
    EXPECT_EQ(placed_worker(two, 65535), std::optional<unsigned>(1));
}

// A range whose first block number is odd shifts which residue is whose.
TEST(FlowPlacement, AnOddFirstBlockShiftsTheResidues) {
    const PortRange range{1536, 65535};  // block 0 is 1536 / 512 = 3 blocks from port 0
    const auto matches = outside_placement(range, 512, 2);
    ASSERT_EQ(matches.size(), 2u);
    EXPECT_EQ(placed_worker(matches, 1536), std::optional<unsigned>(0));
    EXPECT_EQ(placed_worker(matches, 2048), std::optional<unsigned>(1));
    expect_places_every_port(range, 512, 2);
}

// Three workers: no bit field gives b % 3, so one aligned match per block (126 with the
// defaults).
TEST(FlowPlacement, OtherWorkerCountsNeedOneMatchPerAlignedBlock) {
    EXPECT_EQ(outside_placement(PortRange{}, 512, 3).size(), 126u);
    expect_places_every_port(PortRange{}, 512, 3);
    expect_places_every_port(PortRange{}, 512, 6);
}

// Geometries without alignment: blocks of 192 (a multiple of 64, not a power of two), a
// range starting off a block boundary, a range ending before 65535, a last partial block.
TEST(FlowPlacement, UnalignedGeometriesArePlacedExactly) {
    for (auto [first, last, size, workers] :
         {std::tuple{1024, 65535, 192u, 2u}, std::tuple{1000, 65535, 512u, 2u},
          std::tuple{2000, 40000, 64u, 4u}, std::tuple{1024, 3583, 256u, 3u},
          std::tuple{5000, 5063, 64u, 2u}, std::tuple{1024, 65535, 4096u, 16u},
          std::tuple{1024, 65535, 4096u, 5u}}) {
        const PortRange range{static_cast<uint16_t>(first), static_cast<uint16_t>(last)};
        expect_places_every_port(range, size, workers);
    }
}

TEST(FlowPlacement, MatchesPrintAsValueMaskAndQueue) {
    EXPECT_EQ(to_string(PortMatch{512, 0x0200, 1}), "port 512/0x0200 -> queue 1");
}

}  // namespace
}  // namespace cgn::dp
