#include "dataplane/io/fragments.hpp"

#include <cstring>

namespace cgn::dp {

namespace {
// The hash key has no padding bytes: compare whole keys safely.
struct PackedKey {
    uint32_t src;
    uint32_t dst;
    uint16_t id;
    uint8_t protocol;
    uint8_t side;
};
static_assert(sizeof(PackedKey) == 12);

PackedKey pack(const FragmentTable::Key& k) { return PackedKey{k.src, k.dst, k.id, k.protocol, k.side}; }
}  // namespace

FragmentTable::FragmentTable(const std::string& name, uint32_t capacity, uint64_t timeout_ms,
                             int socket_id)
    : table_(name, capacity, sizeof(PackedKey), socket_id),
      entries_(capacity),
      in_use_(capacity, 0),
      fifo_(capacity),
      timeout_ms_(timeout_ms) {
    free_.reserve(capacity);
    for (uint32_t i = capacity; i > 0; --i) free_.push_back(i - 1);
}

FragmentTable::~FragmentTable() {
    for (uint32_t i = 0; i < entries_.size(); ++i) {
        if (!in_use_[i]) continue;
        for (unsigned h = 0; h < entries_[i].held; ++h) rte_pktmbuf_free(entries_[i].held_mbufs[h]);
    }
}

FragmentTable::Entry* FragmentTable::find(const Key& key) {
    const PackedKey k = pack(key);
    uint64_t slot = 0;
    if (!table_.lookup(&k, slot)) return nullptr;
    return &entries_[slot];
}

FragmentTable::Entry* FragmentTable::find_or_create(const Key& key, uint64_t now_ms) {
    if (Entry* e = find(key)) return e;
    // The FIFO has a place for every entry; stale places (entries freed early) are skipped by
    // expire(), and a full FIFO means the oldest place is stale or old enough to go.
    if (free_.empty() || fifo_count_ == fifo_.size()) return nullptr;
    const uint32_t slot = free_.back();
    const PackedKey k = pack(key);
    if (!table_.insert(&k, slot)) return nullptr;
    free_.pop_back();
    Entry& e = entries_[slot];
    const uint32_t generation = e.generation + 1;
    e = Entry{};
    e.key = key;
    e.created_ms = now_ms;
    e.generation = generation;
    in_use_[slot] = 1;
    fifo_[(fifo_head_ + fifo_count_) % fifo_.size()] = Fifo{slot, generation};
    ++fifo_count_;
    ++size_;
    return &e;
}

void FragmentTable::account(Entry* e, uint32_t offset_bytes, uint32_t length, bool last) {
    e->bytes_seen += length;
    if (last) e->total_bytes = offset_bytes + length;
    if (e->known && e->total_bytes != 0 && e->bytes_seen >= e->total_bytes && e->held == 0)
        release(static_cast<uint32_t>(e - entries_.data()));
}

void FragmentTable::release(uint32_t slot) {
    Entry& e = entries_[slot];
    const PackedKey k = pack(e.key);
    table_.erase(&k);
    in_use_[slot] = 0;
    free_.push_back(slot);
    --size_;
}

}  // namespace cgn::dp
