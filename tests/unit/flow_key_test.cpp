#include "dataplane/nat/flow_key.hpp"

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <type_traits>

namespace cgn::dp {
namespace {

// rte_hash compares and hashes keys as raw bytes: no padding may exist, and a default key
// must be all zeros.
static_assert(std::has_unique_object_representations_v<SessionKey>);
static_assert(std::has_unique_object_representations_v<EndpointKey>);
static_assert(std::has_unique_object_representations_v<FilterKey>);
static_assert(std::is_trivially_copyable_v<SessionKey>);

template <class Key>
bool all_bytes_zero_except_side(const Key& key, size_t side_offset) {
    unsigned char bytes[sizeof(Key)];
    std::memcpy(bytes, &key, sizeof(Key));
    for (size_t i = 0; i < sizeof(Key); ++i)
        if (i != side_offset && bytes[i] != 0) return false;
    return true;
}

TEST(FlowKey, Sizes) {
    EXPECT_EQ(sizeof(SessionKey), 16u);
    EXPECT_EQ(sizeof(EndpointKey), 8u);
    EXPECT_EQ(sizeof(FilterKey), 12u);
}

TEST(FlowKey, DefaultKeysAreZeroApartFromTheSide) {
    SessionKey s;
    EXPECT_EQ(s.side, Side::inside);
    EXPECT_TRUE(all_bytes_zero_except_side(s, offsetof(SessionKey, side)));
    EndpointKey e;
    EXPECT_TRUE(all_bytes_zero_except_side(e, offsetof(EndpointKey, side)));
    FilterKey f;
    EXPECT_TRUE(all_bytes_zero_except_side(f, sizeof(FilterKey)));  // no side: all zero
}

TEST(FlowKey, TheSideSeparatesOtherwiseEqualKeys) {
    SessionKey a, b;
    a.local_addr = b.local_addr = 0xc6336401;
    a.local_port = b.local_port = 1024;
    a.protocol = b.protocol = 17;
    a.side = Side::inside;
    b.side = Side::outside;
    EXPECT_NE(std::memcmp(&a, &b, sizeof a), 0);
    b.side = Side::inside;
    EXPECT_EQ(std::memcmp(&a, &b, sizeof a), 0);
}

}  // namespace
}  // namespace cgn::dp
