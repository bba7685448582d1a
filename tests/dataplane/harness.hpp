#pragma once
// Dataplane test harness: a real Worker (NAT engine on rte_hash, neighbour tables, the poll
// loop) on two ethdev ports backed by rte_rings (net_ring PMD, rte_eth_from_rings). A test
// puts frames built with PacketBuilder on a port's RX ring, calls poll(), and reads every byte
// the worker transmitted from the TX ring. Time is a ManualClock the test moves.
//
// EAL is initialised once for the test binary (--no-huge --no-pci, main lcore only): see
// dataplane_main.cpp.

#include <memory>
#include <string>
#include <vector>

#include "common/address.hpp"
#include "common/clock.hpp"
#include "common/counters.hpp"
#include "common/frame_accounting.hpp"
#include "control/controller.hpp"
#include "dataplane/io/control_channel.hpp"
#include "dataplane/io/handoff.hpp"
#include "dataplane/io/ring_port.hpp"
#include "dataplane/io/worker.hpp"

namespace cgn::test {

using Frame = std::vector<uint8_t>;

// Addresses of the test topology (documentation and shared ranges only).
struct Topology {
    static common::Ipv4Address ip(const char* text) { return *common::Ipv4Address::parse(text); }
    static common::MacAddress mac(const char* text) { return *common::MacAddress::parse(text); }

    common::InterfaceAddress inside = *common::InterfaceAddress::parse("100.64.0.1/10");
    common::InterfaceAddress outside = *common::InterfaceAddress::parse("192.0.2.1/24");
    common::Ipv4Address gateway = ip("192.0.2.254");  // outside next hop
    common::MacAddress gateway_mac = mac("02:00:00:00:fe:01");
    common::Ipv4Address subscriber1 = ip("100.64.0.11");
    common::MacAddress subscriber1_mac = mac("02:00:00:00:00:11");
    common::Ipv4Address subscriber2 = ip("100.64.0.12");
    common::MacAddress subscriber2_mac = mac("02:00:00:00:00:12");
    common::Ipv4Address server1 = ip("203.0.113.10");  // beyond the gateway
    common::Ipv4Address server2 = ip("203.0.113.20");
    common::Ipv4Prefix pool = *common::Ipv4Prefix::parse("198.51.100.0/30");
};

using dp::RingPort;

class DataplaneHarness {
public:
    // Settings start from the defaults of a production config with the test topology; tweak
    // `settings()` before start(). With several workers, both ports get one queue per worker
    // and the workers are polled in turn from the test's thread (deterministic).
    explicit DataplaneHarness(unsigned workers = 1, unsigned mbufs = 8191,
                              unsigned ring_size = 4096);
    ~DataplaneHarness();

    dp::WorkerSettings& settings() { return settings_; }
    // Starts the workers. With `with_control`, they get a ControlChannel and controller()
    // reconfigures them live; its waits poll the workers from this thread.
    // `while_waiting` replaces that polling when the workers run on threads of their own.
    void start(bool with_control = false, dp::WhileWaiting while_waiting = {});
    ctl::Controller& controller() { return *controller_; }
    dp::ControlChannel& channel() { return *channel_; }
    dp::BlockMap& blocks() { return *blocks_; }
    // The events worker `w` recorded since the last call (block and quota events).
    std::vector<common::NatEvent> take_events(unsigned w = 0) {
        std::vector<common::NatEvent> out;
        common::NatEvent e;
        while (events_.at(w)->pop(e)) out.push_back(e);
        return out;
    }

    RingPort& inside() { return *inside_; }
    RingPort& outside() { return *outside_; }
    common::ManualClock& clock() { return clock_; }
    rte_mempool* pool() { return pool_; }  // the mbufs of the ports and the workers
    unsigned workers() const { return workers_; }
    dp::Worker& worker(unsigned index = 0) { return *workers_list_.at(index); }
    // Summed over the workers, or of one worker.
    uint64_t counter(common::Counter c) const;
    uint64_t counter(common::Counter c, unsigned worker) const {
        return counters_.at(worker)->get(c);
    }
    // Every counter, summed over the workers.
    common::CounterSnapshot counters() const;
    // The frame balance of all workers now (common/frame_accounting.hpp); call between polls.
    common::FrameBalance frame_balance() const;
    const Topology& topo() const { return topo_; }
    // The external endpoint of an internal one, on whichever worker holds it.
    std::optional<std::pair<uint32_t, uint16_t>> find_mapping(uint8_t protocol, uint32_t addr,
                                                              uint16_t port) const;

    // Each iteration polls every worker once, in order.
    void poll(int iterations = 1);
    // Teaches the workers the MAC of the outside gateway and of both subscribers (answers the
    // ARP requests they send), so later tests see translated frames right away.
    void resolve_neighbors();
    // Zeroes the counters (the workers are idle between polls), so a test counts only its own.
    void reset_counters() {
        for (auto& c : counters_)
            for (auto& v : c->values) v.store(0, std::memory_order_relaxed);
    }

private:
    unsigned workers_;
    Topology topo_;
    common::ManualClock clock_;
    std::vector<std::unique_ptr<common::WorkerCounters>> counters_;
    rte_mempool* pool_;
    std::unique_ptr<dp::RingPort> inside_;
    std::unique_ptr<dp::RingPort> outside_;
    std::unique_ptr<dp::HandoffRings> handoff_;
    dp::WorkerSettings settings_;
    std::unique_ptr<dp::BlockMap> blocks_;
    std::vector<std::unique_ptr<common::EventRing>> events_;
    std::unique_ptr<dp::ControlChannel> channel_;
    std::vector<std::unique_ptr<dp::Worker>> workers_list_;
    std::unique_ptr<ctl::Controller> controller_;
};

// Builders for frames of the test topology.
Frame arp_request(common::MacAddress sender_mac, common::Ipv4Address sender_ip,
                  common::Ipv4Address target_ip);
Frame arp_reply(common::MacAddress sender_mac, common::Ipv4Address sender_ip,
                common::MacAddress target_mac, common::Ipv4Address target_ip);

// Ethernet type, ARP operation and target of a frame (for checking ARP requests).
bool is_arp_request_for(const Frame& f, common::Ipv4Address target);

// Hex dump of a frame, for failure messages.
std::string hex(const Frame& f);

}  // namespace cgn::test
