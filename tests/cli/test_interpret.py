"""dermlearn interpret: gallery titles."""


from __future__ import annotations

import torch

import dermlearn as dl


def test_pair_gallery_titles_give_the_confusion_counts(tmp_path):
    """A gallery's title gives the pair's counts from the confusion matrix and how many cases
    it shows; leading_pairs.md says its count sums both directions."""
    from dermlearn.interpret import write_interpretation

    vocab = ["MEL", "NEV", "BCC"]
    targets = torch.tensor([0] * 12 + [1] * 12 + [2] * 4)
    preds = torch.tensor([0] * 11 + [1] + [0] * 9 + [1] * 3 + [2] * 4)  # 9 NEV->MEL, 1 MEL->NEV
    probs = torch.nn.functional.one_hot(preds, 3).float() * 0.8 + 0.2 / 3
    interp = dl.Interpretation(probs, targets, torch.rand(len(targets)), vocab)
    assert interp.pair_gallery_title("NEV", "MEL", 3, 1) == (
        "NEV vs MEL: 10 errors (9 NEV->MEL, 1 MEL->NEV); shown: 3 NEV->MEL and 1 MEL->NEV, highest loss first")
    write_interpretation(interp, tmp_path, min_count=5, n_pairs=0, bootstrap=0, log=lambda m: None)
    text = (tmp_path / "leading_pairs.md").read_text()
    assert text.startswith("| label 1 | label 2 | count | 1 -> 2 | 2 -> 1 |\n|---|---|---|---|---|\n| NEV | MEL | 10 | 9 | 1 |\n")
    assert "count sums both directions" in text
