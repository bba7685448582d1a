#pragma once
// The PCP service's transport through the dataplane (RFC 6887 §7 over cgnd's own ports): the
// requests the workers took off the inside port (docs/architecture.md, "PCP and NAT-PMP
// requests") are read from their rings, served as one batch by the service (which stores
// before it answers), and each answer goes back, as a whole frame, on the ring of the worker
// that received its request: from the address and port the request went to (§8.3), to the
// Ethernet address it came from (the subscriber, or the router it is behind).
//
// Runs on the control thread only: it is the single consumer of every request ring and the
// single producer of every answer ring. It allocates (frames, vectors): the control thread may.

#include <rte_mbuf.h>
#include <rte_ring.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

#include "common/address.hpp"
#include "control/pcp/service.hpp"

namespace cgn::ctl {

struct PcpTransportTally {
    uint64_t requests = 0;   // taken from the rings
    uint64_t malformed = 0;  // frames that were not a UDP datagram after all (freed)
    uint64_t answers = 0;    // queued to a worker
    uint64_t answers_lost = 0;  // no mbuf, or the worker's answer ring full
    uint64_t unsolicited = 0;   // of the answers: sent unasked (§14)
};

class PcpDataplaneTransport {
public:
    struct WorkerRings {
        rte_ring* requests = nullptr;  // worker -> control
        rte_ring* answers = nullptr;   // control -> worker
    };

    PcpDataplaneTransport(std::vector<WorkerRings> rings, rte_mempool* pool,
                          common::MacAddress inside_mac);

    // Takes up to `max_batch` requests (all workers), serves them, queues the answers ready
    // (of these requests or of earlier ones whose NAT answer came); returns the requests
    // taken. Never blocks: requests waiting for the NAT are answered by a later call.
    size_t serve_once(pcp::Service& service, size_t max_batch);
    // RFC 6887 §14: a message no request asked for (Service::take_unsolicited), sent from
    // `server` port 5351 to the answer's address and port through `worker`, which routes it
    // (ARP included): the client's Ethernet address is not known here.
    void send_unsolicited(const pcp::Answer& answer, unsigned worker, common::Ipv4Address server);
    // Requests taken and not answered yet (waiting for the NAT or the store).
    size_t unanswered() const { return origins_.size(); }
    const PcpTransportTally& tally() const { return tally_; }

private:
    struct Origin {
        unsigned worker;
        common::MacAddress mac;          // the frame's source
        common::Ipv4Address server;      // where it went: the answer's source
        common::Ipv4Address client;
        uint16_t client_port;
        std::vector<uint8_t> payload;
    };
    bool read(unsigned worker, rte_mbuf* m, Origin& out);
    void send(const Origin& to, const std::vector<uint8_t>& payload);

    std::vector<WorkerRings> rings_;
    rte_mempool* pool_;
    common::MacAddress inside_mac_;
    PcpTransportTally tally_;
    uint64_t next_tag_ = 1;
    std::unordered_map<uint64_t, Origin> origins_;  // tag -> where its answer goes
};

}  // namespace cgn::ctl
