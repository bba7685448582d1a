// cgn-pcp: a PCP client (RFC 6887) for subscribers and operators. MAP, PEER and ANNOUNCE with
// the THIRD_PARTY, PREFER_FAILURE, FILTER and DESCRIPTION options; retransmission as §8.1.1
// says; the server's addresses tried in turn (RFC 7488 §3). With --keep it stays: renews the
// mapping between 1/2 and 5/8 of its lifetime (§11.2.1), asks again when the server's epoch
// says it lost its state (§8.5), and deletes the mapping when stopped (SIGINT, SIGTERM).
#include <arpa/inet.h>

#include <boost/program_options.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "control/pcp/client.hpp"

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

// "A:P" (IPv4) into address and port.
std::pair<pcp::IpAddress, uint16_t> endpoint(const std::string& option, const std::string& text) {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) usage_error("--" + option + " " + text + ": expected ADDRESS:PORT");
    const std::string port = text.substr(colon + 1);
    char* end = nullptr;
    const unsigned long p = std::strtoul(port.c_str(), &end, 10);
    if (port.empty() || *end != '\0' || p > 65535)
        usage_error("--" + option + " " + text + ": the port is not 0 to 65535");
    return {address(option, text.substr(0, colon)), static_cast<uint16_t>(p)};
}

// "PREFIX/LEN[:PORT]" (IPv4) into a FILTER (§13.3: the IPv4 prefix length plus 96).
pcp::Filter filter(const std::string& text) {
    std::string prefix = text;
    uint16_t port = 0;
    if (const auto colon = text.rfind(':'); colon != std::string::npos) {
        prefix = text.substr(0, colon);
        port = static_cast<uint16_t>(std::stoul(text.substr(colon + 1)));
    }
    const auto p = cgn::common::Ipv4Prefix::parse(prefix);
    if (!p) usage_error("--filter " + text + ": expected an IPv4 PREFIX/LEN[:PORT]");
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

pcp::Nonce nonce(const po::variables_map& vm) {
    pcp::Nonce n{};
    if (vm.count("nonce")) {
        const std::string& t = vm["nonce"].as<std::string>();
        if (t.size() != 24) usage_error("--nonce " + t + ": expected 24 hex digits");
        for (size_t i = 0; i < 12; ++i) n[i] = static_cast<uint8_t>(std::stoul(t.substr(2 * i, 2), nullptr, 16));
        return n;
    }
    std::random_device random;
    for (auto& b : n) b = static_cast<uint8_t>(random());
    return n;
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
    if (vm.count("external")) std::tie(m.external_address, m.external_port) = endpoint("external", vm["external"].as<std::string>());
    if (vm.count("third-party")) r.options.third_party = address("third-party", vm["third-party"].as<std::string>());
    if (vm.count("description")) r.options.description = vm["description"].as<std::string>();
    if (opcode == "map") {
        r.opcode = pcp::Opcode::map;
        r.options.prefer_failure = vm.count("prefer-failure") != 0;
        if (vm.count("filter"))
            for (const auto& f : vm["filter"].as<std::vector<std::string>>()) r.options.filters.push_back(filter(f));
        r.map = m;
        return r;
    }
    if (!vm.count("remote")) usage_error("peer needs --remote ADDRESS:PORT");
    pcp::PeerData p;
    static_cast<pcp::MapData&>(p) = m;
    std::tie(p.remote_address, p.remote_port) = endpoint("remote", vm["remote"].as<std::string>());
    r.opcode = pcp::Opcode::peer;
    r.peer = p;
    return r;
}

// One line: JSON with --json, else words.
void report(const pcp::Response& r, const pcp::IpAddress& server, bool json) {
    const pcp::MapData* m = r.map ? &*r.map : r.peer ? static_cast<const pcp::MapData*>(&*r.peer) : nullptr;
    std::ostringstream s;
    if (json) {
        s << "{\"opcode\": \"" << pcp::to_string(r.opcode) << "\", \"result\": \""
          << pcp::to_string(r.result) << "\", \"lifetime\": " << r.lifetime
          << ", \"epoch\": " << r.epoch << ", \"server\": \"" << server.to_string() << "\"";
        if (m)
            s << ", \"protocol\": " << int{m->protocol} << ", \"internal_port\": " << m->internal_port
              << ", \"external\": [\"" << m->external_address.to_string() << "\", " << m->external_port
              << "], \"nonce\": \"" << hex(m->nonce) << "\"";
        s << "}";
    } else {
        s << pcp::to_string(r.opcode) << " " << pcp::to_string(r.result);
        if (m && r.result == pcp::ResultCode::success)
            s << ": " << (m->protocol == 6 ? "tcp" : "udp") << " internal port " << m->internal_port
              << " is " << m->external_address.to_string() << ":" << m->external_port << " for "
              << r.lifetime << " s (nonce " << hex(m->nonce) << ")";
        else if (r.result != pcp::ResultCode::success)
            s << " (retry after " << r.lifetime << " s)";
        s << ", server " << server.to_string() << " epoch " << r.epoch;
    }
    std::cout << s.str() << std::endl;
}

int keep(pcp::Request request, const pcp::Exchange& how, const pcp::ExchangeResult& first, bool json,
         std::mt19937& random) {
    pcp::EpochTracker epochs;
    const auto client_seconds = [] {
        return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::steady_clock::now().time_since_epoch())
                                         .count());
    };
    epochs.valid(first.response->epoch, client_seconds());
    std::uniform_real_distribution<double> unit(0, 1);
    uint32_t lifetime = first.response->lifetime;
    while (!g_stop) {
        const auto until = std::chrono::steady_clock::now() +
                           std::chrono::milliseconds(static_cast<int64_t>(
                               pcp::renewal_seconds(lifetime, unit(random)) * 1000 * how.scale));
        while (!g_stop && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (g_stop) break;
        const auto r = pcp::exchange(request, how, [&] { return unit(random); });
        if (!r.response) {
            std::fprintf(stderr, "cgn-pcp: renewal: %s\n", r.error.c_str());
            continue;
        }
        if (!epochs.valid(r.response->epoch, client_seconds()))
            std::fprintf(stderr, "cgn-pcp: the server lost its state (epoch %u): mapping asked again\n",
                         r.response->epoch);
        report(*r.response, r.answered_by, json);
        lifetime = std::max<uint32_t>(r.response->lifetime, 1);
    }
    request.lifetime = 0;  // stopped: the mapping goes (§15)
    const auto r = pcp::exchange(request, how, [&] { return unit(random); });
    if (r.response) report(*r.response, r.answered_by, json);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    po::options_description o("cgn-pcp [options] map|peer|announce", 100);
    o.add_options()("help", "this text")(
        "server", po::value<std::vector<std::string>>()->value_name("A"),
        "the PCP server's address (repeat for each address of one server: tried in turn, RFC 7488 "
        "§3; IPv6 first); required")(
        "port", po::value<uint16_t>()->default_value(5351)->value_name("N"), "the server's port")(
        "protocol", po::value<std::string>()->default_value("tcp")->value_name("P"), "tcp or udp")(
        "internal-port", po::value<uint16_t>()->value_name("N"), "the internal port to map (map, peer)")(
        "external", po::value<std::string>()->value_name("A:P"), "the external endpoint suggested")(
        "remote", po::value<std::string>()->value_name("A:P"), "peer: the remote end of the flow")(
        "lifetime", po::value<uint32_t>()->default_value(7200)->value_name("S"), "seconds asked for")(
        "delete", "delete the mapping (lifetime 0; needs its --nonce)")(
        "nonce", po::value<std::string>()->value_name("HEX"), "the mapping nonce (24 hex digits; default random)")(
        "prefer-failure", "map: the suggested external endpoint or nothing (§13.2)")(
        "filter", po::value<std::vector<std::string>>()->value_name("PREFIX[:PORT]"),
        "map: admit only these remote peers (§13.3; repeatable)")(
        "description", po::value<std::string>()->value_name("TEXT"), "a description kept with the mapping (RFC 7220)")(
        "third-party", po::value<std::string>()->value_name("A"), "ask for another host (operators only, §13.1)")(
        "keep", "stay: renew before expiry, re-create after a server reset, delete when stopped")(
        "timeout", po::value<double>()->default_value(30)->value_name("S"), "give up after this long without an answer")(
        "json", "print each answer as one JSON line")(
        "time-scale", po::value<double>()->default_value(1.0)->value_name("X"), "multiply every wait (tests)");
    po::options_description hidden;  // the operation, given as the first word
    hidden.add_options()("opcode", po::value<std::string>());
    po::options_description all;
    all.add(o).add(hidden);
    po::positional_options_description positional;
    positional.add("opcode", 1);
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(all).positional(positional).run(), vm);
        po::notify(vm);
    } catch (const po::error& e) {
        usage_error(e.what());
    }
    if (vm.count("help")) {
        std::cout << o << "\nExit status: 0 success, 1 the server refused (its result code is "
                     "printed), 2 bad usage, 3 no answer.\n";
        return 0;
    }
    if (!vm.count("opcode")) usage_error("say map, peer or announce");
    const std::string opcode = vm["opcode"].as<std::string>();
    if (opcode != "map" && opcode != "peer" && opcode != "announce") usage_error("unknown operation " + opcode);
    if (!vm.count("server")) usage_error("--server is required");
    pcp::Exchange how;
    for (const auto& s : vm["server"].as<std::vector<std::string>>()) how.servers.push_back(address("server", s));
    how.servers = pcp::order_server_addresses(how.servers);
    how.server_port = vm["port"].as<uint16_t>();
    how.scale = vm["time-scale"].as<double>();
    how.give_up = std::chrono::milliseconds(static_cast<int64_t>(vm["timeout"].as<double>() * 1000));
    const bool json = vm.count("json") != 0;
    const pcp::Request request = build(opcode, vm);
    std::mt19937 random{std::random_device{}()};
    std::uniform_real_distribution<double> unit(0, 1);
    std::signal(SIGINT, [](int) { g_stop = true; });
    std::signal(SIGTERM, [](int) { g_stop = true; });
    const auto result = pcp::exchange(request, how, [&] { return unit(random); });
    if (!result.response) {
        std::fprintf(stderr, "cgn-pcp: %s\n", result.error.c_str());
        return 3;
    }
    report(*result.response, result.answered_by, json);
    if (result.response->result != pcp::ResultCode::success) return 1;
    if (vm.count("keep") && opcode != "announce") return keep(request, how, result, json, random);
    return 0;
}
