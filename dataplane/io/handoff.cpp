#include "dataplane/io/handoff.hpp"

#include <rte_errno.h>
#include <rte_mbuf.h>

#include <stdexcept>

namespace cgn::dp {

HandoffRings::HandoffRings(const std::string& name, unsigned workers, unsigned size, int socket_id)
    : workers_(workers), rings_(workers * workers, nullptr) {
    for (unsigned from = 0; from < workers; ++from) {
        for (unsigned to = 0; to < workers; ++to) {
            if (from == to) continue;
            const std::string ring_name =
                name + "_" + std::to_string(from) + "_" + std::to_string(to);
            rte_ring* r =
                rte_ring_create(ring_name.c_str(), size, socket_id, RING_F_SP_ENQ | RING_F_SC_DEQ);
            if (r == nullptr) {
                release();
                throw std::runtime_error("cannot create handoff ring " + ring_name + ": " +
                                         rte_strerror(rte_errno));
            }
            rings_[from * workers + to] = r;
        }
    }
}

HandoffRings::~HandoffRings() { release(); }

void HandoffRings::release() {
    for (rte_ring*& r : rings_) {
        if (r == nullptr) continue;
        void* m = nullptr;
        while (rte_ring_sc_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        rte_ring_free(r);
        r = nullptr;
    }
}

}  // namespace cgn::dp
