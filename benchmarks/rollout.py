"""Rollout throughput: the ``native`` engine vs the ``hf`` engine (``model.generate``).

    python benchmarks/rollout.py                                    # tiny preset, the full grid
    python benchmarks/rollout.py --prompts 8 --samples 8 --prompt-lens 16 --repeats 1   # one point

Grid: prompts per batch (``B``) × samples per prompt ``G`` ∈ {1, 8, 16} × prompt length ∈ {16, 256} tokens.
Same sampling on both engines (temperature 1.0, no top-k/top-p, 32 new tokens, EOS ends a row), same model (a
random ``r1`` preset, fp32, CPU). Generated tokens/s = generated tokens (EOS included, padding not) / wall time of
one ``generate`` call; the median over ``--repeats`` calls, alternating engines, after one untimed warm-up call per
engine. Prints the native/hf ratio per point (> 1: native is faster).

The engines draw different random numbers (``hf`` uses the global RNG), so lengths differ slightly; the ratio is
of rates, so that cancels out to first order.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def make_prompts(tok, num: int, length: int, seed: int) -> list[list[int]]:
    """``num`` prompts of exactly ``length`` token ids: BOS + random ``a+b=`` text (byte tokenizer: 1 byte = 1 id)."""
    rng = random.Random(seed)
    out = []
    for _ in range(num):
        text = ""
        while len(text) < length:
            text += f"{rng.randint(10, 99)}+{rng.randint(10, 99)}={rng.randint(20, 198)} "
        ids = [tok.bos_token_id] + tok(text, add_special_tokens=False).input_ids
        out.append(ids[:length])
    return out


def time_generate(engine, prompts, G, sampling, seed: int) -> tuple[float, int]:
    import torch

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t = time.perf_counter()
    outs = engine.generate(prompts, G, sampling, generator=gen)
    dt = time.perf_counter() - t
    return dt, sum(len(c.token_ids) for group in outs for c in group)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny", help="one of: " + ", ".join(common.PRESETS))
    ap.add_argument("--prompts", default="1,8", help="prompts per generate call (B), comma list")
    ap.add_argument("--samples", default="1,8,16", help="samples per prompt (G), comma list")
    ap.add_argument("--prompt-lens", default="16,256", help="prompt lengths in tokens, comma list")
    ap.add_argument("--max-new-tokens", type=int, default=common.MAX_NEW_TOKENS)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch

    from r1.models import build_preset
    from r1.rollout import SamplingParams, build_engine

    torch.set_num_threads(args.threads)
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    model, tok = build_preset(common.PRESETS.get(args.preset, args.preset), seed=0)
    model.eval()
    engines = {name: build_engine(name, model, tok) for name in ("native", "hf")}
    sampling = SamplingParams(temperature=common.TEMPERATURE, max_new_tokens=args.max_new_tokens)
    print(f"preset {args.preset}, torch {torch.__version__}, threads {args.threads}, load {os.getloadavg()[0]:.2f}")
    warm = make_prompts(tok, 2, 16, seed=1)
    with torch.no_grad():
        for e in engines.values():
            time_generate(e, warm, 2, sampling, seed=0)
    print(f"{'B':>3}{'G':>4}{'prompt':>8}{'native tok/s':>14}{'hf tok/s':>10}{'native/hf':>11}")
    ratios = []
    for plen in ints(args.prompt_lens):
        for B in ints(args.prompts):
            for G in ints(args.samples):
                prompts = make_prompts(tok, B, plen, seed=B * 1000 + plen)
                rates = {name: [] for name in engines}
                with torch.no_grad():
                    for rep in range(args.repeats):
                        order = list(engines) if rep % 2 == 0 else list(engines)[::-1]
                        for name in order:
                            dt, n = time_generate(engines[name], prompts, G, sampling, seed=rep)
                            rates[name].append(n / dt)
                nat, hf = common.median(rates["native"]), common.median(rates["hf"])
                ratios.append(nat / hf)
                print(f"{B:>3}{G:>4}{plen:>8}{nat:>14.0f}{hf:>10.0f}{nat / hf:>10.2f}x", flush=True)
    geo = 1.0
    for r in ratios:
        geo *= r
    print(f"geometric mean native/hf over {len(ratios)} points: {geo ** (1 / len(ratios)):.2f}x "
          f"(load {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
