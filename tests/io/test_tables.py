"""Result tables as CSV or Parquet: the bytes of pandas' CSV, exact Parquet round trips, clear refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carkinetics.errors import FileError
from carkinetics.io import tables
from carkinetics.io.tables import (TableFormatError, check_table_format, format_of, read_table, table_name,
                                   write_table)


def _mixed_frame():
    """Every column type a result table holds, with the awkward values: NaN, inf, -0.0, a subnormal,
    a huge integer, unused and ordered categories, missing text."""
    return pd.DataFrame({
        "patient": np.arange(6, dtype=np.int64),
        "arm": pd.Categorical(["b", "a", "b", "a", "a", "b"], categories=["b", "a", "unused"]),
        "grade": pd.Categorical(["low", "high", "low", None, "high", "low"], categories=["low", "high"],
                                ordered=True),
        "value": np.array([0.1, np.nan, -0.0, 5e-324, np.inf, 1.0000000000000002]),
        "count": np.array([0, -1, 2 ** 62, 3, 4, 5], dtype=np.int64),
        "ok": np.array([True, False, True, True, False, True]),
        "label": pd.Series(["x", None, "y,z", "", "w", "q"]),  # text as pandas makes it (object, or str on pandas 3)
    })


def test_csv_is_the_bytes_of_pandas(tmp_path):
    df = _mixed_frame().drop(columns=["label"])
    write_table(df, tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_bytes() == df.to_csv(index=False).encode()
    write_table(df, tmp_path / "t2.csv", "csv")  # the same with the format given
    assert (tmp_path / "t2.csv").read_bytes() == (tmp_path / "t.csv").read_bytes()


def test_parquet_round_trip_is_exact(tmp_path):
    pytest.importorskip("pyarrow")
    df = _mixed_frame()
    write_table(df, tmp_path / "t.parquet")
    back = read_table(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    # categories (unused ones too), their order and the codes survive; NaN and -0.0 bit for bit
    assert list(back["arm"].cat.categories) == ["b", "a", "unused"] and back["grade"].cat.ordered
    assert back["arm"].cat.codes.tolist() == [0, 1, 0, 1, 1, 0]
    assert back["grade"].cat.codes.tolist() == [0, 1, 0, -1, 1, 0]
    np.testing.assert_array_equal(back["value"].to_numpy().view(np.uint64), df["value"].to_numpy().view(np.uint64))
    assert back["label"].isna().tolist() == [False, True, False, False, False, False]


def test_parquet_equals_the_csv_read_back(tmp_path):
    """What the CSV reads back as (text as text, floats exact) is what the Parquet file holds."""
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"patient": np.arange(200), "arm": np.where(rng.random(200) < 0.5, "A", "B"),
                       "x": rng.lognormal(size=200), "t": np.where(rng.random(200) < 0.2, np.nan, rng.random(200))})
    df["arm"] = df["arm"].astype(str)
    write_table(df, tmp_path / "t.csv")
    write_table(df, tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_table(tmp_path / "t.parquet"), read_table(tmp_path / "t.csv"),
                                  check_exact=True)


def test_names_and_formats():
    assert table_name("patients", "parquet") == "patients.parquet" and table_name("bands") == "bands.csv"
    assert format_of("a/b.PARQUET") == "parquet" and format_of("x.csv") == "csv" and format_of("x.csv.gz") == "csv"
    with pytest.raises(TableFormatError, match=r"--format: expected one of csv, parquet, got 'xlsx'"):
        check_table_format("xlsx")


def test_parquet_without_pyarrow_is_refused_with_the_install_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "parquet_available", lambda: False)
    with pytest.raises(TableFormatError) as err:
        check_table_format("parquet")
    assert "--format parquet" in str(err.value) and "pyarrow" in str(err.value)
    assert "pip install 'carkinetics[parquet]'" in str(err.value)
    with pytest.raises(TableFormatError):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "t.parquet")
    assert not (tmp_path / "t.parquet").exists()
    (tmp_path / "r.parquet").write_bytes(b"PAR1")
    with pytest.raises(FileError, match="r.parquet.*needs pyarrow"):
        read_table(tmp_path / "r.parquet")
    assert check_table_format("csv") == "csv"  # CSV needs nothing


def test_unreadable_parquet_names_the_file(tmp_path):
    pytest.importorskip("pyarrow")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(FileError, match="bad.parquet.*not a readable results table"):
        read_table(bad)


def test_cohort_result_written_as_parquet_reads_back_equal(tmp_path):
    """CohortResult.write in either format, then load_cohort_result: the same tables."""
    pytest.importorskip("pyarrow")
    from carkinetics.cohort.pipeline import run_cohort
    from carkinetics.cohort.result import load_cohort_result
    from carkinetics.scenario.load import load_scenario
    from conftest import DATA

    result = run_cohort(load_scenario(DATA / "scenarios" / "cohort_linear.toml"), n=40, seed=3, jobs=1)
    result.write(tmp_path / "csv", plots=False)
    result.write(tmp_path / "pq", plots=False, table_format="parquet")
    names = sorted(p.name for p in (tmp_path / "pq").iterdir() if not p.name.startswith("."))
    assert "patients.parquet" in names and "bands.parquet" in names
    assert "patients.csv" not in names and "bands.csv" not in names
    a, b = load_cohort_result(tmp_path / "csv"), load_cohort_result(tmp_path / "pq")
    pd.testing.assert_frame_equal(b.patients, a.patients, check_exact=True)
    pd.testing.assert_frame_equal(b.patients, result.patients, check_exact=True)
    pd.testing.assert_frame_equal(b.bands, a.bands, check_exact=True)
    assert b.info["table_format"] == "parquet" and a.info["table_format"] == "csv"


def test_a_results_table_larger_than_an_input_file_is_read_back(tmp_path):
    """Results tables are read by pandas from disk, not under the 64 MiB limit of input files:
    carkinetics writes a patients.csv of about 1.3 GB at 10^6 patients and must read it back
    (``load_cohort_result``). A file just over MAX_INPUT_BYTES is read whole, floats exactly;
    bad bytes, a folder and a missing file each give one message naming the file."""
    from carkinetics.errors import MAX_INPUT_BYTES, FileError
    from carkinetics.io.results import read_result_csv

    rows = MAX_INPUT_BYTES // 50 + 1000
    x = np.arange(rows, dtype=float) / 3.0
    path = tmp_path / "patients.csv"
    pd.DataFrame({"arm": "a" * 40, "x": x}).to_csv(path, index=False, float_format="%.17g")
    assert path.stat().st_size > MAX_INPUT_BYTES
    table = read_result_csv(path)
    assert len(table) == rows and np.array_equal(table["x"].to_numpy(), x)
    path.unlink()
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"a,b\n1,\xff\n")
    with pytest.raises(FileError, match="bad.csv.*UTF-8"):
        read_result_csv(bad)
    with pytest.raises(FileError, match="folder"):
        read_result_csv(tmp_path)
    with pytest.raises(FileError, match="not found"):
        read_result_csv(tmp_path / "none.csv")
