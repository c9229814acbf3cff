"""Slowly varying, plausible and deterministic values for the emulators."""

from __future__ import annotations

import math


def slow_wave(t: float, mean: float, amplitude: float, period: float, phase: float = 0.0) -> float:
    """``mean`` plus a smooth wander of about ``amplitude`` over ``period`` seconds.

    Two incommensurate sines, so consecutive readings differ a little and the
    series never looks like a test pattern; no randomness, so tests can rely
    on the value at a given time.
    """
    base = math.sin(2 * math.pi * t / period + phase)
    ripple = math.sin(2 * math.pi * t / (period / 7.31) + 3 * phase)
    return mean + amplitude * (0.9 * base + 0.1 * ripple)
