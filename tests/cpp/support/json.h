// A small JSON reader for test data: the golden manifest and safetensors headers.
// Enough of RFC 8259 for those files (objects, arrays, strings with escapes,
// numbers, literals); it throws std::runtime_error naming the offset of bad input.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bnb_test {

struct JsonMember;

struct JsonValue {
    enum class Kind { Null, Bool, Number, String, Array, Object };

    Kind kind = Kind::Null;
    bool boolean = false;
    double number = 0.0;
    std::string string;
    std::vector<JsonValue> array;
    // Members in file order (the manifest's order is the order tests run in).
    // (A struct rather than std::pair: clang cannot instantiate a pair of this
    // still-incomplete type.)
    std::vector<JsonMember> members;

    bool is_object() const { return kind == Kind::Object; }
    // The member `key`, or nullptr when this is not an object or lacks it.
    const JsonValue* find(std::string_view key) const;
    // The member `key`; throws when absent.
    const JsonValue& at(std::string_view key) const;
    // The value as a string / integer; throws when it is of another kind.
    const std::string& as_string() const;
    long long as_integer() const;
};

struct JsonMember {
    std::string first;
    JsonValue second;
};

JsonValue parse_json(std::string_view text);

}  // namespace bnb_test
