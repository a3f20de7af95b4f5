"""Tolerances for comparing float32 gradients computed in different orders."""

import torch


def assert_grad_close(actual, expected, rtol=1e-4, scale=1e-5, msg=None):
    """``actual`` = ``expected`` within ``rtol`` of each element plus ``scale`` times ``expected``'s largest magnitude.

    A fixed absolute tolerance fails on float32 rounding alone where a tensor is large (an embedding's gradient of
    ~2 summed in another order differs by ~4e-6 in its near-zero elements), while a wrong gradient is off by a
    sizeable fraction of the tensor's own scale: the absolute part follows that scale.
    """
    atol = scale * float(expected.abs().max()) + 1e-12 if expected.numel() else 0.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=msg)
