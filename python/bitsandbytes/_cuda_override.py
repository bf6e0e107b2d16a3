"""BNB_CUDA_VERSION / BNB_ROCM_VERSION: upstream's switch between its per-CUDA-version libraries.

Upstream ships one native library per CUDA (ROCm) version and lets these variables
pick one. This package has a single libbitsandbytes with the GPU backend built in,
so there is nothing to switch: a valid value is reported and ignored, a malformed
one is the error upstream raises. Only a CUDA or ROCm build of torch reads them,
as upstream.
"""

import logging
import os
from typing import Optional

import torch

logger = logging.getLogger("bitsandbytes.cextension")


def library_variable() -> str:
    """The variable upstream's library lookup reads, whatever torch was built for."""
    return "BNB_ROCM_VERSION" if torch.version.hip else "BNB_CUDA_VERSION"


def override_variable() -> Optional[str]:
    """The variable a GPU torch build consults at import (None for a CPU-only torch)."""
    return library_variable() if torch.version.hip or torch.version.cuda else None


def read_override(variable: Optional[str] = None) -> Optional[tuple[str, str]]:
    """(variable, value) when set; RuntimeError for a value that is not all digits, as upstream.

    `variable` defaults to the one a GPU torch build consults at import (none on a CPU build).
    """
    variable = variable or override_variable()
    value = os.environ.get(variable) if variable else None
    if value is None:
        return None
    if not value.isdigit():
        raise RuntimeError(f"{variable}={value!r}: value must be digits only (e.g. '124' for 12.4).")
    return variable, value


def override_message(variable: str, value: str) -> str:
    # The first words are upstream's, which users and log filters match on.
    return (
        f"WARNING: {variable}={value} environment variable detected; this bitsandbytes has a single native "
        "library (libbitsandbytes, GPU backend built in), so the override selects nothing.\n"
        f"If this was unintended clear the variable and retry: unset {variable}\n"
    )


def log_override() -> None:
    """At import: a log record for a set variable, never an exception (upstream's import survives it too)."""
    try:
        override = read_override()
    except RuntimeError as error:
        logger.error("%s", error)
        return
    if override is not None:
        logger.warning("%s", override_message(*override))
