// Access to the golden vectors of upstream bitsandbytes (shared/golden): the
// manifest's cases and their tensors. The folder is BNB_GOLDEN_DIR from the
// environment, else the BNB_GOLDEN_DIR the build compiled in.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "bitsandbytes/bitsandbytes.h"
#include "json.h"
#include "safetensors.h"

namespace bnb_test {

// The golden folder if it holds golden_manifest.json, else nullopt.
std::optional<std::string> golden_dir();

// Why golden tests skip on this machine (names the folder that was searched).
std::string golden_missing_reason();

struct GoldenCase {
    std::string group;
    std::string name;
    JsonValue args;
    std::map<std::string, std::string> tensors;  // role -> key in golden_<group>.safetensors

    bool has(const std::string& role) const { return tensors.count(role) != 0; }
    // The tensor of `role`; throws when the case or the file lacks it.
    const TensorView& tensor(const std::string& role) const;
    std::string arg_string(const std::string& key) const { return args.at(key).as_string(); }
    int64_t arg_integer(const std::string& key) const { return args.at(key).as_integer(); }
    bool arg_bool(const std::string& key) const;
};

// GoogleTest prints a parameter with this instead of its bytes.
inline void PrintTo(const GoldenCase& golden_case, std::ostream* os) { *os << golden_case.group << "/" << golden_case.name; }

// The cases of one manifest group, in manifest order; empty without golden data.
// Throws when the manifest exists but cannot be read.
std::vector<GoldenCase> golden_cases(const std::string& group);

// golden_<group>.safetensors, loaded once per process.
const SafetensorsFile& golden_file(const std::string& group);

// Manifest spellings ("fp32", "fp16", "bf16") and safetensors spellings ("F32",
// "F16", "BF16") of a floating dtype; throws for any other.
bnb_dtype dtype_from_manifest(const std::string& name);
bnb_dtype dtype_from_safetensors(const std::string& name);

}  // namespace bnb_test
