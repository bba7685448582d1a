#pragma once
// The PCP client's rules (RFC 6887 §8.1.1 retransmission, §8.5 epoch validation, §11.2.1
// renewal; RFC 7488 §3 server addresses), as pure logic with time and randomness injected,
// and a blocking UDP exchange built on them for the cgn-pcp tool. Which server is asked, when
// there are several (RFC 7488 §4), is server_selection.hpp's.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/address.hpp"
#include "control/pcp/codec.hpp"

namespace cgn::ctl::pcp {

// §8.1.1: IRT 3 s, MRT 1024 s, each timeout RAND-jittered by ±10 %: RT = (1 + RAND) * IRT,
// then RT = (1 + RAND) * min(2 * RTprev, MRT). `random` gives a value in [0, 1).
class Retransmission {
public:
    static constexpr double kInitialSeconds = 3;     // IRT
    static constexpr double kMaximumSeconds = 1024;  // MRT
    explicit Retransmission(std::function<double()> random) : random_(std::move(random)) {}
    // The wait before the next retransmission (the first call: after the first send).
    double next_seconds();

private:
    std::function<double()> random_;
    double previous_ = 0;
};

// §8.5: whether a server's epoch time says it kept its state since the previous response.
class EpochTracker {
public:
    // `client_seconds`: the client's own clock when the response arrived.
    bool valid(uint32_t server_epoch, uint64_t client_seconds);

private:
    bool seen_ = false;
    uint32_t previous_server_ = 0;
    uint64_t previous_client_ = 0;
};

// §11.2.1: renew between 1/2 and 5/8 of the granted lifetime; `random` in [0, 1).
double renewal_seconds(uint32_t lifetime, double random);

// After a renewal went unanswered, the seconds until it is tried again: the renewal is a
// request like any other, sent again until answered (§8.1.1), and it must arrive before the
// mapping expires (§11.2.1), `seconds_left` from now. So soon: after `pause` (a floor against
// a tight loop when sending fails at once), or halfway to the expiry when that is sooner (0
// once it has expired: the renewal then makes the mapping again).
double renewal_retry_seconds(double seconds_left, double pause);

// RFC 7488 §3 with RFC 6724's default policy: IPv6 addresses before IPv4-mapped ones, the
// given order kept otherwise.
std::vector<IpAddress> order_server_addresses(std::vector<IpAddress> addresses);

// A request sent over UDP from one socket to the server's addresses in turn (RFC 7488 §3: on
// each retransmission the next address; the one that answers is used from then on), until a
// response with the request's opcode (and nonce) arrives or `give_up` passes.
struct Exchange {
    std::vector<IpAddress> servers;  // ordered
    uint16_t server_port = kServerPort;
    std::optional<common::Ipv4Address> bind_address;  // the client's source (default: any)
    uint16_t bind_port = 0;                           // 0: any (PCP clients use 5350)
    std::chrono::milliseconds give_up{30000};
    double scale = 1.0;  // timeouts × this (tests: shorter)
};

struct ExchangeResult {
    std::optional<Response> response;
    IpAddress answered_by;  // which address answered
    unsigned sent = 0;      // transmissions
    std::string error;      // why there is no response
};

ExchangeResult exchange(const Request& request, const Exchange& how,
                        std::function<double()> random);

}  // namespace cgn::ctl::pcp
