// cgn-pcp: a PCP client (RFC 6887) for subscribers and operators. MAP, PEER and ANNOUNCE with
// the THIRD_PARTY, PREFER_FAILURE, FILTER and DESCRIPTION options; retransmission as §8.1.1
// says. Server selection as RFC 7488 says (control/pcp/server_selection.hpp): one server's
// addresses tried in turn, the one that answered used first from then on (its §3); several
// servers kept apart, a mapping asked of the server of the external address wanted, or of
// each server when none is wanted (its §4). With --keep it stays: renews each mapping between
// 1/2 and 5/8 of its lifetime (§11.2.1), each server on its own timer and with its own epoch
// (§8.5: a server that lost its state has its mapping made again by that renewal; the others
// are not touched), and deletes the mappings when stopped (SIGINT, SIGTERM).
#include <arpa/inet.h>

#include <algorithm>
#include <atomic>
#include <boost/program_options.hpp>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control/pcp/client.hpp"
#include "control/pcp/server_selection.hpp"

namespace po = boost::program_options;
namespace pcp = cgn::ctl::pcp;

namespace {

std::atomic<bool> g_stop{false};

[[noreturn]] void usage_error(const std::string& what) {
    std::fprintf(stderr, "cgn-pcp: %s (cgn-pcp --help explains)\n", what.c_str());
    std::exit(2);
}

pcp::IpAddress address(const std::string& option, const std::string& text) {
    pcp::IpAddress a;
    if (auto v4 = cgn::common::Ipv4Address::parse(text)) return pcp::IpAddress::from_ipv4(*v4);
    if (inet_pton(AF_INET6, text.c_str(), a.bytes.data()) == 1) return a;
    usage_error("--" + option + " " + text + ": not an IPv4 or IPv6 address");
}

// A port number, 0 to 65535, or a usage error naming the option.
uint16_t port_number(const std::string& option, const std::string& whole, const std::string& text) {
    char* end = nullptr;
    const unsigned long p = std::strtoul(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || p > 65535)
        usage_error("--" + option + " " + whole + ": the port is not 0 to 65535");
    return static_cast<uint16_t>(p);
}

// "A:P" (IPv4) into address and port.
std::pair<pcp::IpAddress, uint16_t> endpoint(const std::string& option, const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos)
        usage_error("--" + option + " " + text + ": expected ADDRESS:PORT");
    return {address(option, text.substr(0, colon)),
            port_number(option, text, text.substr(colon + 1))};
}

// "PREFIX/LEN[:PORT]" (IPv4) into a FILTER (§13.3: the IPv4 prefix length plus 96). The
// prefix /0 is §13.3's prefix length 0: it removes the mapping's filters (anyone may reach
// it again).
pcp::Filter filter(const std::string& text) {
    std::string prefix = text;
    uint16_t port = 0;
    if (const auto colon = text.rfind(':'); colon != std::string::npos) {
        prefix = text.substr(0, colon);
        port = port_number("filter", text, text.substr(colon + 1));
    }
    const auto p = cgn::common::Ipv4Prefix::parse(prefix);
    if (!p) usage_error("--filter " + text + ": expected an IPv4 PREFIX/LEN[:PORT]");
    if (p->length == 0) return pcp::Filter{0, 0, pcp::IpAddress::ipv4_any()};
    return pcp::Filter{static_cast<uint8_t>(96 + p->length), port,
                       pcp::IpAddress::from_ipv4(p->address)};
}

uint8_t protocol(const std::string& text) {
    if (text == "tcp") return 6;
    if (text == "udp") return 17;
    usage_error("--protocol " + text + ": expected tcp or udp");
}

std::string hex(const pcp::Nonce& n) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string s;
    for (uint8_t b : n) {
        s += kDigits[b >> 4];
        s += kDigits[b & 15];
    }
    return s;
}

pcp::Nonce fresh_nonce() {
    pcp::Nonce n{};
    std::random_device random;
    for (auto& b : n) b = static_cast<uint8_t>(random());
    return n;
}

pcp::Nonce nonce(const po::variables_map& vm) {
    pcp::Nonce n{};
    if (vm.count("nonce")) {
        const std::string& t = vm["nonce"].as<std::string>();
        if (t.size() != 24 || t.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
            usage_error("--nonce " + t + ": expected 24 hex digits");
        for (size_t i = 0; i < 12; ++i)
            n[i] = static_cast<uint8_t>(std::stoul(t.substr(2 * i, 2), nullptr, 16));
        return n;
    }
    return fresh_nonce();
}

pcp::Request build(const std::string& opcode, const po::variables_map& vm) {
    pcp::Request r;
    r.lifetime = vm.count("delete") ? 0 : vm["lifetime"].as<uint32_t>();
    if (opcode == "announce") return r;
    if (!vm.count("internal-port")) usage_error(opcode + " needs --internal-port");
    pcp::MapData m;
    m.nonce = nonce(vm);
    m.protocol = protocol(vm["protocol"].as<std::string>());
    m.internal_port = vm["internal-port"].as<uint16_t>();
    m.external_address = pcp::IpAddress::ipv4_any();
    if (vm.count("external"))
        std::tie(m.external_address, m.external_port) =
            endpoint("external", vm["external"].as<std::string>());
    if (vm.count("third-party"))
        r.options.third_party = address("third-party", vm["third-party"].as<std::string>());
    if (vm.count("description")) r.options.description = vm["description"].as<std::string>();
    if (opcode == "map") {
        r.opcode = pcp::Opcode::map;
        r.options.prefer_failure = vm.count("prefer-failure") != 0;
        if (vm.count("filter"))
            for (const auto& f : vm["filter"].as<std::vector<std::string>>())
                r.options.filters.push_back(filter(f));
        // RFC 7753: N consecutive ports from the internal port, the external ones consecutive
        // too (the server may grant fewer; the answer says how many).
        if (vm.count("port-set")) {
            const uint16_t n = vm["port-set"].as<uint16_t>();
            if (n == 0 || uint32_t{m.internal_port} + n - 1 > 65535)
                usage_error("--port-set " + std::to_string(n) +
                            ": 1 or more ports, from --internal-port up to 65535");
            r.options.port_set = pcp::PortSet{n, m.internal_port, vm.count("parity") != 0};
        } else if (vm.count("parity")) {
            usage_error("--parity needs --port-set");
        }
        r.map = m;
        return r;
    }
    if (vm.count("port-set")) usage_error("--port-set is for map (RFC 7753)");
    if (!vm.count("remote")) usage_error("peer needs --remote ADDRESS:PORT");
    pcp::PeerData p;
    static_cast<pcp::MapData&>(p) = m;
    std::tie(p.remote_address, p.remote_port) = endpoint("remote", vm["remote"].as<std::string>());
    r.opcode = pcp::Opcode::peer;
    r.peer = p;
    return r;
}

// "A[,A...][=PREFIX[,PREFIX...]]": one server's addresses, and the external addresses it
// controls when the operator knows them (an address alone is its /32).
pcp::KnownServer server_set(const std::string& text) {
    const auto equals = text.find('=');
    std::vector<pcp::IpAddress> addresses;
    std::vector<cgn::common::Ipv4Prefix> external;
    std::istringstream names(text.substr(0, equals));
    for (std::string a; std::getline(names, a, ',');) addresses.push_back(address("server-set", a));
    if (addresses.empty()) usage_error("--server-set " + text + ": no server address");
    if (equals != std::string::npos) {
        std::istringstream prefixes(text.substr(equals + 1));
        for (std::string p; std::getline(prefixes, p, ',');) {
            auto prefix = cgn::common::Ipv4Prefix::parse(p);
            if (!prefix)
                if (const auto one = cgn::common::Ipv4Address::parse(p))
                    prefix = cgn::common::Ipv4Prefix{*one, 32};
            if (!prefix) usage_error("--server-set " + text + ": " + p + " is not an IPv4 prefix");
            external.push_back(*prefix);
        }
        if (external.empty()) usage_error("--server-set " + text + ": nothing after =");
    }
    return pcp::KnownServer(std::move(addresses), std::move(external));
}

// The servers: the addresses of --server as one server (RFC 7488 §3), then one per
// --server-set (its §4).
pcp::KnownServers servers_from(const po::variables_map& vm) {
    pcp::KnownServers servers;
    if (vm.count("server")) {
        std::vector<pcp::IpAddress> addresses;
        for (const auto& s : vm["server"].as<std::vector<std::string>>())
            addresses.push_back(address("server", s));
        servers.emplace_back(std::move(addresses));
    }
    if (vm.count("server-set"))
        for (const auto& s : vm["server-set"].as<std::vector<std::string>>())
            servers.push_back(server_set(s));
    return servers;
}

// One line: JSON with --json, else words. `state_lost`: the server's epoch said it had lost
// its state (RFC 6887 §8.5), so this answer is the mapping made again. `sent`: transmissions
// of the request this answers (1: answered at once; more: §8.1.1 retransmissions).
void report(const pcp::Response& r, const pcp::IpAddress& server, unsigned sent, bool json,
            bool state_lost) {
    const pcp::MapData* m = r.map    ? &*r.map
                            : r.peer ? static_cast<const pcp::MapData*>(&*r.peer)
                                     : nullptr;
    std::ostringstream s;
    if (json) {
        s << "{\"opcode\": \"" << pcp::to_string(r.opcode) << "\", \"result\": \""
          << pcp::to_string(r.result) << "\", \"lifetime\": " << r.lifetime
          << ", \"epoch\": " << r.epoch << ", \"server\": \"" << server.to_string()
          << "\", \"state_lost\": " << (state_lost ? "true" : "false") << ", \"sent\": " << sent;
        if (m)
            s << ", \"protocol\": " << int{m->protocol}
              << ", \"internal_port\": " << m->internal_port << ", \"external\": [\""
              << m->external_address.to_string() << "\", " << m->external_port << "], \"nonce\": \""
              << hex(m->nonce) << "\"";
        if (r.options.port_set)
            s << ", \"port_set\": " << r.options.port_set->size;
        s << "}";
    } else {
        s << pcp::to_string(r.opcode) << " " << pcp::to_string(r.result);
        if (m && r.result == pcp::ResultCode::success)
            s << ": " << (m->protocol == 6 ? "tcp" : "udp") << " internal port " << m->internal_port
              << " is " << m->external_address.to_string() << ":" << m->external_port << " for "
              << r.lifetime << " s (nonce " << hex(m->nonce) << ")";
        if (m && r.result == pcp::ResultCode::success && r.options.port_set)
            s << ", a set of " << r.options.port_set->size << " ports from there";
        else if (r.result != pcp::ResultCode::success)
            s << " (retry after " << r.lifetime << " s)";
        s << ", server " << server.to_string() << " epoch " << r.epoch;
        if (state_lost) s << " (the server had lost its state: the mapping was made again)";
    }
    std::cout << s.str() << std::endl;
}

// Exit statuses (--help): the worst outcome of the servers asked counts.
constexpr int kSuccess = 0, kRefused = 1, kSilent = 3;

// What every exchange shares: the port, the timeouts, randomness, the output form.
struct Asking {
    pcp::Exchange how;  // its `servers` are set for each server asked
    bool json = false;
    std::mt19937 random{std::random_device{}()};
};

struct Asked {
    pcp::ExchangeResult result;
    bool state_lost = false;
};

uint64_t client_seconds() {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                     std::chrono::steady_clock::now().time_since_epoch())
                                     .count());
}

// `request` sent to `server` alone, its addresses in RFC 7488 §3 order; its answer goes into
// that server's state only (§4).
Asked ask(pcp::KnownServer& server, const pcp::Request& request, Asking& asking) {
    pcp::Exchange how = asking.how;
    how.servers = server.addresses_to_try();
    std::uniform_real_distribution<double> unit(0, 1);
    Asked out;
    out.result = pcp::exchange(request, how, [&] { return unit(asking.random); });
    if (out.result.response)
        out.state_lost =
            !server.answered(out.result.answered_by, *out.result.response, client_seconds());
    return out;
}

// A mapping held at one server, renewed on its own timer (--keep).
struct Held {
    size_t server = 0;
    pcp::Request request;
    uint32_t lifetime = 0;
    std::chrono::steady_clock::time_point renew_at;
    std::chrono::steady_clock::time_point expires_at;  // as the last answer said (scaled)
};

std::chrono::steady_clock::time_point scaled_from_now(double seconds, const Asking& asking) {
    return std::chrono::steady_clock::now() +
           std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6 * asking.how.scale));
}

std::chrono::steady_clock::time_point renewal_time(uint32_t lifetime, Asking& asking) {
    std::uniform_real_distribution<double> unit(0, 1);
    return std::chrono::steady_clock::now() +
           std::chrono::milliseconds(static_cast<int64_t>(
               pcp::renewal_seconds(lifetime, unit(asking.random)) * 1000 * asking.how.scale));
}

// The plan's servers asked one after another (RFC 7488 §4 when nobody knows which server
// controls the address wanted). Each is sent the MAP or PEER as it stands, without
// PREFER_FAILURE unless the user asked for it: RFC 6887 §13.2 leaves that option to UPnP IGD
// interworking, and without it a server that cannot give the address gives another (§11.3),
// which is how it shows it is not the owner; that mapping is deleted at once (§15: lifetime
// 0), so that the mapping is in the NAT of the server of the address wanted and nowhere else.
int ask_in_turn(const pcp::MappingPlan& plan, const pcp::IpAddress& wanted,
                pcp::KnownServers& servers, const std::function<pcp::Request()>& request_for,
                Asking& asking, std::vector<Held>& held) {
    bool any_answer = false;
    for (const size_t i : plan.servers) {
        pcp::Request request = request_for();
        const Asked a = ask(servers[i], request, asking);
        if (!a.result.response) {
            std::fprintf(stderr, "cgn-pcp: server %s: %s\n", servers[i].name().c_str(),
                         a.result.error.c_str());
            continue;
        }
        any_answer = true;
        const pcp::Response& r = *a.result.response;
        if (pcp::grants_address(r, wanted)) {
            report(r, a.result.answered_by, a.result.sent, asking.json, a.state_lost);
            const uint32_t lifetime = std::max<uint32_t>(r.lifetime, 1);
            held.push_back({i, request, lifetime, {}, scaled_from_now(lifetime, asking)});
            return kSuccess;
        }
        if (r.result != pcp::ResultCode::success || r.lifetime == 0) {
            std::fprintf(stderr, "cgn-pcp: server %s: %s\n", servers[i].name().c_str(),
                         std::string(pcp::to_string(r.result)).c_str());
            continue;
        }
        // exchange() took only an answer with the request's MAP or PEER data (§11.4, §12.4).
        const pcp::MapData& m = r.map ? *r.map : static_cast<const pcp::MapData&>(*r.peer);
        std::fprintf(stderr, "cgn-pcp: server %s gives %s, not %s: its mapping deleted\n",
                     servers[i].name().c_str(), m.external_address.to_string().c_str(),
                     wanted.to_string().c_str());
        request.lifetime = 0;
        const Asked deleted = ask(servers[i], request, asking);
        if (!deleted.result.response)
            std::fprintf(stderr, "cgn-pcp: server %s: deleting: %s\n", servers[i].name().c_str(),
                         deleted.result.error.c_str());
    }
    std::fprintf(stderr, "cgn-pcp: no PCP server gave the external address %s\n",
                 wanted.to_string().c_str());
    return any_answer ? kRefused : kSilent;
}

// Renews each held mapping on its own timer until stopped, then deletes them all.
void keep(std::vector<Held>& held, pcp::KnownServers& servers, Asking& asking) {
    for (Held& h : held) h.renew_at = renewal_time(h.lifetime, asking);
    while (!g_stop) {
        auto next = held.front().renew_at;
        for (const Held& h : held) next = std::min(next, h.renew_at);
        while (!g_stop && std::chrono::steady_clock::now() < next)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (g_stop) break;
        for (Held& h : held) {
            if (h.renew_at > std::chrono::steady_clock::now()) continue;
            const Asked a = ask(servers[h.server], h.request, asking);
            if (!a.result.response) {
                std::fprintf(stderr, "cgn-pcp: renewal at server %s: %s\n",
                             servers[h.server].name().c_str(), a.result.error.c_str());
                // Tried again soon, not a renewal interval later, when the mapping would have
                // lapsed (pcp::renewal_retry_seconds).
                const double left =
                    std::chrono::duration<double>(h.expires_at - std::chrono::steady_clock::now())
                        .count() /
                    asking.how.scale;
                h.renew_at = scaled_from_now(pcp::renewal_retry_seconds(left, 1.0), asking);
                continue;
            }
            // §8.5: a server that lost its state made the mapping again on this renewal (the
            // same nonce and internal port); only this server's mapping is concerned.
            report(*a.result.response, a.result.answered_by, a.result.sent, asking.json, a.state_lost);
            h.lifetime = std::max<uint32_t>(a.result.response->lifetime, 1);
            h.expires_at = scaled_from_now(h.lifetime, asking);
            h.renew_at = renewal_time(h.lifetime, asking);
        }
    }
    for (Held& h : held) {
        h.request.lifetime = 0;  // stopped: the mapping goes (§15)
        const Asked a = ask(servers[h.server], h.request, asking);
        if (a.result.response)
            report(*a.result.response, a.result.answered_by, a.result.sent, asking.json, a.state_lost);
    }
}

}  // namespace

int main(int argc, char** argv) {
    po::options_description o("cgn-pcp [options] map|peer|announce", 100);
    o.add_options()("help", "this text")(
        "server", po::value<std::vector<std::string>>()->value_name("A"),
        "the PCP server's address; repeat for each address of that one server (tried in turn, "
        "IPv6 first, the one that answered used first from then on: RFC 7488 §3)")(
        "server-set", po::value<std::vector<std::string>>()->value_name("A[,A..][=PREFIX,..]"),
        "another PCP server (RFC 7488 §4): its addresses, and after = the external addresses "
        "it controls when known; repeat for each server. --server or --server-set is required")(
        "port", po::value<uint16_t>()->default_value(5351)->value_name("N"), "the servers' port")(
        "protocol", po::value<std::string>()->default_value("tcp")->value_name("P"), "tcp or udp")(
        "internal-port", po::value<uint16_t>()->value_name("N"),
        "the internal port to map (map, peer)")(
        "external", po::value<std::string>()->value_name("A:P"),
        "the external endpoint suggested; with several servers, A chooses the server")(
        "remote", po::value<std::string>()->value_name("A:P"), "peer: the remote end of the flow")(
        "lifetime", po::value<uint32_t>()->default_value(7200)->value_name("S"),
        "seconds asked for")("delete", "delete the mapping (lifetime 0; needs its --nonce)")(
        "nonce", po::value<std::string>()->value_name("HEX"),
        "the mapping nonce (24 hex digits; default random, one per server)")(
        "prefer-failure", "map: the suggested external endpoint or nothing (§13.2)")(
        "port-set", po::value<uint16_t>()->value_name("N"),
        "map: N consecutive ports from --internal-port (RFC 7753; the answer says how many)")(
        "parity", "map: with --port-set, external ports of the internal ports' parity")(
        "filter", po::value<std::vector<std::string>>()->value_name("PREFIX[:PORT]"),
        "map: admit only these remote peers (§13.3; repeatable); PREFIX/0 removes the "
        "mapping's filters")(
        "description", po::value<std::string>()->value_name("TEXT"),
        "a description kept with the mapping (RFC 7220)")(
        "third-party", po::value<std::string>()->value_name("A"),
        "ask for another host (operators only, §13.1)")(
        "keep",
        "stay: renew before expiry (an unanswered renewal tried again within 1 s), re-create "
        "after a server reset, delete when stopped")(
        "timeout", po::value<double>()->default_value(30)->value_name("S"),
        "give up on a server after this long without an answer")(
        "json", "print each answer as one JSON line")(
        "time-scale", po::value<double>()->default_value(1.0)->value_name("X"),
        "multiply every wait (tests)");
    po::options_description hidden;  // the operation, given as the first word
    hidden.add_options()("opcode", po::value<std::string>());
    po::options_description all;
    all.add(o).add(hidden);
    po::positional_options_description positional;
    positional.add("opcode", 1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(),
                  vm);
        po::notify(vm);
    } catch (const po::error& e) {
        usage_error(e.what());
    }
    if (vm.count("help")) {
        std::cout
            << o
            << "\nSeveral PCP servers (RFC 7488 §4; --server and --server-set, or several "
               "--server-set), each kept apart:\n"
               "  map, peer without --external (or with 0.0.0.0:P): each server is asked and "
               "gives its own\n"
               "    mapping, one line each; --keep renews each on its own timer and, when one "
               "server lost its\n"
               "    state (its epoch, RFC 6887 §8.5), makes that server's mapping again and "
               "touches no other.\n"
               "  map, peer with --external A:P: only the server of A is asked: the one declared "
               "with A after\n"
               "    =, else the servers one after another until one gives A (a mapping another "
               "gives on\n"
               "    another address is deleted at once). Example, two ISPs:\n"
               "      cgn-pcp --server-set 192.0.2.1=198.51.100.0/24 --server-set "
               "192.0.2.129,192.0.2.130 \\\n"
               "              --internal-port 8080 --external 203.0.113.7:8080 map\n"
               "  announce: each server.\n"
               "\nExit status: 0 success (from every server asked), 1 a server refused (its result "
               "code is printed)\nor no server gave the external address, 2 bad usage, 3 no "
               "answer from a server.\n";
        return 0;
    }
    if (!vm.count("opcode")) usage_error("say map, peer or announce");
    const std::string opcode = vm["opcode"].as<std::string>();
    if (opcode != "map" && opcode != "peer" && opcode != "announce")
        usage_error("unknown operation " + opcode);
    if (!vm.count("server") && !vm.count("server-set"))
        usage_error("--server or --server-set is required");
    pcp::KnownServers servers = servers_from(vm);
    Asking asking;
    asking.how.server_port = vm["port"].as<uint16_t>();
    asking.how.scale = vm["time-scale"].as<double>();
    asking.how.give_up =
        std::chrono::milliseconds(static_cast<int64_t>(vm["timeout"].as<double>() * 1000));
    asking.json = vm.count("json") != 0;
    const pcp::Request request = build(opcode, vm);
    // Each server its own mapping, so each its own nonce unless one was given (--delete).
    const bool given_nonce = vm.count("nonce") != 0;
    const auto request_for = [&] {
        pcp::Request r = request;
        if (!given_nonce && r.map) r.map->nonce = fresh_nonce();
        if (!given_nonce && r.peer) r.peer->nonce = fresh_nonce();
        return r;
    };
    std::signal(SIGINT, [](int) { g_stop = true; });
    std::signal(SIGTERM, [](int) { g_stop = true; });

    pcp::MappingPlan plan{pcp::MappingPlan::Kind::every_server, {}};
    pcp::IpAddress wanted = pcp::IpAddress::ipv4_any();
    if (opcode == "announce") {
        for (size_t i = 0; i < servers.size(); ++i) plan.servers.push_back(i);
    } else {
        wanted = request.map ? request.map->external_address : request.peer->external_address;
        plan = pcp::plan_mapping(servers, wanted, request.lifetime == 0);
    }
    std::vector<Held> held;
    int status = kSuccess;
    if (plan.kind == pcp::MappingPlan::Kind::nobody)
        usage_error("--external " + wanted.to_string() +
                    ": every --server-set controls other addresses");
    if (plan.kind == pcp::MappingPlan::Kind::in_turn) {
        status = ask_in_turn(plan, wanted, servers, request_for, asking, held);
    } else {
        for (const size_t i : plan.servers) {
            const pcp::Request r = request_for();
            const Asked a = ask(servers[i], r, asking);
            if (!a.result.response) {
                // One server: the error as it always was; several: which server it was.
                const std::string which =
                    servers.size() > 1 ? "server " + servers[i].name() + ": " : std::string();
                std::fprintf(stderr, "cgn-pcp: %s%s\n", which.c_str(), a.result.error.c_str());
                status = std::max(status, kSilent);
                continue;
            }
            report(*a.result.response, a.result.answered_by, a.result.sent, asking.json, a.state_lost);
            if (a.result.response->result != pcp::ResultCode::success)
                status = std::max(status, kRefused);
            else if (r.lifetime != 0 && opcode != "announce")
                held.push_back({i, r, std::max<uint32_t>(a.result.response->lifetime, 1), {},
                                scaled_from_now(a.result.response->lifetime, asking)});
        }
    }
    if (vm.count("keep") && !held.empty()) keep(held, servers, asking);
    return status;
}
