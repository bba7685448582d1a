#include "dataplane/io/port.hpp"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>

#include <algorithm>
#include <vector>

#include "common/config.hpp"
#include "common/mbuf_budget.hpp"
#include "dataplane/nat/steering.hpp"

namespace cgn::dp {

namespace {

constexpr uint16_t kRxDescriptors = common::MbufBudget::kRxDescriptors;
constexpr uint16_t kTxDescriptors = common::MbufBudget::kTxDescriptors;

[[noreturn]] void fail(const std::string& option, uint16_t port_id, const char* what, int rc) {
    throw PortError("--" + option + " (port " + std::to_string(port_id) + "): " + what + ": " +
                    rte_strerror(rc < 0 ? -rc : rc));
}

}  // namespace

uint16_t find_port(const std::string& device, const std::string& option) {
    uint16_t port_id = 0;
    const std::string name = common::device_name(device);
    if (rte_eth_dev_get_port_by_name(name.c_str(), &port_id) != 0)
        throw PortError("--" + option + " " + device + ": no such DPDK port '" + name +
                        "' (is the device present and bound, or the vdev's interface there?)");
    return port_id;
}

namespace {

// Programs the started port's indirection table for RSS on the source address; false when
// the device did not take it as asked.
bool program_source_rss(uint16_t port_id, const rte_eth_dev_info& info, uint16_t rx_queues) {
    // Indirection table: entry i -> queue i % queues, as Steering::subscriber_owner assumes.
    std::vector<rte_eth_rss_reta_entry64> reta((info.reta_size + RTE_ETH_RETA_GROUP_SIZE - 1) /
                                               RTE_ETH_RETA_GROUP_SIZE);
    for (uint32_t i = 0; i < info.reta_size; ++i) {
        auto& group = reta[i / RTE_ETH_RETA_GROUP_SIZE];
        group.mask |= uint64_t{1} << (i % RTE_ETH_RETA_GROUP_SIZE);
        group.reta[i % RTE_ETH_RETA_GROUP_SIZE] = static_cast<uint16_t>(i % rx_queues);
    }
    rte_eth_rss_conf applied{};
    uint8_t applied_key[sizeof kRssKey];
    applied.rss_key = applied_key;
    applied.rss_key_len = sizeof applied_key;
    // Keep RSS only if the device took the table and hashes the source alone; otherwise
    // the handoff rings put things right and this is only load spreading.
    return rte_eth_dev_rss_reta_update(port_id, reta.data(), info.reta_size) == 0 &&
           rte_eth_dev_rss_hash_conf_get(port_id, &applied) == 0 &&
           (applied.rss_hf & RTE_ETH_RSS_L3_SRC_ONLY) != 0 &&
           std::equal(std::begin(kRssKey), std::end(kRssKey), applied_key);
}

}  // namespace

PortSteering start_port(uint16_t port_id, uint16_t rx_queues, uint16_t tx_queues, rte_mempool* pool,
                        const std::string& option, bool rss_on_source, uint16_t mtu) {
    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(port_id, &info); rc != 0)
        fail(option, port_id, "cannot read device info", rc);
    if (rx_queues > info.max_rx_queues || tx_queues > info.max_tx_queues)
        throw PortError("--" + option + ": the device supports " +
                        std::to_string(info.max_rx_queues) + " RX / " +
                        std::to_string(info.max_tx_queues) + " TX queues, " +
                        std::to_string(rx_queues) +
                        " needed (one per worker; net_af_packet: add qpairs=N to the device, "
                        "net_af_xdp: queue_count=N on an interface with N queues)");
    rte_eth_conf conf{};
    // RSS on the source address only, so that the NIC's choice of queue can equal the owner
    // cgnd computes (the same Toeplitz key and indirection table).
    constexpr uint64_t kSourceHash = RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_L3_SRC_ONLY;
    constexpr uint64_t kSpreadHash =
        RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_NONFRAG_IPV4_TCP;
    PortSteering steering;
    uint8_t key[sizeof kRssKey];
    std::copy(std::begin(kRssKey), std::end(kRssKey), key);
    if (rss_on_source && rx_queues > 1 && info.reta_size > 0 &&
        (info.flow_type_rss_offloads & RTE_ETH_RSS_IPV4) && info.hash_key_size == sizeof kRssKey) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_key = key;
        conf.rx_adv_conf.rss_conf.rss_key_len = sizeof key;
        conf.rx_adv_conf.rss_conf.rss_hf =
            kSourceHash & (info.flow_type_rss_offloads | RTE_ETH_RSS_L3_SRC_ONLY);
        steering.rss_on_source = true;
        steering.reta_size = info.reta_size;
    } else if (!rss_on_source && rx_queues > 1 &&
               (info.flow_type_rss_offloads & kSpreadHash) != 0) {
        // The outside port: spread by addresses and ports, so that every worker parses and
        // steers its share of the downstream traffic (without RSS the NIC puts all of it on
        // queue 0, and one core does that work for the whole box). The owner follows from the
        // destination port's block (BlockMap::owner_of_port); packets on another worker's
        // queue are handed to it.
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf = kSpreadHash & info.flow_type_rss_offloads;
        steering.rss_spread = true;
    }
    if (int rc = rte_eth_dev_configure(port_id, rx_queues, tx_queues, &conf); rc != 0)
        fail(option, port_id, "cannot configure", rc);
    // After configure (ethdev refuses it before), before the queues and the start. A device
    // with no MTU of its own (net_ring) refuses every change: at the MTU ethdev already
    // records for it there is nothing to report.
    if (mtu != 0) {
        const int rc = rte_eth_dev_set_mtu(port_id, mtu);
        uint16_t current = 0;
        if (rc != 0 && !(rte_eth_dev_get_mtu(port_id, &current) == 0 && current == mtu))
            steering.mtu_error = rc;
    }
    uint16_t rx_desc = kRxDescriptors, tx_desc = kTxDescriptors;
    if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rx_desc, &tx_desc); rc != 0)
        fail(option, port_id, "cannot set descriptor counts", rc);
    const int socket = rte_eth_dev_socket_id(port_id);
    const unsigned socket_id = socket < 0 ? 0 : static_cast<unsigned>(socket);
    for (uint16_t q = 0; q < rx_queues; ++q)
        if (int rc = rte_eth_rx_queue_setup(port_id, q, rx_desc, socket_id, nullptr, pool); rc != 0)
            fail(option, port_id, "cannot set up RX queue", rc);
    for (uint16_t q = 0; q < tx_queues; ++q)
        if (int rc = rte_eth_tx_queue_setup(port_id, q, tx_desc, socket_id, nullptr); rc != 0)
            fail(option, port_id, "cannot set up TX queue", rc);
    if (int rc = rte_eth_dev_start(port_id); rc != 0) fail(option, port_id, "cannot start", rc);
    if (steering.rss_on_source && !program_source_rss(port_id, info, rx_queues)) {
        steering.rss_on_source = false;
        steering.reta_size = 0;
    }
    return steering;
}

common::MacAddress port_mac(uint16_t port_id) {
    rte_ether_addr addr{};
    rte_eth_macaddr_get(port_id, &addr);
    common::MacAddress mac;
    std::copy(addr.addr_bytes, addr.addr_bytes + 6, mac.bytes.begin());
    return mac;
}

int stop_port(uint16_t port_id) {
    rte_flow_error error{};
    rte_flow_flush(port_id, &error);  // the placement rules, where there are any
    int rc = rte_eth_dev_stop(port_id);
    int rc_close = rte_eth_dev_close(port_id);
    return rc != 0 ? rc : rc_close;
}

}  // namespace cgn::dp
