#pragma once
// Handoff rings between workers: a packet that arrives on one worker's queue but belongs to
// another (DESIGN invariant 3) travels through ring(from, to).
//
// Sharing rule: ring(from, to) has exactly one producer, worker `from`, and one consumer,
// worker `to`; the rings are created single-producer/single-consumer. They are bounded: a
// full ring makes the producer drop and count (drop_handoff_full), never wait.

#include <rte_ring.h>

#include <string>
#include <vector>

namespace cgn::dp {

class HandoffRings {
public:
    // `size`: a power of two. `name` keeps several sets apart in one process.
    HandoffRings(const std::string& name, unsigned workers, unsigned size, int socket_id);
    ~HandoffRings();
    HandoffRings(const HandoffRings&) = delete;
    HandoffRings& operator=(const HandoffRings&) = delete;

    unsigned workers() const { return workers_; }
    rte_ring* ring(unsigned from, unsigned to) const { return rings_[from * workers_ + to]; }

private:
    void release();  // frees the rings and any packets still in them

    unsigned workers_;
    std::vector<rte_ring*> rings_;  // [from * workers + to]; null on the diagonal
};

}  // namespace cgn::dp
