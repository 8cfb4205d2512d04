"""Run loggers write what the Recorder holds: read back from the CSV files and from
TensorBoard's event files through TensorBoard's own reader."""

from __future__ import annotations

import csv
import json

import pytest
import torch

import dermlearn as dl
from dermlearn.callback import Callback
from tests.helpers import tiny_learner


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_csv_logger_writes_the_recorders_values(tmp_path):
    learn = tiny_learner(metrics=[dl.accuracy], path=tmp_path)
    logger = dl.CSVLogger(hparams={"seed": 0}, figures=False)
    learn.fit_one_cycle(3, 1e-2, cbs=[logger])
    rows = _rows(tmp_path / "history.csv")
    assert list(rows[0]) == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    assert len(rows) == 3
    for row, rec in zip(rows, learn.recorder.values, strict=True):
        assert int(row["epoch"]) == rec["epoch"]
        for k in ("train_loss", "valid_loss", "accuracy"):
            assert float(row[k]) == rec[k], k  # written with repr: the same float back
        mm, ss = map(int, row["time"].split(":"))
        assert mm * 60 + ss == round(rec["time"])
    batches = _rows(tmp_path / "history_batches.csv")
    assert [float(r["train_loss"]) for r in batches] == learn.recorder.losses  # 10 batches x 3 epochs
    assert [[float(r[f"lr_{g}"]) for g in range(3)] for r in batches] == learn.recorder.group_lrs
    assert [int(r["step"]) for r in batches] == list(range(30))
    hp = json.loads((tmp_path / "history_hparams.json").read_text())
    assert hp["seed"] == 0 and hp["n_epoch"] == 3 and hp["layer_groups"] == 3 and hp["arch"] == "ThreeGroupMLP"
    assert hp["loss"] == "CrossEntropy" and set(hp["schedule"]) == {"lr", "mom"}


def test_later_fits_of_one_logger_add_rows_and_a_new_logger_starts_over(tmp_path):
    learn = tiny_learner(metrics=[dl.accuracy], path=tmp_path)
    logger = dl.CSVLogger(figures=False)
    learn.fit(2, lr=1e-2, cbs=[logger])
    learn.fit(1, lr=1e-2, cbs=[logger])
    assert [r["epoch"] for r in _rows(tmp_path / "history.csv")] == ["0", "1", "0"]
    assert [int(r["step"]) for r in _rows(tmp_path / "history_batches.csv")] == list(range(30))
    learn.fit(1, lr=1e-2, cbs=[dl.CSVLogger(figures=False)])
    assert len(_rows(tmp_path / "history.csv")) == 1
    learn.fit(1, lr=1e-2, cbs=[dl.CSVLogger(append=True, figures=False)])  # e.g. a resumed run
    assert len(_rows(tmp_path / "history.csv")) == 2


def test_appending_to_another_runs_file_is_refused(tmp_path):
    (tmp_path / "history.csv").write_text("epoch,train_loss,valid_loss,time\n0,1.0,1.0,00:01\n")
    learn = tiny_learner(metrics=[dl.accuracy], path=tmp_path)
    with pytest.raises(ValueError, match=r"history.csv: cannot append: its columns are epoch, train_loss, valid_loss, time"):
        learn.fit(1, lr=1e-2, cbs=[dl.CSVLogger(append=True, figures=False)])
    assert (tmp_path / "history.csv").read_text().count("\n") == 2  # left as it was


class _CrashAfter(Callback):
    order = 70  # after the logger

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.at = epoch

    def after_epoch(self) -> None:
        if self.learn.epoch == self.at:
            raise RuntimeError("power cut")


def test_a_crashed_run_keeps_every_finished_epoch(tmp_path):
    learn = tiny_learner(path=tmp_path)
    with pytest.raises(RuntimeError, match="power cut"):
        learn.fit(5, lr=1e-2, cbs=[dl.CSVLogger(figures=False), _CrashAfter(1)])
    assert [r["epoch"] for r in _rows(tmp_path / "history.csv")] == ["0", "1"]


def test_end_of_fit_figures_and_model(tmp_path, lesion_dls):
    torch.manual_seed(0)
    learn = dl.Learner(lesion_dls, dl.create_model("simple_cnn", 4), progress=False, device="cpu", path=tmp_path)
    learn.lr_find(num_it=10, show_plot=False)
    learn.fit(1, lr=1e-3, cbs=[dl.CSVLogger(log_model=True)])
    torch.testing.assert_close(dl.load_learner(tmp_path / "history_model.pth").get_preds(dl=lesion_dls.valid)[0], learn.get_preds()[0])
    pngs = sorted(p.name for p in tmp_path.glob("history_*.png"))
    assert "history_confusion_matrix.png" in pngs and "history_lr_find.png" in pngs
    assert any(p.startswith("history_gallery_") for p in pngs)  # an untrained model confuses some pair
    assert all((tmp_path / p).stat().st_size > 5000 for p in pngs)


def test_tensorboard_events_hold_the_recorders_values(tmp_path, lesion_dls):
    pytest.importorskip("tensorboard", reason="tensorboard is not installed: pip install -e '.[tensorboard]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    torch.manual_seed(0)
    learn = dl.Learner(lesion_dls, dl.create_model("simple_cnn", 4), metrics=[dl.accuracy], progress=False, device="cpu",
                       path=tmp_path)  # fmt: skip
    learn.fit_sgdr(2, 1, lr_max=3e-3, cbs=[dl.TensorBoardCallback(hparams={"seed": 7}, log_model=True)])
    assert dl.load_learner(tmp_path / "runs" / "model.pth").meta["arch"] == "simple_cnn"
    assert any((tmp_path / "runs").glob("events.out.tfevents.*"))
    acc = EventAccumulator(str(tmp_path / "runs"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    rec = learn.recorder
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx(rec.losses, rel=1e-6)  # float32 in the file
    assert [e.step for e in acc.Scalars("train/loss")] == list(range(len(rec.losses)))
    assert [e.value for e in acc.Scalars("train/lr_2")] == pytest.approx([g[2] for g in rec.group_lrs], rel=1e-6)
    for name in ("train_loss", "valid_loss", "accuracy"):
        assert [e.value for e in acc.Scalars(f"epoch/{name}")] == pytest.approx(rec.history(name), rel=1e-6)
    assert "confusion_matrix" in acc.Tags()["images"]
    text = acc.Tensors("hparams/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"seed": 7' in text and '"arch": "simple_cnn"' in text


def _wandb_records(path):
    """The records of a W&B run file (``run-*.wandb``): W&B's LevelDB-style log (a 7-byte
    header, 32 KiB blocks of checksum / length / type / data chunks), each record a
    ``wandb_internal_pb2.Record``, parsed with W&B's own protobuf definitions."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, pending = path.read_bytes(), 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # the block's tail is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # FULL, LAST
            rec = wandb_internal_pb2.Record()
            rec.ParseFromString(pending + chunk)
            pending = b""
            yield rec
        elif kind in (2, 3):  # FIRST, MIDDLE
            pending += chunk


def test_wandb_offline_run_holds_the_recorders_values(tmp_path, lesion_dls, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed: pip install -e '.[wandb]'")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    torch.manual_seed(0)
    learn = dl.Learner(lesion_dls, dl.create_model("simple_cnn", 4), metrics=[dl.accuracy], progress=False, device="cpu",
                       path=tmp_path)  # fmt: skip
    cb = dl.WandbCallback(project="dermlearn-test", dir=str(tmp_path), hparams={"seed": 11})
    learn.fit(2, lr=3e-3, cbs=[cb])
    cb.finish()
    (run_file,) = tmp_path.glob("wandb/offline-run-*/run-*.wandb")
    history, config = [], {}
    for rec in _wandb_records(run_file):
        kind = rec.WhichOneof("record_type")
        if kind == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in rec.history.item})
        elif kind == "config":
            config.update({item.key: json.loads(item.value_json) for item in rec.config.update})
    losses = [h["train/loss"] for h in history if "train/loss" in h]
    assert losses == pytest.approx(learn.recorder.losses, rel=1e-9)
    assert [h["epoch/valid_loss"] for h in history if "epoch/valid_loss" in h] == pytest.approx(learn.recorder.history("valid_loss"), rel=1e-9)
    media = [p.name for p in run_file.parent.glob("files/media/images/*.png")]
    assert any(m.startswith("confusion_matrix_") for m in media) and any(m.startswith("gallery_") for m in media)
    seed = config.get("seed")
    assert (seed.get("value") if isinstance(seed, dict) else seed) == 11


def test_mlflow_local_store_holds_the_recorders_values(tmp_path, lesion_dls, monkeypatch):
    pytest.importorskip("mlflow", reason="mlflow is not installed: pip install -e '.[mlflow]'")
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local folder store, as a test needs
    uri = (tmp_path / "mlruns").as_uri()
    torch.manual_seed(0)
    learn = dl.Learner(lesion_dls, dl.create_model("simple_cnn", 4), metrics=[dl.accuracy], progress=False, device="cpu",
                       path=tmp_path)  # fmt: skip
    cb = dl.MLflowCallback(tracking_uri=uri, experiment="derm", log_model=True, hparams={"seed": 5})
    learn.fit(2, lr=3e-3, cbs=[cb])
    run_id = cb.run_id
    cb.finish()
    client = MlflowClient(uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["seed"] == "5" and run.data.params["arch"] == "simple_cnn"
    losses = sorted(client.get_metric_history(run_id, "train/loss"), key=lambda m: m.step)
    assert [m.value for m in losses] == pytest.approx(learn.recorder.losses, rel=1e-9)
    valid = sorted(client.get_metric_history(run_id, "epoch/valid_loss"), key=lambda m: m.step)
    assert [m.value for m in valid] == pytest.approx(learn.recorder.history("valid_loss"), rel=1e-9)
    artifacts = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "figures")}
    assert {"model", "figures/confusion_matrix.png"} <= artifacts
    model = client.download_artifacts(run_id, "model/model.pth", str(tmp_path / "dl"))
    torch.testing.assert_close(dl.load_learner(model).get_preds(dl=lesion_dls.valid)[0], learn.get_preds()[0])
