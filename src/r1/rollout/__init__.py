"""Rollout engines behind one protocol (see ``r1.rollout.base``)."""

from r1.rollout.base import ENGINES, Completion, Engine, SamplingParams, build_engine

__all__ = ["ENGINES", "Completion", "Engine", "SamplingParams", "build_engine"]
