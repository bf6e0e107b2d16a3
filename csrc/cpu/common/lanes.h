// Which lanes of a kernel step hold elements, for the vector layers'
// loads and stores: a whole step, or the first `count` elements of the last
// step of a block.
#pragma once

#include <cstdint>

namespace bnb::cpu {

struct Full {
    // The lanes of a vector `lanes` elements into the step.
    constexpr Full skip(int64_t) const { return {}; }
};

struct Partial {
    int64_t count;  // fewer than the step's elements; may exceed one vector's lanes

    constexpr Partial skip(int64_t lanes) const { return {count > lanes ? count - lanes : 0}; }
};

// Whether lane `k` of a step holds an element.
constexpr bool has_lane(Full, int64_t) { return true; }
constexpr bool has_lane(Partial lanes, int64_t k) { return k < lanes.count; }

}  // namespace bnb::cpu
