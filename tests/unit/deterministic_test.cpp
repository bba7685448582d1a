#include "common/deterministic.hpp"

#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

namespace cgn::common {
namespace {

using Range = DeterministicMap::Range;

Ipv4Address addr(const char* text) { return *Ipv4Address::parse(text); }

std::vector<Ipv4Prefix> prefixes(const std::vector<std::string>& texts) {
    std::vector<Ipv4Prefix> out;
    for (const auto& t : texts) out.push_back(*Ipv4Prefix::parse(t));
    return out;
}

// A config built by hand (no command line): only what the map reads.
Config layout(const std::vector<std::string>& subscribers, const std::vector<std::string>& pool,
              uint32_t ports = 0, PortRange range = {}, uint32_t block_size = 512) {
    Config c;
    c.deterministic.subscribers = prefixes(subscribers);
    c.deterministic.ports_per_subscriber = ports;
    c.pool = prefixes(pool);
    c.port_range = range;
    c.port_block_size = block_size;
    return c;
}

Range range(const char* external, uint16_t first, uint16_t last, uint32_t pool_index) {
    return Range{addr(external), first, last, pool_index};
}

// The ConfigError message of `f`; records a failure when it does not throw one.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const ConfigError& e) {
        return e.what();
    }
    ADD_FAILURE() << "no ConfigError";
    return {};
}

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// A parsed command line: the unit tests' required options plus `extra`.
Config parsed(const std::vector<std::string>& extra) {
    std::vector<std::string> args{"cgnd",           "--inside-port",     "net_ring0",
                                  "--outside-port", "net_ring1",         "--inside-address",
                                  "100.64.0.1/10",  "--outside-address", "192.0.2.1/24"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return parse_command_line(static_cast<int>(argv.size()), argv.data()).config;
}

// ---- The worked examples of deterministic.hpp, computed by hand -------------------------------

// 100.64.0.0/24 over 198.51.100.0/30, ports 1024-65535: D = 256, A = 4, R = 64512;
// S = ceil(256 / 4) = 64, P = floor(64512 / 64) = 1008.
TEST(DeterministicMap, WorkedExampleAutomaticPorts) {
    const DeterministicMap map(layout({"100.64.0.0/24"}, {"198.51.100.0/30"}));
    EXPECT_TRUE(map.enabled());
    EXPECT_EQ(map.subscribers(), 256u);
    EXPECT_EQ(map.pool_addresses(), 4u);
    EXPECT_EQ(map.subscribers_per_address(), 64u);
    EXPECT_EQ(map.ports_per_subscriber(), 1008u);
    EXPECT_EQ(map.addresses_used(), 4u);
    EXPECT_EQ(map.blocks_per_address(), 126u);  // 64512 / 512

    EXPECT_EQ(map.forward(addr("100.64.0.0")), range("198.51.100.0", 1024, 2031, 0));
    EXPECT_EQ(map.forward(addr("100.64.0.1")), range("198.51.100.0", 2032, 3039, 0));
    EXPECT_EQ(map.forward(addr("100.64.0.63")), range("198.51.100.0", 64528, 65535, 0));
    EXPECT_EQ(map.forward(addr("100.64.0.64")), range("198.51.100.1", 1024, 2031, 1));
    // k 200: address 200 / 64 = 3, slot 8: 1024 + 8 * 1008 = 9088.
    EXPECT_EQ(map.forward(addr("100.64.0.200")), range("198.51.100.3", 9088, 10095, 3));
    EXPECT_EQ(map.forward(addr("100.64.0.255")), range("198.51.100.3", 64528, 65535, 3));
    EXPECT_FALSE(map.forward(addr("100.64.1.0")).has_value());
    EXPECT_FALSE(map.forward(addr("100.63.255.255")).has_value());
    EXPECT_FALSE(map.forward(addr("198.51.100.0")).has_value());

    EXPECT_EQ(map.reverse(addr("198.51.100.2"), 1024), addr("100.64.0.128"));
    EXPECT_EQ(map.reverse(addr("198.51.100.2"), 2031), addr("100.64.0.128"));
    EXPECT_EQ(map.reverse(addr("198.51.100.2"), 2032), addr("100.64.0.129"));
    EXPECT_EQ(map.reverse(addr("198.51.100.3"), 65535), addr("100.64.0.255"));
    EXPECT_FALSE(map.reverse(addr("198.51.100.0"), 1023).has_value());
    EXPECT_FALSE(map.reverse(addr("198.51.100.0"), 0).has_value());
    EXPECT_FALSE(map.reverse(addr("198.51.100.4"), 1024).has_value());  // not in the pool
    EXPECT_FALSE(map.reverse(addr("100.64.0.0"), 1024).has_value());

    // 64 * 1008 = 64512 ports: every block of every address is deterministic.
    for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(map.first_dynamic_block(i), 126u) << i;
}

// The same with --deterministic-ports 1000: S = floor(64512 / 1000) = 64, N = 4; the area is
// 64000 ports = 125 blocks of 512, leaving block 125 (65024-65535) dynamic.
TEST(DeterministicMap, WorkedExampleGivenPorts) {
    const DeterministicMap map(layout({"100.64.0.0/24"}, {"198.51.100.0/30"}, 1000));
    EXPECT_EQ(map.subscribers_per_address(), 64u);
    EXPECT_EQ(map.ports_per_subscriber(), 1000u);
    EXPECT_EQ(map.addresses_used(), 4u);
    EXPECT_EQ(map.forward(addr("100.64.0.63")), range("198.51.100.0", 64024, 65023, 0));
    // k 130: address 2, slot 2: 1024 + 2000.
    EXPECT_EQ(map.forward(addr("100.64.0.130")), range("198.51.100.2", 3024, 4023, 2));
    EXPECT_EQ(map.reverse(addr("198.51.100.0"), 65023), addr("100.64.0.63"));
    EXPECT_FALSE(map.reverse(addr("198.51.100.0"), 65024).has_value());
    EXPECT_FALSE(map.reverse(addr("198.51.100.3"), 65535).has_value());
    for (uint32_t i = 0; i < 4; ++i) EXPECT_EQ(map.first_dynamic_block(i), 125u) << i;
}

// 64 subscribers (/26) over 8 addresses (/29) at 100 ports: S = floor(64512 / 100) = 645, so all
// 64 fit on the first address, whose area is 64 * 100 = 6400 ports (1024-7423): blocks 0-12
// (12.5 rounded up) are kept; the other seven addresses are wholly dynamic.
TEST(DeterministicMap, SmallRangesLeaveWholeAddressesDynamic) {
    const DeterministicMap map(layout({"100.64.0.0/26"}, {"198.51.100.0/29"}, 100));
    EXPECT_EQ(map.subscribers_per_address(), 645u);
    EXPECT_EQ(map.addresses_used(), 1u);
    EXPECT_EQ(map.subscribers_on(0), 64u);
    EXPECT_EQ(map.subscribers_on(1), 0u);
    EXPECT_EQ(map.forward(addr("100.64.0.63")), range("198.51.100.0", 7324, 7423, 0));
    EXPECT_EQ(map.reverse(addr("198.51.100.0"), 7423), addr("100.64.0.63"));
    EXPECT_FALSE(map.reverse(addr("198.51.100.0"), 7424).has_value());  // subscriber 64: none
    EXPECT_FALSE(map.reverse(addr("198.51.100.1"), 1024).has_value());
    EXPECT_EQ(map.first_dynamic_block(0), 13u);
    for (uint32_t i = 1; i < 8; ++i) EXPECT_EQ(map.first_dynamic_block(i), 0u) << i;
    EXPECT_EQ(map.first_dynamic_block(8), 0u);  // beyond the pool
}

// 256 subscribers over 8 addresses at 1500 ports: S = floor(64512 / 1500) = 43, N =
// ceil(256 / 43) = 6; addresses 0-4 hold 43 each (215), address 5 the other 41.
TEST(DeterministicMap, LastAddressHoldsTheRemainder) {
    const DeterministicMap map(layout({"100.64.0.0/24"}, {"198.51.100.0/29"}, 1500));
    EXPECT_EQ(map.subscribers_per_address(), 43u);
    EXPECT_EQ(map.addresses_used(), 6u);
    EXPECT_EQ(map.subscribers_on(4), 43u);
    EXPECT_EQ(map.subscribers_on(5), 41u);
    EXPECT_EQ(map.subscribers_on(6), 0u);
    // k 255 = 5 * 43 + 40: 1024 + 40 * 1500 = 61024.
    EXPECT_EQ(map.forward(addr("100.64.0.255")), range("198.51.100.5", 61024, 62523, 5));
    EXPECT_EQ(map.reverse(addr("198.51.100.5"), 62523), addr("100.64.0.255"));
    EXPECT_FALSE(map.reverse(addr("198.51.100.5"), 62524).has_value());
    // Address 0: area 43 * 1500 = 64500 ports (1024-65523), 125.98 blocks: all 126 kept, and
    // 65524-65535 belong to nobody.
    EXPECT_EQ(map.reverse(addr("198.51.100.0"), 65523), addr("100.64.0.42"));
    EXPECT_FALSE(map.reverse(addr("198.51.100.0"), 65524).has_value());
    EXPECT_EQ(map.first_dynamic_block(0), 126u);
    // Address 5: 41 * 1500 = 61500 ports, 120.1 blocks: dynamic from block 121 (port 62976).
    EXPECT_EQ(map.first_dynamic_block(5), 121u);
    EXPECT_EQ(map.first_dynamic_block(6), 0u);
}

// --deterministic 100.64.0.0/30 --deterministic 10.0.0.0/30 over 198.51.100.0/31: the order
// given, not the address order. D = 8, A = 2, S = 4, P = 64512 / 4 = 16128.
TEST(DeterministicMap, TwoDeterministicPrefixesConcatenatedInTheOrderGiven) {
    const DeterministicMap map(layout({"100.64.0.0/30", "10.0.0.0/30"}, {"198.51.100.0/31"}));
    EXPECT_EQ(map.subscribers(), 8u);
    EXPECT_EQ(map.ports_per_subscriber(), 16128u);
    EXPECT_EQ(map.subscriber_index(addr("100.64.0.0")), 0u);
    EXPECT_EQ(map.subscriber_index(addr("10.0.0.0")), 4u);
    EXPECT_EQ(map.subscriber_index(addr("10.0.0.3")), 7u);
    EXPECT_FALSE(map.subscriber_index(addr("10.0.0.4")).has_value());
    EXPECT_FALSE(map.subscriber_index(addr("100.64.0.4")).has_value());
    EXPECT_FALSE(map.subscriber_index(addr("9.255.255.255")).has_value());
    EXPECT_EQ(map.subscriber_address(3), addr("100.64.0.3"));
    EXPECT_EQ(map.subscriber_address(4), addr("10.0.0.0"));
    // 1024 + 3 * 16128 = 49408.
    EXPECT_EQ(map.forward(addr("100.64.0.3")), range("198.51.100.0", 49408, 65535, 0));
    EXPECT_EQ(map.forward(addr("10.0.0.0")), range("198.51.100.1", 1024, 17151, 1));
    EXPECT_EQ(map.forward(addr("10.0.0.2")), range("198.51.100.1", 33280, 49407, 1));
    EXPECT_EQ(map.reverse(addr("198.51.100.1"), 17152), addr("10.0.0.1"));
    EXPECT_EQ(map.reverse(addr("198.51.100.0"), 17152), addr("100.64.0.1"));
}

// --pool 203.0.113.8/31 --pool 198.51.100.0/31: pool indexes 0-1 then 2-3. 16 subscribers:
// S = 4, P = 16128.
TEST(DeterministicMap, SeveralPoolPrefixesConcatenatedInTheOrderGiven) {
    const DeterministicMap map(layout({"100.64.0.0/28"}, {"203.0.113.8/31", "198.51.100.0/31"}));
    EXPECT_EQ(map.pool_addresses(), 4u);
    EXPECT_EQ(map.pool_index(addr("203.0.113.8")), 0u);
    EXPECT_EQ(map.pool_index(addr("198.51.100.1")), 3u);
    EXPECT_FALSE(map.pool_index(addr("198.51.100.2")).has_value());
    EXPECT_FALSE(map.pool_index(addr("203.0.113.7")).has_value());
    EXPECT_EQ(map.pool_address(2), addr("198.51.100.0"));
    EXPECT_EQ(map.forward(addr("100.64.0.8")), range("198.51.100.0", 1024, 17151, 2));
    EXPECT_EQ(map.forward(addr("100.64.0.5")), range("203.0.113.9", 17152, 33279, 1));
    // 198.51.100.1 is pool index 3, 17152 is slot 1: k = 3 * 4 + 1 = 13.
    EXPECT_EQ(map.reverse(addr("198.51.100.1"), 17152), addr("100.64.0.13"));
    EXPECT_EQ(map.reverse_index(3, 17152), 13u);
}

// 256 subscribers over 3 addresses (198.51.100.0/31 then 203.0.113.0/32): S = ceil(256 / 3) =
// 86, P = floor(64512 / 86) = 750 (86 * 750 = 64500), N = 3; the last address holds
// 256 - 2 * 86 = 84.
TEST(DeterministicMap, AutomaticPortsWhenThePoolDoesNotDivideTheSubscribers) {
    const DeterministicMap map(layout({"100.64.0.0/24"}, {"198.51.100.0/31", "203.0.113.0/32"}));
    EXPECT_EQ(map.subscribers_per_address(), 86u);
    EXPECT_EQ(map.ports_per_subscriber(), 750u);
    EXPECT_EQ(map.addresses_used(), 3u);
    EXPECT_EQ(map.subscribers_on(2), 84u);
    // k 85: address 0, slot 85: 1024 + 85 * 750 = 64774.
    EXPECT_EQ(map.forward(addr("100.64.0.85")), range("198.51.100.0", 64774, 65523, 0));
    // k 255: address 2, slot 83: 1024 + 83 * 750 = 63274.
    EXPECT_EQ(map.forward(addr("100.64.0.255")), range("203.0.113.0", 63274, 64023, 2));
    EXPECT_EQ(map.reverse(addr("203.0.113.0"), 64023), addr("100.64.0.255"));
    EXPECT_FALSE(map.reverse(addr("203.0.113.0"), 64024).has_value());
    // 64500 ports: ceil(64500 / 512) = 126 blocks; 84 * 750 = 63000: ceil(123.05) = 124.
    EXPECT_EQ(map.first_dynamic_block(0), 126u);
    EXPECT_EQ(map.first_dynamic_block(2), 124u);
}

TEST(DeterministicMap, OffWithoutDeterministicPrefixes) {
    const DeterministicMap map(layout({}, {"198.51.100.0/30"}));
    EXPECT_FALSE(map.enabled());
    EXPECT_FALSE(map.forward(addr("100.64.0.0")).has_value());
    EXPECT_FALSE(map.reverse(addr("198.51.100.0"), 1024).has_value());
    EXPECT_EQ(map.first_dynamic_block(0), 0u);
    EXPECT_EQ(map.addresses_used(), 0u);
}

// ---- Errors ----------------------------------------------------------------------------------

TEST(DeterministicMap, GivenPortsTooManyForThePoolNameTheOption) {
    // 1500 ports: 43 per address, 256 subscribers need 6 addresses; 64 per address (1008 ports)
    // would fit the 4.
    const auto message =
        error_of([] { DeterministicMap{layout({"100.64.0.0/24"}, {"198.51.100.0/30"}, 1500)}; });
    EXPECT_TRUE(has(message, "'1500' for --deterministic-ports")) << message;
    EXPECT_TRUE(has(message, "at most 1008 ports")) << message;
    EXPECT_TRUE(has(message, "need 6 pool addresses")) << message;
    EXPECT_TRUE(has(message, "the pool has 4")) << message;
    // 1008 is the most that fits.
    EXPECT_EQ(
        DeterministicMap(layout({"100.64.0.0/24"}, {"198.51.100.0/30"}, 1008)).addresses_used(),
        4u);
    EXPECT_TRUE(has(
        error_of([] { DeterministicMap{layout({"100.64.0.0/24"}, {"198.51.100.0/30"}, 1009)}; }),
        "--deterministic-ports"));
}

TEST(DeterministicMap, GivenPortsBeyondTheRangeNameTheOption) {
    const auto message = error_of([] {
        DeterministicMap{layout({"100.64.0.0/30"}, {"198.51.100.0/30"}, 1001, {2000, 2999})};
    });
    EXPECT_TRUE(has(message, "--deterministic-ports")) << message;
    EXPECT_TRUE(has(message, "1000 ports of --port-range")) << message;
}

TEST(DeterministicMap, PoolTooSmallEvenAtOnePortEach) {
    // 65536 subscribers, one address of 64512 ports: ceil(65536 / 64512) = 2 addresses needed.
    for (uint32_t ports : {0u, 1u}) {
        const auto message = error_of(
            [ports] { DeterministicMap{layout({"100.64.0.0/16"}, {"198.51.100.0/32"}, ports)}; });
        EXPECT_TRUE(has(message, "'100.64.0.0/16' for --deterministic")) << message;
        EXPECT_TRUE(has(message, "need 2 pool addresses; the pool has 1")) << message;
    }
    // Two addresses: S = 32768, one port each.
    const DeterministicMap map(layout({"100.64.0.0/16"}, {"198.51.100.0/31"}));
    EXPECT_EQ(map.ports_per_subscriber(), 1u);
    EXPECT_EQ(map.forward(addr("100.64.255.255")), range("198.51.100.1", 33791, 33791, 1));
}

// ---- Exhaustive round trips over small layouts ------------------------------------------------

struct Layout {
    std::vector<std::string> subscribers;
    std::vector<std::string> pool;
};

// Every address of the prefixes, in the order given.
std::vector<Ipv4Address> expand(const std::vector<std::string>& texts) {
    std::vector<Ipv4Address> out;
    for (const auto& p : prefixes(texts))
        for (uint64_t i = 0; i < p.size(); ++i)
            out.push_back(Ipv4Address{p.address.value + static_cast<uint32_t>(i)});
    return out;
}

// Checks `map` against properties that do not use its formula: every subscriber gets P ports
// inside the range, packed in order (the next range starts where the previous ended, or at the
// range's start on the next pool address), `per_address` on each address but the last;
// reverse() of every port of every pool address answers exactly the owner found by forward()
// over all subscribers; no dynamic block holds a subscriber's port and the block before the
// first dynamic one does.
void check_exhaustively(const DeterministicMap& map, const Layout& l, uint32_t expected_ports,
                        uint32_t per_address, PortRange r, uint32_t block_size,
                        const std::string& what) {
    const auto subscribers = expand(l.subscribers);
    const auto pool = expand(l.pool);
    ASSERT_EQ(map.ports_per_subscriber(), expected_ports) << what;
    std::vector<int32_t> owner(pool.size() * 65536, -1);
    std::vector<uint32_t> count(pool.size(), 0);
    std::optional<Range> previous;
    uint32_t used = 0;
    for (size_t k = 0; k < subscribers.size(); ++k) {
        const auto got = map.forward(subscribers[k]);
        ASSERT_TRUE(got.has_value()) << what << " k " << k;
        ASSERT_LT(got->pool_index, pool.size()) << what;
        ASSERT_EQ(got->external, pool[got->pool_index]) << what;
        ASSERT_EQ(uint32_t{got->last_port} - got->first_port + 1, expected_ports) << what;
        ASSERT_GE(got->first_port, r.first) << what;
        ASSERT_LE(got->last_port, r.last) << what;
        if (!previous) {
            ASSERT_EQ(got->pool_index, 0u) << what;
            ASSERT_EQ(got->first_port, r.first) << what;
        } else if (got->pool_index == previous->pool_index) {
            ASSERT_EQ(got->first_port, previous->last_port + 1) << what << " k " << k;
        } else {
            ASSERT_EQ(got->pool_index, previous->pool_index + 1) << what << " k " << k;
            ASSERT_EQ(got->first_port, r.first) << what << " k " << k;
        }
        previous = got;
        used = got->pool_index + 1;
        ++count[got->pool_index];
        for (uint32_t port = got->first_port; port <= got->last_port; ++port) {
            ASSERT_EQ(owner[got->pool_index * 65536 + port], -1) << what;
            owner[got->pool_index * 65536 + port] = static_cast<int32_t>(k);
        }
    }
    EXPECT_EQ(map.addresses_used(), used) << what;
    for (uint32_t i = 0; i < used; ++i) {
        if (i + 1 < used) {
            EXPECT_EQ(count[i], per_address) << what << " address " << i;
        } else {
            EXPECT_LE(count[i], per_address) << what << " address " << i;
        }
        EXPECT_EQ(map.subscribers_on(i), count[i]) << what << " address " << i;
    }

    const uint32_t blocks = r.size() / block_size;
    EXPECT_EQ(map.blocks_per_address(), blocks) << what;
    for (size_t i = 0; i < pool.size(); ++i) {
        for (uint32_t port = 0; port <= 65535; ++port) {
            const auto got = map.reverse(pool[i], static_cast<uint16_t>(port));
            const int32_t want = owner[i * 65536 + port];
            if (want < 0) {
                ASSERT_FALSE(got.has_value()) << what << " " << pool[i].to_string() << ":" << port;
            } else {
                ASSERT_TRUE(got.has_value()) << what << " " << pool[i].to_string() << ":" << port;
                ASSERT_EQ(*got, subscribers[want])
                    << what << " " << pool[i].to_string() << ":" << port;
            }
        }
        auto block_has_owner = [&](uint32_t b) {
            for (uint32_t port = r.first + b * block_size; port < r.first + (b + 1) * block_size;
                 ++port)
                if (owner[i * 65536 + port] >= 0) return true;
            return false;
        };
        const uint32_t first = map.first_dynamic_block(static_cast<uint32_t>(i));
        ASSERT_LE(first, blocks) << what;
        for (uint32_t b = first; b < blocks; ++b)
            ASSERT_FALSE(block_has_owner(b)) << what << " address " << i << " block " << b;
        if (first > 0) {
            ASSERT_TRUE(block_has_owner(first - 1)) << what << " address " << i;
        }
    }
    // Just outside the pool: nothing.
    for (const auto& p : prefixes(l.pool)) {
        EXPECT_FALSE(map.reverse(Ipv4Address{p.address.value - 1}, r.first).has_value());
        EXPECT_FALSE(
            map.reverse(Ipv4Address{p.address.value + static_cast<uint32_t>(p.size())}, r.first)
                .has_value());
    }
}

TEST(DeterministicMap, ExhaustiveRoundTripsOnSmallLayouts) {
    // 64 subscribers over 8 pool addresses: one prefix each, and split prefixes given out of
    // address order; then over 6 addresses, which 64 does not divide.
    const Layout layouts[] = {
        {{"100.64.0.0/26"}, {"198.51.100.0/29"}},
        {{"100.64.0.32/27", "10.0.0.0/28", "10.0.1.0/28"}, {"203.0.113.4/30", "198.51.100.0/30"}},
        {{"100.64.0.0/26"}, {"198.51.100.0/30", "203.0.113.0/31"}},
    };
    const PortRange ranges[] = {{1024, 65535}, {1, 65535}, {2000, 2999}, {60000, 60063}};
    int built = 0;
    int refused = 0;
    for (const auto& l : layouts) {
        const auto addresses = static_cast<uint32_t>(expand(l.pool).size());
        // Automatic: the fewest subscribers per address that put all 64 on the pool.
        uint32_t fewest = 1;
        while (fewest * addresses < 64) ++fewest;
        for (const auto r : ranges) {
            const uint32_t size = r.size();
            for (uint32_t ports : {0u, 1u, 7u, 8u, 9u, 64u, 100u, 1000u, 1008u, 8064u, size}) {
                for (uint32_t block_size : {64u, 512u}) {
                    if (block_size > size) continue;
                    const std::string what =
                        l.subscribers[0] + " over " + l.pool[0] + " range " +
                        std::to_string(r.first) + "-" + std::to_string(r.last) + " ports " +
                        std::to_string(ports) + " blocks " + std::to_string(block_size);
                    Config c = layout(l.subscribers, l.pool, ports, r, block_size);
                    // Given P, floor(R / P) subscribers share an address, and the pool must
                    // hold all 64 that way.
                    const uint32_t per_address = ports == 0 ? fewest : size / ports;
                    const bool fits = ports <= size && per_address * addresses >= 64;
                    if (!fits) {
                        EXPECT_THROW(DeterministicMap{c}, ConfigError) << what;
                        ++refused;
                        continue;
                    }
                    const DeterministicMap map(c);
                    check_exhaustively(map, l, ports == 0 ? size / fewest : ports, per_address, r,
                                       block_size, what);
                    ++built;
                }
            }
        }
    }
    // Both outcomes were exercised.
    EXPECT_GT(built, 60);
    EXPECT_GT(refused, 15);
}

// ---- check_deterministic() through the command line -----------------------------------------

TEST(CheckDeterministic, RunsWhenTheCommandLineIsParsed) {
    const Config c = parsed({"--pool", "198.51.100.0/30", "--deterministic", "100.64.0.0/24",
                             "--deterministic-ports", "1000"});
    EXPECT_EQ(DeterministicMap(c).ports_per_subscriber(), 1000u);
    const auto message = error_of([] {
        parsed({"--pool", "198.51.100.0/30", "--deterministic", "100.64.0.0/24",
                "--deterministic-ports", "1500"});
    });
    EXPECT_TRUE(has(message, "--deterministic-ports")) << message;
    EXPECT_TRUE(has(message, "the pool has 4")) << message;
}

TEST(CheckDeterministic, StaticMappingInsideASubscribersRangeIsRefused) {
    // Subscriber 0 holds 198.51.100.0 ports 1024-2023.
    const auto message = error_of([] {
        parsed({"--pool", "198.51.100.0/30", "--deterministic", "100.64.0.0/24",
                "--deterministic-ports", "1000", "--static-mapping",
                "tcp 100.64.0.11:80 198.51.100.0:1500"});
    });
    EXPECT_TRUE(has(message, "--static-mapping")) << message;
    EXPECT_TRUE(has(message, "1024-2023 of 100.64.0.0 on 198.51.100.0")) << message;
    // Outside the port range, or in the dynamic block 125 (65024-65535): accepted.
    EXPECT_EQ(parsed({"--pool", "198.51.100.0/30", "--deterministic", "100.64.0.0/24",
                      "--deterministic-ports", "1000", "--static-mapping",
                      "tcp 100.64.0.11:80 198.51.100.0:80", "--static-mapping",
                      "udp 100.64.0.11:80 198.51.100.0:65100"})
                  .static_mappings.size(),
              2u);
}

TEST(CheckDeterministic, OverflowNeedsDynamicBlocks) {
    // Automatic ports over a pool of exactly ceil(D / S) addresses fill every block.
    const auto message = error_of([] {
        parsed({"--pool", "198.51.100.0/30", "--deterministic", "100.64.0.0/24",
                "--deterministic-overflow"});
    });
    EXPECT_TRUE(has(message, "--deterministic-overflow")) << message;
    EXPECT_TRUE(has(message, "smaller --deterministic-ports")) << message;
    const Config c = parsed({"--pool", "198.51.100.0/30", "--deterministic", "100.64.0.0/24",
                             "--deterministic-ports", "1000", "--deterministic-overflow"});
    EXPECT_TRUE(c.deterministic.overflow);
}

TEST(CheckDeterministic, SubscribersOnTheOutsideLinkAreRefused) {
    const auto message = error_of([] {
        parsed({"--pool", "198.51.100.0/30", "--deterministic", "192.0.2.128/28"});
    });
    EXPECT_TRUE(has(message, "'192.0.2.128/28' for --deterministic")) << message;
}

TEST(CheckDeterministic, HandBuiltConfigsGetTheParsersOverlapRules) {
    EXPECT_TRUE(has(
        error_of([] {
            check_deterministic(layout({"100.64.0.0/24", "100.64.0.128/25"}, {"198.51.100.0/30"}));
        }),
        "'100.64.0.128/25' for --deterministic"));
    EXPECT_TRUE(
        has(error_of([] { check_deterministic(layout({"198.51.100.0/24"}, {"198.51.100.0/30"})); }),
            "--deterministic"));
    check_deterministic(layout({}, {"198.51.100.0/30"}));  // off: nothing to check
}

// ---- Offline lookup --------------------------------------------------------------------------

// 100.64.0.0/24 over 198.51.100.0/30 at 1000 ports: subscriber k on address k / 64 from port
// 1024 + (k % 64) * 1000; block 125 (65024-65535) of each address is dynamic.
Config lookup_config() {
    return parsed({"--pool", "198.51.100.0/30", "--deterministic", "100.64.0.0/24",
                   "--deterministic-ports", "1000", "--static-mapping",
                   "tcp 100.64.0.11:80 198.51.100.3:65300"});
}

TEST(DeterministicLookup, SubscriberAddress) {
    const Config c = lookup_config();
    EXPECT_EQ(deterministic_lookup(c, "100.64.0.5"), "100.64.0.5 -> 198.51.100.0 ports 6024-7023");
    // k 70: address 1, slot 6.
    EXPECT_EQ(deterministic_lookup(c, " 100.64.0.70\n"),
              "100.64.0.70 -> 198.51.100.1 ports 7024-8023");
}

TEST(DeterministicLookup, ExternalEndpointBothSpellings) {
    const Config c = lookup_config();
    const std::string want = "198.51.100.1:7500 -> 100.64.0.70 (ports 7024-8023)";
    EXPECT_EQ(deterministic_lookup(c, "198.51.100.1:7500"), want);
    EXPECT_EQ(deterministic_lookup(c, "198.51.100.1 7500"), want);
    EXPECT_EQ(deterministic_lookup(c, "  198.51.100.1 \t 7500 "), want);
    // The first and last port of the last subscriber (k 255: address 3, slot 63).
    EXPECT_EQ(deterministic_lookup(c, "198.51.100.3:64024"),
              "198.51.100.3:64024 -> 100.64.0.255 (ports 64024-65023)");
    EXPECT_EQ(deterministic_lookup(c, "198.51.100.3 65023"),
              "198.51.100.3:65023 -> 100.64.0.255 (ports 64024-65023)");
}

TEST(DeterministicLookup, StaticMappingNamesItsInternalAddress) {
    EXPECT_EQ(deterministic_lookup(lookup_config(), "198.51.100.3:65300"),
              "198.51.100.3:65300 -> 100.64.0.11 (static mapping tcp 100.64.0.11:80 "
              "198.51.100.3:65300)");
}

TEST(DeterministicLookup, OneToOneMappingNamesItsInternalAddressForEveryPort) {
    // 100.64.0.0/26 fills two addresses at 1000 ports; the fourth is free for a one-to-one.
    const Config c = parsed({"--pool", "198.51.100.0/30", "--deterministic", "100.64.0.0/26",
                             "--deterministic-ports", "1000", "--static-mapping",
                             "ip 100.64.1.7 198.51.100.3"});
    for (const char* port : {"22", "7500", "65535"})
        EXPECT_EQ(deterministic_lookup(c, std::string("198.51.100.3:") + port),
                  std::string("198.51.100.3:") + port +
                      " -> 100.64.1.7 (static mapping ip 100.64.1.7 198.51.100.3)");
    // An address with deterministic ranges cannot be mapped one-to-one.
    const std::string error = error_of([] {
        parsed({"--pool", "198.51.100.0/30", "--deterministic", "100.64.0.0/26",
                "--deterministic-ports", "1000", "--static-mapping", "ip 100.64.1.7 198.51.100.0"});
    });
    EXPECT_NE(error.find("without deterministic ranges"), std::string::npos) << error;
}

std::string lookup_error(const Config& c, const std::string& query) {
    return error_of([&] { deterministic_lookup(c, query); });
}

TEST(DeterministicLookup, MalformedQueriesNameTheOption) {
    const Config c = lookup_config();
    for (const char* bad : {"", "   ", "hello", "198.51.100.2:", "198.51.100.2:70000",
                            "198.51.100.2:-1", "198.51.100.2:15x", "198.51.100.2 1500 7",
                            "198.51.100.256:1500", "100.64.0.5/32", ":1500", "1500"}) {
        const auto message = lookup_error(c, bad);
        EXPECT_TRUE(has(message, "for --lookup: expected a subscriber address"))
            << bad << ": " << message;
    }
}

TEST(DeterministicLookup, AddressesOutsideThePrefixesAndThePool) {
    const Config c = lookup_config();
    EXPECT_EQ(lookup_error(c, "100.64.1.5"),
              "100.64.1.5 is not a deterministic subscriber: --deterministic holds 100.64.0.0/24");
    EXPECT_EQ(lookup_error(c, "198.51.100.2"),
              "198.51.100.2 is a pool address: give the port too, e.g. 198.51.100.2:1024");
    EXPECT_EQ(lookup_error(c, "198.51.100.9:2000"),
              "198.51.100.9:2000 is not a pool address: --pool holds 198.51.100.0/30");
}

TEST(DeterministicLookup, PortsOfNoSubscriberSayWhoseTheyAre) {
    const Config c = lookup_config();
    EXPECT_EQ(lookup_error(c, "198.51.100.0:65100"),
              "198.51.100.0:65100 is not a deterministic port: ports from 65024 to 65535 of "
              "198.51.100.0 belong to dynamic blocks (see the block allocation logs)");
    EXPECT_EQ(lookup_error(c, "198.51.100.0:80"),
              "198.51.100.0:80 is not a deterministic port: it is outside --port-range "
              "1024-65535 (only static mappings use such ports)");

    // 1500 ports over /29: S = 43; address 0 holds 1024-65523 and all 126 blocks; address 5
    // (41 subscribers) holds 1024-62523, dynamic from block 121 = port 62976; address 6 none.
    const Config wide = parsed({"--pool", "198.51.100.0/29", "--deterministic", "100.64.0.0/24",
                                "--deterministic-ports", "1500"});
    EXPECT_EQ(lookup_error(wide, "198.51.100.0:65530"),
              "198.51.100.0:65530 is not a deterministic port: ports from 65524 to 65535 of "
              "198.51.100.0 are used by nobody (after the last deterministic range, and no whole "
              "port block is left for dynamic use)");
    EXPECT_EQ(lookup_error(wide, "198.51.100.5:62600"),
              "198.51.100.5:62600 is not a deterministic port: ports from 62524 to 62975 of "
              "198.51.100.5 are used by nobody (after the last deterministic range, before the "
              "first dynamic block)");
    EXPECT_EQ(lookup_error(wide, "198.51.100.5:62976"),
              "198.51.100.5:62976 is not a deterministic port: ports from 62976 to 65535 of "
              "198.51.100.5 belong to dynamic blocks (see the block allocation logs)");
    EXPECT_EQ(lookup_error(wide, "198.51.100.6:1024"),
              "198.51.100.6:1024 is not a deterministic port: ports from 1024 to 65535 of "
              "198.51.100.6 belong to dynamic blocks (see the block allocation logs)");
    EXPECT_EQ(deterministic_lookup(wide, "198.51.100.5:62523"),
              "198.51.100.5:62523 -> 100.64.0.255 (ports 61024-62523)");

    // Ports 1024-60000 (58977) hold 115 whole blocks of 512, up to 59903; 59904-60000 are
    // in none. 1000 ports: S = 58, N = ceil(256 / 58) = 5, so address 7 is wholly dynamic.
    const Config tail = parsed({"--pool", "198.51.100.0/29", "--deterministic", "100.64.0.0/24",
                                "--deterministic-ports", "1000", "--port-range", "1024-60000"});
    EXPECT_EQ(lookup_error(tail, "198.51.100.7:59950"),
              "198.51.100.7:59950 is not a deterministic port: ports from 59904 to 60000 of "
              "198.51.100.7 are used by nobody (they do not fill a whole port block)");
    EXPECT_EQ(lookup_error(tail, "198.51.100.7:60001"),
              "198.51.100.7:60001 is not a deterministic port: it is outside --port-range "
              "1024-60000 (only static mappings use such ports)");
}

TEST(DeterministicLookup, OffWithoutDeterministicPrefixes) {
    const Config c = parsed({"--pool", "198.51.100.0/30"});
    EXPECT_EQ(lookup_error(c, "100.64.0.5"),
              "deterministic NAT is off: the config has no --deterministic prefix");
    EXPECT_TRUE(has(error_of([&] { deterministic_table(c); }), "deterministic NAT is off"));
}

// ---- Table -----------------------------------------------------------------------------------

TEST(DeterministicTable, OneLinePerSubscriberAfterTheLayout) {
    // 4 subscribers over 2 addresses: S = 2, P = 64512 / 2 = 32256.
    const Config c = parsed({"--pool", "198.51.100.0/31", "--deterministic", "100.64.0.0/30"});
    EXPECT_EQ(deterministic_table(c),
              "# deterministic NAT (RFC 7422): 4 subscribers of 100.64.0.0/30 on 2 of the 2 pool "
              "addresses, 2 per address, 32256 ports each from port 1024\n"
              "100.64.0.0 -> 198.51.100.0 ports 1024-33279\n"
              "100.64.0.1 -> 198.51.100.0 ports 33280-65535\n"
              "100.64.0.2 -> 198.51.100.1 ports 1024-33279\n"
              "100.64.0.3 -> 198.51.100.1 ports 33280-65535\n");
}

TEST(DeterministicTable, AgreesWithTheLookupForEverySubscriber) {
    const Config c = lookup_config();
    const std::string table = deterministic_table(c);
    size_t lines = 0;
    size_t start = table.find('\n') + 1;  // after the '#' line
    for (size_t end; (end = table.find('\n', start)) != std::string::npos; start = end + 1) {
        const std::string line = table.substr(start, end - start);
        EXPECT_EQ(deterministic_lookup(c, line.substr(0, line.find(' '))), line);
        ++lines;
    }
    EXPECT_EQ(lines, 256u);
}

}  // namespace
}  // namespace cgn::common
