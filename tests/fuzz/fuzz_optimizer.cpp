// bnb_optimizer_update_32bit / bnb_optimizer_update_8bit_blockwise with every
// argument drawn from the input (optimizer, dtype, a list of tensors of any
// sizes, hyper-parameters with special values, clipping, skip_zeros): on valid
// arguments every vector path leaves the scalar path's bytes in every
// parameter and state; on invalid ones the call fails with a message.
#include "fuzz_support.h"

using namespace bnb_fuzz;

namespace {

constexpr int64_t kMaxElements = 1100;
constexpr int64_t kMaxTensors = 3;
constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max() / 8;

bool is_two_state(bnb_optimizer o) {
    return o == BNB_OPTIMIZER_ADAM || o == BNB_OPTIMIZER_LAMB || o == BNB_OPTIMIZER_ADEMAMIX;
}

// A hyper-parameter: its usual range most often, sometimes any float.
float pick_hparam(FuzzedDataProvider& in, Values& values, float low, float high) {
    if (in.ConsumeIntegral<uint8_t>() < 24) return values.next();
    return low + (high - low) * in.ConsumeProbability<float>();
}

struct Tensor {
    Count n;
    int g, p, state1, state2, absmax1, absmax2, unorm;
    float param_norm;
};

void run(FuzzedDataProvider& in) {
    const bool blockwise = in.ConsumeBool();
    const auto optimizer = pick_enum<bnb_optimizer>(in, BNB_OPTIMIZER_COUNT);
    const bnb_dtype dtype = pick_dtype(in);
    const Count count = pick_count(in, kMaxTensors);
    const std::string variant = pick_vector_variant(in);
    Values values(in);
    bnb_optimizer_hparams h{};
    h.beta1 = pick_hparam(in, values, 0.0f, 1.0f);
    h.beta2 = pick_hparam(in, values, 0.9f, 1.0f);
    h.beta3 = pick_hparam(in, values, 0.9f, 1.0f);
    h.alpha = pick_hparam(in, values, 0.0f, 10.0f);
    h.eps = pick_hparam(in, values, 1e-10f, 1e-3f);
    h.weight_decay = in.ConsumeBool() ? 0.0f : pick_hparam(in, values, 0.0f, 0.1f);
    h.lr = pick_hparam(in, values, 1e-5f, 1e-1f);
    h.gnorm_scale = in.ConsumeBool() ? 1.0f : pick_hparam(in, values, 0.0f, 2.0f);
    h.max_unorm = in.ConsumeBool() ? 0.0f : pick_hparam(in, values, 0.0f, 2.0f);
    h.step = in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(1, 100) : pick_count(in, 1000).value;
    h.skip_zeros = in.ConsumeBool();
    const bool null_hparams = in.ConsumeIntegral<uint8_t>() < 4;

    const std::string call = std::string(blockwise ? "bnb_optimizer_update_8bit_blockwise" : "bnb_optimizer_update_32bit") +
                             "(optimizer " + std::to_string(optimizer) + ", dtype " + std::to_string(dtype) +
                             ", count " + std::to_string(count.value) + ", step " + std::to_string(h.step) +
                             ", max_unorm " + show(h.max_unorm) + ") on " + variant;
    std::string error;
    if (static_cast<int>(optimizer) < 0 || static_cast<int>(optimizer) >= BNB_OPTIMIZER_COUNT) error = "optimizer is out of range";
    else if (!is_float_dtype(dtype)) error = "dtype is not a float dtype";
    else if (count.value < 0 || count.value > kMaxCount) error = "count is out of range";
    else if (null_hparams) error = "hparams is NULL";
    else if (is_two_state(optimizer) && h.step < 1) error = "step < 1 for a bias-corrected optimizer";

    alignas(64) static float qmap_storage[2][256];
    bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_SIGNED, qmap_storage[0], 256);
    bnb_codebook_copy(BNB_CODEBOOK_DYNAMIC_UNSIGNED, qmap_storage[1], 256);
    const float* qmap1 = blockwise ? qmap_storage[0] : nullptr;
    const float* qmap2 = blockwise ? qmap_storage[1] : nullptr;
    if (count.huge) {
        // No list has that many tensors: the list is NULL, so the call must be refused.
        const bnb_status status =
            blockwise ? bnb_optimizer_update_8bit_blockwise(kCpu, nullptr, optimizer, dtype, nullptr, count.value,
                                                            qmap1, qmap2, null_hparams ? nullptr : &h)
                      : bnb_optimizer_update_32bit(kCpu, nullptr, optimizer, dtype, nullptr, count.value,
                                                   null_hparams ? nullptr : &h);
        check_status(status, error.empty() ? "tensors is NULL" : error, call);
        return;
    }

    const bool valid_enum = error.empty() || error == "hparams is NULL" || error.rfind("step", 0) == 0;
    const bool two_state = valid_enum && is_two_state(optimizer);
    const int64_t factor = optimizer == BNB_OPTIMIZER_ADEMAMIX ? 2 : 1;
    const int64_t element = std::max<int64_t>(dtype_bytes(dtype), 1);
    const int64_t state_element = blockwise ? 1 : 4;
    const bool clips = !blockwise && h.max_unorm > 0.0f;
    Buffers buffers;
    std::vector<Tensor> tensors(static_cast<size_t>(count.value));
    bool any_elements = false;
    for (Tensor& t : tensors) {
        t.n = pick_count(in, kMaxElements);
        if (t.n.huge) {
            // A tensor no buffer can back: the call must fail (on n, or on its NULL buffers).
            t.g = t.p = t.state1 = t.state2 = t.absmax1 = t.absmax2 = t.unorm = -1;
            if (error.empty()) error = "a tensor's n is huge or negative";
            continue;
        }
        const int64_t n = t.n.value;
        const int64_t blocks = n / 256 + (n % 256 != 0);
        any_elements = any_elements || n > 0;
        t.g = buffers.add("g", n * element, element, Access::kRead);
        t.p = buffers.add("p", n * element, element, Access::kWrite);
        t.state1 = buffers.add("state1", n * factor * state_element, state_element, Access::kWrite);
        t.state2 = buffers.add("state2", two_state ? n * state_element : 0, state_element, Access::kWrite);
        t.absmax1 = buffers.add("absmax1", blockwise ? blocks * factor * 4 : 0, 4, Access::kWrite);
        t.absmax2 = buffers.add("absmax2", blockwise && two_state ? blocks * 4 : 0, 4, Access::kWrite);
        t.unorm = buffers.add("unorm_vec", clips && n > 0 ? 4 : 0, 4, Access::kWrite);
        t.param_norm = in.ConsumeBool() ? std::fabs(values.next()) : values.next();
        values.fill(buffers.data(t.g), n, dtype);
        values.fill(buffers.data(t.p), n, dtype);
        if (blockwise) {
            values.fill_bytes(buffers.data(t.state1), n * factor);
            values.fill_bytes(buffers.data(t.state2), two_state ? n : 0);
            values.fill(buffers.data(t.absmax1), blocks * factor, BNB_DTYPE_FLOAT32);
            values.fill(buffers.data(t.absmax2), two_state ? blocks : 0, BNB_DTYPE_FLOAT32);
        } else {
            values.fill(buffers.data(t.state1), n * factor, BNB_DTYPE_FLOAT32);
            values.fill(buffers.data(t.state2), two_state ? n : 0, BNB_DTYPE_FLOAT32);
        }
    }
    // A fault within one tensor; tensors of one list may share nothing either,
    // but the library checks each tensor's buffers only (src/ops/optimizer.h),
    // so a fault across two tensors is not drawn.
    std::string fault;
    if (!tensors.empty()) {
        const Tensor& t = tensors[in.ConsumeIntegralInRange<size_t>(0, tensors.size() - 1)];
        if (!t.n.huge) {
            // The fault is drawn among this tensor's buffers only.
            Buffers view;
            for (int i : {t.g, t.p, t.state1, t.state2, t.absmax1, t.absmax2, t.unorm}) {
                view.adopt(buffers[i]);
            }
            fault = view.apply_fault(in);
            int j = 0;
            for (int i : {t.g, t.p, t.state1, t.state2, t.absmax1, t.absmax2, t.unorm}) buffers[i].data = view[j++].data;
        }
    }
    if (error.empty() && any_elements) error = fault;

    std::vector<bnb_optimizer_tensor> list;
    for (const Tensor& t : tensors) {
        auto data = [&](int i) -> uint8_t* { return i >= 0 ? buffers.data(i) : nullptr; };
        list.push_back({.n = t.n.value, .g = data(t.g), .p = data(t.p), .state1 = data(t.state1),
                        .state2 = data(t.state2), .absmax1 = reinterpret_cast<float*>(data(t.absmax1)),
                        .absmax2 = reinterpret_cast<float*>(data(t.absmax2)),
                        .unorm_vec = reinterpret_cast<float*>(data(t.unorm)), .param_norm = t.param_norm});
    }
    const bnb_optimizer_tensor* list_data = list.empty() ? nullptr : list.data();
    auto call_once = [&] {
        const bnb_optimizer_hparams* hp = null_hparams ? nullptr : &h;
        return blockwise ? bnb_optimizer_update_8bit_blockwise(kCpu, nullptr, optimizer, dtype, list_data,
                                                               count.value, qmap1, qmap2, hp)
                         : bnb_optimizer_update_32bit(kCpu, nullptr, optimizer, dtype, list_data, count.value, hp);
    };
    const auto results = call_then_rerun_on_scalar(buffers, variant, call_once, error, call, fault, true);
    if (!results) return;
    const auto& vector_result = *results;
    for (int i = 0; i < buffers.size(); ++i) {
        const auto& item = buffers[i];
        if (item.access != Access::kWrite || item.bytes <= 0) continue;
        const bool codes = blockwise && (item.name == "state1" || item.name == "state2");
        if (codes) {
            require_same_bytes(vector_result[static_cast<size_t>(i)].data(), item.data, item.bytes, call + ": " + item.name);
        } else {
            const bnb_dtype type = item.name == "p" ? dtype : BNB_DTYPE_FLOAT32;
            require_same_floats(vector_result[static_cast<size_t>(i)].data(), item.data, item.bytes / dtype_bytes(type),
                                type, call + ": " + item.name);
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    FuzzedDataProvider in(data, size);
    run(in);
    return 0;
}
