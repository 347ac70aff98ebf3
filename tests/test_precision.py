"""Factor storage precision (``train --dtype``): the conversions against a slow
reference, the model file's arrays and types, serving from stored factors, refusals."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest

from recli.kernels.precision import to_float32, to_storage
from recli.models import get_model_class
from recli.models.base import build_config
from tests import contracts as C


def bf16_reference(x: float) -> int:
    """The bfloat16 bit pattern of float32 ``x``: the nearest of the two bfloat16 values
    around it (exact rational arithmetic), ties to the even pattern."""
    bits = struct.unpack("<I", struct.pack("<f", x))[0]
    if math.isnan(x):
        return (bits >> 16) | 0x40
    lo = bits >> 16
    hi = lo + 1

    def value(pattern: int) -> float:
        return struct.unpack("<f", struct.pack("<I", (pattern & 0xFFFF) << 16))[0] if (pattern & 0x7F80) != 0x7F80 \
            else math.copysign(math.inf, x)

    if bits & 0xFFFF == 0:
        return lo
    # value(hi) may be inf (past the largest finite bfloat16): rounding from there is to inf
    vlo = value(lo)
    vhi = value(hi) if (hi & 0x7F80) != 0x7F80 else math.copysign(2.0 ** 128, x)
    dlo, dhi = abs(x - vlo), abs(vhi - x)
    if dlo < dhi or (dlo == dhi and lo % 2 == 0):
        return lo
    return hi


def test_bfloat16_rounds_to_nearest_even_like_the_reference():
    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.standard_normal(2000).astype(np.float32) * np.float32(0.05),
        # exact ties (low 16 bits 0x8000) with even and odd kept parts, and near-ties
        (np.arange(200, dtype=np.uint32) << 16 | 0x8000).view(np.float32) + 0,
        ((np.arange(200, dtype=np.uint32) + 0x3F80) << 16 | 0x7FFF).view(np.float32),
        np.array([0.0, -0.0, 1e-40, -1e-40, 3.39e38, 3.4e38, -3.4e38, np.inf, -np.inf], np.float32),
    ]).astype(np.float32)
    got = to_storage(values, "bfloat16")
    assert got.dtype == np.uint16
    assert got.tolist() == [bf16_reference(float(v)) for v in values]
    back = to_float32(got, "bfloat16")
    assert back.dtype == np.float32
    assert np.array_equal(to_storage(back, "bfloat16"), got)  # decoding is exact
    nan = to_storage(np.array([np.nan], np.float32), "bfloat16")
    assert np.isnan(to_float32(nan, "bfloat16")).all()


def test_float16_storage_is_ieee_half():
    x = np.random.default_rng(1).standard_normal(500).astype(np.float32)
    assert np.array_equal(to_float32(to_storage(x, "float16"), "float16"), x.astype(np.float16).astype(np.float32))
    assert to_storage(x, "float32") is not None and np.array_equal(to_storage(x, "float32"), x)


@pytest.mark.parametrize("name", ["als", "bpr", "mf", "warp"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_stored_factors_round_trip_and_score_as_upcast(name, dtype):
    cls = get_model_class(name)
    matrix, _, _ = C.block_matrix()
    config = build_config(cls.Config, {**cls.test_params, "dtype": dtype}, name)
    model = cls(config).fit(matrix)
    arrays = model.to_arrays()
    storage = np.uint16 if dtype == "bfloat16" else np.float16
    assert arrays["user_factors"].dtype == storage and arrays["item_factors"].dtype == storage
    expected = {key: to_float32(arrays[key], dtype) for key in ("user_factors", "item_factors")}
    loaded = cls.from_arrays(config, arrays)
    users = np.arange(matrix.shape[0])
    # the loaded model scores exactly like a float32 model holding the upcast factors
    plain = build_config(cls.Config, {**cls.test_params, "dtype": "float32"}, name)
    reference = cls.from_arrays(plain, {**arrays, **expected})
    assert np.array_equal(loaded.score(users, None), reference.score(users, None))
    assert loaded.user_factors.dtype == storage  # kept stored: rows are upcast per batch
    assert np.abs(expected["user_factors"] - model.user_factors).max() <= 0.01 * np.abs(model.user_factors).max()
    with pytest.raises(Exception, match="stored as"):
        cls.from_arrays(plain, arrays)


def test_train_cli_records_dtype_and_refuses_models_without_factors(cli, tmp_path):
    matrix, _, _ = C.block_matrix()
    coo = matrix.tocoo()
    path = tmp_path / "train.csv"
    path.write_text("user,item\n" + "".join(f"u{u},i{i}\n" for u, i in zip(coo.row, coo.col)))
    res = cli(["train", path, "--model", "als", "--dtype", "bfloat16", "-o", tmp_path / "m",
               "--factors", "4", "--iterations", "2"])
    assert res.exit_code == 0, res.stderr
    meta = json.loads((tmp_path / "m" / "meta.json").read_text())
    assert meta["dtype"] == "bfloat16" and meta["config"]["dtype"] == "bfloat16"
    assert np.load(tmp_path / "m" / "model.user_factors.npy").dtype == np.uint16
    res = cli(["recommend", tmp_path / "m", "--all-users", "-k", "3"])
    assert res.exit_code == 0, res.stderr
    res = cli(["train", path, "--model", "itemknn", "--dtype", "float16", "-o", tmp_path / "k"])
    assert res.exit_code == 2
    assert "stores no factor matrices" in res.stderr and "hint: drop --dtype" in res.stderr
    res = cli(["train", path, "--model", "als", "--dtype", "float64", "-o", tmp_path / "k"])
    assert res.exit_code == 2 and "not a storage type" in res.stderr
