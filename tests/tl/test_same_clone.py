"""same_clone (tl/_malignant/_tcr_evidence.py): a leukemic clone seen differently, for every lineage's loci."""

from __future__ import annotations

from cd7escape.tl._malignant._tcr_evidence import same_clone


def test_alpha_beta_as_before():
    leukemic = ["TRB:AAA;TRA:CCC"]
    got = same_clone(
        ["TRB:AAA", "TRA:CCC", "TRB:AAA;TRA:GGG", "TRB:TTT;TRA:CCC", "TRA:GGG"], leukemic
    )
    assert got == {"TRB:AAA": leukemic[0], "TRA:CCC": leukemic[0], "TRB:AAA;TRA:GGG": leukemic[0]}


def test_shared_heavy_chain_links_b_cells_but_a_light_chain_does_not():
    leukemic = ["IGH:AAA;IGK:CCC"]
    clones = ["IGH:AAA;IGL:GGG", "IGH:AAA", "IGK:CCC", "IGH:TTT;IGK:CCC", "IGH:AAA;IGK:CCC;IGL:GGG"]
    assert same_clone(clones, leukemic) == {
        "IGH:AAA;IGL:GGG": leukemic[0],  # another light chain read: the same heavy chain
        "IGH:AAA": leukemic[0],
        "IGK:CCC": leukemic[0],  # one chain of the clone, the other not captured
        "IGH:AAA;IGK:CCC;IGL:GGG": leukemic[0],
    }


def test_a_leading_alpha_chain_is_not_enough():
    """TRA (like a light chain) is not allelically excluded: a clone led by it links only as a subset."""
    assert same_clone(["TRA:CCC;TRG:GGG"], ["TRA:CCC"]) == {}
    assert same_clone(["TRD:DDD;TRG:GGG"], ["TRD:DDD;TRG:TTT"]) == {
        "TRD:DDD;TRG:GGG": "TRD:DDD;TRG:TTT"
    }


def _families(ids):
    import pandas as pd

    from cd7escape.tl._malignant._tcr_evidence import clonotype_families

    return list(clonotype_families(pd.Series(ids, dtype=object)))


def test_a_clone_seen_with_fewer_chains_is_one_family():
    """The leukemic clone with its TRA read in some cells only: one family, named by its largest form."""
    full, beta, alpha = "TRB:AAA;TRA:CCC", "TRB:AAA", "TRA:CCC"
    ids = [full] * 5 + [beta] * 4 + [alpha] * 2 + ["TRB:AAA;TRA:GGG"] + ["TRB:TTT;TRA:CCC"] * 3
    ids += [None, "TRB:ZZZ"]
    got = _families(ids)
    assert got[:12] == [full] * 12  # fewer chains, or the same TRB with another TRA
    assert got[12:15] == ["TRB:TTT;TRA:CCC"] * 3  # shares only a TRA: another clone
    assert got[15] != got[15]  # NaN stays NaN
    assert got[16] == "TRB:ZZZ"


def test_the_largest_form_names_the_family_and_brings_its_chains():
    """TRB-only cells outnumber the full clonotype: the family is named by TRB, and a TRA-only cell of the
    full clonotype still joins it (its TRA came in with the full clonotype)."""
    ids = (
        ["TRB:AAA"] * 6
        + ["TRB:AAA;TRA:CCC"] * 3
        + ["TRA:CCC"]
        + ["IGH:HHH;IGK:KKK"] * 2
        + ["IGH:HHH"]
    )
    got = _families(ids)
    assert got[:10] == ["TRB:AAA"] * 10
    assert got[10:] == ["IGH:HHH;IGK:KKK"] * 3


def test_only_families_of_several_clonotypes_are_tested_besides_them():
    import pandas as pd

    from cd7escape.tl._malignant._tcr_evidence import clonotype_families, split_clone_families

    ids = pd.Series(
        ["TRB:AAA;TRA:CCC"] * 3 + ["TRB:AAA"] * 2 + ["TRB:TTT"] * 4 + [None], dtype=object
    )
    got = list(split_clone_families(ids, clonotype_families(ids)))
    assert got[:5] == ["family:TRB:AAA;TRA:CCC"] * 5
    assert all(g != g for g in got[5:])  # one clonotype only, or no receptor: NaN
