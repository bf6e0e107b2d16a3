#include "golden.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace bnb_test {
namespace {

std::string configured_golden_dir() {
    if (const char* from_env = std::getenv("BNB_GOLDEN_DIR"); from_env != nullptr && *from_env != '\0') {
        return from_env;
    }
#ifdef BNB_GOLDEN_DIR
    return BNB_GOLDEN_DIR;
#else
    return "";
#endif
}

bool file_exists(const std::string& path) { return std::ifstream(path).good(); }

std::string read_text(const std::string& path) {
    std::ifstream stream(path, std::ios::binary);
    if (!stream) throw std::runtime_error("cannot open " + path);
    return std::string((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
}

const JsonValue& manifest() {
    static const JsonValue parsed = [] {
        const auto dir = golden_dir();
        if (!dir) throw std::runtime_error(golden_missing_reason());
        return parse_json(read_text(*dir + "/golden_manifest.json"));
    }();
    return parsed;
}

}  // namespace

std::optional<std::string> golden_dir() {
    const std::string dir = configured_golden_dir();
    if (dir.empty() || !file_exists(dir + "/golden_manifest.json")) return std::nullopt;
    return dir;
}

std::string golden_missing_reason() {
    const std::string dir = configured_golden_dir();
    if (dir.empty()) return "no golden data: set BNB_GOLDEN_DIR to the folder of golden_manifest.json";
    return "no golden data: " + dir + "/golden_manifest.json not found (set BNB_GOLDEN_DIR)";
}

const TensorView& GoldenCase::tensor(const std::string& role) const {
    const auto key = tensors.find(role);
    if (key == tensors.end()) throw std::runtime_error("case " + name + " has no tensor role '" + role + "'");
    return golden_file(group).tensor(key->second);
}

bool GoldenCase::arg_bool(const std::string& key) const {
    const JsonValue& value = args.at(key);
    if (value.kind != JsonValue::Kind::Bool) throw std::runtime_error("case " + name + ": " + key + " is not a bool");
    return value.boolean;
}

std::vector<GoldenCase> golden_cases(const std::string& group) {
    std::vector<GoldenCase> cases;
    if (!golden_dir()) return cases;
    const JsonValue* entries = manifest().at("groups").find(group);
    if (entries == nullptr) return cases;
    for (const JsonValue& entry : entries->array) {
        GoldenCase golden_case;
        golden_case.group = group;
        golden_case.name = entry.at("case").as_string();
        golden_case.args = entry.at("args");
        for (const auto& [role, key] : entry.at("tensors").members) golden_case.tensors[role] = key.as_string();
        cases.push_back(std::move(golden_case));
    }
    return cases;
}

const SafetensorsFile& golden_file(const std::string& group) {
    static std::mutex mutex;
    static std::map<std::string, std::unique_ptr<SafetensorsFile>> loaded;
    const std::lock_guard<std::mutex> lock(mutex);
    auto& slot = loaded[group];
    if (!slot) {
        const auto dir = golden_dir();
        if (!dir) throw std::runtime_error(golden_missing_reason());
        slot = std::make_unique<SafetensorsFile>(SafetensorsFile::load(*dir + "/golden_" + group + ".safetensors"));
    }
    return *slot;
}

bnb_dtype dtype_from_manifest(const std::string& name) {
    if (name == "fp32") return BNB_DTYPE_FLOAT32;
    if (name == "fp16") return BNB_DTYPE_FLOAT16;
    if (name == "bf16") return BNB_DTYPE_BFLOAT16;
    throw std::runtime_error("unknown manifest dtype '" + name + "'");
}

bnb_dtype dtype_from_safetensors(const std::string& name) {
    if (name == "F32") return BNB_DTYPE_FLOAT32;
    if (name == "F16") return BNB_DTYPE_FLOAT16;
    if (name == "BF16") return BNB_DTYPE_BFLOAT16;
    throw std::runtime_error("unknown floating safetensors dtype '" + name + "'");
}

}  // namespace bnb_test
