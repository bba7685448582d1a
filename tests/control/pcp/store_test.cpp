// The durable mapping store (control/pcp/store.hpp) on LMDB: what is committed comes back
// after a reopen, what is not committed does not, and a process killed with SIGKILL in the
// middle of its commits loses none that it had acknowledged. The operator's live static
// mappings are kept beside PCP's, and a store written before they were opens unchanged.
#include "control/pcp/store.hpp"

#include <gtest/gtest.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "tests/control/pcp/pcp_test_util.hpp"

namespace cgn::ctl::pcp::test {
namespace {

MappingKey key(uint32_t i) {
    return MappingKey{common::Ipv4Address{0x64400000u + (i >> 8)},
                      static_cast<uint8_t>(i % 2 ? 6 : 17),
                      static_cast<uint16_t>(1000 + (i & 0xff))};
}

PcpMapping mapping(uint32_t i) {
    PcpMapping m;
    m.external = Endpoint{common::Ipv4Address{0xc6336401}, static_cast<uint16_t>(20000 + i)};
    m.nonce = nonce_1_to_12();
    m.nonce[0] = static_cast<uint8_t>(i);
    m.client = IpAddress::from_ipv4(key(i).internal);
    m.expires_ms = 1'800'000'000'000ull + i;
    if (i % 3 == 0)
        m.filters = {Filter{120, 0, v4("203.0.113.0")}, Filter{128, 443, v4("192.0.2.20")}};
    if (i % 4 == 0) m.description = "mapping " + std::to_string(i);
    m.natpmp = i % 5 == 0;
    return m;
}

bool same(const PcpMapping& a, const PcpMapping& b) {
    return a.external == b.external && a.nonce == b.nonce && a.client == b.client &&
           a.expires_ms == b.expires_ms && a.filters == b.filters &&
           a.description == b.description && a.natpmp == b.natpmp;
}

TEST(MappingStore, CommittedMappingsComeBackAfterAReopenInKeyOrder) {
    TempDir dir("cgn-store");
    {
        MappingStore store(dir.path());
        for (uint32_t i = 0; i < 50; ++i) store.put(key(i), mapping(i));
        EXPECT_EQ(store.queued(), 50u);
        store.commit();
        EXPECT_EQ(store.queued(), 0u);
        store.set_epoch_start(1'700'000'000'123ull);
        store.commit();
    }
    MappingStore again(dir.path());
    const auto loaded = again.load();
    ASSERT_EQ(loaded.size(), 50u);
    std::set<uint32_t> seen;
    for (size_t n = 0; n < loaded.size(); ++n) {
        if (n > 0) {
            EXPECT_LT(loaded[n - 1].key, loaded[n].key);
        }
        for (uint32_t i = 0; i < 50; ++i) {
            if (loaded[n].key != key(i)) continue;
            EXPECT_TRUE(same(loaded[n].mapping, mapping(i))) << i;
            seen.insert(i);
        }
    }
    EXPECT_EQ(seen.size(), 50u);
    EXPECT_EQ(again.epoch_start(), std::optional<uint64_t>(1'700'000'000'123ull));
}

TEST(MappingStore, NothingQueuedIsStoredUntilCommittedAndErasedMappingsGo) {
    TempDir dir("cgn-store");
    {
        MappingStore store(dir.path());
        EXPECT_FALSE(store.epoch_start());
        store.put(key(1), mapping(1));
        store.put(key(2), mapping(2));
        store.commit();
        store.erase(key(1));
        store.erase(key(99));  // absent: fine
        store.commit();
        store.put(key(3), mapping(3));  // never committed
    }
    MappingStore again(dir.path());
    const auto loaded = again.load();
    ASSERT_EQ(loaded.size(), 1u);
    EXPECT_EQ(loaded[0].key, key(2));
}

TEST(MappingStore, ARecordOfAnotherVersionIsAnErrorNotAGuess) {
    TempDir dir("cgn-store");
    { MappingStore(dir.path()).put(key(1), mapping(1)); }
    {
        // Write a record of version 9 under a valid key, with LMDB directly.
        MDB_env* env = nullptr;
        ASSERT_EQ(mdb_env_create(&env), 0);
        mdb_env_set_maxdbs(env, 2);
        ASSERT_EQ(mdb_env_open(env, dir.path().c_str(), 0, 0600), 0);
        MDB_txn* txn = nullptr;
        MDB_dbi dbi = 0;
        ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
        ASSERT_EQ(mdb_dbi_open(txn, "mappings", MDB_CREATE, &dbi), 0);
        char k[7] = {100, 64, 0, 11, 6, 0, 80};
        char v[64] = {9};
        MDB_val kv{sizeof k, k}, vv{sizeof v, v};
        ASSERT_EQ(mdb_put(txn, dbi, &kv, &vv, 0), 0);
        ASSERT_EQ(mdb_txn_commit(txn), 0);
        mdb_env_close(env);
    }
    MappingStore store(dir.path());
    EXPECT_THROW(store.load(), StoreError);
}

TEST(MappingStore, AnUnusableDirectoryIsAClearError) {
    try {
        MappingStore store("/proc/cgn-no-such-place/store");
        FAIL() << "opened";
    } catch (const StoreError& e) {
        EXPECT_NE(std::string(e.what()).find("/proc/cgn-no-such-place/store"), std::string::npos)
            << e.what();
    }
}

// A child commits batches of 10 mappings and reports each committed batch on a pipe; the
// parent kills it with SIGKILL at some point of its commits. Every mapping it reported is in
// the store afterwards (the ones after may or may not be, as a whole batch or not at all).
TEST(MappingStore, SigkillDuringCommitsLosesNothingAcknowledged) {
    for (int round = 0; round < 3; ++round) {
        TempDir dir("cgn-store");
        int fds[2];
        ASSERT_EQ(pipe(fds), 0);
        const pid_t child = fork();
        ASSERT_GE(child, 0);
        if (child == 0) {
            close(fds[0]);
            MappingStore store(dir.path());
            for (uint32_t batch = 0;; ++batch) {
                for (uint32_t i = batch * 10; i < batch * 10 + 10; ++i)
                    store.put(key(i), mapping(i));
                store.commit();
                const uint32_t done = batch * 10 + 10;
                if (write(fds[1], &done, sizeof done) != sizeof done) _exit(1);
            }
        }
        close(fds[1]);
        uint32_t acknowledged = 0, got = 0;
        while (acknowledged < 200u + 100u * static_cast<uint32_t>(round) &&
               read(fds[0], &got, sizeof got) == sizeof got)
            acknowledged = got;
        kill(child, SIGKILL);
        int status = 0;
        waitpid(child, &status, 0);
        close(fds[0]);
        ASSERT_TRUE(WIFSIGNALED(status));
        MappingStore store(dir.path());
        const auto loaded = store.load();
        ASSERT_GE(loaded.size(), acknowledged) << "round " << round;
        EXPECT_EQ(loaded.size() % 10, 0u) << "a batch is stored whole or not at all";
        std::set<MappingKey> keys;
        for (const auto& s : loaded) keys.insert(s.key);
        for (uint32_t i = 0; i < acknowledged; ++i)
            ASSERT_TRUE(keys.count(key(i))) << "acknowledged mapping " << i << " lost";
    }
}

common::StaticMapping static_mapping(const char* text) {
    return *common::StaticMapping::parse(text);
}

TEST(MappingStore, StaticMappingsSurviveAReopenAndGoWhenForgotten) {
    TempDir dir("cgn-store");
    const auto tcp = static_mapping("tcp 100.64.0.11:8080 198.51.100.2:80");
    const auto udp = static_mapping("udp 100.64.0.11:5060 198.51.100.2:5060");
    const auto one_to_one = static_mapping("ip 100.64.0.20 198.51.100.9");
    {
        MappingStore store(dir.path());
        EXPECT_TRUE(store.load_statics().empty());
        store.store_static(udp);
        store.store_static(one_to_one);
        store.store_static(tcp);
        EXPECT_EQ(store.queued(), 0u) << "not queued: written at once";
        store.put(key(1), mapping(1));  // a PCP change queued, never committed
    }
    {
        MappingStore store(dir.path());
        EXPECT_TRUE(store.load().empty()) << "the PCP queue is not committed by a static write";
        // Key order: internal address, then protocol (0 one-to-one, 6, 17), then port.
        EXPECT_EQ(store.load_statics(), (std::vector<common::StaticMapping>{tcp, udp, one_to_one}));
        store.forget_static(udp);
        // The same internal side again replaces the record (a one-to-one's key has port 0).
        store.store_static(static_mapping("ip 100.64.0.20 198.51.100.10"));
        store.forget_static(static_mapping("udp 100.64.0.99:1 198.51.100.2:1"));  // absent: fine
    }
    MappingStore store(dir.path());
    EXPECT_EQ(store.load_statics(), (std::vector<common::StaticMapping>{
                                        tcp, static_mapping("ip 100.64.0.20 198.51.100.10")}));
}

// The LMDB environment as cgnd wrote it before static mappings were kept: two named
// databases, "mappings" and "meta", and a PCP record of version 1 written byte by byte here.
void write_store_of_the_first_format(const std::string& dir) {
    MDB_env* env = nullptr;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 2);
    ASSERT_EQ(mdb_env_open(env, dir.c_str(), 0, 0600), 0);
    MDB_txn* txn = nullptr;
    MDB_dbi mappings = 0, meta = 0;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "mappings", MDB_CREATE, &mappings), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "meta", MDB_CREATE, &meta), 0);
    // tcp 100.64.0.11:8080
    const Bytes k = hex("64 40 00 0b  06  1f 90");
    const Bytes v =
        hex("01"                                               // record version 1
            "c6 33 64 01  4e 20"                               // external 198.51.100.1:20000
            "01 02 03 04 05 06 07 08 09 0a 0b 0c"              // nonce
            "00 00 00 00 00 00 00 00 00 00 ff ff 64 40 00 0b"  // client ::ffff:100.64.0.11
            "00 00 01 a3 18 5c 50 00"                          // expires 1800000000000 (Unix ms)
            "00"                                               // not NAT-PMP
            "01  78 01 bb"  // one filter: /120 (IPv4 /24), port 443
            "00 00 00 00 00 00 00 00 00 00 ff ff cb 00 71 00"  // 203.0.113.0
            "00 03 77 65 62");                                 // description "web"
    MDB_val kv{k.size(), const_cast<uint8_t*>(k.data())};
    MDB_val vv{v.size(), const_cast<uint8_t*>(v.data())};
    ASSERT_EQ(mdb_put(txn, mappings, &kv, &vv, 0), 0);
    std::string epoch_key = "epoch_start_unix_ms";
    const Bytes epoch = hex("00 00 01 8b cf e5 68 00");  // 1700000000000
    MDB_val ek{epoch_key.size(), epoch_key.data()};
    MDB_val ev{epoch.size(), const_cast<uint8_t*>(epoch.data())};
    ASSERT_EQ(mdb_put(txn, meta, &ek, &ev, 0), 0);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

TEST(MappingStore, AStoreWrittenBeforeStaticMappingsWereKeptStillLoads) {
    TempDir dir("cgn-store");
    write_store_of_the_first_format(dir.path());
    {
        MappingStore store(dir.path());
        const auto loaded = store.load();
        ASSERT_EQ(loaded.size(), 1u);
        EXPECT_EQ(loaded[0].key, (MappingKey{common::Ipv4Address{0x6440000bu}, 6, 8080}));
        const PcpMapping& m = loaded[0].mapping;
        EXPECT_EQ(m.external, (Endpoint{common::Ipv4Address{0xc6336401u}, 20000}));
        EXPECT_EQ(m.nonce, nonce_1_to_12());
        EXPECT_EQ(m.client, v4("100.64.0.11"));
        EXPECT_EQ(m.expires_ms, 1'800'000'000'000ull);
        EXPECT_FALSE(m.natpmp);
        EXPECT_EQ(m.filters, (std::vector<Filter>{Filter{120, 443, v4("203.0.113.0")}}));
        EXPECT_EQ(m.description, "web");
        // Version 1 is read as it was, as a mapping of its own (RFC 7753 sets came with
        // version 2; without version 1 still read, load() throws).
        EXPECT_EQ(m.port_set, MappedPortSet{});
        EXPECT_EQ(store.epoch_start(), std::optional<uint64_t>(1'700'000'000'000ull));
        EXPECT_TRUE(store.load_statics().empty());
        store.store_static(static_mapping("tcp 100.64.0.12:22 198.51.100.3:2222"));
    }
    // And the other way: the environment as the older cgnd opens it (two tables) still reads
    // its own table after the newer one added "statics".
    MDB_env* env = nullptr;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 2);
    ASSERT_EQ(mdb_env_open(env, dir.path().c_str(), MDB_RDONLY, 0600), 0);
    MDB_txn* txn = nullptr;
    MDB_dbi mappings = 0;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), 0);
    ASSERT_EQ(mdb_dbi_open(txn, "mappings", 0, &mappings), 0);
    MDB_stat stat{};
    ASSERT_EQ(mdb_stat(txn, mappings, &stat), 0);
    EXPECT_EQ(stat.ms_entries, 1u);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    MappingStore again(dir.path());
    EXPECT_EQ(again.load().size(), 1u);
    EXPECT_EQ(again.load_statics().size(), 1u);
}

// The first byte (record version) of the stored record of `key`, read with LMDB directly.
int record_version(const std::string& dir, const MappingKey& key) {
    MDB_env* env = nullptr;
    if (mdb_env_create(&env) != 0) return -1;
    mdb_env_set_maxdbs(env, 3);
    int version = -1;
    MDB_txn* txn = nullptr;
    MDB_dbi dbi = 0;
    if (mdb_env_open(env, dir.c_str(), MDB_RDONLY, 0600) == 0 &&
        mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0) {
        const Bytes k{static_cast<uint8_t>(key.internal.value >> 24),
                      static_cast<uint8_t>(key.internal.value >> 16),
                      static_cast<uint8_t>(key.internal.value >> 8),
                      static_cast<uint8_t>(key.internal.value),
                      key.protocol,
                      static_cast<uint8_t>(key.internal_port >> 8),
                      static_cast<uint8_t>(key.internal_port)};
        MDB_val kv{k.size(), const_cast<uint8_t*>(k.data())}, vv{};
        if (mdb_dbi_open(txn, "mappings", 0, &dbi) == 0 && mdb_get(txn, dbi, &kv, &vv) == 0 &&
            vv.mv_size > 0)
            version = *static_cast<const uint8_t*>(vv.mv_data);
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return version;
}

// RFC 7753: the ports of a set come back with their set after a reopen. Only they are written
// as record version 2: a mapping of its own stays version 1, which a cgnd from before port
// sets reads. Without the set in the record, port_set comes back empty (and the set's records
// are version 1); without version 1 kept for the others, the single mapping's is 2.
TEST(MappingStore, APortSetSurvivesAReopenAndOnlyItsRecordsAreVersion2) {
    TempDir dir("cgn-store");
    const common::Ipv4Address sub{0x6440000bu};
    const MappingKey single{sub, 17, 6000};
    {
        MappingStore store(dir.path());
        for (uint16_t i = 0; i < 3; ++i) {
            PcpMapping m = mapping(1);
            m.external.port = static_cast<uint16_t>(30000 + i);
            m.port_set = MappedPortSet{5000, 3};
            store.put(MappingKey{sub, 17, static_cast<uint16_t>(5000 + i)}, m);
        }
        store.put(single, mapping(7));
        store.commit();
    }
    {
        MappingStore again(dir.path());
        const auto loaded = again.load();
        ASSERT_EQ(loaded.size(), 4u);
        for (uint16_t i = 0; i < 3; ++i) {
            EXPECT_EQ(loaded[i].key, (MappingKey{sub, 17, static_cast<uint16_t>(5000 + i)}));
            EXPECT_EQ(loaded[i].mapping.port_set, (MappedPortSet{5000, 3}));
            EXPECT_EQ(loaded[i].mapping.external.port, 30000 + i);
            PcpMapping expected = mapping(1);
            expected.external.port = static_cast<uint16_t>(30000 + i);
            EXPECT_TRUE(same(loaded[i].mapping, expected)) << i;
        }
        EXPECT_EQ(loaded[3].key, single);
        EXPECT_EQ(loaded[3].mapping.port_set, MappedPortSet{});
        EXPECT_TRUE(same(loaded[3].mapping, mapping(7)));
    }
    EXPECT_EQ(record_version(dir.path(), MappingKey{sub, 17, 5001}), 2);
    EXPECT_EQ(record_version(dir.path(), single), 1);
    // A port recorded outside its own set is not a record to guess about.
    {
        MappingStore store(dir.path());
        PcpMapping stray = mapping(2);
        stray.port_set = MappedPortSet{5000, 3};
        store.put(MappingKey{sub, 17, 7000}, stray);
        store.commit();
        EXPECT_THROW(store.load(), StoreError);
    }
}

TEST(MappingStore, AStaticRecordOfAnotherVersionIsAnErrorNotAGuess) {
    TempDir dir("cgn-store");
    { MappingStore(dir.path()).store_static(static_mapping("udp 100.64.0.11:53 198.51.100.2:53")); }
    {
        MDB_env* env = nullptr;
        ASSERT_EQ(mdb_env_create(&env), 0);
        mdb_env_set_maxdbs(env, 3);
        ASSERT_EQ(mdb_env_open(env, dir.path().c_str(), 0, 0600), 0);
        MDB_txn* txn = nullptr;
        MDB_dbi dbi = 0;
        ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
        ASSERT_EQ(mdb_dbi_open(txn, "statics", 0, &dbi), 0);
        char k[7] = {100, 64, 0, 12, 6, 0, 80};
        char v[7] = {2, 0, 0, 0, 0, 0, 80};
        MDB_val kv{sizeof k, k}, vv{sizeof v, v};
        ASSERT_EQ(mdb_put(txn, dbi, &kv, &vv, 0), 0);
        ASSERT_EQ(mdb_txn_commit(txn), 0);
        mdb_env_close(env);
    }
    MappingStore store(dir.path());
    EXPECT_THROW(store.load_statics(), StoreError);
    EXPECT_NO_THROW(store.load()) << "the PCP mappings are read all the same";
}

}  // namespace
}  // namespace cgn::ctl::pcp::test
