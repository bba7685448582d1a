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
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <numeric>
#include <optional>
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
#include "dataplane/io/ring_port.hpp"
#include "dataplane/io/worker.hpp"

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

class Failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& what) {
    throw Failure(what);
}

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
    // Groups of scenarios to run: plain forward, the small table, the large table.
    bool plain = true;
    bool small = true;
    bool large = true;
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
                 "                      large (default: all; the ratio column needs plain)\n"
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
            o.plain = o.small = o.large = false;
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

// The mbuf pool, the two ring ports and the fixed set of mbufs that carry every round's batch.
class Rig {
public:
    explicit Rig(unsigned batch) : batch_(batch) {
        const unsigned ring_size = std::max(4096u, rte_align32pow2(2 * batch));
        pool_ = rte_pktmbuf_pool_create("bench_mbufs", batch + 8192, 0, 0,
                                        RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
        if (pool_ == nullptr) throw std::runtime_error("cannot create the mbuf pool");
        inside_ = std::make_unique<dp::RingPort>("bench_in", pool_, ring_size);
        outside_ = std::make_unique<dp::RingPort>("bench_out", pool_, ring_size);
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
        for (unsigned i = 0; i < n; ++i)
            std::memcpy(rte_pktmbuf_mtod(mbufs_[i], uint8_t*), frames.at(flows[i]), kFrameLength);
        if (rte_ring_enqueue_burst(rx, reinterpret_cast<void**>(mbufs_.data()), n, nullptr) != n)
            fail("RX ring full");
        const uint64_t start = rte_rdtsc_precise();
        while (rte_ring_count(rx) != 0) poll();
        const uint64_t cycles = rte_rdtsc_precise() - start;
        out_count_ = rte_ring_dequeue_burst(tx, reinterpret_cast<void**>(out_.data()),
                                            static_cast<unsigned>(out_.size()), nullptr);
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

// A real worker on the rig's ports, configured like the dataplane test harness (test topology,
// pool 198.51.100.0/24), with its own clock and counters.
class WorkerUnderTest {
public:
    WorkerUnderTest(Rig& rig, const Topology& t, unsigned id, uint32_t max_sessions,
                    uint32_t neighbor_capacity, uint64_t seed)
        : rig_(rig), counters_(std::make_unique<common::WorkerCounters>()) {
        dp::WorkerSettings s;
        s.worker_id = id;
        s.socket_id = SOCKET_ID_ANY;
        s.seed = seed;
        s.inside = {rig.inside().port_id(), 0, 0, rig.inside().mac(), t.inside, std::nullopt};
        s.outside = {rig.outside().port_id(), 0, 0, rig.outside().mac(), t.outside, t.gateway};
        s.nat.pool = {t.pool};
        s.nat.max_sessions = max_sessions;
        s.neighbor_capacity = neighbor_capacity;
        worker_ = std::make_unique<dp::Worker>(s, rig.pool(), *counters_, clock_);
    }

    dp::Worker& worker() { return *worker_; }
    // Moves the worker's clock for n more packets (kPacketsPerMs).
    void count_packets(uint64_t n) {
        unclocked_ += n;
        clock_.advance_ms(unclocked_ / kPacketsPerMs);
        unclocked_ %= kPacketsPerMs;
    }
    common::CounterSnapshot counters() const {
        common::CounterSnapshot v{};
        for (size_t i = 0; i < v.size(); ++i)
            v[i] = counters_->values[i].load(std::memory_order_relaxed);
        return v;
    }

    // Frames the worker receives outside the timed rounds (ARP): injected in chunks, polled
    // until consumed; whatever it sends in answer is freed.
    void exchange(dp::RingPort& port, const std::vector<std::vector<uint8_t>>& frames) {
        for (size_t base = 0; base < frames.size(); base += rig_.batch()) {
            const size_t end = std::min(frames.size(), base + rig_.batch());
            for (size_t i = base; i < end; ++i) port.inject(frames[i]);
            while (rte_ring_count(port.rx_ring()) != 0) worker_->poll_once();
            worker_->poll_once();
            rig_.inside().drain();
            rig_.outside().drain();
        }
    }

private:
    Rig& rig_;
    common::ManualClock clock_;
    uint64_t unclocked_ = 0;
    std::unique_ptr<common::WorkerCounters> counters_;
    std::unique_ptr<dp::Worker> worker_;
};

std::vector<uint8_t> arp_request(MacAddress sender_mac, Ipv4Address sender_ip,
                                 Ipv4Address target_ip) {
    return PacketBuilder()
        .ethernet(sender_mac, MacAddress::broadcast())
        .arp(common::arp::kOpRequest, sender_mac, sender_ip, MacAddress{}, target_ip)
        .build();
}

// The outside gateway, and the subscribers of the first `flows` flows when out2in is measured,
// announce themselves with an ARP request for our address (the worker learns them, RFC 826).
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
    const auto c = w.counters();
    const uint64_t expected = 1 + (subscribers ? subscriber_count(flows) : 0);
    if (c[static_cast<size_t>(Counter::arp_entries_learned)] != expected)
        fail("ARP: " + std::to_string(c[static_cast<size_t>(Counter::arp_entries_learned)]) +
             " neighbours learned, expected " + std::to_string(expected));
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

void check_counters(const common::CounterSnapshot& before, const common::CounterSnapshot& after,
                    std::initializer_list<CounterChange> expected, const char* scenario) {
    for (size_t i = 0; i < before.size(); ++i) {
        uint64_t want = 0;
        for (const auto& e : expected)
            if (static_cast<size_t>(e.counter) == i) want = e.delta;
        const uint64_t got = after[i] - before[i];
        if (got != want)
            fail(std::string(scenario) + ": counter " + std::string(common::kCounterNames[i]) +
                 " moved by " + std::to_string(got) + ", expected " + std::to_string(want));
    }
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

// Runs rounds until `max_rounds` or until `min_cycles` were spent in poll (when non-zero).
// choose(round, flows) fills the round's flow indices and returns how many (0: stop);
// check(round, flows, n) verifies the output of the rounds it is asked about.
template <class Choose, class Poll, class Check>
Result measure(Rig& rig, const std::string& name, const FrameSet& frames, rte_ring* rx,
               rte_ring* tx, uint64_t max_rounds, uint64_t min_cycles, Choose&& choose, Poll&& poll,
               Check&& check) {
    Result r;
    r.name = name;
    std::vector<uint32_t> flows(rig.batch());
    std::vector<std::pair<unsigned, uint64_t>> rounds;  // packets, cycles
    for (uint64_t round = 0; round < max_rounds && (min_cycles == 0 || r.cycles < min_cycles);
         ++round) {
        const unsigned n = choose(round, flows.data());
        if (n == 0) break;
        const uint64_t cycles = rig.round(frames, flows.data(), n, rx, tx, poll);
        rounds.emplace_back(n, cycles);
        r.cycles += cycles;
        r.packets += n;
        ++r.rounds;
        if (round % kCheckEvery == 0) check(round, flows.data(), n);
    }
    if (rounds.empty()) fail(name + ": no round ran");
    const size_t slices = std::min<size_t>(kSlices, rounds.size());
    for (size_t k = 0; k < slices; ++k) {
        uint64_t packets = 0, cycles = 0;
        for (size_t i = rounds.size() * k / slices; i < rounds.size() * (k + 1) / slices; ++i) {
            packets += rounds[i].first;
            cycles += rounds[i].second;
        }
        const double rate = static_cast<double>(packets) / seconds_of(cycles) / 1e6;
        r.slowest_mpps = k == 0 ? rate : std::min(r.slowest_mpps, rate);
        r.fastest_mpps = k == 0 ? rate : std::max(r.fastest_mpps, rate);
    }
    return r;
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
    std::printf("\n%-36s %10s %7s %7s %7s %8s  %s\n", "scenario", "packets", "Mpps", "ns/pkt",
                "cyc/pkt", "vs plain", "Mpps of 5 slices: min-max");
    for (const Result& r : results) {
        const double ns = seconds_of(r.cycles) * 1e9 / static_cast<double>(r.packets);
        const double cyc = static_cast<double>(r.cycles) / static_cast<double>(r.packets);
        std::printf("%-36s %10llu %7.2f %7.1f %7.1f", r.name.c_str(),
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
                    {Counter::subscribers_paired, subscribers}},
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

std::string count_label(uint32_t n) {
    if (n % (1u << 20) == 0) return std::to_string(n >> 20) + "M";
    if (n % 1024 == 0) return std::to_string(n >> 10) + "K";
    return std::to_string(n);
}

// Table size of a worker that will hold `flows` sessions: a quarter spare, so the measured
// table is about as full as a production one sized with headroom (at least the default 64K).
uint32_t table_for(uint32_t flows) {
    return std::max<uint32_t>(flows + flows / 4, 1u << 16);
}

int run(const Options& o) {
    const Topology t;
    const uint64_t min_cycles =
        static_cast<uint64_t>(o.seconds * static_cast<double>(rte_get_tsc_hz()));
    print_header(o, t);
    Rig rig(o.batch);
    std::vector<Result> results;
    std::optional<double> plain_mpps;

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
