// The control channel without blocking (dataplane/io/control_channel.hpp): commands submitted
// and completed through rings, a bounded backlog, snapshots published asynchronously with two
// grace periods per batch, pool additions never skipped. Single-threaded tests poll the real
// workers from the test's thread, so every step is deterministic; the Concurrency* tests run
// the workers on threads of their own (also under ThreadSanitizer, see deploy/test.sh).

#include <gtest/gtest.h>

#include <pthread.h>
#include <sched.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <thread>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
using dp::ControlChannel;
using dp::WorkerCommand;
namespace ipv4 = common::ipv4;

common::Ipv4Prefix prefix(const char* text) { return *common::Ipv4Prefix::parse(text); }

// A snapshot like the harness's settings, with a UDP timeout of its own to tell it apart.
std::unique_ptr<dp::RuntimeSettings> snapshot(DataplaneHarness& h, uint32_t udp_s = 300) {
    auto s = std::make_unique<dp::RuntimeSettings>();
    s->filtering = h.settings().nat.filtering;
    s->timeouts = h.settings().nat.timeouts;
    s->timeouts.udp_s = udp_s;
    s->limits = h.settings().nat.limits;
    s->block_hold_down_ms = h.settings().nat.block_hold_down_ms;
    return s;
}

std::unique_ptr<dp::RuntimeSettings> with_pool(DataplaneHarness& h, const char* text) {
    auto s = snapshot(h);
    for (unsigned w = 0; w < h.workers(); ++w)
        s->pool_additions.push_back(dp::AddressPool::build_extension({prefix(text)}, h.blocks()));
    return s;
}

std::unique_ptr<WorkerCommand> command(WorkerCommand::Kind kind, uint32_t addr, uint16_t port,
                                       uint64_t tag = 0) {
    auto c = std::make_unique<WorkerCommand>();
    c->kind = kind;
    c->protocol = ipv4::kProtoUdp;
    c->addr = addr;
    c->port = port;
    c->tag = tag;
    return c;
}

// EAL pinned the test's main thread to lcore 0 and threads inherit that: this lets the
// calling thread run on every core, so that workers and control thread really overlap.
void run_anywhere() {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (unsigned c = 0; c < std::thread::hardware_concurrency() && c < CPU_SETSIZE; ++c)
        CPU_SET(c, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

// Polls channel and workers in turn until everything published is visible.
void settle(DataplaneHarness& h) {
    for (int i = 0; i < 10 && h.channel().visible_generation() < h.channel().published_generation();
         ++i) {
        h.channel().poll();
        h.poll();
        h.channel().poll();
    }
    ASSERT_EQ(h.channel().visible_generation(), h.channel().published_generation());
}

TEST(ControlChannel, SubmitReturnsAtOnceAndCompletesOnlyAfterTheWorkerPolled) {
    DataplaneHarness h;
    h.start(true);
    h.resolve_neighbors();
    const Topology& t = h.topo();
    // A mapping, so that the worker holds a port block.
    h.inside().inject(PacketBuilder()
                          .ethernet(t.subscriber1_mac, h.inside().mac())
                          .ipv4(t.subscriber1, t.server1)
                          .udp(4000, 53)
                          .payload("q")
                          .build());
    h.poll();
    ASSERT_EQ(h.outside().drain().size(), 1u);
    const auto mapped = h.find_mapping(ipv4::kProtoUdp, t.subscriber1.value, 4000);
    ASSERT_TRUE(mapped.has_value());
    const auto [ext_addr, ext_port] = *mapped;
    settle(h);  // nothing of the start left in flight: poll() counts only the commands
    // Another port of the same block, free.
    auto free_port = static_cast<uint16_t>(ext_port + 1);
    if (h.blocks().block_of(free_port) != h.blocks().block_of(ext_port))
        free_port = static_cast<uint16_t>(ext_port - 1);
    ASSERT_EQ(h.blocks().block_of(free_port), h.blocks().block_of(ext_port));

    ControlChannel& ch = h.channel();
    std::vector<WorkerCommand> completed;
    auto record = [&](const WorkerCommand& c) { completed.push_back(c); };
    using Kind = WorkerCommand::Kind;
    ASSERT_TRUE(ch.submit(0, command(Kind::reserve_port, ext_addr, ext_port, 10), record));
    ASSERT_TRUE(ch.submit(0, command(Kind::reserve_port, ext_addr, free_port, 11), record));
    // Not a pool address: no worker holds a block of it.
    ASSERT_TRUE(ch.submit(0, command(Kind::reserve_port, t.server2.value, 1000, 12), record));
    EXPECT_EQ(ch.outstanding(), 3u);
    // The worker has not looked: nothing completes however often the channel is polled.
    for (int i = 0; i < 3; ++i) EXPECT_EQ(ch.poll(), 0u);
    EXPECT_TRUE(completed.empty());

    h.poll();
    EXPECT_TRUE(completed.empty()) << "a completion ran outside poll()";
    EXPECT_EQ(ch.poll(), 3u);
    ASSERT_EQ(completed.size(), 3u);
    EXPECT_EQ(completed[0].tag, 10u);
    EXPECT_EQ(completed[0].result, dp::NatEngine::kInUse);
    EXPECT_EQ(completed[1].tag, 11u);
    EXPECT_EQ(completed[1].result, dp::NatEngine::kReserved);
    EXPECT_EQ(completed[1].port, free_port);  // the arguments come back as they were
    EXPECT_EQ(completed[2].tag, 12u);
    EXPECT_EQ(completed[2].result, dp::NatEngine::kNotHeld);
    EXPECT_EQ(ch.outstanding(), 0u);

    // The blocking wrapper on the same path: the reservation is there, so it is released.
    WorkerCommand release;
    release.kind = Kind::release_port;
    release.protocol = ipv4::kProtoUdp;
    release.addr = ext_addr;
    release.port = free_port;
    EXPECT_EQ(ch.run(0, release, [&] { h.poll(); }), 1);
    WorkerCommand again = release;
    again.kind = Kind::reserve_port;
    EXPECT_EQ(ch.run(0, again, [&] { h.poll(); }), dp::NatEngine::kReserved);
    // A worker that never polls: run() gives up, and the command completes later.
    EXPECT_EQ(ch.run(
                  0, release, [] {}, std::chrono::milliseconds(5)),
              -1);
    EXPECT_EQ(ch.outstanding(), 1u);
    h.poll();
    ch.poll();
    EXPECT_EQ(ch.outstanding(), 0u);
    EXPECT_EQ(ch.done_ring_full(), 0u);
}

TEST(ControlChannel, BacklogKeepsEachWorkersOrderAndIsBounded) {
    DataplaneHarness h(2);
    h.start(true);
    ControlChannel& ch = h.channel();
    const unsigned per_worker = ControlChannel::kCommandRingCapacity +
                                static_cast<unsigned>(ControlChannel::kBacklogCapacity);
    std::vector<std::vector<uint64_t>> tags(2);
    uint64_t tag = 0;
    // Interleaved: drop_dynamic_mapping of endpoints nobody has (done, changes nothing).
    for (unsigned i = 0; i < per_worker; ++i) {
        for (unsigned w = 0; w < 2; ++w) {
            const uint64_t mine = tag++;
            ASSERT_TRUE(ch.submit(w,
                                  command(WorkerCommand::Kind::drop_dynamic_mapping, 0x64400063,
                                          static_cast<uint16_t>(i), mine),
                                  [&tags, w](const WorkerCommand& c) {
                                      EXPECT_EQ(c.result, 1);
                                      tags[w].push_back(c.tag);
                                  }))
                << i;
        }
    }
    EXPECT_EQ(ch.outstanding(), 2u * per_worker);
    // Ring and backlog full: refused, nothing queued.
    EXPECT_FALSE(ch.submit(0, command(WorkerCommand::Kind::drop_dynamic_mapping, 1, 1), {}));
    EXPECT_EQ(ch.outstanding(), 2u * per_worker);

    // One worker loop runs a bounded number of commands.
    h.poll();
    ch.poll();
    EXPECT_EQ(tags[0].size(), dp::Worker::kCommandsPerLoop);
    EXPECT_EQ(tags[1].size(), dp::Worker::kCommandsPerLoop);
    // Room again (the backlog moved on into the ring).
    EXPECT_TRUE(ch.submit(0, command(WorkerCommand::Kind::drop_dynamic_mapping, 1, 1, tag++),
                          [&](const WorkerCommand& c) { tags[0].push_back(c.tag); }));
    int loops = 1;
    while (ch.outstanding() != 0 && loops < 1000) {
        h.poll();
        ch.poll();
        ++loops;
    }
    EXPECT_EQ(ch.outstanding(), 0u);
    EXPECT_EQ(loops, static_cast<int>((per_worker + 1 + dp::Worker::kCommandsPerLoop - 1) /
                                      dp::Worker::kCommandsPerLoop));
    ASSERT_EQ(tags[0].size(), per_worker + 1);
    ASSERT_EQ(tags[1].size(), per_worker);
    for (unsigned w = 0; w < 2; ++w)
        for (size_t i = 1; i < tags[w].size(); ++i)
            ASSERT_LT(tags[w][i - 1], tags[w][i]) << "worker " << w << " out of order at " << i;
    EXPECT_EQ(ch.done_ring_full(), 0u);
}

// One poll() takes every completion the worker has put out, not one burst of them: the PCP
// service concludes (and commits) all the answers that came in one step. Without the loop in
// collect_completions, poll() returns 64 and the rest wait for later steps.
TEST(ControlChannel, OnePollCollectsEveryCompletionWaiting) {
    DataplaneHarness h;
    h.start(true);
    settle(h);
    ControlChannel& ch = h.channel();
    const unsigned n = 7 * dp::Worker::kCommandsPerLoop;  // several of poll()'s bursts
    unsigned completed = 0;
    for (unsigned i = 0; i < n; ++i)
        ASSERT_TRUE(ch.submit(0,
                              command(WorkerCommand::Kind::drop_dynamic_mapping, 0x64400063,
                                      static_cast<uint16_t>(i), i),
                              [&completed](const WorkerCommand&) { ++completed; }));
    for (unsigned loop = 0; loop < 7; ++loop) h.poll();  // the worker runs them all
    EXPECT_EQ(completed, 0u);
    EXPECT_EQ(ch.poll(), n);
    EXPECT_EQ(completed, n);
    EXPECT_EQ(ch.outstanding(), 0u);
}

TEST(ControlChannel, CommandsBehindAnUnfinishedDropAddressWaitForIt) {
    DataplaneHarness h;
    h.settings().nat.max_sessions = 1u << 16;  // a drop_address pass takes 8 loops
    h.start(true);
    ControlChannel& ch = h.channel();
    std::vector<uint64_t> order;
    auto record = [&](const WorkerCommand& c) { order.push_back(c.tag); };
    ASSERT_TRUE(ch.submit(0, command(WorkerCommand::Kind::drop_address, 0x6440000b, 0, 0), record));
    for (uint64_t i = 1; i <= 5; ++i)
        ASSERT_TRUE(ch.submit(
            0, command(WorkerCommand::Kind::drop_dynamic_mapping, 0x6440000c, 7, i), record));
    for (int loop = 1; loop < 8; ++loop) {
        h.poll();
        ch.poll();
        EXPECT_TRUE(order.empty()) << "loop " << loop;
    }
    h.poll();
    ch.poll();
    EXPECT_EQ(order, (std::vector<uint64_t>{0, 1, 2, 3, 4, 5}));
}

class ControlChannelPublication : public ::testing::TestWithParam<unsigned> {
protected:
    ControlChannelPublication() : h(GetParam()) {}
    DataplaneHarness h;
};

TEST_P(ControlChannelPublication, VisibleOnlyAfterTwoGracePeriodsAndFreedAfterOne) {
    h.start(true);
    settle(h);
    ControlChannel& ch = h.channel();
    const uint64_t started = ch.grace_periods_started();
    int visible_calls = 0;
    const uint64_t before = ch.visible_generation();
    const uint64_t g = ch.publish_async(snapshot(h, 301), [&] { ++visible_calls; });
    // Returned at once: current for the workers, visible to none yet.
    EXPECT_EQ(g, before + 1);
    EXPECT_EQ(ch.settings()->generation, g);
    EXPECT_EQ(ch.settings()->timeouts.udp_s, 301u);
    EXPECT_EQ(ch.visible_generation(), before);
    EXPECT_EQ(ch.retired_snapshots(), 1u);
    ch.poll();  // the grace period starts
    EXPECT_EQ(ch.grace_periods_started(), started + 1);
    EXPECT_EQ(ch.retired_snapshots(), 1u);

    // Every worker but one polls: the old snapshot must stay.
    for (unsigned w = 0; w + 1 < h.workers(); ++w) {
        h.worker(w).poll_once();
        ch.poll();
        EXPECT_EQ(ch.retired_snapshots(), 1u);
        EXPECT_EQ(ch.visible_generation(), before);
    }
    // The last one: one grace period is over; the old snapshot goes, and the second starts.
    // Not visible yet: a worker may have read the old snapshot in that loop.
    h.worker(h.workers() - 1).poll_once();
    ch.poll();
    EXPECT_EQ(ch.retired_snapshots(), 0u);
    EXPECT_EQ(ch.visible_generation(), before) << "visible after a single grace period";
    EXPECT_EQ(visible_calls, 0);
    EXPECT_EQ(ch.grace_periods_started(), started + 2);

    h.poll();
    EXPECT_EQ(visible_calls, 0) << "a callback ran outside poll()";
    ch.poll();
    EXPECT_EQ(ch.visible_generation(), g);
    EXPECT_EQ(visible_calls, 1);
    // Nothing more to cover: no grace period starts while nothing changes.
    for (int i = 0; i < 3; ++i) {
        h.poll();
        ch.poll();
    }
    EXPECT_EQ(ch.grace_periods_started(), started + 2);
}

TEST_P(ControlChannelPublication, AHundredPublicationsInOneIterationCostTwoGracePeriods) {
    h.start(true);
    settle(h);
    ControlChannel& ch = h.channel();
    std::vector<int> order;
    uint64_t started = ch.grace_periods_started();
    uint64_t last = 0;
    for (int i = 0; i < 100; ++i)
        last = ch.publish_async(snapshot(h, static_cast<uint32_t>(300 + i)),
                                [&order, i] { order.push_back(i); });
    EXPECT_EQ(ch.retired_snapshots(), 100u);
    int rounds = 0;
    while (ch.visible_generation() < last && rounds < 10) {
        ch.poll();
        h.poll();
        ++rounds;
        ch.poll();
    }
    EXPECT_EQ(ch.visible_generation(), last);
    EXPECT_EQ(ch.grace_periods_started() - started, 2u);
    EXPECT_EQ(rounds, 2);
    ASSERT_EQ(order.size(), 100u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
    EXPECT_EQ(ch.retired_snapshots(), 0u);
    EXPECT_EQ(ch.settings()->timeouts.udp_s, 399u);

    // A second batch made while a grace period runs: it waits for the next one, so the two
    // batches cost three grace periods together.
    started = ch.grace_periods_started();
    order.clear();
    for (int i = 0; i < 50; ++i) ch.publish_async(snapshot(h), [&order, i] { order.push_back(i); });
    ch.poll();  // starts the grace period of the first batch
    h.poll();
    for (int i = 50; i < 100; ++i)
        last = ch.publish_async(snapshot(h), [&order, i] { order.push_back(i); });
    rounds = 0;
    while (ch.visible_generation() < last && rounds < 10) {
        ch.poll();
        h.poll();
        ++rounds;
        ch.poll();
    }
    EXPECT_EQ(ch.visible_generation(), last);
    EXPECT_LE(ch.grace_periods_started() - started, 3u);
    ASSERT_EQ(order.size(), 100u);
    for (int i = 0; i < 100; ++i) EXPECT_EQ(order[i], i);
}

TEST_P(ControlChannelPublication, BackToBackPoolAdditionsReachEveryWorker) {
    h.start(true);
    h.resolve_neighbors();
    settle(h);
    ControlChannel& ch = h.channel();
    const uint64_t a = ch.publish_async(with_pool(h, "198.51.100.8/30"));
    const uint64_t b = ch.publish_async(with_pool(h, "198.51.100.12/30"));
    const uint64_t c = ch.publish_async(snapshot(h, 333));  // behind them, in order
    // The second waits until every worker has adopted the first; the third behind it.
    EXPECT_EQ(ch.settings()->generation, a);
    EXPECT_EQ(ch.waiting_publications(), 2u);
    EXPECT_EQ(ch.published_generation(), c);
    int rounds = 0;
    while (ch.visible_generation() < c && rounds < 20) {
        ch.poll();
        h.poll();
        ++rounds;
        ch.poll();
    }
    ASSERT_EQ(ch.visible_generation(), c);
    EXPECT_GE(ch.visible_generation(), b);
    EXPECT_EQ(ch.settings()->timeouts.udp_s, 333u);
    EXPECT_EQ(ch.waiting_publications(), 0u);
    for (unsigned w = 0; w < h.workers(); ++w)
        for (uint32_t addr = 0xc6336408; addr < 0xc6336410; ++addr)
            EXPECT_TRUE(h.worker(w).nat().is_pool_address(addr)) << "worker " << w << " " << addr;

    // Frames to every new address, on every queue: each reaches the NAT (no mapping there
    // yet), none is refused as not ours.
    const Topology& t = h.topo();
    h.reset_counters();
    uint64_t sent = 0;
    for (uint16_t q = 0; q < h.workers(); ++q)
        for (uint32_t addr = 0xc6336408; addr < 0xc6336410; ++addr, ++sent)
            h.outside().inject(PacketBuilder()
                                   .ethernet(t.gateway_mac, h.outside().mac())
                                   .ipv4(t.server1, common::Ipv4Address{addr})
                                   .udp(53, 5000)
                                   .payload("r")
                                   .build(),
                               q);
    h.poll(3);
    EXPECT_EQ(h.counter(Counter::drop_ipv4_martian), 0u);
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), sent);
}

TEST_P(ControlChannelPublication, AnOfflineWorkerHoldsNothingUp) {
    h.start(true);
    settle(h);
    ControlChannel& ch = h.channel();
    ch.offline(h.workers() - 1);  // as Worker::run does when it stops
    const uint64_t g = ch.publish_async(snapshot(h, 302));
    for (int round = 0; round < 3; ++round) {
        ch.poll();
        for (unsigned w = 0; w + 1 < h.workers(); ++w) h.worker(w).poll_once();
        ch.poll();
    }
    EXPECT_EQ(ch.visible_generation(), g);
    EXPECT_EQ(ch.retired_snapshots(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Workers, ControlChannelPublication, ::testing::Values(1u, 2u),
                         [](const auto& info) { return std::to_string(info.param) + "_workers"; });

// ---- workers on threads ----

// The control thread submits 10000 commands and publishes 1000 snapshots (two with pool
// additions) without waiting, while frames flow both ways on every queue. As in
// concurrency_test.cpp, the frames are built before the threads start and read after they
// are joined, so that ThreadSanitizer sees only what crosses through cgn's own code.
TEST(ConcurrencyChannel, CommandsAndPublicationsWhileTrafficFlows) {
    constexpr unsigned kWorkers = 2;
    constexpr uint16_t kFlows = 32;
    constexpr unsigned kRounds = 60;
    constexpr uint64_t kCommands = 10000;
    constexpr uint64_t kPublications = 1000;
    DataplaneHarness h(kWorkers, 16383, 16384);
    h.settings().nat.max_sessions = 4096;
    h.start(true, [] { std::this_thread::sleep_for(std::chrono::microseconds(50)); });
    const Topology& t = h.topo();
    ControlChannel& ch = h.channel();

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
    for (uint16_t f = 0; f < kFlows; ++f) h.inside().inject(outbound(f));
    h.poll(4);
    h.outside().drain();
    for (uint16_t f = 0; f < kFlows; ++f) {
        auto m =
            h.find_mapping(ipv4::kProtoUdp, t.subscriber1.value, static_cast<uint16_t>(20000 + f));
        ASSERT_TRUE(m.has_value());
        external[f] = *m;
    }
    settle(h);
    h.reset_counters();

    struct Send {
        bool inside;
        rte_mbuf* mbuf;
        uint16_t queue;
    };
    std::vector<std::vector<Send>> rounds(kRounds);
    uint64_t sent = 0;
    for (unsigned r = 0; r < kRounds; ++r) {
        for (uint16_t f = 0; f < kFlows; ++f) {
            const auto q = static_cast<uint16_t>((r + f) % kWorkers);
            rounds[r].push_back({true, h.inside().make_mbuf(outbound(f)), q});
            rounds[r].push_back({false,
                                 h.outside().make_mbuf(
                                     PacketBuilder()
                                         .ethernet(t.gateway_mac, h.outside().mac())
                                         .ipv4(t.server1, common::Ipv4Address{external[f].first})
                                         .udp(static_cast<uint16_t>(10000 + f), external[f].second)
                                         .payload("in")
                                         .build()),
                                 q});
        }
        sent += rounds[r].size();
    }
    // The snapshots with pool additions, built before the run too (any time would do: the
    // control thread allocates).
    auto pool_a = with_pool(h, "198.51.100.8/30");
    auto pool_b = with_pool(h, "198.51.100.12/30");

    std::atomic<bool> stop_workers{false};
    std::vector<std::thread> workers;
    for (unsigned w = 0; w < kWorkers; ++w)
        workers.emplace_back([&h, &stop_workers, w] {
            run_anywhere();
            h.worker(w).run(stop_workers);
        });
    std::atomic<unsigned> rounds_sent{0};
    uint64_t queued = 0;
    std::thread traffic([&] {
        for (auto& round : rounds) {
            for (const Send& s : round)
                queued += (s.inside ? h.inside() : h.outside()).enqueue(s.mbuf, s.queue);
            rounds_sent.fetch_add(1);
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    });

    // This thread is the control thread: it never waits on a worker.
    std::vector<std::vector<uint64_t>> tags(kWorkers);
    uint64_t wrong_results = 0, submitted = 0, refused = 0, published = 0, visible_calls = 0;
    uint64_t visible_out_of_order = 0;
    const uint64_t first_grace = ch.grace_periods_started();
    const auto begin = std::chrono::steady_clock::now();
    const auto deadline = begin + std::chrono::seconds(60);
    while ((submitted < kCommands || published < kPublications || ch.outstanding() != 0 ||
            ch.visible_generation() < ch.published_generation()) &&
           std::chrono::steady_clock::now() < deadline) {
        // Spread over the traffic: the share of the commands for the rounds sent so far.
        const uint64_t allowed =
            std::min<uint64_t>(kCommands, kCommands * (rounds_sent.load() + 1) / kRounds);
        for (int i = 0; i < 64 && submitted < allowed; ++i) {
            const auto w = static_cast<unsigned>(submitted % kWorkers);
            // Even: an endpoint nobody maps (done, 1); odd: an address outside the pool
            // (kNotHeld, 2). Neither changes what the traffic meets.
            const bool drop = submitted % 4 < 2;
            auto c = command(drop ? WorkerCommand::Kind::drop_dynamic_mapping
                                  : WorkerCommand::Kind::reserve_port,
                             drop ? 0x64400063 : 0xc0000263, static_cast<uint16_t>(submitted),
                             submitted);
            const int expected = drop ? 1 : dp::NatEngine::kNotHeld;
            if (!ch.submit(w, std::move(c), [&, w, expected](const WorkerCommand& done) {
                    tags[w].push_back(done.tag);
                    if (done.result != expected) ++wrong_results;
                })) {
                ++refused;
                break;
            }
            ++submitted;
            if (submitted % (kCommands / kPublications) == 0 && published < kPublications) {
                std::unique_ptr<dp::RuntimeSettings> next;
                if (published == kPublications / 3)
                    next = std::move(pool_a);
                else if (published == kPublications / 3 + 1)
                    next = std::move(pool_b);
                else
                    next = snapshot(h, static_cast<uint32_t>(300 + published % 200));
                ch.publish_async(std::move(next), [&, n = published] {
                    if (n != visible_calls) ++visible_out_of_order;
                    ++visible_calls;
                });
                ++published;
            }
        }
        if (ch.poll() == 0) std::this_thread::yield();
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    traffic.join();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    stop_workers.store(true, std::memory_order_release);
    for (auto& w : workers) w.join();
    ch.poll();

    const uint64_t grace = ch.grace_periods_started() - first_grace;
    std::printf(
        "%llu commands and %llu publications in %.3f s (%llu grace periods, "
        "%llu submissions refused for a full backlog)\n",
        static_cast<unsigned long long>(submitted), static_cast<unsigned long long>(published),
        seconds, static_cast<unsigned long long>(grace), static_cast<unsigned long long>(refused));
    EXPECT_EQ(submitted, kCommands);
    EXPECT_EQ(published, kPublications);
    EXPECT_EQ(ch.outstanding(), 0u);
    EXPECT_EQ(tags[0].size() + tags[1].size(), kCommands) << "a completion was lost";
    for (unsigned w = 0; w < kWorkers; ++w)
        for (size_t i = 1; i < tags[w].size(); ++i)
            ASSERT_LT(tags[w][i - 1], tags[w][i]) << "worker " << w << " out of order";
    EXPECT_EQ(wrong_results, 0u);
    EXPECT_EQ(visible_calls, kPublications);
    EXPECT_EQ(visible_out_of_order, 0u);
    EXPECT_EQ(ch.visible_generation(), ch.published_generation());
    EXPECT_EQ(ch.retired_snapshots(), 0u);
    EXPECT_LT(grace, 2 * kPublications) << "publications were not batched";
    EXPECT_EQ(ch.done_ring_full(), 0u);
    for (unsigned w = 0; w < kWorkers; ++w)
        for (uint32_t addr = 0xc6336408; addr < 0xc6336410; ++addr)
            EXPECT_TRUE(h.worker(w).nat().is_pool_address(addr)) << "worker " << w << " " << addr;

    // The traffic: every frame translated correctly, none dropped.
    ASSERT_EQ(queued, sent) << "an RX ring overflowed";
    uint64_t received = 0, mistranslated = 0;
    for (const Frame& f : h.outside().drain()) {
        ++received;
        const uint8_t* ip = f.data() + common::eth::kHeaderLength;
        const auto flow =
            static_cast<uint16_t>(common::load_be16(ip + ipv4::kMinHeaderLength + 2) - 10000);
        const std::pair<uint32_t, uint16_t> src{common::load_be32(ip + ipv4::kSrc),
                                                common::load_be16(ip + ipv4::kMinHeaderLength)};
        if (!external.count(flow) || external[flow] != src) ++mistranslated;
    }
    for (const Frame& f : h.inside().drain()) {
        ++received;
        const uint8_t* ip = f.data() + common::eth::kHeaderLength;
        const uint16_t sport = common::load_be16(ip + ipv4::kMinHeaderLength);
        const uint16_t dport = common::load_be16(ip + ipv4::kMinHeaderLength + 2);
        if (common::load_be32(ip + ipv4::kDst) != t.subscriber1.value ||
            dport != 20000 + (sport - 10000))
            ++mistranslated;
    }
    EXPECT_EQ(mistranslated, 0u);
    EXPECT_EQ(received, sent);
}

// Figures, not limits: a command's round trip through one worker on its own thread (idle
// ports), one at a time and with the ring kept full, and a publication's until visible.
TEST(ConcurrencyChannel, RoundTripFigures) {
    DataplaneHarness h(1);
    h.start(true);
    ControlChannel& ch = h.channel();
    settle(h);
    std::atomic<bool> stop{false};
    // EAL pinned this thread (the control thread here) to lcore 0, and threads inherit that:
    // the worker gets a core of its own when there is one, else the two take turns.
    const unsigned cores = std::thread::hardware_concurrency();
    std::thread worker([&] {
        if (cores > 1) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(1, &set);
            pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        }
        h.worker(0).run(stop);
    });
    using Clock = std::chrono::steady_clock;
    const auto span = std::chrono::milliseconds(300);

    uint64_t one_by_one = 0;
    auto begin = Clock::now();
    while (Clock::now() - begin < span) {
        bool completed = false;
        ch.submit(0, command(WorkerCommand::Kind::drop_dynamic_mapping, 0x64400063, 1),
                  [&](const WorkerCommand&) { completed = true; });
        while (!completed) ch.poll();
        ++one_by_one;
    }
    const double sequential_s = std::chrono::duration<double>(Clock::now() - begin).count();

    uint64_t pipelined = 0;
    begin = Clock::now();
    while (Clock::now() - begin < span) {
        while (ch.outstanding() < ControlChannel::kCommandRingCapacity)
            ch.submit(0, command(WorkerCommand::Kind::drop_dynamic_mapping, 0x64400063, 1),
                      [&](const WorkerCommand&) { ++pipelined; });
        ch.poll();
    }
    const double pipelined_s = std::chrono::duration<double>(Clock::now() - begin).count();
    while (ch.outstanding() != 0) ch.poll();

    uint64_t publications = 0;
    begin = Clock::now();
    while (Clock::now() - begin < span) {
        const uint64_t g = ch.publish_async(snapshot(h));
        while (ch.visible_generation() < g) ch.poll();
        ++publications;
    }
    const double publish_s = std::chrono::duration<double>(Clock::now() - begin).count();
    stop.store(true, std::memory_order_release);
    worker.join();

    std::printf("%s; ", cores > 1 ? "worker on core 1, control on core 0"
                                  : "worker and control share one core");
    std::printf(
        "command round trip one at a time: %.0f/s (%.2f us each); ring kept full: "
        "%.0f/s; publication until visible: %.0f/s (%.2f us each)\n",
        one_by_one / sequential_s, sequential_s * 1e6 / one_by_one, pipelined / pipelined_s,
        publications / publish_s, publish_s * 1e6 / publications);
    EXPECT_GT(one_by_one, 0u);
    EXPECT_GT(pipelined, 0u);
    EXPECT_GT(publications, 0u);
}

}  // namespace
}  // namespace cgn::test
