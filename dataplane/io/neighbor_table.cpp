#include "dataplane/io/neighbor_table.hpp"

namespace cgn::dp {

NeighborTable::NeighborTable(const std::string& name, uint32_t capacity, int socket_id)
    : table_(name, capacity, sizeof(uint32_t), socket_id), entries_(capacity) {
    free_.reserve(capacity);
    for (uint32_t i = capacity; i > 0; --i) free_.push_back(i - 1);
}

NeighborTable::~NeighborTable() {
    for (auto& e : entries_)
        for (unsigned i = 0; i < e.queued; ++i) rte_pktmbuf_free(e.queue[i]);
}

NeighborTable::Entry* NeighborTable::find(uint32_t ip) {
    uint64_t slot = 0;
    return table_.lookup(&ip, slot) ? &entries_[slot] : nullptr;
}

NeighborTable::Entry* NeighborTable::find_or_create(uint32_t ip, uint64_t now_ms) {
    if (Entry* e = find(ip)) return e;
    if (free_.empty()) return nullptr;
    const uint32_t slot = free_.back();
    if (!table_.insert(&ip, slot)) return nullptr;
    free_.pop_back();
    Entry& e = entries_[slot];
    e = Entry{};
    e.ip = ip;
    e.state = State::incomplete;
    e.last_used_ms = now_ms;
    return &e;
}

void NeighborTable::forget(Entry* e) {
    for (unsigned i = 0; i < e->queued; ++i) rte_pktmbuf_free(e->queue[i]);
    table_.erase(&e->ip);
    free_.push_back(static_cast<uint32_t>(e - entries_.data()));
    *e = Entry{};
}

}  // namespace cgn::dp
