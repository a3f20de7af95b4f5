"""SFT / pretraining engine: loss mask, batching, data errors, smoke and resume.

Run: ``python -m pytest tests/train/test_sft.py -q``.
"""

import json
import math

import pytest
import torch

from r1.algo.sft import sft_loss
from r1.config import SFTConfig, load_config
from r1.errors import R1Error
from r1.train.metrics import read_metrics
from r1.train.sft import (
    BatchSampler,
    SFTTrainer,
    collate,
    micro_batches,
    packed_rows,
    padded_rows,
    tokenize_records,
    train_sft,
)


def test_sft_loss_hand_case():
    # vocab 2, logits uniform except position 1 which puts log-odds ln(3) on token 1: p = 3/4.
    logits = torch.zeros(1, 3, 2)
    logits[0, 1, 1] = math.log(3.0)
    ids = torch.tensor([[0, 1, 1]])
    # mask [F, F, T]: only token 2 (predicted at position 1) counts: -log(3/4)
    loss, n = sft_loss(logits, ids, torch.tensor([[False, False, True]]))
    assert n == 1 and loss.item() == pytest.approx(-math.log(0.75))
    # mask [F, T, T]: mean of -log(1/2) (token 1 at position 0) and -log(3/4)
    loss, n = sft_loss(logits, ids, torch.tensor([[False, True, True]]))
    assert n == 2 and loss.item() == pytest.approx((math.log(2) - math.log(0.75)) / 2)


def test_sft_loss_matches_loop_reference():
    torch.manual_seed(0)
    logits = torch.randn(3, 7, 11)
    ids = torch.randint(0, 11, (3, 7))
    mask = torch.rand(3, 7) > 0.4
    loss, n = sft_loss(logits, ids, mask)
    terms = [
        -torch.log_softmax(logits[b, t - 1], -1)[ids[b, t]]
        for b in range(3)
        for t in range(1, 7)
        if mask[b, t]
    ]
    assert n == len(terms)
    torch.testing.assert_close(loss, torch.stack(terms).mean())


def cfg_for(tmp_path, name, *overrides):
    base = [
        "model.path=tiny-qwen2",
        "data.task.name=addition",
        "data.task.template=plain",
        "data.task.params={digits: 2, num_train: 64, num_test: 16}",
        "data.num_examples=200",
        "data.examples_per_step=16",
        f"run.out_dir={tmp_path}",
        f"run.name={name}",
        "run.steps=4",
        "run.progress=false",
        "run.threads=1",
    ]
    return load_config(SFTConfig, None, base + list(overrides))


def test_completion_only_mask_covers_completion_and_eos(tmp_path):
    from r1.models import build_preset

    _, tok = build_preset("tiny-qwen2")
    cfg = cfg_for(tmp_path, "m")
    (ids, mask), = tokenize_records([{"prompt": "12+34", "completion": "<think></think><answer>46</answer>"}], tok, cfg)
    n_prompt = len(tok("12+34", add_special_tokens=False).input_ids)
    assert mask[:n_prompt] == [False] * n_prompt and all(mask[n_prompt:])
    assert ids[-1] == tok.eos_token_id
    cfg.data.completion_only = False
    (_, mask_all), = tokenize_records([{"prompt": "12+34", "completion": "x"}], tok, cfg)
    assert all(mask_all)


def test_collate_pads_and_packs():
    ex = [([1, 2, 3], [False, True, True]), ([4, 5], [True, True])]
    ids, attn, mask = collate(ex, pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 5, 0]] and attn.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert mask.tolist() == [[False, True, True], [True, True, False]]
    ids, attn, mask = collate(ex, pad_id=0, pack_len=4)
    assert ids.tolist() == [[1, 2, 3, 4], [5, 0, 0, 0]]
    assert mask.tolist() == [[False, True, True, True], [True, False, False, False]]


def test_bucket_sampler_is_deterministic_and_covers_every_example():
    lengths = [i % 17 for i in range(100)]
    a, b = BatchSampler(lengths, 8, "bucket", 3), BatchSampler(lengths, 8, "bucket", 3)
    seen = [a.next() for _ in range(13)]
    assert seen == [b.next() for _ in range(13)]
    assert sorted(i for batch in seen for i in batch) == list(range(100))
    with pytest.raises(R1Error, match="unknown data.batching"):
        BatchSampler(lengths, 8, "zigzag", 0)


def test_sft_learns_and_resumes_exactly(tmp_path):
    full = train_sft(cfg_for(tmp_path, "full", "run.save_every=2", "optim.lr=3e-3"))
    rows = read_metrics(full)
    assert len(rows) == 4 and rows[-1]["loss"] < rows[0]["loss"]

    class Killed(Exception):
        pass

    def kill(step, m):
        if step == 3:
            raise Killed

    cfg = cfg_for(tmp_path, "killed", "run.save_every=2", "optim.lr=3e-3")
    with pytest.raises(Killed):
        train_sft(cfg, on_step_end=kill)
    train_sft(cfg, resume=tmp_path / "killed")
    strip = lambda rs: [{k: v for k, v in r.items() if not k.startswith(("time/", "throughput/"))} for r in rs]
    assert strip(read_metrics(tmp_path / "killed")) == strip(rows)


def test_jsonl_source_and_its_errors(tmp_path):
    good = tmp_path / "d.jsonl"
    good.write_text('{"prompt": "1+1=", "completion": "2"}\n{"text": "free text"}\n')
    SFTTrainer(cfg_for(tmp_path, "j1", "data.source=jsonl", f"data.path={good}", "data.examples_per_step=2")).step()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "no completion"}\n')
    with pytest.raises(R1Error, match=r"bad\.jsonl:2.*'completion'"):
        SFTTrainer(cfg_for(tmp_path, "j2", "data.source=jsonl", f"data.path={bad}"))
    with pytest.raises(R1Error, match="data.path"):
        SFTTrainer(cfg_for(tmp_path, "j3", "data.source=jsonl"))
    with pytest.raises(R1Error, match="unknown data.source"):
        SFTTrainer(cfg_for(tmp_path, "j4", "data.source=parquetz"))


def test_examples_cut_off_by_max_length_say_so(tmp_path):
    """A long rendered prompt (rejection-sampled data) under a short data.max_length leaves no completion token:
    the error names data.max_length, not only 'empty completions'."""
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps({"prompt": "x" * 300, "completion": "4"}) + "\n")
    with pytest.raises(R1Error, match=r"data\.max_length=128"):
        SFTTrainer(cfg_for(tmp_path, "cut", "data.source=jsonl", f"data.path={data}", "data.max_length=128",
                           "data.examples_per_step=1"))


def test_packed_and_padded_rows_hand_case():
    ex = [([1, 2, 3], [False, True, True]), ([4, 5], [False, True])]
    rows = packed_rows(ex)
    assert rows["ids"].tolist() == [[1, 2, 3, 4, 5]] and rows["targets"].tolist() == [[2, 3, 0, 5, 0]]
    assert rows["loss_mask"].tolist() == [[True, True, False, True, False]]
    assert rows["plan"].positions.tolist() == [0, 1, 2, 0, 1]
    rows = padded_rows(ex, pad_id=9)
    assert rows["ids"].tolist() == [[1, 2, 3], [4, 5, 9]] and rows["targets"].tolist() == [[2, 3, 0], [5, 0, 0]]
    assert rows["loss_mask"].tolist() == [[True, True, False], [True, False, False]]
    assert micro_batches([3, 2, 4, 1], 6, packed=True) == [[0, 1], [2, 3]]
    assert micro_batches([3, 2, 4, 1], 6, packed=False) == [[0, 1], [2], [3]]
    assert micro_batches([9], 4, packed=True) == [[0]]  # an example over the budget still gets its micro-batch


@pytest.mark.parametrize(
    "overrides",
    [
        [],  # packed (the default on the lean forward)
        ["data.packing=false"],
        ["optim.tokens_per_micro_batch=40"],  # several packed micro-batches
        ["data.packing=false", "optim.tokens_per_micro_batch=40"],
        ["data.batching=pack", "data.max_length=24", "data.completion_only=false"],  # rows across examples
    ],
    ids=["packed", "padded", "packed-micro", "padded-micro", "batching-pack"],
)
def test_fast_path_matches_the_transformers_reference(tmp_path, overrides):
    """The lean step (sequence_hidden + the fused head on loss positions only) gives the loss, target count and
    every gradient of the reference step (transformers forward over right-padded rows, full logits, sft_loss)."""
    t = SFTTrainer(cfg_for(tmp_path, "fast", "data.examples_per_step=12", *overrides))
    assert t.lean is not None
    start = t.sampler.state_dict()
    got = {}
    for lean in (True, False):
        t.sampler.load_state_dict(start)
        t.use_lean = lean
        t.model.zero_grad()
        batch = [t.examples[i] for i in t.sampler.next()]
        pack = t.cfg.data.max_length if t.cfg.data.batching == "pack" else None
        if lean:
            loss, n = t._lean_backward(t._rows(batch, pack))
        else:
            ids, attn, mask = collate(batch, t.tok.pad_token_id, pack)
            loss, n = sft_loss(t.model(input_ids=ids, attention_mask=attn).logits.float(), ids, mask)
            loss.backward()
        got[lean] = loss.item(), int(n), {k: p.grad.clone() for k, p in t.model.named_parameters()}
    assert got[True][1] == got[False][1] > 0
    assert got[True][0] == pytest.approx(got[False][0], rel=1e-5)
    for k, want in got[False][2].items():
        err, scale = float((got[True][2][k] - want).abs().max()), float(want.abs().max())
        assert err <= 2e-5 * scale + 1e-7, f"{k}: {err:.3g} at scale {scale:.3g}"
    # and a whole step runs on it, equal to the reference's first step
    t.sampler.load_state_dict(start)
    t.use_lean = True
    assert t.step()["loss"] == pytest.approx(got[False][0], rel=1e-5)


def test_packing_needs_the_lean_forward_and_not_batching_pack(tmp_path):
    with pytest.raises(R1Error, match="data.packing"):
        cfg_for(tmp_path, "p1", "data.packing=true", "data.batching=pack")
    import transformers

    from r1.models import build_preset

    _, tok = build_preset("tiny-qwen2")
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2))
    gpt2.save_pretrained(tmp_path / "gpt2")
    tok.save_pretrained(tmp_path / "gpt2")
    with pytest.raises(R1Error, match="data.packing"):
        SFTTrainer(cfg_for(tmp_path, "p2", "data.packing=true", f"model.path={tmp_path / 'gpt2'}"))
    t = SFTTrainer(cfg_for(tmp_path, "p3", f"model.path={tmp_path / 'gpt2'}"))  # unset: the reference path
    assert t.lean is None and t.step()["tokens"] > 0
