"""Fellegi–Sunter arithmetic over integer comparison levels (level 0 = unknown, not compared).

Each comparison has m (level frequencies among true matches) and u (among non-matches); a
level's match weight is log2(m/u). u comes from random pairs, m from EM with u fixed, as
Splink does; see :func:`fit_em`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["fit_em", "initial_m", "level_probs", "tf_adjustment", "weights_per_level"]


def level_probs(levels: np.ndarray, weights: np.ndarray | None, n_levels: int) -> np.ndarray:
    counts = np.bincount(levels, weights=weights, minlength=n_levels).astype(float)
    counts[0] = 0.0
    counts += 1e-6  # no level has probability exactly 0
    counts[0] = 0.0
    return counts / counts.sum()


def weights_per_level(m: list[np.ndarray], u: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for mf, uf in zip(m, u, strict=True):
        w = np.zeros(len(mf))
        w[1:] = np.log2(mf[1:] / uf[1:])
        out.append(w)
    return out


def initial_m(n_levels: int) -> np.ndarray:
    start = np.full(n_levels, 0.1 / max(n_levels - 2, 1))  # most true matches agree exactly
    start[0], start[1] = 0.0, 0.9
    return start / start.sum()


def fit_em(levels: list[np.ndarray], u: list[np.ndarray], m: list[np.ndarray], match_rate: float,
           active: Sequence[bool], iterations: int, population: int | None = None,
           update_m: bool = True) -> tuple[list[np.ndarray], float]:
    """EM for the m of the ``active`` comparisons and the match rate, u fixed (Splink's recipe).

    Inactive comparisons are left out of the posterior: over pairs blocked on a field, agreeing
    on it says nothing, so its m is estimated in a session blocked on something else. With
    ``population`` the rate is over that many pairs (all left × right pairs; those not among the
    candidates are taken as non-matches), which is the prior that u from random pairs needs.
    """
    m = list(m)
    lam = match_rate
    for _ in range(iterations):
        w = weights_per_level(m, u)
        logit = np.full(len(levels[0]), np.log2(lam / (1 - lam)))
        for wf, lev, on in zip(w, levels, active, strict=True):
            if on:
                logit += wf[lev]
        p = 1.0 / (1.0 + np.exp2(-logit))
        lam = float(np.clip(p.sum() / (population or len(p)), 1e-12, 1 - 1e-6))
        if update_m:
            m = [level_probs(lev, p, len(mf)) if on else mf
                 for lev, mf, on in zip(levels, m, active, strict=True)]
    return m, lam


def tf_adjustment(codes: np.ndarray, tf: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """log2(Σtf² / tf(value)) for exact agreements: common values count for less, rare ones more."""
    adj = np.zeros(len(codes))
    if exact.any():
        s = float((tf ** 2).sum())
        adj[exact] = np.log2(s / tf[codes[exact]])
    return adj
