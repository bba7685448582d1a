#include "dataplane/nat/tcp_state.hpp"

#include <gtest/gtest.h>

namespace cgn::dp {
namespace {

namespace tcp = common::tcp;
using tcp_state::timeout_class;

constexpr bool kIn = true, kOut = false;
constexpr uint8_t kSyn = tcp::kSyn, kSynAck = tcp::kSyn | tcp::kAck_, kAck = tcp::kAck_,
                  kFinAck = tcp::kFin | tcp::kAck_, kRst = tcp::kRst,
                  kRstAck = tcp::kRst | tcp::kAck_, kPshAck = tcp::kPsh | tcp::kAck_;

// Feeds segments (flags, direction) into a state, returning the state after each.
struct Flow {
    uint8_t state = 0;
    TimeoutClass send(uint8_t flags, bool from_inside) {
        state = tcp_state::update(state, flags, from_inside);
        return timeout_class(state);
    }
};

TEST(TcpState, NewSessionIsTransitory) {
    EXPECT_EQ(timeout_class(0), TimeoutClass::tcp_transitory);
}

TEST(TcpState, SynBothWaysIsEstablished) {
    Flow f;
    EXPECT_EQ(f.send(kSyn, kIn), TimeoutClass::tcp_transitory);
    EXPECT_EQ(f.send(kSynAck, kOut), TimeoutClass::tcp_established);
    EXPECT_EQ(f.send(kAck, kIn), TimeoutClass::tcp_established);
    EXPECT_EQ(f.send(kPshAck, kOut), TimeoutClass::tcp_established);
    EXPECT_EQ(f.state, tcp_state::kInsideSyn | tcp_state::kOutsideSyn);
}

TEST(TcpState, InboundOpenIsEstablishedToo) {
    Flow f;
    EXPECT_EQ(f.send(kSyn, kOut), TimeoutClass::tcp_transitory);
    EXPECT_EQ(f.send(kSynAck, kIn), TimeoutClass::tcp_established);
}

TEST(TcpState, SimultaneousOpenIsEstablished) {
    Flow f;
    f.send(kSyn, kIn);
    EXPECT_EQ(f.send(kSyn, kOut), TimeoutClass::tcp_established);
}

TEST(TcpState, OneSidedSynStaysTransitory) {
    Flow f;
    // Retransmitted SYNs and data from the same side never establish.
    for (int i = 0; i < 5; ++i) EXPECT_EQ(f.send(kSyn, kIn), TimeoutClass::tcp_transitory);
    EXPECT_EQ(f.send(kAck, kIn), TimeoutClass::tcp_transitory);
    EXPECT_EQ(f.send(kAck, kOut), TimeoutClass::tcp_transitory);  // an ACK is not a SYN
    EXPECT_EQ(f.state, tcp_state::kInsideSyn);
}

TEST(TcpState, FinBothWaysIsTransitory) {
    Flow f;
    f.send(kSyn, kIn);
    f.send(kSynAck, kOut);
    // One FIN is a half-close: the other side may still send for a long time.
    EXPECT_EQ(f.send(kFinAck, kIn), TimeoutClass::tcp_established);
    EXPECT_EQ(f.send(kPshAck, kOut), TimeoutClass::tcp_established);
    EXPECT_EQ(f.send(kFinAck, kOut), TimeoutClass::tcp_transitory);
    EXPECT_EQ(f.send(kAck, kIn), TimeoutClass::tcp_transitory);
}

TEST(TcpState, FinTwiceFromOneSideIsNotAClose) {
    Flow f;
    f.send(kSyn, kIn);
    f.send(kSynAck, kOut);
    f.send(kFinAck, kOut);
    EXPECT_EQ(f.send(kFinAck, kOut), TimeoutClass::tcp_established);
}

TEST(TcpState, RstIsTransitoryFromEitherSide) {
    for (bool side : {kIn, kOut}) {
        Flow f;
        f.send(kSyn, kIn);
        f.send(kSynAck, kOut);
        EXPECT_EQ(f.send(kRst, side), TimeoutClass::tcp_transitory);
        EXPECT_EQ(f.send(kAck, !side), TimeoutClass::tcp_transitory);  // stays reset
        EXPECT_NE(f.state & tcp_state::kReset, 0);
    }
    Flow g;
    g.send(kSyn, kIn);
    g.send(kSynAck, kOut);
    EXPECT_EQ(g.send(kRstAck, kOut), TimeoutClass::tcp_transitory);
}

TEST(TcpState, RstBeforeEstablishmentIsTransitory) {
    Flow f;
    f.send(kSyn, kIn);
    EXPECT_EQ(f.send(kRstAck, kOut), TimeoutClass::tcp_transitory);
}

TEST(TcpState, NewSynAfterResetRestarts) {
    Flow f;
    f.send(kSyn, kIn);
    f.send(kSynAck, kOut);
    f.send(kRst, kOut);
    // The reset is forgotten: a one-sided SYN is transitory, the answer establishes.
    EXPECT_EQ(f.send(kSyn, kIn), TimeoutClass::tcp_transitory);
    EXPECT_EQ(f.state, tcp_state::kInsideSyn);
    EXPECT_EQ(f.send(kSynAck, kOut), TimeoutClass::tcp_established);
}

TEST(TcpState, NewSynAfterCloseRestarts) {
    Flow f;
    f.send(kSyn, kIn);
    f.send(kSynAck, kOut);
    f.send(kFinAck, kIn);
    f.send(kFinAck, kOut);
    ASSERT_EQ(timeout_class(f.state), TimeoutClass::tcp_transitory);
    // The old FINs and SYNs are forgotten: the new connection must be opened again.
    EXPECT_EQ(f.send(kSyn, kIn), TimeoutClass::tcp_transitory);
    EXPECT_EQ(f.state, tcp_state::kInsideSyn);
    EXPECT_EQ(f.send(kSynAck, kOut), TimeoutClass::tcp_established);
    // And it can close again.
    f.send(kFinAck, kOut);
    EXPECT_EQ(f.send(kFinAck, kIn), TimeoutClass::tcp_transitory);
}

TEST(TcpState, SynDuringAnOpenConnectionKeepsIt) {
    Flow f;
    f.send(kSyn, kIn);
    f.send(kSynAck, kOut);
    f.send(kFinAck, kIn);                                             // half-closed, not closed
    EXPECT_EQ(f.send(kSynAck, kOut), TimeoutClass::tcp_established);  // a retransmission
    EXPECT_NE(f.state & tcp_state::kInsideFin, 0);
}

TEST(TcpState, SynWithRstIsAReset) {
    Flow f;
    f.send(kSyn, kIn);
    f.send(kSynAck, kOut);
    EXPECT_EQ(f.send(tcp::kSyn | tcp::kRst, kIn), TimeoutClass::tcp_transitory);
}

}  // namespace
}  // namespace cgn::dp
