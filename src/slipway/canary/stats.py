"""Typed wrappers over the few scipy functions the checks use; scipy is imported on first call, not at import."""

from __future__ import annotations

import numpy as np


def gammaln(x: np.ndarray) -> np.ndarray:
    """Pure; log|Gamma(x)| elementwise."""
    from scipy.special import gammaln as _gammaln  # type: ignore[import-untyped]

    return np.asarray(_gammaln(x), dtype=float)


def binom_cdf(k: float, n: float, p: float) -> float:
    """Pure; P(X <= k) for X ~ Binomial(n, p)."""
    from scipy.special import bdtr

    return float(bdtr(k, n, p))


def binom_sf(k: float, n: float, p: float) -> float:
    """Pure; P(X > k) for X ~ Binomial(n, p)."""
    from scipy.special import bdtrc

    return float(bdtrc(k, n, p))


def exceedance_sf(above: int, *, n: int, reference_n: int, rank: int) -> float:
    """Pure; P(X >= above): X = how many of n draws land above the `rank`-th largest of `reference_n` reference
    values when both come from one continuous distribution (the exact exceedance test; ties only lower X)."""
    if above <= 0:
        return 1.0
    x = np.arange(above, n + 1, dtype=float)

    def lcomb(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(gammaln(a + 1) - gammaln(b + 1) - gammaln(a - b + 1))

    terms = lcomb(x + rank - 1, x) + lcomb(reference_n - rank + n - x, n - x)
    total = lcomb(np.asarray(float(reference_n + n)), np.asarray(float(n)))
    return float(min(1.0, np.exp(terms - total).sum()))


def kolmogorov_sf(x: float) -> float:
    """Pure; the limiting Kolmogorov distribution's survival function at x."""
    from scipy.special import kolmogorov

    return float(kolmogorov(x))


def ks_exact(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Pure; two-sided two-sample KS (D, exact p-value)."""
    from scipy.stats import ks_2samp  # type: ignore[import-untyped]

    res = ks_2samp(a, b, method="exact")
    return float(res.statistic), float(res.pvalue)


def wilcoxon_p(diff: np.ndarray) -> float:
    """Pure; two-sided Wilcoxon signed-rank p-value of nonzero paired differences."""
    from scipy.stats import wilcoxon

    return float(wilcoxon(diff).pvalue)


def chi2_sf(x: float, dof: int) -> float:
    """Pure; P(X > x) for X ~ chi-square with `dof` degrees of freedom."""
    from scipy.special import chdtrc

    return float(chdtrc(dof, x))
