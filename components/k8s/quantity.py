"""Kubernetes resource quantities (``500m``, ``4Gi``) as numbers: config validation and pod builders share one parse."""

from __future__ import annotations

import re

QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|Ki|Mi|Gi|Ti|k|M|G|T)?$")

_SUFFIXES = {"m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def quantity_value(text: str) -> float:
    """``"500m"`` -> 0.5, ``"4Gi"`` -> 4294967296.0 (a quantity already checked by ``_quantity``)."""
    match = QUANTITY.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity")
    suffix = match.group(2) or ""
    return float(text[: len(text) - len(suffix)]) * _SUFFIXES.get(suffix, 1)
