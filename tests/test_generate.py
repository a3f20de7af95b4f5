"""The generate engine (``r1.generate``): prompt ids, sampling settings, the batched loop, resume, grading.

Run: python -m pytest tests/test_generate.py -q   (tiny random model; a few seconds)
"""

import json

import pytest
import torch

from r1.config import RolloutConfig
from r1.data.sample import Sample
from r1.data.templates import render_prompt
from r1.errors import R1Error
from r1.generate import generate, read_done, sampling_params, tokenize_prompt
from r1.models import load as load_model
from r1.rollout import SamplingParams, build_engine
from r1.tasks import Task, build_task

SAMPLING = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=5)


class EchoTask(Task):
    """Questions are the problems; a completion scores 1 if it contains the answer."""

    def load(self, split):
        return [Sample(id=f"p{i}", problem=f"{i}+{i}=", answer=str(2 * i)) for i in range(5)]

    def grade(self, completion, sample):
        return float(sample.answer in completion)


class CountingEngine:
    """A rollout engine that records the prompts it is asked for."""

    def __init__(self, engine):
        self.engine, self.prompts = engine, []

    def generate(self, prompt_ids, n, sampling, generator=None):
        self.prompts += prompt_ids
        return self.engine.generate(prompt_ids, n, sampling, generator=generator)


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_model("tiny-qwen2", seed=0)
    model.eval()
    return model, tok


@pytest.mark.parametrize("template", ["r1_zero", "chat", "plain"])
def test_prompt_ids_are_the_templates_text_tokenised(tiny, template):
    _, tok = tiny
    for task in (EchoTask(), build_task("addition", digits=2, num_train=4, num_test=4)):
        for s in task.load("test"):
            # what the trainer, held-out eval and r1 eval each wrote before there was one function
            text = render_prompt(template, task.question(s), tok)
            ids = tok(text, add_special_tokens=template != "chat").input_ids
            assert tokenize_prompt(tok, template, task, s) == ids
            text = render_prompt(template, f"{task.question(s)}\n\nThink.", tok)  # r1 eval's benchmark instruction
            ids = tok(text, add_special_tokens=template != "chat").input_ids
            assert tokenize_prompt(tok, template, task, s, "Think.") == ids
    byte_ids = [49, 50, 43, 51, 52]  # "12+34" in the byte-level tokenizer, no special tokens added
    assert tokenize_prompt(tok, "plain", EchoTask(), Sample(id="x", problem="12+34", answer="46")) == byte_ids


def test_prompt_special_tokens_only_outside_a_chat_template(tiny):
    _, tok = tiny
    calls = []

    def recording(text, add_special_tokens):
        calls.append(add_special_tokens)
        return tok(text, add_special_tokens=add_special_tokens)

    recording.chat_template = tok.chat_template
    recording.apply_chat_template = tok.apply_chat_template
    s = Sample(id="x", problem="1+1=", answer="2")
    for template in ("r1_zero", "chat", "plain"):
        tokenize_prompt(recording, template, EchoTask(), s)
    assert calls == [True, False, True]  # a chat template's text already holds its BOS


def test_empty_prompt_is_an_error(tiny):
    _, tok = tiny
    with pytest.raises(R1Error, match="'x' renders to an empty prompt"):
        tokenize_prompt(tok, "plain", EchoTask(), Sample(id="x", problem="", answer=""))


def test_sampling_params_from_a_rollout_config():
    r = RolloutConfig(temperature=0.6, top_p=0.95, top_k=20, max_new_tokens=7, stop=["</answer>"])
    assert sampling_params(r) == SamplingParams(temperature=0.6, top_p=0.95, top_k=20, max_new_tokens=7,
                                                stop=["</answer>"])
    assert sampling_params(r).stop is not r.stop
    held_out = sampling_params(r, temperature=0.0, top_p=1.0, top_k=0)
    assert (held_out.temperature, held_out.top_p, held_out.top_k, held_out.max_new_tokens) == (0.0, 1.0, 0, 7)


def test_generate_with_one_stream_equals_sampling_batch_by_batch(tiny):
    model, tok = tiny
    task, engine = EchoTask(), build_engine("native", model, tok)
    samples = task.load("test")
    outs = generate(engine, tok, task, samples, SAMPLING, k=2, template="plain", prompts_per_batch=2,
                    generator=torch.Generator().manual_seed(3), grade=task.grade)
    gen, expected = torch.Generator().manual_seed(3), []
    for i in range(0, len(samples), 2):
        batch = samples[i : i + 2]
        prompts = [tok(s.problem).input_ids for s in batch]
        expected += engine.generate(prompts, 2, SAMPLING, generator=gen)
    assert len(outs) == len(samples)
    for s, recs, comps in zip(samples, outs, expected):
        assert [r["completion"] for r in recs] == [tok.decode(c.token_ids, skip_special_tokens=True) for c in comps]
        assert [r["num_tokens"] for r in recs] == [len(c.token_ids) for c in comps]
        assert [r["finish_reason"] for r in recs] == [c.finish_reason for c in comps]
        assert [r["score"] for r in recs] == [task.grade(r["completion"], s) for r in recs]


def test_a_resumed_generate_skips_done_problems_and_matches_an_uninterrupted_run(tiny, tmp_path):
    model, tok = tiny
    task, samples = EchoTask(), EchoTask().load("test")

    def run(path, subset):
        engine = CountingEngine(build_engine("native", model, tok))
        outs = generate(engine, tok, task, subset, SAMPLING, k=2, template="plain", prompts_per_batch=2,
                        batch_seed=lambda b: 100 + b, done=read_done(path, 2), out=path)
        return engine.prompts, outs

    whole = tmp_path / "whole.jsonl"
    asked, outs = run(whole, samples)
    assert len(asked) == 5 and len(whole.read_text().splitlines()) == 10
    assert [json.loads(x)["id"] for x in whole.read_text().splitlines()[:2]] == ["p0", "p0"]

    part = tmp_path / "part.jsonl"
    run(part, samples[:3])  # interrupted after 3 problems (batches [p0 p1] and [p2])
    lines = part.read_text().splitlines()
    part.write_text("\n".join(lines[:5]) + "\n" + lines[5][:10])  # p2's second line torn by a kill
    asked, resumed = run(part, samples)
    assert asked == [tokenize_prompt(tok, "plain", task, s) for s in samples[2:]]  # p0, p1 were done
    assert part.read_text() == whole.read_text()  # batch seeds: the samples do not depend on the interruption
    assert resumed == [[{"id": s.id, "index": j, **r} for j, r in enumerate(recs)] if s.id in ("p0", "p1") else recs
                       for s, recs in zip(samples, outs)]

    asked, again = run(part, samples)  # all done: the engine is never asked
    assert asked == [] and part.read_text() == whole.read_text() and len(again) == 5


def test_generate_done_problems_need_no_model(tmp_path):
    task, samples = EchoTask(), EchoTask().load("test")
    done = {s.id: [{"completion": "x"}] for s in samples}
    outs = generate(None, None, task, samples, None, k=1, template="plain", prompts_per_batch=2,
                    batch_seed=lambda b: b, done=done)
    assert outs == [[{"completion": "x"}]] * 5


def test_generate_takes_one_random_stream_rule():
    with pytest.raises(ValueError, match="exactly one"):
        generate(None, None, EchoTask(), [], None, k=1, template="plain", prompts_per_batch=1)
    with pytest.raises(ValueError, match="exactly one"):
        generate(None, None, EchoTask(), [], None, k=1, template="plain", prompts_per_batch=1,
                 generator=torch.Generator(), batch_seed=lambda b: b)


def test_read_done(tmp_path):
    path = tmp_path / "c.jsonl"
    assert read_done(path, 2) == {} and path.read_text() == ""  # created
    rows = [{"id": "a", "index": 0}, {"id": "a", "index": 1}, {"id": "b", "index": 0}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"id": "b", "ind')
    assert read_done(path, 2) == {"a": rows[:2]}  # b has 1 of 2 (and a torn line): sampled again
    assert path.read_text().splitlines() == [json.dumps(r) for r in rows[:2]]
    path.write_text('{"id": "a"}\nnot json\n{"id": "a"}\n')
    with pytest.raises(R1Error, match=r"c.jsonl:2: malformed JSON"):
        read_done(path, 2)
