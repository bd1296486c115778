"""Checks that stored counts are raw UMI counts (no NaN, no negative or non-integer values)."""

from __future__ import annotations

import numpy as np

from .._errors import InputError, Problem


def count_problems(
    values: np.ndarray,
    *,
    file: str,
    sample: str | None = None,
    where: str = "X",
    check_integer: bool = True,
    full: bool = True,
) -> list[Problem]:
    """Problems with a vector of stored count values (the nonzero entries of a sparse matrix).

    NaN and negative values are looked for in all of ``values``; non-integer values too (``values`` is
    usually a sample when reading headers only: ``full=False`` only changes the wording).
    """
    problems: list[Problem] = []
    values = np.asarray(values)
    if values.size == 0:
        return problems
    if values.dtype.kind in "iu":
        if values.dtype.kind == "i" and values.min() < 0:
            problems.append(
                Problem(
                    f"negative counts in {where} (min {values.min()}); raw UMI counts are ≥ 0",
                    field="path",
                    file=file,
                    sample=sample,
                )
            )
        return problems
    if values.dtype.kind not in "fc":
        problems.append(
            Problem(
                f"{where} has non-numeric dtype {values.dtype}",
                field="path",
                file=file,
                sample=sample,
            )
        )
        return problems
    finite = values
    if np.isnan(values.min()):  # NaN propagates through min: one pass when there is none
        nan = np.isnan(values)
        problems.append(
            Problem(
                f"{int(nan.sum())} NaN values in {where}; raw UMI counts have none",
                field="path",
                file=file,
                sample=sample,
            )
        )
        finite = values[~nan]
    if finite.size and finite.min() < 0:
        problems.append(
            Problem(
                f"negative values in {where} (min {finite.min():.3g}): looks scaled/centred, not raw counts",
                field="path",
                file=file,
                sample=sample,
            )
        )
    if check_integer and finite.size:
        frac = np.abs(finite - np.round(finite)) > 1e-6
        if frac.any():
            example = finite[frac][:3]
            problems.append(
                Problem(
                    f"non-integer values in {where} ({100 * frac.mean():.0f}% of {'sampled ' if not full else ''}"
                    f"nonzero entries, e.g. {', '.join(f'{v:.3g}' for v in example)}): looks normalized or "
                    "log-transformed; cd7escape needs raw UMI counts (in X or layers['counts'])",
                    field="path",
                    file=file,
                    sample=sample,
                )
            )
    return problems


def sample_values(dataset, n: int = 200_000, *, seed: int = 0) -> np.ndarray:
    """A spread sample of a 1-d HDF5 dataset or array without reading it all (contiguous blocks)."""
    size = dataset.shape[0]
    if size <= n:
        return np.asarray(dataset[:])
    n_blocks = 20
    block = n // n_blocks
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.choice(size - block, n_blocks, replace=False))
    return np.concatenate([np.asarray(dataset[s : s + block]) for s in starts])


def scan_nan_negative(dataset, *, chunk: int = 20_000_000) -> tuple[int, float]:
    """(number of NaNs, minimum) of an HDF5 dataset (1-d, or 2-d by rows), streamed in chunks."""
    n_nan = 0
    minimum = np.inf
    size = dataset.shape[0]
    step = (
        chunk
        if len(dataset.shape) == 1
        else max(1, chunk // max(1, int(np.prod(dataset.shape[1:]))))
    )
    for start in range(0, size, step):
        part = np.asarray(dataset[start : start + step]).ravel()
        if part.dtype.kind in "fc":
            isnan = np.isnan(part)
            n_nan += int(isnan.sum())
            part = part[~isnan]
        if part.size:
            minimum = min(minimum, float(part.min()))
    return n_nan, minimum


def raise_if(problems: list[Problem]) -> None:
    """Raise :class:`~cd7escape._errors.InputError` listing ``problems``, when there are any."""
    if problems:
        raise InputError(problems)
