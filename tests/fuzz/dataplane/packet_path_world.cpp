#include "tests/fuzz/dataplane/packet_path_world.hpp"

#include <rte_bus_vdev.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <sanitizer/asan_interface.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

unsigned g_world = 0;  // unique mempool names
const common::MacAddress kSilentSubscriberMac{{0x02, 0, 0, 0, 0x33, 0x01}};

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
    mbufs_free_after_prelude_ = rte_mempool_avail_count(harness_->pool());
}

PacketPathWorld::~PacketPathWorld() {
    // RingPort closes its ports but leaves their vdevs registered (a few hundred bytes of
    // malloc each): remove them, or libFuzzer sees every input leak and runs its (slow) leak
    // check after each one.
    char names[2][RTE_ETH_NAME_MAX_LEN] = {};
    rte_eth_dev_get_name_by_port(harness_->inside().port_id(), names[0]);
    rte_eth_dev_get_name_by_port(harness_->outside().port_id(), names[1]);
    harness_.reset();  // frees whatever the rings still hold, input mbufs included
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
    output_.clear();
}

void PacketPathWorld::run(const uint8_t* data, size_t size) {
    output_.clear();
    size_t pos = 0;
    size_t frames = 0;
    const auto end_of_round = [&](uint8_t advance) {
        poll_until_quiet();
        check_invariants(false);
        harness_->clock().advance_ms(uint64_t{advance} * advance * kTickUnitMs);
        poll_until_quiet();
        check_invariants(false);
    };
    while (pos < size) {
        const uint8_t tag = data[pos++];
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

    // Run down: past the fragment timeout (held fragments dropped), then past every ARP
    // retransmit and the give-up (queued packets dropped).
    harness_->clock().advance_ms(kFragmentTimeoutMs + 1);
    poll_until_quiet();
    for (unsigned i = 0; i <= dp::NeighborTable::kMaxRequests; ++i) {
        harness_->clock().advance_ms(dp::NeighborTable::kRetransmitMs + 1);
        poll_until_quiet();
    }
    check_invariants(true);
    if (rte_mempool_avail_count(harness_->pool()) != mbufs_free_after_prelude_)
        fail("mbufs of the workers' pool leaked (or freed twice)");
    if (rte_mempool_avail_count(input_pool_) != kInputMbufs)
        fail("received mbufs leaked (or freed twice)");
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
                if (keep_output_) output_.emplace_back(frame, frame + rte_pktmbuf_data_len(m));
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

void PacketPathWorld::check_invariants(bool nothing_held) {
    // Issue 9 item 2: every frame received (or made by a worker) has ended in exactly one
    // counted outcome, or is held; once run down, nothing is held.
    const common::FrameBalance balance = harness_->frame_balance();
    if (!balance.balanced()) {
        std::fputs(balance.describe().c_str(), stderr);
        fail("the frame accounting does not balance");
    }
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
    }
    std::abort();
}

}  // namespace cgn::fuzz
