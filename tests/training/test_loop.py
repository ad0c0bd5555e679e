"""The training loop: sparse updates touch only the batch's rows; fast paths match a reference."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from skctr.nn.embedding import FieldEmbedding, LinearTerm, TensorBatch
from skctr.preprocessing.schema import DenseField, FeatureSchema, SequenceField, SparseField
from skctr.training.loop import (
    TrainConfig,
    TrainState,
    clip_gradients,
    make_optimizers,
    predict_logits,
    refresh_running_statistics,
    set_learning_rates,
    train,
)

SCHEMA = FeatureSchema(
    sparse=(SparseField("a", 50), SparseField("b", 20)),
    dense=(DenseField("d"),),
    sequence=(SequenceField("hist_a", 50, 4, shares="a"),),
)


def _batch(n: int, rng: np.random.Generator, high: int = 10) -> TensorBatch:
    lengths = rng.integers(0, 5, size=(n, 1))
    seq = rng.integers(3, high, size=(n, 4)) * (np.arange(4) < lengths)
    return TensorBatch(
        torch.as_tensor(np.c_[rng.integers(3, high, n), rng.integers(3, high, n)]),
        torch.as_tensor(rng.normal(size=(n, 1)), dtype=torch.float32),
        (torch.as_tensor(seq),),
        torch.as_tensor(lengths),
    )


class _Core(torch.nn.Module):
    def __init__(self, schema):
        super().__init__()
        self.emb = FieldEmbedding(schema, 4)
        self.linear = LinearTerm(schema)

    def forward(self, batch):
        return self.linear(batch) + self.emb(batch).sum(dim=(1, 2))


def _config(**kw):
    base = dict(
        batch_size=16,
        max_epochs=1,
        l2_embedding=1e-3,
        n_iter_no_change=2,
        verbose=0,
        device=torch.device("cpu"),
        owner="test",
    )
    return TrainConfig(**{**base, **kw})


def test_untouched_embedding_rows_are_not_updated():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    core = _Core(SCHEMA)
    data = _batch(64, rng, high=10)  # codes 3..9 only: rows >= 10 of each field stay untouched
    before = core.emb.table.weight.detach().clone()
    y = (rng.random(64) > 0.5).astype(np.float32)
    state = TrainState(make_optimizers(core, 1e-2))
    train(core, data, y, np.ones(64), state, _config(), torch.Generator().manual_seed(0))
    after = core.emb.table.weight.detach()
    changed = (after != before).any(dim=1)
    a_rows, b_rows = np.arange(0, 50), np.arange(50, 70)
    assert changed[a_rows[3:10]].all() and changed[b_rows[3:10]].all()
    assert not changed[a_rows[10:]].any() and not changed[b_rows[10:]].any()
    assert not changed[a_rows[:3]].any()  # padding rows get no gradient, not even L2


def test_first_order_weights_take_their_own_step():
    # Adam's first step moves each weight with a gradient by lr * g / (|g| + eps): by lr
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    core = _Core(SCHEMA)
    before = {name: p.detach().clone() for name, p in core.named_parameters()}
    optimizers = make_optimizers(core, 1e-3, 2e-2)
    linear = {id(p) for p in core.linear.parameters()}
    for group in (g for opt in optimizers for g in opt.param_groups):
        assert all((id(p) in linear) == group["first_order"] for p in group["params"])
    data, y = _batch(64, rng), rng.integers(0, 2, 64).astype(np.float32)
    config = _config(batch_size=64, l2_embedding=0.0)  # one step
    train(core, data, y, np.ones(64), TrainState(optimizers), config, torch.Generator())
    for name, p in core.named_parameters():
        moved = (p.detach() - before[name]).abs()
        step = 2e-2 if name.startswith("linear.") else 1e-3
        assert moved.max().item() == pytest.approx(step, rel=1e-4), name
        assert (moved <= step * (1 + 1e-5)).all(), name
    set_learning_rates(optimizers, 5e-4, 7e-3)
    assert {(g["first_order"], g["lr"]) for opt in optimizers for g in opt.param_groups} == {
        (False, 5e-4),
        (True, 7e-3),
    }


def _early_stopped(core, seed: int, max_epochs: int):
    """Train ``core`` on 256 random rows with early stopping on 64 more; return the state,
    the training rows and the validation rows and targets."""
    rng = np.random.default_rng(seed)
    data, val = _batch(256, rng), _batch(64, rng)
    y, yv = rng.integers(0, 2, 256).astype(np.float32), rng.integers(0, 2, 64).astype(np.float32)
    state = TrainState(make_optimizers(core, 0.05))
    config = _config(max_epochs=max_epochs, n_iter_no_change=3)
    generator = torch.Generator().manual_seed(0)
    train(core, data, y, np.ones(256), state, config, generator, (val, yv, np.ones(64)))
    return state, data, val, yv


def test_early_stopping_restores_the_best_epoch():
    torch.manual_seed(0)
    core = _Core(SCHEMA)
    state, _, val, yv = _early_stopped(core, 3, max_epochs=15)
    losses = [h["val_logloss"] for h in state.history]
    from sklearn.metrics import log_loss

    p = 1 / (1 + np.exp(-predict_logits(core, val)))
    assert abs(log_loss(yv, p) - min(losses)) < 1e-6
    assert state.val_logloss == min(losses)  # what the linear fallback compares


def _train_recording(decays: int, data, y, val) -> tuple[_Core, TrainState, list, list]:
    """Train a fresh core; return it, its state, the weights after each epoch and every
    (epochs done, state dict) the loop loaded into the core."""
    torch.manual_seed(0)
    core = _Core(SCHEMA)
    after, loaded = [], []
    config = _config(max_epochs=60, n_iter_no_change=2, step_decays=decays)
    config.on_epoch_end = lambda record: after.append(copy.deepcopy(core.state_dict()))
    state = TrainState(make_optimizers(core, 0.05, 0.1))
    load = core.load_state_dict

    def recording_load(weights, *args, **kwargs):
        loaded.append((len(state.history), copy.deepcopy(weights)))
        return load(weights, *args, **kwargs)

    core.load_state_dict = recording_load
    generator = torch.Generator().manual_seed(0)
    train(core, data, y, np.ones(len(y)), state, config, generator, (val[0], val[1], np.ones(64)))
    return core, state, after, loaded


def test_a_plateau_goes_on_from_the_best_epoch_with_smaller_steps():
    rng = np.random.default_rng(3)
    data, val = _batch(256, rng), _batch(64, rng)
    y, yv = rng.integers(0, 2, 256).astype(np.float32), rng.integers(0, 2, 64).astype(np.float32)
    _, plain, _, _ = _train_recording(0, data, y, (val, yv))
    core, state, after, loaded = _train_recording(2, data, y, (val, yv))
    losses = [h["val_logloss"] for h in state.history]
    # this run: best at epoch 3, plateau after 5; x 0.2 finds a better epoch 6, plateau
    # after 8; x 0.04 finds none by epoch 10, and two reductions are the most
    assert len(plain.history) == 5 and len(state.history) == 10
    assert [h["val_logloss"] for h in plain.history] == losses[:5]  # the same until then
    scales = [h["step_scale"] for h in state.history]
    assert scales == pytest.approx([1.0] * 5 + [0.2] * 3 + [0.04] * 2)
    assert np.argmin(losses[:5]) == 2 and np.argmin(losses[:8]) == 5
    assert min(losses[8:]) > min(losses[:8])
    # each plateau went back to the best epoch so far; the end restored the best of all
    assert [epochs for epochs, _ in loaded] == [5, 8, 10]
    for (_, weights), best in zip(loaded, (2, 5, 5), strict=True):
        for name, value in after[best].items():
            torch.testing.assert_close(weights[name], value, rtol=0, atol=0)
    from sklearn.metrics import log_loss

    p = 1 / (1 + np.exp(-predict_logits(core, val)))
    assert log_loss(yv, p) == pytest.approx(min(losses), abs=1e-6)
    # the steps are given back as they were
    assert {(g["first_order"], g["lr"]) for o in state.optimizers for g in o.param_groups} == {
        (False, 0.05),
        (True, 0.1),
    }
    # with more reductions allowed it stops there too: the second found no better epoch
    _, more, _, _ = _train_recording(5, data, y, (val, yv))
    assert [h["val_logloss"] for h in more.history] == losses
    # the path to the kept weights: epochs 1-3 at full steps, then epoch 6 at x 0.2 (4 and
    # 5 were undone by the first plateau, 7-10 by the second and by the end)
    assert state.path == pytest.approx([1.0, 1.0, 1.0, 0.2])
    assert plain.path == pytest.approx([1.0, 1.0, 1.0])


def test_a_refit_replays_a_path_with_its_steps():
    rng = np.random.default_rng(3)
    data, y = _batch(256, rng), rng.integers(0, 2, 256).astype(np.float32)
    torch.manual_seed(0)
    core = _Core(SCHEMA)
    state = TrainState(make_optimizers(core, 0.05, 0.1))
    seen = []
    config = _config(max_epochs=50, refit_path=[1.0, 1.0, 0.2], marks={"linear": True})
    config.on_epoch_end = lambda record: seen.append(
        sorted({round(g["lr"], 12) for o in state.optimizers for g in o.param_groups})
    )
    train(core, data, y, np.ones(256), state, config, torch.Generator().manual_seed(0))
    assert [(h["step_scale"], h["refit"], h["linear"]) for h in state.history] == [
        (1.0, True, True),
        (1.0, True, True),
        (0.2, True, True),
    ]
    assert "val_logloss" not in state.history[0] and state.val_logloss == math.inf
    assert seen == [[0.05, 0.1], [0.05, 0.1], [0.01, 0.02]]
    assert state.path == pytest.approx([1.0, 1.0, 0.2])
    # the steps are given back as they were
    assert {g["lr"] for o in state.optimizers for g in o.param_groups} == {0.05, 0.1}
    with pytest.raises(ValueError, match="refit_path"):
        train(
            core, data, y, np.ones(256), state, config, torch.Generator(), (data, y, np.ones(256))
        )


def test_predictions_do_not_depend_on_the_rows_scored_together():
    torch.manual_seed(0)
    from skctr.nn import MLP

    class Deep(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = FieldEmbedding(SCHEMA, 8)
            self.mlp = MLP(4 * 8, (64, 32), output_dim=1)

        def forward(self, batch):
            return self.mlp(self.emb(batch).flatten(1)).squeeze(-1)

    core = Deep()
    data = _batch(5000, np.random.default_rng(4))  # a full chunk of 4096, then a padded one
    full = predict_logits(core, data)
    for i in (0, 1500, 4095, 4096, 4999):
        one = predict_logits(core, data.slice(i, i + 1))
        assert one[0] == full[i]  # bit-identical, not merely close


class _Normalised(torch.nn.Module):
    """Embeddings -> linear -> batch norm -> linear -> Dice -> logit."""

    def __init__(self):
        super().__init__()
        from skctr.nn import Dice

        self.emb = FieldEmbedding(SCHEMA, 4)
        self.first = torch.nn.Linear(16, 6)
        self.norm = torch.nn.BatchNorm1d(6)
        self.second = torch.nn.Linear(6, 5)
        self.dice = Dice(5)
        self.head = torch.nn.Linear(5, 1)

    def forward(self, batch):
        hidden = self.norm(self.first(self.emb(batch).flatten(1)))
        return self.head(self.dice(self.second(hidden))).squeeze(-1)


def _batch_statistics(core, data, rows, batch_size):
    """Per module (batch norm, Dice): each batch's input mean and unbiased variance at the
    current weights, from a copy run forward in training mode."""
    copied = copy.deepcopy(core).train()
    seen = {"norm": [], "dice": []}
    for name in seen:
        getattr(copied, name).register_forward_hook(
            lambda module, args, out, name=name: seen[name].append(
                (args[0].mean(dim=0), args[0].var(dim=0))
            )
        )
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            copied(data.index(rows[start : start + batch_size]))
    return {
        name: [torch.stack(stat).mean(dim=0) for stat in zip(*pairs, strict=True)]
        for name, pairs in seen.items()
    }


def test_refresh_running_statistics_averages_the_batches_at_fixed_weights():
    torch.manual_seed(0)
    core = _Normalised()
    data = _batch(100, np.random.default_rng(5))
    core.train()
    with torch.no_grad():  # stale statistics, then weights that move on
        for start in range(0, 100, 20):
            core(data.slice(start, start + 20))
        for p in core.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    core.eval()
    weights = {k: v.clone() for k, v in core.named_parameters()}
    rows = torch.randperm(100)
    # 100 rows in batches of 32: three batches and a remainder of 4
    expected = _batch_statistics(core, data, rows, 32)
    assert refresh_running_statistics(core, data, rows, 32, torch.device("cpu"))
    for name, module in (("norm", core.norm), ("dice", core.dice)):
        mean, var = expected[name]
        torch.testing.assert_close(module.running_mean, mean)
        torch.testing.assert_close(module.running_var, var)
        assert int(module.num_batches_tracked) == 4
    assert core.norm.momentum == 0.1 and core.dice.momentum == 0.1  # restored
    assert not core.training  # the mode it was called in
    for k, v in weights.items():  # the weights themselves do not move
        assert torch.equal(core.state_dict()[k], v), k


def test_refresh_running_statistics_leaves_a_last_single_row_out():
    torch.manual_seed(0)
    core = _Normalised()
    data = _batch(33, np.random.default_rng(6))
    rows = torch.arange(33)
    expected = _batch_statistics(core, data, rows[:32], 16)
    assert refresh_running_statistics(core, data, rows, 16, torch.device("cpu"))
    torch.testing.assert_close(core.norm.running_mean, expected["norm"][0])
    assert int(core.norm.num_batches_tracked) == 2


def test_refresh_running_statistics_without_normalising_modules_does_nothing():
    core = _Core(SCHEMA)
    before = copy.deepcopy(core.state_dict())
    assert not refresh_running_statistics(
        core, _batch(10, np.random.default_rng(0)), torch.arange(10), 4, torch.device("cpu")
    )
    assert all(torch.equal(core.state_dict()[k], v) for k, v in before.items())


def test_training_keeps_the_statistics_of_the_weights_it_returns():
    # with stale running averages the weights of the best epoch would be evaluated with the
    # statistics of the steps before it
    torch.manual_seed(0)
    core = _Normalised()
    _, data, _, _ = _early_stopped(core, 7, max_epochs=8)
    # batches of equal size: the average of the batch means is the mean over every row
    expected = _batch_statistics(core, data, torch.arange(256), 256)
    torch.testing.assert_close(core.norm.running_mean, expected["norm"][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(core.dice.running_mean, expected["dice"][0], atol=1e-5, rtol=0)


def test_clip_gradients_bounds_the_joint_norm_sparse_gradients_included():
    torch.manual_seed(0)
    core = _Core(SCHEMA)
    data = _batch(32, np.random.default_rng(5))
    (core(data) * 1000).sum().backward()
    assert core.emb.table.weight.grad.is_sparse
    dense = {n: p.grad.to_dense().clone() for n, p in core.named_parameters()}
    norm = torch.sqrt(sum(g.pow(2).sum() for g in dense.values()))
    assert norm > 1.0
    clip_gradients(core, 1.0)
    clipped = {n: p.grad.to_dense() for n, p in core.named_parameters()}
    assert abs(float(torch.sqrt(sum(g.pow(2).sum() for g in clipped.values()))) - 1.0) < 1e-4
    for name, g in clipped.items():  # every gradient scaled by the same factor
        torch.testing.assert_close(g, dense[name] / norm, rtol=1e-4, atol=1e-7)
    before = {n: g.clone() for n, g in clipped.items()}
    clip_gradients(core, 10.0)  # below the bound: unchanged
    for name, p in core.named_parameters():
        torch.testing.assert_close(p.grad.to_dense(), before[name], rtol=1e-5, atol=0)


class _PoisonedCore(_Core):
    """Its weights turn NaN during the backward pass of one step, after a finite loss."""

    def __init__(self, schema, poison_at):
        super().__init__(schema)
        self.poison_at, self.calls = poison_at, 0

    def forward(self, batch):
        out = super().forward(batch)
        if self.training:
            self.calls += 1
            if self.calls == self.poison_at:
                out.register_hook(self._poison)
        return out

    def _poison(self, grad):
        with torch.no_grad():
            self.linear.bias.fill_(float("nan"))
        return grad


def test_non_finite_weights_after_a_finite_loss_restore_the_last_good_epoch():
    torch.manual_seed(0)
    rng = np.random.default_rng(6)
    core = _PoisonedCore(SCHEMA, poison_at=4 + 4)  # the last of 4 batches of epoch 2
    data, y = _batch(64, rng), rng.integers(0, 2, 64).astype(np.float32)
    snapshots = []
    config = _config(max_epochs=4)
    config.on_epoch_end = lambda record: snapshots.append(
        {k: v.clone() for k, v in core.state_dict().items()}
    )
    state = TrainState(make_optimizers(core, 1e-2))
    with pytest.warns(RuntimeWarning, match=r"in epoch 2;.*after epoch 1.*learning_rate"):
        train(core, data, y, np.ones(64), state, config, torch.Generator().manual_seed(0))
    assert [h["epoch"] for h in state.history] == [1] and len(snapshots) == 1
    for name, value in core.state_dict().items():
        torch.testing.assert_close(value, snapshots[0][name], rtol=0, atol=0)
    assert np.isfinite(predict_logits(core, data)).all()


def test_the_fused_dense_adam_takes_the_same_steps_as_the_plain_one():
    torch.manual_seed(0)
    core = _Core(SCHEMA)
    plain = copy.deepcopy(core)
    fused = make_optimizers(core, 1e-2)[0]
    assert fused.defaults["fused"]  # a CPU float32 model gets the fused kernel
    reference = torch.optim.Adam(
        [p for n, p in plain.named_parameters() if "table" not in n], lr=1e-2
    )
    data = _batch(64, np.random.default_rng(6))
    for model, opt in ((core, fused), (plain, reference)):
        for _ in range(5):
            opt.zero_grad()
            model(data).square().mean().backward()
            opt.step()
    for (name, a), b in zip(core.named_parameters(), plain.parameters(), strict=True):
        if "table" not in name:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
