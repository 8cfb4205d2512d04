"""Schedules against fastai 2.8.12's recorded traces (rel. err < 1e-6), except its defects."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import dermlearn as dl
from dermlearn.training.schedule import one_cycle_scheds, sgdr_cycle_epochs
from tests.helpers import tiny_learner

RTOL = 1e-6


def assert_trace(got, want, skip=()):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    keep = np.ones(len(want), dtype=bool)
    keep[list(skip)] = False
    rel = np.abs(got[keep] - want[keep]) / np.maximum(np.abs(want[keep]), 1e-300)
    assert rel.max() < RTOL, f"max rel err {rel.max():.3g} at index {np.flatnonzero(keep)[rel.argmax()]}"


def test_schedule_functions_spot_values(traces):
    sf = traces["schedule_functions"]
    for pos, v in sf["SchedCos_1e2_to_0"].items():
        assert dl.SchedCos(1e-2, 0)(float(pos)) == pytest.approx(v, rel=1e-12, abs=1e-18)
    for pos, v in sf["SchedExp_1em7_to_10"].items():
        assert dl.SchedExp(1e-7, 10)(float(pos)) == pytest.approx(v, rel=1e-12)
    for pos, v in sf["SchedLin_0_to_1"].items():
        assert dl.SchedLin(0, 1)(float(pos)) == pytest.approx(v, abs=1e-15)
    for pos, v in sf["SchedPoly_1_to_0_pow2"].items():
        assert dl.SchedPoly(1, 0, 2)(float(pos)) == pytest.approx(v, abs=1e-15)
    comb = dl.combine_scheds([0.25, 0.75], [dl.SchedCos(0.3, 0.6), dl.SchedCos(0.6, 0.2)])
    for pos, v in sf["combine_scheds_example"]["values"].items():
        assert comb(float(pos)) == pytest.approx(v, rel=RTOL)
    assert_trace(dl.even_mults(1e-4, 1e-2, 3), sf["even_mults_1em4_1em2_3"])
    assert_trace(dl.even_mults(1e-5, 1e-3, 5), sf["even_mults_1em5_1em3_5"])


def test_fit_sgdr_matches_trace_and_restarts_exactly(traces):
    t = traces["fit_sgdr"]
    learn = tiny_learner()
    learn.fit_sgdr(n_cycles=3, cycle_len=1, lr_max=1e-2, cycle_mult=2)
    lrs = learn.recorder.lrs
    assert len(lrs) == t["n_iter"] == 70
    ref, fastai = np.array(t["reference_lr"]), np.array(t["lr"])
    # fastai's progress is float32: at iteration 30 it restarts a batch late (7.9e-16 instead
    # of lr_max) and near cycle ends, where lr -> 0, it drifts > 1e-6 from its own float64
    # reference. Exempt exactly those points (read from the file), and there match the reference.
    drift = np.flatnonzero(np.abs(fastai - ref) / ref > RTOL)
    assert 30 in drift and len(drift) <= 8
    assert_trace(lrs, t["lr"], skip=drift)
    np.testing.assert_allclose(lrs, ref, rtol=1e-12)
    for start in t["cycle_start_iters"]:
        assert lrs[start] == 1e-2  # exactly lr_max at every restart
    assert all(m == pytest.approx(0.9) for m in learn.recorder.moms)


def test_fit_sgdr_cycle_mult_1_gives_equal_cycles():
    learn = tiny_learner()
    learn.fit_sgdr(n_cycles=3, cycle_len=2, lr_max=1e-2, cycle_mult=1)
    lrs = np.array(learn.recorder.lrs)
    assert len(lrs) == 60
    np.testing.assert_allclose(lrs[:20], lrs[20:40], rtol=1e-12)
    np.testing.assert_allclose(lrs[:20], lrs[40:60], rtol=1e-12)
    assert lrs[0] == lrs[20] == lrs[40] == 1e-2
    assert sgdr_cycle_epochs(4, 1, 2) == [1, 2, 4, 8]


def test_fit_sgdr_eta_min_and_bad_args():
    learn = tiny_learner()
    learn.fit_sgdr(1, 1, lr_max=1e-2, eta_min=1e-3)
    assert min(learn.recorder.lrs) > 1e-3
    assert learn.recorder.lrs[5] == pytest.approx(1e-3 + (1e-2 - 1e-3) / 2, rel=1e-12)
    with pytest.raises(ValueError, match="cycle_mult"):
        learn.fit_sgdr(2, 1, lr_max=1e-2, cycle_mult=0)


def test_fit_one_cycle_matches_trace(traces):
    t = traces["fit_one_cycle"]
    learn = tiny_learner()
    learn.fit_one_cycle(2, lr_max=1e-2)
    assert_trace(learn.recorder.lrs, t["lr"])
    assert_trace(learn.recorder.moms, t["mom"])


def test_one_cycle_final_lr_convention():
    """Iteration i of N uses sched(i/N): lr_max/div_final is the limit at pos=1, never a step."""
    learn = tiny_learner()
    learn.fit_one_cycle(1, lr_max=1e-2)
    sched = one_cycle_scheds(1e-2)["lr"]
    assert sched(1.0) == pytest.approx(1e-2 / 1e5, rel=1e-12)
    assert learn.recorder.lrs[-1] == pytest.approx(sched(9 / 10), rel=1e-12)
    assert learn.recorder.lrs[-1] > 1e-2 / 1e5


def test_one_cycle_slice_per_group(traces):
    e = traces["extras"]
    learn = tiny_learner()
    learn.fit_one_cycle(1, lr_max=slice(1e-4, 1e-2))
    assert_trace(np.ravel(learn.recorder.group_lrs), np.ravel(e["one_cycle_slice_3groups"]["lr_per_group"]))
    assert_trace(learn.recorder.moms, e["one_cycle_slice_3groups"]["mom"])
    learn = tiny_learner()
    learn.fit_one_cycle(1, lr_max=slice(1e-2))
    assert_trace(np.ravel(learn.recorder.group_lrs), np.ravel(e["one_cycle_slice_stop_only_3groups"]["lr_per_group"]))


def test_fit_flat_cos_matches_trace(traces):
    e = traces["extras"]["fit_flat_cos"]
    learn = tiny_learner()
    learn.fit_flat_cos(2, lr=1e-2)
    assert_trace(learn.recorder.lrs, e["lr"])
    assert_trace(learn.recorder.moms, e["mom"])


def test_fine_tune_phases(traces):
    e = traces["extras"]["fine_tune_second_phase"]
    learn = tiny_learner()
    seen = []

    class Spy(dl.Callback):
        def before_fit(self):
            seen.append([all(p.requires_grad for p in g) for g in self.learn.layer_groups()])

    learn.add_cb(Spy())
    learn.fine_tune(1, base_lr=2e-3)
    assert seen[0] == e["requires_grad_per_linear_layer_first_phase"]
    assert seen[1] == e["requires_grad_last_phase"]
    assert_trace(np.ravel(learn.recorder.group_lrs), np.ravel(e["lr_per_group"]))
    assert_trace(learn.recorder.moms, e["mom"])


@pytest.mark.parametrize("method", ["sgdr", "one_cycle", "flat_cos"])
def test_start_epoch_is_honoured(method):
    """Resuming at epoch k replays exactly the tail of the full schedule (fastai's
    fit_flat_cos ignores start_epoch)."""
    def run(start):
        learn = tiny_learner()
        if method == "sgdr":
            learn.fit_sgdr(2, 1, lr_max=1e-2, start_epoch=start)
        elif method == "one_cycle":
            learn.fit_one_cycle(3, lr_max=1e-2, start_epoch=start)
        else:
            learn.fit_flat_cos(3, lr=1e-2, start_epoch=start)
        return learn.recorder.lrs

    full, tail = run(0), run(1)
    assert len(tail) == len(full) - 10
    assert tail == full[10:]


def test_combine_scheds_exact_fraction_boundaries():
    s = dl.combine_scheds([Fraction(1, 7), Fraction(2, 7), Fraction(4, 7)], [dl.SchedCos(1.0, 0.0)] * 3)
    for k in (10, 30):
        assert s(k / 70) == 1.0
    with pytest.raises(ValueError, match="sum to 1"):
        dl.combine_scheds([0.5, 0.6], [dl.SchedNo(1, 1)] * 2)
    with pytest.raises(ValueError, match="entries"):
        dl.combine_scheds([1.0], [dl.SchedNo(1, 1)] * 2)


def test_five_equal_sgdr_cycles_each_restart_at_lr_max():
    """Cycle boundaries come from integers (Fraction): with float boundaries, five equal
    cycles put the fourth restart one batch late, at lr 0."""
    from tests.helpers import tiny_learner

    learn = tiny_learner()  # 10 batches an epoch
    learn.fit_sgdr(5, 1, lr_max=1e-2, cycle_mult=1)
    lrs = learn.recorder.lrs
    assert len(lrs) == 50
    assert [lrs[i] for i in range(0, 50, 10)] == [1e-2] * 5  # every cycle's first batch at lr_max exactly
    assert all(lrs[i - 1] < 1e-3 for i in range(10, 50, 10))  # and the batch before near eta_min
