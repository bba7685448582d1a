#pragma once
// ARP cache of one worker for one port: next hop IPv4 address -> MAC, with a few packets held
// while an address is being resolved (so the first packets of a flow are not lost).
//
// States: incomplete (request sent, packets waiting), reachable (MAC known), failed (no answer
// after kMaxRequests; new packets are dropped for kFailedHoldMs, then resolution is retried).
// Housekeeping (retransmits, giving up, forgetting idle entries) visits a few slots per call of
// tick(), so its cost per loop is bounded.
//
// Sharing rule: owned by one worker; no other thread touches it.

#include <rte_mbuf.h>

#include <array>
#include <cstdint>
#include <vector>

#include "common/address.hpp"
#include "dataplane/table/hash_table.hpp"

namespace cgn::dp {

class NeighborTable {
public:
    static constexpr unsigned kQueueLength = 4;
    static constexpr uint64_t kRetransmitMs = 1000;
    static constexpr unsigned kMaxRequests = 3;
    static constexpr uint64_t kFailedHoldMs = 1000;
    static constexpr uint64_t kReachableMs = 300'000;  // re-ask after this long unconfirmed
    static constexpr uint64_t kIdleForgetMs = 600'000;

    enum class State : uint8_t { free, incomplete, reachable, failed };

    struct Entry {
        uint32_t ip = 0;
        State state = State::free;
        uint8_t requests = 0;
        uint8_t queued = 0;
        common::MacAddress mac;
        uint64_t confirmed_ms = 0;
        uint64_t last_request_ms = 0;
        uint64_t last_used_ms = 0;
        std::array<rte_mbuf*, kQueueLength> queue{};
    };

    NeighborTable(const std::string& name, uint32_t capacity, int socket_id);
    ~NeighborTable();

    Entry* find(uint32_t ip);
    // Finds or creates (incomplete, nothing sent yet). Null when the table is full.
    Entry* find_or_create(uint32_t ip, uint64_t now_ms);
    void forget(Entry* e);

    // Visits up to `budget` slots round-robin, calling on_retransmit(entry) for incomplete
    // entries due for another request, on_give_up(entry) (queue still filled; the callee frees
    // it) for those out of requests, and forgetting idle entries.
    template <class Retransmit, class GiveUp>
    void tick(uint64_t now_ms, unsigned budget, Retransmit&& on_retransmit, GiveUp&& on_give_up) {
        for (unsigned i = 0; i < budget; ++i) {
            Entry& e = entries_[cursor_];
            cursor_ = (cursor_ + 1) % entries_.size();
            switch (e.state) {
                case State::free:
                    break;
                case State::incomplete:
                    if (now_ms - e.last_request_ms < kRetransmitMs) break;
                    if (e.requests >= kMaxRequests) {
                        on_give_up(e);
                        e.state = State::failed;
                        e.queued = 0;
                        e.last_request_ms = now_ms;  // the hold-down starts now
                    } else {
                        on_retransmit(e);
                    }
                    break;
                case State::reachable:
                case State::failed:
                    if (now_ms - e.last_used_ms > kIdleForgetMs) forget(&e);
                    break;
            }
        }
    }

    uint32_t size() const { return table_.size(); }
    // Calls f(mbuf) for each packet waiting for its next hop's MAC (frame accounting; walks
    // the table: not for the packet path).
    template <class F>
    void for_each_queued(F&& f) const {
        for (const Entry& e : entries_)
            for (unsigned i = 0; i < e.queued; ++i) f(e.queue[i]);
    }

private:
    HashTable table_;  // ip -> slot
    std::vector<Entry> entries_;
    std::vector<uint32_t> free_;
    size_t cursor_ = 0;
};

}  // namespace cgn::dp
