#include "control/pcp/service.hpp"

#include <set>

#include "control/pcp/natpmp.hpp"

namespace cgn::ctl::pcp {

Service::Service(Server& server, MappingStore* store, const common::Clock& wall)
    : server_(server), store_(store), wall_(wall) {
    if (store_ == nullptr) return;
    const uint64_t now = wall_.now_ms();
    if (const auto start = store_->epoch_start(); start && *start <= now) {
        std::vector<std::pair<MappingKey, PcpMapping>> stored;
        for (auto& s : store_->load()) stored.emplace_back(s.key, std::move(s.mapping));
        const auto dropped =
            server_.restore(static_cast<uint32_t>((now - *start) / 1000), stored, now);
        tally_.restored = stored.size() - dropped.size();
        std::set<MappingKey> gone;
        for (const Change& c : dropped) {
            store_->erase(c.key);
            gone.insert(c.key);
        }
        // Those whose lifetime had not ended were taken from their clients: tell them.
        for (const auto& [key, m] : stored)
            if (m.expires_ms > now && gone.count(key) != 0) tell_gone(key, m);
    } else {
        store_->set_epoch_start(now);
    }
    commit();
}

void Service::tell_gone(const MappingKey& key, const PcpMapping& m) {
    const auto client = m.client.ipv4();
    if (!client) return;
    Response r;
    r.opcode = Opcode::map;
    r.lifetime = 0;
    r.epoch = server_.epoch();
    MapData d;
    d.nonce = m.nonce;
    d.protocol = key.protocol;
    d.internal_port = key.internal_port;
    d.external_port = m.external.port;
    d.external_address = IpAddress::from_ipv4(m.external.address);
    r.map = d;
    Answer a{*client, kClientPort, std::vector<uint8_t>(kMaxMessage), 0};
    a.bytes.resize(encode_response(r, a.bytes));
    unsolicited_.push_back(std::move(a));
}

bool Service::record(const std::vector<Change>& changes) {
    if (store_ == nullptr || changes.empty()) return false;
    const uint64_t now = wall_.now_ms();
    for (const Change& c : changes) {
        const auto it = server_.mappings().find(c.key);
        if (c.kind == Change::Kind::removed || it == server_.mappings().end()) {
            store_->erase(c.key);
            continue;
        }
        PcpMapping stored = it->second;
        stored.expires_ms = server_.wall_expiry(it->second, now);
        store_->put(c.key, stored);
    }
    return true;
}

bool Service::commit() {
    if (store_ == nullptr || store_->queued() == 0) return true;
    try {
        store_->commit();
        return true;
    } catch (const StoreError& e) {
        ++tally_.store_failures;
        store_error_ = e.what();
        return false;
    }
}

namespace {

// The error answer to `request` (PCP or NAT-PMP) when what it changed could not be stored.
std::vector<uint8_t> not_stored(std::span<const uint8_t> request, uint32_t epoch) {
    std::vector<uint8_t> out(kMaxMessage);
    if (!request.empty() && request[0] == natpmp::kVersion) {
        const natpmp::Decoded d = natpmp::decode_request(request);
        out.resize(natpmp::encode_map_response(d.request.opcode,
                                               natpmp::ResultCode::out_of_resources, epoch,
                                               d.request.internal_port, 0, 0, out));
        return out;
    }
    out.resize(encode_error(request, ResultCode::no_resources,
                            error_lifetime(ResultCode::no_resources), epoch, out));
    return out;
}

}  // namespace

std::vector<Answer> Service::serve(std::span<const Received> batch) {
    std::vector<Answer> answers;
    std::vector<std::pair<size_t, size_t>> changed;  // (answer, request) waiting for the commit
    for (size_t k = 0; k < batch.size(); ++k) {
        const Received& r = batch[k];
        ++tally_.requests;
        Outcome out = server_.handle(r);
        if (out.reply.empty()) {
            ++tally_.dropped;
            continue;
        }
        if (record(out.changes)) changed.emplace_back(answers.size(), k);
        answers.push_back(Answer{r.source, r.source_port, std::move(out.reply), k});
    }
    if (!commit()) {
        // Not durable: those answers must not say it is done.
        for (const auto& [a, k] : changed) answers[a].bytes = not_stored(batch[k].payload, server_.epoch());
    }
    tally_.answered += answers.size();
    return answers;
}

void Service::expire() {
    const auto gone = server_.expire();
    tally_.expired += gone.size();
    record(gone);
    commit();
}

}  // namespace cgn::ctl::pcp
