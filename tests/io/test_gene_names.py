"""``io._gene_names``: Ensembl ids mapped to symbols, mouse data rejected, unique symbols."""

from __future__ import annotations

import numpy as np
import pytest

from cd7escape._errors import InputError
from cd7escape.io._gene_names import (
    antigen_missing_message,
    check_not_mouse,
    harmonize_names,
    make_unique,
)


def test_symbols_pass_through_with_their_ids():
    names, ids = harmonize_names(np.array(["CD7", "CD3E"]), gene_ids=np.array(["E1", "E2"]))
    assert names.tolist() == ["CD7", "CD3E"]
    assert ids.tolist() == ["E1", "E2"]


def test_ensembl_ids_are_mapped_with_the_shipped_table():
    from cd7escape.io._gene_table import ensembl_to_symbol

    ens, symbol = next(iter(ensembl_to_symbol().items()))
    names, ids = harmonize_names(np.array([f"{ens}.4", "ENSG99999999999"]))
    assert names.tolist() == [symbol, "ENSG99999999999"]  # unmapped ids stay
    assert ids.tolist() == [f"{ens}.4", "ENSG99999999999"]


def test_mouse_data_rejected():
    with pytest.raises(InputError, match="mouse Ensembl ids"):
        harmonize_names(np.array(["ENSMUSG00000000001", "ENSMUSG00000000002"]))
    with pytest.raises(InputError, match="look like mouse genes"):
        check_not_mouse(["Cd7", "Actb", "Gapdh"])
    check_not_mouse(["CD7", "ACTB", "Gapdh"])  # a few mixed-case names are fine


def test_make_unique_like_scanpy():
    assert make_unique(["A", "B", "A", "A"]).tolist() == ["A", "B", "A-1", "A-2"]


def test_antigen_missing_message_hints_at_unmapped_ids():
    assert antigen_missing_message("CD7", ["CD3E"]) == "antigen gene 'CD7' is not among the 1 genes"
    message = antigen_missing_message("CD7", ["ENSG00000173762", "ENSG00000198851"])
    assert "Ensembl ids that the shipped hg38 table could not map" in message
