"""LazyAdam: the fast row-wise update equals a plain per-row Adam on the touched rows."""

from __future__ import annotations

import math

import pytest
import torch

from skctr.training import optim
from skctr.training.optim import LazyAdam


def _reference_lazy_adam(w, grads, lr, betas=(0.9, 0.999), eps=1e-8):
    """Row by row, the textbook Adam update of every row a step's gradient names."""
    w = w.clone().double()
    m, v = torch.zeros_like(w), torch.zeros_like(w)
    for step, (idx, vals) in enumerate(grads, start=1):
        summed: dict[int, torch.Tensor] = {}
        for i, g in zip(idx.tolist(), vals.double(), strict=True):
            summed[i] = summed.get(i, 0) + g
        for i, g in summed.items():
            m[i] = betas[0] * m[i] + (1 - betas[0]) * g
            v[i] = betas[1] * v[i] + (1 - betas[1]) * g * g
            m_hat = m[i] / (1 - betas[0] ** step)
            v_hat = v[i] / (1 - betas[1] ** step)
            w[i] = w[i] - lr * m_hat / (v_hat.sqrt() + eps)
    return w.float()


def _sparse(idx, vals, shape):
    return torch.sparse_coo_tensor(idx[None], vals, shape, check_invariants=True)


def _random_grads(n_steps, rows, dim, nnz, seed):
    g = torch.Generator().manual_seed(seed)
    return [
        (torch.randint(0, rows, (nnz,), generator=g), torch.randn(nnz, dim, generator=g))
        for _ in range(n_steps)
    ]


@pytest.mark.parametrize("fused", [True, False])
def test_equals_the_per_row_reference_with_duplicate_rows(fused, monkeypatch):
    # torch's fused Adam kernel where it has one, else the same maths written out
    memo = {("cpu", torch.float32)} if not fused else set()
    monkeypatch.setattr(optim, "_NO_FUSED_ADAM", memo)
    if fused and getattr(torch, "_fused_adam_", None) is None:
        pytest.skip("this torch has no fused Adam kernel")
    torch.manual_seed(0)
    w0 = torch.randn(30, 4)
    grads = _random_grads(6, 30, 4, nnz=40, seed=1)  # 40 entries over 30 rows: duplicates
    p = torch.nn.Parameter(w0.clone())
    opt = LazyAdam([p], lr=0.05)
    for idx, vals in grads:
        p.grad = _sparse(idx, vals, p.shape)
        opt.step()
    expected = _reference_lazy_adam(w0, grads, lr=0.05)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)
    if fused and torch.__version__ >= "2.4":  # the fused kernel ran (CPU has one from 2.4)
        assert not memo


def test_a_device_without_a_fused_kernel_falls_back_to_the_same_maths(monkeypatch):
    def no_kernel(*args, **kwargs):
        raise NotImplementedError("no fused Adam here")

    monkeypatch.setattr(torch, "_fused_adam_", no_kernel, raising=False)
    memo = set()
    monkeypatch.setattr(optim, "_NO_FUSED_ADAM", memo)
    w0 = torch.randn(30, 4)
    grads = _random_grads(3, 30, 4, nnz=40, seed=4)
    p = torch.nn.Parameter(w0.clone())
    opt = LazyAdam([p], lr=0.05)
    for idx, vals in grads:
        p.grad = _sparse(idx, vals, p.shape)
        opt.step()
    assert memo == {("cpu", torch.float32)}
    torch.testing.assert_close(p.detach(), _reference_lazy_adam(w0, grads, lr=0.05))


@pytest.mark.parametrize(("dtype", "nnz"), [(torch.float64, 40), (torch.float32, 20_000)])
def test_float64_tables_and_batches_that_take_the_padded_sort_equal_the_reference(dtype, nnz):
    w0 = torch.randn(3_000, 2, dtype=dtype)
    grads = _random_grads(3, 3_000, 2, nnz=nnz, seed=5)
    p = torch.nn.Parameter(w0.clone())
    opt = LazyAdam([p], lr=0.05)
    for idx, vals in grads:
        p.grad = _sparse(idx, vals.to(dtype), p.shape)
        opt.step()
    expected = _reference_lazy_adam(w0, grads, lr=0.05).to(dtype)
    torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)


def test_a_half_precision_table_whose_sum_overflows_float16_is_finite():
    p = torch.nn.Parameter(torch.full((2_000, 16), 4.0, dtype=torch.float16))
    opt = LazyAdam([p], lr=1e-3)
    p.grad = _sparse(torch.arange(2_000), torch.ones(2_000, 16, dtype=torch.float16), p.shape)
    opt.step()
    assert opt.rows_finite()


def test_untouched_rows_keep_weights_and_moments():
    w0 = torch.randn(10, 3)
    p = torch.nn.Parameter(w0.clone())
    opt = LazyAdam([p], lr=0.1)
    p.grad = _sparse(torch.tensor([2, 5, 2]), torch.ones(3, 3), p.shape)
    opt.step()
    untouched = [i for i in range(10) if i not in (2, 5)]
    torch.testing.assert_close(p.detach()[untouched], w0[untouched], rtol=0, atol=0)
    assert opt.state[p]["exp_avg"][untouched].abs().sum() == 0
    # a first Adam step moves each touched coordinate by lr (m_hat / sqrt(v_hat) = sign(g))
    torch.testing.assert_close(p.detach()[[2, 5]], w0[[2, 5]] - 0.1, rtol=0, atol=1e-6)


def test_matches_torch_sparse_adam():
    torch.manual_seed(0)
    w0 = torch.randn(50, 8)
    grads = _random_grads(5, 50, 8, nnz=30, seed=2)
    a, b = torch.nn.Parameter(w0.clone()), torch.nn.Parameter(w0.clone())
    ours, theirs = LazyAdam([a], lr=0.01), torch.optim.SparseAdam([b], lr=0.01)
    for idx, vals in grads:
        a.grad, b.grad = _sparse(idx, vals, a.shape), _sparse(idx, vals, b.shape)
        ours.step()
        theirs.step()
    # SparseAdam adds eps before its bias correction; the difference is ~eps
    torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-4, atol=1e-5)


def test_two_tables_looked_up_with_the_same_codes_share_the_row_search():
    w_a, w_b = torch.randn(20, 4), torch.randn(20, 1)
    grads = _random_grads(3, 20, 5, nnz=25, seed=3)
    a, b = torch.nn.Parameter(w_a.clone()), torch.nn.Parameter(w_b.clone())
    opt = LazyAdam([a, b], lr=0.05)
    for idx, vals in grads:
        a.grad = _sparse(idx, vals[:, :4], a.shape)
        b.grad = _sparse(idx.clone(), vals[:, 4:], b.shape)
        opt.step()
    torch.testing.assert_close(
        a.detach(), _reference_lazy_adam(w_a, [(i, v[:, :4]) for i, v in grads], lr=0.05)
    )
    torch.testing.assert_close(
        b.detach(), _reference_lazy_adam(w_b, [(i, v[:, 4:]) for i, v in grads], lr=0.05)
    )


def test_coalesced_gradient():
    w0 = torch.randn(10, 2)
    p = torch.nn.Parameter(w0.clone())
    opt = LazyAdam([p], lr=0.1)
    p.grad = _sparse(torch.tensor([1, 1, 4]), torch.ones(3, 2), p.shape).coalesce()
    opt.step()
    torch.testing.assert_close(p.detach()[[1, 4]], w0[[1, 4]] - 0.1, rtol=0, atol=1e-6)


def test_embedding_with_sparse_gradients_trains():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(100, 4, sparse=True)
    opt = LazyAdam(emb.parameters(), lr=0.05)
    codes = torch.randint(0, 100, (64, 3))
    target = torch.randn(64, 3, 4)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = (emb(codes) - target).pow(2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert math.isfinite(losses[-1])


def test_dense_gradient_is_refused():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = LazyAdam([p])
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="sparse gradients only"):
        opt.step()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"lr": 0.0}, "lr"), ({"betas": (1.0, 0.9)}, "betas"), ({"eps": -1.0}, "eps")],
)
def test_bad_hyperparameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LazyAdam([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_l2_equals_the_autograd_penalty_on_every_looked_up_vector():
    """The penalty l2 * sum over looked-up occurrences of ||w||^2, taken through autograd
    on the looked-up vectors, gives the same step as the row-wise decay in the optimiser."""
    torch.manual_seed(0)
    w0 = torch.randn(12, 3)
    codes = torch.tensor([[1, 4], [4, 7], [1, 1]])
    target = torch.randn(3, 2, 3)
    steps = []
    for row_wise in (True, False):
        emb = torch.nn.Embedding(12, 3, sparse=True)
        emb.weight.data.copy_(w0)
        opt = LazyAdam(emb.parameters(), lr=0.1, l2=0.0 if not row_wise else 0.05)
        for _ in range(3):
            opt.zero_grad()
            out = emb(codes)
            loss = (out - target).pow(2).mean()
            if not row_wise:
                loss = loss + 0.05 * out.pow(2).sum()
            loss.backward()
            opt.step()
        steps.append(emb.weight.detach().clone())
    torch.testing.assert_close(steps[0], steps[1])
    assert not torch.equal(steps[0], w0)


def test_rows_finite_flags_a_non_finite_written_row_and_resets():
    p = torch.nn.Parameter(torch.zeros(5, 2))
    opt = LazyAdam([p], lr=0.1)
    p.grad = _sparse(torch.tensor([1]), torch.ones(1, 2), p.shape)
    opt.step()
    assert opt.rows_finite()
    p.grad = _sparse(torch.tensor([3]), torch.tensor([[float("nan"), 1.0]]), p.shape)
    opt.step()
    assert not opt.rows_finite()
    assert opt.rows_finite()  # the record starts again after each reading


@pytest.mark.parametrize("n", [0, 100, 16_384, 20_000, 32_767, 40_000])
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_the_padded_sort_equals_a_stable_sort(n, dtype, monkeypatch):
    # no table size given: the digit sort is not taken
    monkeypatch.setattr(optim, "_RADIX_ON_THIS_CPU", True)  # pad on any machine
    # keys that repeat, up to the largest row number a table of this dtype can have
    g = torch.Generator().manual_seed(n)
    keys = torch.randint(0, 500, (n,), generator=g).to(dtype)
    if n:
        keys[::7] = torch.iinfo(dtype).max - 1
    got_keys, got_order = optim._stable_sort(keys)
    want_keys, want_order = torch.sort(keys, stable=True)
    assert torch.equal(got_keys, want_keys) and torch.equal(got_order, want_order)


@pytest.mark.parametrize("n", [0, 1, 100, 16_383, 20_000, 32_767, 40_000])
@pytest.mark.parametrize(
    ("rows", "dtype"),
    [
        (1, torch.int32),
        (500, torch.int32),
        (2**16, torch.int32),
        (2**16 + 1, torch.int32),
        (2**31 - 1, torch.int32),
        (2**32, torch.int64),
        (2**33, torch.int64),
    ],
)
def test_the_sort_of_row_numbers_equals_a_stable_sort_whatever_the_table_size(n, rows, dtype):
    # small key counts go through numpy's 16-bit radix sort, one digit or two
    g = torch.Generator().manual_seed(n + rows % 1000)
    keys = torch.randint(0, min(rows, 300), (n,), generator=g).to(dtype)
    if n:
        keys[::5] = rows - 1  # the largest row number, beside repeated small ones
        keys[1::11] = rows // 2
    got_keys, got_order = optim._stable_sort(keys, rows)
    want_keys, want_order = torch.sort(keys, stable=True)
    assert torch.equal(got_keys, want_keys) and torch.equal(got_order, want_order)
    assert got_keys.dtype == keys.dtype and got_order.dtype == torch.int64
