"""Models in the layout the field shares: ``learn.save_pretrained(folder)`` writes
``model.safetensors`` (the weights), ``config.json`` (what :func:`~dermlearn.modelfile.export.export_learner`
keeps: architecture, classes, input size, normalisation, corrections, temperature, training
domain, version) and ``README.md``, a model card with YAML front matter for the Hugging Face
hub; :func:`dermlearn.load_learner` reads the folder, a ``.safetensors`` file (its header
carries the config too) or ``hf://owner/name[@revision]`` through ``huggingface_hub``
(extra ``dermlearn[hub]``; it honours ``HF_HUB_OFFLINE`` and the hub cache), and
``learn.push_to_hub(repo_id)`` uploads the folder with ``huggingface_hub``'s own
``upload_folder``.

Loading reads tensors and JSON only (safetensors never unpickles); a truncated or edited
file is a clear error naming it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from dermlearn.evaluation.bootstrap import bootstrap_ci
from dermlearn.evaluation.metrics import accuracy, balanced_accuracy, per_class_recall, roc_auc
from dermlearn.io import atomic_write, atomic_write_json, atomic_write_text

from .export import FORMAT, model_metadata

__all__ = ["CARD", "CONFIG", "WEIGHTS", "is_pretrained", "model_card", "push_to_hub", "read_pretrained", "save_pretrained"]

CONFIG, WEIGHTS, CARD = "config.json", "model.safetensors", "README.md"
HUB = "hf://"
SMALL_GROUP = 30  # groups with fewer validation images are marked too few to read


def save_pretrained(learn, folder: str | os.PathLike, input_size: int | None = None, extra: dict[str, Any] | None = None,
                    card: bool = True, groups: Sequence[Any] | dict[str, Sequence[Any]] | None = None,
                    group_name: str = "group", bootstrap: int = 1000) -> Path:  # fmt: skip
    """Write ``learn``'s model to ``folder`` (created; each file written atomically).

    Args:
        learn: A Learner whose model comes from :func:`dermlearn.create_model`.
        folder: The output folder.
        input_size, extra: As for ``learn.export``.
        card: Write the model card ``README.md`` (its metrics cost a pass over the validation
            set and ``bootstrap`` resamples).
        groups: One value per validation image (e.g. Fitzpatrick skin type) for a table of
            the metrics per group in the card; or several such lists by name
            (``{"Fitzpatrick skin type": [...], "region": [...]}``), a table each.
        group_name: What the groups are, for the card (with a single list).
        bootstrap: Resamples of the card's 95% intervals (BCa); 0 leaves the intervals out.

    Returns:
        The folder.
    """
    meta, weights = model_metadata(learn, input_size, extra)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous().clone() for k, v in weights.items()}  # safetensors refuses shared storage
    data = save(tensors, metadata={"format": FORMAT, "dermlearn_config": json.dumps(meta)})
    atomic_write(folder / WEIGHTS, lambda f: f.write(data))
    atomic_write_json(meta, folder / CONFIG)
    if card:
        atomic_write_text(model_card(learn, meta, groups, group_name, bootstrap), folder / CARD)
    return folder


def is_pretrained(path: str | os.PathLike) -> bool:
    """Whether ``path`` names this layout: ``hf://...``, a folder, or a ``.safetensors`` file."""
    return str(path).startswith(HUB) or Path(path).is_dir() or Path(path).suffix == ".safetensors"


def _from_hub(spec: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as e:
        raise ImportError(f"{spec} needs huggingface_hub: pip install 'dermlearn[hub]'") from e
    repo, _, revision = spec[len(HUB) :].partition("@")
    if repo.count("/") != 1:
        raise ValueError(f"{spec}: expected hf://owner/name or hf://owner/name@revision")
    try:
        return Path(snapshot_download(repo, revision=revision or None, allow_patterns=[CONFIG, WEIGHTS, CARD]))
    except LocalEntryNotFoundError as e:
        raise FileNotFoundError(f"{spec}: not in the hub cache and the hub cannot be reached ({e})") from e


def read_pretrained(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The metadata and weights of a folder, ``.safetensors`` file or ``hf://`` model.

    Raises:
        FileNotFoundError: a missing folder, file, or hub model not in the cache offline.
        ValueError: not a dermlearn model, truncated or edited files.
    """
    source = str(path)
    folder = _from_hub(source) if source.startswith(HUB) else Path(path)
    weights_file = folder / WEIGHTS if folder.is_dir() else folder
    if not weights_file.is_file():
        raise FileNotFoundError(f"{source}: no {WEIGHTS}" if folder.is_dir() else f"{source}: no such file")
    try:
        with safe_open(str(weights_file), framework="pt") as f:  # one read for the header and the tensors
            header = f.metadata() or {}
            weights = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{weights_file}: damaged weights file ({e})") from e
    config_file = weights_file.with_name(CONFIG)
    try:
        if config_file.is_file():  # the folder's config.json, as the hub shows and edits it
            meta = json.loads(config_file.read_text())
        elif "dermlearn_config" in header:
            meta = json.loads(header["dermlearn_config"])
        else:
            raise ValueError("no config.json beside it and no dermlearn config in its header")
    except ValueError as e:
        where = config_file if config_file.is_file() else weights_file
        raise ValueError(f"{where}: not a dermlearn model ({e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{config_file if config_file.is_file() else weights_file}: not a dermlearn model config (format is not {FORMAT!r})")
    return meta, weights


def push_to_hub(learn, repo_id: str, private: bool = True, commit_message: str = "Upload dermlearn model", **card: Any) -> str:
    """Write the model to a temporary folder with :func:`save_pretrained` (``card``: its
    keyword arguments) and upload it with ``huggingface_hub``'s ``create_repo`` and
    ``upload_folder`` (extra ``dermlearn[hub]``; log in first with ``huggingface-cli login``).

    Returns:
        The URL of the commit.
    """
    try:
        from huggingface_hub import HfApi
    except ImportError as e:
        raise ImportError("push_to_hub needs huggingface_hub: pip install 'dermlearn[hub]'") from e
    api = HfApi()
    api.create_repo(repo_id, private=private, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        save_pretrained(learn, tmp, **card)
        return str(api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message))


# ---------------------------------------------------------------------------- the model card
def _fmt(value: float, low: float | None = None, high: float | None = None) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.3f}" if low is None or not math.isfinite(low) else f"{value:.3f} [{low:.3f}, {high:.3f}]"


def _recall_of(c: int):
    """The recall of class ``c`` as a scalar metric, for the bootstrap."""

    def recall(probs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return per_class_recall(probs, targets)[c]

    return recall


def _score(metric, probs: torch.Tensor, targets: torch.Tensor, n: int) -> str:
    if n > 0 and len(targets) >= 2:
        return _fmt(*bootstrap_ci(metric, probs, targets, n=n))
    return _fmt(float(metric(probs, targets)))


def model_card(learn, meta: dict[str, Any], groups: Sequence[Any] | dict[str, Sequence[Any]] | None = None,
               group_name: str = "group", bootstrap: int = 1000) -> str:  # fmt: skip
    """The ``README.md`` of :func:`save_pretrained`: intended use and limits, training data,
    validation metrics with 95% BCa intervals (overall, per class, per group), the
    preprocessing the model applies, and how to load it."""
    classes = list(meta["classes"])
    data_name = getattr(learn.dls, "name", None) or "the training data"
    modality = getattr(learn.dls, "modality", None)
    lines = [
        "---", "library_name: dermlearn", "pipeline_tag: image-classification",
        "tags: [dermatology, skin-lesions, image-classification, dermlearn]", "---", "",
        f"# {meta['arch']} for {len(classes)} classes of {data_name}", "",
        "## Intended use and limits", "",
        "For research on classifying photos of skin lesions into the classes below. It is not a medical "
        "device: it has not been validated for diagnosis or triage and must not be used to decide on a "
        "person's care. It has only seen the kind of images it was trained on"
        + (f" ({modality} images)" if modality else "")
        + "; `learn.predict` warns about images clearly outside that domain, whose predictions may mean "
        "nothing. Its figures come from the validation split below, which may not hold for other "
        "populations, cameras or skin types.", "",
        "## Training data", "",
        f"- data: {data_name}" + (f" ({modality})" if modality else ""),
        f"- classes ({len(classes)}): " + ", ".join(classes),
        f"- input: {meta['input_size']} x {meta['input_size']} px, balancing: {getattr(learn.dls, 'balance', None) or 'not recorded'}",
    ]  # fmt: skip
    for name, loader in (("training", learn.dls.train), ("validation", learn.dls.valid)):
        ds = getattr(loader, "dataset", None)
        if ds is not None and hasattr(ds, "__len__"):
            lines.append(f"- {name} images: {len(ds)}")
    if learn.dls.valid is not None:
        probs, targets = learn.get_preds(learn.dls.valid)
        n = len(targets)
        lines += ["", f"## Metrics (validation split, {n} images; 95% BCa bootstrap intervals)" if bootstrap else
                  f"## Metrics (validation split, {n} images)", "",
                  "| metric | value |", "|---|---|",
                  f"| accuracy | {_score(accuracy, probs, targets, bootstrap)} |",
                  f"| balanced accuracy | {_score(balanced_accuracy, probs, targets, bootstrap)} |",
                  f"| macro ROC AUC | {_score(roc_auc, probs, targets, bootstrap)} |", "",
                  "| class | images | recall (sensitivity) |", "|---|---|---|"]  # fmt: skip
        counts = torch.bincount(targets.long(), minlength=len(classes)) if targets.ndim == 1 else targets.sum(0).long()
        for c, name in enumerate(classes):
            lines.append(f"| {name} | {int(counts[c])} | {_score(_recall_of(c), probs, targets, bootstrap if counts[c] > 0 else 0)} |")
        tables = groups if isinstance(groups, dict) else ({group_name: groups} if groups is not None else {})
        for name, values in tables.items():
            if len(values) != n:
                raise ValueError(f"groups has {len(values)} values for {n} validation images")
            lines += ["", f"### By {name}", "", f"| {name} | images | accuracy | balanced accuracy |", "|---|---|---|---|"]
            for g in sorted({str(v) for v in values}):
                idx = torch.tensor([i for i, v in enumerate(values) if str(v) == g])
                if len(idx) < SMALL_GROUP:
                    lines.append(f"| {g} | {len(idx)} | too few to read | too few to read |")
                    continue
                p, t = probs[idx], targets[idx]
                lines.append(f"| {g} | {len(idx)} | {_score(accuracy, p, t, bootstrap)} | {_score(balanced_accuracy, p, t, bootstrap)} |")
    steps = [s["name"] + "(" + ", ".join(f"{k}={v}" for k, v in s.items() if k != "name") + ")" for s in meta["preprocessing"]]
    lines += ["", "## Preprocessing the model applies", "", "In order: " + (", ".join(steps) or "none") + ".",
              f"Probabilities: {meta['activation']}" + (f", temperature {meta['temperature']:.3f}" if meta["temperature"] != 1 else "") + ".",
              "", "## How to use", "", "```python", "import dermlearn as dl", "",
              'learn = dl.load_learner("path/to/this/folder")  # or "hf://owner/name"',
              'label, index, probs = learn.predict("photo.jpg")', "```", "",
              f"Written by dermlearn {meta['dermlearn_version']} with torch {meta['torch_version']}.", ""]  # fmt: skip
    return "\n".join(lines)
