"""Every op schema equals upstream's (shared/contract/ops.md).

torch prints a parsed schema in a canonical form (``Tensor!`` becomes
``Tensor($0! -> )``, ``0.0`` becomes ``0.``), so the contract's lines go through
the same parser before the comparison; upstream's registrations print the same way.
"""

import re

import pytest
import torch
from conftest import REPO_ROOT

import bitsandbytes  # noqa: F401  (registers the ops)

CONTRACT = REPO_ROOT.parent / "shared" / "contract" / "ops.md"


def _contract_schemas() -> list[str]:
    if not CONTRACT.is_file():
        return []
    return [line.strip() for line in CONTRACT.read_text().splitlines() if line.startswith("bitsandbytes::")]


def _overload(schema: str):
    qualified = schema.split("(", 1)[0]  # bitsandbytes::name[.overload]
    name, _, overload = qualified.removeprefix("bitsandbytes::").partition(".")
    return getattr(getattr(torch.ops.bitsandbytes, name), overload or "default")


@pytest.mark.skipif(not CONTRACT.is_file(), reason=f"contract file {CONTRACT} is absent")
def test_contract_lists_all_19_overloads():
    assert len(_contract_schemas()) == 19


@pytest.mark.skipif(not CONTRACT.is_file(), reason=f"contract file {CONTRACT} is absent")
@pytest.mark.parametrize("schema", _contract_schemas() or [None], ids=lambda s: s and re.split(r"[(]", s)[0])
def test_registered_schema_matches_contract(schema):
    registered = _overload(schema)._schema
    expected = torch._C.parse_schema(schema)
    assert str(registered) == str(expected)
    assert registered == expected


@pytest.mark.skipif(not CONTRACT.is_file(), reason=f"contract file {CONTRACT} is absent")
@pytest.mark.parametrize("schema", _contract_schemas() or [None], ids=lambda s: s and re.split(r"[(]", s)[0])
def test_every_overload_has_a_fake_kernel(schema):
    """torch.compile needs a fake kernel for each op (registered by bitsandbytes._ops)."""
    qualified = schema.split("(", 1)[0].removeprefix("bitsandbytes::")
    assert torch._library.simple_registry.singleton.find(f"bitsandbytes::{qualified}").fake_impl.kernel is not None
