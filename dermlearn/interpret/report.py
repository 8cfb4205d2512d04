"""Write an :class:`Interpretation` to a folder: the study's case-study material."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .interpretation import Interpretation

__all__ = ["write_interpretation"]


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def write_interpretation(interp: Interpretation, out: str | Path, min_count: int = 5, n_pairs: int = 3, k: int = 3,
                         log: Callable[[str], None] = print) -> list[tuple[str, str, int]]:  # fmt: skip
    """Write ``confusion.png``, ``confusion_normalized.png``, ``report.csv`` (per-class
    precision, recall, specificity, F1, ROC AUC, support), ``roc.png`` (one-vs-rest ROC
    curves), ``calibration.png`` (reliability diagram), ``leading_pairs.md`` (pairs with at
    least ``min_count`` errors in either direction, as the study's table) and a Grad-CAM /
    Guided Backprop gallery ``gallery_<a>_<b>.png`` for each of the ``n_pairs`` leading
    pairs (``k`` cases per direction, predicted and runner-up class).

    Returns:
        The leading pairs ``(label 1, label 2, count)``, largest count first.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _save(interp.plot_confusion_matrix(), out / "confusion.png")
    _save(interp.plot_confusion_matrix(normalize=True), out / "confusion_normalized.png")
    _save(interp.plot_roc(), out / "roc.png")
    _save(interp.plot_calibration(), out / "calibration.png")
    report = interp.classification_report()
    report.to_csv(out / "report.csv")
    pairs = interp.leading_pairs(min_count)
    lines = ["| label 1 | label 2 | count |", "|---|---|---|"] + [f"| {a} | {b} | {n} |" for a, b, n in pairs]
    (out / "leading_pairs.md").write_text("\n".join(lines) + "\n")
    log(f"{len(interp.targets)} images: accuracy {interp.accuracy:.4f}, balanced accuracy {interp.balanced_accuracy:.4f}, "
        f"ROC AUC {interp.roc_auc:.4f}, calibration error (ECE) {interp.expected_calibration_error():.4f}")
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
    log(f"wrote {out / 'confusion.png'}, confusion_normalized.png, roc.png, calibration.png, report.csv, leading_pairs.md")
    return pairs
