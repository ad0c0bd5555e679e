"""Tests of skctr.nn.interaction against naive loops over field pairs and layers."""

import pytest
import torch

from skctr.nn import (
    CIN,
    BiInteractionPooling,
    CrossNetwork,
    FactorizationMachine,
    InnerProduct,
    OuterProduct,
    interaction,
    pairwise_indices,
)

SHAPES = [(3, 2, 4), (5, 4, 3), (2, 7, 8)]  # (batch, fields, embedding_dim)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def rand(*shape):
    return torch.randn(*shape, dtype=torch.float64)


def naive_pairs(num_fields):
    return [(i, j) for i in range(num_fields) for j in range(i + 1, num_fields)]


# ------------------------------------------------------------------ pairwise_indices
@pytest.mark.parametrize("num_fields", [1, 2, 3, 6])
def test_pairwise_indices_row_major(num_fields):
    row, col = pairwise_indices(num_fields)
    assert row.dtype == torch.long and col.dtype == torch.long
    assert list(zip(row.tolist(), col.tolist(), strict=True)) == naive_pairs(num_fields)


def test_pairwise_indices_invalid():
    with pytest.raises(ValueError, match="num_fields"):
        pairwise_indices(0)


# ------------------------------------------------------------------ FM / bi-interaction
@pytest.mark.parametrize("shape", SHAPES)
def test_factorization_machine_matches_pair_loop(shape):
    b, f, k = shape
    x = rand(*shape)
    vector = torch.zeros(b, k, dtype=torch.float64)
    for i, j in naive_pairs(f):
        vector += x[:, i] * x[:, j]
    torch.testing.assert_close(FactorizationMachine()(x), vector.sum(1), atol=1e-5, rtol=0)
    torch.testing.assert_close(FactorizationMachine(reduce_sum=False)(x), vector, atol=1e-5, rtol=0)
    torch.testing.assert_close(BiInteractionPooling()(x), vector, atol=1e-5, rtol=0)


@pytest.mark.parametrize("reduce_sum", [True, False])
def test_factorization_machine_gradient_matches_the_pair_loop(reduce_sum):
    torch.manual_seed(1)
    x = torch.randn(4, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(FactorizationMachine(reduce_sum=reduce_sum), (x,))
    fast = torch.autograd.grad(FactorizationMachine(reduce_sum=reduce_sum)(x).sum(), x)[0]
    pairs = sum(x[:, i] * x[:, j] for i in range(5) for j in range(i + 1, 5))
    slow = torch.autograd.grad(pairs.sum(), x)[0]
    torch.testing.assert_close(fast, slow)


def test_bi_interaction_reuses_factorization_machine():
    layer = BiInteractionPooling()
    assert isinstance(layer.fm, FactorizationMachine)
    assert layer.fm.reduce_sum is False


@pytest.mark.parametrize("reduce_sum", [True, False])
@pytest.mark.parametrize("fields", [(2, 3, 1), (4,), (1, 0, 2)])
def test_factorization_machine_over_blocks_equals_it_over_their_concatenation(reduce_sum, fields):
    blocks = [rand(3, f, 4).requires_grad_() for f in fields]
    whole = torch.cat([b.detach() for b in blocks], dim=1).requires_grad_()
    fm = FactorizationMachine(reduce_sum=reduce_sum)
    out, expected = fm(blocks), fm(whole)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, blocks, grad)
    want = torch.autograd.grad(expected, whole, grad)[0].split(list(fields), dim=1)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)
    assert torch.autograd.gradcheck(lambda *b: fm(list(b)), tuple(blocks))
    bi = FactorizationMachine(reduce_sum=False)(whole)
    torch.testing.assert_close(BiInteractionPooling()(blocks), bi)
    # a block that needs no gradient (the others still get theirs)
    frozen = [blocks[0].detach(), *blocks[1:]]
    if len(frozen) > 1:
        rest = torch.autograd.grad(fm(frozen), frozen[1:], grad)
        for g, w in zip(rest, want[1:], strict=True):
            torch.testing.assert_close(g, w)


def test_factorization_machine_invalid_and_shapes():
    with pytest.raises(ValueError, match="reduce_sum"):
        FactorizationMachine(reduce_sum="yes")
    with pytest.raises(ValueError, match="num_fields"):
        FactorizationMachine()(torch.randn(3, 4))
    with pytest.raises(ValueError, match="non-empty sequence"):
        FactorizationMachine()([])
    with pytest.raises(ValueError, match=r"must agree.*\(3, 2, 4\), \(3, 1, 5\)"):
        FactorizationMachine()([torch.randn(3, 2, 4), torch.randn(3, 1, 5)])
    with pytest.raises(ValueError, match="must agree"):
        BiInteractionPooling()([torch.randn(3, 2, 4), torch.randn(2, 1, 4)])


# ------------------------------------------------------------------ PNN products
@pytest.mark.parametrize("shape", SHAPES)
def test_inner_product_matches_pair_loop(shape):
    b, f, _ = shape
    x = rand(*shape)
    expected = torch.zeros(b, f * (f - 1) // 2, dtype=torch.float64)
    for p, (i, j) in enumerate(naive_pairs(f)):
        for r in range(b):
            expected[r, p] = torch.dot(x[r, i], x[r, j])
    torch.testing.assert_close(InnerProduct()(x), expected, atol=1e-5, rtol=0)


def full_kernel(layer, p):
    """The (K, K) matrix W_p that a kernel of any type stands for."""
    k = layer.embedding_dim
    w = layer.kernel[p]
    if layer.kernel_type == "mat":
        return w
    if layer.kernel_type == "vec":
        return torch.diag(w)
    return w * torch.eye(k, dtype=w.dtype)


@pytest.mark.parametrize("kernel_type", ["mat", "vec", "num"])
@pytest.mark.parametrize("shape", SHAPES)
def test_outer_product_matches_explicit_outer_products(shape, kernel_type):
    b, f, k = shape
    layer = OuterProduct(f, k, kernel_type=kernel_type).double()
    x = rand(*shape)
    pairs = naive_pairs(f)
    assert layer.output_dim == len(pairs)
    expected = torch.zeros(b, len(pairs), dtype=torch.float64)
    with torch.no_grad():
        for p, (i, j) in enumerate(pairs):
            kernel = full_kernel(layer, p)
            for r in range(b):
                outer = torch.outer(x[r, i], x[r, j])  # (K, K)
                expected[r, p] = (kernel * outer).sum()
    torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("kernel_type", "shape"), [("mat", (6, 4, 4)), ("vec", (6, 4)), ("num", (6,))]
)
def test_outer_product_kernel_shapes_and_backward(kernel_type, shape):
    layer = OuterProduct(4, 4, kernel_type=kernel_type)
    assert layer.kernel.shape == shape
    x = torch.randn(3, 4, 4, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.kernel.grad is not None


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_fields": 1, "embedding_dim": 4}, "num_fields"),
        ({"num_fields": 3, "embedding_dim": 0}, "embedding_dim"),
        ({"num_fields": 3, "embedding_dim": 4, "kernel_type": "matrix"}, "kernel_type"),
    ],
)
def test_outer_product_invalid(kwargs, name):
    with pytest.raises(ValueError, match=name):
        OuterProduct(**kwargs)


def test_outer_product_rejects_wrong_field_count():
    with pytest.raises(ValueError, match="num_fields=3"):
        OuterProduct(3, 4)(torch.randn(2, 4, 4))


# ------------------------------------------------------------------ cross network
@pytest.mark.parametrize("parameterization", ["vector", "matrix"])
@pytest.mark.parametrize(("batch", "dim", "layers"), [(4, 3, 1), (3, 6, 3)])
def test_cross_network_matches_row_loop(batch, dim, layers, parameterization):
    net = CrossNetwork(dim, num_layers=layers, parameterization=parameterization).double()
    with torch.no_grad():
        net.bias.uniform_(-1, 1)  # non-zero biases so that they are checked too
    x = rand(batch, dim)
    expected = torch.empty_like(x)
    with torch.no_grad():
        for r in range(batch):
            x0 = x[r]
            xl = x0
            for layer in range(layers):
                w, b = net.weight[layer], net.bias[layer]
                if parameterization == "vector":
                    scalar = sum(xl[d] * w[d] for d in range(dim))
                    xl = x0 * scalar + b + xl
                else:
                    wx = torch.stack([sum(w[o, d] * xl[d] for d in range(dim)) for o in range(dim)])
                    xl = x0 * (wx + b) + xl
            expected[r] = xl
    out = net(x)
    assert out.shape == (batch, dim) and net.output_dim == dim
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layers", [1, 3])
def test_vector_cross_network_gradients_equal_autograd_of_its_formula(layers):
    # the vector network is computed as scale * x0 + shift; check it and its gradients
    # against autograd of the layer formula, and by finite differences (twice)
    net = CrossNetwork(6, num_layers=layers).double()
    with torch.no_grad():
        net.bias.uniform_(-1, 1)
    x = rand(5, 6).requires_grad_()
    params = (x, net.weight, net.bias)

    def call(x, weight, bias):
        return torch.func.functional_call(net, {"weight": weight, "bias": bias}, (x,))

    assert torch.autograd.gradcheck(call, params)
    assert torch.autograd.gradgradcheck(call, params)
    out = net(x)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, params, grad)
    xl = x
    for layer in range(layers):
        xl = x * (xl @ net.weight[layer]).unsqueeze(1) + net.bias[layer] + xl
    torch.testing.assert_close(out, xl)
    want = torch.autograd.grad(xl, params, grad)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w)
    scale, shift = net.scale_and_shift(x @ net.weight.T)
    torch.testing.assert_close(shift, net.bias.sum(0))
    torch.testing.assert_close(scale.unsqueeze(1) * x + shift, xl)


def test_scale_and_shift_is_for_the_vector_network_and_checks_its_input():
    with pytest.raises(ValueError, match="only the 'vector' network"):
        CrossNetwork(4, parameterization="matrix").scale_and_shift(torch.randn(3, 2))
    with pytest.raises(ValueError, match=r"\(batch, 2\)"):
        CrossNetwork(4).scale_and_shift(torch.randn(3, 4))


def test_vector_cross_network_under_autocast_follows_autocast():
    net = CrossNetwork(4, num_layers=2)
    x = torch.randn(3, 4, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x)
    out.sum().backward()
    torch.testing.assert_close(out, net(x), atol=0.05, rtol=0.05)
    assert x.grad is not None and net.weight.grad is not None


def test_cross_network_backward_and_invalid():
    net = CrossNetwork(5, num_layers=2, parameterization="matrix")
    x = torch.randn(4, 5, requires_grad=True)
    net(x).sum().backward()
    assert x.grad is not None and net.weight.grad is not None
    with pytest.raises(ValueError, match="num_layers"):
        CrossNetwork(5, num_layers=0)
    with pytest.raises(ValueError, match="parameterization"):
        CrossNetwork(5, parameterization="low_rank")
    with pytest.raises(ValueError, match="in_dim"):
        CrossNetwork(-1)


# ------------------------------------------------------------------ CIN
def naive_cin(x, cin, activation=lambda t: t):
    """X^k_h = act(sum_{i,j} W^k[h, i * m + j] * (X^{k-1}_i ⊙ X^0_j)), explicit loops."""
    _, m, _ = x.shape
    hidden = [x[:, i] for i in range(m)]  # list of (B, D) maps
    pooled = []
    sizes = cin.layer_sizes
    for index, (weight, size) in enumerate(zip(cin.weights, sizes, strict=True)):
        maps = []
        for h in range(size):
            acc = torch.zeros_like(x[:, 0])
            for i in range(len(hidden)):
                for j in range(m):
                    acc = acc + weight[h, i * m + j] * (hidden[i] * x[:, j])
            maps.append(activation(acc))
        is_last = index == len(sizes) - 1
        if cin.split_half and not is_last:
            hidden, kept = maps[: size // 2], maps[size // 2 :]
        else:
            hidden, kept = maps, maps
        pooled.extend(feature_map.sum(dim=1) for feature_map in kept)
    return torch.stack(pooled, dim=1)


@pytest.mark.parametrize("split_half", [True, False])
@pytest.mark.parametrize(
    ("shape", "layer_sizes"), [((3, 4, 3), (4, 6)), ((2, 3, 5), (2, 2, 3)), ((4, 2, 2), (5,))]
)
def test_cin_matches_naive(shape, layer_sizes, split_half):
    if split_half and any(s % 2 for s in layer_sizes[:-1]):
        pytest.skip("odd sizes are only allowed for the last layer")
    cin = CIN(shape[1], layer_sizes, split_half=split_half).double()
    x = rand(*shape)
    out = cin(x)
    with torch.no_grad():
        expected = naive_cin(x, cin)
    if split_half:
        width = sum(s // 2 for s in layer_sizes[:-1]) + layer_sizes[-1]
    else:
        width = sum(layer_sizes)
    assert cin.output_dim == width
    assert out.shape == (shape[0], width)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_cin_activation_is_applied():
    cin = CIN(3, (4, 2), activation="relu").double()
    x = rand(5, 3, 4)
    with torch.no_grad():
        expected = naive_cin(x, cin, activation=torch.relu)
    torch.testing.assert_close(cin(x), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("activation", ["prelu", "dice"])
def test_cin_per_map_activations(activation):
    cin = CIN(3, (4, 2), activation=activation)
    x = torch.randn(5, 3, 4, requires_grad=True)
    out = cin(x)
    assert out.shape == (5, cin.output_dim)
    out.sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("block_bytes", [1, 4 * 9 * 8, 1 << 30])
def test_cin_blocked_layers_match_naive_values_and_gradients(monkeypatch, block_bytes):
    # B * D = 15 rows in blocks of 1 row; of 4 rows in layer 1 (9 float64 products per row)
    # and 6 in layer 2 (2 * 3 per row), both with a partial last block; or all in one block:
    # every split gives the explicit-loop values and gradients
    monkeypatch.setitem(interaction._CIN_BLOCK_BYTES, "cpu", block_bytes)
    cin = CIN(3, (4, 3)).double()
    x = rand(3, 3, 5).requires_grad_(True)
    out = cin(x)
    expected = naive_cin(x, cin)
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)
    weight = torch.randn_like(out)
    got = torch.autograd.grad((out * weight).sum(), [x, *cin.weights])
    want = torch.autograd.grad((expected * weight).sum(), [x, *cin.weights])
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


def test_cin_layer_function_gradcheck_and_partial_gradients(monkeypatch):
    monkeypatch.setitem(interaction._CIN_BLOCK_BYTES, "cpu", 8 * 6 * 2)  # blocks of 2 rows
    hidden, x, weight = rand(5, 3), rand(5, 2), rand(4, 6)
    for needs in [
        (True, True, True),
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ]:
        args = [
            t.detach().requires_grad_(r) for t, r in zip((hidden, x, weight), needs, strict=True)
        ]
        assert torch.autograd.gradcheck(interaction._CINLayer.apply, args)


@pytest.mark.parametrize("input_dtype", [torch.float32, torch.bfloat16])
def test_cin_under_autocast_runs_in_the_autocast_dtype(input_dtype):
    # the blocked layer writes its products with out=, which autocast does not see: CIN
    # casts for it, so bf16 inputs with float32 weights work and float32 inputs run in bf16
    cin = CIN(4, (6, 4))
    x = torch.randn(3, 4, 5)
    reference = cin(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = cin(x.to(input_dtype).requires_grad_(True))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, atol=0.1, rtol=0.05)
    out.float().sum().backward()
    assert all(w.grad is not None and w.grad.dtype == torch.float32 for w in cin.weights)


def test_cin_keeps_float64_under_autocast_and_runs_on_the_meta_device():
    cin = CIN(3, (4, 2)).double()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cin(rand(2, 3, 5)).dtype == torch.float64  # autocast leaves float64 alone
    meta = CIN(3, (4, 2)).to("meta")  # shape inference: no autocast on that device
    assert meta(torch.empty(2, 3, 5, device="meta")).shape == (2, meta.output_dim)


def test_cin_of_zero_rows():
    cin = CIN(3, (4, 2))
    assert cin(torch.zeros(0, 3, 5)).shape == (0, cin.output_dim)


def test_cin_backward():
    cin = CIN(4, (4, 4))
    x = torch.randn(3, 4, 5, requires_grad=True)
    cin(x).sum().backward()
    assert x.grad is not None
    assert all(w.grad is not None for w in cin.weights)


@pytest.mark.parametrize(
    ("args", "kwargs", "name"),
    [
        ((0,), {}, "num_fields"),
        ((3, (4, 0)), {}, "layer_sizes"),
        ((3, ()), {}, "layer_sizes"),
        ((3, (3, 4)), {}, "even"),
        ((3, (4,)), {"split_half": "no"}, "split_half"),
    ],
)
def test_cin_invalid_arguments(args, kwargs, name):
    with pytest.raises(ValueError, match=name):
        CIN(*args, **kwargs)


def test_cin_odd_sizes_allowed_last_or_without_split():
    assert CIN(3, (4, 3)).output_dim == 2 + 3
    assert CIN(3, (3, 5), split_half=False).output_dim == 8
