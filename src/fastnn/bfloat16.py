"""bfloat16 rounding in pure Array-API code: the oracle of `fastnn.use("numpy",
precision="bfloat16")`'s kernels, and the pure path where no bf16 kernel runs.

bfloat16 keeps float32's 8 exponent bits and 8 of its 24 significant bits. A product of two
bfloat16 numbers has at most 16 significant bits, so float32 holds it exactly: rounding both
operands to bfloat16 and multiplying them in float32 gives what a bf16 GEMM with float32
accumulation gives, up to the order of the sums.
"""

from __future__ import annotations

from typing import Any

SIGNIFICANT_BITS = 8  # bfloat16's, the implicit leading one included
SMALLEST_STEP = -133  # log2 of the spacing of bfloat16's subnormals: 2**(-126 - 7)
FLOAT32_MAX = 3.4028234663852886e38


def round_to_bfloat16(x: Any, xp: Any) -> Any:
    """`x` (float32) rounded to the nearest bfloat16 value, ties to even, as float32 arrays
    carry it; zeros, infinities and NaN stay as they are, and values past bfloat16's largest
    become infinite, as a bit-level conversion does. Exact: the work is done in float64, where
    every step here is exact."""
    wide = xp.astype(x, xp.float64)
    finite = xp.isfinite(wide) & (wide != 0)
    magnitude = xp.where(finite, xp.abs(wide), xp.ones_like(wide))  # no log2(0) or inf / inf
    exponent = xp.floor(xp.log2(magnitude))
    exponent = xp.where(xp.pow(2.0, exponent) > magnitude, exponent - 1, exponent)  # log2 rounded up near 2**k
    step = xp.pow(2.0, xp.maximum(exponent - (SIGNIFICANT_BITS - 1), SMALLEST_STEP))
    rounded = xp.round(wide / step) * step  # round() is half to even, as the hardware rounds
    rounded = xp.where(xp.abs(rounded) > FLOAT32_MAX, xp.copysign(xp.full_like(wide, float("inf")), wide), rounded)
    return xp.astype(xp.where(finite, rounded, wide), x.dtype)
