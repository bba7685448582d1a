#pragma once
// Which PCP server the client asks, as pure rules (no socket, no clock of its own): RFC 7488
// §3 for one server with several addresses, RFC 7488 §4 for several servers (a host behind
// two CGNs, or multihomed to two ISPs, each with a PCP server of its own and its own external
// addresses). The cgn-pcp tool sends; this decides.
//
// RFC 7488 §4, in substance: a client with several PCP servers handles each one as §3 says
// (its own list of addresses, tried in order) and keeps them apart; a mapping lives in the
// NAT of one server, so it is asked of the server whose external address is wanted, and of
// each server only when a mapping through each is wanted.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/address.hpp"
#include "control/pcp/client.hpp"

namespace cgn::ctl::pcp {

// What the client knows of one PCP server. Each server's state is its own (RFC 7488 §4): the
// address that answered, its epoch (RFC 6887 §8.5: a reset of one server says nothing of
// another) and the external addresses its answers gave.
class KnownServer {
public:
    // `addresses`: this server's own (RFC 7488 §3), put in RFC 6724 order here.
    // `declared_external`: the external addresses the operator says this server controls;
    // none: not said, learned from its answers.
    explicit KnownServer(std::vector<IpAddress> addresses,
                         std::vector<common::Ipv4Prefix> declared_external = {});

    // RFC 7488 §3: the address that answered last is used first from then on; the others
    // follow in RFC 6724 order, for when it stops answering.
    std::vector<IpAddress> addresses_to_try() const;
    const std::vector<IpAddress>& addresses() const { return addresses_; }
    // Its first address, naming the server in reports and errors.
    std::string name() const;

    // An answer of this server, received from `by` at `client_seconds` (the client's clock).
    // Remembers `by` (§3), learns the external address of a granted MAP or PEER, and checks
    // the epoch (RFC 6887 §8.5); false when the epoch says the server lost its state, so the
    // mapping this answer is about was made again by it.
    bool answered(const IpAddress& by, const Response& response, uint64_t client_seconds);

    enum class Control : uint8_t {
        yes,        // declared, or seen in one of its answers
        no,         // declared otherwise: the operator says it is another server's
        elsewhere,  // not declared; its answers so far gave other addresses only
        unknown,    // not declared, never seen an answer with an address
    };
    // Whether this server controls the external address `external`.
    Control controls(const IpAddress& external) const;

private:
    std::vector<IpAddress> addresses_;
    std::vector<common::Ipv4Prefix> declared_external_;
    std::vector<IpAddress> seen_external_;
    std::optional<IpAddress> answered_by_;
    EpochTracker epoch_;
};

// The client's servers, in the order configured.
using KnownServers = std::vector<KnownServer>;

// How a MAP or PEER is asked of several servers (RFC 7488 §4).
struct MappingPlan {
    enum class Kind : uint8_t {
        // No external address wanted (RFC 6887 §11.1: the all-zeros address, "no
        // preference"): each server is asked, each its own mapping through its own NAT.
        every_server,
        // The server that controls the address wanted, alone; also the only server there is.
        owner,
        // Nobody knows which server controls the address wanted: asked of one server after
        // another, stopping at the first whose answer gives it; a mapping another server made
        // on another address is deleted at once (the tool does), so the mapping ends up in
        // one NAT only.
        in_turn,
        // Every server is declared to control other addresses: nobody to ask.
        nobody,
    };
    Kind kind = Kind::every_server;
    std::vector<size_t> servers;  // indexes into KnownServers, in the order to ask
};

// `wanted_external`: the suggested external address of the request. `deleting`: a request of
// lifetime 0 (RFC 6887 §15), which is never sent in turn: it goes to the owner when known,
// else to every server that may hold the mapping (deleting what a server does not hold
// changes nothing there).
MappingPlan plan_mapping(const KnownServers& servers, const IpAddress& wanted_external,
                         bool deleting);

// True when `response` grants a mapping on `wanted_external` (the answer an in_turn plan
// stops at).
bool grants_address(const Response& response, const IpAddress& wanted_external);

// True when the request suggests no external address (all-zeros, IPv4 or IPv6).
bool no_address_wanted(const IpAddress& wanted_external);

}  // namespace cgn::ctl::pcp
