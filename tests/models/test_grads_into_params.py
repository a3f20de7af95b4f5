"""Gradients summed straight into ``.grad`` (``PolicyForward.grads_into_params``, ``head_logprobs(into_grad=True)``,
``embed_into_grad``): the same ``.grad`` as autograd's returned gradients, over several micro-batches, in every
pass; and no (vocabulary, hidden) tensor beside ``.grad`` in the backward.

Run: ``python -m pytest tests/models/test_grads_into_params.py -q``.
"""

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from r1.algo.logprobs import KnownLogprobs, head_logprobs, param_grad
from r1.models.fast import embed_into_grad
from tests.algo.test_chunked_head import plain, problem
from tests.models.test_policy_head import PASSES, VOCAB, batch_for, forward_for, ids_of, sampled, tied_pass
from tests.tolerance import assert_grad_close


class NewTablesMade(TorchDispatchMode):
    """Counts tensors of at least ``numel`` elements that an operator makes (not an input written in place)."""

    def __init__(self, numel: int):
        super().__init__()
        self.numel, self.made = numel, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        ins = {a.untyped_storage().data_ptr() for a in torch.utils._pytree.tree_leaves((args, kwargs))
               if isinstance(a, torch.Tensor) and a.layout == torch.strided}
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.numel() >= self.numel and t.layout == torch.strided:
                self.made += t.untyped_storage().data_ptr() not in ins
        return out


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("known", ["none", "known", "fallback"])
def test_head_into_grad_sums_the_returned_gradient_into_grad(tied, known):
    """Two micro-batches (the second adds to a ``.grad`` the first made): the same ``.grad`` as the returned path,
    for the usual backward, the known-values one, and the known one that gives up (values far off) and takes back
    what it added before the block loop redoes it."""
    hidden, head, bias, ids, mask, leaves, g = problem(3, tied, with_bias=False, v=40)
    g_lp = torch.randn(ids.shape, generator=g)
    ref_lp = plain(hidden(), head, ids, 0.8, None, mask)[0].detach()
    results = []
    for into in (False, True):
        for p in leaves:
            p.grad = None
        for mb in range(2):
            kn = None
            if known != "none":
                given = ref_lp.clone()
                if known == "fallback":
                    given[mask.nonzero()[2].unbind()] += 0.05 * (mb + 1)
                kn = KnownLogprobs(given)
            lp, _ = head_logprobs(hidden(), head, ids, 0.8, None, mask, chunk_size=4, known=kn, into_grad=into)
            ((lp * g_lp).sum() * (mb + 1)).backward()
            if kn is not None:
                assert kn.used and kn.fallback == (known == "fallback")
        results.append([p.grad.clone() for p in leaves])
    for a, b in zip(*results):
        assert_grad_close(a, b, rtol=1e-5)


def test_param_grad_takes_only_a_plain_grad_of_a_leaf():
    w = torch.zeros(3, 2, requires_grad=True)
    g = param_grad(w, torch.float32)
    assert g is w.grad and g.shape == (3, 2) and not bool(g.any())  # made as zeros
    assert param_grad(w, torch.float32) is g  # and then that one
    assert param_grad(w, torch.float64) is None  # another dtype
    assert param_grad(w * 2, torch.float32) is None  # not a leaf
    assert param_grad(torch.zeros(3, 2), torch.float32) is None  # no grad wanted
    w.grad = torch.sparse_coo_tensor([[0]], torch.ones(1, 2), (3, 2), check_invariants=False)
    assert param_grad(w, torch.float32) is None  # sparse: autograd's way


@pytest.mark.parametrize("padding_idx", [None, 2])
def test_embed_into_grad_adds_the_lookups_gradient_into_grad(padding_idx):
    g = torch.Generator().manual_seed(0)
    ids = torch.tensor([[1, 2, 2, 5], [0, 2, 4, 1]])
    up = torch.randn(2, 4, 3, generator=g)
    grads = []
    for fn in (lambda i, w: F.embedding(i, w, padding_idx=padding_idx), lambda i, w: embed_into_grad(i, w, padding_idx)):
        w = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), requires_grad=True)
        w.grad = torch.full((6, 3), 0.5)  # a gradient summed so far
        out = fn(ids, w)
        torch.testing.assert_close(out, F.embedding(ids, w.detach()))
        (out * up).sum().backward()
        grads.append(w.grad.clone())
    torch.testing.assert_close(grads[1], grads[0])
    if padding_idx is not None:
        assert bool((grads[1][padding_idx] == 0.5).all())  # the padding row gets nothing from its lookups


@pytest.mark.parametrize("arch,extra", [("qwen2", {}), ("llama", {"tie_word_embeddings": True})])
@pytest.mark.parametrize("pass_name", PASSES)
def test_policy_forward_into_grad_gives_autograds_gradients(arch, extra, pass_name):
    """Each pass (replay, lean, ``transformers``), untied and tied head, two micro-batches of rows summed in
    ``.grad``: the same gradients as the returned path."""
    model, tok, full = sampled(arch, extra)
    pf = forward_for(model, tok, pass_name)
    batch = batch_for(full, pass_name)
    all_rows = list(range(len(full.completion_ids)))
    micro = [all_rows[: len(all_rows) // 2], all_rows[len(all_rows) // 2 :]]
    results = []
    for into in (False, True):
        pf.grads_into_params = into
        model.zero_grad(set_to_none=True)
        for rows in (all_rows,) if pass_name == "replay" else micro:  # the replay's record: one pass of its rows
            tc = max(len(full.completion_ids[r]) for r in rows)
            ids = ids_of(full, rows, tc)
            w = torch.randn(len(rows), tc, generator=torch.Generator().manual_seed(len(rows)))
            logps, _ = pf.policy_logprobs(batch, rows, tc, ids, 1.5, chunk_size=5)
            (logps * w).sum().backward()
        results.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for n in results[0]:
        assert_grad_close(results[1][n], results[0][n], msg=n)


@pytest.mark.parametrize("pass_name", ["replay", "lean"])
def test_into_grad_makes_no_second_vocabulary_table(pass_name):
    """A tied head and embedding, two micro-batches: with ``grads_into_params`` the backward makes one
    (vocabulary, hidden) tensor, ``.grad`` itself, in the first micro-batch and none in the second; autograd's way
    makes two or more each (the head's gradient and the lookups' summed with it)."""
    model, pf, batch, _, rows, tc, ids = tied_pass(pass_name)
    table = model.lm_head.weight.numel()
    assert table == VOCAB * model.config.hidden_size
    made = {}
    for into in (False, True):
        pf.grads_into_params = into
        model.zero_grad(set_to_none=True)
        counts = []
        for _ in range(2):
            with NewTablesMade(table) as mode:
                logps, _ = pf.policy_logprobs(batch, rows, tc, ids, 1.0, chunk_size=4)
                logps.sum().backward()
            counts.append(mode.made)
        made[into] = counts
    assert made[True] == [1, 0], made
    assert min(made[False]) >= 2, made
