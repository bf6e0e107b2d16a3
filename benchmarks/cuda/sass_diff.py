"""Compares the machine code of the kernels in two cubins, kernel by kernel.

Used to check whether a refactoring changed what the GPU runs: names are compared
without their anonymous-namespace hash (which encodes the source file), instructions
as cuobjdump prints them. Needs cuobjdump and nvdisasm (the PyPI wheels
nvidia-cuda-cuobjdump and nvidia-cuda-nvdisasm provide them where the toolkit lacks them).

    nvcc -O3 -std=c++20 --generate-code=arch=compute_90,code=sm_90 --use_fast_math \\
        --expt-relaxed-constexpr -Iinclude -Isrc -Icsrc/cuda -cubin -o after.cubin csrc/cuda/gemm_4bit/select.cu
    python3 benchmarks/cuda/sass_diff.py before.cubin after.cubin
"""

import re
import subprocess
import sys


def kernels(cubin: str) -> dict[str, list[str]]:
    sass = subprocess.run(["cuobjdump", "-sass", cubin], check=True, capture_output=True, text=True).stdout
    found: dict[str, list[str]] = {}
    current = None
    for line in sass.splitlines():
        function = re.match(r"\s*Function : (\S+)", line)
        if function:
            # _GLOBAL__N__<hash>_<file>: the anonymous namespace, different per source file.
            name = re.sub(r"\d+_GLOBAL__N__\w+?_cu_\w{8}", "", function.group(1))
            current = re.sub(r"NS1_", "NS0_", name)
            found[current] = []
        elif current is not None:
            instruction = re.match(r"\s*/\*[0-9a-f]{4}\*/\s*(.*?);", line)
            if instruction:
                found[current].append(instruction.group(1))
    return found


def main() -> int:
    before, after = kernels(sys.argv[1]), kernels(sys.argv[2])
    identical = 0
    for name in sorted(set(before) | set(after)):
        if name not in before or name not in after:
            print(f"only in {'after' if name not in before else 'before'}: {name}")
        elif before[name] == after[name]:
            identical += 1
        else:
            changed = sum(x != y for x, y in zip(before[name], after[name])) + abs(len(before[name]) - len(after[name]))
            print(f"differs in {changed} of {len(before[name])} instructions: {name}")
    print(f"{identical} of {len(set(before) | set(after))} kernels identical")
    return 0 if identical == len(set(before) | set(after)) else 1


if __name__ == "__main__":
    sys.exit(main())
