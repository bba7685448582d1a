#include "dataplane/io/ring_port.hpp"

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include <cstring>
#include <stdexcept>

#include "dataplane/io/port.hpp"

namespace cgn::dp {

RingPort::RingPort(const std::string& name, rte_mempool* pool, unsigned ring_size, uint16_t queues)
    : pool_(pool) {
    for (uint16_t q = 0; q < queues; ++q) {
        const std::string suffix = "_" + std::to_string(q);
        rx_.push_back(rte_ring_create((name + "_rx" + suffix).c_str(), ring_size, SOCKET_ID_ANY,
                                      RING_F_SP_ENQ | RING_F_SC_DEQ));
        tx_.push_back(rte_ring_create((name + "_tx" + suffix).c_str(), ring_size, SOCKET_ID_ANY,
                                      RING_F_SP_ENQ | RING_F_SC_DEQ));
        if (rx_.back() == nullptr || tx_.back() == nullptr)
            throw std::runtime_error("cannot create rings for " + name);
    }
    const int port =
        rte_eth_from_rings(name.c_str(), rx_.data(), queues, tx_.data(), queues, SOCKET_ID_ANY);
    if (port < 0) throw std::runtime_error("cannot create ring port " + name);
    port_id_ = static_cast<uint16_t>(port);
    start_port(port_id_, queues, queues, pool, name);
    mac_ = port_mac(port_id_);
}

RingPort::~RingPort() {
    drain();
    stop_port(port_id_);
    for (rte_ring* r : rx_) {
        void* m = nullptr;
        while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        rte_ring_free(r);
    }
    for (rte_ring* r : tx_) rte_ring_free(r);
}

void RingPort::inject(const std::vector<uint8_t>& frame, uint16_t queue) {
    if (!enqueue(make_mbuf(frame), queue)) throw std::runtime_error("RX ring full");
}

rte_mbuf* RingPort::make_mbuf(const std::vector<uint8_t>& frame) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    if (m == nullptr) throw std::runtime_error("mbuf pool empty");
    char* data = rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size()));
    if (data == nullptr) {
        rte_pktmbuf_free(m);
        throw std::runtime_error("frame too large");
    }
    std::memcpy(rte_pktmbuf_mtod(m, uint8_t*), frame.data(), frame.size());
    return m;
}

bool RingPort::enqueue(rte_mbuf* m, uint16_t queue) {
    if (rte_ring_enqueue(rx_.at(queue), m) == 0) return true;
    rte_pktmbuf_free(m);
    return false;
}

std::vector<std::vector<uint8_t>> RingPort::drain() {
    std::vector<std::vector<uint8_t>> out;
    for (uint16_t q = 0; q < tx_.size(); ++q) {
        auto frames = drain(q);
        out.insert(out.end(), frames.begin(), frames.end());
    }
    return out;
}

std::vector<std::vector<uint8_t>> RingPort::drain(uint16_t queue) {
    std::vector<std::vector<uint8_t>> out;
    void* obj = nullptr;
    while (rte_ring_dequeue(tx_.at(queue), &obj) == 0) {
        auto* m = static_cast<rte_mbuf*>(obj);
        const auto* p = rte_pktmbuf_mtod(m, const uint8_t*);
        out.emplace_back(p, p + rte_pktmbuf_data_len(m));
        rte_pktmbuf_free(m);
    }
    return out;
}

}  // namespace cgn::dp
