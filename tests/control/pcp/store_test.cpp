// The durable mapping store (control/pcp/store.hpp) on LMDB: what is committed comes back
// after a reopen, what is not committed does not, and a process killed with SIGKILL in the
// middle of its commits loses none that it had acknowledged.
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
    return MappingKey{common::Ipv4Address{0x64400000u + (i >> 8)}, static_cast<uint8_t>(i % 2 ? 6 : 17),
                      static_cast<uint16_t>(1000 + (i & 0xff))};
}

PcpMapping mapping(uint32_t i) {
    PcpMapping m;
    m.external = Endpoint{common::Ipv4Address{0xc6336401}, static_cast<uint16_t>(20000 + i)};
    m.nonce = nonce_1_to_12();
    m.nonce[0] = static_cast<uint8_t>(i);
    m.client = IpAddress::from_ipv4(key(i).internal);
    m.expires_ms = 1'800'000'000'000ull + i;
    if (i % 3 == 0) m.filters = {Filter{120, 0, v4("203.0.113.0")}, Filter{128, 443, v4("192.0.2.20")}};
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
                for (uint32_t i = batch * 10; i < batch * 10 + 10; ++i) store.put(key(i), mapping(i));
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

}  // namespace
}  // namespace cgn::ctl::pcp::test
