#include "safetensors.h"

#include <fstream>
#include <iterator>
#include <stdexcept>

#include "json.h"

namespace bnb_test {

int64_t TensorView::numel() const {
    int64_t count = 1;
    for (int64_t extent : shape) count *= extent;
    return count;
}

size_t safetensors_itemsize(const std::string& dtype) {
    if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
    if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
    if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
    if (dtype == "U8" || dtype == "I8" || dtype == "BOOL") return 1;
    return 0;
}

SafetensorsFile SafetensorsFile::load(const std::string& path) {
    std::ifstream stream(path, std::ios::binary);
    if (!stream) throw std::runtime_error("cannot open " + path);
    std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
    return parse(std::move(bytes), path);
}

SafetensorsFile SafetensorsFile::parse(std::vector<uint8_t> bytes, const std::string& origin) {
    auto fail = [&](const std::string& what) -> std::runtime_error {
        return std::runtime_error(origin + ": " + what);
    };
    if (bytes.size() < 8) throw fail("shorter than the 8-byte header length");
    uint64_t header_length = 0;
    for (int i = 7; i >= 0; --i) header_length = (header_length << 8) | bytes[static_cast<size_t>(i)];
    if (header_length > bytes.size() - 8) throw fail("header length runs past the end of the file");

    SafetensorsFile file;
    file.origin_ = origin;
    const std::string_view header(reinterpret_cast<const char*>(bytes.data()) + 8, header_length);
    const JsonValue root = parse_json(header);
    if (!root.is_object()) throw fail("header is not a JSON object");

    const size_t data_start = 8 + header_length;
    const size_t data_size = bytes.size() - data_start;
    for (const auto& [name, entry] : root.members) {
        if (name == "__metadata__") continue;
        TensorView view;
        view.dtype = entry.at("dtype").as_string();
        for (const JsonValue& extent : entry.at("shape").array) view.shape.push_back(extent.as_integer());
        const JsonValue& offsets = entry.at("data_offsets");
        if (offsets.array.size() != 2) throw fail(name + ": data_offsets must hold 2 numbers");
        const long long begin = offsets.array[0].as_integer();
        const long long end = offsets.array[1].as_integer();
        if (begin < 0 || end < begin || static_cast<size_t>(end) > data_size) {
            throw fail(name + ": data_offsets lie outside the data section");
        }
        const size_t itemsize = safetensors_itemsize(view.dtype);
        view.bytes = static_cast<size_t>(end - begin);
        if (itemsize == 0 || view.bytes != static_cast<size_t>(view.numel()) * itemsize) {
            throw fail(name + ": " + std::to_string(view.bytes) + " bytes do not fit dtype " + view.dtype +
                       " and its shape");
        }
        file.tensors_.emplace(name, std::move(view));
    }
    // Pointers into bytes_ are set once the vector has its final home.
    file.bytes_ = std::move(bytes);
    for (const auto& [name, entry] : root.members) {
        if (name == "__metadata__") continue;
        const size_t begin = static_cast<size_t>(entry.at("data_offsets").array[0].as_integer());
        file.tensors_.at(name).data = file.bytes_.data() + data_start + begin;
    }
    return file;
}

const TensorView& SafetensorsFile::tensor(const std::string& name) const {
    const auto found = tensors_.find(name);
    if (found == tensors_.end()) throw std::runtime_error(origin_ + ": no tensor '" + name + "'");
    return found->second;
}

}  // namespace bnb_test
