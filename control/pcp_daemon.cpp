#include "control/pcp_daemon.hpp"

#include <rte_errno.h>

#include "common/mbuf_budget.hpp"

#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace cgn::ctl {

namespace {

constexpr size_t kBatch = 64;  // requests served (and stored) together, at most, per step

rte_ring* make_ring(const std::string& name, int socket) {
    rte_ring* r = rte_ring_create(name.c_str(), common::MbufBudget::kPcpRing, socket,
                                  RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (r == nullptr)
        throw std::runtime_error("cannot create the PCP ring " + name + ": " +
                                 rte_strerror(rte_errno));
    return r;
}

std::string protocol_name(uint8_t p) {
    return p == 6 ? "tcp" : p == 17 ? "udp" : std::to_string(p);
}

}  // namespace

pcp::ServerSettings pcp_server_settings(const common::Config& config) {
    const common::PcpConfig& p = config.pcp;
    pcp::ServerSettings s;
    s.subscribers = p.subscribers;
    s.third_party_sources = p.third_party;
    s.min_lifetime = p.min_lifetime_s;
    s.max_lifetime = p.max_lifetime_s;
    s.max_mappings_per_subscriber = p.max_mappings_per_subscriber;
    s.requests_per_second = p.requests_per_second;
    s.request_burst = p.request_burst;
    s.suggestable_ports = p.suggestable_ports;
    return s;
}

PcpDaemon::PcpDaemon(const common::Config& config, dp::ControlChannel& channel,
                     rte_mempool* pool, common::MacAddress inside_mac, int socket,
                     PcpDataplaneNat::StaticQuery is_static)
    : steering_(channel.steering()),
      servers_(config.pcp.servers),
      store_dir_(config.pcp.store),
      nat_(channel, std::move(is_static)),
      server_(pcp_server_settings(config), nat_, clock_) {
    if (servers_.empty()) servers_.push_back(config.inside_address.address);
    try {
        for (unsigned w = 0; w < channel.workers(); ++w) {
            // One at a time, each kept as soon as it exists, so that a failure frees them all.
            rings_.push_back({make_ring("cgn_pcp_rq" + std::to_string(w), socket), nullptr});
            rings_.back().answers = make_ring("cgn_pcp_an" + std::to_string(w), socket);
        }
    } catch (...) {
        free_rings();
        throw;
    }
    if (!store_dir_.empty()) store_ = std::make_unique<pcp::MappingStore>(store_dir_);
    transport_ = std::make_unique<PcpDataplaneTransport>(rings_, pool, inside_mac);
}

PcpDaemon::~PcpDaemon() {
    // The workers have stopped (cgnd frees this after them): what is left on the rings are
    // frames of this process's pool, freed with it.
    transport_.reset();
    free_rings();
}

void PcpDaemon::free_rings() {
    for (auto& r : rings_) {
        rte_ring_free(r.requests);  // null-safe: a pair whose second ring failed
        rte_ring_free(r.answers);
    }
    rings_.clear();
}

std::string PcpDaemon::start() {
    // Restoration (RFC 6887 §14, §8.5): the store's mappings asked of the workers again.
    service_ = std::make_unique<pcp::Service>(server_, store_.get(), wall_);
    std::string servers;
    for (const auto& a : servers_) servers += (servers.empty() ? "" : ", ") + a.to_string();
    std::string line = "cgnd: pcp server at " + servers + " port 5351 (PCP and NAT-PMP), epoch " +
                       std::to_string(server_.epoch()) + " s, ";
    if (store_)
        line += "mappings kept in " + store_dir_ + " (" +
                std::to_string(server_.mappings().size() + server_.waiting()) +
                " stored being restored)\n";
    else
        line += "mappings not kept across restarts (no --pcp-store)\n";
    return line;
}

size_t PcpDaemon::step() {
    if (!service_) return 0;
    size_t work = transport_->serve_once(*service_, kBatch);
    for (const pcp::Answer& a : service_->take_unsolicited()) {
        transport_->send_unsolicited(a, steering_.subscriber_owner(a.to.value), servers_.front());
        ++work;
    }
    const uint64_t now = clock_.now_ms();
    if (now >= next_expiry_ms_) {
        next_expiry_ms_ = now + 1000;
        service_->expire();
    }
    return work;
}

std::string PcpDaemon::execute(const std::vector<std::string>& w) const {
    if (w.size() == 2 && w[1] == "list") {
        std::ostringstream out;
        out << "ok " << server_.mappings().size() << " PCP mappings\n";
        const uint64_t now = clock_.now_ms();
        for (const auto& [key, m] : server_.mappings()) {
            out << protocol_name(key.protocol) << " " << key.internal.to_string() << ":"
                << key.internal_port << " " << m.external.address.to_string() << ":"
                << m.external.port << " lifetime "
                << (m.expires_ms > now ? (m.expires_ms - now) / 1000 : 0) << " s client "
                << m.client.to_string() << (m.natpmp ? " nat-pmp" : "");
            if (!m.filters.empty()) {
                out << " filter";
                for (const pcp::Filter& f : m.filters)
                    out << " " << f.remote_address.to_string() << "/"
                        << unsigned{f.prefix_length} << ":" << f.remote_port;
            }
            if (!m.description.empty()) out << " description \"" << m.description << "\"";
            out << "\n";
        }
        return out.str();
    }
    if (w.size() == 2 && w[1] == "show") return "ok\n" + counter_lines();
    return "error: unknown command; 'pcp list' or 'pcp show'\n";
}

std::string PcpDaemon::counter_lines() const {
    std::string out;
    char line[96];
    auto add = [&](const char* name, uint64_t v) {
        std::snprintf(line, sizeof line, "%-32s %llu\n", name, static_cast<unsigned long long>(v));
        out += line;
    };
    const PcpTransportTally& t = transport_->tally();
    add("pcp_requests", t.requests);
    add("pcp_malformed_frames", t.malformed);
    add("pcp_answers_queued", t.answers);
    add("pcp_answers_lost", t.answers_lost);
    add("pcp_unsolicited", t.unsolicited);
    if (service_) {
        const pcp::ServiceTally& s = service_->tally();
        add("pcp_answered", s.answered);
        add("pcp_dropped", s.dropped);
        add("pcp_store_failures", s.store_failures);
        add("pcp_restored", s.restored);
        add("pcp_expired", s.expired);
    }
    add("pcp_mappings", server_.mappings().size());
    add("pcp_waiting_for_workers", server_.waiting());
    add("pcp_worker_backlog_full", nat_.tally().refused);
    return out;
}

}  // namespace cgn::ctl
