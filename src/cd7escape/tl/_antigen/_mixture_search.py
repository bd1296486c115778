"""The one-dimensional searches over ``pi`` of the antigen model, compiled (numba, cached on disk).

A group's fit maximises a log-likelihood in ``pi`` (the antigen-negative fraction) and, for its
interval, finds where that log-likelihood falls by a chi-square cut:

* the **anchored** likelihood (expressing level fixed): ``sum_i log(pi e^{l0_i} + (1 - pi) e^{l1_i})``;
* the **profile** likelihood: the same with ``mu`` maximised at each ``pi``
  (:func:`~cd7escape.tl._newton_log_mu.newton_log_mu`), warm-started from the last ``mu`` found and
  memoised by ``pi``.

The searches are Brent's bounded minimisation and Brent's root finder, step for step as SciPy's
``minimize_scalar(method="bounded")`` and ``brentq`` take them, so a fit agrees with the SciPy-driven
one to the rounding of the sums. The bootstrap of a 100k-cell patient fits about a hundred subclones per
replicate, most of a few hundred cells; with SciPy driving the searches a replicate took 0.41 CPU-s,
compiled 0.27 (0.23 with the Newton loop's fewer transcendental calls).

Objectives are picked by an integer ``kind`` rather than passed as functions: numba cannot cache code
that receives compiled functions as values.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from ._newton_log_mu import _total, newton_log_mu

ANCHORED, PROFILE = 0, 1
#: Profile evaluations remembered per fit: at most 502 for the maximum (the bounded search's 500 and
#: both ends), 103 for each of the three interval ends.
MEMO_SIZE = 1024
_SQRT_EPS = math.sqrt(2.2e-16)  # SciPy's bounded search uses this, not the machine epsilon
_GOLDEN = 0.5 * (3.0 - math.sqrt(5.0))
_RTOL = 4 * np.finfo(float).eps  # brentq's default relative tolerance


class Terms(NamedTuple):
    """Per-cell terms of one group (see :class:`cd7escape.tl._antigen_model._Group`) and search state."""

    y: np.ndarray
    s: np.ndarray
    ls: np.ndarray  # log s
    l0: np.ndarray  # log-likelihood under the negative component
    c1: np.ndarray  # lgamma(y + theta) - lgamma(theta) + theta log theta
    ypt: np.ndarray  # y + theta
    w: np.ndarray  # pool weights; empty: one cell each
    l1: np.ndarray  # anchored: log-likelihood under the expressing component; empty otherwise
    theta: float
    mu_floor: float
    state: np.ndarray  # [last mu found, entries memoised]
    memo: np.ndarray  # (MEMO_SIZE, 3): pi, mu, log-likelihood


def make_terms(y, s, l0, c1, ypt, w, theta, mu_floor, mu_start, l1=None) -> Terms:
    """Search state for one group; ``l1`` given: the anchored likelihood, else the profile one."""
    empty = np.empty(0)
    profile = l1 is None  # log s serves the profile's Newton steps; l1 the anchored likelihood
    return Terms(
        y, s, np.log(s) if profile else empty, l0, c1, ypt, empty if w is None else w,
        empty if profile else l1, float(theta), float(mu_floor),
        np.array([float(mu_start), 0.0]), np.empty((MEMO_SIZE, 3)),
    )  # fmt: skip


@numba.njit(cache=True, nogil=True)
def _find(t, p):  # pragma: no cover - compiled
    for i in range(int(t.state[1])):
        if t.memo[i, 0] == p:
            return i
    return -1


@numba.njit(cache=True, nogil=True)
def _profile(t, p):  # pragma: no cover - compiled
    """Profile log-likelihood at ``pi = p``; updates the warm start and the memo."""
    p = min(max(p, 0.0), 1.0)
    i = _find(t, p)
    if i >= 0:
        return t.memo[i, 2]
    if p >= 1.0:
        mu, ll = t.state[0], _total(t.l0, t.w)
    else:
        lp, lq = np.log(p), np.log1p(-p)
        u, ll = newton_log_mu(
            t.y, t.s, t.ls, t.l0, t.c1, t.ypt, t.w, t.theta, lp, lq,
            np.log(max(t.state[0], t.mu_floor)), np.log(t.mu_floor), 1e-9, 50,
        )  # fmt: skip
        mu = np.exp(u)
        t.state[0] = mu
    n = int(t.state[1])
    if n < MEMO_SIZE:
        t.memo[n, 0], t.memo[n, 1], t.memo[n, 2] = p, mu, ll
        t.state[1] = n + 1
    return ll


@numba.njit(cache=True, nogil=True)
def _anchored(t, p):  # pragma: no cover - compiled
    p = min(max(p, 0.0), 1.0)
    lp, lq = np.log(p), np.log1p(-p)
    acc = 0.0
    if t.w.size:  # weighted cells (pooled groups, traced ancestors)
        for i in range(t.l0.size):
            acc += t.w[i] * np.logaddexp(lp + t.l0[i], lq + t.l1[i])
        return acc
    for i in range(t.l0.size):
        acc += np.logaddexp(lp + t.l0[i], lq + t.l1[i])
    return acc


@numba.njit(cache=True, nogil=True)
def _loglik(kind, t, p):  # pragma: no cover - compiled
    return _anchored(t, p) if kind == ANCHORED else _profile(t, p)


@numba.njit(cache=True, nogil=True)
def _maximize(kind, t, lo, hi, xatol):  # pragma: no cover - compiled
    """``(x, -f(x))`` at the maximum of the log-likelihood on ``[lo, hi]``: Brent's bounded search.

    SciPy's ``minimize_scalar(method="bounded")`` step for step (on the negated log-likelihood).
    """
    a, b = lo, hi
    fulc = a + _GOLDEN * (b - a)
    nfc, xf = fulc, fulc
    rat = e = 0.0
    x = xf
    fx = -_loglik(kind, t, x)
    num = 1
    ffulc = fnfc = fx
    xm = 0.5 * (a + b)
    tol1 = _SQRT_EPS * abs(xf) + xatol / 3.0
    tol2 = 2.0 * tol1
    while abs(xf - xm) > (tol2 - 0.5 * (b - a)):
        golden = True
        if abs(e) > tol1:  # try a parabola through the three best points
            golden = False
            r = (xf - nfc) * (fx - ffulc)
            q = (xf - fulc) * (fx - fnfc)
            p = (xf - fulc) * q - (xf - nfc) * r
            q = 2.0 * (q - r)
            if q > 0.0:
                p = -p
            q = abs(q)
            r = e
            e = rat
            if abs(p) < abs(0.5 * q * r) and p > q * (a - xf) and p < q * (b - xf):
                rat = (p + 0.0) / q
                x = xf + rat
                if (x - a) < tol2 or (b - x) < tol2:
                    rat = tol1 * (np.sign(xm - xf) + (1.0 if xm - xf == 0 else 0.0))
            else:
                golden = True
        if golden:
            e = (a - xf) if xf >= xm else (b - xf)
            rat = _GOLDEN * e
        si = np.sign(rat) + (1.0 if rat == 0 else 0.0)
        x = xf + si * max(abs(rat), tol1)
        fu = -_loglik(kind, t, x)
        num += 1
        if fu <= fx:
            if x >= xf:
                a = xf
            else:
                b = xf
            fulc, ffulc = nfc, fnfc
            nfc, fnfc = xf, fx
            xf, fx = x, fu
        else:
            if x < xf:
                a = x
            else:
                b = x
            if fu <= fnfc or nfc == xf:
                fulc, ffulc = nfc, fnfc
                nfc, fnfc = x, fu
            elif fu <= ffulc or fulc == xf or fulc == nfc:  # noqa: SIM109 (compiled: no tuple)
                fulc, ffulc = x, fu
        xm = 0.5 * (a + b)
        tol1 = _SQRT_EPS * abs(xf) + xatol / 3.0
        tol2 = 2.0 * tol1
        if num >= 500:  # SciPy's default limit of evaluations
            break
    return xf, -fx


@numba.njit(cache=True, nogil=True)
def _crossing(kind, t, level, xa, xb, xtol):  # pragma: no cover - compiled
    """The ``pi`` in ``[xa, xb]`` where the log-likelihood equals ``level``: Brent's root finder.

    SciPy's ``brentq`` step for step; the ends must bracket the level.
    """
    xpre, xcur = xa, xb
    xblk = fblk = spre = scur = 0.0
    fpre = _loglik(kind, t, xpre) - level
    fcur = _loglik(kind, t, xcur) - level
    if fpre == 0:
        return xpre
    if fcur == 0:
        return xcur
    for _ in range(100):  # brentq's default limit of iterations
        if fpre != 0 and fcur != 0 and (fpre < 0) != (fcur < 0):
            xblk, fblk = xpre, fpre
            spre = scur = xcur - xpre
        if abs(fblk) < abs(fcur):
            xpre, xcur, xblk = xcur, xblk, xcur
            fpre, fcur, fblk = fcur, fblk, fcur
        delta = (xtol + _RTOL * abs(xcur)) / 2
        sbis = (xblk - xcur) / 2
        if fcur == 0 or abs(sbis) < delta:
            return xcur
        if abs(spre) > delta and abs(fcur) < abs(fpre):
            if xpre == xblk:  # interpolate
                stry = -fcur * (xcur - xpre) / (fcur - fpre)
            else:  # extrapolate
                dpre = (fpre - fcur) / (xpre - xcur)
                dblk = (fblk - fcur) / (xblk - xcur)
                stry = -fcur * (fblk * dblk - fpre * dpre) / (dblk * dpre * (fblk - fpre))
            if 2 * abs(stry) < min(abs(spre), 3 * abs(sbis) - delta):
                spre, scur = scur, stry  # a good short step
            else:
                spre = scur = sbis
        else:
            spre = scur = sbis
        xpre, fpre = xcur, fcur
        if abs(scur) > delta:
            xcur += scur
        else:
            xcur += delta if sbis > 0 else -delta
        fcur = _loglik(kind, t, xcur) - level
    return xcur


# Entry points take the fields of a Terms (``*terms``) rather than the tuple: numba's dispatcher types
# arrays and floats in C but a tuple in Python, at about a millisecond a call.


@numba.njit(cache=True, nogil=True)
def anchored_search(xatol, drop, *fields):  # pragma: no cover - compiled
    """``(pi, ll_max, ll(0), ci_low, ci_high)`` of the anchored likelihood (``l1`` given).

    The maximum is the best of the bounded search's and both ends'. The interval is where the
    log-likelihood stays within ``drop`` of its maximum (NaN: no interval).
    """
    t = Terms(*fields)
    x, top = _maximize(ANCHORED, t, 0.0, 1.0, xatol)
    ll0, ll1 = _anchored(t, 0.0), _anchored(t, 1.0)
    pi, lmax = x, top
    if ll0 > lmax:  # ties keep the earlier candidate, as Python's max() does
        pi, lmax = 0.0, ll0
    if ll1 > lmax:
        pi, lmax = 1.0, ll1
    lo = hi = np.nan
    if not np.isnan(drop):
        cut = lmax - drop
        lo = 0.0 if pi <= 0 or ll0 - cut >= 0 else _crossing(ANCHORED, t, cut, 0.0, pi, xatol)
        hi = 1.0 if pi >= 1 or ll1 - cut >= 0 else _crossing(ANCHORED, t, cut, pi, 1.0, xatol)
    return pi, lmax, ll0, lo, hi


@numba.njit(cache=True, nogil=True)
def profile_maximum(xatol, *fields):  # pragma: no cover - compiled
    """``(pi_hat, ll_hat, ll0, mu0, mu_hat)``: the profile fit's maximum, checked against both ends.

    ``ll0`` and ``mu0`` are the fit at ``pi = 0``; ``mu_hat`` is NaN when ``pi_hat == 1``.
    """
    t = Terms(*fields)
    ll0 = _profile(t, 0.0)
    mu0 = t.memo[0, 1]  # the first evaluation
    pi_hat, ll_hat = _maximize(PROFILE, t, 0.0, 1.0, xatol)
    if ll0 >= ll_hat:
        pi_hat, ll_hat = 0.0, ll0
    ll1 = _profile(t, 1.0)  # the bounded search never evaluates the ends exactly
    if ll1 > ll_hat:
        pi_hat, ll_hat = 1.0, ll1
    # every candidate was evaluated (the bounded search stays inside [0, 1]) and is remembered
    t.state[0] = t.memo[_find(t, pi_hat), 1]
    mu_hat = t.state[0] if pi_hat < 1.0 else np.nan
    return pi_hat, ll_hat, ll0, mu0, mu_hat


@numba.njit(cache=True, nogil=True)
def profile_crossing(level, lo, hi, pi_hat, mu_restart, xtol, *fields):  # pragma: no cover
    """Where the profile log-likelihood falls to ``level`` between ``pi_hat`` and the other end.

    The other end itself when the likelihood there is still at or above ``level``. The root search
    restarts ``mu`` from ``mu_restart`` (the maximum's). Call after :func:`profile_maximum` on the
    same fields: the memo of its evaluations is shared.
    """
    t = Terms(*fields)
    end = hi if hi != pi_hat else lo
    if _profile(t, end) - level >= 0:
        return end
    t.state[0] = mu_restart
    return _crossing(PROFILE, t, level, lo, hi, xtol)
