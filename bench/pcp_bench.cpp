// cgn-pcp-bench: MAP requests per second that one core serves through the PCP service
// (control/pcp/service.hpp): decoding, policy (source, rate, quota, nonce, lifetime), the
// mapping table, an answer encoded, and, with the store, the changes written to LMDB in one
// commit per batch (group commit). The NAT behind it is a fast stand-in (a port set per
// external address), so what is measured is the control side; the dataplane's share (the
// explicit-mapping table and its RCU publication) is not in these figures.
//
// Per-request latency is the time from the start of its batch to the end of the batch's
// commit: an answer is sent only then. Memory: the C++ heap per mapping (mallinfo2), and the
// store's file size per mapping.
//
//   cgn-pcp-bench [--subscribers N] [--mappings-per-subscriber K] [--batch B] [--dir D]

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "control/pcp/service.hpp"

namespace pcp = cgn::ctl::pcp;
using cgn::common::Ipv4Address;

namespace {

// External addresses 198.51.100.0/24, ports 1024-65535; a subscriber's address is fixed by
// its number (paired pooling).
class BenchNat final : public pcp::NatControl {
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
        const uint32_t a = 0xc6336400u | (k.internal.value & 0xff);
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

std::vector<uint8_t> map_request(Ipv4Address from, uint16_t port, uint32_t lifetime) {
    pcp::Request r;
    r.opcode = pcp::Opcode::map;
    r.lifetime = lifetime;
    r.client_address = pcp::IpAddress::from_ipv4(from);
    pcp::MapData m;
    for (size_t i = 0; i < m.nonce.size(); ++i) m.nonce[i] = static_cast<uint8_t>(from.value >> (i % 4 * 8));
    m.protocol = 6;
    m.internal_port = port;
    m.external_address = pcp::IpAddress::ipv4_any();
    r.map = m;
    std::vector<uint8_t> b(pcp::kMaxMessage);
    b.resize(pcp::encode_request(r, b));
    return b;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

struct Result {
    double seconds = 0;
    size_t requests = 0;
    std::vector<double> latency_us;
    double heap_per_mapping = 0;
    double store_bytes_per_mapping = 0;
};

Result run(uint32_t subscribers, uint32_t per_subscriber, size_t batch, const std::string* dir) {
    std::vector<std::vector<uint8_t>> requests;
    std::vector<Ipv4Address> sources;
    for (uint32_t s = 0; s < subscribers; ++s)
        for (uint32_t k = 0; k < per_subscriber; ++k) {
            const Ipv4Address a{0x64400000u + s};  // 100.64.0.0/10
            requests.push_back(map_request(a, static_cast<uint16_t>(1000 + k), 3600));
            sources.push_back(a);
        }
    pcp::ServerSettings settings;
    settings.subscribers = {*cgn::common::Ipv4Prefix::parse("100.64.0.0/10")};
    settings.max_mappings_per_subscriber = per_subscriber;
    settings.request_burst = per_subscriber;
    cgn::common::SteadyClock clock;
    BenchNat nat;
    std::unique_ptr<pcp::MappingStore> store;
    if (dir != nullptr) store = std::make_unique<pcp::MappingStore>(*dir, uint64_t{8} << 30);
    const size_t heap_before = mallinfo2().uordblks;
    pcp::Server server(settings, nat, clock);
    pcp::Service service(server, store.get(), clock);
    Result r;
    std::vector<pcp::Received> received;
    const auto start = std::chrono::steady_clock::now();
    for (size_t i = 0; i < requests.size(); i += batch) {
        received.clear();
        for (size_t k = i; k < std::min(requests.size(), i + batch); ++k)
            received.push_back(pcp::Received{sources[k], 5350, requests[k], k + 1});
        const auto t0 = std::chrono::steady_clock::now();
        const auto answers = service.serve(received);
        const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
        if (answers.size() != received.size()) {
            std::fprintf(stderr, "cgn-pcp-bench: %zu answers to %zu requests\n", answers.size(), received.size());
            std::exit(1);
        }
        r.latency_us.insert(r.latency_us.end(), received.size(), us);
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    r.requests = requests.size();
    if (server.mappings().size() != requests.size() || service.tally().store_failures != 0) {
        std::fprintf(stderr, "cgn-pcp-bench: %zu mappings for %zu requests, %lu store failures (%s)\n",
                     server.mappings().size(), requests.size(),
                     static_cast<unsigned long>(service.tally().store_failures),
                     service.last_store_error().c_str());
        std::exit(1);
    }
    // The heap growth includes the fake NAT's port sets (a few bytes a port).
    r.heap_per_mapping = static_cast<double>(mallinfo2().uordblks - heap_before) / requests.size();
    if (dir != nullptr) {
        uint64_t bytes = 0;
        for (const auto& f : std::filesystem::directory_iterator(*dir))
            if (f.is_regular_file() && f.path().filename() == "data.mdb") bytes = f.file_size();
        r.store_bytes_per_mapping = static_cast<double>(bytes) / requests.size();
    }
    return r;
}

void print(const char* name, const Result& r) {
    std::printf("%-34s %9zu %10.0f %9.1f %9.1f %9.1f %9.0f", name, r.requests, r.requests / r.seconds,
                percentile(r.latency_us, 0.5), percentile(r.latency_us, 0.99),
                percentile(r.latency_us, 0.999), r.heap_per_mapping);
    if (r.store_bytes_per_mapping > 0) std::printf(" %9.0f", r.store_bytes_per_mapping);
    std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
    uint32_t subscribers = 100000, per_subscriber = 4;
    size_t batch = 64;
    std::string dir = "/var/tmp/cgn-pcp-bench";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i], v = argv[i + 1];
        if (a == "--subscribers") subscribers = static_cast<uint32_t>(std::stoul(v));
        else if (a == "--mappings-per-subscriber") per_subscriber = static_cast<uint32_t>(std::stoul(v));
        else if (a == "--batch") batch = std::stoul(v);
        else if (a == "--dir") dir = v;
        else {
            std::fprintf(stderr, "usage: cgn-pcp-bench [--subscribers N] [--mappings-per-subscriber K] [--batch B] [--dir D]\n");
            return 2;
        }
    }
    std::printf("cgn-pcp-bench: %u subscribers x %u MAP requests (new mappings), batches of %zu, one core\n",
                subscribers, per_subscriber, batch);
    std::printf("%-34s %9s %10s %9s %9s %9s %9s %9s\n", "scenario", "requests", "req/s", "p50 us",
                "p99 us", "p99.9 us", "heap B/m", "store B/m");
    print("no store", run(subscribers, per_subscriber, batch, nullptr));
    std::filesystem::remove_all(dir);
    print(("LMDB store, one commit per batch"), run(subscribers, per_subscriber, batch, &dir));
    std::filesystem::remove_all(dir);
    print("LMDB store, one commit per request", run(subscribers / 16, per_subscriber, 1, &dir));
    std::filesystem::remove_all(dir);
    return 0;
}
