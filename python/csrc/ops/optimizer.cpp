// Torch glue of the optimizer ops (ops.md section 4) and paged memory: tensor
// checks, one C ABI call.
//
// The three update ops (upstream's two and our multi-tensor one) are one call of
// the C ABI over a list of tensors. Paged optimizer states are CPU-device tensors
// backed by managed memory that a CUDA kernel may touch (upstream's convention);
// paged_empty records each allocation, so that a CPU state handed to a CUDA update
// is accepted only when it is one of them (ordinary host memory would fault).
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_set>
#include <vector>

#include "../glue.h"

namespace bnb::glue {
namespace {

// ---- paged memory ------------------------------------------------------------------

class PagedAllocations {
public:
    void add(const void* ptr) {
        std::lock_guard<std::mutex> lock(mutex_);
        live_.insert(ptr);
    }
    void remove(const void* ptr) {
        std::lock_guard<std::mutex> lock(mutex_);
        live_.erase(ptr);
    }
    bool contains(const void* ptr) {
        std::lock_guard<std::mutex> lock(mutex_);
        return live_.count(ptr) != 0;
    }

private:
    std::mutex mutex_;
    std::unordered_set<const void*> live_;
};

PagedAllocations& paged_allocations() {
    static PagedAllocations* allocations = new PagedAllocations();  // outlives tensors freed at exit
    return *allocations;
}

bool is_paged(const at::Tensor& t) {
    return t.device().is_cpu() && t.has_storage() && paged_allocations().contains(t.storage().data());
}

at::Tensor paged_empty(c10::IntArrayRef size, at::ScalarType dtype, c10::Device device) {
    const auto options = at::TensorOptions().dtype(dtype).device(at::kCPU);
    const int64_t bytes = checked_numel(size, "size") * static_cast<int64_t>(c10::elementSize(dtype));
    if (bytes == 0 || device.is_cpu()) return at::zeros(size, options);
    const bnb_device where = to_bnb_device(device);
    void* memory = nullptr;
    check_status(bnb_paged_alloc(where, bytes, &memory), "paged_empty");
    paged_allocations().add(memory);
    return at::from_blob(
        memory, size,
        [where](void* ptr) {
            paged_allocations().remove(ptr);
            bnb_paged_free(where, ptr);
        },
        options);
}

void paged_prefetch(const at::Tensor& t, c10::Device device, bool to_device) {
    if (device.is_cpu() || !is_paged(t)) return;  // nothing pages
    BNB_CHECK_VALUE(t.is_contiguous(), "paged_prefetch: t must be contiguous");
    check_status(bnb_paged_prefetch(to_bnb_device(device), current_stream(device), t.const_data_ptr(),
                                    t.numel() * static_cast<int64_t>(t.element_size()), to_device ? 1 : 0),
                 "paged_prefetch");
}

// ---- updates -----------------------------------------------------------------------

// A float dtype as torch prints it ("torch.float16"), as upstream's messages name it.
const char* torch_dtype_name(at::ScalarType dtype) {
    switch (dtype) {
        case at::kFloat: return "torch.float32";
        case at::kHalf: return "torch.float16";
        case at::kBFloat16: return "torch.bfloat16";
        case at::kByte: return "torch.uint8";
        default: return c10::toString(dtype);
    }
}

constexpr bool is_two_state(bnb_optimizer optimizer) {
    return optimizer == BNB_OPTIMIZER_ADAM || optimizer == BNB_OPTIMIZER_LAMB || optimizer == BNB_OPTIMIZER_ADEMAMIX;
}

bnb_optimizer parse_optimizer(c10::string_view name) {
    bnb_optimizer optimizer = BNB_OPTIMIZER_ADAM;
    check_status(bnb_optimizer_from_name(std::string(name).c_str(), &optimizer), "optimizer");
    return optimizer;
}

// The tensors of one parameter, as the ops receive them (borrowed: the caller's
// tensors outlive the call, and a multi-tensor call would otherwise take and drop a
// reference to each of hundreds of tensors).
struct ParameterTensors {
    const at::Tensor* g;
    const at::Tensor* p;
    const at::Tensor* state1;
    const at::Tensor* state2 = nullptr;
    const at::Tensor* absmax1 = nullptr;
    const at::Tensor* absmax2 = nullptr;
    const at::Tensor* unorm_vec = nullptr;
    float param_norm = 0.0f;
};

const at::Tensor* borrowed(const std::optional<at::Tensor>& t) { return t.has_value() ? &*t : nullptr; }

// What every tensor of one call shares.
struct UpdateCall {
    const char* op;
    bnb_optimizer optimizer;
    bool blockwise;
    const at::Tensor* qmap1;
    const at::Tensor* qmap2;
    bnb_optimizer_hparams hparams;
};

// A state (or absmax) the kernel writes in place: its dtype, at least `entries`
// elements, contiguous, on p's device or (states of a CUDA p) paged.
// `unit`: what the sizes count ("elements" of a state, "entries" of an absmax).
void check_written(const at::Tensor& t, const char* name, at::ScalarType dtype, int64_t entries, const char* unit,
                   const at::Tensor& p, bool may_be_paged) {
    BNB_CHECK_VALUE(t.scalar_type() == dtype, name, " must be ", torch_dtype_name(dtype), ", got ",
                    torch_dtype_name(t.scalar_type()));
    BNB_CHECK_VALUE(t.numel() >= entries, name, " must have ", entries, " ", unit, " (or more), got ", t.numel());
    BNB_CHECK_VALUE(t.is_contiguous(), name, " must be contiguous (it is updated in place)");
    if (t.device() != p.device()) {
        BNB_CHECK_VALUE(may_be_paged && !p.device().is_cpu() && is_paged(t), name, " is on ", t.device(),
                        " but p is on ", p.device(), " (only paged states may live on the host)");
    }
}

void check_map(const at::Tensor* map, const char* name, const at::Tensor& p) {
    BNB_CHECK_VALUE(map != nullptr, name, " is required by 8-bit blockwise states");
    BNB_CHECK_VALUE(map->scalar_type() == at::kFloat, name, " must be float32, got ", map->scalar_type());
    BNB_CHECK_VALUE(map->numel() == 256, name, " must have 256 entries, got ", map->numel());
    BNB_CHECK_VALUE(map->is_contiguous(), name, " must be contiguous");
    check_same_device(*map, p.device(), name);
}

// Checks one parameter's tensors against the call and describes them to the C ABI.
// `g_storage` keeps a contiguous copy of g alive for the call where g is not contiguous.
bnb_optimizer_tensor describe(const UpdateCall& call, const ParameterTensors& t,
                              c10::MaybeOwned<at::Tensor>& g_storage) {
    const at::Tensor& g = *t.g;
    const at::Tensor& p = *t.p;
    BNB_CHECK_VALUE(g.numel() == p.numel(), "g and p must have the same number of elements, got ", g.numel(),
                    " and ", p.numel());
    BNB_CHECK_VALUE(is_float_dtype(g.scalar_type()), "g must be bfloat16, float16, or float32, got ",
                    g.scalar_type());
    BNB_CHECK_VALUE(g.scalar_type() == p.scalar_type(),
                    "Expected all tensors to have the same dtype, got g.dtype=", torch_dtype_name(g.scalar_type()),
                    ", p.dtype=", torch_dtype_name(p.scalar_type()));
    BNB_CHECK_VALUE(!g.is_sparse(), "g must be a dense tensor (sparse gradients are not supported)");
    BNB_CHECK_VALUE(p.is_contiguous(), "p must be contiguous (it is updated in place)");
    check_same_device(g, p.device(), "g");
    g_storage = g.expect_contiguous();

    const int64_t n = p.numel();
    const bool two_state = is_two_state(call.optimizer);
    const int64_t state1_entries = n * (call.optimizer == BNB_OPTIMIZER_ADEMAMIX ? 2 : 1);
    const int64_t blocks = (n + 255) / 256;
    const at::ScalarType state_dtype = call.blockwise ? at::kByte : at::kFloat;
    check_written(*t.state1, "state1", state_dtype, state1_entries, "elements", p, true);
    if (two_state) {
        BNB_CHECK_VALUE(t.state2 != nullptr, "state2 is required by the two-state optimizer");
        check_written(*t.state2, "state2", state_dtype, n, "elements", p, true);
    }
    if (call.blockwise) {
        BNB_CHECK_VALUE(t.absmax1 != nullptr, "absmax1 is required by 8-bit blockwise states");
        check_written(*t.absmax1, "absmax1", at::kFloat,
                      blocks * (call.optimizer == BNB_OPTIMIZER_ADEMAMIX ? 2 : 1), "entries", p, false);
        if (two_state) {
            BNB_CHECK_VALUE(t.absmax2 != nullptr, "absmax2 is required by the two-state optimizer");
            check_written(*t.absmax2, "absmax2", at::kFloat, blocks, "entries", p, false);
        }
    }
    const bool clips = !call.blockwise && call.hparams.max_unorm > 0.0f;
    if (clips) {
        BNB_CHECK_VALUE(t.unorm_vec != nullptr, "unorm_vec is required when max_unorm > 0");
        check_written(*t.unorm_vec, "unorm_vec", at::kFloat, 1, "entries", p, false);
    }
    const auto pointer = [](const at::Tensor* x, bool used) -> void* {
        return used && x != nullptr ? x->data_ptr() : nullptr;
    };
    return {.n = n,
            .g = g_storage->const_data_ptr(),
            .p = p.data_ptr(),
            .state1 = t.state1->data_ptr(),
            .state2 = pointer(t.state2, two_state),
            .absmax1 = static_cast<float*>(pointer(t.absmax1, call.blockwise)),
            .absmax2 = static_cast<float*>(pointer(t.absmax2, call.blockwise && two_state)),
            .unorm_vec = static_cast<float*>(pointer(t.unorm_vec, clips)),
            .param_norm = t.param_norm};
}

void update(const UpdateCall& call, const std::vector<ParameterTensors>& parameters) {
    if (parameters.empty()) return;
    const at::Tensor& first = *parameters.front().p;
    if (call.blockwise) {
        check_map(call.qmap1, "qmap1", first);
        if (is_two_state(call.optimizer)) check_map(call.qmap2, "qmap2", first);
    }
    std::vector<c10::MaybeOwned<at::Tensor>> g_storage(parameters.size());
    std::vector<bnb_optimizer_tensor> tensors;
    tensors.reserve(parameters.size());
    for (size_t i = 0; i < parameters.size(); ++i) {
        const ParameterTensors& t = parameters[i];
        if (i > 0) {
            check_same_device(*t.p, first.device(), "p");
            BNB_CHECK_VALUE(t.p->scalar_type() == first.scalar_type(),
                            "every p of one call must have one dtype, got ", first.scalar_type(), " and ",
                            t.p->scalar_type());
        }
        tensors.push_back(describe(call, t, g_storage[i]));
    }
    const bnb_device device = to_bnb_device(first.device());
    void* stream = current_stream(first.device());
    const bnb_dtype dtype = to_bnb_dtype(first.scalar_type());
    const auto count = static_cast<int64_t>(tensors.size());
    if (call.blockwise) {
        const float* qmap2 = is_two_state(call.optimizer) ? call.qmap2->const_data_ptr<float>() : nullptr;
        check_status(bnb_optimizer_update_8bit_blockwise(device, stream, call.optimizer, dtype, tensors.data(),
                                                         count, call.qmap1->const_data_ptr<float>(), qmap2,
                                                         &call.hparams),
                     call.op);
    } else {
        check_status(
            bnb_optimizer_update_32bit(device, stream, call.optimizer, dtype, tensors.data(), count, &call.hparams),
            call.op);
    }
}

bnb_optimizer_hparams hparams_of(double beta1, double beta2, double beta3, double alpha, double eps,
                                 double weight_decay, int64_t step, double lr, double gnorm_scale, double max_unorm,
                                 bool skip_zeros) {
    return {.beta1 = static_cast<float>(beta1),
            .beta2 = static_cast<float>(beta2),
            .beta3 = static_cast<float>(beta3),
            .alpha = static_cast<float>(alpha),
            .eps = static_cast<float>(eps),
            .weight_decay = static_cast<float>(weight_decay),
            .lr = static_cast<float>(lr),
            .gnorm_scale = static_cast<float>(gnorm_scale),
            .max_unorm = static_cast<float>(max_unorm),
            .step = step,
            .skip_zeros = skip_zeros ? 1 : 0};
}

void optimizer_update_32bit(c10::string_view optimizer_name, const at::Tensor& g, const at::Tensor& p,
                            const at::Tensor& state1, const std::optional<at::Tensor>& state2,
                            const std::optional<at::Tensor>& unorm_vec, double max_unorm, double param_norm,
                            double beta1, double beta2, double beta3, double alpha, double eps, double weight_decay,
                            int64_t step, double lr, double gnorm_scale, bool skip_zeros) {
    const UpdateCall call{.op = "optimizer_update_32bit",
                          .optimizer = parse_optimizer(optimizer_name),
                          .blockwise = false,
                          .qmap1 = nullptr,
                          .qmap2 = nullptr,
                          .hparams = hparams_of(beta1, beta2, beta3, alpha, eps, weight_decay, step, lr, gnorm_scale,
                                                max_unorm, skip_zeros)};
    update(call, {{.g = &g, .p = &p, .state1 = &state1, .state2 = borrowed(state2), .unorm_vec = borrowed(unorm_vec),
                   .param_norm = static_cast<float>(param_norm)}});
}

void optimizer_update_8bit_blockwise(c10::string_view optimizer_name, const at::Tensor& g, const at::Tensor& p,
                                     const at::Tensor& state1, const std::optional<at::Tensor>& state2, double beta1,
                                     double beta2, double beta3, double alpha, double eps, int64_t step, double lr,
                                     const at::Tensor& qmap1, const std::optional<at::Tensor>& qmap2,
                                     const at::Tensor& absmax1, const std::optional<at::Tensor>& absmax2,
                                     double weight_decay, double gnorm_scale, bool skip_zeros) {
    const UpdateCall call{.op = "optimizer_update_8bit_blockwise",
                          .optimizer = parse_optimizer(optimizer_name),
                          .blockwise = true,
                          .qmap1 = &qmap1,
                          .qmap2 = borrowed(qmap2),
                          .hparams = hparams_of(beta1, beta2, beta3, alpha, eps, weight_decay, step, lr, gnorm_scale,
                                                0.0, skip_zeros)};
    update(call, {{.g = &g, .p = &p, .state1 = &state1, .state2 = borrowed(state2), .absmax1 = &absmax1,
                   .absmax2 = borrowed(absmax2)}});
}

// The tensors of a list argument, borrowed from the dispatcher's list (which
// at::ITensorListRef passes through without copying it).
std::vector<const at::Tensor*> borrowed_list(const at::ITensorListRef& list) {
    std::vector<const at::Tensor*> tensors;
    tensors.reserve(list.size());
    for (const at::Tensor& t : list) tensors.push_back(&t);
    return tensors;
}

// Our extension: every tensor of the lists in one call (one launch on CUDA). The
// states' dtype selects 8-bit blockwise (uint8) or 32-bit (float32) states; lists
// an optimizer does not use are empty.
void optimizer_update_multi_tensor(c10::string_view optimizer_name, at::ITensorListRef g_list,
                                   at::ITensorListRef p_list, at::ITensorListRef state1_list,
                                   at::ITensorListRef state2_list, at::ITensorListRef absmax1_list,
                                   at::ITensorListRef absmax2_list, const std::optional<at::Tensor>& qmap1,
                                   const std::optional<at::Tensor>& qmap2, double beta1, double beta2, double beta3,
                                   double alpha, double eps, double weight_decay, int64_t step, double lr,
                                   double gnorm_scale, bool skip_zeros) {
    const std::vector<const at::Tensor*> g = borrowed_list(g_list), p = borrowed_list(p_list),
                                         state1 = borrowed_list(state1_list), state2 = borrowed_list(state2_list),
                                         absmax1 = borrowed_list(absmax1_list), absmax2 = borrowed_list(absmax2_list);
    const size_t count = p.size();
    const auto check_length = [count](const std::vector<const at::Tensor*>& list, const char* name,
                                      bool may_be_empty) {
        BNB_CHECK_VALUE(list.size() == count || (may_be_empty && list.empty()), name, " must have ", count,
                        " tensors (one per p)", may_be_empty ? " or none" : "", ", got ", list.size());
    };
    check_length(g, "g", false);
    check_length(state1, "state1", false);
    check_length(state2, "state2", true);
    check_length(absmax1, "absmax1", true);
    check_length(absmax2, "absmax2", true);
    if (count == 0) return;
    const UpdateCall call{.op = "optimizer_update_multi_tensor",
                          .optimizer = parse_optimizer(optimizer_name),
                          .blockwise = state1[0]->scalar_type() == at::kByte,
                          .qmap1 = borrowed(qmap1),
                          .qmap2 = borrowed(qmap2),
                          .hparams = hparams_of(beta1, beta2, beta3, alpha, eps, weight_decay, step, lr, gnorm_scale,
                                                0.0, skip_zeros)};
    const auto entry = [](const std::vector<const at::Tensor*>& list, size_t i) -> const at::Tensor* {
        return list.empty() ? nullptr : list[i];
    };
    std::vector<ParameterTensors> parameters;
    parameters.reserve(count);
    for (size_t i = 0; i < count; ++i) {
        parameters.push_back({.g = g[i], .p = p[i], .state1 = state1[i], .state2 = entry(state2, i),
                              .absmax1 = entry(absmax1, i), .absmax2 = entry(absmax2, i)});
    }
    update(call, parameters);
}

void register_optimizer(torch::Library& m, bnb_device_type backend) {
    const auto supports = [backend](const char* op) { return bnb_backend_supports(backend, op) != 0; };
    if (supports("optimizer_update_32bit")) m.impl("optimizer_update_32bit", &optimizer_update_32bit);
    if (supports("optimizer_update_8bit_blockwise")) {
        m.impl("optimizer_update_8bit_blockwise", &optimizer_update_8bit_blockwise);
    }
    // The list op mixes both kinds of state: native when the backend has both.
    if (supports("optimizer_update_32bit") && supports("optimizer_update_8bit_blockwise")) {
        m.impl("optimizer_update_multi_tensor", &optimizer_update_multi_tensor);
    }
    m.impl("paged_prefetch", &paged_prefetch);
}

}  // namespace

TORCH_LIBRARY_IMPL(bitsandbytes, CPU, m) { register_optimizer(m, BNB_DEVICE_CPU); }
TORCH_LIBRARY_IMPL(bitsandbytes, CUDA, m) { register_optimizer(m, cuda_backend_type()); }
// No tensor argument to dispatch on: the device argument decides.
TORCH_LIBRARY_IMPL(bitsandbytes, CompositeExplicitAutograd, m) { m.impl("paged_empty", &paged_empty); }

}  // namespace bnb::glue
