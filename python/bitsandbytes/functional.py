"""The functional API of bitsandbytes (python_api.md section 2).

Codebooks, the QuantState that travels with a quantized tensor, blockwise 8-bit
and 4-bit (NF4/FP4) quantization, LLM.int8(), the optimizer updates and paged
memory. Numeric work goes through ``torch.ops.bitsandbytes.*`` only. This module
is the public face; the code lives in ``bitsandbytes._functional``, one module per
concern, and every name below is the object defined there.
"""

from ._formats import FLOAT_DTYPES, FOURBIT_QUANT_TYPES
from ._functional.blockwise import _denested_absmax, _nested_offset, dequantize_blockwise, quantize_blockwise
from ._functional.codebooks import (
    _build_dynamic_map,
    _torch_float32_linspace,
    create_dynamic_map,
    create_fp8_map,
    create_linear_map,
    create_normal_map,
    get_4bit_type,
    name2qmap,
)
from ._functional.cpu_packing import (
    _convert_weight_packed_for_cpu,
    _convert_weight_packed_for_cpu_inverse,
    has_avx512bf16,
)
from ._functional.devices import CUBLAS_Context, _get_tensor_stream, get_ptr, is_on_gpu
from ._functional.fourbit import (
    FOURBIT_BLOCKSIZES,
    NESTED_4BIT_BLOCKSIZE,
    dequantize_4bit,
    dequantize_fp4,
    dequantize_nf4,
    gemv_4bit,
    quantize_4bit,
    quantize_fp4,
    quantize_nf4,
)
from ._functional.int8 import (
    C,
    batched_igemm,
    check_matmul,
    igemm,
    int8_double_quant,
    int8_linear_matmul,
    int8_mm_dequant,
    int8_vectorwise_dequant,
    int8_vectorwise_quant,
)
from ._functional.optimizer import (
    optimizer_update_8bit_blockwise,
    optimizer_update_32bit,
    optimizer_update_multi_tensor,
)
from ._functional.paged import (
    FIRST_CUDA_DEVICE,
    GlobalPageManager,
    _mul,
    elementwise_func,
    fill,
    get_paged,
    prefetch_tensor,
)
from ._functional.quant_state import QuantState, QuantStateKeyError
from .backends.torch.common.cuda_reduction import cuda_mean_float32
from .utils import pack_dict_to_tensor, unpack_tensor_to_dict
