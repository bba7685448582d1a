#include "control/pcp/client.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace cgn::ctl::pcp {

double Retransmission::next_seconds() {
    const double jitter = 1.0 + (random_() * 0.2 - 0.1);  // RAND in [-0.1, +0.1)
    const double base = previous_ == 0 ? kInitialSeconds : std::min(2 * previous_, kMaximumSeconds);
    previous_ = jitter * base;
    return previous_;
}

bool EpochTracker::valid(uint32_t server_epoch, uint64_t client_seconds) {
    if (!seen_) {
        seen_ = true;
        previous_server_ = server_epoch;
        previous_client_ = client_seconds;
        return true;  // §8.5: the first response is valid by definition
    }
    bool ok = true;
    if (uint64_t{server_epoch} + 2 < previous_server_) {
        ok = false;  // the server's time went back: it restarted without its state
    } else {
        const double client_delta = static_cast<double>(client_seconds - previous_client_);
        const double server_delta = static_cast<double>(server_epoch) - previous_server_;
        // "client_delta+2 < server_delta - server_delta/16 or server_delta+2 < client_delta -
        // client_delta/16": the two clocks disagree by more than slack and 1/16.
        if (client_delta + 2 < server_delta - server_delta / 16 ||
            server_delta + 2 < client_delta - client_delta / 16)
            ok = false;
    }
    previous_server_ = server_epoch;
    previous_client_ = client_seconds;
    return ok;
}

double renewal_seconds(uint32_t lifetime, double random) {
    return lifetime * (0.5 + 0.125 * random);  // between 1/2 and 5/8
}

double renewal_retry_seconds(double seconds_left, double pause) {
    return std::clamp(seconds_left / 2, 0.0, pause);
}

std::vector<IpAddress> order_server_addresses(std::vector<IpAddress> addresses) {
    std::stable_partition(addresses.begin(), addresses.end(),
                          [](const IpAddress& a) { return !a.is_ipv4(); });
    return addresses;
}

namespace {

sockaddr_in to_sockaddr(const common::Ipv4Address& a, uint16_t port) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    s.sin_port = htons(port);
    s.sin_addr.s_addr = htonl(a.value);
    return s;
}

class Socket {
public:
    Socket() : fd_(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
    ~Socket() {
        if (fd_ >= 0) close(fd_);
    }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;
    int fd() const { return fd_; }

private:
    int fd_;
};

// The source address the system would use towards `server` (§8.1: the client's address field).
std::optional<common::Ipv4Address> source_towards(const common::Ipv4Address& server,
                                                  uint16_t port) {
    Socket probe;
    const sockaddr_in to = to_sockaddr(server, port);
    if (connect(probe.fd(), reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0)
        return std::nullopt;
    sockaddr_in local{};
    socklen_t length = sizeof local;
    if (getsockname(probe.fd(), reinterpret_cast<sockaddr*>(&local), &length) != 0)
        return std::nullopt;
    return common::Ipv4Address{ntohl(local.sin_addr.s_addr)};
}

// The answer to `q`: the same opcode and, for MAP and PEER, the same nonce, protocol and
// internal port (§11.4, §12.4: a client ignores responses that do not match).
bool answers(const Response& r, const Request& q) {
    if (r.opcode != q.opcode) return false;
    if (q.map)
        return r.map && r.map->nonce == q.map->nonce && r.map->protocol == q.map->protocol &&
               r.map->internal_port == q.map->internal_port;
    if (q.peer)
        return r.peer && r.peer->nonce == q.peer->nonce &&
               r.peer->internal_port == q.peer->internal_port &&
               r.peer->remote_port == q.peer->remote_port;
    return true;
}

}  // namespace

ExchangeResult exchange(const Request& request, const Exchange& how,
                        std::function<double()> random) {
    ExchangeResult out;
    std::vector<common::Ipv4Address> servers;
    for (const IpAddress& a : how.servers)
        if (auto v4 = a.ipv4()) servers.push_back(*v4);
    if (servers.empty()) {
        out.error = "no IPv4 PCP server address";
        return out;
    }
    Socket s;
    if (s.fd() < 0) {
        out.error = std::string("socket: ") + std::strerror(errno);
        return out;
    }
    const int one = 1;
    setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    const auto local_address =
        how.bind_address ? how.bind_address : source_towards(servers.front(), how.server_port);
    const sockaddr_in local =
        to_sockaddr(how.bind_address.value_or(common::Ipv4Address{}), how.bind_port);
    if (bind(s.fd(), reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
        out.error = std::string("bind: ") + std::strerror(errno);
        return out;
    }
    Request q = request;
    if (q.client_address.is_zero() && local_address)
        q.client_address = IpAddress::from_ipv4(*local_address);
    std::vector<uint8_t> bytes(kMaxMessage);
    bytes.resize(encode_request(q, bytes));

    Retransmission timer(std::move(random));
    const auto start = std::chrono::steady_clock::now();
    const auto give_up = start + how.give_up;
    std::vector<uint8_t> buffer(kMaxMessage + 4);
    for (size_t turn = 0;; ++turn) {
        const common::Ipv4Address to = servers[turn % servers.size()];
        const sockaddr_in dst = to_sockaddr(to, how.server_port);
        sendto(s.fd(), bytes.data(), bytes.size(), 0, reinterpret_cast<const sockaddr*>(&dst),
               sizeof dst);
        ++out.sent;
        const auto wait_until = std::min(
            give_up, std::chrono::steady_clock::now() +
                         std::chrono::microseconds(
                             static_cast<int64_t>(timer.next_seconds() * how.scale * 1e6)));
        while (true) {
            const auto now = std::chrono::steady_clock::now();
            if (now >= wait_until) break;
            pollfd p{s.fd(), POLLIN, 0};
            const int ms = static_cast<int>(
                std::chrono::ceil<std::chrono::milliseconds>(wait_until - now).count());
            if (poll(&p, 1, ms) <= 0) continue;
            sockaddr_in from{};
            socklen_t from_length = sizeof from;
            const ssize_t n = recvfrom(s.fd(), buffer.data(), buffer.size(), 0,
                                       reinterpret_cast<sockaddr*>(&from), &from_length);
            if (n <= 0) continue;
            const common::Ipv4Address sender{ntohl(from.sin_addr.s_addr)};
            // Only from a server address and its port (§8.3's answer comes from where it went).
            if (ntohs(from.sin_port) != how.server_port ||
                std::find(servers.begin(), servers.end(), sender) == servers.end())
                continue;
            auto r = decode_response(std::span(buffer.data(), static_cast<size_t>(n)));
            if (!r || !answers(*r, q)) continue;
            out.response = std::move(r);
            out.answered_by = IpAddress::from_ipv4(sender);
            return out;
        }
        if (std::chrono::steady_clock::now() >= give_up) break;
    }
    out.error = "no answer from the PCP server after " + std::to_string(out.sent) +
                " transmission" + (out.sent == 1 ? "" : "s");
    return out;
}

}  // namespace cgn::ctl::pcp
