"""The fused head (``r1.algo.logprobs.head_logprobs``) against the plain ``log_softmax(h @ W.T / τ)`` path.

Run: ``python -m pytest tests/algo/test_chunked_head.py -q``.

Logprobs, entropies and the gradients of the hidden states and of the head's weight (tied to the embedding or not,
with a bias or not) must equal those of full logits through ``gather_logprobs`` / ``entropy_from_logits`` (and the
textbook formula), with a temperature, padding, blocks that do not divide the positions, and under bf16 autocast;
and no tensor the size of the full logits may ever be made.
"""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from r1.algo.logprobs import KnownLogprobs, entropy_from_logits, gather_logprobs, head_logprobs, head_nll

LN3 = math.log(3.0)


class LargestTensor(TorchDispatchMode):
    """Records the element count of the largest tensor any operator returns while active."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def plain(hidden, weight, ids, temperature, bias=None, mask=None):
    """The textbook path: full logits, full log-softmax."""
    logits = hidden @ weight.t() + (0 if bias is None else bias)  # (N, T, V)
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    logps = logp.gather(-1, ids[..., None]).squeeze(-1)
    ent = -(logp.exp() * logp).sum(-1)
    if mask is not None:
        logps, ent = logps * mask, ent * mask
    return logps, ent


def problem(seed, tied, with_bias, n=3, t=7, hid=6, v=13, dtype=torch.float32):
    """Hidden states computed from an embedding (so a tied head's weight gets gradients from both uses)."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(v, hid, generator=g, dtype=dtype, requires_grad=True)
    mix = torch.randn(hid, hid, generator=g, dtype=dtype, requires_grad=True)
    head = emb if tied else torch.randn(v, hid, generator=g, dtype=dtype, requires_grad=True)
    bias = torch.randn(v, generator=g, dtype=dtype, requires_grad=True) if with_bias else None
    inputs = torch.randint(0, v, (n, t), generator=g)
    ids = torch.randint(0, v, (n, t), generator=g)
    lengths = torch.tensor([t, t - 3, 1][:n])
    mask = torch.arange(t)[None, :] < lengths[:, None]  # right padding
    leaves = [emb, mix] + ([] if tied else [head]) + ([] if bias is None else [bias])

    def hidden():
        return torch.tanh(emb[inputs] @ mix) * 2  # (N, T, H)

    return hidden, head, bias, ids, mask, leaves, g


def grads_of(fn, leaves, g_lp, g_ent):
    for p in leaves:
        p.grad = None
    logps, ent = fn()
    ((logps * g_lp).sum() + (ent * g_ent).sum()).backward()
    return logps.detach(), ent.detach(), [p.grad.clone() for p in leaves]


def test_hand_computed():
    # logits [0, ln 3] -> p = [1/4, 3/4]: log p_1 = -0.28768, H = 0.56233 (as gather_logprobs' / entropy's examples)
    logps, ent = head_logprobs(torch.tensor([[[1.0]]]), torch.tensor([[0.0], [LN3]]), torch.tensor([[1]]))
    torch.testing.assert_close(logps, torch.tensor([[-0.28768]]), atol=1e-5, rtol=0)
    torch.testing.assert_close(ent, torch.tensor([[0.56233]]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("temperature,chunk_size", [(1.0, None), (0.7, 4), (1.6, 1), (0.9, 1000)])
def test_matches_full_logits(tied, with_bias, temperature, chunk_size):
    """Values and gradients (hidden-state path, head weight, bias) of logprobs and entropy, with padding masked:
    chunk 4 does not divide the 3 × 7 positions (nor the 12 real ones)."""
    hidden, head, bias, ids, mask, leaves, g = problem(0, tied, with_bias)
    g_lp, g_ent = torch.randn(ids.shape, generator=g), torch.randn(ids.shape, generator=g)
    ref_lp, ref_ent, ref_grads = grads_of(lambda: plain(hidden(), head, ids, temperature, bias, mask), leaves, g_lp,
                                          g_ent)
    lp, ent, grads = grads_of(
        lambda: head_logprobs(hidden(), head, ids, temperature, bias, mask, chunk_size), leaves, g_lp, g_ent
    )
    torch.testing.assert_close(lp, ref_lp, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent, ref_ent, rtol=1e-5, atol=1e-5)
    assert bool((lp[~mask] == 0).all()) and bool((ent[~mask] == 0).all())
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # the existing logits-based functions agree at the real positions
    logits = hidden().detach() @ head.detach().t() + (0 if bias is None else bias.detach())
    torch.testing.assert_close(lp[mask], gather_logprobs(logits, ids, temperature)[mask], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent[mask], entropy_from_logits(logits, temperature)[mask], rtol=1e-5, atol=1e-5)


def test_without_a_mask_and_logprobs_alone():
    """No mask: every position computed; a loss on the logprobs alone (entropy unused, its gradient None)."""
    hidden, head, bias, ids, _, leaves, g = problem(1, tied=False, with_bias=False)
    g_lp = torch.randn(ids.shape, generator=g)
    ref = grads_of(lambda: plain(hidden(), head, ids, 1.3), leaves, g_lp, 0.0)
    for p in leaves:
        p.grad = None
    lp, _ = head_logprobs(hidden(), head, ids, 1.3, chunk_size=5)
    (lp * g_lp).sum().backward()
    torch.testing.assert_close(lp.detach(), ref[0], rtol=1e-5, atol=1e-5)
    for a, b in zip([p.grad for p in leaves], ref[2]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_gradcheck_in_double():
    g = torch.Generator().manual_seed(2)
    h = torch.randn(2, 3, 4, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(5, 4, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(5, dtype=torch.float64, generator=g, requires_grad=True)
    ids = torch.randint(0, 5, (2, 3), generator=g)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    assert torch.autograd.gradcheck(lambda *x: head_logprobs(*x[:2], ids, 0.8, x[2], mask, 2), (h, w, b))


def test_bf16_autocast_runs_the_products_in_bf16():
    """Under CPU bf16 autocast: the plain path's head product in bf16, softmax in float32; the fused head matches
    it to bfloat16's precision, and stays close to the float32 values."""
    hidden, head, bias, ids, mask, leaves, g = problem(3, tied=True, with_bias=False, hid=16, v=50)
    g_lp, g_ent = torch.randn(ids.shape, generator=g), torch.randn(ids.shape, generator=g)

    def plain_autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = torch.nn.functional.linear(hidden(), head)  # bf16
        return plain(logits.float(), torch.eye(logits.shape[-1]), ids, 0.8, None, mask)

    def fused_autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return head_logprobs(hidden(), head, ids, 0.8, mask=mask, chunk_size=5)

    ref_lp, ref_ent, ref_grads = grads_of(plain_autocast, leaves, g_lp, g_ent)
    lp, ent, grads = grads_of(fused_autocast, leaves, g_lp, g_ent)
    assert lp.dtype == torch.float32
    torch.testing.assert_close(lp, ref_lp, rtol=1e-3, atol=1e-3)  # the same bf16 logits
    torch.testing.assert_close(ent, ref_ent, rtol=1e-3, atol=1e-3)
    for a, b in zip(grads, ref_grads):
        assert (a - b).norm() / b.norm() < 0.02
    fp32_lp = grads_of(lambda: plain(hidden(), head, ids, 0.8, None, mask), leaves, g_lp, g_ent)[0]
    torch.testing.assert_close(lp, fp32_lp, rtol=0.05, atol=0.1)


def test_never_makes_a_tensor_the_size_of_the_logits():
    """Forward and backward: no operator returns more than a block of logits or the head's weight (the plain path
    makes (N, T, V) ones)."""
    n, t, hid, v, chunk = 4, 32, 8, 500, 16
    g = torch.Generator().manual_seed(4)
    h = torch.randn(n, t, hid, generator=g, requires_grad=True)
    w = torch.randn(v, hid, generator=g, requires_grad=True)
    ids = torch.randint(0, v, (n, t), generator=g)
    with LargestTensor() as mode:
        lp, ent = head_logprobs(h, w, ids, 0.9, chunk_size=chunk)
        (lp.sum() + ent.sum()).backward()
    assert mode.largest <= max(chunk * v, v * hid), mode.largest
    with LargestTensor() as mode:
        lp, ent = plain(h, w, ids, 0.9)
        (lp.sum() + ent.sum()).backward()
    assert mode.largest >= n * t * v  # the check sees the full logits where they are made


def test_bad_shapes_and_temperature_are_errors():
    h, w, ids = torch.zeros(2, 3, 4), torch.zeros(5, 4), torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="temperature"):
        head_logprobs(h, w, ids, 0.0)
    with pytest.raises(ValueError, match="disagree"):
        head_logprobs(h, w, ids[:, :2])
    with pytest.raises(ValueError, match="hidden size 4"):
        head_logprobs(h, torch.zeros(5, 3), ids)


class CountProducts(TorchDispatchMode):
    """Counts matrix products (mm / addmm) while active."""

    def __init__(self):
        super().__init__()
        self.products = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.addmm_):
            self.products += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("tied,with_bias,temperature", [(True, False, 1.0), (False, True, 0.7)])
def test_known_logprobs_give_the_same_gradient_with_no_forward_product(tied, with_bias, temperature):
    """At μ = 1 the sampler's logprobs are the forward's values: given them, the forward runs no product, the
    gradients equal the usual pass's (they are the known values' gradient, recomputed, the backward a vocabulary chunk
    at a time: three products a chunk), and the backward fills the pass's own entropies and logprobs (NaN before it,
    0 at padding)."""
    hidden, head, bias, ids, mask, leaves, g = problem(5, tied, with_bias, v=40)
    g_lp = torch.randn(ids.shape, generator=g)
    ref_lp, ref_ent, ref_grads = grads_of(lambda: plain(hidden(), head, ids, temperature, bias, mask), leaves, g_lp,
                                          0.0)
    counts = []
    for known in (None, KnownLogprobs(ref_lp + 1e-7 * mask)):  # "the sampler's": the values up to rounding
        for p in leaves:
            p.grad = None
        h = hidden()
        with CountProducts() as forward:
            lp, ent = head_logprobs(h, head, ids, temperature, bias, mask, chunk_size=4, known=known)
        with CountProducts() as backward:
            (lp * g_lp).sum().backward()
        counts.append((forward.products, backward.products))
    assert counts[0][0] == 3 and counts[1][0] == 0  # 12 real positions in blocks of 4: no product with known values
    assert counts[0][1] == 3 * 3 + 2  # the usual backward: 3 products a block + the hidden path's 2
    assert counts[1][1] == 3 * 4 + 2  # known: 12 positions × 40 tokens in vocabulary chunks of 13 (4·40/12): 4 chunks
    assert known.used and not known.fallback and ent is known.entropy and bool((ent[~mask] == 0).all())
    torch.testing.assert_close(lp.detach(), known.logps * mask)
    for a, b in zip([p.grad for p in leaves], ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(known.entropy, ref_ent, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(known.recomputed, ref_lp, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("offset,fallback", [(3e-4, False), (0.05, True), (float("nan"), True)])
def test_known_logprobs_off_from_the_pass_fall_back_to_its_own_normaliser(offset, fallback):
    """The vocabulary-chunked backward takes each position's logsumexp from the known logprob. Known values a little
    off (within ``KNOWN_LSE_TOLERANCE``) still give the hidden states' gradient exactly and the weight's within that
    tolerance; further off at one position (or not finite) and the backward redoes the blocks with their own
    logsumexp: the usual gradients, entropies and logprobs either way."""
    hidden, head, bias, ids, mask, leaves, g = problem(8, tied=False, with_bias=True, v=40)
    g_lp = torch.randn(ids.shape, generator=g)
    ref_lp, ref_ent, ref_grads = grads_of(lambda: plain(hidden(), head, ids, 0.9, bias, mask), leaves, g_lp, 0.0)
    given = ref_lp.clone()
    given[mask.nonzero()[3].unbind()] += offset  # one real position off
    known = KnownLogprobs(given)
    for p in leaves:
        p.grad = None
    lp, ent = head_logprobs(hidden(), head, ids, 0.9, bias, mask, chunk_size=4, known=known)
    (lp * g_lp).sum().backward()
    assert known.used and known.fallback == fallback
    grads = [p.grad for p in leaves]
    for a, b in zip(grads[:2], ref_grads[:2]):  # through the hidden states: exact either way
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    tol = 1e-5 if fallback else 1e-3  # the head's weight and bias
    for a, b in zip(grads[2:], ref_grads[2:]):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)
    torch.testing.assert_close(known.entropy, ref_ent, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(known.recomputed, ref_lp, rtol=1e-5, atol=1e-5)


def test_known_logprobs_in_one_block_or_without_grad_are_computed_as_usual():
    """Every position in one block (a small vocabulary): its backward recomputes nothing, so the forward runs as
    usual (``used`` False); without autograd there is no backward to fill anything; a wrong shape is an error."""
    hidden, head, bias, ids, mask, leaves, g = problem(6, tied=True, with_bias=False)
    want = plain(hidden(), head, ids, 1.0, None, mask)
    known = KnownLogprobs(torch.zeros(ids.shape))
    lp, ent = head_logprobs(hidden(), head, ids, 1.0, mask=mask, known=known)
    assert not known.used and known.entropy is None
    torch.testing.assert_close(lp, want[0].detach(), rtol=1e-5, atol=1e-5)  # computed, not the zeros given
    with torch.no_grad():
        lp, ent = head_logprobs(hidden(), head, ids, 1.0, mask=mask, chunk_size=2, known=known)
    assert not known.used
    torch.testing.assert_close(ent, want[1].detach(), rtol=1e-5, atol=1e-5)
    known = KnownLogprobs(want[0].detach())
    lp, ent = head_logprobs(hidden(), head, ids, 1.0, mask=mask, chunk_size=2, known=known)
    assert known.used and bool(ent[mask].isnan().all())  # NaN until the backward fills it
    with pytest.raises(ValueError, match="known logprobs"):
        head_logprobs(hidden(), head, ids, 1.0, known=KnownLogprobs(torch.zeros(2, 2)))


@pytest.mark.parametrize("tied,with_bias,chunk_size", [(True, False, 4), (False, True, 5), (True, True, None)])
def test_head_nll_is_the_summed_cross_entropy_with_its_gradient(tied, with_bias, chunk_size):
    """``head_nll`` (the SFT loss, gradients computed in its forward) = ``-scale · Σ log_softmax[y]`` over the mask
    from full logits, in value and in every gradient, for an upstream gradient of 1 and of 2.5; one product fewer than
    ``head_logprobs``' forward + backward (no recomputation)."""
    hidden, head, bias, ids, mask, leaves, g = problem(7, tied, with_bias, v=40)
    for upstream in (1.0, 2.5):
        ref_lp = grads_of(lambda: plain(hidden(), head, ids, 1.0, bias, mask), leaves, -0.3 * upstream, 0.0)
        for p in leaves:
            p.grad = None
        h = hidden()
        with CountProducts() as count:
            loss = head_nll(h, head, ids, bias, mask, scale=0.3, chunk_size=chunk_size)
            (loss * upstream).backward()
        torch.testing.assert_close(loss.detach(), -0.3 * ref_lp[0].sum(), rtol=1e-5, atol=1e-5)
        for a, b in zip([p.grad for p in leaves], ref_lp[2]):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
        blocks = 1 if chunk_size is None else -(-int(mask.sum()) // chunk_size)
        assert count.products == 3 * blocks + 2  # the head's 3 a block + the hidden path's 2
    torch.testing.assert_close(  # the docstring's example
        head_nll(torch.tensor([[[1.0]]]), torch.tensor([[0.0], [LN3]]), torch.tensor([[1]])), torch.tensor(0.28768),
        atol=1e-5, rtol=0,
    )


def test_head_nll_without_grad_and_under_bf16_autocast():
    hidden, head, _, ids, mask, leaves, g = problem(8, tied=True, with_bias=False, hid=16, v=50)
    with torch.no_grad():
        value = head_nll(hidden(), head, ids, mask=mask, chunk_size=3)
    torch.testing.assert_close(value, -plain(hidden(), head, ids, 1.0, None, mask)[0].sum().detach(), rtol=1e-5,
                               atol=1e-5)
    for p in leaves:
        p.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lp, _ = head_logprobs(hidden(), head, ids, 1.0, mask=mask, chunk_size=3)
    (-lp.sum()).backward()
    want = [p.grad.clone() for p in leaves]
    for p in leaves:
        p.grad = None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = head_nll(hidden(), head, ids, mask=mask, chunk_size=3)
    loss.backward()
    torch.testing.assert_close(loss.detach(), -lp.sum().detach(), rtol=1e-4, atol=1e-4)  # the same bf16 products
    for a, b in zip([p.grad for p in leaves], want):
        assert (a - b).norm() <= 1e-2 * b.norm()


@pytest.mark.parametrize("with_bias,temperature,chunk_size", [(False, 1.0, 4), (True, 0.7, 5), (True, 1.6, 2)])
def test_without_autograd_the_vocabulary_is_chunked_with_the_same_values(with_bias, temperature, chunk_size):
    """A values-only pass (the reference's: no autograd) with more positions than a block runs every position
    against a chunk of the vocabulary at a time (online logsumexp and entropy): the same logprobs and entropies as
    full logits, one product per vocabulary chunk, each over all the real positions."""
    hidden, head, bias, ids, mask, leaves, g = problem(9, tied=False, with_bias=with_bias, v=40)
    want_lp, want_ent = plain(hidden(), head, ids, temperature, bias, mask)
    rows = []

    class Rows(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func.overloadpacket in (torch.ops.aten.mm, torch.ops.aten.addmm):
                rows.append(args[-2].shape[0])
            return func(*args, **(kwargs or {}))

    with torch.no_grad():
        h = hidden()
        with Rows():
            lp, ent = head_logprobs(h, head, ids, temperature, bias, mask, chunk_size)
    real = int(mask.sum())
    chunk_rows = chunk_size * 40 // real
    assert rows == [real] * -(-40 // chunk_rows)  # every real position at once, a vocabulary chunk per product
    torch.testing.assert_close(lp, want_lp.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent, want_ent.detach(), rtol=1e-5, atol=1e-5)
    assert bool((lp[~mask] == 0).all()) and bool((ent[~mask] == 0).all())
