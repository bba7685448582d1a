#pragma once
// Helpers of the PCP tests: hex text to bytes, and requests and responses to start from.

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "control/pcp/codec.hpp"
#include "control/pcp/messages.hpp"

namespace cgn::ctl::pcp::test {

using Bytes = std::vector<uint8_t>;

// "02 01 00 00 ..." (spaces and line breaks ignored) into bytes.
inline Bytes hex(std::string_view text) {
    Bytes out;
    int nibble = -1;
    for (char c : text) {
        int v = -1;
        if (c >= '0' && c <= '9') v = c - '0';
        if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
        if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
        if (v < 0) continue;
        if (nibble < 0) {
            nibble = v;
        } else {
            out.push_back(static_cast<uint8_t>(nibble << 4 | v));
            nibble = -1;
        }
    }
    return out;
}

// A path under the system's temporary directory no other test process uses: `stem`, this
// process's id and a counter.
inline std::string unique_temp_path(const std::string& stem) {
    static std::atomic<unsigned> serial{0};
    return (std::filesystem::temp_directory_path() /
            (stem + "-" + std::to_string(getpid()) + "-" + std::to_string(serial++)))
        .string();
}

// A directory made for a test and removed with everything in it at the end.
class TempDir {
public:
    explicit TempDir(const std::string& stem = "cgn-pcp-test") : path_(unique_temp_path(stem)) {
        std::filesystem::create_directories(path_);
    }
    ~TempDir() { std::filesystem::remove_all(path_); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

inline std::string to_hex(const Bytes& b) {
    std::ostringstream s;
    for (size_t i = 0; i < b.size(); ++i) {
        static constexpr char kDigits[] = "0123456789abcdef";
        s << kDigits[b[i] >> 4] << kDigits[b[i] & 15] << ((i % 4 == 3) ? " " : "");
    }
    return s.str();
}

inline IpAddress v4(const char* text) { return IpAddress::from_ipv4(*common::Ipv4Address::parse(text)); }

inline Nonce nonce_1_to_12() { return {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}; }

// A MAP from `from` (nonce 1..12), no suggested address.
inline Request map_request(common::Ipv4Address from, uint8_t protocol, uint16_t port,
                           uint32_t lifetime, uint16_t suggested_port = 0) {
    Request r;
    r.opcode = Opcode::map;
    r.lifetime = lifetime;
    r.client_address = IpAddress::from_ipv4(from);
    MapData m;
    m.nonce = nonce_1_to_12();
    m.protocol = protocol;
    m.internal_port = port;
    m.external_port = suggested_port;
    m.external_address = IpAddress::ipv4_any();
    r.map = m;
    return r;
}

inline Bytes encoded_request(const Request& r) {
    Bytes b(kMaxMessage);
    b.resize(encode_request(r, b));
    return b;
}

}  // namespace cgn::ctl::pcp::test
