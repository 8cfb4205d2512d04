"""Write an :class:`Interpretation` to a folder: the study's case-study material."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dermlearn.evaluation.metrics import metric_name
from dermlearn.io import atomic_write_text

from .interpretation import SUMMARY_METRICS, Interpretation

__all__ = ["write_interpretation"]


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def write_interpretation(interp: Interpretation, out: str | Path, min_count: int = 5, n_pairs: int = 3, k: int = 3,
                         log: Callable[[str], None] = print, bootstrap: int = 1000,
                         groups: Sequence[Any] | None = None) -> list[tuple[str, str, int]]:  # fmt: skip
    """Write ``metrics.csv`` (accuracy, balanced accuracy, macro F1, ROC AUC, calibration
    error, each with a 95 % bootstrap interval of ``bootstrap`` resamples, over ``groups``
    when given, e.g. patients; no intervals when ``bootstrap`` is 0), ``confusion.png``,
    ``confusion_normalized.png``, ``report.csv`` (per-class
    precision, recall, specificity, F1, ROC AUC, support), ``roc.png`` (one-vs-rest ROC
    curves), ``calibration.png`` (reliability diagram), ``leading_pairs.md`` (the study's
    table: pairs whose errors in both directions sum to at least ``min_count``, with each
    direction's count) and a Grad-CAM /
    Guided Backprop gallery ``gallery_<a>_<b>.png`` for each of the ``n_pairs`` leading
    pairs (``k`` cases per direction, predicted and runner-up class).

    Returns:
        The leading pairs ``(label 1, label 2, count)``, largest count first.
    """
    import pandas as pd

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _save(interp.plot_confusion_matrix(), out / "confusion.png")
    _save(interp.plot_confusion_matrix(normalize=True), out / "confusion_normalized.png")
    _save(interp.plot_roc(), out / "roc.png")
    _save(interp.plot_calibration(), out / "calibration.png")
    report = interp.classification_report()
    atomic_write_text(report.to_csv(), out / "report.csv")
    pairs = interp.leading_pairs(min_count)
    cm, index = interp.confusion_matrix(), {c: i for i, c in enumerate(interp.vocab)}
    lines = ["| label 1 | label 2 | count | 1 -> 2 | 2 -> 1 |", "|---|---|---|---|---|"]
    lines += [f"| {a} | {b} | {n} | {int(cm[index[a], index[b]])} | {int(cm[index[b], index[a]])} |" for a, b, n in pairs]
    note = (f"Confused label pairs with at least {min_count} errors. count sums both directions: label 1 predicted as "
            "label 2 (1 -> 2) plus label 2 predicted as label 1 (2 -> 1), from the confusion matrix.")  # fmt: skip
    atomic_write_text("\n".join(lines) + "\n\n" + note + "\n", out / "leading_pairs.md")
    if bootstrap:
        table = interp.bootstrap(n=bootstrap, groups=groups)
        unit = "groups" if groups is not None else "images"
        log(f"{len(interp.targets)} images ({len(set(groups)) if groups is not None else len(interp.targets)} {unit} resampled "
            f"{bootstrap} times for the 95% intervals):")  # fmt: skip
        log("\n".join(f"  {name:<28} {r.value:.4f}  [{r.low:.4f}, {r.high:.4f}]" for name, r in table.iterrows()))
    else:
        table = pd.DataFrame({"value": [float(m(interp.probs, interp.targets)) for m in SUMMARY_METRICS]},
                             index=[metric_name(m) for m in SUMMARY_METRICS])  # fmt: skip
        log(f"{len(interp.targets)} images:")
        log("\n".join(f"  {name:<28} {r.value:.4f}" for name, r in table.iterrows()))
    atomic_write_text(table.to_csv(index_label="metric"), out / "metrics.csv")
    log(report.round(3).to_string())
    log(f"\nleading confused pairs (at least {min_count} errors):")
    log("\n".join(lines) if pairs else "(none)")
    for a, b, _ in pairs[:n_pairs]:
        name = f"gallery_{a}_{b}.png".replace("/", "-").replace(" ", "_")
        fig = interp.plot_pair_gallery(a, b, k=k, path=out / name)
        if fig is not None:
            import matplotlib.pyplot as plt

            plt.close(fig)
            log(f"wrote {out / name}")
    log(f"wrote {out / 'metrics.csv'}, confusion.png, confusion_normalized.png, roc.png, calibration.png, report.csv, leading_pairs.md")
    return pairs
