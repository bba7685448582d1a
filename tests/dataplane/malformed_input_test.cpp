// Bad input gets a counted drop, never a crash or a silent loss: thousands of frames mutated
// from valid ones (bit flips, truncation, random lengths, random bytes) go through the worker
// one at a time, and each must move at least one counter that accounts for a frame's fate.
// The sanitizer build runs this too, so an out-of-bounds read on a short frame fails it.

#include <gtest/gtest.h>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "common/random.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;

// The counters a received frame ends in: dropped with a reason, translated, or answered.
uint64_t fates(const DataplaneHarness& h) {
    uint64_t sum = h.counter(Counter::in2out_translated) + h.counter(Counter::out2in_translated) +
                   h.counter(Counter::icmp_echo_answered) +
                   h.counter(Counter::arp_requests_answered) +
                   h.counter(Counter::arp_entries_learned);
    for (size_t i = 0; i < common::kCounterCount; ++i)
        if (common::kCounterNames[i].starts_with("drop_"))
            sum += h.counter(static_cast<Counter>(i));
    return sum;
}

TEST(MalformedInput, EveryFrameIsAccountedForAndNothingCrashes) {
    DataplaneHarness h;
    h.start();
    h.resolve_neighbors();
    const Topology& t = h.topo();
    const auto pool_addr = *common::Ipv4Address::parse("198.51.100.1");
    std::vector<Frame> inside_templates = {
        PacketBuilder()
            .ethernet(t.subscriber1_mac, h.inside().mac())
            .ipv4(t.subscriber1, t.server1)
            .udp(40000, 53)
            .payload("query")
            .build(),
        PacketBuilder()
            .ethernet(t.subscriber2_mac, h.inside().mac())
            .ipv4(t.subscriber2, t.server2)
            .tcp(50000, 443, common::tcp::kSyn)
            .build(),
        PacketBuilder()
            .ethernet(t.subscriber1_mac, h.inside().mac())
            .ipv4(t.subscriber1, t.server1)
            .icmp_echo(common::icmp::kEchoRequest, 77, 1)
            .build(),
        PacketBuilder()
            .ethernet(t.subscriber1_mac, h.inside().mac())
            .ipv4(t.subscriber1, t.inside.address)
            .icmp_echo(common::icmp::kEchoRequest, 77, 1)
            .build(),
        arp_request(t.subscriber1_mac, t.subscriber1, t.inside.address),
    };
    std::vector<Frame> outside_templates = {
        PacketBuilder()
            .ethernet(t.gateway_mac, h.outside().mac())
            .ipv4(t.server1, pool_addr)
            .udp(53, 40000)
            .build(),
        PacketBuilder()
            .ethernet(t.gateway_mac, h.outside().mac())
            .ipv4(t.server1, pool_addr)
            .ipv4_options({1, 1, 1, 1})
            .tcp(443, 50000, common::tcp::kAck_)
            .build(),
        arp_request(t.gateway_mac, t.gateway, pool_addr),
    };

    common::Random random(2026);
    const int kFrames = 20000;
    for (int n = 0; n < kFrames; ++n) {
        const bool inside = random.below(2) == 0;
        const auto& templates = inside ? inside_templates : outside_templates;
        Frame f = templates[random.below(static_cast<uint32_t>(templates.size()))];
        switch (random.below(4)) {
            case 0:  // flip a few bits anywhere (the Ethernet header included)
                for (uint32_t k = 0, flips = 1 + random.below(4); k < flips; ++k)
                    f[random.below(static_cast<uint32_t>(f.size()))] ^=
                        static_cast<uint8_t>(1u << random.below(8));
                break;
            case 1:  // truncate, keeping the Ethernet destination so it is not filtered at L2
                f.resize(6 + random.below(static_cast<uint32_t>(f.size()) - 5));
                break;
            case 2:  // overwrite a run of header bytes after the Ethernet header
                for (size_t i = 14 + random.below(30), end = i + random.below(12);
                     i < end && i < f.size(); ++i)
                    f[i] = static_cast<uint8_t>(random.below(256));
                break;
            default:  // random bytes of a random length behind a valid Ethernet header
                f.resize(14 + random.below(200));
                for (size_t i = 14; i < f.size(); ++i)
                    f[i] = static_cast<uint8_t>(random.below(256));
                if (random.below(2)) f[12] = 0x08, f[13] = random.below(2) ? 0x00 : 0x06;
                break;
        }
        if (f.empty()) f.push_back(0);
        const uint64_t before = fates(h);
        (inside ? h.inside() : h.outside()).inject(f);
        h.poll();
        ASSERT_GT(fates(h), before) << "frame " << n << " vanished without a counter:\n" << hex(f);
        h.inside().drain();
        h.outside().drain();
        // Let sessions created by lucky mutations age out now and then.
        if (n % 1000 == 999) h.clock().advance_ms(400'000);
    }
    EXPECT_EQ(h.counter(Counter::rx_inside) + h.counter(Counter::rx_outside),
              static_cast<uint64_t>(kFrames) + 3);  // + the three ARP of resolve_neighbors
}

}  // namespace
}  // namespace cgn::test
