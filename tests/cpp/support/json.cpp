#include "json.h"

#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace bnb_test {
namespace {

class Parser {
public:
    explicit Parser(std::string_view text) : text_(text) {}

    JsonValue parse_document() {
        JsonValue value = parse_value();
        skip_whitespace();
        if (pos_ != text_.size()) error("trailing characters after the JSON value");
        return value;
    }

private:
    [[noreturn]] void error(const std::string& what) const {
        throw std::runtime_error("JSON: " + what + " at offset " + std::to_string(pos_));
    }

    void skip_whitespace() {
        while (pos_ < text_.size() &&
               (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\r' || text_[pos_] == '\t')) {
            ++pos_;
        }
    }

    char peek() {
        skip_whitespace();
        if (pos_ >= text_.size()) error("unexpected end of input");
        return text_[pos_];
    }

    void expect(char c) {
        if (peek() != c) error(std::string("expected '") + c + "'");
        ++pos_;
    }

    bool consume_literal(std::string_view literal) {
        if (text_.substr(pos_, literal.size()) != literal) return false;
        pos_ += literal.size();
        return true;
    }

    JsonValue parse_value() {
        const char c = peek();
        JsonValue value;
        if (c == '{') {
            value.kind = JsonValue::Kind::Object;
            parse_object(value);
        } else if (c == '[') {
            value.kind = JsonValue::Kind::Array;
            parse_array(value);
        } else if (c == '"') {
            value.kind = JsonValue::Kind::String;
            value.string = parse_string();
        } else if (consume_literal("true")) {
            value.kind = JsonValue::Kind::Bool;
            value.boolean = true;
        } else if (consume_literal("false")) {
            value.kind = JsonValue::Kind::Bool;
        } else if (consume_literal("null")) {
            value.kind = JsonValue::Kind::Null;
        } else {
            value.kind = JsonValue::Kind::Number;
            value.number = parse_number();
        }
        return value;
    }

    void parse_object(JsonValue& object) {
        expect('{');
        if (peek() == '}') {
            ++pos_;
            return;
        }
        while (true) {
            if (peek() != '"') error("expected a member name");
            std::string key = parse_string();
            expect(':');
            object.members.push_back({std::move(key), parse_value()});
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            expect('}');
            return;
        }
    }

    void parse_array(JsonValue& array) {
        expect('[');
        if (peek() == ']') {
            ++pos_;
            return;
        }
        while (true) {
            array.array.push_back(parse_value());
            if (peek() == ',') {
                ++pos_;
                continue;
            }
            expect(']');
            return;
        }
    }

    static void append_utf8(std::string& out, unsigned code_point) {
        if (code_point < 0x80) {
            out += static_cast<char>(code_point);
        } else if (code_point < 0x800) {
            out += static_cast<char>(0xC0 | (code_point >> 6));
            out += static_cast<char>(0x80 | (code_point & 0x3F));
        } else if (code_point < 0x10000) {
            out += static_cast<char>(0xE0 | (code_point >> 12));
            out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code_point & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (code_point >> 18));
            out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (code_point & 0x3F));
        }
    }

    unsigned parse_hex4() {
        if (pos_ + 4 > text_.size()) error("truncated \\u escape");
        unsigned value = 0;
        for (int i = 0; i < 4; ++i) {
            const char c = text_[pos_++];
            value <<= 4;
            if (c >= '0' && c <= '9') value |= static_cast<unsigned>(c - '0');
            else if (c >= 'a' && c <= 'f') value |= static_cast<unsigned>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') value |= static_cast<unsigned>(c - 'A' + 10);
            else error("bad hex digit in \\u escape");
        }
        return value;
    }

    std::string parse_string() {
        expect('"');
        std::string out;
        while (true) {
            if (pos_ >= text_.size()) error("unterminated string");
            const char c = text_[pos_++];
            if (c == '"') return out;
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos_ >= text_.size()) error("unterminated escape");
            const char escaped = text_[pos_++];
            switch (escaped) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned code_point = parse_hex4();
                    // A UTF-16 surrogate pair spells one code point above U+FFFF.
                    if (code_point >= 0xD800 && code_point < 0xDC00 &&
                        text_.substr(pos_, 2) == "\\u") {
                        pos_ += 2;
                        const unsigned low = parse_hex4();
                        code_point = 0x10000 + ((code_point - 0xD800) << 10) + (low - 0xDC00);
                    }
                    append_utf8(out, code_point);
                    break;
                }
                default: error("unknown escape");
            }
        }
    }

    double parse_number() {
        const size_t start = pos_;
        while (pos_ < text_.size()) {
            const char c = text_[pos_];
            if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E') {
                ++pos_;
            } else {
                break;
            }
        }
        if (start == pos_) error("expected a value");
        const std::string digits(text_.substr(start, pos_ - start));
        char* end = nullptr;
        const double value = std::strtod(digits.c_str(), &end);
        if (end != digits.c_str() + digits.size()) error("malformed number '" + digits + "'");
        return value;
    }

    std::string_view text_;
    size_t pos_ = 0;
};

}  // namespace

const JsonValue* JsonValue::find(std::string_view key) const {
    if (kind != Kind::Object) return nullptr;
    for (const auto& member : members) {
        if (member.first == key) return &member.second;
    }
    return nullptr;
}

const JsonValue& JsonValue::at(std::string_view key) const {
    const JsonValue* value = find(key);
    if (value == nullptr) throw std::runtime_error("JSON: no member '" + std::string(key) + "'");
    return *value;
}

const std::string& JsonValue::as_string() const {
    if (kind != Kind::String) throw std::runtime_error("JSON: value is not a string");
    return string;
}

long long JsonValue::as_integer() const {
    if (kind != Kind::Number || std::floor(number) != number) {
        throw std::runtime_error("JSON: value is not an integer");
    }
    return static_cast<long long>(number);
}

JsonValue parse_json(std::string_view text) { return Parser(text).parse_document(); }

}  // namespace bnb_test
