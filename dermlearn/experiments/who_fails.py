"""Who the model fails, for the analysis experiment: scores per Fitzpatrick skin type and
per body region, and the Grad-CAM pointing game against the lesion masks, for correct and
for wrong predictions. Intervals resample patients when the data has them (several photos
of one patient are not independent)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from dermlearn.data.decode import mask_item
from dermlearn.evaluation.bootstrap import bootstrap_ci
from dermlearn.evaluation.subgroups import MIN_READABLE, subgroup_metrics
from dermlearn.interpret.interpretation import Interpretation
from dermlearn.interpret.pointing_game import pointing_hits
from dermlearn.io import atomic_write_text

from .record import markdown_table

__all__ = ["SUBGROUP_COLUMNS", "pointing_game_table", "write_who_fails"]

SUBGROUP_COLUMNS = ("fitzpatrick", "region")
"""Metadata columns scored per value when the data has them."""


def _rate(hits: torch.Tensor, units: Sequence[Any] | None, n_boot: int) -> tuple[float, float, float]:
    if len(hits) == 0:
        return float("nan"), float("nan"), float("nan")
    if n_boot == 0 or len(hits) < 2:
        return float(hits.mean()), float("nan"), float("nan")
    # a rate is the mean of 0/1 values: the metric reads them from the first column
    return bootstrap_ci(lambda p, t: p[:, 0].mean(), hits[:, None], torch.zeros(len(hits), dtype=torch.long), n=n_boot,
                        groups=units, method="percentile")  # fmt: skip


def pointing_game_table(hits: torch.Tensor, correct: torch.Tensor, units: Sequence[Any] | None = None,
                        n_boot: int = 1000) -> pd.DataFrame:  # fmt: skip
    """The pointing game's hit rate over all images, the correctly and the wrongly predicted
    ones: ``images`` (those with an answer), ``undefined`` (empty mask or flat map),
    ``hits``, ``hit rate`` and its 95 % bootstrap bounds (resampling ``units``)."""
    rows = []
    for name, sel in (("all", torch.ones_like(correct)), ("correct", correct), ("wrong", ~correct)):
        h = hits[sel]
        defined = ~torch.isnan(h)
        u = None if units is None else [units[i] for i in torch.nonzero(sel).flatten()[defined].tolist()]
        rate, lo, hi = _rate(h[defined], u, n_boot)
        rows.append({"predictions": name, "images": int(defined.sum()), "undefined": int((~defined).sum()),
                     "hits": int(h[defined].sum()), "hit rate": rate, "low": lo, "high": hi})  # fmt: skip
    return pd.DataFrame(rows)


def write_who_fails(interp: Interpretation, meta: pd.DataFrame, out: str | Path, size: int, units: Sequence[Any] | None = None,
                    n_boot: int = 1000, log=print) -> dict[str, Any]:  # fmt: skip
    """Write ``subgroups.csv`` / ``.md`` (per value of each column of
    :data:`SUBGROUP_COLUMNS` that ``meta`` has) and, when ``meta`` has a ``mask`` column,
    ``pointing_game.csv`` / ``.md``: the predicted class's Grad-CAM map (at the layer the CLI
    uses, in the ``size``-px input) scored against the lesion mask cut the same way, with a
    tolerance of 15 px at 224 px, scaled. ``meta`` holds one row per interpreted image, in
    order. Returns what was written, for the run's config."""
    out = Path(out)
    if len(meta) != len(interp.targets):
        raise ValueError(f"meta has {len(meta)} rows for {len(interp.targets)} interpreted images")
    written: dict[str, Any] = {}
    tables = [subgroup_metrics(interp.probs, interp.targets, meta[c].tolist(), units, n_boot).assign(by=c)
              for c in SUBGROUP_COLUMNS if c in meta.columns]  # fmt: skip
    if tables:
        table = pd.concat(tables, ignore_index=True)
        table = table[["by", *[c for c in table.columns if c != "by"]]]
        atomic_write_text(table.to_csv(index=False), out / "subgroups.csv")
        fmt = {c: ".3f" for c in table.columns if c.startswith(("accuracy", "balanced accuracy"))}
        note = f"\nGroups of fewer than {MIN_READABLE} images are marked readable = False and get no interval.\n"
        atomic_write_text(markdown_table(table, fmt, {c: "-" for c in fmt}) + note, out / "subgroups.md")
        written["subgroups"] = {c: int(t["readable"].sum()) for c, t in zip([c for c in SUBGROUP_COLUMNS if c in meta.columns], tables)}
        log(f"subgroups: {len(table)} groups, {int(table['readable'].sum())} with at least {MIN_READABLE} images")
    if "mask" in meta.columns:
        maps = interp.cam_maps()
        masks = torch.stack([mask_item(m, size) for m in meta["mask"]])
        tolerance = round(15 * size / 224)
        hits = pointing_hits(maps, masks, tolerance)
        correct = interp.preds.cpu() == interp.targets.cpu()
        game = pointing_game_table(hits, correct, units, n_boot)
        atomic_write_text(game.to_csv(index=False), out / "pointing_game.csv")
        atomic_write_text(markdown_table(game, {"hit rate": ".3f", "low": ".3f", "high": ".3f"}) +
                          f"\nGrad-CAM of the predicted class, maximum on the lesion mask within {tolerance} px "
                          f"of {size}-px inputs.\n", out / "pointing_game.md")  # fmt: skip
        written["pointing_game"] = {"tolerance_px": tolerance, "hit_rate": float(game["hit rate"].iloc[0])}
        log(f"pointing game: hit rate {game['hit rate'].iloc[0]:.3f} over {game['images'].iloc[0]} images")
    return written
