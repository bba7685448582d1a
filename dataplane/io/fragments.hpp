#pragma once
// Virtual reassembly of IPv4 fragments (RFC 4787 REQ-14: a NAT MUST handle fragments in order
// and out of order; REQ-14a: without letting fragment floods hurt unfragmented traffic).
//
// Only the first fragment carries the transport header, so the NAT learns the ports of a
// datagram from it and translates every fragment with them; nothing is reassembled or copied.
// A datagram is tracked by (source, destination, IP ID, protocol) from its first seen fragment
// until all its bytes were seen or a timeout passes. Fragments that arrive before the first
// are held (a few per datagram, and at most `hold_budget` mbufs in all, a share of the mbuf
// pool: common/mbuf_budget.hpp) and replayed once it comes. Memory is fixed at construction:
// at most `capacity` datagrams, so a flood of fragments costs counted drops, never memory,
// mbufs or time beyond the budget (REQ-14a).
//
// Sharing rule: owned by one worker.

#include <rte_mbuf.h>

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/table/hash_table.hpp"

namespace cgn::dp {

class FragmentTable {
public:
    static constexpr unsigned kMaxHeld = 8;
    // Disjoint byte ranges of a datagram remembered to tell new bytes from duplicates; a
    // datagram arriving in more pieces than this is never completed early (it times out).
    static constexpr unsigned kMaxRanges = 8;
    static constexpr uint32_t kNone = ~uint32_t{0};

    struct Key {
        uint32_t src;
        uint32_t dst;
        uint16_t id;
        uint8_t protocol;
        uint8_t side;  // inside and outside datagrams never share an entry
    };
    struct Range {
        uint32_t begin;
        uint32_t end;
    };
    struct Entry {
        Key key;
        bool known = false;  // ports learned from the first fragment
        uint16_t src_port = 0;
        uint16_t dst_port = 0;
        // The payload bytes seen, as disjoint sorted ranges: a duplicate or overlapping
        // fragment adds only what is new, so it cannot complete the datagram early.
        uint8_t ranges = 0;
        bool untracked = false;  // more pieces than kMaxRanges: completes by timeout only
        Range seen[kMaxRanges];
        uint32_t total_bytes = 0;  // known once the last fragment (MF clear) was seen
        uint64_t created_ms = 0;
        uint32_t older = kNone;  // creation order, oldest first (expiry)
        uint32_t newer = kNone;
        unsigned held = 0;
        rte_mbuf* held_mbufs[kMaxHeld];
    };

    FragmentTable(const std::string& name, uint32_t capacity, uint64_t timeout_ms, int socket_id,
                  uint32_t hold_budget);
    ~FragmentTable();
    FragmentTable(const FragmentTable&) = delete;
    FragmentTable& operator=(const FragmentTable&) = delete;

    // The datagram's entry, created when absent; null when the table is full.
    Entry* find_or_create(const Key& key, uint64_t now_ms);
    Entry* find(const Key& key);
    // Records a fragment's payload bytes [offset, offset + length); `last`: MF clear, so that
    // is the datagram's end. Does not free the entry.
    static void add_bytes(Entry* e, uint32_t offset_bytes, uint32_t length, bool last);
    // add_bytes, then frees the entry once the whole datagram was seen (first fragment
    // included) and nothing is held.
    void account(Entry* e, uint32_t offset_bytes, uint32_t length, bool last);
    // Holds a fragment until its first fragment comes; false (nothing held) when the datagram
    // holds kMaxHeld already or the table holds `hold_budget` mbufs.
    enum class HoldResult { held, datagram_full, budget_full };
    HoldResult hold(Entry* e, rte_mbuf* m);
    // The held fragments of `e`, to replay: `e` holds none after this.
    unsigned take_held(Entry* e, rte_mbuf** out);
    // Frees entries older than the timeout (at most `budget`); their held fragments are given
    // to `on_drop`. Returns how many entries went.
    template <class OnDrop>
    uint32_t expire(uint64_t now_ms, uint32_t budget, OnDrop&& on_drop) {
        uint32_t n = 0;
        while (n < budget && oldest_ != kNone) {
            Entry& e = entries_[oldest_];
            if (now_ms - e.created_ms < timeout_ms_) break;
            for (unsigned i = 0; i < e.held; ++i) on_drop(e.held_mbufs[i]);
            held_total_ -= e.held;
            e.held = 0;
            release(oldest_);
            ++n;
        }
        return n;
    }
    uint32_t size() const { return size_; }
    // Mbufs held in all entries.
    uint32_t held() const { return held_total_; }
    // Calls f(mbuf) for each held fragment (frame accounting; walks the table: not for the
    // packet path).
    template <class F>
    void for_each_held(F&& f) const {
        for (uint32_t slot = oldest_; slot != kNone; slot = entries_[slot].newer)
            for (unsigned i = 0; i < entries_[slot].held; ++i) f(entries_[slot].held_mbufs[i]);
    }

private:
    void release(uint32_t slot);

    HashTable table_;  // Key -> slot
    std::vector<Entry> entries_;
    std::vector<uint32_t> free_;
    // Live entries in creation order (the timeout is the same for all, so the oldest goes
    // first); a doubly linked list through the entries, so that one freed early leaves no
    // place behind that could block new entries.
    uint32_t oldest_ = kNone;
    uint32_t newest_ = kNone;
    uint64_t timeout_ms_;
    uint32_t size_ = 0;
    uint32_t hold_budget_;
    uint32_t held_total_ = 0;
};

}  // namespace cgn::dp
