#pragma once
// A fixed-capacity hash map from a fixed-size key to a 64-bit value, on rte_hash. This header
// keeps DPDK out of its users: translation code sees keys and values, the .cpp sees rte_hash.
//
// Sharing rule, chosen at construction:
//   - Sharing::single_thread: no concurrency flags; one thread (the owning worker) does every
//     lookup and update.
//   - Sharing::one_writer_lock_free_readers: RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF; one
//     thread (the control thread) updates, any thread looks up without a lock. Removed key
//     slots are reused only after every reader reported a quiescent state on the QSBR variable
//     given to attach_rcu() (rte_hash_rcu_qsbr_add, defer-queue mode: erase() never waits).
// Extendable buckets are on, so an insert fails only when the table holds `capacity` keys.

#include <cstdint>
#include <string>

struct rte_hash;
struct rte_rcu_qsbr;

namespace cgn::dp {

class HashTable {
public:
    // The largest number of keys one lookup_bulk call takes.
    static constexpr unsigned kMaxBulk = 64;

    enum class Sharing { single_thread, one_writer_lock_free_readers };

    HashTable(const std::string& name, uint32_t capacity, uint32_t key_length, int socket_id,
              Sharing sharing = Sharing::single_thread);
    ~HashTable();
    HashTable(const HashTable&) = delete;
    HashTable& operator=(const HashTable&) = delete;

    // Looks up n <= kMaxBulk keys; values[i] is set where bit i of the returned mask is set.
    uint64_t lookup_bulk(const void** keys, unsigned n, uint64_t* values) const;
    bool lookup(const void* key, uint64_t& value) const;
    // Inserts a new key. False when the key is already there (its value is left alone: a key
    // belongs to the entry that inserted it until that entry erases it) or the table is full.
    bool insert(const void* key, uint64_t value);
    // Inserts, or replaces the value of a key already there. False when the table is full.
    bool assign(const void* key, uint64_t value);
    // True when the key was there.
    bool erase(const void* key);
    uint32_t size() const;
    // For Sharing::one_writer_lock_free_readers: the readers' QSBR variable.
    void attach_rcu(rte_rcu_qsbr* qsbr);
    uint32_t capacity() const { return capacity_; }

private:
    rte_hash* hash_;
    uint32_t capacity_;
};

}  // namespace cgn::dp
