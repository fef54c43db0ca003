"""Fits the polynomial of kernels/activations.hpp's SIMD GELU (dev tool; not part of the tests).

The kernel computes erfc(a) = t * exp(P(t) - a^2), t = 1 / (1 + a / 2), for a = |x| / sqrt(2) in
[0, 10.5] (a is clamped there; the exponential underflows to 0 beyond). P is the degree-9
least-squares fit, on Chebyshev nodes in t, of ln(erfc(a) / t) + a^2 (float64), written as float32
monomial coefficients, highest degree last. Prints them and the worst relative error of erfc
evaluated with those float32 coefficients (exp in float64); tests/kernels/test_activations.cpp holds
the kernel itself to the exact GELU.

  /usr/bin/python3 tools/export/fit_gelu.py
"""
import math
import numpy as np

A_MAX, P_HALF, DEGREE, NODES = 10.5, 0.5, 9, 2000


def fit():
    t_min = 1.0 / (1.0 + P_HALF * A_MAX)
    k = np.arange(NODES)
    t = (t_min + 1) / 2 + (1 - t_min) / 2 * np.cos(np.pi * (k + 0.5) / NODES)
    a = (1.0 / t - 1.0) / P_HALF
    f = np.array([math.log(math.erfc(ai) / ti) + ai * ai for ai, ti in zip(a, t)])
    cheb = np.polynomial.chebyshev.chebfit(2 * (t - t_min) / (1 - t_min) - 1, f, DEGREE)
    poly = np.polynomial.chebyshev.Chebyshev(cheb, domain=[t_min, 1]).convert(kind=np.polynomial.Polynomial)
    return poly.coef.astype(np.float32)


def worst_relative_error(coef):
    a = np.linspace(0.0, 9.0, 200001)
    t = 1.0 / (1.0 + P_HALF * a)
    p = np.zeros_like(t)
    for c in coef[::-1]:
        p = p * t + float(c)
    approx = t * np.exp(p - a * a)
    exact = np.array([math.erfc(x) for x in a])
    return float(np.max(np.abs(approx / exact - 1.0)))


if __name__ == '__main__':
    coef = fit()
    for i, c in enumerate(coef):
        print('c%d = %.17gf' % (i, float(c)))
    print('worst relative error of erfc on [0, 9]: %.2e' % worst_relative_error(coef))
