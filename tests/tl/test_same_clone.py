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
