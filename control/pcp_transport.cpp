#include "control/pcp_transport.hpp"

#include <cstring>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "control/pcp/wire.hpp"

namespace cgn::ctl {

namespace eth = common::eth;
namespace ipv4 = common::ipv4;
namespace udp = common::udp;

PcpDataplaneTransport::PcpDataplaneTransport(std::vector<WorkerRings> rings, rte_mempool* pool,
                                             common::MacAddress inside_mac)
    : rings_(std::move(rings)), pool_(pool), inside_mac_(inside_mac) {}

// The worker checked the IPv4 header and the UDP port; what is left to find is where the
// datagram and its payload are.
bool PcpDataplaneTransport::read(unsigned worker, rte_mbuf* m, Origin& out) {
    const auto* f = rte_pktmbuf_mtod(m, const uint8_t*);
    const size_t length = rte_pktmbuf_data_len(m);
    if (length < eth::kHeaderLength + ipv4::kMinHeaderLength + udp::kHeaderLength) return false;
    const uint8_t* ip = f + eth::kHeaderLength;
    const size_t ihl = size_t{ip[0] & 0x0fu} * 4;
    const size_t total = common::load_be16(ip + 2);
    if (ihl < ipv4::kMinHeaderLength || total > length - eth::kHeaderLength || total < ihl + udp::kHeaderLength)
        return false;
    const uint8_t* u = ip + ihl;
    const size_t udp_length = common::load_be16(u + udp::kLength);
    if (udp_length < udp::kHeaderLength || udp_length > total - ihl) return false;
    out.worker = worker;
    std::copy(f + eth::kSrc, f + eth::kSrc + 6, out.mac.bytes.begin());
    out.client = common::Ipv4Address{common::load_be32(ip + ipv4::kSrc)};
    out.server = common::Ipv4Address{common::load_be32(ip + ipv4::kDst)};
    out.client_port = common::load_be16(u + udp::kSrcPort);
    out.payload.assign(u + udp::kHeaderLength, u + udp_length);
    return true;
}

void PcpDataplaneTransport::send(const Origin& to, const std::vector<uint8_t>& payload) {
    const auto frame = common::PacketBuilder()
                           .ethernet(inside_mac_, to.mac)
                           .ipv4(to.server, to.client, 64, 0)
                           .udp(pcp::kServerPort, to.client_port)
                           .payload(payload)
                           .build();
    rte_mbuf* m = rte_pktmbuf_alloc(pool_);
    char* room = m != nullptr ? rte_pktmbuf_append(m, static_cast<uint16_t>(frame.size())) : nullptr;
    if (room == nullptr) {
        if (m != nullptr) rte_pktmbuf_free(m);
        ++tally_.answers_lost;
        return;
    }
    std::memcpy(room, frame.data(), frame.size());
    if (rte_ring_sp_enqueue(rings_[to.worker].answers, m) != 0) {
        rte_pktmbuf_free(m);
        ++tally_.answers_lost;
        return;
    }
    ++tally_.answers;
}

void PcpDataplaneTransport::send_unsolicited(const pcp::Answer& answer, unsigned worker,
                                             common::Ipv4Address server) {
    Origin to{worker, common::MacAddress{}, server, answer.to, answer.port, {}};
    const uint64_t before = tally_.answers;
    send(to, answer.bytes);
    if (tally_.answers != before) ++tally_.unsolicited;
}

size_t PcpDataplaneTransport::serve_once(pcp::Service& service, size_t max_batch) {
    std::vector<pcp::Received> batch;
    rte_mbuf* burst[32];
    for (unsigned w = 0; w < rings_.size() && batch.size() < max_batch; ++w) {
        const unsigned want = static_cast<unsigned>(std::min<size_t>(32, max_batch - batch.size()));
        const unsigned n = rte_ring_sc_dequeue_burst(rings_[w].requests,
                                                     reinterpret_cast<void**>(burst), want, nullptr);
        for (unsigned i = 0; i < n; ++i) {
            Origin o;
            if (read(w, burst[i], o)) {
                const uint64_t tag = next_tag_++;
                const Origin& kept = origins_.emplace(tag, std::move(o)).first->second;
                batch.push_back(pcp::Received{kept.client, kept.client_port, kept.payload, tag});
            } else {
                ++tally_.malformed;
            }
            rte_pktmbuf_free(burst[i]);
        }
        tally_.requests += n;
    }
    if (batch.empty() && service.waiting() == 0) return 0;
    for (const pcp::Answer& a : service.serve(batch)) {
        const auto it = origins_.find(a.tag);
        if (it == origins_.end()) continue;
        send(it->second, a.bytes);
        origins_.erase(it);
    }
    // Requests that were dropped have no answer: forget where they came from. A request still
    // waiting keeps its origin (the service has it in flight).
    for (const uint64_t tag : service.dropped_tags()) origins_.erase(tag);
    return batch.size();
}

}  // namespace cgn::ctl
