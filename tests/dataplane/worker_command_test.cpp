// Worker commands from the control thread. drop_address (a one-to-one mapping added or
// withdrawn) walks every mapping slot: it is spread over the worker's loops so that the worker
// keeps polling meanwhile (at 1M slots one pass took tens of milliseconds, and the RX ring
// overflowed), and it is answered only once the pass is done.

#include <gtest/gtest.h>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace ipv4 = common::ipv4;

TEST(WorkerCommands, DropAddressIsIncrementalAndTheWorkerKeepsForwarding) {
    DataplaneHarness h;
    h.settings().nat.max_sessions = 1u << 16;  // 65536 mapping slots: 8 loops of 8192
    h.start(true);
    h.resolve_neighbors();
    const Topology& t = h.topo();
    auto from = [&](common::Ipv4Address src, common::MacAddress mac, uint16_t sport) {
        return PacketBuilder()
            .ethernet(mac, h.inside().mac())
            .ipv4(src, t.server1)
            .udp(sport, 9)
            .payload("x")
            .build();
    };
    for (uint16_t i = 0; i < 40; ++i) {
        h.inside().inject(from(t.subscriber1, t.subscriber1_mac, static_cast<uint16_t>(7000 + i)));
        h.inside().inject(from(t.subscriber2, t.subscriber2_mac, static_cast<uint16_t>(7000 + i)));
        if (i % 16 == 15) h.poll();
    }
    h.poll(2);
    ASSERT_EQ(h.outside().drain().size(), 80u);
    h.reset_counters();

    auto c = std::make_unique<dp::WorkerCommand>();
    c->kind = dp::WorkerCommand::Kind::drop_address;
    c->addr = t.subscriber1.value;
    int result = dp::WorkerCommand::kPending;
    ASSERT_TRUE(h.channel().submit(0, std::move(c),
                                   [&](const dp::WorkerCommand& done) { result = done.result; }));
    unsigned polls = 0;
    size_t forwarded_while_pending = 0;
    while (result == dp::WorkerCommand::kPending && polls < 100) {
        // Traffic of another subscriber while the pass goes on.
        h.inside().inject(from(t.subscriber2, t.subscriber2_mac, 7000));
        h.poll();
        ++polls;
        h.channel().poll();
        if (result == dp::WorkerCommand::kPending)
            forwarded_while_pending += h.outside().drain().size();
    }
    EXPECT_EQ(result, 1);
    EXPECT_GE(polls, 8u) << "the pass was not spread over the loops";
    EXPECT_LE(polls, 10u);
    EXPECT_GE(forwarded_while_pending, 7u);
    // Every mapping of subscriber 1 went, none of subscriber 2.
    EXPECT_EQ(h.counter(Counter::mappings_removed), 40u);
    for (uint16_t i = 0; i < 40; ++i) {
        EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t.subscriber1.value, 7000 + i)) << i;
        EXPECT_TRUE(h.find_mapping(ipv4::kProtoUdp, t.subscriber2.value, 7000 + i)) << i;
    }
}

}  // namespace
}  // namespace cgn::test
