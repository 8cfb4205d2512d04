"""``dermlearn train``: the study's recipe on a dataset, exported with its plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from .config import write_config
from .data_args import data_from_args
from .figures import save_figure
from .learner_args import add_train_args, check_arch, learner_for

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train with the study's recipe and export the model",
                       description="The study's recipe. With --pretrained: LR range test on the frozen body, the new "
                       "head with SGDR, then all layers with discriminative learning rates, SGDR (cycle length "
                       "doubling) and early stopping. From random init: LR range test, then all layers with SGDR "
                       "and early stopping. Writes model.pth (safe export), model/ (the same model as safetensors, "
                       "config.json and a model card), run.toml (the options), history.csv and plots to --out.")  # fmt: skip
    add_train_args(t)
    t.add_argument("--lr", type=float, help="maximum learning rate (default: from the LR range test)")
    t.add_argument("--num-it", type=int, default=100, help="iterations of the LR range test (default: %(default)s)")
    t.add_argument("--head-cycles", type=int, default=2, help="SGDR cycles for the head (default: %(default)s)")
    t.add_argument("--cycles", type=int, default=2, help="SGDR cycles for all layers (default: %(default)s)")
    t.add_argument("--patience", type=int, default=2, help="early-stopping patience in epochs (default: %(default)s)")
    t.add_argument("--calibrate", action="store_true",
                   help="fit temperature scaling on the validation split and export it with the model (its calibration "
                        "figures on that split are then optimistic: check them on other images)")  # fmt: skip
    t.add_argument("--log", nargs="+", choices=["csv", "tensorboard", "wandb", "mlflow"], default=[], metavar="TRACKER",
                   help="also log the run as it goes: csv (log.csv in --out, one row per epoch of every fit, with "
                        "per-batch losses, hyper-parameters and end-of-fit figures beside it), tensorboard (--out/runs), "
                        "wandb (project 'dermlearn'; WANDB_MODE=offline works) and/or mlflow (MLFLOW_TRACKING_URI, "
                        "with the model as an artifact); the last three need pip install 'dermlearn[NAME]'")  # fmt: skip
    t.set_defaults(func=run, parser=t)


def run(args: argparse.Namespace) -> int:
    """The study's recipe: LR range test, head with SGDR, unfreeze, discriminative LRs with
    SGDR (cycle length doubling), early stopping; export and plots."""
    import matplotlib

    matplotlib.use("Agg")
    import pandas as pd

    from dermlearn.io import atomic_write_text
    from dermlearn.training.recipe import study_recipe

    check_arch(args.arch)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_config(args, args.parser, out / "run.toml")  # before training: a run that fails can be rerun too
    data = data_from_args(args)
    print(data)
    learn = learner_for(args, data)
    learn.add_cbs(_loggers(args))
    if args.correct:
        print("corrections (exported with the model): " + ", ".join(map(repr, learn.dls.batch_tfms[: len(args.correct)])))
    pretrained = args.pretrained not in (None, "none")
    res = study_recipe(learn, pretrained, args.lr, args.head_cycles, args.cycles, args.patience, lr_find_iters=args.num_it)
    if res.lr_find is not None:
        save_figure(res.lr_find.plot(used=res.lr), out / "lr_find.png")
    lr, history = res.lr, res.history
    atomic_write_text(pd.DataFrame(history).to_csv(index=False), out / "history.csv")
    save_figure(learn.recorder.plot_loss(), out / "loss.png")
    if args.calibrate:
        print(f"temperature scaling on the validation split: T = {learn.calibrate():.3f}")
    res = learn.validate()
    extra = {"data": args.data, "seed": args.seed, "lr": lr, "validation": res}
    path = learn.export(out / "model.pth", extra=extra)
    # the Hugging Face layout; its model card reports the metrics per skin type and body region where the data has them
    valid = data.indices("valid")
    groups = {name: data.items[col].astype(str).to_numpy()[valid].tolist()
              for col, name in (("fitzpatrick", "Fitzpatrick skin type"), ("region", "body region")) if col in data.items.columns}  # fmt: skip
    learn.save_pretrained(out / "model", extra=extra, groups=groups or None)
    for cb in learn.cbs:  # one tracker run for the whole recipe, ended here
        if hasattr(cb, "finish"):
            cb.finish()
    print("validation: " + ", ".join(f"{k} {v:.4f}" for k, v in res.items()))
    print(f"wrote {path}, model/ (safetensors, config.json, model card), run.toml, history.csv, loss.png"
          + (", lr_find.png" if args.lr is None else ""))  # fmt: skip
    return 0


def _loggers(args: argparse.Namespace) -> list:
    """The run loggers ``--log`` names, with the command's settings as hyper-parameters."""
    hparams = {"data": args.data, "seed": args.seed, "size": args.size, "balance": args.balance, "correct": list(args.correct),
               "pretrained": args.pretrained, "command": "dermlearn train"}  # fmt: skip
    loggers = []
    if "csv" in args.log:
        from dermlearn.training.csv_logger import CSVLogger

        loggers.append(CSVLogger("log.csv", hparams=hparams))
    if "tensorboard" in args.log:
        from dermlearn.training.tensorboard_logger import TensorBoardCallback

        loggers.append(TensorBoardCallback("runs", hparams=hparams))
    if "wandb" in args.log:
        from dermlearn.training.wandb_logger import WandbCallback

        loggers.append(WandbCallback(project="dermlearn", log_model=True, hparams=hparams, dir=args.out))
    if "mlflow" in args.log:
        from dermlearn.training.mlflow_logger import MLflowCallback

        loggers.append(MLflowCallback(experiment="dermlearn", log_model=True, hparams=hparams))
    return loggers
