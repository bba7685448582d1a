#include "dataplane/io/fragments.hpp"

#include <algorithm>
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

PackedKey pack(const FragmentTable::Key& k) {
    return PackedKey{k.src, k.dst, k.id, k.protocol, k.side};
}
}  // namespace

FragmentTable::FragmentTable(const std::string& name, uint32_t capacity, uint64_t timeout_ms,
                             int socket_id, uint32_t hold_budget)
    : table_(name, capacity, sizeof(PackedKey), socket_id),
      entries_(capacity),
      timeout_ms_(timeout_ms),
      hold_budget_(hold_budget) {
    free_.reserve(capacity);
    for (uint32_t i = capacity; i > 0; --i) free_.push_back(i - 1);
}

FragmentTable::~FragmentTable() {
    for (uint32_t i = oldest_; i != kNone; i = entries_[i].newer)
        for (unsigned h = 0; h < entries_[i].held; ++h) rte_pktmbuf_free(entries_[i].held_mbufs[h]);
}

FragmentTable::Entry* FragmentTable::find(const Key& key) {
    const PackedKey k = pack(key);
    uint64_t slot = 0;
    if (!table_.lookup(&k, slot)) return nullptr;
    return &entries_[slot];
}

FragmentTable::Entry* FragmentTable::find_or_create(const Key& key, uint64_t now_ms) {
    if (Entry* e = find(key)) return e;
    if (free_.empty()) return nullptr;
    const uint32_t slot = free_.back();
    const PackedKey k = pack(key);
    if (!table_.insert(&k, slot)) return nullptr;
    free_.pop_back();
    Entry& e = entries_[slot];
    e = Entry{};
    e.key = key;
    e.created_ms = now_ms;
    e.older = newest_;
    if (newest_ != kNone)
        entries_[newest_].newer = slot;
    else
        oldest_ = slot;
    newest_ = slot;
    ++size_;
    return &e;
}

void FragmentTable::add_bytes(Entry* e, uint32_t offset_bytes, uint32_t length, bool last) {
    if (last) e->total_bytes = offset_bytes + length;
    if (e->untracked || length == 0) return;
    // Merge [begin, end) into the sorted disjoint ranges.
    uint32_t begin = offset_bytes;
    uint32_t end = offset_bytes + length;
    Range merged[kMaxRanges + 1];
    unsigned n = 0;
    bool placed = false;
    for (unsigned i = 0; i < e->ranges; ++i) {
        const Range r = e->seen[i];
        if (r.end < begin) {
            merged[n++] = r;
        } else if (end < r.begin) {
            if (!placed) merged[n++] = Range{begin, end}, placed = true;
            merged[n++] = r;
        } else {
            begin = std::min(begin, r.begin);
            end = std::max(end, r.end);
        }
    }
    if (!placed) merged[n++] = Range{begin, end};
    if (n > kMaxRanges) {
        e->untracked = true;
        return;
    }
    std::memcpy(e->seen, merged, n * sizeof(Range));
    e->ranges = static_cast<uint8_t>(n);
}

void FragmentTable::account(Entry* e, uint32_t offset_bytes, uint32_t length, bool last) {
    add_bytes(e, offset_bytes, length, last);
    // Complete: one range from 0 to the end the last fragment gave.
    if (e->known && e->total_bytes != 0 && e->held == 0 && !e->untracked && e->ranges == 1 &&
        e->seen[0].begin == 0 && e->seen[0].end >= e->total_bytes)
        release(static_cast<uint32_t>(e - entries_.data()));
}

FragmentTable::HoldResult FragmentTable::hold(Entry* e, rte_mbuf* m) {
    if (e->held == kMaxHeld) return HoldResult::datagram_full;
    if (held_total_ >= hold_budget_) return HoldResult::budget_full;
    e->held_mbufs[e->held++] = m;
    ++held_total_;
    return HoldResult::held;
}

unsigned FragmentTable::take_held(Entry* e, rte_mbuf** out) {
    const unsigned n = e->held;
    std::memcpy(out, e->held_mbufs, n * sizeof(rte_mbuf*));
    held_total_ -= n;
    e->held = 0;
    return n;
}

void FragmentTable::release(uint32_t slot) {
    Entry& e = entries_[slot];
    const PackedKey k = pack(e.key);
    table_.erase(&k);
    if (e.older != kNone)
        entries_[e.older].newer = e.newer;
    else
        oldest_ = e.newer;
    if (e.newer != kNone)
        entries_[e.newer].older = e.older;
    else
        newest_ = e.older;
    free_.push_back(slot);
    --size_;
}

}  // namespace cgn::dp
