#pragma once
// Ethernet port set-up on DPDK's ethdev: find a port by the device string given in the config,
// configure its queues, start and stop it. Errors throw PortError naming the device; these run
// before (and after) the workers, never on the packet path.

#include <rte_mempool.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common/address.hpp"

namespace cgn::dp {

class PortError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// The ethdev port of a device string ("0000:03:00.0", "net_af_packet0,iface=veth0"). `option`
// names the config option for the error message.
uint16_t find_port(const std::string& device, const std::string& option);

// What start_port could set up: steering, and the MTU.
struct PortSteering {
    // True when the NIC spreads received packets over the queues by the Toeplitz hash of the
    // IPv4 source address with cgnd's key and indirection table (queue = i % queues): then
    // inside packets arrive at their owner (Steering::subscriber_owner) and are not handed off.
    bool rss_on_source = false;
    uint32_t reta_size = 0;  // the indirection table size that hash is reduced by
    // True when the NIC spreads received packets over the queues by a hash of addresses and
    // ports (the outside port): each worker takes its share and hands on what another owns.
    bool rss_spread = false;
    // rte_eth_dev_set_mtu's answer for the MTU asked for: 0 when the device took it (or none
    // was asked for), else the driver's negative errno. A device that refuses keeps its own
    // MTU; the workers check packet sizes against cgnd's MTU in software either way.
    int mtu_error = 0;
};

// Configures `rx_queues` RX and `tx_queues` TX queues drawing from `pool` and starts the port.
// With `rss_on_source` and several RX queues, RSS on the IPv4 source address is set up where
// the device can do it. A non-zero `mtu` is asked of the device (rte_eth_dev_set_mtu; on
// net_af_packet and net_af_xdp that sets the kernel interface's MTU) before it starts.
PortSteering start_port(uint16_t port_id, uint16_t rx_queues, uint16_t tx_queues, rte_mempool* pool,
                        const std::string& option, bool rss_on_source = false, uint16_t mtu = 0);

common::MacAddress port_mac(uint16_t port_id);

// Stops and closes the port; returns the driver's error (0 when fine).
int stop_port(uint16_t port_id);

}  // namespace cgn::dp
