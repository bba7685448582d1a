#include "dataplane/table/hash_table.hpp"

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>

#include <stdexcept>

namespace cgn::dp {

HashTable::HashTable(const std::string& name, uint32_t capacity, uint32_t key_length,
                     int socket_id, Sharing sharing)
    : capacity_(capacity) {
    rte_hash_parameters params{};
    params.name = name.c_str();
    // rte_hash needs at least 8 entries and rounds up internally.
    params.entries = capacity < 8 ? 8 : capacity;
    params.key_len = key_length;
    params.hash_func = rte_hash_crc;
    params.hash_func_init_val = 0;
    params.socket_id = socket_id;
    params.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE;
    if (sharing == Sharing::one_writer_lock_free_readers)
        params.extra_flag |= RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
    hash_ = rte_hash_create(&params);
    if (hash_ == nullptr)
        throw std::runtime_error("cannot create hash table " + name + " for " +
                                 std::to_string(capacity) + " keys: " + rte_strerror(rte_errno) +
                                 " (give EAL more memory with -m or hugepages)");
}

HashTable::~HashTable() {
    rte_hash_free(hash_);
}

uint64_t HashTable::lookup_bulk(const void** keys, unsigned n, uint64_t* values) const {
    uint64_t hits = 0;
    void* data[kMaxBulk];
    if (n == 0) return 0;
    rte_hash_lookup_bulk_data(hash_, keys, n, &hits, data);
    for (unsigned i = 0; i < n; ++i)
        if (hits & (uint64_t{1} << i)) values[i] = reinterpret_cast<uintptr_t>(data[i]);
    return hits;
}

bool HashTable::lookup(const void* key, uint64_t& value) const {
    void* data = nullptr;
    if (rte_hash_lookup_data(hash_, key, &data) < 0) return false;
    value = reinterpret_cast<uintptr_t>(data);
    return true;
}

bool HashTable::insert(const void* key, uint64_t value) {
    // rte_hash_add_key_data replaces an existing key's data; the key is hashed once for both.
    const hash_sig_t signature = rte_hash_hash(hash_, key);
    if (rte_hash_lookup_with_hash(hash_, key, signature) >= 0) return false;
    return rte_hash_add_key_with_hash_data(hash_, key, signature,
                                           reinterpret_cast<void*>(value)) == 0;
}

bool HashTable::assign(const void* key, uint64_t value) {
    return rte_hash_add_key_data(hash_, key, reinterpret_cast<void*>(value)) == 0;
}

bool HashTable::erase(const void* key) {
    return rte_hash_del_key(hash_, key) >= 0;
}

void HashTable::attach_rcu(rte_rcu_qsbr* qsbr) {
    rte_hash_rcu_config config{};
    config.v = qsbr;
    // Defer queue: erase() returns at once and the slot is reclaimed on a later update once
    // the readers have moved on (the writer never blocks inside the table).
    config.mode = RTE_HASH_QSBR_MODE_DQ;
    if (rte_hash_rcu_qsbr_add(hash_, &config) != 0)
        throw std::runtime_error(std::string("cannot attach RCU to a hash table: ") +
                                 rte_strerror(rte_errno));
}

uint32_t HashTable::size() const {
    return static_cast<uint32_t>(rte_hash_count(hash_));
}

}  // namespace cgn::dp
