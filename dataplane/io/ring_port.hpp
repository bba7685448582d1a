#pragma once
// An ethdev port backed by two rte_rings (the net_ring PMD's rte_eth_from_rings): whatever is
// put on its RX ring the worker receives, whatever the worker transmits lands on its TX ring.
// Used by the dataplane tests and the benchmarks to run the real worker loop with no NIC.

#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/address.hpp"

namespace cgn::dp {

class RingPort {
public:
    // `ring_size`: a power of two; the rings hold one less. `queues`: RX and TX queue pairs,
    // each on its own pair of rings.
    RingPort(const std::string& name, rte_mempool* pool, unsigned ring_size = 4096,
             uint16_t queues = 1);
    ~RingPort();
    RingPort(const RingPort&) = delete;
    RingPort& operator=(const RingPort&) = delete;

    uint16_t port_id() const { return port_id_; }
    common::MacAddress mac() const { return mac_; }
    uint16_t queues() const { return static_cast<uint16_t>(rx_.size()); }
    rte_ring* rx_ring(uint16_t queue = 0) { return rx_.at(queue); }
    rte_ring* tx_ring(uint16_t queue = 0) { return tx_.at(queue); }
    // Queues a copy of a frame to be received on RX queue `queue`.
    void inject(const std::vector<uint8_t>& frame, uint16_t queue = 0);
    // The same in two steps: build the mbuf now, queue it later (a test that must not write
    // packet memory while workers run on other threads builds everything first).
    rte_mbuf* make_mbuf(const std::vector<uint8_t>& frame);
    bool enqueue(rte_mbuf* m, uint16_t queue = 0);
    // Copies of everything transmitted since the last call (freed): on every queue, queue by
    // queue, or on one queue.
    std::vector<std::vector<uint8_t>> drain();
    std::vector<std::vector<uint8_t>> drain(uint16_t queue);

private:
    rte_mempool* pool_;
    std::vector<rte_ring*> rx_;
    std::vector<rte_ring*> tx_;
    uint16_t port_id_;
    common::MacAddress mac_;
};

}  // namespace cgn::dp
