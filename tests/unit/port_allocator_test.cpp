#include "dataplane/nat/port_allocator.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
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
    AddressPool pool({prefix("198.51.100.0/30"), prefix("203.0.113.8/29"), prefix("192.0.2.77/32")},
                     kDefaultRange);
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

TEST(AddressPool, EachAddressHasItsOwnPortSets) {
    AddressPool pool({prefix("198.51.100.0/31")}, {1024, 1087});
    EXPECT_TRUE(pool.ports(0, ProtocolIndex::udp).reserve(1024));
    EXPECT_FALSE(pool.ports(0, ProtocolIndex::tcp).in_use(1024));
    EXPECT_FALSE(pool.ports(0, ProtocolIndex::icmp).in_use(1024));
    EXPECT_FALSE(pool.ports(1, ProtocolIndex::udp).in_use(1024));
    EXPECT_EQ(pool.ports(1, ProtocolIndex::tcp).capacity(), 64u);
}

TEST(AddressPool, PairsSubscribersRoundRobinOverEqualLoads) {
    AddressPool pool({prefix("198.51.100.0/30")}, kDefaultRange);
    std::vector<uint32_t> order;
    for (int i = 0; i < 12; ++i) order.push_back(pool.pair_subscriber().value());
    EXPECT_EQ(order, (std::vector<uint32_t>{0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3}));
    for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(pool.subscribers(i), 3u);
}

TEST(AddressPool, PairsWithTheLeastLoadedAddress) {
    AddressPool pool({prefix("198.51.100.0/30")}, kDefaultRange);
    for (int i = 0; i < 8; ++i) pool.pair_subscriber();  // 2 each
    pool.unpair_subscriber(2);
    pool.unpair_subscriber(2);
    pool.unpair_subscriber(1);
    EXPECT_EQ(pool.subscribers(2), 0u);
    EXPECT_EQ(pool.subscribers(1), 1u);
    EXPECT_EQ(pool.pair_subscriber(), std::optional<uint32_t>(2));
    // Now 2, 1, 1, 2 (indices 0..3): the two with one each.
    const auto a = pool.pair_subscriber().value();
    const auto b = pool.pair_subscriber().value();
    EXPECT_EQ(std::set<uint32_t>({a, b}), std::set<uint32_t>({1, 2}));
    for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(pool.subscribers(i), 2u);
}

TEST(AddressPool, SpreadsManySubscribersEvenly) {
    AddressPool pool({prefix("198.51.100.0/28"), prefix("203.0.113.0/29")}, kDefaultRange);
    Random random(3);
    // Pair 2400 (100 per address), unpair a random third, pair 800 again: always taking the
    // least-loaded address brings every address back to exactly 100.
    std::vector<uint32_t> paired;
    for (int i = 0; i < 2400; ++i) paired.push_back(pool.pair_subscriber().value());
    for (uint32_t i = 0; i < pool.size(); ++i) EXPECT_EQ(pool.subscribers(i), 100u);
    for (int i = 0; i < 800; ++i) {
        const auto at = random.below(static_cast<uint32_t>(paired.size()));
        pool.unpair_subscriber(paired[at]);
        paired.erase(paired.begin() + at);
    }
    for (int i = 0; i < 800; ++i) paired.push_back(pool.pair_subscriber().value());
    for (uint32_t i = 0; i < pool.size(); ++i) EXPECT_EQ(pool.subscribers(i), 100u) << i;
}

void fill(PortSet& set) {
    Random random(1);
    while (set.allocate(random)) {
    }
}

TEST(AddressPool, SkipsAddressesWithEveryPortSetFull) {
    AddressPool pool({prefix("198.51.100.0/30")}, {1024, 1087});
    for (auto p : {ProtocolIndex::udp, ProtocolIndex::tcp, ProtocolIndex::icmp})
        fill(pool.ports(1, p));
    for (int i = 0; i < 9; ++i) EXPECT_NE(pool.pair_subscriber(), std::optional<uint32_t>(1));
    EXPECT_EQ(pool.subscribers(1), 0u);
    EXPECT_EQ(pool.subscribers(0), 3u);
    EXPECT_EQ(pool.subscribers(2), 3u);
    EXPECT_EQ(pool.subscribers(3), 3u);
}

TEST(AddressPool, AnAddressWithSomeFreePortSetIsStillEligible) {
    AddressPool pool({prefix("198.51.100.0/31")}, {1024, 1087});
    fill(pool.ports(0, ProtocolIndex::udp));
    fill(pool.ports(0, ProtocolIndex::tcp));  // ICMP still free
    EXPECT_EQ(pool.pair_subscriber(), std::optional<uint32_t>(0));
    EXPECT_EQ(pool.pair_subscriber(), std::optional<uint32_t>(1));
}

TEST(AddressPool, NothingWhenEveryAddressIsFull) {
    AddressPool pool({prefix("198.51.100.0/31")}, {1024, 1087});
    for (uint32_t i = 0; i < 2; ++i)
        for (auto p : {ProtocolIndex::udp, ProtocolIndex::tcp, ProtocolIndex::icmp})
            fill(pool.ports(i, p));
    EXPECT_FALSE(pool.pair_subscriber().has_value());
    EXPECT_EQ(pool.subscribers(0), 0u);
    // Freeing one port makes its address eligible again.
    pool.ports(1, ProtocolIndex::tcp).release(1050);
    EXPECT_EQ(pool.pair_subscriber(), std::optional<uint32_t>(1));
}

TEST(AddressPool, EmptyPoolPairsNobody) {
    AddressPool pool({}, kDefaultRange);
    EXPECT_EQ(pool.size(), 0u);
    EXPECT_FALSE(pool.pair_subscriber().has_value());
    EXPECT_FALSE(pool.contains(0xc6336401));
}

TEST(AddressPool, UnpairNeverGoesBelowZero) {
    AddressPool pool({prefix("198.51.100.0/31")}, kDefaultRange);
    pool.unpair_subscriber(0);
    EXPECT_EQ(pool.subscribers(0), 0u);
    EXPECT_EQ(pool.pair_subscriber(), std::optional<uint32_t>(0));
    pool.unpair_subscriber(0);
    pool.unpair_subscriber(0);
    EXPECT_EQ(pool.subscribers(0), 0u);
}

}  // namespace
}  // namespace cgn::dp

namespace cgn::dp {
namespace {

// With N workers each worker allocates only from its own blocks, and Steering names that
// worker as the owner of every port it can hand out: replies find their way back.
TEST(PortOwnership, WorkersSplitEveryAddressAndSteeringAgrees) {
    const common::PortRange range{1024, 65535};
    for (unsigned workers : {1u, 2u, 3u, 4u}) {
        const Steering steering(workers, range);
        for (uint32_t pool_index = 0; pool_index < 5; ++pool_index) {
            uint32_t total = 0;
            for (unsigned w = 0; w < workers; ++w) {
                PortSet ports(range, steering.ownership(w, pool_index));
                total += ports.capacity();
                common::Random random(w * 31 + pool_index);
                for (int i = 0; i < 2000; ++i) {
                    auto port = ports.allocate(random);
                    ASSERT_TRUE(port.has_value());
                    EXPECT_EQ(steering.external_owner(pool_index, *port), w);
                }
                // Ports of another worker's block are never ours.
                for (uint32_t port = range.first; port <= range.last; port += kPortBlockSize) {
                    if (steering.external_owner(pool_index, static_cast<uint16_t>(port)) != w) {
                        EXPECT_FALSE(ports.reserve(static_cast<uint16_t>(port))) << port;
                    }
                }
            }
            EXPECT_EQ(total, range.size()) << "the workers' blocks cover the range exactly";
        }
    }
    EXPECT_FALSE(Steering(2, range).external_owner(0, 80).has_value());
}

}  // namespace
}  // namespace cgn::dp

namespace cgn::dp {
namespace {

// RFC 4787 REQ-4: with parity asked for, every port has it while such ports remain; then any.
TEST(PortParity, PreferredUntilExhaustedThenAny) {
    for (common::PortRange range : {common::PortRange{1024, 1151}, common::PortRange{1025, 1152}}) {
        PortSet ports(range);
        common::Random random(5);
        for (int i = 0; i < 64; ++i) {
            auto odd = ports.allocate(random, true);
            ASSERT_TRUE(odd.has_value());
            EXPECT_EQ(*odd & 1, 1) << range.first;
        }
        // All 64 odd ports are taken: an odd request now gets an even port.
        auto fallback = ports.allocate(random, true);
        ASSERT_TRUE(fallback.has_value());
        EXPECT_EQ(*fallback & 1, 0);
        for (int i = 0; i < 63; ++i) EXPECT_EQ(*ports.allocate(random, false) & 1, 0);
        EXPECT_FALSE(ports.allocate(random, false).has_value());
    }
}

}  // namespace
}  // namespace cgn::dp
