// TCP session tracking (RFC 7857 §2, the state machine of RFC 6146 §3.5.2.2): every state with
// every kind of segment from each side, then whole connections.

#include "dataplane/nat/tcp_state.hpp"

#include <gtest/gtest.h>

#include <string>

namespace cgn::dp {
namespace {

namespace tcp = common::tcp;
using namespace tcp_state;

constexpr bool kIn = true, kOut = false;
constexpr uint8_t kSyn = tcp::kSyn, kSynAck = tcp::kSyn | tcp::kAck_, kAck = tcp::kAck_,
                  kFinAck = tcp::kFin | tcp::kAck_, kRst = tcp::kRst,
                  kRstAck = tcp::kRst | tcp::kAck_, kPshAck = tcp::kPsh | tcp::kAck_;

std::string state_name(uint8_t s) {
    static const char* const names[] = {"closed",     "inside-SYN",  "outside-SYN", "established",
                                        "inside-FIN", "outside-FIN", "both-FINs",   "trans"};
    return s < kStateCount ? names[s] : "state " + std::to_string(s);
}

struct Row {
    uint8_t from;
    uint8_t flags;
    bool inside;
    uint8_t to;
    bool restart;  // the idle timer restarts
};

// The whole machine: each state with a SYN, a FIN, an RST and a plain ACK from either side.
// clang-format off
constexpr Row kTransitions[] = {
    // closed: a SYN opens from its side; an RST changes nothing (§7.1: the answer to an
    // unsolicited segment does not refresh); other segments keep a session opened mid-stream.
    {kClosed,         kSyn,    kIn,  kInsideSynSeen,  true},
    {kClosed,         kSyn,    kOut, kOutsideSynSeen, true},
    {kClosed,         kFinAck, kIn,  kClosed,         true},
    {kClosed,         kFinAck, kOut, kClosed,         true},
    {kClosed,         kRst,    kIn,  kClosed,         false},
    {kClosed,         kRst,    kOut, kClosed,         false},
    {kClosed,         kAck,    kIn,  kClosed,         true},
    {kClosed,         kAck,    kOut, kClosed,         true},
    // inside SYN seen ("V6 INIT"): the outside's SYN establishes, a retransmitted SYN restarts
    // the opening timer, anything else leaves it alone.
    {kInsideSynSeen,  kSyn,    kIn,  kInsideSynSeen,  true},
    {kInsideSynSeen,  kSyn,    kOut, kEstablished,    true},
    {kInsideSynSeen,  kFinAck, kIn,  kInsideSynSeen,  false},
    {kInsideSynSeen,  kFinAck, kOut, kInsideSynSeen,  false},
    {kInsideSynSeen,  kRst,    kIn,  kInsideSynSeen,  false},
    {kInsideSynSeen,  kRst,    kOut, kInsideSynSeen,  false},
    {kInsideSynSeen,  kAck,    kIn,  kInsideSynSeen,  false},
    {kInsideSynSeen,  kAck,    kOut, kInsideSynSeen,  false},
    // outside SYN seen ("V4 INIT"): the same, mirrored. The subscriber's RST answering an
    // unsolicited SYN does not refresh (§7.1).
    {kOutsideSynSeen, kSyn,    kIn,  kEstablished,    true},
    {kOutsideSynSeen, kSyn,    kOut, kOutsideSynSeen, true},
    {kOutsideSynSeen, kFinAck, kIn,  kOutsideSynSeen, false},
    {kOutsideSynSeen, kFinAck, kOut, kOutsideSynSeen, false},
    {kOutsideSynSeen, kRst,    kIn,  kOutsideSynSeen, false},
    {kOutsideSynSeen, kRst,    kOut, kOutsideSynSeen, false},
    {kOutsideSynSeen, kAck,    kIn,  kOutsideSynSeen, false},
    {kOutsideSynSeen, kAck,    kOut, kOutsideSynSeen, false},
    // established: a FIN half-closes its side, an RST resets (§2.2), the rest refreshes.
    {kEstablished,    kSyn,    kIn,  kEstablished,    true},
    {kEstablished,    kSyn,    kOut, kEstablished,    true},
    {kEstablished,    kFinAck, kIn,  kInsideFinSeen,  true},
    {kEstablished,    kFinAck, kOut, kOutsideFinSeen, true},
    {kEstablished,    kRst,    kIn,  kTrans,          true},
    {kEstablished,    kRst,    kOut, kTrans,          true},
    {kEstablished,    kAck,    kIn,  kEstablished,    true},
    {kEstablished,    kAck,    kOut, kEstablished,    true},
    // inside FIN seen: the outside's FIN closes; a repeated inside FIN does not.
    {kInsideFinSeen,  kSyn,    kIn,  kInsideFinSeen,  true},
    {kInsideFinSeen,  kSyn,    kOut, kInsideFinSeen,  true},
    {kInsideFinSeen,  kFinAck, kIn,  kInsideFinSeen,  true},
    {kInsideFinSeen,  kFinAck, kOut, kBothFinsSeen,   true},
    {kInsideFinSeen,  kRst,    kIn,  kTrans,          true},
    {kInsideFinSeen,  kRst,    kOut, kTrans,          true},
    {kInsideFinSeen,  kAck,    kIn,  kInsideFinSeen,  true},
    {kInsideFinSeen,  kAck,    kOut, kInsideFinSeen,  true},
    // outside FIN seen: mirrored.
    {kOutsideFinSeen, kSyn,    kIn,  kOutsideFinSeen, true},
    {kOutsideFinSeen, kSyn,    kOut, kOutsideFinSeen, true},
    {kOutsideFinSeen, kFinAck, kIn,  kBothFinsSeen,   true},
    {kOutsideFinSeen, kFinAck, kOut, kOutsideFinSeen, true},
    {kOutsideFinSeen, kRst,    kIn,  kTrans,          true},
    {kOutsideFinSeen, kRst,    kOut, kTrans,          true},
    {kOutsideFinSeen, kAck,    kIn,  kOutsideFinSeen, true},
    {kOutsideFinSeen, kAck,    kOut, kOutsideFinSeen, true},
    // both FINs seen: the closing timer runs from the second FIN; a SYN reuses the 5-tuple.
    {kBothFinsSeen,   kSyn,    kIn,  kInsideSynSeen,  true},
    {kBothFinsSeen,   kSyn,    kOut, kOutsideSynSeen, true},
    {kBothFinsSeen,   kFinAck, kIn,  kBothFinsSeen,   false},
    {kBothFinsSeen,   kFinAck, kOut, kBothFinsSeen,   false},
    {kBothFinsSeen,   kRst,    kIn,  kBothFinsSeen,   false},
    {kBothFinsSeen,   kRst,    kOut, kBothFinsSeen,   false},
    {kBothFinsSeen,   kAck,    kIn,  kBothFinsSeen,   false},
    {kBothFinsSeen,   kAck,    kOut, kBothFinsSeen,   false},
    // trans (after an RST): more RSTs do not restart the timer (§2.2); any other segment
    // brings the connection back (RFC 6146), a SYN as a new connection.
    {kTrans,          kSyn,    kIn,  kInsideSynSeen,  true},
    {kTrans,          kSyn,    kOut, kOutsideSynSeen, true},
    {kTrans,          kFinAck, kIn,  kEstablished,    true},
    {kTrans,          kFinAck, kOut, kEstablished,    true},
    {kTrans,          kRst,    kIn,  kTrans,          false},
    {kTrans,          kRst,    kOut, kTrans,          false},
    {kTrans,          kAck,    kIn,  kEstablished,    true},
    {kTrans,          kAck,    kOut, kEstablished,    true},
};
// clang-format on

TEST(TcpState, EveryTransition) {
    ASSERT_EQ(std::size(kTransitions), kStateCount * 4 * 2);
    for (const Row& r : kTransitions) {
        const Step s = step(r.from, r.flags, r.inside);
        const std::string what = state_name(r.from) + " + flags 0x" + std::to_string(r.flags) +
                                 (r.inside ? " from inside" : " from outside");
        EXPECT_EQ(state_name(s.state), state_name(r.to)) << what;
        EXPECT_EQ(s.restart_timer, r.restart) << what;
    }
}

TEST(TcpState, FlagsBeyondSynFinRstDoNotMatter) {
    // A SYN-ACK is a SYN, an RST-ACK an RST, PSH-ACK and a bare ACK the same "other" segment;
    // with RST and SYN together, the RST wins; with SYN and FIN, the SYN.
    for (uint8_t state = 0; state < kStateCount; ++state) {
        for (bool inside : {kIn, kOut}) {
            const auto same = [&](uint8_t a, uint8_t b) {
                const Step x = step(state, a, inside), y = step(state, b, inside);
                EXPECT_EQ(x.state, y.state) << state_name(state) << " " << int{a} << "/" << int{b};
                EXPECT_EQ(x.restart_timer, y.restart_timer) << state_name(state);
            };
            same(kSynAck, kSyn);
            same(kRstAck, kRst);
            same(kPshAck, kAck);
            same(0, kAck);
            same(tcp::kSyn | tcp::kRst, kRst);
            same(tcp::kFin | tcp::kRst, kRst);
            same(tcp::kSyn | tcp::kFin, kSyn);
        }
    }
}

// The engine relies on this: a step that keeps the timer keeps the state (so the timeout
// class can change only when the timer restarts).
TEST(TcpState, AStepThatKeepsTheTimerKeepsTheState) {
    for (uint8_t state = 0; state < kStateCount; ++state)
        for (bool inside : {kIn, kOut})
            for (unsigned flags = 0; flags < 256; ++flags) {
                const Step s = step(state, static_cast<uint8_t>(flags), inside);
                if (!s.restart_timer) {
                    EXPECT_EQ(s.state, state) << state_name(state) << " flags " << flags;
                }
            }
}

TEST(TcpState, TimeoutClassOfEachState) {
    // RFC 7857 §2.1: opening and closing have timeouts of their own; half-closed connections
    // are long-lived, so the FIN of one side keeps the established timeout.
    EXPECT_EQ(timeout_class(kClosed), TimeoutClass::tcp_opening);
    EXPECT_EQ(timeout_class(kInsideSynSeen), TimeoutClass::tcp_opening);
    EXPECT_EQ(timeout_class(kOutsideSynSeen), TimeoutClass::tcp_opening);
    EXPECT_EQ(timeout_class(kEstablished), TimeoutClass::tcp_established);
    EXPECT_EQ(timeout_class(kInsideFinSeen), TimeoutClass::tcp_established);
    EXPECT_EQ(timeout_class(kOutsideFinSeen), TimeoutClass::tcp_established);
    EXPECT_EQ(timeout_class(kBothFinsSeen), TimeoutClass::tcp_transitory);
    EXPECT_EQ(timeout_class(kTrans), TimeoutClass::tcp_transitory);
}

// Whole connections: segments (flags, direction) in order, with the class after each.
struct Flow {
    uint8_t state = kClosed;
    bool restarted = false;
    TimeoutClass send(uint8_t flags, bool from_inside) {
        const Step s = step(state, flags, from_inside);
        state = s.state;
        restarted = s.restart_timer;
        return timeout_class(state);
    }
};

TEST(TcpState, ThreeWayHandshakeFromEitherSideEstablishes) {
    for (bool opener : {kIn, kOut}) {
        Flow f;
        EXPECT_EQ(f.send(kSyn, opener), TimeoutClass::tcp_opening);
        EXPECT_EQ(f.send(kSynAck, !opener), TimeoutClass::tcp_established);
        EXPECT_EQ(f.send(kAck, opener), TimeoutClass::tcp_established);
        EXPECT_EQ(f.send(kPshAck, !opener), TimeoutClass::tcp_established);
        EXPECT_EQ(f.state, kEstablished);
    }
}

TEST(TcpState, SimultaneousOpenEstablishes) {
    Flow f;
    f.send(kSyn, kIn);
    EXPECT_EQ(f.send(kSyn, kOut), TimeoutClass::tcp_established);
}

TEST(TcpState, OneSidedSynStaysOpening) {
    Flow f;
    // Retransmitted SYNs restart the opening timer; data from either side never establishes.
    for (int i = 0; i < 5; ++i) {
        EXPECT_EQ(f.send(kSyn, kIn), TimeoutClass::tcp_opening);
        EXPECT_TRUE(f.restarted);
    }
    EXPECT_EQ(f.send(kAck, kIn), TimeoutClass::tcp_opening);
    EXPECT_EQ(f.send(kAck, kOut), TimeoutClass::tcp_opening);  // an ACK is not a SYN
    EXPECT_FALSE(f.restarted);
    EXPECT_EQ(f.state, kInsideSynSeen);
}

TEST(TcpState, RefusedConnectionStaysOpeningWithoutRefresh) {
    Flow f;
    f.send(kSyn, kIn);
    EXPECT_EQ(f.send(kRstAck, kOut), TimeoutClass::tcp_opening);
    EXPECT_FALSE(f.restarted);
    // The subscriber refusing an unsolicited SYN (RFC 7857 §7.1).
    Flow g;
    g.send(kSyn, kOut);
    EXPECT_EQ(g.send(kRstAck, kIn), TimeoutClass::tcp_opening);
    EXPECT_FALSE(g.restarted);
    EXPECT_EQ(g.state, kOutsideSynSeen);
}

TEST(TcpState, HalfCloseKeepsTheEstablishedTimeoutUntilBothFins) {
    for (bool first : {kIn, kOut}) {
        Flow f;
        f.send(kSyn, kIn);
        f.send(kSynAck, kOut);
        // One FIN is a half-close: the other side may still send for a long time.
        EXPECT_EQ(f.send(kFinAck, first), TimeoutClass::tcp_established);
        EXPECT_EQ(f.send(kFinAck, first), TimeoutClass::tcp_established);  // retransmitted
        EXPECT_EQ(f.send(kPshAck, !first), TimeoutClass::tcp_established);
        EXPECT_TRUE(f.restarted);
        EXPECT_EQ(f.send(kFinAck, !first), TimeoutClass::tcp_transitory);
        EXPECT_TRUE(f.restarted);
        // The last ACK does not extend the closing timer.
        EXPECT_EQ(f.send(kAck, first), TimeoutClass::tcp_transitory);
        EXPECT_FALSE(f.restarted);
    }
}

TEST(TcpState, ResetThenDataIsEstablishedAgain) {
    for (bool side : {kIn, kOut}) {
        Flow f;
        f.send(kSyn, kIn);
        f.send(kSynAck, kOut);
        EXPECT_EQ(f.send(kRst, side), TimeoutClass::tcp_transitory);
        EXPECT_TRUE(f.restarted);  // the closing timer counts from the RST
        EXPECT_EQ(f.send(kRstAck, !side), TimeoutClass::tcp_transitory);
        EXPECT_FALSE(f.restarted);
        EXPECT_EQ(f.send(kPshAck, !side), TimeoutClass::tcp_established);
        EXPECT_EQ(f.state, kEstablished);
    }
}

TEST(TcpState, ResetWhileHalfClosedIsTrans) {
    Flow f;
    f.send(kSyn, kIn);
    f.send(kSynAck, kOut);
    f.send(kFinAck, kOut);
    EXPECT_EQ(f.send(kRst, kIn), TimeoutClass::tcp_transitory);
    EXPECT_EQ(f.state, kTrans);
}

TEST(TcpState, NewSynAfterResetOrCloseOpensAgain) {
    for (bool reset : {true, false}) {
        Flow f;
        f.send(kSyn, kIn);
        f.send(kSynAck, kOut);
        if (reset) {
            f.send(kRst, kOut);
        } else {
            f.send(kFinAck, kIn);
            f.send(kFinAck, kOut);
        }
        ASSERT_EQ(timeout_class(f.state), TimeoutClass::tcp_transitory);
        // The 5-tuple is reused: the new connection must be opened again.
        EXPECT_EQ(f.send(kSyn, kIn), TimeoutClass::tcp_opening);
        EXPECT_EQ(f.state, kInsideSynSeen);
        EXPECT_EQ(f.send(kSynAck, kOut), TimeoutClass::tcp_established);
        // And it can close again.
        f.send(kFinAck, kOut);
        EXPECT_EQ(f.send(kFinAck, kIn), TimeoutClass::tcp_transitory);
    }
}

TEST(TcpState, SynDuringAnOpenConnectionKeepsIt) {
    Flow f;
    f.send(kSyn, kIn);
    f.send(kSynAck, kOut);
    f.send(kFinAck, kIn);                                             // half-closed, not closed
    EXPECT_EQ(f.send(kSynAck, kOut), TimeoutClass::tcp_established);  // a retransmission
    EXPECT_EQ(f.state, kInsideFinSeen);
}

TEST(TcpState, SessionOpenedMidStreamLivesOnTheOpeningTimeout) {
    // A non-SYN segment found no session (it expired, or cgnd restarted): the session it opens
    // is refreshed by traffic but is not established without a SYN from each side.
    Flow f;
    EXPECT_EQ(f.send(kPshAck, kIn), TimeoutClass::tcp_opening);
    EXPECT_TRUE(f.restarted);
    EXPECT_EQ(f.send(kAck, kOut), TimeoutClass::tcp_opening);
    EXPECT_TRUE(f.restarted);
}

}  // namespace
}  // namespace cgn::dp
