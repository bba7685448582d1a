#include "control/pcp/udp_socket.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cgn::ctl::pcp {

UdpSocketTransport::UdpSocketTransport(common::Ipv4Address address, uint16_t port) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    const std::string where = address.to_string() + ":" + std::to_string(port);
    if (fd_ < 0) throw std::runtime_error("PCP socket " + where + ": " + std::strerror(errno));
    sockaddr_in s{};
    s.sin_family = AF_INET;
    s.sin_port = htons(port);
    s.sin_addr.s_addr = htonl(address.value);
    if (bind(fd_, reinterpret_cast<const sockaddr*>(&s), sizeof s) != 0) {
        const int e = errno;
        close(fd_);
        throw std::runtime_error("PCP socket " + where + ": cannot bind: " + std::strerror(e));
    }
    socklen_t length = sizeof s;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&s), &length);
    port_ = ntohs(s.sin_port);
}

UdpSocketTransport::~UdpSocketTransport() {
    if (fd_ >= 0) close(fd_);
}

std::vector<UdpSocketTransport::Datagram> UdpSocketTransport::receive(size_t max, int timeout_ms) {
    std::vector<Datagram> out;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) <= 0) return out;
    // One octet more than PCP allows, so that a longer request is seen as longer (§7).
    std::vector<uint8_t> buffer(kMaxMessage + 4);
    while (out.size() < max) {
        sockaddr_in from{};
        socklen_t length = sizeof from;
        const ssize_t n = recvfrom(fd_, buffer.data(), buffer.size(), 0,
                                   reinterpret_cast<sockaddr*>(&from), &length);
        if (n < 0) break;  // EAGAIN: nothing more now
        out.push_back(Datagram{common::Ipv4Address{ntohl(from.sin_addr.s_addr)}, ntohs(from.sin_port),
                               std::vector<uint8_t>(buffer.begin(), buffer.begin() + n)});
    }
    return out;
}

void UdpSocketTransport::send(const Answer& a) {
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(a.port);
    to.sin_addr.s_addr = htonl(a.to.value);
    sendto(fd_, a.bytes.data(), a.bytes.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
}

size_t UdpSocketTransport::serve_once(Service& service, size_t max_batch, int timeout_ms) {
    const auto datagrams = receive(max_batch, timeout_ms);
    if (datagrams.empty()) return 0;
    std::vector<Received> batch;
    batch.reserve(datagrams.size());
    for (const Datagram& d : datagrams) batch.push_back(Received{d.source, d.port, d.bytes});
    for (const Answer& a : service.serve(batch)) send(a);
    return datagrams.size();
}

}  // namespace cgn::ctl::pcp
