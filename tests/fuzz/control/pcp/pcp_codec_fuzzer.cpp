// libFuzzer target of the PCP codec (control/pcp/codec.hpp): any bytes as a request and as a
// response. Besides ASan/UBSan findings it checks the codec's own promises:
// - a request that decodes encodes back to the same value (less the unknown optional
//   options it skipped) (and to at most 1100 octets, a
//   multiple of 4);
// - an error answer is always between 24 and 1100 octets, a multiple of 4, a response;
// - a response that decodes encodes back to the same value.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "control/pcp/codec.hpp"

namespace pcp = cgn::ctl::pcp;

namespace {

[[noreturn]] void broken(const char* what) {
    std::fprintf(stderr, "pcp codec fuzzer: %s\n", what);
    std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> input(data, size);
    std::vector<uint8_t> out(pcp::kMaxMessage);

    const pcp::Decoded d = pcp::decode_request(input);
    if (d.kind == pcp::Decoded::Kind::request) {
        const size_t n = pcp::encode_request(d.request, out);
        if (n == 0 || n > pcp::kMaxMessage || n % 4 != 0) broken("a decoded request does not encode");
        const pcp::Decoded again = pcp::decode_request(std::span(out.data(), n));
        pcp::Request known = d.request;  // unknown optional options are skipped, not kept
        known.options.ignored.clear();
        if (again.kind != pcp::Decoded::Kind::request || !(again.request == known))
            broken("a request does not survive encode and decode");
    } else if (d.kind == pcp::Decoded::Kind::error) {
        const size_t n = pcp::encode_error(input, d.error, 1800, 1, out);
        if (n < pcp::kHeaderSize || n > pcp::kMaxMessage || n % 4 != 0)
            broken("an error answer of a bad length");
        if (!(out[1] & 0x80) || out[3] != static_cast<uint8_t>(d.error))
            broken("an error answer that is not a response with its code");
    }

    if (auto r = pcp::decode_response(input)) {
        const size_t n = pcp::encode_response(*r, out);
        if (n != 0) {
            const auto again = pcp::decode_response(std::span(out.data(), n));
            pcp::Response known = *r;
            known.options.ignored.clear();
            // A response of another version keeps only its header (§9): compare what is kept.
            if (!again || (r->version == pcp::kVersion && !(*again == known)))
                broken("a response does not survive encode and decode");
        }
    }
    return 0;
}
