// The optimizer backend slots: every tensor of the list cut into pieces of a
// fixed size, the pieces of all tensors split among threads, each piece run by
// the active instruction set's kernels. Pieces depend on the tensor alone, so a
// list gives the bytes of one call per tensor, whatever the thread count.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "common/float_mode.h"
#include "common/float_types.h"
#include "common/parallel.h"
#include "common/rcp_approx.h"
#include "ops/optimizer.h"
#include "optimizer/optimizer.h"

namespace bnb::cpu {
namespace {

// Elements of a piece: a multiple of the 8-bit blocksize, large enough that a
// piece outlasts its scheduling, small enough that a list of a few large
// tensors still spreads over every core.
constexpr int64_t kPieceElements = int64_t{1} << 14;
static_assert(kPieceElements % kOptimizerBlocksize == 0);
// A thread joins for at least this many elements (parallel.h says why).
constexpr int64_t kMinElementsPerThread = int64_t{1} << 15;

float flushed(float x) { return flush_denormal(x); }

OptimizerScalars derive_scalars(const bnb_optimizer_hparams& h) {
    OptimizerScalars k{};
    const float step = static_cast<float>(h.step);
    k.beta1 = flushed(h.beta1);
    k.one_minus_beta1 = flushed(1.0f - h.beta1);
    k.beta2 = flushed(h.beta2);
    k.one_minus_beta2 = flushed(1.0f - h.beta2);
    k.beta3 = flushed(h.beta3);
    k.one_minus_beta3 = flushed(1.0f - h.beta3);
    k.alpha = flushed(h.alpha);
    k.eps = flushed(h.eps);
    k.weight_decay = flushed(h.weight_decay);
    k.lr = flushed(h.lr);
    k.neg_lr = -k.lr;
    k.gnorm_scale = flushed(h.gnorm_scale);
    k.correction1 = flushed(1.0f - std::pow(k.beta1, step));
    k.norm_correction2 = flushed(1.0f - std::pow(k.beta2, step));
    k.correction2 = flushed(std::sqrt(k.norm_correction2));
    k.rcp_correction1 = rcp_approx_ftz(k.correction1);
    k.rcp_correction2 = rcp_approx_ftz(k.correction2);
    k.step_size = ftz_mul(ftz_mul(k.neg_lr, k.correction2), k.rcp_correction1);
    k.eps_correction2 = ftz_mul(k.eps, k.correction2);
    k.decay = flushed(1.0f - ftz_mul(k.lr, k.weight_decay));
    k.first_step = h.step == 1;
    k.skip_zeros = h.skip_zeros != 0;
    return k;
}

// Every tensor's pieces in list order, and where each tensor's pieces start
// (first_piece[t] .. first_piece[t + 1]).
struct Pieces {
    std::vector<OptimizerPiece> pieces;
    std::vector<size_t> first_piece;
    int64_t elements = 0;
};

Pieces cut_into_pieces(const OptimizerUpdateArgs& args) {
    Pieces out;
    for (int64_t t = 0; t < args.count; ++t) {
        out.first_piece.push_back(out.pieces.size());
        const int64_t n = args.tensors[t].n;
        for (int64_t begin = 0; begin < n; begin += kPieceElements) {
            out.pieces.push_back({t, begin, std::min(n, begin + kPieceElements)});
        }
        out.elements += n;
    }
    out.first_piece.push_back(out.pieces.size());
    return out;
}

// Calls run(piece index) for every piece, the pieces spread over the threads.
template <typename Run>
void for_each_piece(const Pieces& pieces, const Run& run) {
    for_each_block_range(static_cast<int64_t>(pieces.pieces.size()), pieces.elements, kMinElementsPerThread,
                         [&](int64_t first, int64_t last) {
                             const DefaultFloatMode float_mode;
                             for (int64_t i = first; i < last; ++i) run(static_cast<size_t>(i));
                         });
}

// formats.md section 7: the update-norm clipping factor of a tensor whose
// squared update norm is `unorm`.
float update_scale(const OptimizerUpdateArgs& args, const OptimizerScalars& k, const bnb_optimizer_tensor& tensor,
                   float unorm) {
    const float norm = flushed(std::sqrt(unorm));
    float limit = ftz_mul(args.hparams->max_unorm, tensor.param_norm);
    if (!is_two_state(args.optimizer)) limit = flushed(limit + k.eps);
    return norm > limit ? ftz_mul(limit, rcp_approx_ftz(norm)) : 1.0f;
}

}  // namespace

bnb_status optimizer_update_32bit(const OptimizerUpdateArgs& args) {
    const DefaultFloatMode float_mode;
    const OptimizerScalars scalars = derive_scalars(*args.hparams);
    const OptimizerKernels& kernels = BNB_CPU_ACTIVE_KERNELS(kOptimizerKernels);
    const Pieces pieces = cut_into_pieces(args);
    std::vector<float> scales(static_cast<size_t>(args.count), 1.0f);
    // AdEMAMix has no clipping: its unorm_vec is only zeroed.
    if (args.clips()) {
        const bool ademamix = args.optimizer == BNB_OPTIMIZER_ADEMAMIX;
        std::vector<double> sums(pieces.pieces.size(), 0.0);
        if (!ademamix) {
            for_each_piece(pieces, [&](size_t i) {
                sums[i] = kernels.update_norm_32bit(args, scalars, pieces.pieces[i]);
            });
        }
        for (int64_t t = 0; t < args.count; ++t) {
            double sum = 0.0;
            for (size_t i = pieces.first_piece[t]; i < pieces.first_piece[t + 1]; ++i) sum += sums[i];
            const bnb_optimizer_tensor& tensor = args.tensors[t];
            // An empty tensor's buffers are not the call's (the core checks none of them).
            if (tensor.n == 0) continue;
            // A NaN sum as CUDA's canonical NaN (kernels.h says why).
            *tensor.unorm_vec = std::isnan(sum) ? bits_float(0x7fffffffu) : static_cast<float>(sum);
            if (!ademamix) scales[t] = update_scale(args, scalars, tensor, *tensor.unorm_vec);
        }
    }
    for_each_piece(pieces, [&](size_t i) {
        const OptimizerPiece& piece = pieces.pieces[i];
        kernels.update_32bit(args, scalars, piece, scales[static_cast<size_t>(piece.tensor)]);
    });
    return BNB_STATUS_SUCCESS;
}

bnb_status optimizer_update_8bit_blockwise(const OptimizerUpdateArgs& args) {
    const DefaultFloatMode float_mode;  // the search tables' midpoints round like the kernels' own
    const OptimizerScalars scalars = derive_scalars(*args.hparams);
    OptimizerCodeSearch search;
    std::memcpy(search.code1, args.qmap1, sizeof(search.code1));
    search.code1[255] = 1.0f;
    build_code_search_tables(search.code1, &search.tables1);
    std::memset(search.negative_code_bits1, 0, sizeof(search.negative_code_bits1));
    for (int code = 0; code < 256; ++code) {
        if (std::signbit(args.qmap1[code])) search.negative_code_bits1[code >> 5] |= uint32_t{1} << (code & 31);
    }
    if (is_two_state(args.optimizer)) {
        std::memcpy(search.code2, args.qmap2, sizeof(search.code2));
        search.code2[255] = 1.0f;
        build_code_search_tables(search.code2, &search.tables2);
    }
    const OptimizerKernels& kernels = BNB_CPU_ACTIVE_KERNELS(kOptimizerKernels);
    const Pieces pieces = cut_into_pieces(args);
    for_each_piece(pieces, [&](size_t i) {
        kernels.update_8bit_blockwise(args, scalars, search, pieces.pieces[i]);
    });
    return BNB_STATUS_SUCCESS;
}

}  // namespace bnb::cpu
