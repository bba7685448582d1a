// Steering computes the owner of an inside packet with the same Toeplitz hash a NIC uses for
// RSS on the source address, so a port with RSS delivers packets to their owner directly.
// Checked against DPDK's own software implementation.

#include <gtest/gtest.h>
#include <rte_thash.h>

#include "common/random.hpp"
#include "dataplane/nat/steering.hpp"

namespace cgn::dp {
namespace {

TEST(Steering, SourceHashEqualsDpdkSoftRss) {
    common::Random random(11);
    for (int i = 0; i < 10000; ++i) {
        uint32_t addr = static_cast<uint32_t>(random.next());
        EXPECT_EQ(toeplitz_hash_ipv4(addr), rte_softrss(&addr, 1, kRssKey)) << addr;
    }
}

TEST(Steering, OwnersFollowTheIndirectionTable) {
    const Steering s(3, nullptr, 128);
    common::Random random(12);
    for (int i = 0; i < 1000; ++i) {
        uint32_t addr = static_cast<uint32_t>(random.next());
        // queue = table[hash % 128] with table[i] = i % 3
        EXPECT_EQ(s.subscriber_owner(addr), (rte_softrss(&addr, 1, kRssKey) % 128) % 3);
    }
}

}  // namespace
}  // namespace cgn::dp
