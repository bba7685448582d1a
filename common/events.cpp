#include "common/events.hpp"

#include "common/address.hpp"

namespace cgn::common {

namespace {

const char* kind_name(NatEvent::Kind k) {
    switch (k) {
        case NatEvent::Kind::block_allocated:
            return "block-allocated";
        case NatEvent::Kind::block_released:
            return "block-released";
        case NatEvent::Kind::quota_exceeded:
            return "quota-exceeded";
        case NatEvent::Kind::deterministic_overflow:
            return "deterministic-overflow";
    }
    return "?";
}

const char* limit_name(NatEvent::Limit l) {
    switch (l) {
        case NatEvent::Limit::none:
            return "none";
        case NatEvent::Limit::blocks:
            return "blocks";
        case NatEvent::Limit::ports:
            return "ports";
        case NatEvent::Limit::sessions:
            return "sessions";
        case NatEvent::Limit::session_rate:
            return "session-rate";
        case NatEvent::Limit::pool:
            return "pool-exhausted";
        case NatEvent::Limit::mapping_sessions:
            return "mapping-sessions";
        case NatEvent::Limit::inbound_sessions:
            return "inbound-sessions";
    }
    return "?";
}

const char* protocol_name(uint8_t p) {
    switch (p) {
        case 1:
            return "icmp";
        case 6:
            return "tcp";
        case 17:
            return "udp";
        default:
            return "other";
    }
}

}  // namespace

std::string to_string(const NatEvent& e) {
    std::string s = kind_name(e.kind);
    s += " subscriber " + Ipv4Address{e.subscriber}.to_string();
    if (e.kind == NatEvent::Kind::quota_exceeded) {
        s += std::string(" limit ") + limit_name(e.limit) + " protocol " + protocol_name(e.protocol);
    } else {
        s += " external " + Ipv4Address{e.external}.to_string() + " ports " +
             std::to_string(e.first_port) + "-" + std::to_string(e.last_port);
    }
    s += " worker " + std::to_string(e.worker);
    return s;
}

}  // namespace cgn::common
