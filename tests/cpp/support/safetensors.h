// Reads a .safetensors file: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}}, then the raw tensor bytes.
// Every offset is checked against the file so that a corrupt file fails with a
// message instead of reading out of bounds.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace bnb_test {

struct TensorView {
    std::string dtype;  // safetensors spelling: "F32", "F16", "BF16", "U8", ...
    std::vector<int64_t> shape;
    const uint8_t* data = nullptr;
    size_t bytes = 0;

    int64_t numel() const;
};

// Bytes per element of a safetensors dtype; 0 for one this reader does not know.
size_t safetensors_itemsize(const std::string& dtype);

class SafetensorsFile {
public:
    // Views point into the owned bytes: moving keeps them valid, copying would not.
    SafetensorsFile(SafetensorsFile&&) = default;
    SafetensorsFile& operator=(SafetensorsFile&&) = default;
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    // Throws std::runtime_error naming the file and the problem.
    static SafetensorsFile load(const std::string& path);
    static SafetensorsFile parse(std::vector<uint8_t> bytes, const std::string& origin);

    bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
    // Throws when the file has no tensor `name`.
    const TensorView& tensor(const std::string& name) const;
    const std::map<std::string, TensorView>& tensors() const { return tensors_; }

private:
    SafetensorsFile() = default;

    std::string origin_;
    std::vector<uint8_t> bytes_;
    std::map<std::string, TensorView> tensors_;
};

}  // namespace bnb_test
