"""moefuzz.f32_to_bf16 and bf16_to_f32 (the extension's loops over numpy arrays by address)
against the rounding written in numpy: every float32 bit pattern class (zeros, subnormals,
halfway cases, the largest finite values, infinities, NaNs of both signs) and random ones, any
shape and stride. Run by ctest python.package."""
import numpy as np

import moefuzz

EDGES = [0, 0x80000000, 1, 0x8000, 0x18000, 0x7FFF, 0x17FFF, 0x3F808000, 0x3F818000,
         0x7F7F7FFF, 0x7F7F8000, 0x7F7FFFFF, 0xFF7FFFFF, 0x7F800000, 0xFF800000, 0x7F800001,
         0xFF800001, 0x7FC00000, 0x7FFFFFFF, 0xFFFFFFFF, 0x807FFFFF]


def rne_numpy(x):
    """float32 -> bf16 bits, to nearest even in uint64 arithmetic; a NaN keeps its top bits,
    quieted"""
    x = np.asarray(x, np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def test_rounding_and_widening_match_numpy():
    rng = np.random.default_rng(20261207)
    u = np.concatenate([np.array(EDGES, np.uint32),
                        rng.integers(0, 2**32, 1 << 20, dtype=np.uint64).astype(np.uint32)])
    x = u.view(np.float32)
    b = moefuzz.f32_to_bf16(x)
    assert b.dtype == np.uint16 and (b == rne_numpy(x)).all()
    w = moefuzz.bf16_to_f32(b)
    assert w.dtype == np.float32 and (w.view(np.uint32) == b.astype(np.uint32) << 16).all()
    assert (b[np.isnan(x)] & 0x7FC0 == 0x7FC0).all()  # quiet NaNs


def test_any_shape_stride_and_dtype():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((6, 10, 8)).astype(np.float32)[:, ::3, 1::2]  # not contiguous
    assert moefuzz.f32_to_bf16(a).shape == (6, 4, 4)
    assert (moefuzz.f32_to_bf16(a) == rne_numpy(a)).all()
    d = rng.standard_normal((5, 7))  # float64: narrowed to float32 first, as before
    assert (moefuzz.f32_to_bf16(d) == rne_numpy(d.astype(np.float32))).all()
    bits = moefuzz.f32_to_bf16(a)
    assert (moefuzz.bf16_to_f32(bits.view(np.int16)) == moefuzz.bf16_to_f32(bits)).all()
    assert moefuzz.bf16_to_f32(bits[:, ::2]).shape == (6, 2, 4)
    assert moefuzz.f32_to_bf16(np.zeros((0, 3), np.float32)).shape == (0, 3)
