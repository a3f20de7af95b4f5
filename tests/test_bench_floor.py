"""``benchmarks/flops.py``: ``step_gemms`` lists exactly the matrix products r1's GRPO step runs.

The matmul floor that ``grpo_vs_trl.py`` and ``flops.py`` print is the time of these products alone; here they are
compared with the ``mm``/``addmm`` calls caught (below autograd, so the backward's too) while the native engine
samples and ``FastLM.train_logits`` runs the reference and train passes, or the train pass is the backward of the
rollout's recorded forward (``r1.models.replay``).

Run: ``python -m pytest tests/test_bench_floor.py -q``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from r1.models import build_preset
from r1.models import fast as fast_module
from r1.models.fast import FastLM
from r1.models.kernels import fused_kernels
from r1.models.replay import replay_logits
from r1.rollout.base import SamplingParams
from r1.rollout.native import NativeEngine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import flops  # noqa: E402

PROMPTS, SAMPLES, PROMPT_LEN, NEW = 2, 3, 5, 6
LINEAR_POINTWISE = getattr(fast_module._ONEDNN, "default", None)  # oneDNN's linear, where this torch has it


class CatchGemms(TorchDispatchMode):
    """Counts ``(M, K, N)`` of every ``(M, K) @ (K, N)`` product dispatched while active."""

    def __init__(self):
        super().__init__()
        self.seen: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.mm.default:
            a, b = args[0], args[1]
            self.seen[(a.shape[0], a.shape[1], b.shape[1])] += 1
        elif func in (torch.ops.aten.addmm.default, torch.ops.aten.addmm_.default):  # addmm_: a residual add inside
            a, b = args[1], args[2]
            self.seen[(a.shape[0], a.shape[1], b.shape[1])] += 1
        elif func in (torch.ops.aten.linear.default, LINEAR_POINTWISE):
            # aten.linear: inference mode dispatches it undecomposed; oneDNN's: r1.models.fast.linear without autograd
            x, w = args[0], args[1]
            self.seen[(x.numel() // x.shape[-1], w.shape[1], w.shape[0])] += 1
        elif str(func) == "r1.mkl_packed_linear.default":  # MKL's packed product (fast.pack_weights, Intel CPUs)
            x, w = args[0], args[2]
            self.seen[(x.numel() // x.shape[-1], w.shape[1], w.shape[0])] += 1
        elif func in (torch.ops.aten.bmm.default, torch.ops.aten.baddbmm.default, torch.ops.aten.matmul.default):
            self.seen["batched"] += 1  # not expected: would mean products the floor does not count
        elif str(func) == "r1.decode_attention.default":
            self.seen["fused attention"] += 1
        elif str(func) == "r1.decode_layers.default":  # a decode step's layers in one call: 4 packed products each
            x, mats = args[0], args[4]
            for w in mats:
                self.seen[(x.shape[0], w.shape[1], w.shape[0])] += 1
            self.seen["fused attention"] += len(mats) // 4
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("replay", [False, True])
def test_step_gemms_are_the_products_r1_runs(replay):
    torch.manual_seed(0)
    model, tok = build_preset("tiny-qwen2", seed=0, initializer_range=0.2)
    model.eval()
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 200, (PROMPT_LEN,), generator=g).tolist() for _ in range(PROMPTS)]
    expected = flops.step_gemms(model.config, PROMPTS, PROMPTS * SAMPLES, PROMPT_LEN, NEW, replay=replay)

    engine = NativeEngine(model, tok)
    assert engine.fast is not None
    sampling = SamplingParams(max_new_tokens=NEW)
    with CatchGemms() as rollout:
        out = engine.generate(prompts, SAMPLES, sampling, torch.Generator().manual_seed(0), record=replay)
    comps = [c.token_ids for group in out for c in group]
    assert all(len(c) == NEW for c in comps), "precondition: no row may stop early (fixed seed)"
    # The decode steps' attention, not in the floor: r1's fused kernel once per layer and step (r1.models.kernels),
    # or without it two batched products (FastLM._decode_attend)
    steps = model.config.num_hidden_layers * (NEW - 1)
    if fused_kernels(torch.zeros(1)) is not None:
        assert rollout.seen.pop("fused attention") == steps
    else:
        assert rollout.seen.pop("batched") == 2 * steps
    assert rollout.seen == Counter(expected["rollout"])

    fast = FastLM(model)
    group = [i // SAMPLES for i in range(len(comps))]
    with torch.no_grad(), CatchGemms() as ref:
        fast.train_logits(prompts, group, comps, tok.pad_token_id)
    assert ref.seen == Counter(expected["ref"])

    with CatchGemms() as train:
        if replay:
            logits = replay_logits(engine.last_record, list(range(len(comps))), NEW)
        else:
            logits = fast.train_logits(prompts, group, comps, tok.pad_token_id)
        torch.log_softmax(logits, -1).gather(-1, torch.tensor(comps)[..., None]).mean().backward()
    if replay:  # the replayed attention backward's products (batched, per head) are attention: not in the floor
        assert train.seen.pop("batched") > 0
    assert train.seen == Counter(expected["train"])
    # Each forward product has two in the backward (dX and dW), the LM head's too. The reference pass runs every
    # weight twice (the prompts, then the completions); the replay's backward once, over all tokens together.
    forward = sum(expected["ref"].values())
    layers = model.config.num_hidden_layers  # the replay runs gate and up apart: one more dX and dW per layer
    # (the replay's LM head: its forward on the recorded hidden states, then dX and dW: one product more)
    assert sum(expected["train"].values()) == (forward + 2 * layers + 1 if replay else 3 * forward)


def test_gemm_floor_grows_with_the_work_and_restores_the_threads():
    threads = torch.get_num_threads()
    t4 = flops.gemm_floor({(64, 128, 128): 4}, repeats=2)
    t64 = flops.gemm_floor({(64, 128, 128): 64}, repeats=2)
    assert 0 < t4 < t64
    assert torch.get_num_threads() == threads
