// The pybind11 face of bitsandbytes._C: plain values only (version, backends,
// codebooks). Tensors never cross here; ops go through torch.ops.bitsandbytes.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <iterator>
#include <string>
#include <tuple>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "codebooks.h"

namespace py = pybind11;

namespace {

std::vector<std::tuple<std::string, bool, bool>> backends() {
    std::vector<std::tuple<std::string, bool, bool>> result;
    for (int type = 0; type < BNB_DEVICE_TYPE_COUNT; ++type) {
        const auto device_type = static_cast<bnb_device_type>(type);
        result.emplace_back(bnb_backend_name(device_type), bnb_backend_built(device_type) != 0,
                            bnb_backend_available(device_type) != 0);
    }
    return result;
}

std::vector<float> codebook(const std::string& name) {
    bnb_codebook which;
    if (name == "dynamic_signed") which = BNB_CODEBOOK_DYNAMIC_SIGNED;
    else if (name == "dynamic_unsigned") which = BNB_CODEBOOK_DYNAMIC_UNSIGNED;
    else if (name == "nf4") which = BNB_CODEBOOK_NF4;
    else if (name == "fp4") which = BNB_CODEBOOK_FP4;
    else throw py::value_error("unknown codebook '" + name + "'");
    std::vector<float> values(static_cast<size_t>(bnb_codebook_size(which)));
    if (bnb_codebook_copy(which, values.data(), static_cast<int64_t>(values.size())) != BNB_STATUS_SUCCESS) {
        throw std::runtime_error(bnb_last_error());
    }
    return values;
}

// The decision thresholds of the 4-bit quantizers, for the pure-torch
// implementation that must round exactly like the kernels.
std::vector<float> quantize_thresholds(const std::string& quant_type) {
    if (quant_type == "nf4") return {std::begin(bnb::kNf4Thresholds), std::end(bnb::kNf4Thresholds)};
    if (quant_type == "fp4") {
        return {std::begin(bnb::kFp4MagnitudeThresholds), std::end(bnb::kFp4MagnitudeThresholds)};
    }
    throw py::value_error("quant_type must be 'nf4' or 'fp4', got '" + quant_type + "'");
}

}  // namespace

PYBIND11_MODULE(_C, m) {
    m.doc() = "Native core of bitsandbytes (C ABI version, backends, codebooks).";
    m.def("version", &bnb_version, "Version of the native library.");
    m.def("abi_version", &bnb_abi_version, "BNB_ABI_VERSION of the native library.");
    m.def("backends", &backends, "(name, built, available) for each backend of the native library.");
    m.def("codebook", &codebook, py::arg("name"),
          "Float32 values of a codebook: dynamic_signed, dynamic_unsigned, nf4 or fp4.");
    m.def("quantize_thresholds", &quantize_thresholds, py::arg("quant_type"),
          "Float32 thresholds of the 4-bit quantizer (strict >): nf4, 15 between neighbouring codes; "
          "fp4, 7 between neighbouring magnitudes in increasing order.");
}
