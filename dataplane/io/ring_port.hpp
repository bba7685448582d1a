#pragma once
// An ethdev port backed by two rte_rings (the net_ring PMD's rte_eth_from_rings): whatever is
// put on its RX ring the worker receives, whatever the worker transmits lands on its TX ring.
// Used by the dataplane tests and the benchmarks to run the real worker loop with no NIC.

#include <rte_mempool.h>
#include <rte_ring.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/address.hpp"

namespace cgn::dp {

class RingPort {
  public:
    // `ring_size`: a power of two; the rings hold one less.
    RingPort(const std::string& name, rte_mempool* pool, unsigned ring_size = 4096);
    ~RingPort();
    uint16_t port_id() const { return port_id_; }
    common::MacAddress mac() const { return mac_; }
    rte_ring* rx_ring() { return rx_; }
    rte_ring* tx_ring() { return tx_; }
    // Queues a copy of a frame for the worker to receive.
    void inject(const std::vector<uint8_t>& frame);
    // Copies of everything the worker transmitted since the last call, in order (freed).
    std::vector<std::vector<uint8_t>> drain();

  private:
    rte_mempool* pool_;
    rte_ring* rx_;
    rte_ring* tx_;
    uint16_t port_id_;
    common::MacAddress mac_;
};

}  // namespace cgn::dp
