#include "tests/fuzz/dataplane/packet_path_world.hpp"

#include <rte_bus_vdev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>

#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "dataplane/io/neighbor_table.hpp"
#include "dataplane/io/worker.hpp"
#include "dataplane/nat/steering.hpp"

namespace cgn::fuzz {

using common::Counter;
using common::load_be16;
using common::load_be32;
using common::PacketBuilder;
namespace eth = common::eth;
namespace ipv4 = common::ipv4;
namespace icmp = common::icmp;
namespace arp = common::arp;

namespace {

constexpr unsigned kHarnessMbufs = 2047;
constexpr unsigned kInputMbufs = 1023;
constexpr unsigned kRingSize = 2048;  // per RX/TX queue: holds every frame of an input
constexpr unsigned kNeighborCapacity = 16;
// Loops in a row that move no counter before the workers count as quiet: one more than the
// loops the neighbour housekeeping needs to visit every slot of a table.
constexpr unsigned kQuietPolls = kNeighborCapacity / dp::Worker::kNeighborTickBudget + 2;
constexpr unsigned kMaxPolls = 100000;  // beyond this, the workers never settle: a bug
constexpr uint64_t kFragmentTimeoutMs = 2000;

unsigned g_world = 0;  // unique mempool and ring names
const common::MacAddress kSilentSubscriberMac{{0x02, 0, 0, 0, 0x33, 0x01}};
constexpr size_t kKeptRequests = 8;        // requests kept for 0x85 answer items
constexpr size_t kMaxPcpMessage = 1100;    // RFC 6887 §7: the control thread answers no longer
constexpr uint16_t kPcpClientPort = 5350;  // where an unsolicited message goes (§14.1)
constexpr uint32_t kNewHost = 0xfa;        // 100.64.0.250: the host `who` 3 names
// The PCP items' fixed part after the tag (a hold's filters follow it): hold, release, peer,
// paired, answer.
constexpr size_t kPcpItemLength[] = {7, 3, 9, 1, 4};
constexpr size_t kFilterLength = 7;

// The endpoints of an Ethernet frame's TCP or UDP packet, when it has them (IPv4, a whole
// packet or a first fragment with the ports).
template <class Endpoints>
std::optional<Endpoints> endpoints_of(const uint8_t* f, size_t length) {
    if (length < eth::kHeaderLength + ipv4::kMinHeaderLength ||
        load_be16(f + eth::kType) != eth::kTypeIpv4)
        return std::nullopt;
    const uint8_t* ip = f + eth::kHeaderLength;
    const size_t ihl = (ip[ipv4::kVersionIhl] & 0x0f) * 4u;
    const uint8_t protocol = ip[ipv4::kProtocol];
    if ((ip[ipv4::kVersionIhl] >> 4) != 4 || ihl < ipv4::kMinHeaderLength ||
        length < eth::kHeaderLength + ihl + 4 ||
        (load_be16(ip + ipv4::kFragment) & ipv4::kFragmentOffsetMask) != 0 ||
        (protocol != ipv4::kProtoTcp && protocol != ipv4::kProtoUdp))
        return std::nullopt;
    return Endpoints{protocol, load_be32(ip + ipv4::kSrc), load_be16(ip + ihl),
                     load_be32(ip + ipv4::kDst), load_be16(ip + ihl + 2)};
}

uint8_t protocol_of(uint8_t who) {
    static constexpr uint8_t kProtocols[] = {ipv4::kProtoUdp, ipv4::kProtoTcp, ipv4::kProtoIcmp,
                                             ipv4::kProtoUdp};
    return kProtocols[(who >> 2) & 3];
}

// The bytes of an mbuf's buffer outside its frame (headroom and tailroom) are poisoned while a
// worker holds an injected frame, so reading past the frame it received is an ASan error even
// though DPDK's memory is not ASan's heap.
void poison_outside_frame(rte_mbuf* m) {
    auto* buffer = static_cast<uint8_t*>(m->buf_addr);
    ASAN_POISON_MEMORY_REGION(buffer, m->data_off);
    const uint32_t end = m->data_off + m->data_len;
    ASAN_POISON_MEMORY_REGION(buffer + end, m->buf_len - end);
}

void unpoison_buffer(rte_mempool*, void*, void* object, unsigned) {
    auto* m = static_cast<rte_mbuf*>(object);
    ASAN_UNPOISON_MEMORY_REGION(m->buf_addr, m->buf_len);
}

}  // namespace

InputWriter& InputWriter::frame(bool outside, unsigned queue, const std::vector<uint8_t>& bytes) {
    const size_t length = std::min(bytes.size(), PacketPathWorld::kMaxFrame);
    bytes_.push_back(static_cast<uint8_t>((outside ? 1 : 0) | (queue != 0 ? 2 : 0)));
    bytes_.push_back(static_cast<uint8_t>(length >> 8));
    bytes_.push_back(static_cast<uint8_t>(length));
    bytes_.insert(bytes_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(length));
    return *this;
}

InputWriter& InputWriter::tick(uint8_t advance) {
    bytes_.push_back(PacketPathWorld::kTickTag);
    bytes_.push_back(advance);
    return *this;
}

uint8_t InputWriter::who(Host host, uint8_t protocol) {
    const uint8_t p = protocol == ipv4::kProtoTcp ? 1 : protocol == ipv4::kProtoIcmp ? 2 : 0;
    return static_cast<uint8_t>(host | (p << 2));
}

void InputWriter::put16(uint16_t v) {
    bytes_.push_back(static_cast<uint8_t>(v >> 8));
    bytes_.push_back(static_cast<uint8_t>(v));
}

void InputWriter::put32(uint32_t v) {
    put16(static_cast<uint16_t>(v >> 16));
    put16(static_cast<uint16_t>(v));
}

InputWriter& InputWriter::hold(uint8_t who, uint16_t port, const std::vector<Filter>& filters,
                               uint16_t suggested_port, uint8_t flags) {
    bytes_.push_back(PacketPathWorld::kHoldTag);
    bytes_.push_back(who);
    put16(port);
    put16(suggested_port);
    bytes_.push_back(flags);
    bytes_.push_back(static_cast<uint8_t>(std::min<size_t>(filters.size(), dp::kMaxPeerFilters)));
    for (size_t i = 0; i < filters.size() && i < dp::kMaxPeerFilters; ++i) {
        put32(filters[i].addr.value);
        bytes_.push_back(static_cast<uint8_t>(filters[i].length - 1));
        put16(filters[i].port);
    }
    return *this;
}

InputWriter& InputWriter::release(uint8_t who, uint16_t port) {
    bytes_.push_back(PacketPathWorld::kReleaseTag);
    bytes_.push_back(who);
    put16(port);
    return *this;
}

InputWriter& InputWriter::peer(uint8_t who, uint16_t port, common::Ipv4Address remote,
                               uint16_t remote_port) {
    bytes_.push_back(PacketPathWorld::kPeerTag);
    bytes_.push_back(who);
    put16(port);
    put32(remote.value);
    put16(remote_port);
    return *this;
}

InputWriter& InputWriter::paired_address(uint8_t who) {
    bytes_.push_back(PacketPathWorld::kPairedTag);
    bytes_.push_back(who);
    return *this;
}

InputWriter& InputWriter::answer(uint8_t which, uint8_t flags, uint8_t offset, uint8_t value) {
    bytes_.insert(bytes_.end(), {PacketPathWorld::kAnswerTag, which, flags, offset, value});
    return *this;
}

void init_eal(const char* program) {
    const char* eal_argv[] = {program,
                              "--no-huge",
                              "--no-pci",
                              "-m",
                              "128",
                              "--no-shconf",
                              "-l",
                              "0",
                              "--log-level=lib.eal:error",
                              "--log-level=pmd.*:error",
                              "--no-telemetry"};
    if (rte_eal_init(sizeof eal_argv / sizeof eal_argv[0], const_cast<char**>(eal_argv)) < 0) {
        std::fprintf(stderr, "EAL initialisation failed\n");
        std::abort();
    }
}

PacketPathWorld::PacketPathWorld(unsigned worker_id)
    : harness_(std::make_unique<test::DataplaneHarness>(kWorkers, kHarnessMbufs, kRingSize)) {
    const unsigned id = ++g_world;
    input_pool_ = rte_pktmbuf_pool_create(("fuzzin" + std::to_string(id)).c_str(), kInputMbufs, 0,
                                          0, RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    if (input_pool_ == nullptr) fail("cannot create the input mbuf pool");

    dp::WorkerSettings& s = harness_->settings();
    s.seed = 4242;  // the same external ports for every input
    // The workers name their tables after their id. The fuzzer's worlds live one at a time and
    // all use the same ids: the harness's ever growing ones would outgrow DPDK's name length
    // after a few hundred inputs ("HT_EXT_cgn_subscribers_w10009" is too long for a ring).
    s.worker_id = worker_id;
    // Small tables, so that "full" is reachable; short timeouts, so that expiry is.
    s.nat.max_sessions = 128;
    // 16 blocks of 64 ports per pool address: a subscriber can exhaust them (and the block
    // map, sized for the largest pool, is quick to build for every input).
    s.nat.port_range = {1024, 2047};
    s.nat.port_block_size = 64;
    s.nat.block_hold_down_ms = 30'000;
    s.nat.timeouts.udp_s = 60;
    s.nat.timeouts.icmp_s = 30;
    s.nat.timeouts.tcp_opening_s = 60;
    s.nat.timeouts.tcp_transitory_s = 60;
    s.nat.timeouts.tcp_established_s = 600;
    s.nat.limits.max_blocks = 4;
    // RFC 6888 REQ-11 and the quota events: a subscriber reaches its session limit well before
    // the table is full.
    s.nat.limits.max_sessions = 24;
    s.neighbor_capacity = kNeighborCapacity;
    s.fragment_capacity = 16;
    s.fragment_timeout_ms = kFragmentTimeoutMs;
    s.icmp_error_rate = 100;
    // RFC 6888 REQ-6: one exempt destination range, routed untranslated.
    s.exempt_destinations = {*common::Ipv4Prefix::parse("203.0.113.128/28")};
    // PCP (issue 10): the world is the control thread at the other end of the rings, and holds
    // mappings with FILTERs from a pool of few sets.
    pcp_requests_ = rte_ring_create(("fzpq" + std::to_string(id)).c_str(), kPcpRingSize,
                                    SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    pcp_answers_ = rte_ring_create(("fzpa" + std::to_string(id)).c_str(), kPcpRingSize,
                                   SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (pcp_requests_ == nullptr || pcp_answers_ == nullptr) fail("cannot create the PCP rings");
    s.pcp_requests = pcp_requests_;
    s.pcp_answers = pcp_answers_;
    s.pcp_request_rate = kPcpRate;
    s.pcp_request_burst = kPcpBurst;
    s.nat.max_filtered_mappings = kFilterSets;
    harness_->start();

    // A subscriber on each worker, so that inside steering hands packets over.
    const dp::Steering steering(kWorkers, nullptr);
    bool found[kWorkers] = {};
    for (uint32_t host = 11; host < 200; ++host) {
        const common::Ipv4Address a{topo().inside.subnet.address.value | host};
        const unsigned w = steering.subscriber_owner(a.value);
        if (found[w]) continue;
        found[w] = true;
        subscribers_[w] = a;
        subscriber_macs_[w] = common::MacAddress{{0x02, 0, 0, 0, 0, static_cast<uint8_t>(host)}};
    }
    for (bool f : found)
        if (!f) fail("no subscriber address for every worker");
    open_flows();
    harness_->reset_counters();
    ledger_ = Ledger{};
    mbufs_free_after_prelude_ = rte_mempool_avail_count(harness_->pool());
}

PacketPathWorld::~PacketPathWorld() {
    // RingPort closes its ports but leaves their vdevs registered (a few hundred bytes of
    // malloc each): remove them, or libFuzzer sees every input leak and runs its (slow) leak
    // check after each one.
    char names[2][RTE_ETH_NAME_MAX_LEN] = {};
    rte_eth_dev_get_name_by_port(harness_->inside().port_id(), names[0]);
    rte_eth_dev_get_name_by_port(harness_->outside().port_id(), names[1]);
    // The PCP rings' frames go back to their pools while these exist.
    for (rte_ring* ring : {pcp_requests_, pcp_answers_}) {
        void* m = nullptr;
        while (ring != nullptr && rte_ring_dequeue(ring, &m) == 0)
            rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    }
    harness_.reset();  // frees whatever the rings still hold, input mbufs included
    rte_ring_free(pcp_requests_);
    rte_ring_free(pcp_answers_);
    for (const char* name : names) rte_vdev_uninit(name);
    // The pool's memory goes back to DPDK's heap: no poisoned byte may stay behind.
    rte_mempool_obj_iter(input_pool_, unpoison_buffer, nullptr);
    rte_mempool_free(input_pool_);
}

void PacketPathWorld::open_flows() {
    const test::Topology& t = topo();
    test::DataplaneHarness& h = *harness_;
    // Subscribers announce themselves by asking for their gateway; so does the outside
    // gateway (RFC 826 merge). The receiving worker passes copies to the other.
    for (unsigned w = 0; w < kWorkers; ++w)
        h.inside().inject(test::arp_request(subscriber_macs_[w], subscribers_[w], t.inside.address),
                          static_cast<uint16_t>(w));
    h.outside().inject(test::arp_request(t.gateway_mac, t.gateway, t.outside.address));
    poll_until_quiet();

    for (unsigned w = 0; w < kWorkers; ++w) {
        const common::Ipv4Address sub = subscribers_[w];
        const common::MacAddress mac = subscriber_macs_[w];
        // Each on the other worker's queue: handed to its owner.
        const auto queue = static_cast<uint16_t>(1 - w);
        h.inside().inject(PacketBuilder()
                              .ethernet(mac, inside_mac())
                              .ipv4(sub, t.server1, 64, 0x100)
                              .udp(40000, 53)
                              .payload("query")
                              .build(),
                          queue);
        h.inside().inject(PacketBuilder()
                              .ethernet(mac, inside_mac())
                              .ipv4(sub, t.server1, 64, 0x101)
                              .tcp(40001, 80, common::tcp::kSyn, 1000)
                              .build(),
                          queue);
        h.inside().inject(PacketBuilder()
                              .ethernet(mac, inside_mac())
                              .ipv4(sub, t.server2, 64, 0x102)
                              .icmp_echo(icmp::kEchoRequest, static_cast<uint16_t>(0x1000 + w), 1)
                              .payload("ping")
                              .build(),
                          queue);
    }
    // A subscriber that never announced itself: its flow's replies wait for ARP.
    h.inside().inject(PacketBuilder()
                          .ethernet(kSilentSubscriberMac, inside_mac())
                          .ipv4(silent_subscriber(), t.server1, 64, 0x104)
                          .udp(40000, 53)
                          .payload("silent")
                          .build());
    poll_until_quiet();
    const auto external = [&](uint8_t protocol, common::Ipv4Address addr, uint16_t port) {
        const auto m = h.find_mapping(protocol, addr.value, port);
        if (!m) fail("the prelude opened no mapping");
        return *m;
    };
    for (unsigned w = 0; w < kWorkers; ++w) {
        const common::Ipv4Address sub = subscribers_[w];
        const auto udp = external(ipv4::kProtoUdp, sub, 40000);
        flows_.push_back({ipv4::kProtoUdp, sub, 40000, t.server1, 53,
                          common::Ipv4Address{udp.first}, udp.second});
        const auto tcp = external(ipv4::kProtoTcp, sub, 40001);
        flows_.push_back({ipv4::kProtoTcp, sub, 40001, t.server1, 80,
                          common::Ipv4Address{tcp.first}, tcp.second});
        const auto id = static_cast<uint16_t>(0x1000 + w);
        const auto echo = external(ipv4::kProtoIcmp, sub, id);
        flows_.push_back({ipv4::kProtoIcmp, sub, id, t.server2, id, common::Ipv4Address{echo.first},
                          echo.second});
        // The server accepts the connection (arriving on the queue of the other worker), the
        // subscriber acknowledges: established (RFC 7857 §3.1).
        h.outside().inject(
            PacketBuilder()
                .ethernet(t.gateway_mac, outside_mac())
                .ipv4(t.server1, common::Ipv4Address{tcp.first}, 60, 0x200)
                .tcp(80, tcp.second, common::tcp::kSyn | common::tcp::kAck_, 5000, 1001)
                .build(),
            static_cast<uint16_t>(1 - w));
        poll_until_quiet();
        h.inside().inject(PacketBuilder()
                              .ethernet(subscriber_macs_[w], inside_mac())
                              .ipv4(sub, t.server1, 64, 0x103)
                              .tcp(40001, 80, common::tcp::kAck_, 1001, 5001)
                              .build(),
                          static_cast<uint16_t>(w));
        poll_until_quiet();
    }
    const auto silent = external(ipv4::kProtoUdp, silent_subscriber(), 40000);
    flows_.push_back({ipv4::kProtoUdp, silent_subscriber(), 40000, t.server1, 53,
                      common::Ipv4Address{silent.first}, silent.second});
    for (const Flow& f : flows_)
        if (f.protocol != ipv4::kProtoIcmp)
            sent_.push_back({f.protocol, f.internal_addr.value, f.internal_port,
                             f.remote_addr.value, f.remote_port});
    output_.clear();
}

void PacketPathWorld::run(const uint8_t* data, size_t size) {
    output_.clear();
    pcp_results_.clear();
    size_t pos = 0;
    size_t frames = 0;
    const auto end_of_round = [&](uint8_t advance) {
        poll_until_quiet();
        check_invariants(false);
        harness_->clock().advance_ms(uint64_t{advance} * advance * kTickUnitMs);
        poll_until_quiet();
        check_invariants(false);
        for (unsigned w = 0; w < kWorkers; ++w) check_holds(w);
    };
    while (pos < size) {
        const uint8_t tag = data[pos++];
        if (tag >= kHoldTag && tag <= kAnswerTag) {
            if (!pcp_item(tag, data, size, pos)) break;
            continue;
        }
        if ((tag & kTickTag) != 0) {
            end_of_round(pos < size ? data[pos++] : 0);
            continue;
        }
        if (size - pos < 2) break;
        size_t length = (size_t{data[pos]} << 8) | data[pos + 1];
        pos += 2;
        length = std::min({length, kMaxFrame, size - pos});
        if (frames++ < kMaxFrames) inject((tag & 1) != 0, (tag >> 1) & 1, data + pos, length);
        pos += length;
    }
    end_of_round(0);
    release_all_holds();

    // Run down: past the fragment timeout (held fragments dropped), then past every ARP
    // retransmit and the give-up (queued packets dropped).
    harness_->clock().advance_ms(kFragmentTimeoutMs + 1);
    poll_until_quiet();
    for (unsigned i = 0; i <= dp::NeighborTable::kMaxRequests; ++i) {
        harness_->clock().advance_ms(dp::NeighborTable::kRetransmitMs + 1);
        poll_until_quiet();
    }
    check_invariants(true);
    for (unsigned w = 0; w < kWorkers; ++w) check_holds(w);  // none held, none filtered
    if (rte_mempool_avail_count(harness_->pool()) != mbufs_free_after_prelude_)
        fail("mbufs of the workers' pool leaked (or freed twice)");
    if (rte_mempool_avail_count(input_pool_) != kInputMbufs)
        fail("received mbufs leaked (or freed twice)");

    run_down_nat();
    check_invariants(true);
    if (rte_mempool_avail_count(harness_->pool()) != mbufs_free_after_prelude_)
        fail("mbufs of the workers' pool leaked (or freed twice) after the NAT's run-down");
}

void PacketPathWorld::inject(bool outside, unsigned queue, const uint8_t* bytes, size_t length) {
    rte_mbuf* m = rte_pktmbuf_alloc(input_pool_);
    if (m == nullptr) fail("input mbuf pool empty");
    ASAN_UNPOISON_MEMORY_REGION(m->buf_addr, m->buf_len);
    char* data = rte_pktmbuf_append(m, static_cast<uint16_t>(length));
    if (data == nullptr) fail("frame longer than an mbuf");
    if (length != 0) std::memcpy(data, bytes, length);
    poison_outside_frame(m);
    test::DataplaneHarness& h = *harness_;
    rte_ring* ring = (outside ? h.outside() : h.inside()).rx_ring(static_cast<uint16_t>(queue));
    if (rte_ring_enqueue(ring, m) != 0) fail("RX ring full");
    ++ledger_.received[outside ? 1 : 0];
    frames_pending_ = true;
    if (!outside)
        if (const auto e = endpoints_of<Endpoints>(bytes, length)) sent_.push_back(*e);
}

uint64_t PacketPathWorld::counter_total() const {
    uint64_t total = 0;
    for (size_t c = 0; c < common::kCounterCount; ++c)
        total += harness_->counter(static_cast<Counter>(c));
    return total;
}

void PacketPathWorld::poll_until_quiet() {
    unsigned quiet = 0;
    for (unsigned polls = 0; quiet < kQuietPolls; ++polls) {
        if (polls == kMaxPolls) fail("the workers never settle");
        const uint64_t before = counter_total();
        harness_->poll();
        drain_and_check_output();
        quiet = counter_total() == before ? quiet + 1 : 0;
    }
    frames_pending_ = false;
    drain_pcp_requests();
}

void PacketPathWorld::drain_and_check_output() {
    test::DataplaneHarness& h = *harness_;
    for (bool outside : {false, true}) {
        dp::RingPort& port = outside ? h.outside() : h.inside();
        for (uint16_t q = 0; q < port.queues(); ++q) {
            void* object = nullptr;
            while (rte_ring_dequeue(port.tx_ring(q), &object) == 0) {
                auto* m = static_cast<rte_mbuf*>(object);
                if (m->nb_segs != 1) fail("a chained mbuf was transmitted");
                const auto* frame = rte_pktmbuf_mtod(m, const uint8_t*);
                check_output_frame(outside, frame, rte_pktmbuf_data_len(m));
                if (!outside) check_filtered_delivery(frame, rte_pktmbuf_data_len(m));
                if (keep_output_) output_.emplace_back(frame, frame + rte_pktmbuf_data_len(m));
                ++ledger_.transmitted[outside ? 1 : 0];
                rte_pktmbuf_free(m);
            }
        }
    }
}

// What any frame cgnd transmits must look like, whatever it received.
void PacketPathWorld::check_output_frame(bool outside, const uint8_t* frame, uint32_t length) {
    const test::Topology& t = topo();
    const dp::WorkerSettings& s = harness_->settings();
    const dp::Interface& itf = outside ? s.outside : s.inside;
    const auto fail = [&](const char* what) {
        std::fprintf(stderr, "frame sent on the %s port:\n%s\n", outside ? "outside" : "inside",
                     test::hex(std::vector<uint8_t>(frame, frame + length)).c_str());
        this->fail(what);
    };
    if (length < eth::kHeaderLength) fail("a runt frame was transmitted");
    if (length > eth::kHeaderLength + itf.mtu) fail("a frame longer than the MTU was transmitted");
    if (std::memcmp(frame + eth::kSrc, itf.mac.bytes.data(), 6) != 0)
        fail("a frame was transmitted with another source MAC than the port's");
    const uint16_t type = load_be16(frame + eth::kType);
    const uint8_t* l3 = frame + eth::kHeaderLength;
    const uint32_t l3_length = length - eth::kHeaderLength;
    if (type == eth::kTypeArp) {
        if (l3_length < arp::kLength ||
            load_be16(l3 + arp::kHardwareType) != arp::kHardwareEthernet ||
            load_be16(l3 + arp::kProtocolType) != eth::kTypeIpv4)
            fail("a malformed ARP frame was transmitted");
        if (std::memcmp(l3 + arp::kSenderMac, itf.mac.bytes.data(), 6) != 0)
            fail("an ARP frame was transmitted with another sender MAC than the port's");
        const common::Ipv4Address sender{load_be32(l3 + arp::kSenderIp)};
        if (sender != itf.address.address && !(outside && t.pool.contains(sender)))
            fail("an ARP frame was transmitted for an address that is not ours");
        return;
    }
    if (type != eth::kTypeIpv4) fail("a frame that is neither IPv4 nor ARP was transmitted");
    if (l3_length < ipv4::kMinHeaderLength || (l3[ipv4::kVersionIhl] >> 4) != 4)
        fail("a frame with no IPv4 header was transmitted");
    const uint32_t header_length = (l3[ipv4::kVersionIhl] & 0x0f) * 4u;
    const uint32_t total_length = load_be16(l3 + ipv4::kTotalLength);
    if (header_length < ipv4::kMinHeaderLength || total_length < header_length ||
        total_length > l3_length)
        fail("an IPv4 packet with inconsistent lengths was transmitted");
    if (common::checksum_finish(common::checksum_partial(l3, header_length)) != 0)
        fail("an IPv4 packet with a wrong header checksum was transmitted");
    if (l3[ipv4::kTtl] == 0) fail("an IPv4 packet with TTL 0 was transmitted");
    const common::Ipv4Address src{load_be32(l3 + ipv4::kSrc)};
    const common::Ipv4Address dst{load_be32(l3 + ipv4::kDst)};
    const bool exempt =
        std::any_of(s.exempt_destinations.begin(), s.exempt_destinations.end(),
                    [&](const common::Ipv4Prefix& p) { return p.contains(outside ? dst : src); });
    // ICMP that cgnd writes itself (echo replies, errors) goes back to the MAC the packet came
    // from, whatever its source address: the exceptions to the rules below. An echo reply may
    // come from either of our addresses on either port (an outside host's ping to the inside
    // address is answered from 100.64.0.1 on the outside port: noted in docs/security.md).
    const uint8_t* l4 = l3 + header_length;
    const uint32_t l4_length = total_length - header_length;
    const bool from_us = src == s.inside.address.address || src == s.outside.address.address;
    const bool icmp_from_us = l3[ipv4::kProtocol] == ipv4::kProtoIcmp && from_us;
    const bool echo_reply_from_us =
        icmp_from_us && l4_length >= 1 && l4[icmp::kType] == icmp::kEchoReply;
    // The NAT's reason to exist: no inside address leaves on the outside untranslated
    // (exempt destinations aside, RFC 6888 REQ-6), and the inside receives only for inside
    // hosts.
    if (outside && !exempt && !t.pool.contains(src) && src != itf.address.address &&
        !echo_reply_from_us)
        fail("a packet left on the outside with a source that is not a pool address");
    if (!outside && !t.inside.subnet.contains(dst) && !icmp_from_us)
        fail("a packet left on the inside for a destination not on the inside");
    // ICMP errors cgnd wrote itself (from its own address) carry a correct checksum. Echo
    // replies are left out: one answers a request in place with an incremental update, so a
    // request with a wrong checksum gets a reply with a wrong checksum.
    const uint16_t fragment = load_be16(l3 + ipv4::kFragment);
    if (l3[ipv4::kProtocol] == ipv4::kProtoIcmp && src == itf.address.address &&
        (fragment & (ipv4::kFragmentOffsetMask | ipv4::kFlagMoreFragments)) == 0 &&
        !echo_reply_from_us) {
        if (l4_length < icmp::kHeaderLength ||
            common::checksum_finish(common::checksum_partial(l4, l4_length)) != 0)
            fail("an ICMP error from our own address with a wrong checksum was transmitted");
    }
}

void PacketPathWorld::check_filtered_delivery(const uint8_t* frame, uint32_t length) {
    const auto e = endpoints_of<Endpoints>(frame, length);
    if (!e) return;
    const dp::WorkerSettings& s = harness_->settings();
    const common::Ipv4Address src{e->src};
    // Not through the NAT: from our own addresses (PCP answers), exempt destinations.
    if (src == s.inside.address.address || src == s.outside.address.address ||
        std::any_of(s.exempt_destinations.begin(), s.exempt_destinations.end(),
                    [&](const common::Ipv4Prefix& p) { return p.contains(src); }))
        return;
    for (const auto& holds : holds_) {
        for (const Hold& h : holds) {
            if (!h.filtered || h.protocol != e->protocol || h.addr != e->dst ||
                h.port != e->dst_port || h.filters.admits(e->src, e->src_port))
                continue;
            const Endpoints opened{e->protocol, e->dst, e->dst_port, e->src, e->src_port};
            if (std::find(sent_.begin(), sent_.end(), opened) != sent_.end()) continue;
            std::fprintf(stderr, "frame delivered on the inside port:\n%s\n",
                         test::hex(std::vector<uint8_t>(frame, frame + length)).c_str());
            fail("a held mapping with FILTERs let in a peer they do not admit (RFC 6887 §13.3)");
        }
    }
}

// ---- PCP: the world as the control thread (issue 10) -------------------------------------

common::Ipv4Address PacketPathWorld::pcp_host(uint8_t who) const {
    switch (who & 3) {
        case 0:
            return subscribers_[0];
        case 1:
            return subscribers_[1];
        case 2:
            return silent_subscriber();
        default:
            return common::Ipv4Address{topo().inside.subnet.address.value | kNewHost};
    }
}

unsigned PacketPathWorld::owner_of(common::Ipv4Address host) const {
    return dp::Steering(kWorkers, nullptr).subscriber_owner(host.value);
}

// Takes what the workers punted, as the control thread's transport does: every frame counted
// and freed, each checked to be a PCP request from the inside, and the last few kept (with
// where their answer goes) for the answer items.
void PacketPathWorld::drain_pcp_requests() {
    const test::Topology& t = topo();
    void* object = nullptr;
    while (rte_ring_dequeue(pcp_requests_, &object) == 0) {
        auto* m = static_cast<rte_mbuf*>(object);
        ++ledger_.requests;
        const auto* f = rte_pktmbuf_mtod(m, const uint8_t*);
        const uint32_t length = rte_pktmbuf_data_len(m);
        if (m->pool != input_pool_ || m->nb_segs != 1)
            fail("a frame the port did not receive was put on the PCP request ring");
        // What take_pcp_request promises: UDP to port 5351 of cgnd's inside address, not a
        // fragment, with a whole UDP header.
        const uint8_t* ip = f + eth::kHeaderLength;
        const uint32_t ihl = length > eth::kHeaderLength ? (ip[ipv4::kVersionIhl] & 0x0f) * 4u : 0;
        if (length < eth::kHeaderLength + ipv4::kMinHeaderLength ||
            load_be16(f + eth::kType) != eth::kTypeIpv4 || ihl < ipv4::kMinHeaderLength ||
            length < eth::kHeaderLength + ihl + 8 || ip[ipv4::kProtocol] != ipv4::kProtoUdp ||
            load_be32(ip + ipv4::kDst) != t.inside.address.value ||
            (load_be16(ip + ipv4::kFragment) &
             (ipv4::kFragmentOffsetMask | ipv4::kFlagMoreFragments)) != 0 ||
            load_be16(ip + ihl + 2) != kPcpPort) {
            std::fprintf(stderr, "punted frame:\n%s\n",
                         test::hex(std::vector<uint8_t>(f, f + length)).c_str());
            fail("a frame that is not a PCP request to cgnd was put on the PCP request ring");
        }
        // control/pcp_transport.cpp reads it; the server answers subscribers only (RFC 6887
        // §18), so a request from another source is not kept for an answer.
        const uint32_t total = load_be16(ip + ipv4::kTotalLength);
        const uint32_t udp_length = load_be16(ip + ihl + 4);
        const common::Ipv4Address client{load_be32(ip + ipv4::kSrc)};
        if (total <= length - eth::kHeaderLength && total >= ihl + 8 && udp_length >= 8 &&
            udp_length <= total - ihl && t.inside.subnet.contains(client)) {
            Request r;
            std::copy(f + eth::kSrc, f + eth::kSrc + 6, r.mac.bytes.begin());
            r.client = client;
            r.server = common::Ipv4Address{load_be32(ip + ipv4::kDst)};
            r.client_port = load_be16(ip + ihl);
            r.payload.assign(ip + ihl + 8, ip + ihl + udp_length);
            if (requests_.size() == kKeptRequests) requests_.erase(requests_.begin());
            requests_.push_back(std::move(r));
        }
        rte_pktmbuf_free(m);
    }
}

bool PacketPathWorld::pcp_item(uint8_t tag, const uint8_t* data, size_t size, size_t& pos) {
    const size_t fixed = kPcpItemLength[tag - kHoldTag];
    if (size - pos < fixed) return false;
    const uint8_t* a = data + pos;
    std::array<dp::PeerFilter, dp::kMaxPeerFilters> filters{};
    size_t filter_count = 0;
    if (tag == kHoldTag) {
        filter_count = a[6] % (dp::kMaxPeerFilters + 1);
        if (size - pos < fixed + filter_count * kFilterLength) return false;
        for (size_t i = 0; i < filter_count; ++i) {
            const uint8_t* f = a + fixed + i * kFilterLength;
            filters[i] = dp::PeerFilter::prefix(load_be32(f), f[4] % 32u + 1u, load_be16(f + 5));
        }
    }
    pos += fixed + filter_count * kFilterLength;
    // The frames given before the item first: it acts after them.
    if (frames_pending_) {
        poll_until_quiet();
        check_invariants(false);
    }
    switch (tag) {
        case kHoldTag:
            pcp_hold(a[0], load_be16(a + 1), load_be16(a + 3), a[5],
                     std::span<const dp::PeerFilter>(filters.data(), filter_count));
            break;
        case kReleaseTag:
            pcp_release(a[0], load_be16(a + 1));
            break;
        case kPeerTag:
            pcp_peer(a[0], load_be16(a + 1), load_be32(a + 3), load_be16(a + 7));
            break;
        case kPairedTag:
            pcp_paired(a[0]);
            break;
        default:
            pcp_answer(a[0], a[1], a[2], a[3]);
            break;
    }
    check_invariants(false);
    for (unsigned w = 0; w < kWorkers; ++w) check_holds(w);
    return true;
}

void PacketPathWorld::record(uint8_t tag, bool made, uint8_t status, uint32_t addr, uint16_t port) {
    if (keep_output_) pcp_results_.push_back({tag, made, status, common::Ipv4Address{addr}, port});
}

void PacketPathWorld::check_external(unsigned w, uint32_t addr, uint16_t port, const char* what) {
    const common::PortRange range = harness_->settings().nat.port_range;
    const auto index = nat(w).pool_index(addr);
    const char* broken = nullptr;
    if (!topo().pool.contains(common::Ipv4Address{addr}) || !index)
        broken = "a PCP request was given an external address that is not a pool address";
    else if (port < range.first || port > range.last)
        broken = "a PCP request was given an external port outside the port range";
    // Outside packets are steered by the block of their destination port: the worker holding
    // the mapping must hold the block, or they go to a worker that knows nothing of it.
    else if (harness_->blocks().worker_holding(*index, port) != std::optional<unsigned>(w))
        broken = "a PCP request was given an external port in a block its worker does not hold";
    if (broken == nullptr) return;
    std::fprintf(stderr, "%s on worker %u: external endpoint %s:%u\n", what, w,
                 common::Ipv4Address{addr}.to_string().c_str(), port);
    fail(broken);
}

void PacketPathWorld::pcp_hold(uint8_t who, uint16_t port, uint16_t suggested_port, uint8_t flags,
                               std::span<const dp::PeerFilter> filters) {
    // The PCP server never asks for internal port 0 (RFC 6887 §11.1: all ports; refused).
    if (port == 0) return record(kHoldTag, false);
    const uint8_t protocol = protocol_of(who);
    const common::Ipv4Address host = pcp_host(who);
    const unsigned w = owner_of(host);
    const unsigned suggested = (flags >> 1) & 7;
    const uint32_t suggested_addr = suggested == 0   ? 0
                                    : suggested <= 4 ? topo().pool.address.value + suggested - 1
                                                     : topo().outside.address.value;
    // The server sets exact (PREFER_FAILURE) only with a suggested port (server.cpp).
    const bool exact = (flags & 1) != 0 && suggested_port != 0;
    dp::NatEngine& n = nat(w);
    const auto before = n.find_mapping(protocol, host.value, port);
    const auto r = n.hold_mapping(protocol, host.value, port, suggested_addr, suggested_port, exact,
                                  harness_->clock().now_ms(), filters);
    const auto after = n.find_mapping(protocol, host.value, port);
    record(kHoldTag, true, static_cast<uint8_t>(r.status), r.ext_addr, r.ext_port);
    auto held = std::find_if(holds_[w].begin(), holds_[w].end(), [&](const Hold& h) {
        return h.protocol == protocol && h.addr == host.value && h.port == port;
    });
    if (r.status != dp::NatEngine::HoldStatus::held) {
        if (before != after) fail("a refused hold changed the mapping of its internal endpoint");
        return;
    }
    if (protocol != ipv4::kProtoTcp && protocol != ipv4::kProtoUdp)
        fail("a hold of a protocol PCP does not map was granted");
    if (!after || after->first != r.ext_addr || after->second != r.ext_port)
        fail("a hold answered another external endpoint than its mapping's");
    if (before && *before != *after)
        fail("a hold of a mapped endpoint moved it (RFC 6887 §11.3: the mapping is the answer)");
    if (!before && exact &&
        (r.ext_port != suggested_port || (suggested_addr != 0 && r.ext_addr != suggested_addr)))
        fail("an exact hold (PREFER_FAILURE) was given another endpoint than the one suggested");
    check_external(w, r.ext_addr, r.ext_port, "a held mapping");
    dp::PeerFilterSet set;
    set.count = static_cast<uint8_t>(filters.size());
    std::copy(filters.begin(), filters.end(), set.filters.begin());
    if (held == holds_[w].end()) {
        holds_[w].push_back(
            {protocol, host.value, port, !filters.empty(), r.ext_addr, r.ext_port, set});
    } else {
        held->filtered = !filters.empty();
        held->filters = set;
    }
}

void PacketPathWorld::pcp_release(uint8_t who, uint16_t port) {
    if (port == 0) return record(kReleaseTag, false);
    const uint8_t protocol = protocol_of(who);
    const common::Ipv4Address host = pcp_host(who);
    const unsigned w = owner_of(host);
    const bool released =
        nat(w).release_held_mapping(protocol, host.value, port, harness_->clock().now_ms());
    record(kReleaseTag, true, released ? 0 : 1);
    const auto held = std::find_if(holds_[w].begin(), holds_[w].end(), [&](const Hold& h) {
        return h.protocol == protocol && h.addr == host.value && h.port == port;
    });
    if (released != (held != holds_[w].end()))
        fail(released ? "release_held_mapping released a mapping that was not held"
                      : "release_held_mapping did not find a mapping that is held");
    if (released) holds_[w].erase(held);
}

void PacketPathWorld::pcp_peer(uint8_t who, uint16_t port, uint32_t remote_addr,
                               uint16_t remote_port) {
    // The server refuses a PEER with either port 0 (server.cpp serve_peer: MALFORMED_REQUEST).
    if (port == 0 || remote_port == 0) return record(kPeerTag, false);
    const uint8_t protocol = protocol_of(who);
    const common::Ipv4Address host = pcp_host(who);
    const unsigned w = owner_of(host);
    dp::NatEngine& n = nat(w);
    // A PEER opens the flow as the subscriber's first packet would.
    sent_.push_back({protocol, host.value, port, remote_addr, remote_port});
    const auto r = n.peer_flow(protocol, host.value, port, remote_addr, remote_port,
                               harness_->clock().now_ms());
    record(kPeerTag, true, static_cast<uint8_t>(r.status), r.ext_addr, r.ext_port);
    if (r.status != dp::NatEngine::HoldStatus::held) return;
    if (protocol != ipv4::kProtoTcp && protocol != ipv4::kProtoUdp)
        fail("a PEER of a protocol PCP does not map was granted");
    if (n.find_mapping(protocol, host.value, port) !=
        std::make_optional(std::pair<uint32_t, uint16_t>{r.ext_addr, r.ext_port}))
        fail("a PEER answered another external endpoint than its mapping's");
    check_external(w, r.ext_addr, r.ext_port, "a PEER flow");
}

void PacketPathWorld::pcp_paired(uint8_t who) {
    const common::Ipv4Address host = pcp_host(who);
    const unsigned w = owner_of(host);
    const auto paired = nat(w).paired_address(host.value, harness_->clock().now_ms());
    record(kPairedTag, true, paired ? 0 : 1, paired.value_or(0));
    if (!paired) return;
    if (!topo().pool.contains(common::Ipv4Address{*paired}))
        fail("paired_address answered an address that is not a pool address");
    // RFC 4787 REQ-2: while paired, all of a subscriber's mappings are on that address.
    for (const Hold& h : holds_[w])
        if (h.addr == host.value && h.ext_addr != *paired)
            fail("paired_address answered another address than the subscriber's held mappings'");
}

void PacketPathWorld::pcp_answer(uint8_t which, uint8_t flags, uint8_t offset, uint8_t value) {
    Request to;
    if ((flags & 1) == 0 && !requests_.empty()) {
        to = requests_[requests_.size() - 1 - which % requests_.size()];
        // A response (RFC 6887 §7.2: the R bit), byte-modified by the input.
        if (to.payload.size() > kMaxPcpMessage) to.payload.resize(kMaxPcpMessage);
        if (to.payload.size() > 1) to.payload[1] |= 0x80;
        if (!to.payload.empty()) to.payload[offset % to.payload.size()] ^= value;
    } else {
        // §14: unsolicited (an ANNOUNCE after a restart): no request, so no MAC; the worker
        // routes it (ARP included).
        to.client = pcp_host(which);
        to.server = topo().inside.address;
        to.client_port = kPcpClientPort;
        to.payload.assign(24, 0);
        to.payload[0] = 2;
        to.payload[1] = 0x80;
        to.payload[offset % to.payload.size()] ^= value;
    }
    const std::vector<uint8_t> frame = PacketBuilder()
                                           .ethernet(inside_mac(), to.mac)
                                           .ipv4(to.server, to.client, 64, 0)
                                           .udp(kPcpPort, to.client_port)
                                           .payload(to.payload)
                                           .build();
    rte_mbuf* m = rte_pktmbuf_alloc(harness_->pool());
    char* room =
        m != nullptr ? rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())) : nullptr;
    bool queued = false;
    if (room != nullptr) {
        std::memcpy(room, frame.data(), frame.size());
        queued = rte_ring_enqueue(pcp_answers_, m) == 0;
    }
    // As the transport does: no mbuf or a full ring, the answer is lost (counted there).
    if (!queued && m != nullptr) rte_pktmbuf_free(m);
    if (queued) ++ledger_.answers;
    record(kAnswerTag, true, queued ? 0 : 1);
}

void PacketPathWorld::check_holds(unsigned w) {
    const dp::NatEngine& n = nat(w);
    const auto filtered = static_cast<uint32_t>(std::count_if(
        holds_[w].begin(), holds_[w].end(), [](const Hold& h) { return h.filtered; }));
    if (n.held_mapping_count() != holds_[w].size() || n.filtered_mapping_count() != filtered) {
        std::fprintf(stderr, "worker %u: held %u (the world holds %zu), filtered %u (%u)\n", w,
                     n.held_mapping_count(), holds_[w].size(), n.filtered_mapping_count(),
                     filtered);
        fail("the held or filtered mappings are not those the control thread holds");
    }
    if (n.filtered_mapping_count() > kFilterSets)
        fail("more filtered mappings than filter sets (max_filtered_mappings)");
    for (const Hold& h : holds_[w]) {
        // A held mapping outlives its sessions and keeps its endpoint until it is released.
        if (n.find_mapping(h.protocol, h.addr, h.port) !=
            std::make_optional(std::pair<uint32_t, uint16_t>{h.ext_addr, h.ext_port})) {
            std::fprintf(stderr, "worker %u: held %u %s:%u -> %s:%u\n", w, h.protocol,
                         common::Ipv4Address{h.addr}.to_string().c_str(), h.port,
                         common::Ipv4Address{h.ext_addr}.to_string().c_str(), h.ext_port);
            fail("a held mapping was removed or moved while held");
        }
    }
}

void PacketPathWorld::release_all_holds() {
    for (unsigned w = 0; w < kWorkers; ++w) {
        for (const Hold& h : holds_[w])
            if (!nat(w).release_held_mapping(h.protocol, h.addr, h.port,
                                             harness_->clock().now_ms()))
                fail("release_held_mapping did not find a mapping that is held");
        holds_[w].clear();
        check_holds(w);
    }
}

void PacketPathWorld::run_down_nat() {
    const common::Timeouts& t = harness_->settings().nat.timeouts;
    const uint64_t longest_ms = uint64_t{std::max({t.udp_s, t.icmp_s, t.tcp_opening_s,
                                                   t.tcp_transitory_s, t.tcp_established_s})} *
                                1000;
    // Every session expires (its mapping, its ports with it), then every block idle since then
    // passes its hold-down (the subscriber with its last block).
    harness_->clock().advance_ms(longest_ms + 1000);
    poll_until_quiet();
    harness_->clock().advance_ms(harness_->settings().nat.block_hold_down_ms + 1000);
    poll_until_quiet();
    for (unsigned w = 0; w < kWorkers; ++w) {
        const dp::NatEngine& n = nat(w);
        if (n.session_count() != 0 || n.mapping_count() != 0 || n.subscriber_count() != 0 ||
            n.held_blocks() != 0 || n.held_mapping_count() != 0 ||
            n.filtered_mapping_count() != 0) {
            std::fprintf(stderr,
                         "worker %u after every timeout: %u sessions, %u mappings, %u "
                         "subscribers, %u blocks, %u held, %u filtered\n",
                         w, n.session_count(), n.mapping_count(), n.subscriber_count(),
                         n.held_blocks(), n.held_mapping_count(), n.filtered_mapping_count());
            fail("the NAT is not empty after every timeout and hold-down passed");
        }
    }
    const dp::BlockMap& blocks = harness_->blocks();
    for (uint32_t i = 0; i < 4; ++i) {
        const auto index = nat(0).pool_index(topo().pool.address.value + i);
        if (!index) continue;
        for (uint32_t b = 0; b < blocks.blocks_per_address(); ++b)
            if (blocks.holder(*index, b) != dp::BlockMap::kFree)
                fail("a port block is still held after every hold-down passed");
    }
    for (unsigned w = 0; w < kWorkers; ++w) probe_filter_sets(w);
}

// Whether every filter set is back in the pool, and only once: with the NAT empty, exactly
// kFilterSets filtered mappings can be held, the next is refused for want of a set.
void PacketPathWorld::probe_filter_sets(unsigned w) {
    dp::NatEngine& n = nat(w);
    const common::Ipv4Address host = subscribers_[w];
    const dp::PeerFilter filter = dp::PeerFilter::prefix(topo().server1.value, 32, 0);
    const uint64_t now = harness_->clock().now_ms();
    constexpr uint16_t kFirstPort = 60000;
    for (uint16_t i = 0; i <= kFilterSets; ++i) {
        const auto r =
            n.hold_mapping(ipv4::kProtoUdp, host.value, static_cast<uint16_t>(kFirstPort + i), 0, 0,
                           false, now, std::span<const dp::PeerFilter>(&filter, 1));
        if (i < kFilterSets && r.status != dp::NatEngine::HoldStatus::held)
            fail("a filter set was not given back: fewer free than max_filtered_mappings");
        if (i == kFilterSets && r.status != dp::NatEngine::HoldStatus::no_resources)
            fail("more filter sets than max_filtered_mappings: one was given back twice");
    }
    for (uint16_t i = 0; i < kFilterSets; ++i)
        if (!n.release_held_mapping(ipv4::kProtoUdp, host.value,
                                    static_cast<uint16_t>(kFirstPort + i), now))
            fail("a filtered mapping held by the probe was not held");
    if (n.held_mapping_count() != 0 || n.filtered_mapping_count() != 0 || n.mapping_count() != 0)
        fail("the probe's mappings did not all go with their release");
}

void PacketPathWorld::check_invariants(bool nothing_held) {
    // Issue 9 item 2: every frame received (or made by a worker) has ended in exactly one
    // counted outcome, or is held; once run down, nothing is held.
    const common::FrameBalance balance = harness_->frame_balance();
    if (!balance.balanced()) {
        std::fputs(balance.describe().c_str(), stderr);
        fail("the frame accounting does not balance");
    }
    // The world's side of the balance: every frame it put on an RX ring was received (or is
    // still on the ring), every frame a worker transmitted reached the world, every frame put
    // on the request ring was taken by the world and every answer it gave was sent.
    test::DataplaneHarness& h = *harness_;
    for (unsigned side = 0; side < 2; ++side) {
        dp::RingPort& port = side == 1 ? h.outside() : h.inside();
        uint64_t on_rx = 0, on_tx = 0;
        for (uint16_t q = 0; q < port.queues(); ++q) {
            on_rx += rte_ring_count(port.rx_ring(q));
            on_tx += rte_ring_count(port.tx_ring(q));
        }
        const uint64_t rx = h.counter(side == 1 ? Counter::rx_outside : Counter::rx_inside);
        const uint64_t tx = h.counter(side == 1 ? Counter::tx_outside : Counter::tx_inside);
        if (ledger_.received[side] != rx + on_rx)
            fail("the frames put on the RX rings are not the frames received");
        if (ledger_.transmitted[side] + on_tx != tx)
            fail("the frames transmitted are not the frames taken from the TX rings");
    }
    if (ledger_.requests + rte_ring_count(pcp_requests_) != h.counter(Counter::pcp_requests_punted))
        fail("the frames punted are not the frames taken from the PCP request ring");
    if (ledger_.answers != h.counter(Counter::pcp_answers_sent) + rte_ring_count(pcp_answers_))
        fail("the answers put on the PCP answer ring are not the answers sent");
    for (int64_t held : balance.held) {
        if (held < 0) {
            std::fputs(balance.describe().c_str(), stderr);
            fail("a negative number of frames is held");
        }
        if (nothing_held && held != 0) {
            std::fputs(balance.describe().c_str(), stderr);
            fail("frames still held after the run-down");
        }
    }
}

void PacketPathWorld::fail(const char* what) const {
    std::fprintf(stderr, "cgn-fuzz-packet-path: invariant broken: %s\n", what);
    if (harness_) {
        // The counters that moved (since the prelude), summed over the workers.
        const common::CounterSnapshot counters = harness_->counters();
        for (size_t c = 0; c < common::kCounterCount; ++c)
            if (counters[c] != 0)
                std::fprintf(stderr, "  %-32s %llu\n",
                             std::string(common::kCounterNames[c]).c_str(),
                             static_cast<unsigned long long>(counters[c]));
        std::fprintf(stderr,
                     "  world: received %llu/%llu (inside/outside), transmitted %llu/%llu, PCP "
                     "requests taken %llu, answers given %llu, held %zu/%zu (worker 0/1)\n",
                     static_cast<unsigned long long>(ledger_.received[0]),
                     static_cast<unsigned long long>(ledger_.received[1]),
                     static_cast<unsigned long long>(ledger_.transmitted[0]),
                     static_cast<unsigned long long>(ledger_.transmitted[1]),
                     static_cast<unsigned long long>(ledger_.requests),
                     static_cast<unsigned long long>(ledger_.answers), holds_[0].size(),
                     holds_[1].size());
    }
    std::abort();
}

}  // namespace cgn::fuzz
