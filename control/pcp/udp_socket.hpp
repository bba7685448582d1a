#pragma once
// The PCP service on a plain UDP socket: RFC 6887's transport without the dataplane, for
// tests and lab use (in cgnd, requests reach the control thread from the workers). Requests
// are read without blocking; answers are sent from the same socket, so that they come from
// the address and port the request went to (§8.3).

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/address.hpp"
#include "control/pcp/service.hpp"

namespace cgn::ctl::pcp {

class UdpSocketTransport {
public:
    struct Datagram {
        common::Ipv4Address source;
        uint16_t port = 0;
        std::vector<uint8_t> bytes;
    };

    // Binds `address`:`port` (port 0: any free one). Throws std::runtime_error naming both.
    UdpSocketTransport(common::Ipv4Address address, uint16_t port);
    ~UdpSocketTransport();
    UdpSocketTransport(const UdpSocketTransport&) = delete;
    UdpSocketTransport& operator=(const UdpSocketTransport&) = delete;

    int fd() const { return fd_; }
    uint16_t port() const { return port_; }
    // What has arrived, up to `max` datagrams; waits up to `timeout_ms` for the first.
    std::vector<Datagram> receive(size_t max, int timeout_ms);
    void send(const Answer& answer);

    // One step: receive a batch, serve it, send the answers; returns the requests read.
    size_t serve_once(Service& service, size_t max_batch, int timeout_ms);

private:
    int fd_ = -1;
    uint16_t port_ = 0;
};

}  // namespace cgn::ctl::pcp
