"""Every branch of filtering.validation: types refused with ArgumentTypeError, values with ValueError."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest

from filtering import validation as v

INF, NAN = math.inf, math.nan


def test_argument_type_error_is_caught_as_type_and_value_error():
    assert issubclass(v.ArgumentTypeError, TypeError)
    assert issubclass(v.ArgumentTypeError, ValueError)


# --------------------------------------------------------------------------------------------------------------
# scalars


@pytest.mark.parametrize("value", [3, 2.5, np.float32(0.5), np.int64(-4), np.array(1.5), Fraction(1, 4), -INF, NAN])
def test_check_real_accepts_real_numbers(value):
    out = v.check_real("x", value)
    assert type(out) is float
    assert out == float(value) or (math.isnan(out) and math.isnan(float(value)))


@pytest.mark.parametrize(
    "value",
    [True, np.bool_(False), 1j, np.complex128(1.0), "1.0", b"1", None, [1.0], np.array([1.0, 2.0]), np.array(1 + 0j)],
)
def test_check_real_refuses_non_reals_with_type_error_naming_argument(value):
    with pytest.raises(v.ArgumentTypeError, match=r"^lr must be a real number"):
        v.check_real("lr", value)


def test_check_real_falls_back_to_float_for_objects_numpy_cannot_read():
    class Device:  # like a CUDA tensor: np.asarray fails, float() works
        def __array__(self, dtype=None, copy=None):
            raise TypeError("not on the host")

        def __float__(self):
            return 0.25

    class Broken(Device):
        def __float__(self):
            raise RuntimeError("no")

    assert v.check_real("lr", Device()) == 0.25
    with pytest.raises(v.ArgumentTypeError, match="lr"):
        v.check_real("lr", Broken())


@pytest.mark.parametrize(
    ("kwargs", "good", "bad", "text"),
    [
        ({}, [-1e300, 0.0, 1e300], [INF, -INF, NAN], "(-inf, inf)"),
        ({"allow_inf": True}, [INF, -INF, 0.0], [NAN], "[-inf, inf]"),
        ({"lower": 0.0}, [1e-300, 5.0], [0.0, -1.0, INF, NAN], "(0, inf)"),
        ({"lower": 0.0, "allow_equal": True}, [0.0, 2.0], [-1e-300, INF], "[0, inf)"),
        ({"lower": 0.0, "allow_inf": True}, [INF, 1.0], [0.0, -INF, NAN], "(0, inf]"),
        ({"lower": 0.0, "upper": 1.0}, [0.5, 1e-9], [0.0, 1.0, NAN], "(0, 1)"),
        ({"upper": 2.0}, [-5.0, 1.999], [2.0, INF, NAN], "(-inf, 2)"),
    ],
)
def test_check_scalar_ranges(kwargs, good, bad, text):
    for x in good:
        assert v.check_scalar("x", x, **kwargs) == x
    for x in bad:
        with pytest.raises(ValueError, match=rf"^x must be in {re.escape(text)}, got") as info:
            v.check_scalar("x", x, **kwargs)
        assert not isinstance(info.value, TypeError)


def test_named_scalar_checks():
    assert v.check_positive("lr", 1e-3) == 1e-3
    assert v.check_positive("lr_sgd", INF, allow_inf=True) == INF
    assert v.check_positive("eps", 0.0, allow_zero=True) == 0.0
    for bad, kwargs in [(0.0, {}), (INF, {}), (-1e-9, {"allow_zero": True}), (NAN, {"allow_inf": True})]:
        with pytest.raises(ValueError, match="lr"):
            v.check_positive("lr", bad, **kwargs)
    assert v.check_unit_interval("beta", 0.0) == 0.0
    for bad in (1.0, -0.1, NAN):
        with pytest.raises(ValueError, match=r"beta must be in \[0, 1\)"):
            v.check_unit_interval("beta", bad)
    assert v.check_open_unit_interval("forget", 0.5) == 0.5
    for bad in (0.0, 1.0, 2.0, NAN):
        with pytest.raises(ValueError, match=r"forget must be in \(0, 1\)"):
            v.check_open_unit_interval("forget", bad)
    with pytest.raises(v.ArgumentTypeError, match="forget"):
        v.check_open_unit_interval("forget", 0.5j)


def test_check_int():
    assert v.check_int("steps", 5, lower=1) == 5
    assert type(v.check_int("steps", np.int32(3))) is int
    assert v.check_int("i", -7) == -7
    assert v.check_int("i", 2, lower=0, upper=3) == 2
    for bad in (True, 2.0, "3", None, np.float64(1.0)):
        with pytest.raises(v.ArgumentTypeError, match="steps must be an integer"):
            v.check_int("steps", bad, lower=1)
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, inf\), got 0"):
        v.check_int("steps", 0, lower=1)
    with pytest.raises(ValueError, match=r"i must be an integer in \(-inf, 3\), got 3"):
        v.check_int("i", 3, upper=3)
    with pytest.raises(ValueError, match=r"i must be an integer in \[0, 3\)"):
        v.check_int("i", -1, lower=0, upper=3)


def test_check_flag():
    assert v.check_flag("fused", True) is True
    assert v.check_flag("fused", np.bool_(False)) is False
    assert v.check_flag("fused", None, allow_none=True) is None
    with pytest.raises(v.ArgumentTypeError, match="fused must be True or False"):
        v.check_flag("fused", None)
    with pytest.raises(v.ArgumentTypeError, match="fused must be None, True or False"):
        v.check_flag("fused", 1, allow_none=True)


def test_check_choice_and_predict():
    assert v.check_predict("paper") == "paper"
    assert v.check_predict("exponential") == "exponential"
    assert v.check_choice("kind", "b", ("a", "b")) == "b"
    with pytest.raises(ValueError, match=r"predict must be one of \('paper', 'exponential'\), got 'euler'") as info:
        v.check_predict("euler")
    assert not isinstance(info.value, TypeError)
    with pytest.raises(v.ArgumentTypeError, match="predict"):
        v.check_predict(1)


def test_check_betas():
    assert v.check_betas((0.9, 0.999)) == (0.9, 0.999)
    assert v.check_betas([0, 0.5]) == (0.0, 0.5)
    assert v.check_betas((0.1, 0.2, 0.3), n=3) == (0.1, 0.2, 0.3)
    for bad in (0.9, "ab", b"ab", None, {0.9, 0.99}):
        with pytest.raises(v.ArgumentTypeError, match="betas must be a sequence"):
            v.check_betas(bad)
    with pytest.raises(ValueError, match="betas must have 2 entries, got 1"):
        v.check_betas((0.9,))
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        v.check_betas((0.9, 1.0))
    with pytest.raises(v.ArgumentTypeError, match=r"betas\[0\]"):
        v.check_betas((True, 0.9))


def test_check_batch_size():
    assert v.check_batch_size(1) == 1.0
    assert v.check_batch_size(12.5) == 12.5  # the global batch under DDP need not be an integer
    for bad in (0.999, 0, -3, INF, NAN):
        with pytest.raises(ValueError, match=r"batch_size must be in \[1, inf\)"):
            v.check_batch_size(bad)
    with pytest.raises(v.ArgumentTypeError, match="batch_size"):
        v.check_batch_size("32")


def test_check_rng():
    gen = np.random.default_rng(0)
    assert v.check_rng(gen) is gen
    assert v.check_rng(5).random() == np.random.default_rng(5).random()
    assert v.check_rng(np.random.SeedSequence(5)).random() == np.random.default_rng(5).random()
    with pytest.raises(ValueError, match="rng must be a seed"):
        v.check_rng(None)
    with pytest.raises(ValueError, match="rng must be an integer in"):
        v.check_rng(-1)
    with pytest.raises(v.ArgumentTypeError, match="rng"):
        v.check_rng(1.5)


# --------------------------------------------------------------------------------------------------------------
# arrays


def test_check_array_returns_float64_without_copying_float64_input():
    x = np.array([1.0, 2.0])
    assert v.check_array("x", x) is x
    out = v.check_array("x", [1, 2, 3], lower=0.0)
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.0, 3.0]
    assert v.check_array("x", np.arange(3, dtype=np.uint8), lower=0.0, allow_equal=True).dtype == np.float64
    assert v.check_array("x", np.float32(2.5)).shape == ()
    obj = v.check_array("x", np.array([Fraction(1, 2), 1], dtype=object))
    assert obj.dtype == np.float64 and obj.tolist() == [0.5, 1.0]


@pytest.mark.parametrize(
    "x",
    [
        np.array([True, False]),
        np.array([1 + 1j, 2]),
        [1.0, 2j],
        np.array(["1", "2"]),
        np.array([1.0, None], dtype=object),
        np.array([1.0, "a"], dtype=object),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
    ],
)
def test_check_array_refuses_non_real_dtypes(x):
    with pytest.raises(v.ArgumentTypeError, match=r"^g must hold real numbers"):
        v.check_array("g", x)


def test_check_array_ranges_name_the_argument_and_count_bad_entries():
    with pytest.raises(ValueError, match=r"^g must be in \(-inf, inf\) everywhere; 2 of 4 entries are not, e.g. inf"):
        v.check_array("g", [0.0, np.inf, 1.0, -np.inf])
    with pytest.raises(ValueError, match=r"^h must be in \[0, inf\) everywhere; 1 of 3 entries are not, e.g. nan"):
        v.check_array("h", [0.0, np.nan, 1.0], lower=0.0, allow_equal=True)
    with pytest.raises(ValueError, match=r"sigma2 must be in \(0, inf\]"):
        v.check_array("sigma2", [[1.0, 0.0]], lower=0.0, allow_inf=True)
    assert v.check_array("sigma2", [1.0, np.inf], lower=0.0, allow_inf=True)[1] == np.inf
    with pytest.raises(ValueError, match=r"forget must be in \(0, 1\)"):
        v.check_array("forget", [0.5, 1.0], lower=0.0, upper=1.0)
    assert v.check_array("forget", [0.5, 0.999], lower=0.0, upper=1.0).shape == (2,)


def test_check_array_shape():
    assert v.check_array("m", np.zeros((2, 3)), shape=(2, 3)).shape == (2, 3)
    with pytest.raises(ValueError, match=r"m must have shape \(3,\), got \(2,\)"):
        v.check_array("m", [1.0, 2.0], shape=(3,))


def test_check_ou_stable_scalar_and_elementwise():
    v.check_ou_stable(0.1, 0.01)  # η² = 0.01 < 2σ² = 0.02
    v.check_ou_stable(10.0, INF)  # random walk
    v.check_ou_stable([0.1, 10.0], [0.01, INF])
    with pytest.raises(ValueError, match=r"lr and lr_sgd / batch_size must satisfy lr\*\*2 < 2 \* sigma2"):
        v.check_ou_stable(0.2, 0.02)  # η² = 2σ² exactly: decay factor 0
    with pytest.raises(ValueError, match=r"eta and sigma2 .* got eta=0\.3, sigma2=0\.01"):
        v.check_ou_stable([0.1, 0.3], 0.01, names=("eta", "sigma2"))


def test_check_array_allow_nan():
    x = np.array([np.nan, np.inf, -1.0])
    assert v.check_array("g", x, allow_inf=True, allow_nan=True) is x  # dtype-only check
    with pytest.raises(v.ArgumentTypeError, match="g"):
        v.check_array("g", x.astype(complex), allow_inf=True, allow_nan=True)
    out = v.check_array("h", [np.nan, 0.0, 2.0], lower=0.0, allow_equal=True, allow_nan=True)
    assert np.isnan(out[0]) and out[2] == 2.0
    with pytest.raises(ValueError, match=r"h must be in \[0, inf\)"):
        v.check_array("h", [np.nan, -1.0], lower=0.0, allow_equal=True, allow_nan=True)
    with pytest.raises(ValueError, match=r"h must be in \[0, inf\)"):
        v.check_array("h", [np.nan, np.inf], lower=0.0, allow_equal=True, allow_nan=True)


def test_boundaries_are_where_the_messages_put_them():
    """Each bound is tested at the bound itself: a closed end admits it, an open end refuses it."""
    assert v.check_int("steps", 1, lower=1) == 1  # [1, ...
    assert v.check_rng(0).random() == np.random.default_rng(0).random()  # seed 0 is a seed
    v.check_ou_stable(0.5, 0.125 + 1e-12)
    with pytest.raises(ValueError, match="eta"):
        v.check_ou_stable(0.5, 0.125, names=("eta", "sigma2"))  # η² = 2σ² exactly (both exact in binary)


def test_bounds_hold_when_nan_and_inf_are_admitted():
    """allow_nan with allow_inf skips the pass over the data only when there is no bound to check."""
    with pytest.raises(ValueError, match=r"h must be in \[0, inf\]"):
        v.check_array("h", [np.nan, -1.0], lower=0.0, allow_equal=True, allow_inf=True, allow_nan=True)
    with pytest.raises(ValueError, match=r"x must be in \[-inf, 1\)"):
        v.check_array("x", [np.nan, 2.0], upper=1.0, allow_inf=True, allow_nan=True)
