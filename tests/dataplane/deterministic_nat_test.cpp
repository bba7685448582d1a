// Deterministic NAT (RFC 7422) in the worker: a subscriber of a deterministic prefix gets the
// address and port range its formula gives, the reverse formula steers replies to its worker,
// and a full range either refuses (RFC 6888 REQ-11) or, with overflow, borrows a dynamic block
// and says so in an event.

#include <gtest/gtest.h>

#include <memory>

#include "common/byte_order.hpp"
#include "common/deterministic.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace ipv4 = common::ipv4;

class DeterministicNat : public ::testing::TestWithParam<unsigned> {
protected:
    DeterministicNat() : h(GetParam()) {}
    // 100.64.0.0/24 over the harness pool 198.51.100.0/30: 64 subscribers per address.
    void start(uint32_t ports = 0, bool overflow = false) {
        common::Config c;
        c.pool = h.settings().nat.pool;
        c.port_range = h.settings().nat.port_range;
        c.port_block_size = h.settings().nat.port_block_size;
        c.deterministic.subscribers = {*common::Ipv4Prefix::parse("100.64.0.0/24")};
        c.deterministic.ports_per_subscriber = ports;
        c.deterministic.overflow = overflow;
        map = std::make_unique<common::DeterministicMap>(c);
        h.settings().nat.deterministic = map.get();
        h.settings().nat.deterministic_overflow = overflow;
        h.start();
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }
    Frame from_sub1(uint16_t sport) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(t().subscriber1, t().server1)
            .udp(sport, 53)
            .payload("q")
            .build();
    }
    // Source endpoint of each frame sent outside.
    std::vector<std::pair<uint32_t, uint16_t>> sources() {
        std::vector<std::pair<uint32_t, uint16_t>> out;
        for (const auto& f : h.outside().drain()) {
            const uint8_t* ip4 = f.data() + common::eth::kHeaderLength;
            out.emplace_back(common::load_be32(ip4 + ipv4::kSrc),
                             common::load_be16(ip4 + ipv4::kMinHeaderLength));
        }
        return out;
    }
    DataplaneHarness h;
    std::unique_ptr<common::DeterministicMap> map;
};

TEST_P(DeterministicNat, PortsComeFromTheFormulasRangeAndRepliesFindTheSubscriber) {
    start();
    // 100.64.0.11 is subscriber 11: address 198.51.100.0, ports 1024 + 11 * 1008 onwards.
    const auto range = map->forward(t().subscriber1).value();
    ASSERT_EQ(range.external, *common::Ipv4Address::parse("198.51.100.0"));
    ASSERT_EQ(range.first_port, 1024 + 11 * 1008);
    for (uint16_t i = 0; i < 50; ++i)
        h.inside().inject(from_sub1(static_cast<uint16_t>(20000 + i)),
                          static_cast<uint16_t>(i % h.workers()));
    h.poll(3);
    const auto seen = sources();
    ASSERT_EQ(seen.size(), 50u);
    for (const auto& [addr, port] : seen) {
        EXPECT_EQ(addr, range.external.value);
        EXPECT_GE(port, range.first_port);
        EXPECT_LE(port, range.last_port);
        // The operator's reverse lookup names the subscriber from the endpoint alone.
        EXPECT_EQ(map->reverse(common::Ipv4Address{addr}, port), t().subscriber1);
    }
    // No block was claimed: a deterministic range needs no log.
    EXPECT_EQ(h.counter(Counter::blocks_claimed), 0u);
    // Replies, on every queue, reach the subscriber (steered by the reverse formula).
    for (uint16_t q = 0; q < h.workers(); ++q) {
        h.outside().inject(PacketBuilder()
                               .ethernet(t().gateway_mac, h.outside().mac())
                               .ipv4(t().server1, range.external)
                               .udp(53, seen[q].second)
                               .payload("a")
                               .build(),
                           q);
        h.poll(2);
        EXPECT_EQ(h.inside().drain().size(), 1u) << "queue " << q;
    }
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), 0u);
}

TEST_P(DeterministicNat, AFullRangeRefusesWithoutOverflow) {
    start(64);  // 64 ports each
    for (uint16_t i = 0; i < 65; ++i) {
        h.inside().inject(from_sub1(static_cast<uint16_t>(20000 + i)));
        h.poll(2);
    }
    EXPECT_EQ(sources().size(), 64u);
    EXPECT_EQ(h.counter(Counter::drop_ports_exhausted), 1u);
    EXPECT_EQ(h.counter(Counter::icmp_quota_unreachable_sent), 1u);  // RFC 6888 REQ-11
    EXPECT_EQ(h.counter(Counter::blocks_claimed), 0u);
}

TEST_P(DeterministicNat, OverflowBorrowsADynamicBlockAndLogsIt) {
    start(64, true);
    for (uint16_t i = 0; i < 70; ++i) {
        h.inside().inject(from_sub1(static_cast<uint16_t>(20000 + i)));
        h.poll(2);
    }
    const auto seen = sources();
    ASSERT_EQ(seen.size(), 70u);
    const auto range = map->forward(t().subscriber1).value();
    unsigned outside_range = 0;
    for (const auto& [addr, port] : seen) {
        EXPECT_EQ(addr, range.external.value) << "paired with its deterministic address";
        if (port < range.first_port || port > range.last_port) {
            ++outside_range;
            // Overflow ports come from a dynamic block, never another subscriber's range.
            EXPECT_FALSE(map->reverse(common::Ipv4Address{addr}, port).has_value()) << port;
        }
    }
    EXPECT_EQ(outside_range, 6u);
    EXPECT_EQ(h.counter(Counter::blocks_claimed), 1u);
    bool logged = false;
    for (unsigned w = 0; w < h.workers(); ++w)
        for (const auto& e : h.take_events(w))
            logged |= e.kind == common::NatEvent::Kind::deterministic_overflow &&
                      e.subscriber == t().subscriber1.value;
    EXPECT_TRUE(logged);
}

TEST_P(DeterministicNat, OtherSubscribersStayDynamic) {
    start(64);
    // 100.64.1.5 is outside 100.64.0.0/24: a dynamic block, logged.
    const auto other = *common::Ipv4Address::parse("100.64.1.5");
    h.inside().inject(arp_request(common::MacAddress{{2, 0, 0, 0, 7, 7}}, other,
                                  t().inside.address));
    h.poll(2);
    h.inside().drain();
    h.inside().inject(PacketBuilder()
                          .ethernet(common::MacAddress{{2, 0, 0, 0, 7, 7}}, h.inside().mac())
                          .ipv4(other, t().server1)
                          .udp(4000, 53)
                          .build());
    h.poll(2);
    const auto seen = sources();
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_FALSE(map->reverse(common::Ipv4Address{seen[0].first}, seen[0].second).has_value());
    EXPECT_EQ(h.counter(Counter::blocks_claimed), 1u);
}

INSTANTIATE_TEST_SUITE_P(Workers, DeterministicNat, ::testing::Values(1u, 2u),
                         [](const auto& info) { return std::to_string(info.param) + "workers"; });

}  // namespace
}  // namespace cgn::test
