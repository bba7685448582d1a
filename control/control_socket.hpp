#pragma once
// The management socket of cgnd: a unix stream socket; a client connects, sends one command
// line, reads the reply until the socket closes. Served from the control thread's loop, one
// connection at a time (commands are rare and short).

#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace cgn::ctl {

class ControlSocketError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class ControlSocket {
public:
    // Listens on `path`, replacing a stale socket file; refuses when another process is
    // listening there.
    explicit ControlSocket(std::string path);
    ~ControlSocket();
    ControlSocket(const ControlSocket&) = delete;
    ControlSocket& operator=(const ControlSocket&) = delete;

    // Waits up to `timeout` for a client; answers it with handler(line). Returns whether a
    // client was served. A client that sends nothing within a second is dropped.
    bool serve_one(std::chrono::milliseconds timeout,
                   const std::function<std::string(std::string_view)>& handler);

    const std::string& path() const { return path_; }

private:
    std::string path_;
    int fd_ = -1;
};

}  // namespace cgn::ctl
