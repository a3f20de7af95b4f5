"""LoRA (``model.lora``) in GRPO and SFT: only the adapters train, the reference is the base with the adapters off,
the lean forward and the native sampler read adapted weights exactly, checkpoints load with peft, resume is exact,
bad settings are one-line errors.

Run: ``python -m pytest tests/train/test_lora.py -q``.
"""

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")

from r1.algo import compute_group_advantages  # noqa: E402
from r1.config import GRPOConfig, SFTConfig, load_config, validate  # noqa: E402
from r1.errors import R1Error  # noqa: E402
from r1.models import load  # noqa: E402
from r1.models.policy import PolicyForward  # noqa: E402
from r1.train.common import PhaseTimer  # noqa: E402
from r1.train.grpo import TIMING_PREFIXES, GRPOTrainer, train_grpo  # noqa: E402
from r1.train.metrics import read_metrics  # noqa: E402
from r1.train.sft import train_sft  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
LORA = ["model.lora.r=4", "model.lora.alpha=8"]


def grpo_cfg(tmp_path, name, *overrides):
    base = [
        "model.path=tiny-qwen2", "task.name=addition", "task.template=plain",
        "task.params={digits: 2, num_train: 64, num_test: 16}", "rollout.max_new_tokens=12",
        "grpo.prompts_per_step=2", "grpo.samples_per_prompt=3", "optim.lr=1e-2", "rollout.temperature=1.5",
        f"run.out_dir={tmp_path}", f"run.name={name}", "run.steps=2", "run.progress=false", "run.threads=1",
        *LORA,
    ]
    return load_config(GRPOConfig, None, base + list(overrides))


def base_weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}


def lora_weights(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" in n}


def rollout_with_advantages(t: GRPOTrainer):
    """A rollout and advantages that are never all zero (a random-init model's rewards mostly agree)."""
    r, _ = t.rollout(PhaseTimer())
    adv = compute_group_advantages(r.rewards, 3, "group_std", 1e-6) + torch.linspace(-1, 1, len(r.rewards))
    return r, adv


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_only_the_adapters_train_and_the_reference_is_the_base(tmp_path):
    t = GRPOTrainer(grpo_cfg(tmp_path, "step", "grpo.kl_coef=0.1"))
    assert t.peft is not None and t.ref_model is t.model  # no second copy of the weights
    trainable = {id(p) for p in t.model.parameters() if p.requires_grad}
    in_optimizer = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    assert in_optimizer == trainable == {id(p) for n, p in t.model.named_parameters() if "lora_" in n}
    base0, lora0 = base_weights(t.model), lora_weights(t.model)
    for _ in range(2):  # two updates: the second has B != 0, so A gets a gradient too
        r, adv = rollout_with_advantages(t)
        t.train_on(r, adv, PhaseTimer())
    assert all(p.grad is None for n, p in t.model.named_parameters() if "lora_" not in n)
    after = base_weights(t.model)
    assert all(torch.equal(base0[n], after[n]) for n in base0)  # the base, bit for bit
    changed = {n for n, w in lora_weights(t.model).items() if not torch.equal(w, lora0[n])}
    assert any("lora_A" in n for n in changed) and any("lora_B" in n for n in changed)

    # the reference's logprobs (k3 KL, beta > 0) are the base model's: a fresh load of the same preset and seed
    r, adv = rollout_with_advantages(t)
    b = t.train_batch(r, adv)
    ref = t.ref_logprobs(b)
    base, _ = load("tiny-qwen2", seed=t.cfg.run.seed)
    plain = PolicyForward(base, None, t.tok.pad_token_id)
    plain.use_lean = False  # the transformers forward of the plain base model
    rows, tc = list(range(len(b.lengths))), b.completion_ids.shape[1]
    with torch.no_grad():
        want, _ = plain.policy_logprobs(r, rows, tc, b.completion_ids, b.temperature)
        policy, _ = t.policy_forward.policy_logprobs(r, rows, tc, b.completion_ids, b.temperature)
    torch.testing.assert_close(ref * b.mask, want * b.mask, rtol=1e-5, atol=1e-5)
    assert ((policy - want).abs() * b.mask).max() > 1e-4  # the adapter does change the policy
    assert t.model.model.layers[0].self_attn.q_proj.disable_adapters is False  # switched back on after


@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
@pytest.mark.parametrize("preset", ["tiny-qwen2", "tiny-llama"])
def test_lean_forward_and_native_sampler_apply_the_adapters(tmp_path, preset):
    """With adapters (B != 0) the lean train pass gives the transformers forward's loss, KL and gradient through peft,
    and the native sampler's logprobs (the lean decode) are the train pass's."""
    t = GRPOTrainer(grpo_cfg(tmp_path, "lean", f"model.path={preset}", "grpo.kl_coef=0.1",
                             "optim.tokens_per_micro_batch=40"))
    assert t.policy_forward.lean_policy is not None and t.engine.fast is not None
    assert not t.records_rollout(6, 10)  # the replay's backward is the whole weights': never with adapters
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for n, p in t.model.named_parameters():
            if "lora_" in n:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    r, adv = rollout_with_advantages(t)
    grads = []
    t.optimizer.step = lambda: grads.append([p.grad.clone() for p in t.optimizer.param_groups[0]["params"]])
    fast = t.train_on(r, adv, PhaseTimer())
    t.policy_forward.use_lean = False
    plain = t.train_on(r, adv, PhaseTimer())
    assert fast["kl"] > 1e-4 and plain["logprob_diff_rollout_vs_train"] < 1e-5
    for k in ("loss", "kl", "entropy", "grad_norm"):
        assert fast[k] == pytest.approx(plain[k], rel=1e-4, abs=1e-7), k
    for a, b in zip(*grads):  # A's gradient is B^T·dW here and a product over tokens in peft: other roundings
        assert (a - b).norm() <= 1e-4 * b.norm()


def test_lora_dropout_trains_through_the_transformers_forward(tmp_path):
    t = GRPOTrainer(grpo_cfg(tmp_path, "drop", "model.lora.dropout=0.1", "grpo.kl_coef=0.1"))
    assert t.policy_forward.lean_policy is None  # dropout: the lean forward would leave it out
    assert t.policy_forward.lean_reference is not None and t.engine.fast is not None  # no dropout there
    t.step(1)


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing")
def test_checkpoint_loads_with_peft_and_gives_the_policy_logits(tmp_path):
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM

    t = GRPOTrainer(grpo_cfg(tmp_path, "ckpt", "model.lora.merge=true"))
    r, adv = rollout_with_advantages(t)
    t.train_on(r, adv, PhaseTimer())
    ckpt = t.checkpoint(1)
    assert (ckpt / "adapter_config.json").is_file() and (ckpt / "adapter_model.safetensors").is_file()
    assert not (ckpt / "model.safetensors").exists()  # no copy of the base per checkpoint
    base_path = json.loads((ckpt / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base_path) == (tmp_path / "ckpt" / "base_model").resolve()  # a preset's base, saved once
    ids = torch.tensor([t.prompt_ids(0) + [40, 41, 42]])
    t.model.eval()
    with torch.no_grad():
        want = t.model(input_ids=ids).logits
        peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_path), ckpt)
        torch.testing.assert_close(peft_model(input_ids=ids).logits, want, rtol=0, atol=0)
        auto = AutoPeftModelForCausalLM.from_pretrained(ckpt)
        torch.testing.assert_close(auto(input_ids=ids).logits, want, rtol=0, atol=0)
        # r1's loader (r1 eval, r1 generate, a pipeline stage's output): the run directory's latest checkpoint,
        # merged/ when there, else the base + the adapter, merged: plain transformers models either way
        validate(grpo_cfg(tmp_path, "next", f"model.path={tmp_path / 'ckpt'}"))  # a later stage's model.path
        merged, _ = load(str(tmp_path / "ckpt"))
        assert not hasattr(merged, "peft_config")
        torch.testing.assert_close(merged(input_ids=ids).logits, want, rtol=1e-5, atol=1e-5)
        merged_dir = AutoModelForCausalLM.from_pretrained(ckpt / "merged")
        torch.testing.assert_close(merged_dir(input_ids=ids).logits, want, rtol=1e-5, atol=1e-5)
        import shutil

        shutil.rmtree(ckpt / "merged")
        from_adapter, tok = load(str(ckpt))
        torch.testing.assert_close(from_adapter(input_ids=ids).logits, want, rtol=1e-5, atol=1e-5)
        assert tok.padding_side == "left"


def _comparable(rows):
    return [{k: v for k, v in r.items() if not k.startswith(TIMING_PREFIXES)} for r in rows]


class Killed(Exception):
    pass


def kill_after_3(step, metrics):
    if step == 3:
        raise Killed


def test_grpo_resume_continues_the_adapter_and_optimizer(tmp_path):
    from safetensors.torch import load_file

    extra = ["run.steps=4", "run.save_every=2", "grpo.kl_coef=0.02"]
    full = train_grpo(grpo_cfg(tmp_path, "full", *extra))
    cfg = grpo_cfg(tmp_path, "killed", *extra)
    with pytest.raises(Killed):
        train_grpo(cfg, on_step_end=kill_after_3)
    train_grpo(cfg, resume=tmp_path / "killed")
    a, b = _comparable(read_metrics(full)), _comparable(read_metrics(tmp_path / "killed"))
    assert [r["step"] for r in b] == [1, 2, 3, 4] and a == b
    assert any(r["grad_norm"] > 0 for r in a)
    wa = load_file(full / "checkpoints" / "step_000004" / "adapter_model.safetensors")
    wb = load_file(tmp_path / "killed" / "checkpoints" / "step_000004" / "adapter_model.safetensors")
    w0 = load_file(full / "checkpoints" / "step_000002" / "adapter_model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(not torch.equal(wa[k], w0[k]) for k in wa)  # the adapter moved after the resumed step


def sft_cfg(tmp_path, name, *overrides):
    return load_config(SFTConfig, REPO / "configs" / "sft" / "smoke.yaml", [
        f"data.path={REPO / 'configs' / 'sft' / 'smoke.jsonl'}", f"run.out_dir={tmp_path}", f"run.name={name}",
        "run.steps=4", "run.save_every=2", "run.progress=false", "run.threads=1", "optim.lr=1e-2",
        "optim.warmup_steps=0", *LORA, *overrides,
    ])


def test_sft_trains_the_adapter_only_and_resumes_exactly(tmp_path):
    from safetensors.torch import load_file

    full = train_sft(sft_cfg(tmp_path, "full", "model.lora.merge=true"))
    rows = read_metrics(full)
    assert rows[-1]["loss"] < rows[0]["loss"]
    ckpt = full / "checkpoints" / "step_000004"
    base = load_file(full / "base_model" / "model.safetensors")
    fresh, _ = load("tiny-qwen2", seed=0)
    assert all(torch.equal(t, fresh.state_dict()[k]) for k, t in base.items())  # the base as it was
    merged = load_file(ckpt / "merged" / "model.safetensors")
    assert not torch.equal(merged["model.layers.0.self_attn.q_proj.weight"],
                           base["model.layers.0.self_attn.q_proj.weight"])
    cfg = sft_cfg(tmp_path, "killed", "model.lora.merge=true")
    with pytest.raises(Killed):
        train_sft(cfg, on_step_end=kill_after_3)
    train_sft(cfg, resume=tmp_path / "killed")
    assert _comparable(read_metrics(tmp_path / "killed")) == _comparable(rows)
    wa = load_file(ckpt / "adapter_model.safetensors")
    wb = load_file(tmp_path / "killed" / "checkpoints" / "step_000004" / "adapter_model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_bad_lora_settings_are_one_line_errors(tmp_path):
    for override, message in [
        ("model.lora.r=-1", "model.lora.r must be >= 0"),
        ("model.lora.alpha=0", "model.lora.alpha must be > 0"),
        ("model.lora.dropout=1", "model.lora.dropout must be >= 0 and < 1"),
        ("model.lora.target_modules=[]", "model.lora.target_modules=\\[\\]: give a non-empty list"),
        ("model.lora.rank=4", "valid keys under model.lora: r, alpha, dropout, target_modules, merge"),
    ]:
        with pytest.raises(R1Error, match=message) as e:
            grpo_cfg(tmp_path, "bad", override)
        assert "\n" not in str(e.value)
    with pytest.raises(R1Error) as e:
        GRPOTrainer(grpo_cfg(tmp_path, "bad", "model.lora.target_modules=[q_proj, qkv]"))
    assert str(e.value) == (
        "model.lora.target_modules: 'qkv' name(s) no linear layer of this qwen2 model; valid: down_proj, gate_proj, "
        "k_proj, o_proj, q_proj, up_proj, v_proj"
    )
    assert not (tmp_path / "bad").exists()  # nothing written before the model was checked
    # a LoRA checkpoint resumed without LoRA, and a full checkpoint resumed with it
    train_grpo(grpo_cfg(tmp_path, "lora", "run.steps=1"))
    with pytest.raises(R1Error, match="holds a LoRA adapter; resume with the run's model.lora"):
        GRPOTrainer(grpo_cfg(tmp_path, "lora", "run.steps=2", "model.lora.r=0"), resume=tmp_path / "lora")
    train_grpo(grpo_cfg(tmp_path, "full", "run.steps=1", "model.lora.r=0"))
    with pytest.raises(R1Error, match="holds no LoRA adapter"):
        GRPOTrainer(grpo_cfg(tmp_path, "full", "run.steps=2"), resume=tmp_path / "full")
    with pytest.raises(R1Error, match="does not match model.lora"):
        GRPOTrainer(grpo_cfg(tmp_path, "lora", "run.steps=2", "model.lora.r=2"), resume=tmp_path / "lora")


@pytest.mark.filterwarnings("ignore:.*is_gradient_checkpointing")
def test_a_moved_run_directory_loads_with_its_own_base_and_a_lost_base_is_one_line(tmp_path):
    import shutil

    from r1.models.lora import attach_lora, save_adapter, set_base_path

    model, tok = load("tiny-qwen2", seed=0)
    peft_model = attach_lora(model, 4, 8.0, 0.0, ["q_proj", "v_proj"])
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)
    run = tmp_path / "run"
    set_base_path(peft_model, tok, "tiny-qwen2", run, save=True)
    save_adapter(peft_model, tok, run / "checkpoints" / "step_000001")
    (run / "checkpoints" / "latest").write_text("step_000001")
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        want = model(input_ids=ids).logits
    shutil.move(run, tmp_path / "moved")
    loaded, _ = load(str(tmp_path / "moved"))  # its base_model, not the path the adapter names (gone)
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, want, rtol=1e-5, atol=1e-5)
    shutil.rmtree(tmp_path / "moved" / "base_model")
    with pytest.raises(R1Error, match="adapter_config.json: its base .*run/base_model does not exist") as e:
        load(str(tmp_path / "moved"))
    assert "\n" not in str(e.value)
