"""Parameter text shared by several public functions, written once (after scanpy's ``_doc_params``).

A docstring names a block by a placeholder on a line of its own; :func:`doc_params` fills it in at the
placeholder's indentation::

    @doc_params(doc_adata=doc_adata, doc_copy=doc_copy)
    def qc(adata: AnnData, *, copy: bool = False) -> AnnData | None:
        \"\"\"Flag low-quality cells.

        Parameters
        ----------
        {doc_adata}
        {doc_copy}
        ...
        \"\"\"

Blocks are numpydoc entries written at column 0. Other braces in a docstring (``obs['{key_added}_x']``)
are left alone: only the placeholders named in the call are replaced, and each must be present.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

_F = TypeVar("_F", bound=Callable)

# --- the patient's AnnData (pp, tl) ---------------------------------------------------------------------

doc_adata = """\
adata
    The cells of one patient, its samples concatenated (``obs['sample']``, ``obs['timepoint']``; see
    ``docs/architecture.md#anndata-keys``), raw counts in ``layers[layer]``."""

doc_layer = """\
layer
    Layer with the raw integer UMI counts (``X`` when the data have no such layer)."""

doc_antigen = """\
antigen
    Gene symbol of the CAR target (``CD7`` by default; CD5, CD19, CD22 … work the same way)."""

doc_batch_key = """\
batch_key
    obs column naming the sample each cell comes from."""

doc_seed = """\
seed
    Seed of every random step: the same seed gives the same result."""

doc_copy = """\
copy
    Return a modified copy instead of writing into ``adata``."""

doc_key_added = """\
key_added
    Name of what the step adds: its record ``uns['cd7escape'][key_added]`` (parameters and results) and
    the obs columns named after it (listed under Returns), so that a second run with another antigen or
    other settings does not overwrite the first."""

# --- returns ---------------------------------------------------------------------------------------------

doc_returns_copy = """\
The modified copy when ``copy=True``, else ``None`` (``adata`` is changed in place)."""

# --- plots (pl) ------------------------------------------------------------------------------------------

doc_show_save_ax = """\
ax
    Matplotlib axes to draw into; a new figure is made when ``None``.
show
    Show the figure (``plt.show()``); by default only on an interactive backend and when neither
    ``save`` nor ``return_fig`` is given.
save
    Write the figure to this path (format from the suffix, e.g. ``.png``, ``.pdf``).
return_fig
    Return the :class:`~matplotlib.figure.Figure` instead of the axes."""

doc_returns_plot = """\
The :class:`~matplotlib.figure.Figure` with ``return_fig=True``; otherwise the axes when the figure is
not shown, ``None`` when it is."""

_PLACEHOLDER = r"^(?P<indent>[ \t]*)\{{{name}\}}[ \t]*$"


def doc_params(**blocks: str) -> Callable[[_F], _F]:
    """Fill the placeholders ``{name}`` of a docstring with shared text blocks.

    Parameters
    ----------
    **blocks
        ``name=text``: each placeholder ``{name}``, alone on its line, is replaced by ``text`` with every
        line indented as the placeholder was.

    Returns
    -------
    A decorator that rewrites ``__doc__`` and returns the function itself.
    """

    def decorate(fn: _F) -> _F:
        doc = fn.__doc__
        if doc is None:  # python -OO strips docstrings
            return fn
        for name, text in blocks.items():
            pattern = re.compile(_PLACEHOLDER.format(name=re.escape(name)), re.MULTILINE)
            if not pattern.search(doc):
                raise ValueError(
                    f"{fn.__qualname__}: no placeholder {{{name}}} on a line of its own"
                )
            doc = pattern.sub(lambda m, t=text: _indent(t, m.group("indent")), doc)
        fn.__doc__ = doc
        return fn

    return decorate


def _indent(text: str, indent: str) -> str:
    return "\n".join(indent + line if line else line for line in text.splitlines())
