"""Leading confused pairs against the study's table."""


from __future__ import annotations

import numpy as np

import dermlearn as dl


def test_leading_pairs_reproduce_the_study_table(paper_tables):
    labels = paper_tables["labels"]
    cm = np.array(paper_tables["confusion_dynamic_balance"])
    pairs = dl.leading_pairs(cm, labels, min_count=5)
    got = {frozenset((a, b)): n for a, b, n in pairs}
    study = [("ulcer", "tumor", 29), ("macula", "erythema", 25), ("blister", "erythema", 17), ("erythema", "wheel", 15),
             ("crust", "ulcer", 14), ("blister", "crust", 14), ("macula", "tumor", 13), ("macula", "leuko", 10),
             ("blister", "ulcer", 7), ("tumor", "erythema", 7), ("crust", "tumor", 5)]  # fmt: skip
    for a, b, n in study:
        assert got[frozenset((a, b))] == n, (a, b)
    # the study's first eight rows are the top eight pairs (ties at 14 in either order)
    assert [n for _, _, n in pairs[:8]] == [n for _, _, n in study[:8]]
    assert {frozenset((a, b)) for a, b, _ in pairs[:8]} == {frozenset((a, b)) for a, b, _ in study[:8]}
    assert all(n >= 5 for _, _, n in pairs)
    top = dl.most_confused(cm, labels, 15)
    assert top == [("ulcer", "tumor", 18)]  # the one direction with at least 15 errors: ulcer predicted as tumor
