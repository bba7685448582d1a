// Workers on threads of their own while the control thread reconfigures them (issue 3): static
// mappings added and removed, timeouts and filtering swapped, for a few seconds, with traffic
// in both directions on every queue. No packet may be mistranslated, and every packet sent is
// either translated or dropped with a counted reason.
//
// The ThreadSanitizer build runs this test too (deploy/test.sh). For it, the test writes no
// packet memory while the workers run: every frame is built before the threads start, the
// traffic thread only queues pointers, and the output is read after the workers have been
// joined. (The ring PMD and the mempool are DPDK libraries built without TSan, so the ordering
// they provide for packet memory would be invisible to it.) What TSan then checks is what this
// issue adds: handoff rings, command rings, the RCU-swapped settings, the explicit-mapping
// table and the pool additions, between the workers and the control thread.

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "common/random.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace ipv4 = common::ipv4;

constexpr unsigned kWorkers = 2;
constexpr uint16_t kDynamicFlows = 32;   // subscriber 1, port 20000+f <-> server1 port 10000+f
constexpr uint16_t kStaticMappings = 8;  // subscriber 2, port 6000+k <-> 198.51.100.3:?
constexpr unsigned kRounds = 150;        // of 32 out + 32 in + 8 probes, 20 ms apart
const common::Ipv4Address kStaticExternal{0xc6336403};  // 198.51.100.3

// External port of static mapping k: half outside the dynamic range (no reservation), half
// inside it (reserved on, and released by, the block's worker through a command).
uint16_t static_port(uint16_t k) {
    return k % 2 ? static_cast<uint16_t>(100 + k) : static_cast<uint16_t>(2000 + 512 * k);
}

TEST(Concurrency, ReconfigurationWhileTrafficFlowsLosesAndMistranslatesNothing) {
    DataplaneHarness h(kWorkers, 32767, 32768);
    h.settings().nat.max_sessions = 4096;
    h.settings().nat.pool = {*common::Ipv4Prefix::parse("198.51.100.0/30")};
    h.start(true, [] { std::this_thread::sleep_for(std::chrono::microseconds(50)); });
    const Topology& t = h.topo();

    // Single-threaded warm-up: neighbours, and one mapping per dynamic flow.
    h.resolve_neighbors();
    auto outbound = [&](uint16_t f) {
        return PacketBuilder()
            .ethernet(t.subscriber1_mac, h.inside().mac())
            .ipv4(t.subscriber1, t.server1)
            .udp(static_cast<uint16_t>(20000 + f), static_cast<uint16_t>(10000 + f))
            .payload("out")
            .build();
    };
    std::map<uint16_t, std::pair<uint32_t, uint16_t>> external;
    for (uint16_t f = 0; f < kDynamicFlows; ++f) h.inside().inject(outbound(f));
    h.poll(4);
    h.outside().drain();
    for (uint16_t f = 0; f < kDynamicFlows; ++f) {
        auto m =
            h.find_mapping(ipv4::kProtoUdp, t.subscriber1.value, static_cast<uint16_t>(20000 + f));
        ASSERT_TRUE(m.has_value());
        external[f] = *m;
    }
    h.reset_counters();

    // Every frame of the run, built now.
    struct Send {
        bool inside;
        rte_mbuf* mbuf;
        uint16_t queue;
    };
    std::vector<std::vector<Send>> rounds(kRounds);
    common::Random random(4);
    uint64_t sent = 0;
    for (auto& round : rounds) {
        for (uint16_t f = 0; f < kDynamicFlows; ++f) {
            round.push_back({true, h.inside().make_mbuf(outbound(f)),
                             static_cast<uint16_t>(random.below(kWorkers))});
            round.push_back({false,
                             h.outside().make_mbuf(
                                 PacketBuilder()
                                     .ethernet(t.gateway_mac, h.outside().mac())
                                     .ipv4(t.server1, common::Ipv4Address{external[f].first})
                                     .udp(static_cast<uint16_t>(10000 + f), external[f].second)
                                     .payload("in")
                                     .build()),
                             static_cast<uint16_t>(random.below(kWorkers))});
        }
        for (uint16_t k = 0; k < kStaticMappings; ++k)
            round.push_back(
                {false,
                 h.outside().make_mbuf(PacketBuilder()
                                           .ethernet(t.gateway_mac, h.outside().mac())
                                           .ipv4(t.server2, kStaticExternal)
                                           .udp(static_cast<uint16_t>(30000 + k), static_port(k))
                                           .payload("probe")
                                           .build()),
                 static_cast<uint16_t>(random.below(kWorkers))});
        sent += round.size();
    }

    std::atomic<bool> stop_workers{false};
    std::vector<std::thread> workers;
    for (unsigned w = 0; w < kWorkers; ++w)
        workers.emplace_back([&h, &stop_workers, w] { h.worker(w).run(stop_workers); });

    std::atomic<bool> stop_control{false};
    uint64_t control_changes = 0;
    std::thread control([&] {
        common::Random choice(3);
        uint16_t k = 0;
        while (!stop_control.load()) {
            const auto m = *common::StaticMapping::parse(
                "udp " + t.subscriber2.to_string() + ":" + std::to_string(6000 + k) +
                " 198.51.100.3:" + std::to_string(static_port(k)));
            h.controller().add_static(m);
            h.controller().set_timeout("udp", 300 + choice.below(300));
            h.controller().set_filtering(choice.below(2)
                                             ? common::FilteringMode::address_dependent
                                             : common::FilteringMode::endpoint_independent);
            h.controller().remove_static(17, t.subscriber2, static_cast<uint16_t>(6000 + k));
            k = static_cast<uint16_t>((k + 1) % kStaticMappings);
            control_changes += 4;
        }
    });

    // The traffic: only pointers move from this thread while the workers run.
    uint64_t queued = 0;
    for (auto& round : rounds) {
        for (const Send& s : round)
            queued += (s.inside ? h.inside() : h.outside()).enqueue(s.mbuf, s.queue);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    stop_control.store(true);
    control.join();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop_workers.store(true, std::memory_order_release);
    for (auto& w : workers) w.join();
    ASSERT_EQ(queued, sent) << "an RX ring overflowed";

    // Now the output can be read.
    uint64_t received = 0, mistranslated = 0, static_arrivals = 0;
    for (const Frame& f : h.outside().drain()) {
        ++received;
        const uint8_t* ip = f.data() + common::eth::kHeaderLength;
        const uint16_t flow =
            static_cast<uint16_t>(common::load_be16(ip + ipv4::kMinHeaderLength + 2) - 10000);
        const std::pair<uint32_t, uint16_t> src{common::load_be32(ip + ipv4::kSrc),
                                                common::load_be16(ip + ipv4::kMinHeaderLength)};
        if (!external.count(flow) || external[flow] != src) ++mistranslated;
    }
    for (const Frame& f : h.inside().drain()) {
        ++received;
        const uint8_t* ip = f.data() + common::eth::kHeaderLength;
        const uint32_t dst = common::load_be32(ip + ipv4::kDst);
        const uint16_t sport = common::load_be16(ip + ipv4::kMinHeaderLength);
        const uint16_t dport = common::load_be16(ip + ipv4::kMinHeaderLength + 2);
        if (sport >= 10000 && sport < 10000 + kDynamicFlows) {
            // A reply of dynamic flow f goes to subscriber 1, port 20000+f.
            if (dst != t.subscriber1.value || dport != 20000 + (sport - 10000)) ++mistranslated;
        } else {
            // A probe of static mapping k goes to subscriber 2, port 6000+k.
            if (dst != t.subscriber2.value || dport != 6000 + (sport - 30000)) ++mistranslated;
            ++static_arrivals;
        }
    }
    std::printf(
        "sent %llu, received %llu, static probes delivered %llu, control changes "
        "%llu, handed off %llu\n",
        static_cast<unsigned long long>(sent), static_cast<unsigned long long>(received),
        static_cast<unsigned long long>(static_arrivals),
        static_cast<unsigned long long>(control_changes),
        static_cast<unsigned long long>(h.counter(Counter::packets_handed_off)));
    EXPECT_EQ(mistranslated, 0u);
    EXPECT_GT(static_arrivals, 0u) << "no probe ever met a static mapping";
    EXPECT_GT(control_changes, 40u) << "the control thread barely ran";
    EXPECT_EQ(h.counter(Counter::rx_inside) + h.counter(Counter::rx_outside), sent);
    // Every packet is out, or dropped for the one expected reason: a probe of a static mapping
    // that was not there at that moment.
    uint64_t other_drops = 0;
    for (size_t c = 0; c < common::kCounterCount; ++c) {
        const auto name = common::kCounterNames[c];
        if (name.starts_with("drop_") && name != "drop_out2in_no_mapping")
            other_drops += h.counter(static_cast<Counter>(c));
    }
    EXPECT_EQ(other_drops, 0u);
    EXPECT_EQ(received + h.counter(Counter::drop_out2in_no_mapping), sent);
    EXPECT_GT(h.counter(Counter::packets_handed_off), 0u);
}

}  // namespace
}  // namespace cgn::test
