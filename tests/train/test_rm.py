"""Reward-model engine (``r1 rm``): Bradley-Terry loss and pairwise accuracy on hand cases, the procedural pairs,
data errors, save → ``AutoModelForSequenceClassification.from_pretrained`` → same scores, learning above chance,
resume.

Run: ``python -m pytest tests/train/test_rm.py -q``.
"""

import json
import math
from pathlib import Path

import pytest
import torch

from r1.config import RMConfig, load_config
from r1.errors import R1Error
from r1.tasks.preference import make_pairs
from r1.train.metrics import read_metrics
from r1.train.rm import RMTrainer, bradley_terry_loss, load_pairs, pairwise_accuracy, read_pairs, train_rm

REPO = Path(__file__).resolve().parents[2]


def test_bradley_terry_loss_hand_case():
    # pair 1: margin 1 -> -log σ(1) = log(1 + e^-1) = 0.31326; pair 2: margin 0 -> -log σ(0) = log 2 = 0.69315
    loss = bradley_terry_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.0]))
    assert loss.item() == pytest.approx((math.log(1 + math.exp(-1)) + math.log(2)) / 2)
    assert loss.item() == pytest.approx(0.503204, abs=1e-6)
    # only the margin matters: shifting both scores changes nothing; a large wrong margin costs about the margin
    assert bradley_terry_loss(torch.tensor([5.0]), torch.tensor([4.0])).item() == pytest.approx(0.313262, abs=1e-6)
    assert bradley_terry_loss(torch.tensor([0.0]), torch.tensor([30.0])).item() == pytest.approx(30.0, abs=1e-6)


def test_bradley_terry_gradient_pushes_chosen_up_and_rejected_down():
    c, r = torch.tensor([0.5], requires_grad=True), torch.tensor([1.0], requires_grad=True)
    bradley_terry_loss(c, r).backward()
    # d/dc -log σ(c - r) = -(1 - σ(c - r)) = -σ(r - c) = -σ(0.5)
    assert c.grad.item() == pytest.approx(-1 / (1 + math.exp(-0.5))) and r.grad.item() == pytest.approx(-c.grad.item())


def test_pairwise_accuracy_hand_cases():
    assert pairwise_accuracy(torch.tensor([2.0, 1.0, 0.0]), torch.tensor([1.0, 1.0, 1.0])) == pytest.approx(1 / 3)
    assert pairwise_accuracy(torch.tensor([1.0, 1.0]), torch.tensor([0.0, -3.0])) == 1.0
    assert pairwise_accuracy(torch.tensor([0.0]), torch.tensor([0.0])) == 0.0  # a tie is not a win
    assert math.isnan(pairwise_accuracy(torch.zeros(0), torch.zeros(0)))


@pytest.mark.parametrize("task", ["helpful", "harmless"])
def test_procedural_pairs_are_deterministic_with_disjoint_splits(task):
    args = dict(num_train=300, num_test=40, seed=3)
    train, test = make_pairs(task, "train", **args), make_pairs(task, "test", **args)
    assert train == make_pairs(task, "train", **args) and test == make_pairs(task, "test", **args)
    assert len(train) == 300 and len(test) == 40 and len({p["prompt"] for p in test}) == 40
    assert not {p["prompt"] for p in train} & {p["prompt"] for p in test}
    assert all(p["chosen"] != p["rejected"] and p["kind"] for p in train + test)
    assert make_pairs(task, "train", num_train=300, num_test=40, seed=4) != train


def test_procedural_pairs_hand_examples():
    pairs = make_pairs("helpful", "train", num_train=400, num_test=0, seed=0)
    wrong = next(p for p in pairs if p["kind"] == "wrong" and "+" in p["prompt"])
    a, b = (int(x) for x in wrong["prompt"][len("What is "):-1].split(" + "))
    assert f"= {a + b}." in wrong["chosen"] and f"= {a + b}." not in wrong["rejected"]
    harm = make_pairs("harmless", "train", num_train=200, num_test=0, seed=0, benign_share=0.5)
    comply = next(p for p in harm if p["kind"] == "comply")
    assert comply["chosen"].startswith(("I can't", "I won't")) and not comply["rejected"].startswith("I")
    benign = next(p for p in harm if p["kind"] == "over_refusal")
    assert benign["chosen"].startswith("Here's how") and ("help" in benign["rejected"] or "assist" in benign["rejected"])
    assert all(p["kind"] == "comply" for p in make_pairs("harmless", "train", num_train=50, num_test=0,
                                                           benign_share=0.0))


def test_procedural_pair_errors():
    with pytest.raises(R1Error, match="prompt pool is too small"):
        make_pairs("harmless", "test", num_train=10, num_test=1000)
    with pytest.raises(R1Error, match="bad parameters for preference task 'helpful'"):
        make_pairs("helpful", "train", num_train=5, num_test=5, digits=3)
    with pytest.raises(R1Error, match="mix must map"):
        make_pairs("helpful", "train", num_train=5, num_test=5, mix={"rude": 1.0})
    with pytest.raises(R1Error, match="benign_share"):
        make_pairs("harmless", "train", num_train=5, num_test=5, benign_share=2)
    with pytest.raises(R1Error, match="unknown split 'dev'"):
        make_pairs("helpful", "dev", num_train=5, num_test=5)
    with pytest.raises(R1Error, match="unknown preference task 'kind'"):
        make_pairs("kind", "train", num_train=5, num_test=5)


def cfg_for(tmp_path, name, *overrides):
    base = [
        "model.path=tiny-qwen2",
        "data.num_train=64",
        "data.num_test=32",
        "data.max_length=96",
        "data.pairs_per_step=16",
        "optim.lr=2e-3",
        "optim.warmup_steps=2",
        f"run.out_dir={tmp_path}",
        f"run.name={name}",
        "run.steps=3",
        "run.progress=false",
        "run.log_every=0",
        "run.threads=1",
    ]
    return load_config(RMConfig, None, base + list(overrides))


def _write(path, lines):
    path.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return path


def test_jsonl_pairs_and_their_errors(tmp_path):
    good = _write(tmp_path / "p.jsonl", [{"prompt": f"q{i}", "chosen": "yes", "rejected": "no"} for i in range(10)])
    cfg = cfg_for(tmp_path, "j", "data.source=jsonl", f"data.path={good}", "data.test_fraction=0.2")
    train, test = load_pairs(cfg)
    assert len(train) == 8 and len(test) == 2 and not {p["prompt"] for p in train} & {p["prompt"] for p in test}
    assert load_pairs(cfg) == (train, test)  # the split is a function of run.seed

    missing = _write(tmp_path / "m.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"}, {"prompt": "a",
                                                                                              "chosen": "b"}])
    with pytest.raises(R1Error, match=r"m\.jsonl:2: missing field 'rejected'"):
        read_pairs(missing)
    nonstr = _write(tmp_path / "n.jsonl", [{"prompt": "a", "chosen": 3, "rejected": "c"}])
    with pytest.raises(R1Error, match=r"n\.jsonl:1: field 'chosen' must be a string, got int"):
        read_pairs(nonstr)
    empty = _write(tmp_path / "e.jsonl", ["", "  "])
    with pytest.raises(R1Error, match=r"e\.jsonl: no preference pairs \(empty file\)"):
        read_pairs(empty)
    one = _write(tmp_path / "one.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "c"}])
    with pytest.raises(R1Error, match="at least 2"):
        load_pairs(cfg_for(tmp_path, "j", "data.source=jsonl", f"data.path={one}"))
    with pytest.raises(R1Error, match="data.path"):
        load_config(RMConfig, None, ["data.source=jsonl"])
    # the trainer reports the bad line before the run directory is made
    with pytest.raises(R1Error, match=r"m\.jsonl:2"):
        train_rm(cfg_for(tmp_path, "bad", "data.source=jsonl", f"data.path={missing}"))
    assert not (tmp_path / "bad").exists()


def test_model_path_that_is_not_a_model(tmp_path):
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(R1Error, match="not a Hugging Face model directory"):
        train_rm(cfg_for(tmp_path, "x", f"model.path={tmp_path / 'notamodel'}"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(R1Error, match="cannot load .*broken as a sequence-classification model"):
        train_rm(cfg_for(tmp_path, "y", f"model.path={broken}"))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_saved_rm_loads_with_auto_class_and_gives_the_same_scores(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from r1.rewards.reward_model import score_texts

    trainer = RMTrainer(cfg_for(tmp_path, "save", "run.steps=1"))
    run_dir = trainer.train()
    summary = json.loads((run_dir / "summary.json").read_text())
    model_dir = Path(summary["model"])
    assert model_dir.parent.name == "checkpoints" and (model_dir / "model.safetensors").is_file()

    hf = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert hf.config.num_labels == 1 and hf.config.r1_reward_model == {"separator": "\n", "max_length": 96}
    prompts, responses = ["What is 2 + 3?", "What is 7 + 1?"], ["2 + 3 = 5. The answer is 5.", "Okay."]
    texts = [f"{p}\n{r}" for p, r in zip(prompts, responses)]
    with torch.no_grad():
        one_by_one = [hf(**tok(t, return_tensors="pt", add_special_tokens=False)).logits[0, 0].item() for t in texts]
        trainer.model.eval()
        device = trainer.model.device  # cuda where there is one (model.device=auto)
        ours = [trainer.model(**tok(t, return_tensors="pt", add_special_tokens=False).to(device)).logits[0, 0].item()
                for t in texts]
    assert one_by_one == pytest.approx(ours, abs=1e-4)
    # the reward's batched, padded scoring of the run directory gives the same numbers
    assert score_texts(run_dir, prompts, responses) == pytest.approx(one_by_one, abs=1e-5)


def test_short_training_beats_chance_on_held_out_pairs(tmp_path):
    """~40 steps of 16 pairs (a few seconds): held-out accuracy goes from the untrained head's to well above chance."""
    run_dir = train_rm(cfg_for(tmp_path, "learn", "run.steps=40", "data.params={mix: {evasive: 1, terse: 1}}"))
    rows = read_metrics(run_dir)
    assert rows[0]["step"] == 0 and "eval/accuracy" in rows[0] and rows[-1]["step"] == 40
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["eval"]["accuracy"] >= 0.8 > summary["eval_before"]["accuracy"]
    assert summary["eval"]["loss"] < summary["eval_before"]["loss"]
    assert set(summary["eval"]) >= {"accuracy/evasive", "accuracy/terse", "margin", "num_pairs"}


def test_rm_resumes_exactly(tmp_path):
    full = train_rm(cfg_for(tmp_path, "full", "run.save_every=2", "run.steps=4"))

    class Killed(Exception):
        pass

    def kill(step, m):
        if step == 3:
            raise Killed

    cfg = cfg_for(tmp_path, "killed", "run.save_every=2", "run.steps=4")
    with pytest.raises(Killed):
        train_rm(cfg, on_step_end=kill)
    train_rm(cfg, resume=tmp_path / "killed")
    strip = lambda rs: [{k: v for k, v in r.items() if not k.startswith(("time/", "throughput/"))} for r in rs]
    assert strip(read_metrics(tmp_path / "killed")) == strip(read_metrics(full))


@pytest.mark.parametrize("path", sorted((REPO / "configs" / "rm").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_rm_configs_validate(path):
    assert path.read_text().startswith(f"# r1 rm -c configs/rm/{path.name}")
    cfg = load_config(RMConfig, path)
    assert cfg.data.source == "task" and cfg.run.steps <= 200


@pytest.mark.slow
@pytest.mark.parametrize("name", ["helpful", "harmless"])
def test_shipped_rm_configs_train_above_chance(tmp_path, name):
    cfg = load_config(RMConfig, REPO / "configs" / "rm" / f"{name}.yaml", [f"run.out_dir={tmp_path}",
                                                                             "run.progress=false"])
    summary = json.loads((train_rm(cfg) / "summary.json").read_text())
    assert summary["eval"]["accuracy"] >= 0.85


def _cli_has_rm():
    from r1.cli import COMMANDS

    return "rm" in COMMANDS


@pytest.mark.skipif(not _cli_has_rm(), reason="r1 rm is not in r1.cli.COMMANDS yet")
def test_cli_rm_trains_and_bad_input_is_one_line(tmp_path, capsys):
    from r1.cli import main

    common = [f"run.out_dir={tmp_path}", "run.progress=false", "run.steps=2", "data.num_train=16", "data.num_test=8",
              "data.pairs_per_step=8", "run.threads=1"]
    assert main(["rm", "-c", str(REPO / "configs/rm/helpful.yaml"), *common]) == 0
    assert (tmp_path / "rm_helpful" / "summary.json").is_file()
    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "a", "chosen": "b"}])
    capsys.readouterr()
    assert main(["rm", "-c", str(REPO / "configs/rm/helpful.yaml"), *common, "run.name=bad", "data.source=jsonl",
                 f"data.path={bad}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("r1 rm: error: ") and "bad.jsonl:1: missing field 'rejected'" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()
