// Several workers on multi-queue ports (DESIGN invariant 3): whatever queue a packet arrives
// on, it is translated by its owner only, both directions agree, and the counters add up to
// the packets sent. The workers are polled in turn from this thread, so the runs are
// deterministic; the threaded runs are in concurrency_test.cpp.

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "common/random.hpp"
#include "dataplane/nat/steering.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace ipv4 = common::ipv4;

class MultiWorker : public ::testing::TestWithParam<unsigned> {
protected:
    static constexpr unsigned kSubscribers = 64;
    static constexpr unsigned kFlowsPerSubscriber = 4;

    MultiWorker() : h(GetParam()) {}

    common::Ipv4Address subscriber(unsigned i) {
        return common::Ipv4Address{t().subscriber1.value + 0x100 + i};  // 100.64.1.11 ...
    }
    common::MacAddress subscriber_mac(unsigned i) {
        return common::MacAddress{{0x02, 0, 0, 0, 0x10, static_cast<uint8_t>(i)}};
    }
    const Topology& t() { return h.topo(); }

    void SetUp() override {
        h.settings().nat.pool = {*common::Ipv4Prefix::parse("198.51.100.0/28")};
        h.settings().nat.max_sessions = 4096;
        h.settings().neighbor_capacity = 256;
        h.start();
        h.resolve_neighbors();
        // Every subscriber announces itself once, on some queue; all workers learn it.
        for (unsigned i = 0; i < kSubscribers; ++i)
            h.inside().inject(arp_request(subscriber_mac(i), subscriber(i), t().inside.address),
                              static_cast<uint16_t>(i % h.workers()));
        h.poll(4);
        h.inside().drain();
        h.reset_counters();
    }

    DataplaneHarness h;
};

TEST_P(MultiWorker, EveryFlowTranslatedOnceByItsOwnerWhateverTheQueue) {
    const unsigned workers = h.workers();
    const dp::Steering steering(workers, &h.blocks());
    common::Random random(7);
    unsigned sent = 0;
    for (unsigned i = 0; i < kSubscribers; ++i) {
        for (unsigned f = 0; f < kFlowsPerSubscriber; ++f) {
            h.inside().inject(PacketBuilder()
                                  .ethernet(subscriber_mac(i), h.inside().mac())
                                  .ipv4(subscriber(i), t().server1)
                                  .udp(static_cast<uint16_t>(30000 + f), 53)
                                  .payload("q")
                                  .build(),
                              static_cast<uint16_t>(random.below(workers)));
            ++sent;
        }
    }
    h.poll(8);
    EXPECT_EQ(h.counter(Counter::rx_inside), sent);
    EXPECT_EQ(h.counter(Counter::in2out_translated), sent);
    EXPECT_EQ(h.counter(Counter::sessions_created), sent);
    EXPECT_EQ(h.counter(Counter::packets_handed_off),
              h.counter(Counter::packets_received_by_handoff));
    EXPECT_GT(h.counter(Counter::packets_handed_off), 0u);

    // Each translated packet left on its owner's TX queue, and the owner holds the mapping;
    // the external port it chose steers replies back to the same worker.
    std::map<std::pair<uint32_t, uint16_t>, std::pair<unsigned, uint16_t>> external_to_internal;
    for (uint16_t q = 0; q < workers; ++q) {
        for (const Frame& f : h.outside().drain(q)) {
            const uint8_t* ip = f.data() + common::eth::kHeaderLength;
            const uint32_t ext_addr = common::load_be32(ip + ipv4::kSrc);
            const uint16_t ext_port = common::load_be16(ip + ipv4::kMinHeaderLength);
            const auto pool_index = h.worker(q).nat().pool_index(ext_addr);
            ASSERT_TRUE(pool_index.has_value());
            EXPECT_EQ(steering.external_owner(*pool_index, ext_port), q);
            external_to_internal[{ext_addr, ext_port}] = {q, 0};
        }
    }
    EXPECT_EQ(external_to_internal.size(), sent);
    for (unsigned i = 0; i < kSubscribers; ++i) {
        const unsigned owner = steering.subscriber_owner(subscriber(i).value);
        for (unsigned f = 0; f < kFlowsPerSubscriber; ++f) {
            const auto port = static_cast<uint16_t>(30000 + f);
            for (unsigned w = 0; w < workers; ++w) {
                const bool has = h.worker(w)
                                     .nat()
                                     .find_mapping(ipv4::kProtoUdp, subscriber(i).value, port)
                                     .has_value();
                EXPECT_EQ(has, w == owner) << "subscriber " << i << " worker " << w;
            }
            auto ext = h.find_mapping(ipv4::kProtoUdp, subscriber(i).value, port);
            ASSERT_TRUE(ext.has_value());
            external_to_internal[*ext].second = port;
        }
    }

    // Replies arrive on random outside queues and reach the right subscriber endpoint.
    h.reset_counters();
    for (unsigned i = 0; i < kSubscribers; ++i) {
        for (unsigned f = 0; f < kFlowsPerSubscriber; ++f) {
            const auto ext = *h.find_mapping(ipv4::kProtoUdp, subscriber(i).value,
                                             static_cast<uint16_t>(30000 + f));
            h.outside().inject(PacketBuilder()
                                   .ethernet(t().gateway_mac, h.outside().mac())
                                   .ipv4(t().server1, common::Ipv4Address{ext.first})
                                   .udp(53, ext.second)
                                   .payload("a")
                                   .build(),
                               static_cast<uint16_t>(random.below(workers)));
        }
    }
    h.poll(8);
    EXPECT_EQ(h.counter(Counter::out2in_translated), sent);
    std::set<std::pair<uint32_t, uint16_t>> delivered;
    for (uint16_t q = 0; q < workers; ++q) {
        for (const Frame& f : h.inside().drain(q)) {
            const uint8_t* ip = f.data() + common::eth::kHeaderLength;
            const uint32_t dst = common::load_be32(ip + ipv4::kDst);
            EXPECT_EQ(steering.subscriber_owner(dst), q) << "reply sent by a non-owner";
            delivered.insert({dst, common::load_be16(ip + ipv4::kMinHeaderLength + 2)});
            // The frame goes to that subscriber's MAC: every worker learned it from ARP.
            const unsigned i = (dst - subscriber(0).value);
            EXPECT_TRUE(std::equal(f.begin(), f.begin() + 6, subscriber_mac(i).bytes.begin()));
        }
    }
    EXPECT_EQ(delivered.size(), sent);
    for (size_t c = 0; c < common::kCounterCount; ++c) {
        if (common::kCounterNames[c].starts_with("drop_")) {
            EXPECT_EQ(h.counter(static_cast<Counter>(c)), 0u) << common::kCounterNames[c];
        }
    }
}

TEST_P(MultiWorker, ArpLearnedOnOneQueueServesEveryWorker) {
    // resolve_neighbors() gave the gateway's ARP to one queue only; still, a packet of any
    // subscriber leaves at once (no ARP request) whichever worker owns it.
    for (unsigned i = 0; i < kSubscribers; ++i)
        h.inside().inject(
            PacketBuilder()
                .ethernet(subscriber_mac(i), h.inside().mac())
                .ipv4(subscriber(i), t().server2)
                .icmp_echo(common::icmp::kEchoRequest, static_cast<uint16_t>(i + 1), 1)
                .build());
    h.poll(4);
    EXPECT_EQ(h.outside().drain().size(), kSubscribers);
    EXPECT_EQ(h.counter(Counter::arp_requests_sent), 0u);
    EXPECT_EQ(h.counter(Counter::neighbor_packets_queued), 0u);
}

INSTANTIATE_TEST_SUITE_P(Workers, MultiWorker, ::testing::Values(2u, 4u),
                         [](const auto& info) { return std::to_string(info.param) + "workers"; });

}  // namespace
}  // namespace cgn::test

namespace cgn::test {
namespace {

// A full handoff ring drops and counts; the receiving worker never waits for the owner.
TEST(Handoff, FullRingDropsAndCountsWithoutBlocking) {
    DataplaneHarness h(2);
    h.settings().nat.max_sessions = 4096;
    h.start();
    h.resolve_neighbors();
    h.reset_counters();
    const Topology& t = h.topo();
    const dp::Steering steering(2, &h.blocks());
    const unsigned owner = steering.subscriber_owner(t.subscriber1.value);
    const auto receiver = static_cast<uint16_t>(1 - owner);
    constexpr unsigned kPackets = 2000;  // more than a handoff ring (1024 slots) holds
    for (unsigned i = 0; i < kPackets; ++i)
        h.inside().inject(common::PacketBuilder()
                              .ethernet(t.subscriber1_mac, h.inside().mac())
                              .ipv4(t.subscriber1, t.server1)
                              .udp(static_cast<uint16_t>(20000 + i % 100), 53)
                              .build(),
                          receiver);
    // Only the receiver runs: the owner does not drain its ring meanwhile.
    for (int i = 0; i < 200; ++i) h.worker(receiver).poll_once();
    const uint64_t dropped = h.counter(Counter::drop_handoff_full);
    EXPECT_EQ(dropped, kPackets - 1023);  // an rte_ring of 1024 holds 1023
    EXPECT_EQ(h.counter(Counter::packets_handed_off), kPackets);
    for (int i = 0; i < 100; ++i) h.worker(owner).poll_once();
    EXPECT_EQ(h.counter(Counter::in2out_translated) + dropped, kPackets);
    EXPECT_EQ(h.outside().drain().size(), kPackets - dropped);
}

}  // namespace
}  // namespace cgn::test
