#include "dataplane/nat/port_allocator.hpp"
#include "dataplane/nat/steering.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>
#include <vector>

#include "common/headers.hpp"

namespace cgn::dp {
namespace {

using common::PortRange;
using common::Random;

const PortRange kDefaultRange{};  // 1024-65535

// Allocates until the set is full; returns the ports in allocation order.
std::vector<uint16_t> allocate_all(PortSet& set, Random& random) {
    std::vector<uint16_t> ports;
    while (auto port = set.allocate(random)) ports.push_back(*port);
    return ports;
}

// ---- PortSet ---------------------------------------------------------------------------------

TEST(PortSet, StartsEmpty) {
    PortSet set(kDefaultRange);
    EXPECT_EQ(set.capacity(), 64512u);
    EXPECT_EQ(set.used(), 0u);
    EXPECT_FALSE(set.in_use(1024));
    EXPECT_FALSE(set.in_use(65535));
}

// Every port of the range exactly once, then nothing; for ranges whose size is and is not a
// multiple of the 64-bit word.
TEST(PortSet, FillsTheWholeRangeExactlyOnce) {
    const PortRange ranges[] = {{1024, 65535}, {1, 65535},     {1000, 1063},   {1000, 1064},
                                {1000, 1099},  {40000, 40127}, {65472, 65535}, {1, 64}};
    uint64_t seed = 1;
    for (const auto& range : ranges) {
        PortSet set(range);
        Random random(seed++);
        const auto ports = allocate_all(set, random);
        ASSERT_EQ(ports.size(), range.size()) << range.first << "-" << range.last;
        const std::set<uint16_t> distinct(ports.begin(), ports.end());
        EXPECT_EQ(distinct.size(), ports.size()) << "a port was handed out twice";
        EXPECT_EQ(*distinct.begin(), range.first);
        EXPECT_EQ(*distinct.rbegin(), range.last);
        EXPECT_EQ(set.used(), range.size());
        EXPECT_FALSE(set.allocate(random).has_value());
        EXPECT_FALSE(set.allocate(random).has_value());
        for (uint16_t p : {range.first, range.last}) EXPECT_TRUE(set.in_use(p));
    }
}

TEST(PortSet, NeverReturnsAPortOutsideTheRangeOrInUse) {
    const PortRange range{5000, 5199};
    PortSet set(range);
    Random random(42);
    std::set<uint16_t> held;
    // Random allocate/release traffic; every allocation is in range and not held.
    for (int step = 0; step < 20000; ++step) {
        if (held.empty() || random.below(3) != 0) {
            auto port = set.allocate(random);
            if (held.size() == range.size()) {
                EXPECT_FALSE(port.has_value());
                continue;
            }
            ASSERT_TRUE(port.has_value());
            ASSERT_GE(*port, range.first);
            ASSERT_LE(*port, range.last);
            ASSERT_TRUE(held.insert(*port).second) << "port " << *port << " handed out twice";
            ASSERT_TRUE(set.in_use(*port));
        } else {
            auto it = held.begin();
            std::advance(it, random.below(static_cast<uint32_t>(held.size())));
            set.release(*it);
            EXPECT_FALSE(set.in_use(*it));
            held.erase(it);
        }
        ASSERT_EQ(set.used(), held.size());
    }
}

TEST(PortSet, ReleaseMakesAPortAvailableAgain) {
    PortSet set({2000, 2099});
    Random random(9);
    allocate_all(set, random);
    set.release(2042);
    EXPECT_FALSE(set.in_use(2042));
    EXPECT_EQ(set.used(), 99u);
    EXPECT_EQ(set.allocate(random), std::optional<uint16_t>(2042));
    EXPECT_FALSE(set.allocate(random).has_value());
    EXPECT_EQ(set.used(), 100u);
}

TEST(PortSet, ReleaseOfAFreeOrForeignPortChangesNothing) {
    PortSet set({2000, 2099});
    ASSERT_TRUE(set.reserve(2001));
    set.release(2000);  // free
    set.release(1999);  // below the range
    set.release(2100);  // above the range
    EXPECT_EQ(set.used(), 1u);
    EXPECT_TRUE(set.in_use(2001));
    set.release(2001);
    set.release(2001);  // twice
    EXPECT_EQ(set.used(), 0u);
}

TEST(PortSet, ReserveTakesAGivenPortOnce) {
    PortSet set({2000, 2063});
    EXPECT_TRUE(set.reserve(2000));
    EXPECT_TRUE(set.reserve(2063));
    EXPECT_TRUE(set.reserve(2030));
    EXPECT_FALSE(set.reserve(2030));  // already taken
    EXPECT_FALSE(set.reserve(1999));  // outside
    EXPECT_FALSE(set.reserve(2064));
    EXPECT_FALSE(set.reserve(0));
    EXPECT_EQ(set.used(), 3u);
    EXPECT_TRUE(set.in_use(2030));

    // Allocation never hands out a reserved port, and fills exactly the rest.
    Random random(5);
    const auto ports = allocate_all(set, random);
    EXPECT_EQ(ports.size(), 61u);
    for (uint16_t p : ports) {
        EXPECT_NE(p, 2000);
        EXPECT_NE(p, 2030);
        EXPECT_NE(p, 2063);
    }
    // An allocated port cannot be reserved.
    EXPECT_FALSE(set.reserve(ports.front()));
}

TEST(PortSet, DefaultRangeNeverHandsOutPortsBelow1024) {
    PortSet set(kDefaultRange);
    EXPECT_FALSE(set.reserve(80));
    EXPECT_FALSE(set.reserve(1023));
    EXPECT_FALSE(set.in_use(80));
    EXPECT_TRUE(set.reserve(1024));
    Random random(77);
    const auto ports = allocate_all(set, random);
    ASSERT_EQ(ports.size(), 64511u);
    EXPECT_GE(*std::min_element(ports.begin(), ports.end()), 1024);
}

TEST(PortSet, AllocationsAreSpreadNotSequential) {
    PortSet set(kDefaultRange);
    Random random(2024);
    std::vector<uint16_t> ports;
    for (int i = 0; i < 1000; ++i) ports.push_back(set.allocate(random).value());
    int consecutive = 0;
    for (size_t i = 1; i < ports.size(); ++i) consecutive += ports[i] == ports[i - 1] + 1;
    // A sequential allocator gives 999; a uniform random one about 0.03.
    EXPECT_LE(consecutive, 5);
    // Spread over the range: every eighth of it gets a share (expected 125 each).
    int per_eighth[8] = {};
    for (uint16_t p : ports) ++per_eighth[(p - 1024) / 8064];
    for (int count : per_eighth) {
        EXPECT_GT(count, 70);
        EXPECT_LT(count, 180);
    }
}

TEST(PortSet, FirstPortsDifferAcrossSeeds) {
    std::set<uint16_t> first;
    for (uint64_t seed = 1; seed <= 20; ++seed) {
        PortSet set(kDefaultRange);
        Random random(seed);
        first.insert(set.allocate(random).value());
    }
    EXPECT_GE(first.size(), 18u);
}

TEST(PortSet, SameSeedSameChoice) {
    PortSet a(kDefaultRange), b(kDefaultRange);
    Random ra(31), rb(31);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(a.allocate(ra), b.allocate(rb));
}

// ---- protocol_index --------------------------------------------------------------------------

TEST(ProtocolIndex, MapsTheTranslatedProtocols) {
    EXPECT_EQ(protocol_index(common::ipv4::kProtoUdp), ProtocolIndex::udp);
    EXPECT_EQ(protocol_index(common::ipv4::kProtoTcp), ProtocolIndex::tcp);
    EXPECT_EQ(protocol_index(common::ipv4::kProtoIcmp), ProtocolIndex::icmp);
    EXPECT_FALSE(protocol_index(47).has_value());
    EXPECT_FALSE(protocol_index(0).has_value());
}

// ---- AddressPool -----------------------------------------------------------------------------

common::Ipv4Prefix prefix(const char* text) { return common::Ipv4Prefix::parse(text).value(); }

TEST(AddressPool, IndexesAddressesAcrossPrefixes) {
    BlockMap blocks(kDefaultRange, 512, 1);
    AddressPool pool({prefix("198.51.100.0/30"), prefix("203.0.113.8/29"), prefix("192.0.2.77/32")},
                     blocks, 0);
    ASSERT_EQ(pool.size(), 13u);
    EXPECT_EQ(pool.address(0), 0xc6336400u);   // 198.51.100.0
    EXPECT_EQ(pool.address(3), 0xc6336403u);   // 198.51.100.3
    EXPECT_EQ(pool.address(4), 0xcb007108u);   // 203.0.113.8
    EXPECT_EQ(pool.address(11), 0xcb00710fu);  // 203.0.113.15
    EXPECT_EQ(pool.address(12), 0xc000024du);  // 192.0.2.77
    for (uint32_t i = 0; i < pool.size(); ++i) {
        EXPECT_EQ(pool.index_of(pool.address(i)), std::optional<uint32_t>(i));
        EXPECT_TRUE(pool.contains(pool.address(i)));
    }
    for (uint32_t outside :
         {0xc6336404u, 0xc63363ffu, 0xcb007107u, 0xcb007110u, 0xc000024cu, 0xc000024eu, 0u}) {
        EXPECT_FALSE(pool.index_of(outside).has_value()) << std::hex << outside;
        EXPECT_FALSE(pool.contains(outside));
    }
}

// ---- BlockMap --------------------------------------------------------------------------------

TEST(BlockMap, CutsTheRangeIntoWholeBlocks) {
    BlockMap blocks(kDefaultRange, 4096, 1);  // 64512 ports: 15 whole blocks, 3072 ports left
    EXPECT_EQ(blocks.blocks_per_address(), 15u);
    EXPECT_EQ(blocks.block_of(1024), std::optional<uint32_t>(0));
    EXPECT_EQ(blocks.block_of(5119), std::optional<uint32_t>(0));
    EXPECT_EQ(blocks.block_of(5120), std::optional<uint32_t>(1));
    EXPECT_EQ(blocks.block_of(62463), std::optional<uint32_t>(14));
    EXPECT_FALSE(blocks.block_of(62464).has_value()) << "the tail is no block";
    EXPECT_FALSE(blocks.block_of(65535).has_value());
    EXPECT_FALSE(blocks.block_of(1023).has_value());
    EXPECT_EQ(blocks.first_port(2), 9216);
    EXPECT_EQ(blocks.last_port(2), 13311);
    BlockMap small(kDefaultRange, 512, 1);
    EXPECT_EQ(small.blocks_per_address(), 126u);
    EXPECT_EQ(small.block_of(65535), std::optional<uint32_t>(125));
}

TEST(BlockMap, ClaimOnceReleaseAndCount) {
    BlockMap blocks({1024, 2047}, 256, 1, 4);  // 4 blocks per address, 4 addresses
    EXPECT_EQ(blocks.free_blocks(1), 4u);
    EXPECT_TRUE(blocks.claim(1, 2, BlockMap::worker_holder(0)));
    EXPECT_FALSE(blocks.claim(1, 2, BlockMap::worker_holder(1))) << "held already";
    EXPECT_EQ(blocks.holder(1, 2), BlockMap::worker_holder(0));
    EXPECT_EQ(blocks.free_blocks(1), 3u);
    EXPECT_EQ(blocks.free_blocks(0), 4u);
    EXPECT_EQ(blocks.worker_holding(1, 1536), std::optional<unsigned>(0));
    EXPECT_FALSE(blocks.worker_holding(1, 1535).has_value());
    EXPECT_FALSE(blocks.worker_holding(0, 1536).has_value());
    blocks.release(1, 2);
    EXPECT_EQ(blocks.holder(1, 2), BlockMap::kFree);
    EXPECT_EQ(blocks.free_blocks(1), 4u);
    EXPECT_TRUE(blocks.claim(1, 2, BlockMap::kControl));
    EXPECT_FALSE(blocks.worker_holding(1, 1536).has_value()) << "not a worker's";
    blocks.reserve(2, 0);
    EXPECT_EQ(blocks.free_blocks(2), 3u);
    EXPECT_FALSE(blocks.claim(2, 0, BlockMap::worker_holder(0)));
    // claim_any skips held blocks and finds none on a full address.
    std::set<uint32_t> got;
    while (auto b = blocks.claim_any(3, BlockMap::worker_holder(0), 3)) got.insert(*b);
    EXPECT_EQ(got, (std::set<uint32_t>{0, 1, 2, 3}));
    EXPECT_EQ(blocks.free_blocks(3), 0u);
}

// Block b of every address is worker b % workers': a worker claims only in its share (so the
// owner of an outside packet follows from its port), the control thread anywhere, and the free
// counts are kept per share.
TEST(BlockMap, EachWorkerClaimsOnlyItsShareAndTheOwnerFollowsFromThePort) {
    BlockMap blocks({1024, 3583}, 256, 3, 2);  // 10 blocks per address: shares of 4, 3, 3
    EXPECT_EQ(blocks.share_size(0), 4u);
    EXPECT_EQ(blocks.share_size(1), 3u);
    EXPECT_EQ(blocks.share_size(2), 3u);
    for (unsigned w = 0; w < 3; ++w) {
        std::set<uint32_t> got;
        while (auto b = blocks.claim_any(1, BlockMap::worker_holder(w), 7)) got.insert(*b);
        EXPECT_EQ(got.size(), blocks.share_size(w)) << w;
        for (uint32_t b : got) {
            EXPECT_EQ(b % 3, w);
            EXPECT_EQ(blocks.owner_of_port(blocks.first_port(b)), std::optional<unsigned>(w));
            EXPECT_EQ(blocks.owner_of_port(blocks.last_port(b)), std::optional<unsigned>(w));
        }
        EXPECT_EQ(blocks.free_blocks(1, w), 0u);
    }
    EXPECT_EQ(blocks.free_blocks(1), 0u);
    EXPECT_EQ(blocks.free_blocks(0), 10u);
    EXPECT_FALSE(blocks.owner_of_port(1023).has_value());
    EXPECT_FALSE(blocks.owner_of_port(3584).has_value()) << "past the last whole block";
    // The control thread takes any free block; it comes out of its owner's share.
    EXPECT_EQ(blocks.claim_any(0, BlockMap::kControl, 5), std::optional<uint32_t>(5));
    EXPECT_EQ(blocks.free_blocks(0, 2), 2u);
    EXPECT_EQ(blocks.free_blocks(0, 0), 4u);
}

// DESIGN invariant 4: blocks are claimed with a compare-and-swap, so threads racing for the
// blocks of one address each get different blocks and together get all of them.
TEST(BlockMap, RacingClaimersNeverShareABlock) {
    // 1008 blocks per address, shares of two workers; two threads claim for worker 0, one
    // for worker 1, one for the control thread (which races with both).
    BlockMap blocks(kDefaultRange, 64, 2, 2);
    const uint8_t holders[4] = {BlockMap::worker_holder(0), BlockMap::worker_holder(0),
                                BlockMap::worker_holder(1), BlockMap::kControl};
    std::vector<std::vector<uint32_t>> claimed(4);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            common::Random random(t + 1);
            while (auto b = blocks.claim_any(1, holders[t],
                                             random.below(blocks.blocks_per_address())))
                claimed[t].push_back(*b);
        });
    }
    for (auto& th : threads) th.join();
    std::vector<unsigned> holder(blocks.blocks_per_address(), 99);
    size_t total = 0;
    for (unsigned t = 0; t < 4; ++t) {
        for (uint32_t b : claimed[t]) {
            EXPECT_EQ(holder[b], 99u) << "block " << b << " claimed twice";
            holder[b] = t;
            EXPECT_EQ(blocks.holder(1, b), holders[t]);
            if (t < 3) {
                EXPECT_EQ(b % 2, t / 2) << "outside the worker's share";
            }
        }
        total += claimed[t].size();
    }
    EXPECT_EQ(total, blocks.blocks_per_address());
    EXPECT_EQ(blocks.free_blocks(1), 0u);
}

// ---- AddressPool: blocks ---------------------------------------------------------------------

TEST(AddressPoolBlocks, AClaimedBlockOpensItsPortsForEveryProtocol) {
    BlockMap blocks(kDefaultRange, 512, 2);  // worker 1's share: the odd blocks
    AddressPool pool({prefix("198.51.100.0/31")}, blocks, 1);
    for (auto p : {ProtocolIndex::udp, ProtocolIndex::tcp, ProtocolIndex::icmp})
        EXPECT_EQ(pool.ports(0, p).capacity(), 0u) << "nothing before a block is held";
    Random random(9);
    EXPECT_FALSE(pool.ports(0, ProtocolIndex::udp).allocate(random).has_value());
    const auto id = pool.claim_block(1, 7, 10, 0);  // from block 10 (worker 0's): takes 11
    ASSERT_TRUE(id.has_value());
    EXPECT_EQ(pool.index_of_block(*id), 1u);
    EXPECT_EQ(blocks.holder(1, 11), BlockMap::worker_holder(1));
    EXPECT_EQ(blocks.holder(1, 10), BlockMap::kFree);
    EXPECT_EQ(pool.first_port(*id), 1024 + 11 * 512);
    EXPECT_EQ(pool.last_port(*id), 1024 + 12 * 512 - 1);
    EXPECT_EQ(pool.block_record(*id).subscriber, 7u);
    EXPECT_EQ(pool.held_block(1, pool.first_port(*id)), id);
    EXPECT_FALSE(pool.held_block(1, pool.first_port(*id) - 1).has_value());
    EXPECT_FALSE(pool.held_block(0, pool.first_port(*id)).has_value());
    for (auto p : {ProtocolIndex::udp, ProtocolIndex::tcp, ProtocolIndex::icmp}) {
        PortSet& set = pool.ports(1, p);
        EXPECT_EQ(set.capacity(), 512u);
        std::set<uint16_t> got;
        while (auto port = set.allocate(random)) got.insert(*port);
        EXPECT_EQ(got.size(), 512u);
        EXPECT_EQ(*got.begin(), pool.first_port(*id));
        EXPECT_EQ(*got.rbegin(), pool.last_port(*id));
        for (uint16_t port : got) set.release(port);
    }
    pool.release_block(*id);
    EXPECT_EQ(blocks.holder(1, 11), BlockMap::kFree);
    EXPECT_EQ(pool.ports(1, ProtocolIndex::tcp).capacity(), 0u);
    EXPECT_FALSE(pool.held_block(1, 1024 + 11 * 512).has_value());
    EXPECT_EQ(pool.held_blocks(), 0u);
}

TEST(AddressPoolBlocks, TwoWorkersNeverGetTheSameBlock) {
    BlockMap blocks({1024, 3071}, 512, 2);  // 4 blocks per address, 2 in each share
    AddressPool a({prefix("198.51.100.0/32")}, blocks, 0);
    AddressPool b({prefix("198.51.100.0/32")}, blocks, 1);
    std::set<uint32_t> ids;
    for (int i = 0; i < 2; ++i) {
        ids.insert(a.claim_block(0, 1, 0, 0).value());
        ids.insert(b.claim_block(0, 1, 0, 0).value());
    }
    EXPECT_EQ(ids.size(), 4u);
    EXPECT_FALSE(a.claim_block(0, 1, 0, 0).has_value());
    EXPECT_FALSE(b.claim_block(0, 1, 0, 0).has_value());
    // Each opened only its own: a port of b's block is not a's to give.
    for (uint32_t id : ids) {
        const bool mine = a.held_block(0, a.first_port(id)).has_value();
        EXPECT_NE(mine, b.held_block(0, b.first_port(id)).has_value());
        EXPECT_EQ(a.ports(0, ProtocolIndex::udp).is_open(a.first_port(id)), mine);
        EXPECT_EQ(blocks.worker_holding(0, a.first_port(id)),
                  std::optional<unsigned>(mine ? 0 : 1));
        EXPECT_EQ(blocks.owner_of_port(a.first_port(id)), std::optional<unsigned>(mine ? 0 : 1));
    }
}

// RFC 6888 REQ-8: a block with no port in use goes back only after the hold-down, oldest first;
// using a port again takes it off the idle list.
TEST(AddressPoolBlocks, IdleBlocksReturnAfterTheHoldDownOldestFirst) {
    BlockMap blocks(kDefaultRange, 512, 1);
    AddressPool pool({prefix("198.51.100.0/32")}, blocks, 0);
    const uint32_t x = pool.claim_block(0, 1, 0, 0).value();
    const uint32_t y = pool.claim_block(0, 2, 0, 0).value();
    const uint32_t z = pool.claim_block(0, 3, 0, 0).value();
    pool.port_taken(x);
    pool.port_taken(y);
    pool.port_taken(z);
    pool.port_taken(z);
    pool.port_freed(y, 1000);  // y idle from 1 s
    pool.port_freed(x, 2000);  // x idle from 2 s
    pool.port_freed(z, 2500);  // z still has one port
    std::vector<std::pair<uint32_t, uint32_t>> released;
    auto collect = [&](uint32_t id, uint32_t sub) { released.emplace_back(id, sub); };
    EXPECT_EQ(pool.expire_blocks(120999, 120000, 10, collect), 0u);
    EXPECT_EQ(pool.expire_blocks(121000, 120000, 10, collect), 1u);
    ASSERT_EQ(released.size(), 1u);
    EXPECT_EQ(released[0], std::make_pair(y, 2u));
    EXPECT_EQ(blocks.free_blocks(0), blocks.blocks_per_address() - 2);
    pool.port_taken(x);  // busy again: stays
    EXPECT_EQ(pool.expire_blocks(500000, 120000, 10, collect), 0u);
    pool.port_freed(x, 500000);
    pool.port_freed(z, 500001);
    EXPECT_EQ(pool.expire_blocks(620001, 120000, 1, collect), 1u) << "the budget is kept";
    EXPECT_EQ(pool.expire_blocks(620001, 120000, 10, collect), 1u);
    ASSERT_EQ(released.size(), 3u);
    EXPECT_EQ(released[1].first, x);
    EXPECT_EQ(released[2].first, z);
    EXPECT_EQ(pool.held_blocks(), 0u);
    EXPECT_EQ(blocks.free_blocks(0), blocks.blocks_per_address());
}

// Load spreading: a new subscriber gets the address with the most free blocks in its worker's
// share (the only blocks it can get); equal addresses take turns.
TEST(AddressPoolBlocks, PicksTheAddressWithTheMostFreeBlocks) {
    BlockMap blocks({1024, 9215}, 512, 2);  // 16 blocks per address, 8 in each share
    AddressPool pool({prefix("198.51.100.0/30")}, blocks, 0);
    std::vector<uint32_t> order;
    for (int i = 0; i < 8; ++i) order.push_back(pool.pick_address().value());
    EXPECT_EQ(order, (std::vector<uint32_t>{0, 1, 2, 3, 0, 1, 2, 3}));
    // Another worker's claims are in its own share: they do not count.
    AddressPool other({prefix("198.51.100.0/30")}, blocks, 1);
    for (uint32_t i : {0u, 1u, 3u}) other.claim_block(i, 1, 0, 0);
    other.claim_block(0, 1, 0, 0);
    EXPECT_EQ(pool.pick_address(), std::optional<uint32_t>(0));
    for (uint32_t i : {0u, 1u, 3u}) pool.claim_block(i, 1, 0, 0);
    pool.claim_block(0, 1, 0, 0);
    EXPECT_EQ(pool.pick_address(), std::optional<uint32_t>(2));
    pool.claim_block(2, 1, 0, 0);
    pool.claim_block(2, 1, 0, 0);
    // Free in worker 0's share: 6, 7, 6, 7 -> 1 and 3 take turns.
    EXPECT_EQ(std::set<uint32_t>({pool.pick_address().value(), pool.pick_address().value()}),
              (std::set<uint32_t>{1, 3}));
    for (uint32_t i = 0; i < 4; ++i)
        while (pool.claim_block(i, 1, 0, 0)) {
        }
    EXPECT_FALSE(pool.pick_address().has_value()) << "no free block anywhere";
}

TEST(AddressPoolBlocks, EmptyPoolPicksNothing) {
    BlockMap blocks(kDefaultRange, 512, 1);
    AddressPool pool({}, blocks, 0);
    EXPECT_EQ(pool.size(), 0u);
    EXPECT_FALSE(pool.pick_address().has_value());
    EXPECT_FALSE(pool.contains(0xc6336401));
}

// ---- PortSet spans ---------------------------------------------------------------------------

// allocate_in stays in its span, which need not be aligned to 64-bit words, and finds every
// free port of it; parity restricts it.
TEST(PortSet, AllocateInCoversExactlyItsSpan) {
    const std::pair<uint16_t, uint16_t> spans[] = {{1024, 1087}, {1030, 1030}, {1030, 1100},
                                                   {2000, 2999}, {1100, 1163}, {65500, 65535}};
    uint64_t seed = 3;
    for (auto [first, last] : spans) {
        PortSet set(kDefaultRange);
        Random random(seed++);
        std::set<uint16_t> got;
        while (auto port = set.allocate_in(random, first, last)) {
            ASSERT_GE(*port, first);
            ASSERT_LE(*port, last);
            ASSERT_TRUE(got.insert(*port).second);
        }
        EXPECT_EQ(got.size(), uint32_t{last} - first + 1u) << first << "-" << last;
        EXPECT_EQ(set.used(), got.size()) << "nothing outside the span was taken";
        for (uint16_t p : got) set.release(p);
        for (int parity : {0, 1}) {
            std::set<uint16_t> same;
            while (auto port = set.allocate_in(random, first, last, parity)) {
                EXPECT_EQ(*port & 1, parity);
                same.insert(*port);
            }
            uint32_t expected = 0;
            for (uint32_t p = first; p <= last; ++p) expected += (p & 1) == uint32_t(parity);
            EXPECT_EQ(same.size(), expected);
        }
    }
}

TEST(PortSet, OpenAndCloseSpans) {
    PortSet set(kDefaultRange, false);
    Random random(4);
    EXPECT_FALSE(set.allocate(random).has_value());
    EXPECT_FALSE(set.reserve(3000));
    set.open(3000, 3099);
    EXPECT_EQ(set.capacity(), 100u);
    EXPECT_TRUE(set.reserve(3000));
    EXPECT_FALSE(set.reserve(2999));
    std::set<uint16_t> got{3000};
    while (auto p = set.allocate(random)) got.insert(*p);
    EXPECT_EQ(got.size(), 100u);
    EXPECT_EQ(*got.begin(), 3000);
    EXPECT_EQ(*got.rbegin(), 3099);
    for (uint16_t p : got) set.release(p);
    set.close(3000, 3099);
    EXPECT_EQ(set.capacity(), 0u);
    EXPECT_EQ(set.used(), 0u);
    EXPECT_FALSE(set.in_use(3000));
    EXPECT_FALSE(set.allocate(random).has_value());
}

}  // namespace
}  // namespace cgn::dp

namespace cgn::dp {
namespace {

// Steering finds the worker whose share the block of an external port is in (the holder of
// any block a worker claimed), from the port alone; nothing for ports of no block.
TEST(Steering, OutsideOwnerIsTheBlockHolder) {
    BlockMap blocks(kDefaultRange, 512, 3);
    const Steering steering(3, &blocks);
    AddressPool w0({prefix("198.51.100.0/31")}, blocks, 0);
    AddressPool w2({prefix("198.51.100.0/31")}, blocks, 2);
    const uint32_t a = w0.claim_block(1, 5, 4, 0).value();
    const uint32_t b = w2.claim_block(1, 6, 4, 0).value();
    for (uint16_t port = w0.first_port(a); port <= w0.last_port(a); port += 37)
        EXPECT_EQ(steering.external_owner(1, port), std::optional<unsigned>(0));
    for (uint16_t port = w2.first_port(b); port <= w2.last_port(b); port += 37)
        EXPECT_EQ(steering.external_owner(1, port), std::optional<unsigned>(2));
    EXPECT_EQ(blocks.holder(1, a % blocks.blocks_per_address()), BlockMap::worker_holder(0));
    EXPECT_EQ(blocks.holder(1, b % blocks.blocks_per_address()), BlockMap::worker_holder(2));
    // The same port of another address, held or not: the same owner (nothing is read).
    EXPECT_EQ(steering.external_owner(0, w0.first_port(a)), std::optional<unsigned>(0));
    EXPECT_FALSE(steering.external_owner(1, 80).has_value());
    w0.release_block(a);
    EXPECT_EQ(steering.external_owner(1, w0.first_port(a)), std::optional<unsigned>(0));
}

}  // namespace
}  // namespace cgn::dp

namespace cgn::dp {
namespace {

// RFC 4787 REQ-4, as the engine asks for it: allocate_in with a parity, within one block's span,
// gives only ports of that parity while any is free there, then nothing (the engine then tries
// the subscriber's other blocks, a new block, and only then any parity: see
// tests/dataplane/behaviour_test.cpp PortParity.FallsBackToTheOtherParityOnlyWhenNoBlockHasOne);
// the same call without parity still finds the other ports. The ranges start on an even and an
// odd port, so the parity of a port is not that of its offset.
TEST(PortParity, AllocateInGivesOnlyTheAskedParityUntilNoneIsLeft) {
    for (common::PortRange range : {common::PortRange{1024, 1279}, common::PortRange{1025, 1280}}) {
        PortSet ports(range);
        common::Random random(5);
        // The second 64-port span of the range, as a block would be.
        const auto first = static_cast<uint16_t>(range.first + 64);
        const auto last = static_cast<uint16_t>(first + 63);
        std::set<uint16_t> odd;
        for (int i = 0; i < 32; ++i) {
            auto port = ports.allocate_in(random, first, last, 1);
            ASSERT_TRUE(port.has_value()) << range.first << " odd port " << i;
            EXPECT_EQ(*port & 1, 1) << range.first;
            EXPECT_GE(*port, first);
            EXPECT_LE(*port, last);
            odd.insert(*port);
        }
        EXPECT_EQ(odd.size(), 32u);
        // The 32 odd ports of the span are taken: an odd request finds nothing, even though 32
        // even ports and the rest of the range are free.
        EXPECT_FALSE(ports.allocate_in(random, first, last, 1).has_value()) << range.first;
        EXPECT_EQ(ports.used(), 32u);
        // The other spans still have odd ports.
        EXPECT_EQ(
            *ports.allocate_in(random, range.first, static_cast<uint16_t>(range.first + 63), 1) & 1,
            1);
        // Without parity, the span's even ports.
        for (int i = 0; i < 32; ++i) {
            auto port = ports.allocate_in(random, first, last, -1);
            ASSERT_TRUE(port.has_value());
            EXPECT_EQ(*port & 1, 0);
        }
        EXPECT_FALSE(ports.allocate_in(random, first, last, -1).has_value());
        EXPECT_FALSE(ports.allocate_in(random, first, last, 0).has_value());
    }
}

}  // namespace
}  // namespace cgn::dp
