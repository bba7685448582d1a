#include "dataplane/nat/expiry_lists.hpp"

namespace cgn::dp {

ExpiryLists::ExpiryLists(uint32_t capacity, uint64_t refresh_granularity_ms)
    : credit_ms_(refresh_granularity_ms > 0 ? refresh_granularity_ms - 1 : 0),
      last_(capacity, 0),
      prev_(capacity, kNone),
      next_(capacity, kNone),
      class_(capacity, kUntracked) {
    head_.fill(kNone);
    tail_.fill(kNone);
}

void ExpiryLists::insert(uint32_t id, TimeoutClass c, uint64_t now_ms) {
    if (tracked(id)) unlink(id);
    last_[id] = now_ms;
    link_tail(id, index(c));
}

void ExpiryLists::remove(uint32_t id) {
    if (tracked(id)) unlink(id);
}

void ExpiryLists::change_class(uint32_t id, TimeoutClass c, uint64_t now_ms) {
    if (tracked(id)) unlink(id);
    last_[id] = now_ms;
    link_tail(id, index(c));
}

void ExpiryLists::relink_tail(uint32_t id, uint64_t covered_until_ms) {
    const size_t c = class_[id];
    unlink(id);
    last_[id] = covered_until_ms;
    link_tail(id, c);
}

void ExpiryLists::link_tail(uint32_t id, size_t c) {
    class_[id] = static_cast<uint8_t>(c);
    prev_[id] = tail_[c];
    next_[id] = kNone;
    if (tail_[c] != kNone)
        next_[tail_[c]] = id;
    else
        head_[c] = id;
    tail_[c] = id;
    ++size_;
}

void ExpiryLists::unlink(uint32_t id) {
    const size_t c = class_[id];
    if (prev_[id] != kNone)
        next_[prev_[id]] = next_[id];
    else
        head_[c] = next_[id];
    if (next_[id] != kNone)
        prev_[next_[id]] = prev_[id];
    else
        tail_[c] = prev_[id];
    prev_[id] = next_[id] = kNone;
    class_[id] = kUntracked;
    --size_;
}

}  // namespace cgn::dp
