"""``OffloadedWeights`` (``grpo.reference_offload``): a frozen model's weights in a file, mapped in only inside
``loaded()``; the same outputs as the model that never left memory; a file changed under it is a one-line error.

Run: ``python -m pytest tests/models/test_offload.py -q``.
"""

import copy

import pytest
import torch

from r1.errors import R1Error
from r1.models.fast import FastLM
from r1.models.offload import OffloadedWeights
from tests.models.test_fast import tiny

IDS = torch.tensor([[5, 9, 2, 7, 1, 3], [4, 4, 8, 0, 6, 2]])


def frozen(arch="qwen2", **extra):
    model = tiny(arch, **extra).eval().requires_grad_(False)
    return model, copy.deepcopy(model)


@pytest.mark.parametrize("tied", [True, False])
def test_offloaded_model_gives_the_same_logits_and_holds_nothing_between_passes(tmp_path, tied):
    model, kept = frozen(tie_word_embeddings=tied)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    path = tmp_path / "reference.safetensors"
    released = []
    w = OffloadedWeights(model, path)
    w.on_release.append(lambda: released.append(1))
    assert path.is_file() and not path.with_name(path.name + ".tmp").exists()
    assert all(p.numel() == 0 for p in model.parameters())  # nothing held between passes
    assert w.nbytes == sum(p.numel() * 4 for p in kept.parameters())
    with torch.no_grad(), w.loaded():
        assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied  # still one Parameter when tied
        got = model(IDS).logits
        with w.loaded():  # nested: the weights stay as they are, nothing is read again
            inner = [p.data_ptr() for p in model.parameters()]
        assert inner == [p.data_ptr() for p in model.parameters()]
        assert not released
    assert torch.equal(got, kept(IDS).logits)  # exactly the same weights
    assert released == [1] and all(p.numel() == 0 for p in model.parameters())
    with torch.no_grad(), w.loaded():  # and again, a pass later
        assert torch.equal(model(IDS).logits, got)


def test_lean_forward_drops_its_weight_copies_with_the_weights(tmp_path):
    model, kept = frozen()
    lean = FastLM(model)
    w = OffloadedWeights(model, tmp_path / "r.safetensors")
    w.on_release.append(lean.drop_cached)
    with torch.no_grad(), w.loaded():
        first = lean.weights()
        assert lean.weights() is first  # cached while the weights are in place
        assert torch.equal(first[0].wgu, FastLM(kept).weights()[0].wgu)
    assert lean._cached is None  # the fused copies went with the weights
    with torch.no_grad(), w.loaded():
        assert lean.weights() is not first


def test_trainable_model_is_refused(tmp_path):
    model = tiny("qwen2")
    with pytest.raises(R1Error, match="must be frozen"):
        OffloadedWeights(model, tmp_path / "r.safetensors")
    assert not (tmp_path / "r.safetensors").exists()


def test_a_changed_or_missing_file_is_a_one_line_error_and_leaves_the_model_empty(tmp_path):
    from safetensors.torch import load_file, save_file

    model, _ = frozen()
    path = tmp_path / "r.safetensors"
    w = OffloadedWeights(model, path)
    tensors = load_file(path)
    name = "model.layers.0.mlp.up_proj.weight"
    save_file({**tensors, name: tensors[name][:3].contiguous()}, path)
    with pytest.raises(R1Error, match=f"{name} is \\(3, 64\\).*changed during the run"):
        with w.loaded():
            pass
    assert all(p.numel() == 0 for p in model.parameters()) and w.depth == 0
    path.write_bytes(b"\x00" * 64)  # not a safetensors file
    with pytest.raises(R1Error, match="cannot read the offloaded reference weights"):
        w.load()
    path.unlink()
    with pytest.raises(R1Error, match="are gone"):
        w.load()
    save_file(tensors, path)  # put back: usable again
    with w.loaded():
        assert model.model.embed_tokens.weight.numel() > 0


def test_second_writer_reads_the_first_ones_file(tmp_path):
    """Data-parallel workers: rank 0 writes, the others (``write=False``) read the same file."""
    a, kept = frozen()
    b, _ = frozen()
    path = tmp_path / "r.safetensors"
    OffloadedWeights(a, path)
    with torch.no_grad():
        b.model.embed_tokens.weight.zero_()  # whatever b held, the file's weights are what it runs
    w = OffloadedWeights(b, path, write=False)
    with torch.no_grad(), w.loaded():
        assert torch.equal(b(IDS).logits, kept(IDS).logits)
