"""Every name of the contract's signature index exists with upstream's signature.

The index (shared/contract/python_api.md, Appendix A) lists, per upstream module,
its functions, classes, class attributes, methods and constants as declared in
upstream's source. Each entry is parsed back into a ``def`` with ``ast`` and
compared with ``inspect.signature`` of our object: parameter names, order, kinds
and defaults (defaults are evaluated in our module's namespace and must be equal
and of the same type, so ``weight_decay=0`` is not ``0.0``). Decorators that
change how a name is called (classmethod, staticmethod, property, deprecated) are
checked too; constants must have upstream's value.
"""

import ast
import dataclasses
import importlib
import inspect
import logging
import re
from typing import NamedTuple, Optional

import pytest
import torch
from conftest import REPO_ROOT

import bitsandbytes  # noqa: F401

CONTRACT = REPO_ROOT.parent / "shared" / "contract" / "python_api.md"

# Values that describe the machine (or the release) rather than the API: only their
# type is compared. __version__ is "0.50.2.dev0" in upstream's checkout and the
# released version here (python_api.md section 1).
MACHINE_DEPENDENT_CONSTANTS = {
    ("bitsandbytes", "__version__"): str,
    ("bitsandbytes.cextension", "ROCM_GPU_ARCH"): str,
    ("bitsandbytes.cextension", "HIP_ENVIRONMENT"): bool,
    ("bitsandbytes.cextension", "BNB_BACKEND"): str,
}

# Caches that start as declared and fill up as the process runs: only their type is compared.
RUNTIME_CACHES = {("bitsandbytes.functional", "name2qmap"): dict}

# Decorators that do not change how a name is called; the signature check covers them.
TRANSPARENT_DECORATORS = {"@torch.no_grad"}


class Entry(NamedTuple):
    module: str
    owner: Optional[str]  # the class for a class member, None at module level
    kind: str  # "def", "class", "attr" (class attribute or dataclass field), "const"
    name: str
    text: str  # the declaration as written in the index
    decorator: Optional[str]

    @property
    def id(self) -> str:
        return ".".join(part for part in (self.module, self.owner, self.name) if part)


ENTRY_LINE = re.compile(r"^(?P<indent>\s*)- (?:(?P<decorator>@[\w.]+) )?(?:(?P<kind>class|attr|field) )?`(?P<text>.*)`?$")


def _module_name(path: str) -> str:
    module = path.removesuffix(".py").replace("/", ".")
    return module.removesuffix(".__init__")


def parse_index(markdown: str) -> list[Entry]:
    entries = []
    in_index = False
    module = owner = None
    for line in markdown.splitlines():
        if line.startswith("## Appendix A"):
            in_index = True
            continue
        if not in_index:
            continue
        if line.startswith("## "):
            break
        heading = re.match(r"^### `(bitsandbytes/[\w/]+\.py)`", line)
        if heading:
            module, owner = _module_name(heading.group(1)), None
            continue
        match = ENTRY_LINE.match(line)
        if match is None or module is None:
            continue
        text = match["text"].rstrip("`")
        nested = bool(match["indent"])
        if match["kind"] == "class":
            owner = text.split("(", 1)[0]
            entries.append(Entry(module, None, "class", owner, text, match["decorator"]))
            continue
        if not nested:
            owner = None
        if match["kind"] in ("attr", "field"):
            name = re.split(r"\s*=\s*", text, maxsplit=1)[0]
            entries.append(Entry(module, owner, "attr", name, text, match["decorator"]))
        elif re.match(r"^[\w]+\s*=", text):
            entries.append(Entry(module, owner, "const", text.split("=", 1)[0].strip(), text, match["decorator"]))
        else:
            entries.append(Entry(module, owner, "def", text.split("(", 1)[0], text, match["decorator"]))
    return entries


ENTRIES = parse_index(CONTRACT.read_text()) if CONTRACT.is_file() else []
needs_contract = pytest.mark.skipif(not CONTRACT.is_file(), reason=f"contract file {CONTRACT} is absent")


def _params(entries, kind):
    selected = [entry for entry in entries if entry.kind in kind]
    return [pytest.param(entry, id=entry.id) for entry in selected] or [
        pytest.param(None, marks=pytest.mark.skip(reason=f"contract file {CONTRACT} is absent"))
    ]


def _namespace(entry: Entry) -> dict:
    module = importlib.import_module(entry.module)
    namespace = {"torch": torch, "logging": logging, "__name__": entry.module}
    namespace.update(vars(module))
    if entry.owner is not None:
        namespace.update(vars(getattr(module, entry.owner)))
    return namespace


def _owner(entry: Entry):
    module = importlib.import_module(entry.module)
    assert hasattr(module, entry.owner or entry.name), f"{entry.module} has no {entry.owner or entry.name}"
    return getattr(module, entry.owner) if entry.owner else module


def _expected_value(entry: Entry):
    """The declared value, evaluated in our namespace; a truncated list gives its known prefix."""
    expression = re.split(r"\s*=\s*", entry.text, maxsplit=1)[1]
    truncated = expression.endswith("...")
    if truncated:
        expression = expression.removesuffix("...").rstrip().rstrip(",") + "]"
    return eval(expression, _namespace(entry)), truncated  # noqa: S307 (the contract's own text)


def _same_value(actual, expected) -> bool:
    if type(actual) is not type(expected):
        return False
    if isinstance(actual, torch.Tensor):
        return torch.equal(actual, expected)
    if isinstance(actual, (tuple, list)):
        return len(actual) == len(expected) and all(map(_same_value, actual, expected))
    return actual is expected or actual == expected


def _declared_signature(entry: Entry) -> list[tuple[str, inspect._ParameterKind, object]]:
    function = ast.parse(f"def {entry.text}: pass").body[0]
    arguments = function.args
    namespace = _namespace(entry)

    def default(node):
        return inspect.Parameter.empty if node is None else eval(ast.unparse(node), namespace)  # noqa: S307

    positional = arguments.posonlyargs + arguments.args
    positional_defaults = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    declared = []
    for index, (argument, value) in enumerate(zip(positional, positional_defaults)):
        kind = (inspect.Parameter.POSITIONAL_ONLY if index < len(arguments.posonlyargs)
                else inspect.Parameter.POSITIONAL_OR_KEYWORD)
        declared.append((argument.arg, kind, default(value)))
    if arguments.vararg:
        declared.append((arguments.vararg.arg, inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.empty))
    for argument, value in zip(arguments.kwonlyargs, arguments.kw_defaults):
        declared.append((argument.arg, inspect.Parameter.KEYWORD_ONLY, default(value)))
    if arguments.kwarg:
        declared.append((arguments.kwarg.arg, inspect.Parameter.VAR_KEYWORD, inspect.Parameter.empty))
    return declared


def _unwrapped_callable(entry: Entry):
    """The plain function behind the entry (self/cls included), after checking its decorator."""
    owner = _owner(entry)
    assert hasattr(owner, entry.name), f"{entry.id} is missing"
    raw = inspect.getattr_static(owner, entry.name)
    decorator = entry.decorator
    if decorator == "@classmethod":
        assert isinstance(raw, classmethod), f"{entry.id} must be a classmethod"
        return raw.__func__
    if decorator == "@staticmethod" or entry.name == "__new__":
        assert isinstance(raw, staticmethod), f"{entry.id} must be a staticmethod"
        return raw.__func__
    if decorator == "@property":
        assert isinstance(raw, property), f"{entry.id} must be a property"
        return raw.fget
    if decorator == "@deprecated":
        assert getattr(raw, "__deprecated__", None), f"{entry.id} must be marked deprecated (FutureWarning)"
        return raw
    assert decorator is None or decorator in TRANSPARENT_DECORATORS, f"unexpected decorator {decorator}"
    assert not isinstance(raw, (classmethod, staticmethod, property)), f"{entry.id} must be a plain function"
    return raw


@needs_contract
def test_index_parses_into_every_module_of_the_appendix():
    modules = {entry.module for entry in ENTRIES}
    assert {"bitsandbytes", "bitsandbytes.functional", "bitsandbytes.nn.parametrize", "bitsandbytes.utils",
            "bitsandbytes.cextension", "bitsandbytes.optim.adagrad"} <= modules
    assert len(ENTRIES) > 300
    # One entry of each shape, as the parser must read it.
    by_id = {entry.id: entry for entry in ENTRIES}
    assert by_id["bitsandbytes.functional.get_paged"].text == (
        'get_paged(*shape, dtype=torch.float32, device=FIRST_CUDA_DEVICE)')
    assert by_id["bitsandbytes.nn.modules.Params4bit.absmax"].decorator == "@property"
    assert by_id["bitsandbytes.autograd._functions.MatmulLtState.CB"].kind == "attr"
    assert by_id["bitsandbytes.cextension.BNB_BACKEND"].kind == "const"


@needs_contract
@pytest.mark.parametrize("entry", _params(ENTRIES, {"class"}))
def test_class_exists_with_upstream_bases(entry):
    module = importlib.import_module(entry.module)
    assert hasattr(module, entry.name), f"{entry.id} is missing"
    cls = getattr(module, entry.name)
    assert inspect.isclass(cls), f"{entry.id} is not a class"
    bases = entry.text[len(entry.name):].strip("()")
    for base in filter(None, (b.strip() for b in bases.split(","))):
        expected = eval(base, {"torch": torch, "nn": torch.nn, **vars(module)})  # noqa: S307
        assert issubclass(cls, expected), f"{entry.id} must derive from {base}"


@needs_contract
@pytest.mark.parametrize("entry", _params(ENTRIES, {"def"}))
def test_function_signature_matches_upstream(entry):
    function = _unwrapped_callable(entry)
    actual = [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]
    declared = _declared_signature(entry)
    actual_parameters = [(name, kind.name) for name, kind, _ in actual]
    declared_parameters = [(name, kind.name) for name, kind, _ in declared]
    assert actual_parameters == declared_parameters, f"{entry.id}: parameters differ from upstream's {entry.text}"
    for (name, _, actual_default), (_, _, declared_default) in zip(actual, declared):
        assert _same_value(actual_default, declared_default), (
            f"{entry.id}: default of {name} is {actual_default!r}, upstream's is {declared_default!r}")


@needs_contract
@pytest.mark.parametrize("entry", _params(ENTRIES, {"attr", "const"}))
def test_constant_or_attribute_has_upstream_value(entry):
    owner = _owner(entry)
    if "=" not in entry.text:
        # A declared field without a value (BNBNativeLibrary._lib): annotated on the class.
        assert entry.name in getattr(owner, "__annotations__", {}), f"{entry.id} must be declared"
        return
    if dataclasses.is_dataclass(owner) and entry.name in {f.name for f in dataclasses.fields(owner)}:
        actual = next(f.default for f in dataclasses.fields(owner) if f.name == entry.name)
    else:
        assert hasattr(owner, entry.name), f"{entry.id} is missing"
        actual = inspect.getattr_static(owner, entry.name)
    if entry.name == "_instance" and inspect.isclass(owner):
        # A singleton's slot: None until get_instance() first runs.
        assert actual is None or type(actual) is owner, f"{entry.id} must be None or the {owner.__name__} instance"
        return
    expected_type = (MACHINE_DEPENDENT_CONSTANTS | RUNTIME_CACHES).get((entry.module, entry.name))
    if expected_type is not None:
        assert isinstance(actual, expected_type), f"{entry.id} must be a {expected_type.__name__}"
        return
    expected, truncated = _expected_value(entry)
    if truncated:
        actual = type(actual)(actual[: len(expected)])
    assert _same_value(actual, expected), f"{entry.id} is {actual!r}, upstream's is {expected!r}"
