#include "common/address.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace cgn::common {
namespace {

Ipv4Prefix prefix(const char* text) {
    auto p = Ipv4Prefix::parse(text);
    EXPECT_TRUE(p.has_value()) << text;
    return p.value_or(Ipv4Prefix{});
}

Ipv4Address address(const char* text) {
    auto a = Ipv4Address::parse(text);
    EXPECT_TRUE(a.has_value()) << text;
    return a.value_or(Ipv4Address{});
}

// ---- Ipv4Address -----------------------------------------------------------------------------

TEST(Ipv4Address, ParsesIntoHostByteOrder) {
    EXPECT_EQ(address("192.0.2.1").value, 0xc0000201u);
    EXPECT_EQ(address("100.64.0.1").value, 0x64400001u);
    EXPECT_EQ(address("0.0.0.0").value, 0u);
    EXPECT_EQ(address("255.255.255.255").value, 0xffffffffu);
    EXPECT_EQ(address("10.0.0.0").value, 0x0a000000u);
}

TEST(Ipv4Address, FormatsDottedQuad) {
    EXPECT_EQ(Ipv4Address{0xc6336407}.to_string(), "198.51.100.7");
    EXPECT_EQ(Ipv4Address{0}.to_string(), "0.0.0.0");
    EXPECT_EQ(Ipv4Address{0xffffffff}.to_string(), "255.255.255.255");
}

TEST(Ipv4Address, RoundTripsRandomAddresses) {
    std::mt19937 rng(3);
    for (int i = 0; i < 2000; ++i) {
        const Ipv4Address a{static_cast<uint32_t>(rng())};
        const auto text = a.to_string();
        auto back = Ipv4Address::parse(text);
        ASSERT_TRUE(back.has_value()) << text;
        EXPECT_EQ(*back, a) << text;
    }
}

TEST(Ipv4Address, RejectsMalformedText) {
    for (const char* text : {"",
                             "1.2.3",
                             "1.2.3.4.5",
                             "256.1.1.1",
                             "1.2.3.256",
                             "01.2.3.4",
                             "1.2.3.04",
                             "1.02.3.4",
                             "00.0.0.0",
                             "1..2.3",
                             ".1.2.3",
                             "1.2.3.",
                             "1.2.3.4 ",
                             " 1.2.3.4",
                             "a.b.c.d",
                             "1.2.3.x",
                             "-1.2.3.4",
                             "+1.2.3.4",
                             "1.2.3.4/24",
                             "4294967297.0.0.0",
                             "1.2.3.99999999999",
                             "0x1.2.3.4",
                             "1,2,3,4"}) {
        EXPECT_FALSE(Ipv4Address::parse(text).has_value()) << '"' << text << '"';
    }
}

TEST(Ipv4Address, Orders) {
    EXPECT_LT(address("9.255.255.255"), address("10.0.0.0"));
    EXPECT_EQ(address("10.0.0.1"), Ipv4Address{0x0a000001});
    EXPECT_NE(address("10.0.0.1"), address("10.0.0.2"));
}

// ---- Ipv4Prefix ------------------------------------------------------------------------------

TEST(Ipv4Prefix, ParsesAndFormats) {
    const auto p = prefix("100.64.0.0/10");
    EXPECT_EQ(p.address.value, 0x64400000u);
    EXPECT_EQ(p.length, 10);
    EXPECT_EQ(p.mask(), 0xffc00000u);
    EXPECT_EQ(p.size(), uint64_t{1} << 22);
    EXPECT_EQ(p.to_string(), "100.64.0.0/10");
    for (const char* text :
         {"0.0.0.0/0", "198.51.100.0/24", "192.0.2.7/32", "128.0.0.0/1", "203.0.113.252/30"}) {
        EXPECT_EQ(prefix(text).to_string(), text);
    }
}

TEST(Ipv4Prefix, MaskAndSizeAtTheEnds) {
    EXPECT_EQ(prefix("0.0.0.0/0").mask(), 0u);
    EXPECT_EQ(prefix("0.0.0.0/0").size(), uint64_t{1} << 32);
    EXPECT_EQ(prefix("192.0.2.7/32").mask(), 0xffffffffu);
    EXPECT_EQ(prefix("192.0.2.7/32").size(), 1u);
    EXPECT_EQ(prefix("128.0.0.0/1").mask(), 0x80000000u);
}

TEST(Ipv4Prefix, RejectsMalformedText) {
    for (const char* text :
         {"", "1.2.3.4", "1.2.3.4/", "1.2.3.4/33", "1.2.3.0/-1", "1.2.3.0/x", "1.2.3/24", "/24",
          "1.2.3.0/24/1", "1.2.3.0/ 24", "1.2.3.0/024x", "256.0.0.0/8"}) {
        EXPECT_FALSE(Ipv4Prefix::parse(text).has_value()) << '"' << text << '"';
    }
}

TEST(Ipv4Prefix, RejectsHostBitsUnlessAllowed) {
    for (const char* text :
         {"198.51.100.1/24", "100.64.0.1/10", "192.0.2.128/24", "0.0.0.1/0", "203.0.113.5/30"}) {
        EXPECT_FALSE(Ipv4Prefix::parse(text).has_value()) << text;
    }
    // Allowed (an interface address): the host bits are cleared.
    auto p = Ipv4Prefix::parse("100.64.0.1/10", true);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->address.value, 0x64400000u);
    EXPECT_EQ(p->length, 10);
}

TEST(Ipv4Prefix, Contains) {
    const auto p = prefix("198.51.100.0/24");
    EXPECT_TRUE(p.contains(address("198.51.100.0")));
    EXPECT_TRUE(p.contains(address("198.51.100.255")));
    EXPECT_FALSE(p.contains(address("198.51.101.0")));
    EXPECT_FALSE(p.contains(address("198.51.99.255")));
    const auto cgn = prefix("100.64.0.0/10");
    EXPECT_TRUE(cgn.contains(address("100.127.255.255")));
    EXPECT_FALSE(cgn.contains(address("100.128.0.0")));
    EXPECT_FALSE(cgn.contains(address("100.63.255.255")));
    EXPECT_TRUE(prefix("0.0.0.0/0").contains(address("203.0.113.9")));
    EXPECT_TRUE(prefix("192.0.2.7/32").contains(address("192.0.2.7")));
    EXPECT_FALSE(prefix("192.0.2.7/32").contains(address("192.0.2.6")));
}

TEST(Ipv4Prefix, OverlapsIsSymmetric) {
    struct Case {
        const char* a;
        const char* b;
        bool overlap;
    };
    const Case cases[] = {
        {"198.51.100.0/24", "198.51.100.0/24", true},
        {"198.51.100.0/24", "198.51.100.128/25", true},
        {"198.51.100.0/24", "198.51.100.7/32", true},
        {"100.64.0.0/10", "100.100.0.0/16", true},
        {"0.0.0.0/0", "203.0.113.0/24", true},
        {"198.51.100.0/25", "198.51.100.128/25", false},
        {"198.51.100.0/24", "198.51.101.0/24", false},
        {"100.64.0.0/10", "100.128.0.0/10", false},
        {"192.0.2.0/24", "198.51.100.0/24", false},
        {"192.0.2.0/32", "192.0.2.1/32", false},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(prefix(c.a).overlaps(prefix(c.b)), c.overlap) << c.a << " " << c.b;
        EXPECT_EQ(prefix(c.b).overlaps(prefix(c.a)), c.overlap) << c.b << " " << c.a;
    }
}

// ---- InterfaceAddress ------------------------------------------------------------------------

TEST(InterfaceAddress, KeepsTheAddressAndItsSubnet) {
    auto a = InterfaceAddress::parse("100.64.0.1/10");
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->address.value, 0x64400001u);
    EXPECT_EQ(a->subnet, prefix("100.64.0.0/10"));
    EXPECT_EQ(a->to_string(), "100.64.0.1/10");
    auto b = InterfaceAddress::parse("192.0.2.1/24");
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->to_string(), "192.0.2.1/24");
    EXPECT_TRUE(b->subnet.contains(b->address));
}

TEST(InterfaceAddress, RejectsMalformedText) {
    for (const char* text : {"", "192.0.2.1", "192.0.2.1/", "192.0.2.1/33", "192.0.2/24",
                             "192.0.2.256/24", "01.0.2.1/24"}) {
        EXPECT_FALSE(InterfaceAddress::parse(text).has_value()) << text;
    }
}

// ---- MacAddress ------------------------------------------------------------------------------

TEST(MacAddress, ParsesAndFormats) {
    auto m = MacAddress::parse("02:00:5e:10:ab:FF");
    ASSERT_TRUE(m.has_value());
    const std::array<uint8_t, 6> expected{0x02, 0x00, 0x5e, 0x10, 0xab, 0xff};
    EXPECT_EQ(m->bytes, expected);
    EXPECT_EQ(m->to_string(), "02:00:5e:10:ab:ff");
    EXPECT_FALSE(m->is_zero());
    EXPECT_TRUE(MacAddress{}.is_zero());
    EXPECT_EQ(MacAddress::broadcast().to_string(), "ff:ff:ff:ff:ff:ff");
    EXPECT_EQ(MacAddress::parse("ff:ff:ff:ff:ff:ff"), MacAddress::broadcast());
}

TEST(MacAddress, RoundTripsRandomAddresses) {
    std::mt19937 rng(5);
    for (int i = 0; i < 500; ++i) {
        MacAddress m;
        for (auto& b : m.bytes) b = static_cast<uint8_t>(rng());
        auto back = MacAddress::parse(m.to_string());
        ASSERT_TRUE(back.has_value()) << m.to_string();
        EXPECT_EQ(*back, m);
    }
}

TEST(MacAddress, RejectsMalformedText) {
    for (const char* text :
         {"", "02:00:5e:10:ab", "02:00:5e:10:ab:ff:00", "02-00-5e-10-ab-ff", "02:00:5e:10:ab:fg",
          "2:00:5e:10:ab:ff0", "02:00:5e:10:ab:f", "0200.5e10.abff", "02:00:5e:10:ab:+f",
          "02:00:5e:10:ab:-f", "02:00:5e:10:ab: f", "02::00:5e:10:abff"}) {
        EXPECT_FALSE(MacAddress::parse(text).has_value()) << '"' << text << '"';
    }
}

}  // namespace
}  // namespace cgn::common
