// cgn-pipeline-bench: the worker's translation path on pre-built mbufs, no NIC.
//
// The real dp::Worker (NAT engine on rte_hash, neighbour tables, the poll loop) runs on two
// ethdev ports backed by rte_rings (net_ring PMD), on the main lcore, with EAL in --no-huge
// mode, exactly as the dataplane tests run it. Each round the bench writes the frames of a batch
// of flows into a fixed set of mbufs, puts them on a port's RX ring, calls Worker::poll_once()
// until the ring is empty, and takes what the worker sent from the other port's TX ring. Only
// the poll_once() calls are timed (TSC), so filling the rings and restoring the frames is not
// counted. A plain forwarder (RX burst, MAC swap, TX burst, on the same rings and batches) is
// the baseline every scenario is compared with.
//
// Scenarios:
//   plain forward         rte_eth_rx_burst / MAC swap / rte_eth_tx_burst, no translation
//   in2out established    UDP, every packet hits an existing session (1K sessions, then 1M)
//   out2in established    the replies of the same flows (1K, 1M)
//   new sessions          every packet creates a mapping and a session (fills the 1M table)
//   handoff               in2out established, 1K sessions, on two workers polled in turn from
//                         this one thread (as the dataplane tests do): every packet on its
//                         owner's queue, then every packet on the other worker's queue (handed
//                         off once through the SP/SC ring). The rounds of the two alternate, so
//                         both see the same machine; the difference is the cost of a handoff.
//
// Every scenario checks itself: the frames that come out are translated correctly (checked
// byte by byte on a sample of rounds), as many come out as went in, and the worker's counters
// moved exactly as they should (translated == sent, no drop counter moved). Any mismatch makes
// the bench exit non-zero, so a broken path cannot print a good figure.

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/address.hpp"
#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/clock.hpp"
#include "common/counters.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "common/random.hpp"
#include "dataplane/io/handoff.hpp"
#include "dataplane/io/ring_port.hpp"
#include "dataplane/io/worker.hpp"
#include "dataplane/nat/steering.hpp"

namespace {

using cgn::common::Counter;
using cgn::common::Ipv4Address;
using cgn::common::MacAddress;
using cgn::common::PacketBuilder;
namespace common = cgn::common;
namespace dp = cgn::dp;
namespace eth = cgn::common::eth;
namespace ipv4 = cgn::common::ipv4;
namespace udp = cgn::common::udp;

// A minimum-size Ethernet frame (FCS excluded): 14 + 20 + 8 + 18 bytes of payload.
constexpr size_t kFrameLength = 60;
constexpr size_t kPayloadLength =
    kFrameLength - eth::kHeaderLength - ipv4::kMinHeaderLength - udp::kHeaderLength;
constexpr uint16_t kServerPort = 443;
constexpr uint16_t kFirstSubscriberPort = 20000;
constexpr uint32_t kFlowsPerSubscriber = 64;
// The worker's clock (a ManualClock) moves 1 ms per kPacketsPerMs packets, as if the core ran
// at about 1 Mpps (see docs/performance.md), and a scenario stops after kMaxPackets, so that
// the virtual time of a whole run stays below the UDP idle timeout and the neighbour
// re-confirmation time (300 s each): nothing expires and no ARP request joins the traffic.
constexpr uint64_t kPacketsPerMs = 1024;
constexpr uint64_t kMaxPackets = 80'000 * kPacketsPerMs;
// Rounds whose output is checked byte by byte: the first and then every kCheckEvery-th.
constexpr uint64_t kCheckEvery = 16;
// RX/TX queue pairs of each port: one per worker of the handoff scenarios (the single-worker
// scenarios use queue 0 only).
constexpr uint16_t kQueues = 2;
// The handoff rings' size, as cgnd creates them.
constexpr unsigned kHandoffRingSize = 1024;

class Failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& what) { throw Failure(what); }

// ---- options -------------------------------------------------------------------------------

struct Options {
    bool quick = false;
    uint32_t small_flows = 1024;
    uint32_t large_flows = 1u << 20;
    unsigned batch = 1024;
    double seconds = 2.0;  // time spent in poll per steady-state scenario
    unsigned cpu = 0;
    unsigned memory_mb = 0;  // 0: derived from large_flows
    bool out2in = true;
    uint64_t seed = 1;
    // Groups of scenarios to run: plain forward, the small table, the large table, the
    // handoff between two workers (small table).
    bool plain = true;
    bool small = true;
    bool large = true;
    bool handoff = true;
};

void usage(FILE* out) {
    std::fprintf(out,
                 "usage: cgn-pipeline-bench [options]\n"
                 "  --quick             short smoke run: 64K large table, 0.2 s per scenario\n"
                 "  --sessions N        sessions of the large table (default 1048576)\n"
                 "  --small-sessions N  sessions of the small table (default 1024)\n"
                 "  --batch N           packets per round, 32..8192 (default 1024)\n"
                 "  --seconds S         time in poll per steady-state scenario (default 2)\n"
                 "  --cpu N             CPU to run on (EAL -l N, default 0)\n"
                 "  --memory MB         EAL memory, --no-huge (default: from --sessions)\n"
                 "  --no-out2in         skip the out2in scenarios\n"
                 "  --only LIST         run only these groups, comma-separated: plain, small,\n"
                 "                      large, handoff (default: all; the ratio column needs\n"
                 "                      plain)\n"
                 "  --seed N            flow order and choice (default 1)\n");
}

std::optional<Options> parse_options(int argc, char** argv) {
    Options o;
    bool sessions_given = false;
    bool seconds_given = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "option %s needs a value\n", argv[i]);
                return nullptr;
            }
            return argv[++i];
        };
        auto number = [&](auto& target, double low, double high) {
            const char* v = value();
            if (v == nullptr) return false;
            char* end = nullptr;
            const double d = std::strtod(v, &end);
            if (end == v || *end != '\0' || d < low || d > high) {
                std::fprintf(stderr, "option %s: %s is not in [%g, %g]\n", argv[i - 1], v, low,
                             high);
                return false;
            }
            target = static_cast<std::remove_reference_t<decltype(target)>>(d);
            return true;
        };
        bool ok = true;
        if (a == "--quick") {
            o.quick = true;
        } else if (a == "--sessions") {
            ok = number(o.large_flows, 1024, 16.0 * (1u << 20));
            sessions_given = true;
        } else if (a == "--small-sessions") {
            ok = number(o.small_flows, 1, 1u << 20);
        } else if (a == "--batch") {
            ok = number(o.batch, 32, 8192);
        } else if (a == "--seconds") {
            ok = number(o.seconds, 0.01, 600);
            seconds_given = true;
        } else if (a == "--cpu") {
            ok = number(o.cpu, 0, 1023);
        } else if (a == "--memory") {
            ok = number(o.memory_mb, 256, 1u << 20);
        } else if (a == "--no-out2in") {
            o.out2in = false;
        } else if (a == "--only") {
            const char* v = value();
            ok = v != nullptr;
            o.plain = o.small = o.large = o.handoff = false;
            for (std::string_view rest = ok ? v : ""; ok && !rest.empty();) {
                const size_t comma = rest.find(',');
                const std::string_view item = rest.substr(0, comma);
                rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
                if (item == "plain") {
                    o.plain = true;
                } else if (item == "small") {
                    o.small = true;
                } else if (item == "large") {
                    o.large = true;
                } else if (item == "handoff") {
                    o.handoff = true;
                } else {
                    std::fprintf(stderr, "--only: unknown group %.*s\n",
                                 static_cast<int>(item.size()), item.data());
                    ok = false;
                }
            }
        } else if (a == "--seed") {
            ok = number(o.seed, 0, 1e15);
        } else if (a == "--help" || a == "-h") {
            usage(stdout);
            std::exit(0);
        } else {
            std::fprintf(stderr, "unknown option %s\n", argv[i]);
            ok = false;
        }
        if (!ok) return std::nullopt;
    }
    if (o.quick) {
        if (!sessions_given) o.large_flows = 1u << 16;
        if (!seconds_given) o.seconds = 0.2;
    }
    if (o.memory_mb == 0) {
        // The large worker's rte_hash tables take about 400 bytes of EAL memory per session
        // (sized for 1.25 times the sessions: 1M sessions run in 512 MB, not in 384), plus the
        // small worker, the rings and the mbufs; with room to spare.
        o.memory_mb = 512 + static_cast<unsigned>((uint64_t{o.large_flows} * 600) >> 20);
    }
    return o;
}

// ---- topology and flows --------------------------------------------------------------------

// Documentation and shared address ranges only, as in the dataplane tests.
struct Topology {
    common::InterfaceAddress inside = *common::InterfaceAddress::parse("100.64.0.1/10");
    common::InterfaceAddress outside = *common::InterfaceAddress::parse("192.0.2.1/24");
    Ipv4Address gateway = *Ipv4Address::parse("192.0.2.254");
    MacAddress gateway_mac = *MacAddress::parse("02:00:00:00:fe:01");
    common::Ipv4Prefix pool = *common::Ipv4Prefix::parse("198.51.100.0/24");
    Ipv4Address servers = *Ipv4Address::parse("203.0.113.0");
};

// Flow i: subscriber i / 64 (100.64.0.2 upwards), source port 20000 + i % 64, to a server in
// 203.0.113.0/24 on UDP 443. Every flow has its own internal endpoint, so its own mapping.
struct Flow {
    uint32_t subscriber;
    Ipv4Address src;
    uint16_t sport;
    Ipv4Address dst;
    uint16_t dport;
};

Flow flow(const Topology& t, uint32_t i) {
    const uint32_t s = i / kFlowsPerSubscriber;
    return {s, Ipv4Address{t.inside.subnet.address.value + 2 + s},
            static_cast<uint16_t>(kFirstSubscriberPort + i % kFlowsPerSubscriber),
            Ipv4Address{t.servers.value + 1 + i % 250}, kServerPort};
}

MacAddress subscriber_mac(uint32_t s) {
    return {{0x02, 0x5b, static_cast<uint8_t>(s >> 24), static_cast<uint8_t>(s >> 16),
             static_cast<uint8_t>(s >> 8), static_cast<uint8_t>(s)}};
}

uint32_t subscriber_count(uint32_t flows) {
    return (flows + kFlowsPerSubscriber - 1) / kFlowsPerSubscriber;
}

std::vector<uint8_t> payload() {
    std::vector<uint8_t> p(kPayloadLength);
    std::iota(p.begin(), p.end(), uint8_t{0x40});
    return p;
}

// Frames of n flows, back to back, kFrameLength bytes each.
class FrameSet {
public:
    explicit FrameSet(size_t n) : bytes_(n * kFrameLength) {}
    size_t size() const { return bytes_.size() / kFrameLength; }
    const uint8_t* at(size_t i) const { return bytes_.data() + i * kFrameLength; }
    void set(size_t i, const std::vector<uint8_t>& frame) {
        if (frame.size() != kFrameLength) fail("built frame of unexpected length");
        std::memcpy(bytes_.data() + i * kFrameLength, frame.data(), kFrameLength);
    }

private:
    std::vector<uint8_t> bytes_;
};

// What a subscriber sends: flow i as it arrives on the inside port.
FrameSet in2out_frames(const Topology& t, MacAddress inside_mac, uint32_t n) {
    FrameSet frames(n);
    const auto data = payload();
    for (uint32_t i = 0; i < n; ++i) {
        const Flow f = flow(t, i);
        frames.set(i, PacketBuilder()
                          .ethernet(subscriber_mac(f.subscriber), inside_mac)
                          .ipv4(f.src, f.dst, 64, static_cast<uint16_t>(i))
                          .udp(f.sport, f.dport)
                          .payload(data)
                          .build());
    }
    return frames;
}

// ---- ports, mbufs and workers --------------------------------------------------------------

// A part of a round's batch: `count` consecutive frames put on, or expected from, `ring`.
struct Segment {
    rte_ring* ring;
    unsigned count;
};

// The mbuf pool, the two ring ports (kQueues queues each) and the fixed set of mbufs that carry
// every round's batch.
class Rig {
public:
    explicit Rig(unsigned batch) : batch_(batch) {
        const unsigned ring_size = std::max(4096u, rte_align32pow2(2 * batch));
        pool_ = rte_pktmbuf_pool_create("bench_mbufs", batch + 8192, 0, 0,
                                        RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
        if (pool_ == nullptr) throw std::runtime_error("cannot create the mbuf pool");
        inside_ = std::make_unique<dp::RingPort>("bench_in", pool_, ring_size, kQueues);
        outside_ = std::make_unique<dp::RingPort>("bench_out", pool_, ring_size, kQueues);
        mbufs_.resize(batch);
        if (rte_pktmbuf_alloc_bulk(pool_, mbufs_.data(), batch) != 0)
            throw std::runtime_error("cannot allocate the batch mbufs");
        for (rte_mbuf* m : mbufs_)
            if (rte_pktmbuf_append(m, kFrameLength) == nullptr)
                throw std::runtime_error("mbuf too small");
        out_.resize(ring_size);
    }
    ~Rig() {
        // The batch mbufs are not freed one by one: after a failed round some may be on a ring
        // (freed by the port) or already freed by the worker. Freeing the pool is enough.
        inside_.reset();
        outside_.reset();
        rte_mempool_free(pool_);
    }
    Rig(const Rig&) = delete;
    Rig& operator=(const Rig&) = delete;

    unsigned batch() const { return batch_; }
    rte_mempool* pool() { return pool_; }
    dp::RingPort& inside() { return *inside_; }
    dp::RingPort& outside() { return *outside_; }

    // One round: writes the frames of flows[0..n) into the batch mbufs, puts them on `rx`, calls
    // poll() until the ring is empty and takes what was transmitted from `tx` (see output()).
    // Returns the TSC cycles spent in poll() only.
    template <class Poll>
    uint64_t round(const FrameSet& frames, const uint32_t* flows, unsigned n, rte_ring* rx,
                   rte_ring* tx, Poll&& poll) {
        const Segment in[] = {{rx, n}};
        const Segment out[] = {{tx, n}};
        return round(frames, flows, in, out, poll, [rx] { return rte_ring_count(rx) != 0; });
    }
    // The same on several rings: the frames of flows[0..) go, in order, `in[0].count` to
    // in[0].ring, the next in[1].count to in[1].ring, ...; poll() is called while busy() (at
    // least once), and exactly out[k].count frames must then be on each out[k].ring. Output
    // frames are numbered in the order of `out`, ring after ring (see output()).
    template <class Poll, class Busy>
    uint64_t round(const FrameSet& frames, const uint32_t* flows, std::span<const Segment> in,
                   std::span<const Segment> out, Poll&& poll, Busy&& busy) {
        unsigned n = 0;
        for (const Segment& s : in) {
            for (unsigned i = n; i < n + s.count; ++i)
                std::memcpy(rte_pktmbuf_mtod(mbufs_[i], uint8_t*), frames.at(flows[i]),
                            kFrameLength);
            if (rte_ring_enqueue_burst(s.ring, reinterpret_cast<void**>(mbufs_.data() + n), s.count,
                                       nullptr) != s.count)
                fail("RX ring full");
            n += s.count;
        }
        const uint64_t start = rte_rdtsc_precise();
        do {
            poll();
        } while (busy());
        const uint64_t cycles = rte_rdtsc_precise() - start;
        out_count_ = 0;
        for (const Segment& s : out) {
            const unsigned got =
                rte_ring_dequeue_burst(s.ring, reinterpret_cast<void**>(out_.data() + out_count_),
                                       static_cast<unsigned>(out_.size() - out_count_), nullptr);
            if (got != s.count)
                fail("expected " + std::to_string(s.count) + " frames on a TX ring, " +
                     std::to_string(got) + " came out");
            out_count_ += got;
        }
        if (out_count_ != n)
            fail("sent " + std::to_string(n) + " frames, " + std::to_string(out_count_) +
                 " came out");
        // The same mbufs, in the order they came out, carry the next round.
        std::copy_n(out_.begin(), n, mbufs_.begin());
        return cycles;
    }
    rte_mbuf* const* output() const { return out_.data(); }

private:
    unsigned batch_;
    rte_mempool* pool_ = nullptr;
    std::unique_ptr<dp::RingPort> inside_;
    std::unique_ptr<dp::RingPort> outside_;
    std::vector<rte_mbuf*> mbufs_;
    std::vector<rte_mbuf*> out_;
    unsigned out_count_ = 0;
};

// Real workers on the rig's ports, configured like the dataplane test harness (test topology,
// pool 198.51.100.0/24), sharing a clock, each with its own counters. With several workers,
// worker w polls queue w of both ports and they hand packets to each other through handoff
// rings; poll() polls them in turn, from this thread, as the dataplane tests do.
class WorkerUnderTest {
public:
    WorkerUnderTest(Rig& rig, const Topology& t, unsigned first_id, uint32_t max_sessions,
                    uint32_t neighbor_capacity, uint64_t seed, unsigned workers = 1)
        : rig_(rig),
          blocks_(std::make_unique<dp::BlockMap>(common::PortRange{}, 512, workers)),
          steering_(workers, blocks_.get()) {
        if (workers > kQueues) throw std::runtime_error("more workers than queues");
        if (workers > 1)
            handoff_ = std::make_unique<dp::HandoffRings>("bench_ho" + std::to_string(first_id),
                                                          workers, kHandoffRingSize, SOCKET_ID_ANY);
        dp::WorkerSettings s;
        s.workers = workers;
        s.handoff = handoff_.get();
        s.socket_id = SOCKET_ID_ANY;
        s.nat.pool = {t.pool};
        s.nat.max_sessions = max_sessions;
        s.nat.workers = workers;
        s.nat.blocks = blocks_.get();
        // The benchmarks measure translation, not quotas: a few subscribers may hold every
        // port block of their address and any number of sessions.
        s.nat.limits.max_blocks = blocks_->blocks_per_address();
        s.nat.limits.max_sessions = 0;
        s.neighbor_capacity = neighbor_capacity;
        steering_ = dp::Steering(workers, blocks_.get(), s.reta_size);
        for (unsigned w = 0; w < workers; ++w) {
            const auto q = static_cast<uint16_t>(w);
            s.worker_id = first_id + w;
            s.worker_index = s.nat.worker_index = w;
            s.seed = seed + w;
            s.inside = {rig.inside().port_id(), q, q, rig.inside().mac(), t.inside, std::nullopt};
            s.outside = {rig.outside().port_id(), q, q, rig.outside().mac(), t.outside, t.gateway};
            counters_.push_back(std::make_unique<common::WorkerCounters>());
            workers_.push_back(std::make_unique<dp::Worker>(s, rig.pool(), *counters_[w], clock_));
        }
    }
    ~WorkerUnderTest() {
        workers_.clear();  // before the rings they may hold packets for
        handoff_.reset();
    }
    WorkerUnderTest(const WorkerUnderTest&) = delete;
    WorkerUnderTest& operator=(const WorkerUnderTest&) = delete;

    unsigned size() const { return static_cast<unsigned>(workers_.size()); }
    dp::Worker& worker(unsigned w = 0) { return *workers_.at(w); }
    const dp::Steering& steering() const { return steering_; }
    // One poll_once() of every worker, in order.
    void poll() {
        for (auto& w : workers_) w->poll_once();
    }
    // Whether a handoff ring still holds packets (its owner has not polled since).
    bool handoff_pending() const {
        if (!handoff_) return false;
        for (unsigned from = 0; from < size(); ++from)
            for (unsigned to = 0; to < size(); ++to)
                if (from != to && rte_ring_count(handoff_->ring(from, to)) != 0) return true;
        return false;
    }
    // Moves the workers' clock for n more packets (kPacketsPerMs).
    void count_packets(uint64_t n) {
        unclocked_ += n;
        clock_.advance_ms(unclocked_ / kPacketsPerMs);
        unclocked_ %= kPacketsPerMs;
    }
    common::CounterSnapshot counters(unsigned w = 0) const {
        common::CounterSnapshot v{};
        for (size_t i = 0; i < v.size(); ++i)
            v[i] = counters_.at(w)->values[i].load(std::memory_order_relaxed);
        return v;
    }
    uint64_t sessions() const {
        uint64_t n = 0;
        for (const auto& w : workers_) n += w->nat().session_count();
        return n;
    }

    // Frames the workers receive outside the timed rounds (ARP), on queue 0: injected in
    // chunks, polled until consumed; whatever they send in answer is freed.
    void exchange(dp::RingPort& port, const std::vector<std::vector<uint8_t>>& frames) {
        for (size_t base = 0; base < frames.size(); base += rig_.batch()) {
            const size_t end = std::min(frames.size(), base + rig_.batch());
            for (size_t i = base; i < end; ++i) port.inject(frames[i]);
            while (rte_ring_count(port.rx_ring()) != 0 || handoff_pending()) poll();
            poll();
            rig_.inside().drain();
            rig_.outside().drain();
        }
    }

private:
    Rig& rig_;
    common::ManualClock clock_;
    uint64_t unclocked_ = 0;
    std::unique_ptr<dp::HandoffRings> handoff_;
    std::unique_ptr<dp::BlockMap> blocks_;
    dp::Steering steering_;
    std::vector<std::unique_ptr<common::WorkerCounters>> counters_;
    std::vector<std::unique_ptr<dp::Worker>> workers_;
};

std::vector<uint8_t> arp_request(MacAddress sender_mac, Ipv4Address sender_ip,
                                 Ipv4Address target_ip) {
    return PacketBuilder()
        .ethernet(sender_mac, MacAddress::broadcast())
        .arp(common::arp::kOpRequest, sender_mac, sender_ip, MacAddress{}, target_ip)
        .build();
}

// The outside gateway, and the subscribers of the first `flows` flows when out2in is measured,
// announce themselves with an ARP request for our address (every worker learns them, RFC 826:
// the one that receives a request passes a copy to the others).
void resolve_neighbors(WorkerUnderTest& w, Rig& rig, const Topology& t, uint32_t flows,
                       bool subscribers) {
    w.exchange(rig.outside(), {arp_request(t.gateway_mac, t.gateway, t.outside.address)});
    if (subscribers) {
        std::vector<std::vector<uint8_t>> requests;
        for (uint32_t s = 0; s < subscriber_count(flows); ++s)
            requests.push_back(arp_request(subscriber_mac(s), flow(t, s * kFlowsPerSubscriber).src,
                                           t.inside.address));
        w.exchange(rig.inside(), requests);
    }
    const uint64_t expected = 1 + (subscribers ? subscriber_count(flows) : 0);
    for (unsigned i = 0; i < w.size(); ++i) {
        const uint64_t learned = w.counters(i)[static_cast<size_t>(Counter::arp_entries_learned)];
        if (learned != expected)
            fail("ARP: worker " + std::to_string(i) + " learned " + std::to_string(learned) +
                 " neighbours, expected " + std::to_string(expected));
    }
}

// What the servers answer: flow i's reply, to the external endpoint the worker mapped it to.
FrameSet out2in_frames(const Topology& t, WorkerUnderTest& w, MacAddress outside_mac, uint32_t n) {
    FrameSet frames(n);
    const auto data = payload();
    for (uint32_t i = 0; i < n; ++i) {
        const Flow f = flow(t, i);
        const auto m = w.worker().nat().find_mapping(ipv4::kProtoUdp, f.src.value, f.sport);
        if (!m) fail("flow " + std::to_string(i) + " has no mapping");
        frames.set(i, PacketBuilder()
                          .ethernet(t.gateway_mac, outside_mac)
                          .ipv4(f.dst, Ipv4Address{m->first}, 64, static_cast<uint16_t>(i))
                          .udp(f.dport, m->second)
                          .payload(data)
                          .build());
    }
    return frames;
}

// ---- checks --------------------------------------------------------------------------------

bool checksums_valid(const uint8_t* frame) {
    const uint8_t* ip = frame + eth::kHeaderLength;
    if (common::checksum_finish(common::checksum_partial(ip, ipv4::kMinHeaderLength)) != 0)
        return false;
    const uint8_t* l4 = ip + ipv4::kMinHeaderLength;
    const auto l4_length = static_cast<uint16_t>(udp::kHeaderLength + kPayloadLength);
    const uint32_t sum =
        common::pseudo_header_sum(common::load_be32(ip + ipv4::kSrc),
                                  common::load_be32(ip + ipv4::kDst), ipv4::kProtoUdp, l4_length);
    return common::checksum_finish(common::checksum_partial(l4, l4_length, sum)) == 0;
}

// The frame the worker must send for flow i, built independently: the input with the
// addresses and port the RFCs say, TTL decremented and new MAC addresses.
std::vector<uint8_t> expected_in2out(const Topology& t, dp::Worker& w, MacAddress outside_mac,
                                     uint32_t i) {
    const Flow f = flow(t, i);
    const auto m = w.nat().find_mapping(ipv4::kProtoUdp, f.src.value, f.sport);
    if (!m) fail("flow " + std::to_string(i) + " has no mapping after translation");
    if (!t.pool.contains(Ipv4Address{m->first})) fail("external address outside the pool");
    return PacketBuilder()
        .ethernet(outside_mac, t.gateway_mac)
        .ipv4(Ipv4Address{m->first}, f.dst, 63, static_cast<uint16_t>(i))
        .udp(m->second, f.dport)
        .payload(payload())
        .build();
}

std::vector<uint8_t> expected_out2in(const Topology& t, MacAddress inside_mac, uint32_t i) {
    const Flow f = flow(t, i);
    return PacketBuilder()
        .ethernet(inside_mac, subscriber_mac(f.subscriber))
        .ipv4(f.dst, f.src, 63, static_cast<uint16_t>(i))
        .udp(f.dport, f.sport)
        .payload(payload())
        .build();
}

template <class Expected>
void check_output(const Rig& rig, const uint32_t* flows, unsigned n, Expected&& expected,
                  const char* scenario) {
    for (unsigned k = 0; k < n; ++k) {
        const rte_mbuf* m = rig.output()[k];
        const auto* got = rte_pktmbuf_mtod(m, const uint8_t*);
        const std::vector<uint8_t> want = expected(flows[k]);
        if (rte_pktmbuf_data_len(m) != want.size() ||
            std::memcmp(got, want.data(), want.size()) != 0 || !checksums_valid(got))
            fail(std::string(scenario) + ": frame " + std::to_string(k) + " of flow " +
                 std::to_string(flows[k]) + " is not the expected translation");
    }
}

// The counters moved by exactly the expected amounts; every other counter stayed still.
struct CounterChange {
    Counter counter;
    uint64_t delta;
};

void check_deltas(const common::CounterSnapshot& moved,
                  std::initializer_list<CounterChange> expected, const std::string& scenario) {
    const auto expected_of = [&](Counter c) {
        uint64_t want = 0;
        for (const auto& e : expected)
            if (e.counter == c) want = e.delta;
        return want;
    };
    for (size_t i = 0; i < moved.size(); ++i) {
        uint64_t want = expected_of(static_cast<Counter>(i));
        // Frame accounting (common/frame_accounting.hpp): every frame here is received on one
        // side and sent on the other, and ends on the worker that sends it.
        if (static_cast<Counter>(i) == Counter::frames_ended_inside)
            want = expected_of(Counter::tx_outside);
        if (static_cast<Counter>(i) == Counter::frames_ended_outside)
            want = expected_of(Counter::tx_inside);
        if (moved[i] != want)
            fail(scenario + ": counter " + std::string(common::kCounterNames[i]) + " moved by " +
                 std::to_string(moved[i]) + ", expected " + std::to_string(want));
    }
}

common::CounterSnapshot difference(const common::CounterSnapshot& before,
                                   const common::CounterSnapshot& after) {
    common::CounterSnapshot d{};
    for (size_t i = 0; i < d.size(); ++i) d[i] = after[i] - before[i];
    return d;
}

void check_counters(const common::CounterSnapshot& before, const common::CounterSnapshot& after,
                    std::initializer_list<CounterChange> expected, const char* scenario) {
    check_deltas(difference(before, after), expected, scenario);
}

// ---- measurement ---------------------------------------------------------------------------

struct Result {
    std::string name;
    uint64_t packets = 0;
    uint64_t cycles = 0;
    uint64_t rounds = 0;
    bool creates_sessions = false;
    // The lowest and highest rate of kSlices consecutive parts of the run (equal numbers of
    // rounds): the noise within one run, or for session creation the effect of a filling table.
    double slowest_mpps = 0;
    double fastest_mpps = 0;
};

constexpr unsigned kSlices = 5;

double seconds_of(uint64_t cycles) {
    return static_cast<double>(cycles) / static_cast<double>(rte_get_tsc_hz());
}
double mpps(const Result& r) {
    return r.cycles == 0 ? 0 : static_cast<double>(r.packets) / seconds_of(r.cycles) / 1e6;
}

// The rounds of one scenario as they run; finish() adds the slices.
class Recorder {
public:
    explicit Recorder(std::string name) { r_.name = std::move(name); }
    void add(unsigned packets, uint64_t cycles) {
        rounds_.emplace_back(packets, cycles);
        r_.cycles += cycles;
        r_.packets += packets;
        ++r_.rounds;
    }
    const Result& so_far() const { return r_; }
    Result finish() const {
        if (rounds_.empty()) fail(r_.name + ": no round ran");
        Result r = r_;
        const size_t slices = std::min<size_t>(kSlices, rounds_.size());
        for (size_t k = 0; k < slices; ++k) {
            uint64_t packets = 0, cycles = 0;
            for (size_t i = rounds_.size() * k / slices; i < rounds_.size() * (k + 1) / slices;
                 ++i) {
                packets += rounds_[i].first;
                cycles += rounds_[i].second;
            }
            const double rate = static_cast<double>(packets) / seconds_of(cycles) / 1e6;
            r.slowest_mpps = k == 0 ? rate : std::min(r.slowest_mpps, rate);
            r.fastest_mpps = k == 0 ? rate : std::max(r.fastest_mpps, rate);
        }
        return r;
    }

private:
    Result r_;
    std::vector<std::pair<unsigned, uint64_t>> rounds_;  // packets, cycles
};

// Runs rounds until `max_rounds` or until `min_cycles` were spent in poll (when non-zero).
// choose(round, flows) fills the round's flow indices and returns how many (0: stop);
// check(round, flows, n) verifies the output of the rounds it is asked about.
template <class Choose, class Poll, class Check>
Result measure(Rig& rig, const std::string& name, const FrameSet& frames, rte_ring* rx,
               rte_ring* tx, uint64_t max_rounds, uint64_t min_cycles, Choose&& choose, Poll&& poll,
               Check&& check) {
    Recorder rec(name);
    std::vector<uint32_t> flows(rig.batch());
    for (uint64_t round = 0;
         round < max_rounds && (min_cycles == 0 || rec.so_far().cycles < min_cycles); ++round) {
        const unsigned n = choose(round, flows.data());
        if (n == 0) break;
        rec.add(n, rig.round(frames, flows.data(), n, rx, tx, poll));
        if (round % kCheckEvery == 0) check(round, flows.data(), n);
    }
    return rec.finish();
}

void print_header(const Options& o, const Topology& t) {
    // The machine's load when the run started: other work on the same cores shows in the
    // figures (docs/performance.md).
    char load[64] = "?";
    if (FILE* f = std::fopen("/proc/loadavg", "r")) {
        if (std::fgets(load, sizeof load, f) == nullptr) std::strcpy(load, "?");
        std::fclose(f);
        load[std::strcspn(load, "\n")] = '\0';
    }
    std::printf(
        "cgn-pipeline-bench: one core (lcore %u), net_ring ports, EAL --no-huge -m %u, TSC "
        "%.3f GHz\n"
        "  %zu-byte UDP frames, batch %u per round, RX burst %u, pool %s\n"
        "  worker clock +1 ms per %llu packets; load average at start: %s\n",
        o.cpu, o.memory_mb, static_cast<double>(rte_get_tsc_hz()) / 1e9, kFrameLength, o.batch,
        dp::Worker::kBurst, t.pool.to_string().c_str(),
        static_cast<unsigned long long>(kPacketsPerMs), load);
    std::fflush(stdout);
}

void print_results(const std::vector<Result>& results, std::optional<double> plain_mpps) {
    std::printf("\n%-38s %10s %7s %7s %7s %8s  %s\n", "scenario", "packets", "Mpps", "ns/pkt",
                "cyc/pkt", "vs plain", "Mpps of 5 slices: min-max");
    for (const Result& r : results) {
        const double ns = seconds_of(r.cycles) * 1e9 / static_cast<double>(r.packets);
        const double cyc = static_cast<double>(r.cycles) / static_cast<double>(r.packets);
        std::printf("%-38s %10llu %7.2f %7.1f %7.1f", r.name.c_str(),
                    static_cast<unsigned long long>(r.packets), mpps(r), ns, cyc);
        if (plain_mpps)
            std::printf(" %8.3f", mpps(r) / *plain_mpps);
        else
            std::printf(" %8s", "-");
        std::printf("  %.2f-%.2f", r.slowest_mpps, r.fastest_mpps);
        if (r.creates_sessions) std::printf("  (%.2f M sessions/s)", mpps(r));
        std::printf("\n");
    }
    std::fflush(stdout);
}

// What handing every packet off once adds, per packet: the difference of the two scenarios.
void print_handoff_cost(const Result& own, const Result& handed) {
    auto ns = [](const Result& r) {
        return seconds_of(r.cycles) * 1e9 / static_cast<double>(r.packets);
    };
    auto cyc = [](const Result& r) {
        return static_cast<double>(r.cycles) / static_cast<double>(r.packets);
    };
    std::printf(
        "\nhandoff cost: %+.1f ns (%+.1f cycles) per packet handed off once, %+.0f %% "
        "(%.1f ns on the owner's queue, %.1f ns handed off; one core, no cross-core "
        "transfer)\n",
        ns(handed) - ns(own), cyc(handed) - cyc(own), (ns(handed) / ns(own) - 1) * 100, ns(own),
        ns(handed));
    std::fflush(stdout);
}

// ---- scenarios -----------------------------------------------------------------------------

Result plain_forward(Rig& rig, const FrameSet& frames, uint64_t min_cycles, uint64_t seed) {
    const uint16_t in = rig.inside().port_id();
    const uint16_t out = rig.outside().port_id();
    // A two-port forwarder's loop: both ports polled, MAC addresses swapped, sent on the other
    // port (testpmd's macswap). The outside port never has anything: only its poll costs.
    auto poll = [in, out] {
        rte_mbuf* mbufs[dp::Worker::kBurst];
        for (uint16_t port : {in, out}) {
            const uint16_t n = rte_eth_rx_burst(port, 0, mbufs, dp::Worker::kBurst);
            if (n == 0) continue;
            for (uint16_t i = 0; i < n; ++i) {
                uint8_t* f = rte_pktmbuf_mtod(mbufs[i], uint8_t*);
                uint8_t tmp[6];
                std::memcpy(tmp, f + eth::kDst, 6);
                std::memcpy(f + eth::kDst, f + eth::kSrc, 6);
                std::memcpy(f + eth::kSrc, tmp, 6);
            }
            const uint16_t to = port == in ? out : in;
            const uint16_t sent = rte_eth_tx_burst(to, 0, mbufs, n);
            if (sent < n) rte_pktmbuf_free_bulk(mbufs + sent, n - sent);
        }
    };
    common::Random random(seed);
    const auto n_flows = static_cast<uint32_t>(frames.size());
    auto choose = [&](uint64_t, uint32_t* flows) {
        for (unsigned i = 0; i < rig.batch(); ++i) flows[i] = random.below(n_flows);
        return rig.batch();
    };
    auto check = [&](uint64_t, const uint32_t* flows, unsigned n) {
        for (unsigned k = 0; k < n; ++k) {
            const uint8_t* got = rte_pktmbuf_mtod(rig.output()[k], const uint8_t*);
            const uint8_t* sent = frames.at(flows[k]);
            if (std::memcmp(got, sent + eth::kSrc, 6) != 0 ||
                std::memcmp(got + eth::kSrc, sent, 6) != 0 ||
                std::memcmp(got + 12, sent + 12, kFrameLength - 12) != 0)
                fail("plain forward: frame " + std::to_string(k) + " not MAC-swapped");
        }
    };
    // No worker clock here, so no round limit but the time.
    return measure(rig, "plain forward (MAC swap)", frames, rig.inside().rx_ring(),
                   rig.outside().tx_ring(), UINT64_MAX, min_cycles, choose, poll, check);
}

// Creates the sessions of all flows of `frames` (in a random order), as a measured scenario.
Result create_sessions(Rig& rig, const Topology& t, WorkerUnderTest& w, const FrameSet& frames,
                       uint64_t seed, const std::string& name) {
    const auto n_flows = static_cast<uint32_t>(frames.size());
    std::vector<uint32_t> order(n_flows);
    std::iota(order.begin(), order.end(), 0u);
    common::Random random(seed);
    for (uint32_t i = n_flows; i > 1; --i) std::swap(order[i - 1], order[random.below(i)]);

    const auto before = w.counters();
    const uint32_t held_before = w.worker().nat().held_blocks();
    auto choose = [&](uint64_t round, uint32_t* flows) {
        const uint64_t base = round * rig.batch();
        if (base >= n_flows) return 0u;
        const auto n = static_cast<unsigned>(std::min<uint64_t>(rig.batch(), n_flows - base));
        std::copy_n(order.begin() + static_cast<std::ptrdiff_t>(base), n, flows);
        w.count_packets(n);
        return n;
    };
    auto poll = [&w] { w.worker().poll_once(); };
    const MacAddress outside_mac = rig.outside().mac();
    auto check = [&](uint64_t, const uint32_t* flows, unsigned n) {
        check_output(
            rig, flows, n,
            [&](uint32_t i) { return expected_in2out(t, w.worker(), outside_mac, i); },
            name.c_str());
    };
    Result r = measure(rig, name, frames, rig.inside().rx_ring(), rig.outside().tx_ring(),
                       UINT64_MAX, 0, choose, poll, check);
    r.creates_sessions = true;
    if (r.packets != n_flows) fail(name + ": not every flow was sent");
    const uint32_t subscribers = subscriber_count(n_flows);
    check_counters(before, w.counters(),
                   {{Counter::rx_inside, n_flows},
                    {Counter::tx_outside, n_flows},
                    {Counter::in2out_translated, n_flows},
                    {Counter::sessions_created, n_flows},
                    {Counter::mappings_created, n_flows},
                    {Counter::subscribers_paired, subscribers},
                    // Each subscriber's first mapping (and every 512th) claims a port block.
                    {Counter::blocks_claimed, w.worker().nat().held_blocks() - held_before}},
                   name.c_str());
    if (w.worker().nat().session_count() != n_flows)
        fail(name + ": " + std::to_string(w.worker().nat().session_count()) +
             " sessions in the table, expected " + std::to_string(n_flows));
    return r;
}

// Established flows in one direction: every packet a random flow among all of `frames`.
Result established(Rig& rig, const Topology& t, WorkerUnderTest& w, const FrameSet& frames,
                   bool inbound, uint64_t min_cycles, uint64_t seed, const std::string& name) {
    const auto n_flows = static_cast<uint32_t>(frames.size());
    const auto sessions = w.worker().nat().session_count();
    common::Random random(seed);
    const auto before = w.counters();
    auto choose = [&](uint64_t, uint32_t* flows) {
        for (unsigned i = 0; i < rig.batch(); ++i) flows[i] = random.below(n_flows);
        w.count_packets(rig.batch());
        return rig.batch();
    };
    auto poll = [&w] { w.worker().poll_once(); };
    const MacAddress outside_mac = rig.outside().mac();
    const MacAddress inside_mac = rig.inside().mac();
    auto check = [&](uint64_t, const uint32_t* flows, unsigned n) {
        if (inbound)
            check_output(
                rig, flows, n, [&](uint32_t i) { return expected_out2in(t, inside_mac, i); },
                name.c_str());
        else
            check_output(
                rig, flows, n,
                [&](uint32_t i) { return expected_in2out(t, w.worker(), outside_mac, i); },
                name.c_str());
    };
    dp::RingPort& from = inbound ? rig.outside() : rig.inside();
    dp::RingPort& to = inbound ? rig.inside() : rig.outside();
    const Result r =
        measure(rig, name, frames, from.rx_ring(), to.tx_ring(),
                (kMaxPackets + rig.batch() - 1) / rig.batch(), min_cycles, choose, poll, check);
    if (inbound)
        check_counters(before, w.counters(),
                       {{Counter::rx_outside, r.packets},
                        {Counter::tx_inside, r.packets},
                        {Counter::out2in_translated, r.packets}},
                       name.c_str());
    else
        check_counters(before, w.counters(),
                       {{Counter::rx_inside, r.packets},
                        {Counter::tx_outside, r.packets},
                        {Counter::in2out_translated, r.packets}},
                       name.c_str());
    if (w.worker().nat().session_count() != sessions) fail(name + ": session count changed");
    return r;
}

// ---- handoff between workers ---------------------------------------------------------------

// Flow indices [0, n_flows) by owner: the worker their subscriber (source address) hashes to.
std::vector<std::vector<uint32_t>> flows_by_owner(const Topology& t, const WorkerUnderTest& w,
                                                  uint32_t n_flows) {
    std::vector<std::vector<uint32_t>> owned(w.size());
    for (uint32_t i = 0; i < n_flows; ++i)
        owned.at(w.steering().subscriber_owner(flow(t, i).src.value)).push_back(i);
    for (unsigned o = 0; o < w.size(); ++o)
        if (owned[o].empty())
            fail("handoff: no flow of the " + std::to_string(n_flows) + " belongs to worker " +
                 std::to_string(o) + " (use more --small-sessions)");
    return owned;
}

using PerWorker = std::array<unsigned, kQueues>;

// One round on the workers: flows[0..counts[0]) belong to worker 0, the next counts[1] to
// worker 1, ...; the frames of owner o's flows are put on inside RX queue (o + shift) mod N
// and must come out translated on outside TX queue o (the owner transmits). shift 0: every
// packet arrives on its owner's queue; otherwise every packet arrives on another worker's
// queue and is handed off once. poll() polls every worker in turn until all RX queues and
// handoff rings are empty; only that is timed.
uint64_t owner_round(Rig& rig, WorkerUnderTest& w, const FrameSet& frames, const uint32_t* flows,
                     const PerWorker& counts, unsigned shift) {
    const unsigned n = w.size();
    std::array<Segment, kQueues> in{};
    std::array<Segment, kQueues> out{};
    for (unsigned o = 0; o < n; ++o) {
        in[o] = {rig.inside().rx_ring(static_cast<uint16_t>((o + shift) % n)), counts[o]};
        out[o] = {rig.outside().tx_ring(static_cast<uint16_t>(o)), counts[o]};
    }
    std::array<rte_ring*, kQueues> rx{};
    for (unsigned q = 0; q < n; ++q) rx[q] = rig.inside().rx_ring(static_cast<uint16_t>(q));
    auto busy = [&] {
        for (unsigned q = 0; q < n; ++q)
            if (rte_ring_count(rx[q]) != 0) return true;
        return w.handoff_pending();
    };
    return rig.round(
        frames, flows, std::span<const Segment>(in.data(), n),
        std::span<const Segment>(out.data(), n), [&w] { w.poll(); }, busy);
}

// Untimed: creates the sessions of every flow, on its owner's queue, and checks the frames and
// the counters of each worker.
void create_owned_sessions(Rig& rig, const Topology& t, WorkerUnderTest& w, const FrameSet& frames,
                           const std::vector<std::vector<uint32_t>>& owned,
                           const std::string& name) {
    std::vector<common::CounterSnapshot> before;
    std::vector<uint32_t> held_before;
    for (unsigned o = 0; o < w.size(); ++o) {
        before.push_back(w.counters(o));
        held_before.push_back(w.worker(o).nat().held_blocks());
    }
    const MacAddress outside_mac = rig.outside().mac();
    for (unsigned o = 0; o < w.size(); ++o) {
        for (size_t base = 0; base < owned[o].size(); base += rig.batch()) {
            const auto n =
                static_cast<unsigned>(std::min<size_t>(rig.batch(), owned[o].size() - base));
            PerWorker counts{};
            counts[o] = n;
            w.count_packets(n);
            (void)owner_round(rig, w, frames, owned[o].data() + base, counts, 0);
            check_output(
                rig, owned[o].data() + base, n,
                [&](uint32_t i) { return expected_in2out(t, w.worker(o), outside_mac, i); },
                name.c_str());
        }
    }
    for (unsigned o = 0; o < w.size(); ++o) {
        const uint64_t f = owned[o].size();
        const auto subscribers =
            static_cast<uint64_t>(std::count_if(owned[o].begin(), owned[o].end(), [](uint32_t i) {
                return i % kFlowsPerSubscriber == 0;
            }));
        const std::string who = name + ", worker " + std::to_string(o);
        check_counters(before[o], w.counters(o),
                       {{Counter::rx_inside, f},
                        {Counter::tx_outside, f},
                        {Counter::in2out_translated, f},
                        {Counter::sessions_created, f},
                        {Counter::mappings_created, f},
                        {Counter::subscribers_paired, subscribers},
                        {Counter::blocks_claimed,
                         w.worker(o).nat().held_blocks() - held_before[o]}},
                       who.c_str());
        if (w.worker(o).nat().session_count() != f)
            fail(who + ": " + std::to_string(w.worker(o).nat().session_count()) +
                 " sessions in the table, expected " + std::to_string(f));
    }
}

// Established in2out flows on the workers of `w`, two scenarios in alternating rounds (so both
// run under the same conditions): every packet on its owner's queue, and every packet on the
// next worker's queue (handed off once). Each round, an equal share of the batch for each
// owner, random flows among its own. Returns {own queue, handed off}.
std::pair<Result, Result> handoff_pair(Rig& rig, const Topology& t, WorkerUnderTest& w,
                                       const FrameSet& frames,
                                       const std::vector<std::vector<uint32_t>>& owned,
                                       uint64_t min_cycles, uint64_t seed,
                                       const std::string& label) {
    const unsigned n = w.size();
    struct Scenario {
        Recorder recorder;
        unsigned shift;
        std::vector<common::CounterSnapshot> moved;  // per worker, summed over its rounds
    };
    Scenario scenarios[] = {
        {Recorder(label + ", " + std::to_string(n) + " workers, own queue"), 0, {}},
        {Recorder(label + ", " + std::to_string(n) + " workers, handed off"), 1, {}}};
    for (Scenario& s : scenarios) s.moved.assign(n, common::CounterSnapshot{});
    const unsigned batch = rig.batch();
    PerWorker counts{};
    for (unsigned o = 0; o < n; ++o) counts[o] = batch * (o + 1) / n - batch * o / n;
    const uint64_t sessions = w.sessions();
    const MacAddress outside_mac = rig.outside().mac();
    common::Random random(seed);
    std::vector<uint32_t> flows(batch);
    // Each scenario sends at most kMaxPackets, as the single-worker ones (2 x 80 s of virtual
    // time: nothing expires).
    const uint64_t max_rounds = (kMaxPackets + batch - 1) / batch;
    for (uint64_t round = 0;
         round < max_rounds && (scenarios[0].recorder.so_far().cycles < min_cycles ||
                                scenarios[1].recorder.so_far().cycles < min_cycles);
         ++round) {
        for (Scenario& s : scenarios) {
            unsigned k = 0;
            for (unsigned o = 0; o < n; ++o)
                for (unsigned j = 0; j < counts[o]; ++j)
                    flows[k++] = owned[o][random.below(static_cast<uint32_t>(owned[o].size()))];
            w.count_packets(batch);
            std::vector<common::CounterSnapshot> before;
            for (unsigned o = 0; o < n; ++o) before.push_back(w.counters(o));
            s.recorder.add(batch, owner_round(rig, w, frames, flows.data(), counts, s.shift));
            for (unsigned o = 0; o < n; ++o) {
                const auto d = difference(before[o], w.counters(o));
                for (size_t c = 0; c < d.size(); ++c) s.moved[o][c] += d[c];
            }
            if (round % kCheckEvery == 0)
                check_output(
                    rig, flows.data(), batch,
                    [&](uint32_t i) {
                        const unsigned owner = w.steering().subscriber_owner(flow(t, i).src.value);
                        return expected_in2out(t, w.worker(owner), outside_mac, i);
                    },
                    s.recorder.so_far().name.c_str());
        }
    }
    for (const Scenario& s : scenarios) {
        const std::string& name = s.recorder.so_far().name;
        const uint64_t rounds = s.recorder.so_far().rounds;
        uint64_t handed_off = 0;
        for (unsigned r = 0; r < n; ++r) {
            // Worker r owns counts[r] packets a round and receives those of owner r - shift.
            const uint64_t owns = rounds * counts[r];
            const uint64_t receives = rounds * counts[(r + n - s.shift) % n];
            const uint64_t hands = s.shift == 0 ? 0 : receives;
            check_deltas(s.moved[r],
                         {{Counter::rx_inside, receives},
                          {Counter::packets_handed_off, hands},
                          {Counter::packets_received_by_handoff, s.shift == 0 ? 0 : owns},
                          {Counter::in2out_translated, owns},
                          {Counter::tx_outside, owns}},
                         name + ", worker " + std::to_string(r));
            handed_off += s.moved[r][static_cast<size_t>(Counter::packets_handed_off)];
        }
        const uint64_t want = s.shift == 0 ? 0 : s.recorder.so_far().packets;
        if (handed_off != want)
            fail(name + ": " + std::to_string(handed_off) + " packets handed off, expected " +
                 std::to_string(want));
    }
    if (w.sessions() != sessions) fail(label + ": session count changed");
    return {scenarios[0].recorder.finish(), scenarios[1].recorder.finish()};
}

std::string count_label(uint32_t n) {
    if (n % (1u << 20) == 0) return std::to_string(n >> 20) + "M";
    if (n % 1024 == 0) return std::to_string(n >> 10) + "K";
    return std::to_string(n);
}

// Table size of a worker that will hold `flows` sessions: a quarter spare, so the measured
// table is about as full as a production one sized with headroom (at least the default 64K).
uint32_t table_for(uint32_t flows) { return std::max<uint32_t>(flows + flows / 4, 1u << 16); }

int run(const Options& o) {
    const Topology t;
    const uint64_t min_cycles =
        static_cast<uint64_t>(o.seconds * static_cast<double>(rte_get_tsc_hz()));
    print_header(o, t);
    Rig rig(o.batch);
    std::vector<Result> results;
    std::optional<double> plain_mpps;
    std::optional<std::pair<Result, Result>> handoff;

    const FrameSet small = in2out_frames(t, rig.inside().mac(), o.small_flows);
    if (o.plain) {
        std::fprintf(stderr, "plain forward...\n");
        results.push_back(plain_forward(rig, small, min_cycles, o.seed));
        plain_mpps = mpps(results.back());
    }
    if (o.small) {
        const std::string label = count_label(o.small_flows);
        std::fprintf(stderr, "%s sessions...\n", label.c_str());
        WorkerUnderTest w(rig, t, 1, table_for(o.small_flows),
                          2 * subscriber_count(o.small_flows) + 64, o.seed);
        resolve_neighbors(w, rig, t, o.small_flows, o.out2in);
        // Untimed: the sessions are created by a first pass.
        (void)create_sessions(rig, t, w, small, o.seed, "create " + label);
        results.push_back(established(rig, t, w, small, false, min_cycles, o.seed + 1,
                                      "in2out UDP established, " + label + " sess"));
        if (o.out2in) {
            const FrameSet replies = out2in_frames(t, w, rig.outside().mac(), o.small_flows);
            results.push_back(established(rig, t, w, replies, true, min_cycles, o.seed + 2,
                                          "out2in UDP established, " + label + " sess"));
        }
    }
    if (o.handoff) {
        const std::string label = count_label(o.small_flows);
        std::fprintf(stderr, "%s sessions on %u workers, handoff...\n", label.c_str(), kQueues);
        WorkerUnderTest w(rig, t, 3, table_for(o.small_flows),
                          2 * subscriber_count(o.small_flows) + 64, o.seed + 20, kQueues);
        resolve_neighbors(w, rig, t, o.small_flows, false);
        const auto owned = flows_by_owner(t, w, o.small_flows);
        create_owned_sessions(rig, t, w, small, owned, "create " + label + ", handoff group");
        handoff = handoff_pair(rig, t, w, small, owned, min_cycles, o.seed + 21,
                               "in2out " + label + " sess");
        results.push_back(handoff->first);
        results.push_back(handoff->second);
    }
    if (o.large) {
        const std::string label = count_label(o.large_flows);
        std::fprintf(stderr, "building %s flows...\n", label.c_str());
        const FrameSet large = in2out_frames(t, rig.inside().mac(), o.large_flows);
        WorkerUnderTest w(rig, t, 2, table_for(o.large_flows),
                          2 * subscriber_count(o.large_flows) + 64, o.seed + 10);
        resolve_neighbors(w, rig, t, o.large_flows, o.out2in);
        std::fprintf(stderr, "creating %s sessions...\n", label.c_str());
        Result created =
            create_sessions(rig, t, w, large, o.seed + 11, "new sessions, 0 -> " + label + " sess");
        std::fprintf(stderr, "%s sessions...\n", label.c_str());
        results.push_back(established(rig, t, w, large, false, min_cycles, o.seed + 12,
                                      "in2out UDP established, " + label + " sess"));
        if (o.out2in) {
            const FrameSet replies = out2in_frames(t, w, rig.outside().mac(), o.large_flows);
            results.push_back(established(rig, t, w, replies, true, min_cycles, o.seed + 13,
                                          "out2in UDP established, " + label + " sess"));
        }
        results.push_back(std::move(created));
    }
    print_results(results, plain_mpps);
    if (handoff) print_handoff_cost(handoff->first, handoff->second);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const auto options = parse_options(argc, argv);
    if (!options) {
        usage(stderr);
        return 2;
    }
    const std::string memory = std::to_string(options->memory_mb);
    const std::string lcore = std::to_string(options->cpu);
    const char* eal_argv[] = {"cgn-pipeline-bench",
                              "--no-huge",
                              "--no-pci",
                              "-m",
                              memory.c_str(),
                              "--no-shconf",
                              "-l",
                              lcore.c_str(),
                              "--log-level=lib.eal:error",
                              "--no-telemetry"};
    if (rte_eal_init(sizeof eal_argv / sizeof eal_argv[0], const_cast<char**>(eal_argv)) < 0) {
        std::fprintf(stderr, "EAL initialisation failed\n");
        return 1;
    }
    int rc = 1;
    try {
        rc = run(*options);
    } catch (const Failure& e) {
        std::fprintf(stderr, "FAILED: %s\n", e.what());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
    }
    rte_eal_cleanup();
    return rc;
}
