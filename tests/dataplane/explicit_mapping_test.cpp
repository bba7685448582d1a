// Explicit (static) mappings against the dynamic mapping they replace, and the one Steering the
// control thread and the workers share.
//
// A key of the mapping table never changes hands: an explicit mapping made (on an inbound
// packet) while its internal endpoint still has its dynamic mapping must neither take over the
// dynamic mapping's key nor be removed by the command that drops the dynamic mapping, and the
// dynamic mapping's release must not erase keys that belong to another mapping.

#include <gtest/gtest.h>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "dataplane/nat/steering.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace ipv4 = common::ipv4;

common::Ipv4Address ip(const char* text) { return *common::Ipv4Address::parse(text); }

class ExplicitMappings : public ::testing::Test {
protected:
    void SetUp() override {
        h.settings().nat.timeouts.udp_s = 30;
        h.start(true);
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }
    Frame from_subscriber(uint16_t dport) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(t().subscriber1, t().server1)
            .udp(40000, dport)
            .payload("out")
            .build();
    }
    Frame to_static(uint16_t sport) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(t().server2, kExternal)
            .udp(sport, 80)
            .payload("in")
            .build();
    }
    Frame expected_inside(uint16_t sport) {
        return PacketBuilder()
            .ethernet(h.inside().mac(), t().subscriber1_mac)
            .ipv4(t().server2, t().subscriber1, 63)
            .udp(sport, 40000)
            .payload("in")
            .build();
    }
    // The explicit mapping as the control thread makes it visible before it sends the command
    // that drops the dynamic mapping (Controller::add_static does: table, publish, command).
    void publish_explicit() {
        ASSERT_TRUE(h.channel().explicit_mappings().insert(
            ipv4::kProtoUdp, {t().subscriber1.value, 40000}, {kExternal.value, 80}));
        auto next = std::make_unique<dp::RuntimeSettings>(*h.channel().settings());
        next->pool_additions.clear();
        next->explicit_mappings = 1;
        h.channel().publish(std::move(next), [this] { h.poll(); });
    }
    void command(dp::WorkerCommand::Kind kind) {
        dp::WorkerCommand c;
        c.kind = kind;
        c.protocol = ipv4::kProtoUdp;
        c.addr = t().subscriber1.value;
        c.port = 40000;
        ASSERT_EQ(h.channel().run(0, c, [this] { h.poll(); }), 1);
    }
    // Port 80 is below the dynamic range: no block holds it, no reservation is needed.
    const common::Ipv4Address kExternal = ip("198.51.100.1");
    DataplaneHarness h;
};

TEST_F(ExplicitMappings, MadeWhileTheDynamicMappingExistsTakesNoKeyOfIt) {
    h.inside().inject(from_subscriber(9));
    h.poll(2);
    ASSERT_EQ(h.outside().drain().size(), 1u);
    const auto dynamic = *h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000);
    ASSERT_NE(dynamic.second, 80);
    publish_explicit();

    // Inbound before the dynamic mapping is dropped: refused and counted, nothing replaced.
    h.outside().inject(to_static(5000));
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_mapping_conflict), 1u);
    EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000), dynamic);
    // The dynamic mapping still works meanwhile.
    h.inside().inject(from_subscriber(9));
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 1u);

    // The control thread's command drops the dynamic mapping; then the explicit one is made.
    command(dp::WorkerCommand::Kind::drop_dynamic_mapping);
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000));
    h.outside().inject(to_static(5001));
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], expected_inside(5001));
    EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000),
              std::make_pair(kExternal.value, uint16_t{80}));

    // A second drop of the dynamic mapping (a late or repeated command) leaves it alone.
    command(dp::WorkerCommand::Kind::drop_dynamic_mapping);
    h.outside().inject(to_static(5002));
    h.poll(2);
    in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], expected_inside(5002));
}

// Without the command (a worker that has not taken it yet), the dynamic mapping ends by
// expiry: its release erases only its own keys, and the explicit mapping made after it serves
// both directions.
TEST_F(ExplicitMappings, DynamicMappingExpiryLeavesTheExplicitOneWhole) {
    h.inside().inject(from_subscriber(9));
    h.poll(2);
    h.outside().drain();
    publish_explicit();
    h.outside().inject(to_static(6000));
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    h.clock().advance_ms(31'000);
    h.poll(2);
    ASSERT_EQ(h.counter(Counter::sessions_expired), 1u);
    ASSERT_EQ(h.counter(Counter::mappings_removed), 1u);
    h.outside().inject(to_static(6001));
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], expected_inside(6001));
    // The subscriber answers from the explicit external endpoint, on the session just made.
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server2)
                          .udp(40000, 6001)
                          .payload("answer")
                          .build());
    h.poll(2);
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], PacketBuilder()
                          .ethernet(h.outside().mac(), t().gateway_mac)
                          .ipv4(kExternal, t().server2, 63)
                          .udp(80, 6001)
                          .payload("answer")
                          .build());
    EXPECT_EQ(h.worker().nat().mapping_count(), 1u);
    // Withdrawn, it goes with the explicit command only.
    command(dp::WorkerCommand::Kind::drop_dynamic_mapping);
    EXPECT_TRUE(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000));
    command(dp::WorkerCommand::Kind::drop_explicit_mapping);
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000));
}

// With 3 workers and a 512-entry indirection table, owner = (hash % 512) % 3 differs from
// (hash % 128) % 3 for some subscribers: the controller must send its commands to the worker
// the workers themselves steer the subscriber to.
TEST(ExplicitMappingSteering, CommandsReachTheWorkerThatOwnsTheSubscriber) {
    DataplaneHarness h(3);
    h.settings().reta_size = 512;
    h.start(true);
    h.resolve_neighbors();
    const dp::Steering nic(3, nullptr, 512);
    const dp::Steering default_table(3, nullptr, dp::kDefaultRetaSize);
    common::Ipv4Address subscriber{0};
    for (uint32_t a = ip("100.64.1.1").value; a < ip("100.64.2.0").value; ++a) {
        if (nic.subscriber_owner(a) != default_table.subscriber_owner(a)) {
            subscriber = common::Ipv4Address{a};
            break;
        }
    }
    ASSERT_NE(subscriber.value, 0u);
    EXPECT_EQ(h.channel().steering().subscriber_owner(subscriber.value),
              nic.subscriber_owner(subscriber.value));
    h.inside().inject(PacketBuilder()
                          .ethernet(h.topo().subscriber1_mac, h.inside().mac())
                          .ipv4(subscriber, h.topo().server1)
                          .udp(40000, 9)
                          .payload("x")
                          .build());
    h.poll(3);
    ASSERT_EQ(h.outside().drain().size(), 1u);
    const auto dynamic = h.find_mapping(ipv4::kProtoUdp, subscriber.value, 40000);
    ASSERT_TRUE(dynamic);
    // The static mapping replaces the dynamic one: the drop command must find it.
    h.controller().add_static(*common::StaticMapping::parse(
        ("udp " + subscriber.to_string() + ":40000 198.51.100.1:80").c_str()));
    EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, subscriber.value, 40000), std::nullopt);
}

}  // namespace
}  // namespace cgn::test
