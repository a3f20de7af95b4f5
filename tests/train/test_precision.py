"""``model.dtype=bf16`` on a CPU: the warning where bf16 has no matrix units (``r1.train.common``).

Run: ``python -m pytest tests/train/test_precision.py -q``.
"""

import torch

from r1.train import common


def test_bf16_warns_only_on_a_cpu_without_bf16_kernels(monkeypatch, capsys):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    assert common.bf16_is_slow_here(cpu, torch.bfloat16)
    assert not common.bf16_is_slow_here(cpu, torch.float32) and not common.bf16_is_slow_here(cuda, torch.bfloat16)
    common.warn_if_bf16_is_slow(cpu, torch.bfloat16)
    assert "far slower than model.dtype=fp32" in capsys.readouterr().out
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    assert not common.bf16_is_slow_here(cpu, torch.bfloat16)
    common.warn_if_bf16_is_slow(cpu, torch.bfloat16)
    assert capsys.readouterr().out == ""
