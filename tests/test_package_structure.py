"""The conventions every public function follows (after scanpy's ``tests/test_package_structure.py``).

A public function is one named in ``__all__`` of ``ce.pp``, ``ce.tl``, ``ce.pl``, ``ce.io``, ``ce.datasets``
or ``ce.report`` (classes such as ``tl.RelapseCall`` and constants such as ``datasets.MECHANISMS`` are not
functions). Each rule is one test per function:

``positional``
    At most two positional parameters (``adata`` and one more, e.g. ``tl.antigen_state(adata, 'CD7')``,
    ``pl.umap(adata, 'timepoint')``); every option after them is keyword-only.
``adata``
    A parameter named ``adata`` comes first and is annotated :class:`~anndata.AnnData` (the string
    ``'AnnData'`` under ``from __future__ import annotations``, with the import under ``TYPE_CHECKING``).
    Every ``pp`` and ``tl`` function takes one.
``returns``
    The return is annotated (``-> None`` when nothing comes back).
``copy``
    A ``pp`` or ``tl`` function taking ``adata`` writes into it, so it takes a keyword-only
    ``copy: bool = False`` and is annotated ``-> AnnData | None``: the new object with ``copy=True``,
    ``None`` otherwise.
``key_added``
    A ``tl`` function additionally takes a keyword-only ``key_added: str`` naming where its results go
    (``uns['cd7escape'][key_added]`` and/or the obs columns named after it), so that a step can be run
    twice (two antigens, two settings) without overwriting itself. ``pp`` functions write the standard
    keys that scanpy's own functions read (``X_pca``, ``leiden``, ``X_umap``, QC columns) and take none.
``docstring``
    A numpydoc docstring: a summary line, a ``Parameters`` section naming every parameter (several may
    share an entry: ``a, b``) and a ``Returns`` section; no shared-text placeholder (``{doc_...}``) left
    unfilled; no citation of the design file (``DESIGN §``), which users do not have: cite ``docs/``.

``EXEMPT`` lists the (function, rule) pairs that do not apply, each with the reason. ``PENDING`` lists the
known violations still to be fixed in their modules; each runs as a strict ``xfail``, so a fix makes the
test fail until its entry is removed here. Keep ``PENDING`` empty once they are.

Beside the functions: every ``docs/<page>.md#<anchor>`` cited in ``src/`` names an existing page and
heading, and no module of ``src/`` cites ``DESIGN §`` (``PENDING_DESIGN_CITATIONS`` lists the files still
doing so).
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest
from anndata import AnnData

import cd7escape

SRC = Path(cd7escape.__file__).parent
REPO = SRC.parents[1]
NAMESPACES = ("pp", "tl", "pl", "io", "datasets", "report")
WRITER_NAMESPACES = ("pp", "tl")

#: (function, rule) pairs that do not apply, with the reason.
EXEMPT: dict[tuple[str, str], str] = {
    ("tl.classify_relapse", "copy"): (
        "returns its decision as a RelapseCall (mechanism, confidence, reason, evidence) rather than "
        "the AnnData; it adds only uns['cd7escape']['classify']"
    ),
}

#: Known violations in modules other engineers are rewriting; each entry says what is missing.
#: A strict xfail: remove the entry once the function follows the rule.
PENDING: dict[tuple[str, str], str] = {
    # tl/_malignant/_call.py
    ("tl.call_malignant", "adata"): "adata not annotated AnnData",
    ("tl.call_malignant", "returns"): "no return annotation (-> AnnData | None)",
    ("tl.call_malignant", "copy"): "return not annotated AnnData | None",
}

#: Modules of src/ that still cite the design file (relative to src/cd7escape), to be pointed at docs/.
PENDING_DESIGN_CITATIONS: set[str] = {
    "tl/_malignant/_call.py",
}


def _public_functions() -> list[tuple[str, object]]:
    found = []
    for ns in NAMESPACES:
        mod = importlib.import_module(f"cd7escape.{ns}")
        for name in sorted(mod.__all__):
            obj = getattr(mod, name)
            if inspect.isfunction(obj):
                found.append((f"{ns}.{name}", obj))
    return found


FUNCTIONS = _public_functions()


def _positional(sig: inspect.Signature) -> list[inspect.Parameter]:
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p for p in sig.parameters.values() if p.kind in kinds]


def _is_anndata(annotation) -> bool:
    return annotation in ("AnnData", AnnData)


def _sections(doc: str) -> dict[str, list[str]]:
    """numpydoc sections of a cleaned docstring: {title: lines}; the summary part is under ''."""
    lines = doc.splitlines()
    sections: dict[str, list[str]] = {"": []}
    title = ""
    i = 0
    while i < len(lines):
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if (
            lines[i].strip()
            and set(nxt.strip()) == {"-"}
            and len(nxt.strip()) == len(lines[i].strip())
        ):
            title = lines[i].strip()
            sections[title] = []
            i += 2
            continue
        sections[title].append(lines[i])
        i += 1
    return sections


def _documented_parameters(lines: list[str]) -> set[str]:
    names: set[str] = set()
    for line in lines:
        if line and not line[0].isspace():
            entry = line.split(" : ")[0]
            names.update(n.strip().lstrip("*") for n in entry.split(","))
    return names


def check_positional(qualname, fn) -> list[str]:
    params = list(inspect.signature(fn).parameters.values())
    pos = _positional(inspect.signature(fn))
    problems = []
    if len(pos) > 2:
        problems.append(
            f"{len(pos)} positional parameters ({', '.join(p.name for p in pos)}); at most 2"
        )
    var = [p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL]
    if var:
        problems.append(f"*{var[0]} takes options positionally")
    return problems


def check_adata(qualname, fn) -> list[str]:
    params = list(inspect.signature(fn).parameters.values())
    names = [p.name for p in params]
    if "adata" not in names:
        if qualname.split(".")[0] in WRITER_NAMESPACES:
            return ["takes no adata (every pp and tl function does, first)"]
        return []
    problems = []
    if names[0] != "adata":
        problems.append("adata is not the first parameter")
    if not _is_anndata(params[names.index("adata")].annotation):
        problems.append(f"adata annotated {params[names.index('adata')].annotation!r}, not AnnData")
    return problems


def check_returns(qualname, fn) -> list[str]:
    if inspect.signature(fn).return_annotation is inspect.Signature.empty:
        return ["no return annotation"]
    return []


def check_copy(qualname, fn) -> list[str]:
    sig = inspect.signature(fn)
    copy = sig.parameters.get("copy")
    if copy is None:
        return ["no copy parameter"]
    problems = []
    if copy.kind is not inspect.Parameter.KEYWORD_ONLY:
        problems.append("copy is not keyword-only")
    if copy.default is not False:
        problems.append(f"copy defaults to {copy.default!r}, not False")
    if sig.return_annotation not in ("AnnData | None", "None | AnnData"):
        problems.append(f"returns {sig.return_annotation!r}, not 'AnnData | None'")
    return problems


def check_key_added(qualname, fn) -> list[str]:
    key = inspect.signature(fn).parameters.get("key_added")
    if key is None:
        return ["no key_added parameter"]
    problems = []
    if key.kind is not inspect.Parameter.KEYWORD_ONLY:
        problems.append("key_added is not keyword-only")
    if not isinstance(key.default, str):
        problems.append(f"key_added defaults to {key.default!r}, not a name")
    return problems


def check_docstring(qualname, fn) -> list[str]:
    doc = inspect.getdoc(fn)
    if not doc:
        return ["no docstring"]
    problems = []
    sections = _sections(doc)
    if not "".join(sections[""]).strip():
        problems.append("no summary line")
    params = list(inspect.signature(fn).parameters)
    if params:
        if "Parameters" not in sections:
            problems.append("no Parameters section")
        else:
            missing = [p for p in params if p not in _documented_parameters(sections["Parameters"])]
            if missing:
                problems.append(f"parameters not documented: {', '.join(missing)}")
    if "Returns" not in sections:
        problems.append("no Returns section")
    if re.search(r"\{doc_\w+\}", doc):
        problems.append("unfilled shared-text placeholder")
    if "DESIGN" in doc:
        problems.append("cites DESIGN (cite docs/ instead)")
    return problems


RULES = {
    "positional": (check_positional, NAMESPACES),
    "adata": (check_adata, NAMESPACES),
    "returns": (check_returns, NAMESPACES),
    "copy": (check_copy, WRITER_NAMESPACES),
    "key_added": (check_key_added, ("tl",)),
    "docstring": (check_docstring, NAMESPACES),
}


def _cases():
    for qualname, fn in FUNCTIONS:
        takes_adata = "adata" in inspect.signature(fn).parameters
        for rule, (_, namespaces) in RULES.items():
            if qualname.split(".")[0] not in namespaces:
                continue
            if rule in ("copy", "key_added") and not takes_adata:
                continue
            if (qualname, rule) in EXEMPT:
                continue
            marks = []
            if (qualname, rule) in PENDING:
                marks = [pytest.mark.xfail(strict=True, reason=PENDING[qualname, rule])]
            yield pytest.param(qualname, fn, rule, id=f"{qualname}-{rule}", marks=marks)


@pytest.mark.parametrize(("qualname", "fn", "rule"), list(_cases()))
def test_function_conventions(qualname, fn, rule):
    problems = RULES[rule][0](qualname, fn)
    assert not problems, f"{qualname} ({rule}): " + "; ".join(problems)


def test_namespaces_are_covered():
    """Every public namespace is checked and each has at least one function."""
    assert {q.split(".")[0] for q, _ in FUNCTIONS} == set(NAMESPACES)
    for ns in ("pp", "tl", "pl"):
        assert any(q.startswith(f"{ns}.") for q, _ in FUNCTIONS)


def test_exceptions_name_existing_functions_and_rules():
    names = {q for q, _ in FUNCTIONS}
    for qualname, rule in [*EXEMPT, *PENDING]:
        assert qualname in names, f"{qualname} is not a public function"
        assert rule in RULES, f"unknown rule {rule!r}"
    assert not set(EXEMPT) & set(PENDING)


def _slug(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    anchors = set()
    in_code = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (m := re.match(r"#+\s+(.*)", line)):
            anchors.add(_slug(m.group(1)))
    return anchors


def test_docs_citations_resolve():
    """``docs/<page>.md#<anchor>`` cited in src/ name an existing page and heading."""
    cited = set()
    for path in SRC.rglob("*.py"):
        cited.update(
            (path.relative_to(SRC).as_posix(), m.group(1), m.group(2))
            for m in re.finditer(r"docs/([\w\-]+\.md)(?:#([\w\-]+))?", path.read_text())
        )
    assert cited, "no docs/ citation found in src/"
    broken = []
    for module, page, anchor in sorted(cited, key=lambda c: (c[0], c[1], c[2] or "")):
        target = REPO / "docs" / page
        if not target.is_file():
            broken.append(f"{module}: docs/{page} does not exist")
        elif anchor and anchor not in _anchors(target):
            broken.append(f"{module}: docs/{page} has no heading #{anchor}")
    assert not broken, "\n".join(broken)


def test_no_design_citations():
    """src/ cites docs/ (shipped with the code), not the design file (which users do not have)."""
    citing = {
        path.relative_to(SRC).as_posix()
        for path in SRC.rglob("*.py")
        if "DESIGN §" in path.read_text()
    }
    assert citing <= PENDING_DESIGN_CITATIONS, (
        f"cite docs/ instead: {sorted(citing - PENDING_DESIGN_CITATIONS)}"
    )
    fixed = PENDING_DESIGN_CITATIONS - citing
    assert not fixed, (
        f"no longer cite DESIGN: remove from PENDING_DESIGN_CITATIONS: {sorted(fixed)}"
    )


def test_doc_params_fills_blocks_at_their_indentation():
    from cd7escape._docs import doc_params

    @doc_params(doc_x="x\n    The x.\n\n    More.", doc_r="Nothing.")
    def f(x):
        """Summary of ``obs['{key_added}_y']``.

        Parameters
        ----------
        {doc_x}

        Returns
        -------
        {doc_r}
        """

    assert f.__doc__ == (
        "Summary of ``obs['{key_added}_y']``.\n\n"
        "        Parameters\n        ----------\n"
        "        x\n            The x.\n\n            More.\n\n"
        "        Returns\n        -------\n        Nothing.\n        "
    )


def test_doc_params_refuses_a_missing_placeholder():
    from cd7escape._docs import doc_params

    with pytest.raises(ValueError, match="doc_x"):

        @doc_params(doc_x="x\n    The x.")
        def f(x):
            """Summary ({doc_x} inline is not a placeholder)."""
