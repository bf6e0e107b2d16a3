// The pybind11 face of bitsandbytes._C: plain values only (version, backends,
// the op list and its formats, codebooks), all asked of the C ABI. Tensors never
// cross here; ops go through torch.ops.bitsandbytes.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <iterator>
#include <string>
#include <tuple>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"

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

std::vector<float> copy_codebook(bnb_codebook which) {
    std::vector<float> values(static_cast<size_t>(bnb_codebook_size(which)));
    if (bnb_codebook_copy(which, values.data(), static_cast<int64_t>(values.size())) != BNB_STATUS_SUCCESS) {
        throw std::runtime_error(bnb_last_error());
    }
    return values;
}

std::vector<float> codebook(const std::string& name) {
    if (name == "dynamic_signed") return copy_codebook(BNB_CODEBOOK_DYNAMIC_SIGNED);
    if (name == "dynamic_unsigned") return copy_codebook(BNB_CODEBOOK_DYNAMIC_UNSIGNED);
    if (name == "nf4") return copy_codebook(BNB_CODEBOOK_NF4);
    if (name == "fp4") return copy_codebook(BNB_CODEBOOK_FP4);
    throw py::value_error("unknown codebook '" + name + "'");
}

// The decision thresholds of the 4-bit quantizers, for the pure-torch
// implementation that must round exactly like the kernels.
std::vector<float> quantize_thresholds(const std::string& quant_type) {
    if (quant_type == "nf4") return copy_codebook(BNB_CODEBOOK_NF4_THRESHOLDS);
    if (quant_type == "fp4") return copy_codebook(BNB_CODEBOOK_FP4_THRESHOLDS);
    throw py::value_error("quant_type must be 'nf4' or 'fp4', got '" + quant_type + "'");
}

std::vector<std::string> ops() {
    std::vector<std::string> names;
    for (int index = 0; index < bnb_op_count(); ++index) names.emplace_back(bnb_op_name(index));
    return names;
}

std::vector<int64_t> blocksizes(const std::string& op) {
    int64_t count = 0;
    if (bnb_op_blocksizes(op.c_str(), nullptr, 0, &count) != BNB_STATUS_SUCCESS) throw py::value_error(bnb_last_error());
    std::vector<int64_t> values(static_cast<size_t>(count));
    if (bnb_op_blocksizes(op.c_str(), values.data(), count, &count) != BNB_STATUS_SUCCESS) {
        throw std::runtime_error(bnb_last_error());
    }
    return values;
}

bnb_device_type device_type(const std::string& backend) {
    for (int type = 0; type < BNB_DEVICE_TYPE_COUNT; ++type) {
        if (backend == bnb_backend_name(static_cast<bnb_device_type>(type))) return static_cast<bnb_device_type>(type);
    }
    throw py::value_error("unknown backend '" + backend + "'");
}

bool backend_supports(const std::string& backend, const std::string& op) {
    return bnb_backend_supports(device_type(backend), op.c_str()) != 0;
}

bool backend_any_blocksize(const std::string& backend, const std::string& op) {
    return bnb_backend_any_blocksize(device_type(backend), op.c_str()) != 0;
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
    m.def("ops", &ops, "Names of the native library's array ops, in C ABI order.");
    m.def("blocksizes", &blocksizes, py::arg("op"), "Blocksizes that the native op accepts, increasing.");
    m.def(
        "any_blocksize", [](const std::string& op) { return bnb_op_any_blocksize(op.c_str()) != 0; }, py::arg("op"),
        "Whether the op's format holds for blocks of any length (a backend whose kernels take them accepts "
        "every positive blocksize).");
    m.def("backend_any_blocksize", &backend_any_blocksize, py::arg("backend"), py::arg("op"),
          "Whether the backend (cpu, cuda, hip, metal) accepts every positive blocksize for the op.");
    m.def("nested_blocksize", &bnb_nested_blocksize, "Blocksize of nested (double) quantization of absmax.");
    m.def("backend_supports", &backend_supports, py::arg("backend"), py::arg("op"),
          "Whether the backend (cpu, cuda, hip, metal) is built and implements the op.");
}
