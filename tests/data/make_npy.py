#!/usr/bin/env python3
"""Write the .npy files read by tests/test_io.c, with NumPy itself.

Run from this directory:  python3 make_npy.py   (NumPy >= 1.24; committed files from 1.24.2).

Values are v[k] = ((k - 2.385) / 7.0) * 1.5 for the flat C-order index k, computed in float64
(three correctly rounded IEEE operations, so the C test recomputes them bit for bit) and, for
the float32 files, rounded once to float32. specials_*.npy holds the values listed in SPECIALS.
"""
import numpy as np
from numpy.lib import format as npf


def values(n):
    return ((np.arange(n, dtype=np.float64) - 2.385) / 7.0) * 1.5


SPECIALS = [0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, 5e-324, 2.2250738585072014e-308,
            1.7976931348623157e308, 0.1, np.nan]


def save(name, arr, version=(1, 0), fortran=False):
    # (not np.ascontiguousarray: it turns a 0-D array into 1-D)
    arr = np.asfortranarray(arr) if fortran else np.array(arr, order="C")
    assert arr.flags.f_contiguous if fortran else arr.flags.c_contiguous
    with open(name, "wb") as f:
        npf.write_array(f, arr, version=version)


# readable: every supported dtype, every version, 1-D and 2-D
save("f8_le_v1_1d.npy", values(7))
save("f8_le_v1_2d.npy", values(15).reshape(5, 3))
save("f8_be_v1_2d.npy", values(15).reshape(5, 3).astype(">f8"))
save("f4_le_v1_2d.npy", values(12).reshape(4, 3).astype("<f4"))
save("f4_be_v2_1d.npy", values(6).astype(">f4"), version=(2, 0))
save("f8_le_v2_2d.npy", values(12).reshape(3, 4), version=(2, 0))
save("f8_be_v3_2d.npy", values(8).reshape(2, 4).astype(">f8"), version=(3, 0))
save("f8_le_empty_0x3.npy", np.zeros((0, 3)))
save("specials_le.npy", np.array(SPECIALS, dtype="<f8"))
save("specials_be.npy", np.array(SPECIALS, dtype=">f8"))
# refused
save("fortran_2d.npy", values(6).reshape(2, 3), fortran=True)
save("i8_1d.npy", np.arange(5, dtype="<i8"))
save("f8_3d.npy", values(8).reshape(2, 2, 2))
save("f8_0d.npy", np.array(1.5))
save("f2_1d.npy", values(4).astype("<f2"))
