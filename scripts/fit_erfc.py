#!/usr/bin/env python3
"""Derives the erfc coefficients of src/vmath.h: a least-squares fit of
log(erfc(z)) on [1, 4] at Chebyshev nodes, degree 10, in t = z - 2.5.
Prints the coefficients (highest degree first) and the fit's worst error."""
import math

import numpy as np

A, B, DEG, N = 1.0, 4.0, 10, 4000
k = np.arange(N)
z = (A + B) / 2 + (B - A) / 2 * np.cos((2 * k + 1) * np.pi / (2 * N))
c = np.polynomial.polynomial.polyfit(z - 2.5, [math.log(math.erfc(t)) for t in z], DEG)
zz = np.linspace(A, B, 20001)
err = np.max(np.abs(np.polynomial.polynomial.polyval(zz - 2.5, c) - [math.log(math.erfc(t)) for t in zz]))
for x in c[::-1]:
    print("%.9e" % x)
print("worst |error| of log erfc: %.2e" % err)
