"""The profile likelihood's inner maximisation of the antigen model, compiled (numba, cached on disk).

For a fixed antigen-negative fraction ``pi``, the expressing mean ``mu`` that maximises the mixture
log-likelihood of one group (:meth:`cd7escape.tl._antigen_model._Group.profile_mu`): Newton steps on
``u = log mu`` with step halving, kept at or above the floor ``ufloor``. The same steps as the NumPy
version it replaces; sums run in cell order and ``exp``/``log`` are the C library's, so results agree
with NumPy's to rounding, not bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def newton_log_mu(y, s, l0, c1, ypt, w, theta, lp, lq, u, ufloor, tol, maxit):  # pragma: no cover
    """(u, log-likelihood) at the maximum over ``u = log mu``, from the start ``u``.

    Parameters
    ----------
    y, s
        Antigen counts and size factors of the (pooled) cells.
    l0, c1, ypt
        Per-cell terms: the log-likelihood under the negative component, ``lgamma(y + theta) -
        lgamma(theta) + theta log theta`` and ``y + theta``.
    w
        Pool weights; empty for unpooled cells (weight 1).
    theta
        Negative-binomial size of the expressing component.
    lp, lq
        ``log pi`` and ``log(1 - pi)``.
    u, ufloor
        Start and floor of ``log mu``.
    tol, maxit
        Convergence tolerance on ``u`` and most Newton steps.
    """
    n = y.size
    l1, g, h, lmix = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    l1n, gn, hn, lmixn = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    tmp, tmp2 = np.empty(n), np.empty(n)
    _terms(np.exp(u), y, s, l0, c1, ypt, theta, lp, lq, l1, g, h, lmix)
    ll = _total(lmix, w)
    for _ in range(maxit):
        mu = np.exp(u)
        for i in range(n):
            r = np.exp(lq + l1[i] - lmix[i])
            tmp[i] = r * g[i]
            tmp2[i] = r * (h[i] + (1 - r) * g[i] * g[i])
        d1 = _total(tmp, w)
        d2 = _total(tmp2, w)
        du1 = mu * d1
        du2 = mu * mu * d2 + du1
        step = -du1 / du2 if du2 < 0 else np.sign(du1) * 1.0
        if not np.isnan(step):
            step = min(max(step, -3.0), 3.0)
        if u <= ufloor and step < 0:
            break
        accepted = False
        un, lln = u, ll
        for _ in range(30):
            un = u + step
            if un < ufloor:  # NaN stays NaN, as with max(u + step, ufloor)
                un = ufloor
            _terms(np.exp(un), y, s, l0, c1, ypt, theta, lp, lq, l1n, gn, hn, lmixn)
            lln = _total(lmixn, w)
            if lln >= ll - 1e-12:
                accepted = True
                break
            step /= 2
        if not accepted:
            break
        done = abs(un - u) < tol or abs(lln - ll) < 1e-10 * (1 + abs(ll))
        u, ll = un, lln
        l1, l1n = l1n, l1
        g, gn = gn, g
        h, hn = hn, h
        lmix, lmixn = lmixn, lmix
        if done:
            break
    return u, ll


@numba.njit(cache=True, nogil=True)
def _terms(mu, y, s, l0, c1, ypt, theta, lp, lq, l1, g, h, lmix):  # pragma: no cover - compiled
    """Expressing log pmf (without -lgamma(y+1)), its first and second derivative in mu, the mixture."""
    for i in range(y.size):
        m = s[i] * mu
        tm = theta + m
        l1[i] = c1[i] - ypt[i] * np.log(tm) + y[i] * np.log(m)
        g[i] = y[i] / mu - ypt[i] * s[i] / tm
        q = s[i] / tm
        h[i] = -y[i] / mu**2 + ypt[i] * (q * q)
        lmix[i] = np.logaddexp(lp + l0[i], lq + l1[i])


@numba.njit(cache=True, nogil=True)
def _total(x, w):  # pragma: no cover - compiled
    acc = 0.0
    if w.size:
        for i in range(x.size):
            acc += w[i] * x[i]
    else:
        for i in range(x.size):
            acc += x[i]
    return acc
