#pragma once

#include <cstddef>

namespace bnb::cpu {

// Asks the kernel to back the whole 2 MiB pages inside [data, data + bytes) with
// transparent huge pages before the kernels write there. Large outputs are
// usually fresh mappings (torch allocates them just before the call), and on
// this class of machine first-touch page faults on 4 KiB pages cost more than
// the quantization itself (about 4 GB/s against 20 GB/s with huge pages, see
// benchmarks/RESULTS.md). A hint only: no effect on results, errors ignored,
// a no-op below a few MiB and off Linux.
void advise_huge_pages(void* data, size_t bytes);

}  // namespace bnb::cpu
