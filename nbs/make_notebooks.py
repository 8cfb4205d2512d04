"""Writes the tutorial notebooks from the cell sources below (run it after editing them):
``python nbs/make_notebooks.py``. Each notebook reads ``DERMLEARN_SMALL=1`` (set by the
tests) to run at a small size."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent
SMALL = '''import os
SMALL = os.environ.get("DERMLEARN_SMALL", "0") == "1"  # the tests run every notebook small
%matplotlib inline'''

NOTEBOOKS = {
    "01_quickstart.ipynb": [
        ("md", "# Quick start: data → LR range test → SGDR → interpretation\n\n"
               "Synthetic lesion photos (no download), a small CNN, the study's schedule."),
        ("code", SMALL),
        ("code", "import dermlearn as dl\n\n"
                 "dls = dl.synthetic_dataloaders(n=300 if SMALL else 1000, size=32 if SMALL else 64, bs=32, seed=0,\n"
                 "                               confounders=('illumination', 'gamma', 'cast', 'fov'), confound_p=0.3)\n"
                 "learn = dl.Learner(dls, dl.create_model('simple_cnn', len(dls.vocab)),\n"
                 "                   metrics=[dl.accuracy, dl.balanced_accuracy])\n"
                 "dls.vocab"),
        ("md", "The LR range test raises the learning rate step by step and plots the loss. It leaves the "
               "model, the optimizer and every random generator exactly as they were."),
        ("code", "res = learn.lr_find(suggest_funcs=(dl.minimum, dl.steep, dl.valley))\nres.suggestions"),
        ("md", "SGDR: cosine annealing with warm restarts, cycles of 1, 2 and 4 epochs (cycle length multiplied by 2)."),
        ("code", "learn.fit_sgdr(3, 1, lr_max=res.minimum, cycle_mult=2)\nlearn.recorder.plot_lr();"),
        ("code", "learn.recorder.plot_loss();"),
        ("code", "interp = dl.Interpretation.from_learner(learn)\ninterp.plot_confusion_matrix();\n"
                 "interp.leading_pairs(min_count=1)"),
        ("code", "x, _ = next(iter(dls.valid))\nex = learn.explain(x[:4])\n"
                 "[(dls.vocab[int(c)], round(float(p), 3)) for c, p in zip(ex.gradcam['top1'].classes, ex.probs.max(1).values)]"),
    ],
    "02_transfer_learning_pad_ufes_20.ipynb": [
        ("md", "# Transfer learning with discriminative learning rates on PAD-UFES-20\n\n"
               "Smartphone photos of six diagnoses, split by patient so that no patient is on both sides. "
               "On a machine that is online, `pretrained=True` loads ImageNet weights; here we use a local file "
               "when `DERMLEARN_WEIGHTS` names one, else random initialisation (the numbers are then not "
               "meaningful, the mechanics are the same)."),
        ("code", SMALL),
        ("code", "import os\nimport dermlearn as dl\n\n"
                 "data = dl.DermData.pad_ufes_20()\nprint(data)\ndata.counts()"),
        ("code", "# static: oversample MEL and SCC (36 and 18 of 570 training photos) to the largest class; see docs/data.md\n"
                 "dls = data.dls(bs=32, size=64 if SMALL else 128, balance='static')\n"
                 "data.show_batch(n=6, size=64);"),
        ("code", "weights = os.environ.get('DERMLEARN_WEIGHTS') or False\n"
                 "learn = dl.Learner(dls, dl.create_model('resnet18' if SMALL else 'resnet34', data.c, pretrained=weights),\n"
                 "                   loss_func=dl.BCEWithLogitsOneHot(), metrics=[dl.accuracy, dl.balanced_accuracy])\n"
                 "learn.freeze()  # the new head first\n"
                 "res = learn.lr_find(num_it=30 if SMALL else 100)\nlr = res.valley"),
        ("code", "learn.fit_sgdr(1, 1, lr_max=lr)\nlearn.unfreeze()\n"
                 "learn.fit_sgdr(1 if SMALL else 3, 1, lr_max=slice(lr / 100, lr / 10), cycle_mult=2,\n"
                 "               cbs=[dl.EarlyStopping('valid_loss', patience=2, restore_best_weights=True)])"),
        ("md", "The learning rate of each of the three layer groups: the body groups train 10x and 100x slower than the head."),
        ("code", "learn.recorder.plot_lr();\nlearn.get_hyper('lr')"),
        ("code", "interp = dl.Interpretation.from_learner(learn)\n"
                 "meta = dls.valid.dataset.meta\n"
                 "interp.metrics_by_group([m['fitzpatrick'] for m in meta], name='fitzpatrick')"),
        ("md", "Export the model (weights and a JSON description, loaded without unpickling code) and predict a photo "
               "file as a user of the model would: `predict` decodes it as training decoded its files."),
        ("code", "import tempfile\n"
                 "model = dl.load_learner(learn.export(os.path.join(tempfile.mkdtemp(), 'pad_ufes_20_model.pth')))\n"
                 "i = data.indices('valid')[0]\n"
                 "label, index, probs = model.predict(data.items['path'][i])\n"
                 "label, round(float(probs[index]), 3), 'actual: ' + data.classes[int(data.y[i])]"),
    ],
    "03_mitigation_transforms.ipynb": [
        ("md", "# Mitigation transforms: before and after\n\n"
               "The study's photographic corrections on real PAD-UFES-20 photos: gamma, illumination correction, "
               "colour constancy (Shades of Gray), lesion crop (field of view) and hair removal. Each works on a batch "
               "`(B, 3, H, W)` of uint8 or float images."),
        ("code", SMALL),
        ("code", "import matplotlib.pyplot as plt\nimport numpy as np\nimport pandas as pd\nimport torch\n"
                 "import dermlearn as dl\nfrom dermlearn.data.decode import load_image\nfrom dermlearn import transforms as T\n\n"
                 "root = dl.data.data_root() / 'pad-ufes-20'\ntable = pd.read_csv(root / 'labels.csv').head(4)\n"
                 "def to_t(p):\n    return torch.from_numpy(np.array(load_image(p))).permute(2, 0, 1)\n"
                 "x = torch.stack([to_t(root / p) for p in table['image']])\n"
                 "masks = torch.stack([to_t(root / m)[0] > 127 for m in table['mask']])\n"
                 "def show(rows, titles):\n"
                 "    fig, axs = plt.subplots(len(rows), len(rows[0]), figsize=(2.4 * len(rows[0]), 2.4 * len(rows)), squeeze=False)\n"
                 "    for r, row in enumerate(rows):\n"
                 "        for c, img in enumerate(row):\n"
                 "            axs[r, c].imshow(img.permute(1, 2, 0).numpy())\n"
                 "            axs[r, c].axis('off')\n"
                 "            axs[r, c].set_title(titles[r], fontsize=8)\n"
                 "    plt.tight_layout()"),
        ("md", "Degrade the photos as user-submitted ones often are (uneven light, gamma, colour cast), then correct them. "
               "Gamma convention: `out = in ** gamma`, so gamma < 1 brightens (the study's 'gamma 1.2-1.5' is 1/1.2-1/1.5 here)."),
        ("code", "bad = T.RandomColourCast(p=1.0, seed=2)(T.RandomGamma((0.6, 1.6), p=1.0, seed=1)(T.RandomIllumination((0.4, 0.6), p=1.0, seed=0)(x)))\n"
                 "fixed = T.shades_of_gray(T.adjust_gamma(T.correct_illumination(bad), T.auto_gamma(T.correct_illumination(bad))))\n"
                 "show([list(x), list(bad), list(fixed)], ['original', 'degraded', 'corrected'])"),
        ("md", "Field of view: crop to the lesion (here from the students' masks; at predict time `two_pass_predict` uses Grad-CAM)."),
        ("code", "boxes = [T.roi_box(m, theta=0.5, margin=0.15) for m in masks]\n"
                 "show([list(x), list(T.crop_boxes(x, boxes, 300))], ['full view', 'lesion crop'])"),
        ("md", "Field of view on a dermoscopy image: the contact plate of `ISIC_0012221` shows as a pale grey rim at the "
               "corners, with no dark vignette. `detect_vignette` finds the edge of the skin by the step in chroma "
               "(method `'rim'`, used when no dark vignette is found), and `vignette_box` is the square inside it."),
        ("code", "isic = to_t(dl.data.data_root() / 'isic-dermoscopy' / 'ISIC_0012221.jpg')\n"
                 "circle = T.detect_vignette(isic)\nprint(circle)\n"
                 "x0, y0, x1, y1 = T.vignette_box(circle, *isic.shape[-2:])\n"
                 "fig, axs = plt.subplots(1, 2, figsize=(9, 3.2))\naxs[0].imshow(isic.permute(1, 2, 0).numpy())\n"
                 "axs[0].add_patch(plt.Circle((circle.cx, circle.cy), circle.r, fill=False, color='lime', lw=1.5))\n"
                 "axs[0].add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, color='yellow', lw=1))\n"
                 "axs[0].set_title(f'field edge ({circle.source}) and crop', fontsize=8)\n"
                 "axs[1].imshow(isic[:, y0:y1, x0:x1].permute(1, 2, 0).numpy())\naxs[1].set_title('cropped', fontsize=8)\n"
                 "for a in axs:\n    a.axis('off')"),
        ("md", "Hair removal (DullRazor): black-hat, threshold, inpaint. On a hair-free photo it should mark almost nothing."),
        ("code", "out, mask = T.remove_hair(x[0])\nprint(f'marked as hair: {float(mask.float().mean()):.1%}')\n"
                 "show([[x[0], out]], ['original / hair removed'])"),
        ("md", "The measured effect on a trained model is in `docs/mitigation.md` "
               "(`python -m dermlearn.experiments.photometric`)."),
    ],
    "04_interpretation_confused_pairs.ipynb": [
        ("md", "# Interpreting confused pairs\n\n"
               "The study's analysis: find the label pairs that account for most errors, then look at Grad-CAM and "
               "Guided Backprop for the predicted and the runner-up class. First, the study's own confusion matrix "
               "gives back its pair table."),
        ("code", SMALL),
        ("code", "import json\nfrom pathlib import Path\nimport dermlearn as dl\n\n"
                 "# the study's tables sit next to the data: ../shared/reference\n"
                 "tables = json.loads((dl.data.data_root().parent / 'reference' / 'paper-tables.json').read_text())\n"
                 "dl.leading_pairs(tables['confusion_dynamic_balance'], tables['labels'], min_count=5)"),
        ("md", "Now a model of our own: train briefly, save it safely, load it back, and analyse its errors."),
        ("code", "import tempfile\n"
                 "dls = dl.synthetic_dataloaders(n=300 if SMALL else 1200, size=48 if SMALL else 64, bs=32, seed=1,\n"
                 "                               confounders=('illumination', 'gamma', 'cast'), confound_p=0.5)\n"
                 "learn = dl.Learner(dls, dl.create_model('simple_cnn', len(dls.vocab)), metrics=[dl.accuracy])\n"
                 "learn.fit_one_cycle(3 if SMALL else 6, 5e-3)\n"
                 "path = learn.export(Path(tempfile.mkdtemp()) / 'model.pth')\n"
                 "learn = dl.load_learner(path)\nlearn.meta['classes']"),
        ("code", "interp = dl.Interpretation.from_learner(learn, dl=dls.valid)\n"
                 "interp.plot_confusion_matrix(normalize=True);\ninterp.classification_report()"),
        ("md", "Beyond the top class: how well each class's probability ranks its images against the rest (ROC), "
               "the sensitivity reached at a chosen specificity, and whether the probabilities can be taken at their "
               "word (reliability diagram; the expected calibration error is the bars' mean distance from the diagonal)."),
        ("code", "interp.plot_roc();\n"
                 "c = interp.vocab[1]\nsens, thr = interp.sensitivity_at_specificity(c, 0.8)\n"
                 "print(f'macro AUC {interp.roc_auc:.3f}; {c}: sensitivity {sens:.2f} at specificity >= 0.8 (threshold {thr:.3f})')"),
        ("code", "interp.plot_calibration();"),
        ("code", "pairs = interp.most_confused()\npairs[:5]"),
        ("code", "if pairs:\n    a, b, _ = pairs[0]\n    interp.plot_pair_gallery(a, b, k=2)"),
        ("code", "interp.plot_top_losses(6);"),
    ],
}


def build(name: str) -> nbformat.NotebookNode:
    """The notebook ``name`` from its cell sources above."""
    # ids from the notebook and the cell's place: regenerating changes only what was edited
    make = {"md": new_markdown_cell, "code": new_code_cell}
    nb = new_notebook(cells=[make[kind](src, id=f"{name[:2]}-{i:02d}") for i, (kind, src) in enumerate(NOTEBOOKS[name])])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def main() -> None:
    for name in NOTEBOOKS:
        nbformat.write(build(name), HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
