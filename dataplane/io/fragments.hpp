#pragma once
// Virtual reassembly of IPv4 fragments (RFC 4787 REQ-14: a NAT MUST handle fragments in order
// and out of order; REQ-14a: without letting fragment floods hurt unfragmented traffic).
//
// Only the first fragment carries the transport header, so the NAT learns the ports of a
// datagram from it and translates every fragment with them; nothing is reassembled or copied.
// A datagram is tracked by (source, destination, IP ID, protocol) from its first seen fragment
// until all its bytes were seen or a timeout passes. Fragments that arrive before the first
// are held (a few per datagram) and replayed once it comes. Memory is fixed at construction:
// at most `capacity` datagrams and kMaxHeld held fragments each, so a flood of fragments costs
// counted drops, never memory or time beyond the budget (REQ-14a).
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

    struct Key {
        uint32_t src;
        uint32_t dst;
        uint16_t id;
        uint8_t protocol;
        uint8_t side;  // inside and outside datagrams never share an entry
    };
    struct Entry {
        Key key;
        bool known = false;  // ports learned from the first fragment
        uint16_t src_port = 0;
        uint16_t dst_port = 0;
        uint32_t bytes_seen = 0;    // payload bytes of the fragments seen
        uint32_t total_bytes = 0;   // known once the last fragment (MF clear) was seen
        uint64_t created_ms = 0;
        uint32_t generation = 0;    // tells a live entry from a recycled one in the FIFO
        unsigned held = 0;
        rte_mbuf* held_mbufs[kMaxHeld];
    };

    FragmentTable(const std::string& name, uint32_t capacity, uint64_t timeout_ms, int socket_id);
    ~FragmentTable();
    FragmentTable(const FragmentTable&) = delete;
    FragmentTable& operator=(const FragmentTable&) = delete;

    // The datagram's entry, created when absent; null when the table is full.
    Entry* find_or_create(const Key& key, uint64_t now_ms);
    Entry* find(const Key& key);
    // Counts a fragment's payload bytes; the entry is freed once the whole datagram was seen
    // (first fragment included). `last`: MF clear, so offset + length is the total.
    void account(Entry* e, uint32_t offset_bytes, uint32_t length, bool last);
    // Frees entries older than the timeout (at most `budget`); their held fragments are given
    // to `on_drop`. Returns how many entries went.
    template <class OnDrop>
    uint32_t expire(uint64_t now_ms, uint32_t budget, OnDrop&& on_drop) {
        uint32_t n = 0;
        while (n < budget && fifo_count_ != 0) {
            const Fifo& f = fifo_[fifo_head_];
            Entry& e = entries_[f.slot];
            const bool live = in_use_[f.slot] && e.generation == f.generation;
            if (live && now_ms - e.created_ms < timeout_ms_) break;
            fifo_head_ = (fifo_head_ + 1) % fifo_.size();
            --fifo_count_;
            if (!live) continue;
            for (unsigned i = 0; i < e.held; ++i) on_drop(e.held_mbufs[i]);
            e.held = 0;
            release(f.slot);
            ++n;
        }
        return n;
    }
    uint32_t size() const { return size_; }
    // Calls f(mbuf) for each held fragment (frame accounting; walks the table: not for the
    // packet path).
    template <class F>
    void for_each_held(F&& f) const {
        for (size_t slot = 0; slot < entries_.size(); ++slot)
            if (in_use_[slot])
                for (unsigned i = 0; i < entries_[slot].held; ++i) f(entries_[slot].held_mbufs[i]);
    }

private:
    struct Fifo {
        uint32_t slot;
        uint32_t generation;
    };
    void release(uint32_t slot);

    HashTable table_;  // Key -> slot
    std::vector<Entry> entries_;
    std::vector<uint8_t> in_use_;
    std::vector<uint32_t> free_;
    // Entries in creation order (the timeout is the same for all, so the oldest is first).
    std::vector<Fifo> fifo_;
    uint32_t fifo_head_ = 0;
    uint32_t fifo_count_ = 0;
    uint64_t timeout_ms_;
    uint32_t size_ = 0;
};

}  // namespace cgn::dp
