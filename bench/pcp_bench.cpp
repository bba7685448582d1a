// cgn-pcp-bench: MAP requests per second that one control core serves through the PCP service
// (control/pcp/service.hpp): decoding, policy (source, rate, quota, nonce, lifetime), the
// server's mapping table, the answer encoded, and, with the store, the changes written to
// LMDB in one commit per step of the loop (group commit) before the answers are released.
//
// Two NATs behind the service:
//   standin    a port set per external address that answers at once: the control side alone.
//   dataplane  cgnd's (control/pcp_nat.hpp, PcpDataplaneNat): each MAP goes as a pcp_hold
//              command through a real dp::ControlChannel to the dp::Worker owning the
//              subscriber, polling on an EAL lcore of its own, which runs
//              NatEngine::hold_mapping (pairs the subscriber, claims a port block in the shared
//              block map, takes a port, inserts the mapping in its rte_hash tables) and hands
//              the command back; the answer is released by the step that collects it (after the
//              commit). No RCU publication is involved: the mapping is in the owner's table and
//              its block in the block map before the worker answers (control/pcp_nat.hpp).
// The loop is cgnd's control loop without the transport (punt rings, answer frames): each step
// polls the channel, then serves up to --batch new requests and whatever the workers answered
// (ControlChannel::poll, then Service::serve), taking new requests only while fewer than
// --window commands are out at the workers (submitted, not collected by poll() yet; default
// --batch, so that no queue builds up in the done rings: see docs/performance.md). Every request
// asks for a new mapping (--subscribers x --mappings-per-subscriber, TCP). Per-request latency:
// from the step that takes the request to the end of the step that releases its answer.
//
// Every run checks itself: each request answered exactly once, SUCCESS, a distinct external
// endpoint in the pool; the server (and the workers) hold exactly the mappings asked for; no
// request refused, dropped or left waiting; no store failure. Any mismatch: exit status 1.
//
// Memory: the C++ heap per mapping (mallinfo2, the control side; with the stand-in, its port
// sets too), the store's file per mapping, and the workers': what they reserve at start per
// mapping slot (--max-sessions), what the run added to the EAL heap, and a held mapping's own
// entries (its two mapping-table entries, measured on an rte_hash of the same size, and its
// 32-byte Mapping slot with its free-list entry). Last, what a worker spends on a MAP without
// the channel: NatEngine::hold_mapping called on this thread for the same mappings.
//
//   cgn-pcp-bench [--help] ...   (docs/performance.md, "PCP")

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

#include "bench/pcp_dataplane_rig.hpp"
#include "common/clock.hpp"
#include "control/pcp/codec.hpp"
#include "control/pcp/service.hpp"

namespace pcp = cgn::ctl::pcp;
namespace bench = cgn::bench;
using cgn::common::Ipv4Address;
using cgn::common::Ipv4Prefix;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint32_t kFirstSubscriber = 0x64400100u;  // 100.64.1.0, in 100.64.0.0/10
constexpr uint32_t kRequestedLifetime = 3600;
const Ipv4Prefix kPool = *Ipv4Prefix::parse("198.51.100.0/24");
// A mapping's Mapping slot (NatEngine::Mapping, static_assert'ed 32 bytes) and its free-list
// entry (a uint32_t slot number).
constexpr double kMappingSlotBytes = 32 + 4;

class Failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& what) { throw Failure(what); }

// ---- options -------------------------------------------------------------------------------

struct Options {
    bool standin = true;
    bool dataplane = true;
    uint32_t subscribers = 100000;
    uint32_t per_subscriber = 4;
    size_t batch = 64;  // cgnd's control loop serves up to 64 requests a step
    size_t window = 0;  // 0: batch
    unsigned workers = 1;
    uint32_t max_sessions = 0;  // per worker; 0: from the mappings
    uint32_t port_block_size = 128;
    unsigned memory_mb = 0;  // 0: from max_sessions
    std::string dir = "/var/tmp/cgn-pcp-bench";
    bool quick = false;
    // Scenarios to run: without the store, one commit per step, one commit per request.
    bool no_store = true;
    bool commit_per_step = true;
    bool commit_per_request = true;
};

void usage(FILE* out) {
    std::fprintf(
        out,
        "usage: cgn-pcp-bench [options]\n"
        "  --nat standin|dataplane|both   the NAT behind the service (default both)\n"
        "  --subscribers N                subscribers asking (default 100000)\n"
        "  --mappings-per-subscriber K    MAP requests each, new mappings (default 4)\n"
        "  --batch B                      new requests served per step (default 64)\n"
        "  --window W                     commands out at the workers (not collected yet)\n"
        "                                 at most (default B: a step takes as many new\n"
        "                                 requests as the workers have given back)\n"
        "  --workers N                    dataplane workers, one lcore each (default 1)\n"
        "  --max-sessions N               per worker (default: room for the mappings)\n"
        "  --port-block-size N            ports per block (default 128: a block for each\n"
        "                                 of 100,000 subscribers on a /24 pool)\n"
        "  --memory MB                    EAL -m (default: from --max-sessions)\n"
        "  --dir D                        the LMDB store's directory, emptied (default\n"
        "                                 /var/tmp/cgn-pcp-bench)\n"
        "  --only LIST                    scenarios, comma-separated: nostore, step, request\n"
        "                                 (default: all three)\n"
        "  --quick                        5,000 subscribers: a smoke run of a few seconds\n");
}

std::optional<Options> parse_options(int argc, char** argv) {
    Options o;
    bool subscribers_given = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "--help") {
            usage(stdout);
            std::exit(0);
        }
        if (a == "--quick") {
            o.quick = true;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "cgn-pcp-bench: %s needs a value (or is unknown)\n", argv[i]);
            return std::nullopt;
        }
        const std::string v = argv[++i];
        auto number = [&](double low, double high) -> std::optional<double> {
            char* end = nullptr;
            const double d = std::strtod(v.c_str(), &end);
            if (end == v.c_str() || *end != '\0' || d < low || d > high) {
                std::fprintf(stderr, "cgn-pcp-bench: %s: %s is not in [%g, %g]\n", argv[i - 1],
                             v.c_str(), low, high);
                return std::nullopt;
            }
            return d;
        };
        std::optional<double> d;
        if (a == "--nat") {
            o.standin = v == "standin" || v == "both";
            o.dataplane = v == "dataplane" || v == "both";
            if (!o.standin && !o.dataplane) {
                std::fprintf(stderr, "cgn-pcp-bench: --nat standin, dataplane or both\n");
                return std::nullopt;
            }
            continue;
        }
        if (a == "--dir") {
            o.dir = v;
            continue;
        }
        if (a == "--only") {
            o.no_store = o.commit_per_step = o.commit_per_request = false;
            for (std::string_view rest = v; !rest.empty();) {
                const size_t comma = rest.find(',');
                const std::string_view item = rest.substr(0, comma);
                rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
                if (item == "nostore") {
                    o.no_store = true;
                } else if (item == "step") {
                    o.commit_per_step = true;
                } else if (item == "request") {
                    o.commit_per_request = true;
                } else {
                    std::fprintf(stderr, "cgn-pcp-bench: --only: no scenario %.*s\n",
                                 static_cast<int>(item.size()), item.data());
                    return std::nullopt;
                }
            }
            continue;
        }
        if (a == "--subscribers") {
            if ((d = number(16, 4'000'000))) o.subscribers = static_cast<uint32_t>(*d);
            subscribers_given = true;
        } else if (a == "--mappings-per-subscriber") {
            if ((d = number(1, 64))) o.per_subscriber = static_cast<uint32_t>(*d);
        } else if (a == "--batch") {
            if ((d = number(1, 4096))) o.batch = static_cast<size_t>(*d);
        } else if (a == "--window") {
            if ((d = number(1, 1 << 20))) o.window = static_cast<size_t>(*d);
        } else if (a == "--workers") {
            if ((d = number(1, 16))) o.workers = static_cast<unsigned>(*d);
        } else if (a == "--max-sessions") {
            if ((d = number(1024, 1u << 26))) o.max_sessions = static_cast<uint32_t>(*d);
        } else if (a == "--port-block-size") {
            if ((d = number(8, 32768))) o.port_block_size = static_cast<uint32_t>(*d);
        } else if (a == "--memory") {
            if ((d = number(256, 1 << 20))) o.memory_mb = static_cast<unsigned>(*d);
        } else {
            std::fprintf(stderr, "cgn-pcp-bench: unknown option %s\n", argv[i - 1]);
            usage(stderr);
            return std::nullopt;
        }
        if (!d) return std::nullopt;
    }
    if (o.quick && !subscribers_given) o.subscribers = 5000;
    if (o.window == 0) o.window = o.batch;
    o.window = std::max(o.window, o.batch);
    const uint64_t mappings = uint64_t{o.subscribers} * o.per_subscriber;
    if (o.max_sessions == 0) {
        // A quarter more than a worker's expected share (the subscribers hash over the
        // workers), rounded up to a power of two as rte_hash rounds its tables.
        const uint64_t share = mappings / o.workers + mappings / o.workers / 4 + 1024;
        o.max_sessions = 1024;
        while (o.max_sessions < share) o.max_sessions *= 2;
    }
    if (o.memory_mb == 0)  // about 270 B of EAL memory a slot (docs/performance.md), room to spare
        o.memory_mb =
            static_cast<unsigned>(512 + uint64_t{o.max_sessions} * o.workers * 400 / (1 << 20));
    return o;
}

// ---- the requests and the stand-in NAT -----------------------------------------------------

struct Workload {
    std::vector<std::vector<uint8_t>> requests;
    std::vector<Ipv4Address> sources;
    size_t size() const { return requests.size(); }
};

std::vector<uint8_t> map_request(Ipv4Address from, uint16_t port) {
    pcp::Request r;
    r.opcode = pcp::Opcode::map;
    r.lifetime = kRequestedLifetime;
    r.client_address = pcp::IpAddress::from_ipv4(from);
    pcp::MapData m;
    for (size_t i = 0; i < m.nonce.size(); ++i)
        m.nonce[i] = static_cast<uint8_t>(from.value >> (i % 4 * 8));
    m.protocol = 6;
    m.internal_port = port;
    m.external_address = pcp::IpAddress::ipv4_any();
    r.map = m;
    std::vector<uint8_t> b(pcp::kMaxMessage);
    b.resize(pcp::encode_request(r, b));
    return b;
}

Workload make_workload(uint32_t subscribers, uint32_t per_subscriber) {
    Workload w;
    for (uint32_t s = 0; s < subscribers; ++s)
        for (uint32_t k = 0; k < per_subscriber; ++k) {
            const Ipv4Address a{kFirstSubscriber + s};
            w.requests.push_back(map_request(a, static_cast<uint16_t>(1000 + k)));
            w.sources.push_back(a);
        }
    return w;
}

// External addresses of the pool, ports 1024-65535; a subscriber's address is fixed by its
// number (paired pooling).
class StandInNat final : public pcp::NatControl {
public:
    bool static_mapping(const pcp::MappingKey&) override { return false; }
    void submit(const pcp::NatRequest& q) override {
        ready_.push_back({q.id, q.kind == pcp::NatRequest::Kind::map
                                    ? reserve(q.key)
                                    : pcp::Grant{pcp::ResultCode::no_resources, {}}});
    }
    void release(const pcp::MappingKey&, const pcp::Endpoint& e) override {
        ports_[e.address.value & 0xff].erase(e.port);
    }
    std::vector<pcp::NatAnswer> take_answers() override { return std::exchange(ready_, {}); }

private:
    pcp::Grant reserve(const pcp::MappingKey& k) {
        const uint32_t a = kPool.address.value | (k.internal.value & 0xff);
        auto& used = ports_[a & 0xff];
        uint16_t& next = next_[a & 0xff];
        for (unsigned tries = 0; tries < 64512; ++tries) {
            next = static_cast<uint16_t>(next < 1024 ? 1024 : next + 1);
            if (used.insert(next).second) return {pcp::ResultCode::success, {Ipv4Address{a}, next}};
        }
        return {pcp::ResultCode::no_resources, {}};
    }

    std::unordered_set<uint16_t> ports_[256];
    uint16_t next_[256] = {};
    std::vector<pcp::NatAnswer> ready_;
};

// ---- one scenario --------------------------------------------------------------------------

struct Scenario {
    bool wanted;
    const char* name;
    uint32_t subscribers;
    size_t batch;
    size_t window;
    bool store;
};

struct Result {
    size_t requests = 0;
    double seconds = 0;
    std::vector<float> latency_us;
    size_t answering_steps = 0;  // steps that released answers (each one commit with a store)
    double heap_per_mapping = 0;
    double store_per_mapping = 0;
    // Dataplane only.
    bench::MemoryUsage reserved;
    uint64_t mapping_slots = 0;
    double eal_growth_per_mapping = 0;
    uint64_t subscribers_paired = 0;
    uint64_t events = 0;
};

double heap_bytes() {
    const struct mallinfo2 m = mallinfo2();
    return static_cast<double>(m.uordblks + m.hblkhd);
}

// Checks an answer: a MAP SUCCESS with a lifetime and an external endpoint of the pool.
uint64_t external_of(const pcp::Answer& a) {
    const auto r = pcp::decode_response(a.bytes);
    if (!r || r->opcode != pcp::Opcode::map || !r->map)
        fail("answer " + std::to_string(a.tag) + " is not a MAP response");
    if (r->result != pcp::ResultCode::success)
        fail("answer " + std::to_string(a.tag) + ": result " +
             std::to_string(static_cast<int>(r->result)) + ", not SUCCESS");
    const auto ext = r->map->external_address.ipv4();
    if (r->lifetime == 0 || !ext || !kPool.contains(*ext) || r->map->external_port < 1024)
        fail("answer " + std::to_string(a.tag) +
             ": no lifetime or an external endpoint "
             "outside the pool");
    return uint64_t{ext->value} << 16 | r->map->external_port;
}

bench::RigSettings rig_settings(const Options& o, uint32_t subscribers) {
    bench::RigSettings rs;
    rs.workers = o.workers;
    rs.max_sessions = o.max_sessions;
    rs.max_subscribers = std::max(o.max_sessions / 4, subscribers / o.workers * 5 / 4 + 64);
    rs.port_block_size = o.port_block_size;
    rs.pool = kPool;
    return rs;
}

Result run(const Options& o, bool dataplane, const Scenario& s) {
    const Workload w = make_workload(s.subscribers, o.per_subscriber);
    const size_t n = w.size();
    Result r;
    r.requests = n;
    // Everything the loop writes, allocated before the heap is measured.
    r.latency_us.assign(n, 0);
    std::vector<Clock::time_point> arrival(n);
    std::vector<uint64_t> externals(n, 0);
    std::vector<pcp::Received> received;
    received.reserve(s.batch);

    std::unique_ptr<pcp::MappingStore> store;
    if (s.store) {
        std::filesystem::remove_all(o.dir);
        store = std::make_unique<pcp::MappingStore>(o.dir, uint64_t{8} << 30);
    }
    std::unique_ptr<bench::DataplaneRig> rig;
    StandInNat standin;
    if (dataplane) {
        rig = std::make_unique<bench::DataplaneRig>(rig_settings(o, s.subscribers));
        r.reserved = rig->reserved();
        r.mapping_slots = rig->mapping_slots();
    }
    pcp::NatControl& nat = rig ? static_cast<pcp::NatControl&>(rig->nat()) : standin;

    pcp::ServerSettings settings;
    settings.subscribers = {*Ipv4Prefix::parse("100.64.0.0/10")};
    settings.max_mappings_per_subscriber = o.per_subscriber;
    settings.request_burst = o.per_subscriber;
    cgn::common::SteadyClock clock;
    cgn::common::SystemClock wall;
    const double heap_before = heap_bytes();
    const double eal_before = bench::memory_usage().eal;
    pcp::Server server(settings, nat, clock);
    pcp::Service service(server, store.get(), wall);

    size_t next = 0, answered = 0;
    uint64_t steps = 0;
    Clock::time_point last_answer = Clock::now();
    const Clock::time_point start = Clock::now();
    while (answered < n) {
        if (rig) rig->poll();
        received.clear();
        // The window counts the commands out at the workers (submitted, not collected by
        // poll() yet): what a step may add without the workers falling behind.
        const size_t out = rig ? rig->outstanding() : 0;
        const size_t room = out < s.window ? s.window - out : 0;
        const size_t take = std::min({s.batch, n - next, room});
        const Clock::time_point t0 = Clock::now();
        for (size_t k = next; k < next + take; ++k) {
            received.push_back(pcp::Received{w.sources[k], 5350, w.requests[k], k + 1});
            arrival[k] = t0;
        }
        next += take;
        const std::vector<pcp::Answer> answers = service.serve(received);
        const Clock::time_point t1 = Clock::now();
        if (!service.dropped_tags().empty())
            fail(std::to_string(service.dropped_tags().size()) + " requests dropped");
        if (!answers.empty()) {
            ++r.answering_steps;
            last_answer = t1;
        }
        for (const pcp::Answer& a : answers) {
            const size_t k = a.tag - 1;
            if (a.tag == 0 || k >= next || externals[k] != 0)
                fail("an answer to no request, or a second one (tag " + std::to_string(a.tag) +
                     ")");
            externals[k] = external_of(a);
            r.latency_us[k] = std::chrono::duration<float, std::micro>(t1 - arrival[k]).count();
        }
        answered += answers.size();
        if (++steps % 4096 == 0 && t1 - last_answer > std::chrono::seconds(10))
            fail("no answer for 10 s: " + std::to_string(n - answered) + " requests left");
    }
    r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    r.heap_per_mapping = (heap_bytes() - heap_before) / static_cast<double>(n);

    if (server.mappings().size() != n || server.waiting() != 0)
        fail(std::to_string(server.mappings().size()) + " mappings, " +
             std::to_string(server.waiting()) + " waiting, for " + std::to_string(n) + " requests");
    if (service.tally().store_failures != 0) fail("store failures: " + service.last_store_error());
    std::sort(externals.begin(), externals.end());
    if (std::adjacent_find(externals.begin(), externals.end()) != externals.end())
        fail("two mappings were given the same external endpoint");
    if (store) {
        uint64_t bytes = 0;
        for (const auto& f : std::filesystem::directory_iterator(o.dir))
            if (f.is_regular_file() && f.path().filename() == "data.mdb") bytes = f.file_size();
        r.store_per_mapping = static_cast<double>(bytes) / static_cast<double>(n);
    }
    if (rig) {
        r.eal_growth_per_mapping =
            (bench::memory_usage().eal - eal_before) / static_cast<double>(n);
        rig->stop();
        if (rig->outstanding() != 0 || rig->nat().tally().refused != 0 ||
            rig->nat().tally().submitted != n)
            fail("worker commands: " + std::to_string(rig->nat().tally().submitted) +
                 " submitted, " + std::to_string(rig->nat().tally().refused) + " refused, " +
                 std::to_string(rig->outstanding()) + " outstanding");
        if (rig->held_mappings() != n || rig->mappings() != n)
            fail("the workers hold " + std::to_string(rig->held_mappings()) + " PCP mappings (" +
                 std::to_string(rig->mappings()) + " mappings) for " + std::to_string(n) +
                 " requests");
        r.subscribers_paired = rig->subscribers();
        if (r.subscribers_paired != s.subscribers)
            fail(std::to_string(r.subscribers_paired) + " subscribers paired, not " +
                 std::to_string(s.subscribers));
        r.events = rig->events();
    }
    if (store) std::filesystem::remove_all(o.dir);
    return r;
}

double percentile(std::vector<float> v, double p) {
    if (v.empty()) return 0;
    const size_t k = std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())));
    std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
    return v[k];
}

void print(const char* nat, const Scenario& s, const Result& r) {
    std::printf("%-9s %-34s %8zu %9.0f %8.1f %8.1f %8.1f %7.0f", nat, s.name, r.requests,
                static_cast<double>(r.requests) / r.seconds, percentile(r.latency_us, 0.5),
                percentile(r.latency_us, 0.99), percentile(r.latency_us, 0.999),
                r.heap_per_mapping);
    if (s.store)
        std::printf(" %7.0f", r.store_per_mapping);
    else
        std::printf(" %7s", "-");
    std::printf(" %8.1f\n",
                static_cast<double>(r.requests) / static_cast<double>(r.answering_steps));
    std::fflush(stdout);
}

void print_worker_memory(const Options& o, const Result& r, double table_entry) {
    const double slots = static_cast<double>(r.mapping_slots);
    std::printf(
        "\nworkers' memory (%u worker(s), --max-sessions %u: %.0f mapping slots):\n"
        "  reserved at start: EAL heap %.1f MiB + C++ heap %.1f MiB = %.0f B a mapping slot\n"
        "    (with the slot's session, filter and subscriber share, the neighbour and fragment\n"
        "    tables and the port bitmaps of the %zu pool addresses)\n"
        "  added by the run: EAL heap %+.1f B a mapping (the worker allocates nothing)\n"
        "  a held mapping's own entries: 2 mapping-table entries x %.1f B + Mapping slot and\n"
        "    free-list entry %.0f B = %.0f B\n"
        "  subscribers paired %lu, block and quota events taken %lu\n",
        o.workers, o.max_sessions, slots, r.reserved.eal / (1 << 20), r.reserved.heap / (1 << 20),
        (r.reserved.eal + r.reserved.heap) / slots, static_cast<size_t>(kPool.size()),
        r.eal_growth_per_mapping, table_entry, kMappingSlotBytes,
        2 * table_entry + kMappingSlotBytes, static_cast<unsigned long>(r.subscribers_paired),
        static_cast<unsigned long>(r.events));
}

}  // namespace

int main(int argc, char** argv) {
    const auto options = parse_options(argc, argv);
    if (!options) return 2;
    const Options& o = *options;
    try {
        std::printf(
            "cgn-pcp-bench: %u subscribers x %u MAP requests (new mappings, TCP), up to %zu "
            "new requests a step, at most %zu out at the workers\n",
            o.subscribers, o.per_subscriber, o.batch, o.window);
        if (o.dataplane) {
            if (!bench::init_eal(o.workers, o.memory_mb)) return 1;
            std::printf("dataplane: %u worker(s), --max-sessions %u, port blocks of %u, pool %s\n",
                        o.workers, o.max_sessions, o.port_block_size, kPool.to_string().c_str());
        }
        const uint32_t few = std::max<uint32_t>(16, o.subscribers / 16);
        const Scenario scenarios[] = {
            {o.no_store, "no store", o.subscribers, o.batch, o.window, false},
            {o.commit_per_step, "LMDB, one commit per step", o.subscribers, o.batch, o.window,
             true},
            {o.commit_per_request, "LMDB, one commit per request", few, 1, 1, true},
        };
        std::printf("%-9s %-34s %8s %9s %8s %8s %8s %7s %7s %8s\n", "NAT", "scenario", "requests",
                    "req/s", "p50 us", "p99 us", "p99.9 us", "heap B", "store B", "ans/step");
        std::optional<Result> first_dataplane;
        for (const bool dataplane : {false, true}) {
            if (dataplane ? !o.dataplane : !o.standin) continue;
            for (const Scenario& s : scenarios) {
                if (!s.wanted) continue;
                Result r = run(o, dataplane, s);
                print(dataplane ? "dataplane" : "standin", s, r);
                if (dataplane && !first_dataplane) first_dataplane = std::move(r);
            }
        }
        if (first_dataplane) {
            print_worker_memory(o, *first_dataplane,
                                bench::mapping_table_bytes_per_entry(2 * o.max_sessions));
            const double ns = bench::hold_mapping_ns(rig_settings(o, o.subscribers), o.subscribers,
                                                     o.per_subscriber);
            std::printf(
                "  NatEngine::hold_mapping alone (this thread, no channel): %.0f ns a new "
                "mapping\n",
                ns);
        }
        std::printf(
            "(heap B, store B: per mapping; ans/step: answers released per step that "
            "released any, i.e. per commit with a store)\n");
    } catch (const Failure& e) {
        std::fprintf(stderr, "cgn-pcp-bench: FAILED: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cgn-pcp-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
