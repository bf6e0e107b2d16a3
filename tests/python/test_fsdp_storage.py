"""What FSDP does to a 4-bit weight, in one process: the tensor ops it applies to packed bytes stored
as bf16, the plain or DTensor parameter that stands in for a Params4bit, its state dict, and the
optimizers on DTensor shards. tests/distributed/ runs the same across processes."""

import pytest
import torch

import bitsandbytes as bnb
from bitsandbytes.nn import Linear4bit, Params4bit

dist = torch.distributed


def every_bf16_pattern_layer(device="cpu"):
    """A 512x512 NF4 layer in bf16 storage whose 65536 packed elements are every 16-bit pattern once."""
    torch.manual_seed(0)  # the same statistics on every call
    layer = Linear4bit(512, 512, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4",
                       quant_storage=torch.bfloat16).to(device)
    generator = torch.Generator().manual_seed(5)
    patterns = (torch.randperm(1 << 16, generator=generator) - (1 << 15)).to(torch.int16)
    layer.weight.data.view(torch.int16).view(-1).copy_(patterns)
    return layer


def same_bits(a, b):
    return a.dtype == b.dtype and torch.equal(a.contiguous().view(torch.int16), b.contiguous().view(torch.int16))


def test_fsdp_tensor_ops_keep_every_bf16_pattern():
    weight = every_bf16_pattern_layer().weight
    packed = weight.data.clone()
    chunks = torch.chunk(weight, 2)
    assert all(type(piece) is Params4bit and piece.quant_state is weight.quant_state for piece in chunks)
    results = {
        "chunk+cat": torch.cat(chunks),
        "split+cat": torch.cat(torch.split(weight, 1000)),
        "view": weight.view(-1).view(weight.shape),
        "narrow": torch.cat([weight.narrow(0, 0, 7), weight.narrow(0, 7, weight.shape[0] - 7)]),
        "copy_": torch.empty_like(packed).copy_(weight),
        "new_zeros+copy_": weight.new_zeros(weight.shape).copy_(weight),
        "as_strided": torch.as_strided(weight.detach().view(-1), weight.shape, (1, 1)),
        "clone": weight.clone(),
        "to(same dtype)": weight.to(torch.bfloat16),
        "rewrap": Params4bit(torch.nn.Parameter(weight.data), quant_storage=torch.bfloat16, bnb_quantized=True),
    }
    for name, result in results.items():
        assert same_bits(result, packed), name


def test_plain_stand_in_weight_recovers_state_and_refuses_converted_bytes():
    layer = every_bf16_pattern_layer()
    x = torch.randn(4, 512).to(torch.bfloat16)
    expected = layer(x)
    packed = layer.weight.data
    # What FSDP2 installs for the forward: a plain parameter over the all-gathered bytes.
    layer.weight = torch.nn.Parameter(packed.clone(), requires_grad=False)
    assert same_bits(layer(x), expected)
    assert type(layer.weight) is Params4bit and layer.weight.quant_state is layer.quant_state
    layer.weight = torch.nn.Parameter(packed.float(), requires_grad=False)
    with pytest.raises(RuntimeError, match="stored as torch.bfloat16 but arrived as torch.float32"):
        layer(x)


@pytest.fixture(scope="module")
def one_process_group(tmp_path_factory):
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    store = dist.FileStore(str(tmp_path_factory.mktemp("pg") / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    from torch.distributed.device_mesh import init_device_mesh

    yield init_device_mesh("cpu", (1,))
    dist.destroy_process_group()


def test_state_dict_of_a_weight_held_by_fsdp2(one_process_group):
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, set_model_state_dict
    from torch.distributed.fsdp import fully_shard

    reference = every_bf16_pattern_layer()
    expected = torch.nn.Sequential(reference).state_dict()
    model = torch.nn.Sequential(every_bf16_pattern_layer())
    fully_shard(model, mesh=one_process_group)
    assert not isinstance(model[0].weight, Params4bit)  # FSDP2's DTensor parameter
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))
    # Saving named the entries on FSDP's parameter (torch.distributed.checkpoint resolves keys by attribute).
    assert model[0].weight.quant_state is model[0].quant_state
    assert set(full) == set(expected)
    for key, value in expected.items():
        assert torch.equal(full[key].view(torch.uint8), value.view(torch.uint8)), key

    # Loading replaces the quant state and copies the bytes into FSDP's own parameter.
    other = torch.nn.Sequential(Linear4bit(512, 512, bias=False, compute_dtype=torch.bfloat16, quant_type="nf4",
                                           quant_storage=torch.bfloat16).to("cpu"))
    fully_shard(other, mesh=one_process_group)
    held = other[0].weight
    set_model_state_dict(other, full, options=StateDictOptions(full_state_dict=True))
    assert other[0].weight is held
    assert torch.equal(other[0].quant_state.absmax, reference.quant_state.absmax)
    x = torch.randn(4, 512).to(torch.bfloat16)
    assert same_bits(other(x), reference(x))


@pytest.mark.parametrize("optimizer_class", [bnb.optim.AdamW8bit, bnb.optim.PagedAdamW8bit, bnb.optim.AdamW,
                                             bnb.optim.AdEMAMix8bit, bnb.optim.Lion8bit])
def test_optimizers_update_dtensor_shards_as_plain_tensors(one_process_group, optimizer_class):
    from torch.distributed.tensor import Shard, distribute_tensor

    generator = torch.Generator().manual_seed(3)
    values = [torch.randn(300, 16, generator=generator), torch.randn(8, 5, generator=generator)]
    grads = [torch.randn(v.shape, generator=generator) for v in values]
    plain = [torch.nn.Parameter(v.clone()) for v in values]
    sharded = [torch.nn.Parameter(distribute_tensor(v.clone(), one_process_group, [Shard(0)])) for v in values]
    plain_optimizer = optimizer_class(plain, lr=1e-2, min_8bit_size=256)
    sharded_optimizer = optimizer_class(sharded, lr=1e-2, min_8bit_size=256)
    for _ in range(3):
        for p, s, g in zip(plain, sharded, grads):
            p.grad = g.clone()
            s.grad = distribute_tensor(g.clone(), one_process_group, [Shard(0)])
        plain_optimizer.step()
        sharded_optimizer.step()
    for p, s in zip(plain, sharded):
        assert torch.equal(s.full_tensor(), p.detach())
        state = sharded_optimizer.state[s]["state1"]
        assert not hasattr(state, "device_mesh") and state.shape[-2:] == p.shape


def test_update_norm_clipping_refuses_dtensor_shards(one_process_group):
    from torch.distributed.tensor import Shard, distribute_tensor

    param = torch.nn.Parameter(distribute_tensor(torch.randn(64, 4), one_process_group, [Shard(0)]))
    param.grad = distribute_tensor(torch.randn(64, 4), one_process_group, [Shard(0)])
    with pytest.raises(NotImplementedError, match="max_unorm.*sharded"):
        bnb.optim.LAMB([param], lr=1e-3).step()
