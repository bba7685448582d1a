#include "control/control_socket.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace cgn::ctl {

namespace {

sockaddr_un address_of(const std::string& path) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        throw ControlSocketError("--control-socket " + path + ": path too long");
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    return addr;
}

[[noreturn]] void fail(const std::string& path, const char* what) {
    throw ControlSocketError("--control-socket " + path + ": " + what + ": " +
                             std::strerror(errno));
}

}  // namespace

ControlSocket::ControlSocket(std::string path) : path_(std::move(path)) {
    const sockaddr_un addr = address_of(path_);
    struct stat st {};
    if (lstat(path_.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw ControlSocketError("--control-socket " + path_ + ": exists and is not a socket");
        // Someone listening there? Then it is not ours to take.
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        const bool live = probe >= 0 && connect(probe, reinterpret_cast<const sockaddr*>(&addr),
                                                sizeof addr) == 0;
        if (probe >= 0) close(probe);
        if (live)
            throw ControlSocketError("--control-socket " + path_ +
                                     ": another process is listening there");
        unlink(path_.c_str());
    }
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) fail(path_, "socket");
    if (bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        close(fd_);
        fail(path_, "bind");
    }
    chmod(path_.c_str(), 0660);  // root and its group only: this socket reconfigures the NAT
    if (listen(fd_, 8) != 0) {
        close(fd_);
        unlink(path_.c_str());
        fail(path_, "listen");
    }
}

ControlSocket::~ControlSocket() {
    if (fd_ >= 0) {
        close(fd_);
        unlink(path_.c_str());
    }
}

bool ControlSocket::serve_one(std::chrono::milliseconds timeout,
                              const std::function<std::string(std::string_view)>& handler) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    const int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) return false;
    std::string line;
    char buf[512];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    while (line.find('\n') == std::string::npos && line.size() < 4096) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd c{client, POLLIN, 0};
        if (left.count() <= 0 || poll(&c, 1, static_cast<int>(left.count())) <= 0) break;
        const ssize_t n = read(client, buf, sizeof buf);
        if (n <= 0) break;  // end of the command (the client shut down its side)
        line.append(buf, static_cast<size_t>(n));
    }
    line = line.substr(0, line.find('\n'));
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const std::string reply = handler(line);
    size_t sent = 0;
    while (sent < reply.size()) {
        const ssize_t n = send(client, reply.data() + sent, reply.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<size_t>(n);
    }
    close(client);
    return true;
}

}  // namespace cgn::ctl
