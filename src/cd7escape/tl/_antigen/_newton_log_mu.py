"""The profile likelihood's inner maximisation of the antigen model, compiled (numba, cached on disk).

For a fixed antigen-negative fraction ``pi``, the expressing mean ``mu`` that maximises the mixture
log-likelihood of one group (the profile of :mod:`cd7escape.tl._mixture_search`): Newton steps on
``u = log mu`` with step halving, kept at or above the floor ``ufloor``. Sums run in cell order, so
results agree with a NumPy evaluation of the same likelihood to rounding, not bit for bit"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def newton_log_mu(
    y, s, ls, l0, c1, ypt, w, theta, lp, lq, u, ufloor, tol, maxit
):  # pragma: no cover
    """(u, log-likelihood) at the maximum over ``u = log mu``, from the start ``u``.

    Parameters
    ----------
    y, s, ls
        Antigen counts, size factors and their logs, of the (pooled) cells.
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
    g, h, lmix, r = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    gn, hn, lmixn, rn = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    tmp, tmp2 = np.empty(n), np.empty(n)
    _terms(u, y, s, ls, l0, c1, ypt, theta, lp, lq, g, h, lmix, r)
    ll = _total(lmix, w)
    for _ in range(maxit):
        mu = np.exp(u)
        for i in range(n):
            tmp[i] = r[i] * g[i]
            tmp2[i] = r[i] * (h[i] + (1 - r[i]) * g[i] * g[i])
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
            _terms(un, y, s, ls, l0, c1, ypt, theta, lp, lq, gn, hn, lmixn, rn)
            lln = _total(lmixn, w)
            if lln >= ll - 1e-12:
                accepted = True
                break
            step /= 2
        if not accepted:
            break
        done = abs(un - u) < tol or abs(lln - ll) < 1e-10 * (1 + abs(ll))
        u, ll = un, lln
        g, gn = gn, g
        h, hn = hn, h
        lmix, lmixn = lmixn, lmix
        r, rn = rn, r
        if done:
            break
    return u, ll


@numba.njit(cache=True, nogil=True)
def _terms(u, y, s, ls, l0, c1, ypt, theta, lp, lq, g, h, lmix, r):  # pragma: no cover - compiled
    """Per cell at ``mu = e^u``: the expressing log pmf's first and second derivative in ``mu``, the
    mixture's log-likelihood and the posterior ``r`` of the expressing component.

    Three transcendental calls per cell: ``log(y + s mu)`` of the expressing pmf, and one ``exp`` and
    one ``log1p`` shared by the mixture and ``r`` (``y log(s mu)`` is ``y (log s + u)``).
    """
    mu = np.exp(u)
    for i in range(y.size):
        tm = theta + s[i] * mu
        q = s[i] / tm
        l1 = c1[i] - ypt[i] * np.log(tm)
        if y[i] != 0:
            l1 += y[i] * (ls[i] + u)
        g[i] = y[i] / mu - ypt[i] * q
        h[i] = -y[i] / (mu * mu) + ypt[i] * (q * q)
        a, b = lp + l0[i], lq + l1
        if a > b:
            e = np.exp(b - a)
            lmix[i] = a + np.log1p(e)
            r[i] = e / (1.0 + e)
        else:  # also a = -inf (pi = 0): every cell expressing, r = 1
            e = np.exp(a - b)
            lmix[i] = b + np.log1p(e)
            r[i] = 1.0 / (1.0 + e)


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
