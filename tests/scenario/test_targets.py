"""The shipped reference target table and its loader (issue 5, part 5).

The table must travel with the package (``validate`` on a fresh clone), be read
faithfully, and a malformed table must give one clear message per problem, all at once.
"""

import csv
import math

import numpy as np
import pandas as pd
import pytest

from carkinetics.errors import CarKineticsError, DataError
from carkinetics.scenario.reference import (TARGET_COLUMNS, default_targets_path, load_targets)
from conftest import ROOT

SHIPPED = default_targets_path()
SHARED = ROOT.parent / "shared" / "reference" / "targets.csv"


@pytest.fixture(scope="module")
def table():
    return load_targets()


def _raw_rows(path=SHIPPED):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write(tmp_path, rows, header=TARGET_COLUMNS, name="targets.csv"):
    path = tmp_path / name
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for r in rows:
            w.writerow([r.get(c, "") for c in header])
    return path


def test_table_ships_inside_the_package():
    assert SHIPPED.parent.name == "reference"
    assert SHIPPED.parent.parent.name == "carkinetics"
    assert SHIPPED.is_file()
    assert (SHIPPED.parent / "README.md").is_file()


def test_loaded_table_equals_an_independent_csv_parse(table):
    rows = _raw_rows()
    assert list(table.columns) == list(TARGET_COLUMNS)
    assert len(table) == len(rows) > 100
    assert table["target_id"].is_unique
    for c in ("value", "lower", "upper", "k", "n", "timepoint_days", "dose_per_kg"):
        assert table[c].dtype == np.float64
        expected = [float(r[c]) if r[c] != "" else math.nan for r in rows]
        np.testing.assert_array_equal(table[c].to_numpy(), np.array(expected))
    for c in ("target_id", "trial", "arm", "statistic", "evidence", "note", "seed_file"):
        assert table[c].tolist() == [r[c] for r in rows]


def test_published_numbers_are_read_as_reported(table):
    t = table.set_index("target_id")
    # Pan 2021 JCO abstract: CR in 18 of 20 infused (90%)
    assert t.loc["s2_cr", ["value", "k", "n"]].tolist() == [0.9, 18.0, 20.0]
    # Stein 2019 Table 1: Tmax 9.3 d, Cmax 24,000 copies/ug
    assert t.loc["stein_tmax", "value"] == 9.3 and t.loc["stein_tmax", "unit"] == "days"
    assert t.loc["stein_cmax", "value"] == 24000.0
    # NCT05290155: median peak 62,389.69 (range 3,175.94-326,482.67) copies/ug
    assert t.loc["nct05290155_car_peak", ["value", "lower", "upper"]].tolist() == [62389.69, 3175.94, 326482.67]


def test_wilson_intervals_recomputed_from_k_and_n(table):
    w = table[table["ci_method"] == "wilson"]
    assert len(w) > 30
    z = 1.959963984540054
    k, n = w["k"].to_numpy(), w["n"].to_numpy()
    p = k / n
    centre = (p + z ** 2 / (2 * n)) / (1 + z ** 2 / n)
    half = z * np.sqrt(p * (1 - p) / n + z ** 2 / (4 * n ** 2)) / (1 + z ** 2 / n)
    # the table rounds to 4 decimals
    np.testing.assert_allclose(w["lower"], centre - half, atol=5.1e-5)
    np.testing.assert_allclose(w["upper"], centre + half, atol=5.1e-5)
    # reported percentages are rounded to at most 2 significant decimals
    np.testing.assert_allclose(w["value"], p, atol=0.005)


def test_every_row_has_a_source_and_an_evidence_code(table):
    assert (table["trial"] != "").all()
    assert (table["evidence"] != "").all()
    seeds = table[table["arm"].str.match(r"^S\d")]
    assert (seeds["seed_file"] != "").all()


@pytest.mark.skipif(not SHARED.is_file(), reason="../shared/reference is not present (fresh clone)")
def test_shipped_copy_is_identical_to_the_shared_reference():
    assert SHIPPED.read_bytes() == SHARED.read_bytes()


# ---------------------------------------------------------------------------- bad files

def _good_rows(n=3):
    return [dict(r) for r in _raw_rows()[:n]]


def test_a_valid_subset_loads(tmp_path):
    path = _write(tmp_path, _good_rows(5))
    t = load_targets(path)
    assert len(t) == 5 and list(t.columns) == list(TARGET_COLUMNS)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"nothere\.csv: file not found"):
        load_targets(tmp_path / "nothere.csv")


def test_missing_and_unknown_columns_are_named(tmp_path):
    header = [c if c != "statistic" else "statistik" for c in TARGET_COLUMNS if c != "evidence"]
    rows = _good_rows()
    for r in rows:
        r["statistik"] = r["statistic"]
    path = _write(tmp_path, rows, header=header)
    with pytest.raises(DataError) as info:
        load_targets(path)
    msg = str(info.value)
    assert "column 'statistik': is not a column of the target table (did you mean 'statistic'?)" in msg
    assert "column 'statistic': missing" in msg
    assert "column 'evidence': missing" in msg
    assert len(info.value.problems) == 3


def test_every_row_problem_is_reported_at_once(tmp_path):
    rows = _good_rows(12)
    rows[0]["value"] = "abc"                      # not a number
    rows[1]["target_id"] = rows[2]["target_id"]   # duplicate id
    rows[3]["statistic"] = "proportoin"           # misspelled statistic
    rows[4]["lower"], rows[4]["upper"], rows[4]["value"] = "0.2", "0.5", "0.9"   # value outside interval
    rows[5]["k"], rows[5]["n"] = "21", "20"       # more events than patients
    rows[6]["evidence"] = "V-paper"               # unknown evidence code
    rows[7]["ci_method"] = "none"                 # has an interval but says none
    rows[8]["value"] = ""                         # empty value
    rows[9]["value"], rows[9]["lower"], rows[9]["upper"] = "1.2", "1.0", "1.4"   # proportion > 1
    rows[10]["k"] = "2.5"                         # fractional count
    rows[11]["upper"] = ""                        # half an interval
    path = _write(tmp_path, rows)
    with pytest.raises(DataError) as info:
        load_targets(path)
    err = info.value
    msg = str(err)
    ids = [r["target_id"] for r in rows]
    assert f"{path}: " in msg
    assert f"row 2 (target_id '{ids[0]}'): value: 'abc' is not a number" in msg
    assert f"row 4 (target_id '{ids[2]}'): target_id: duplicate of row 3" in msg
    assert "statistic: 'proportoin' is not one of" in msg and "(did you mean 'proportion'?)" in msg
    assert f"row 6 (target_id '{ids[4]}'): value: 0.9 is outside its interval [0.2, 0.5]" in msg
    assert "k: 21 events exceed the denominator n = 20" in msg
    assert "evidence: 'V-paper' is not one of V-seed, V-abs, V-sec, D" in msg
    assert "ci_method: 'none' but the row has an interval" in msg
    assert "value: empty (every target needs a numeric value)" in msg
    assert "1.2 is outside [0, 1] (a proportion is a fraction)" in msg
    assert "k: '2.5' is not a whole number >= 0" in msg
    assert "lower/upper: give both ends of the interval or neither" in msg
    assert len(err.problems) >= 11
    assert isinstance(err, CarKineticsError)


def test_header_only_and_empty_files(tmp_path):
    path = _write(tmp_path, [])
    with pytest.raises(DataError, match="header but no rows"):
        load_targets(path)
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="not a readable CSV table"):
        load_targets(empty)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes((",".join(TARGET_COLUMNS) + "\n").encode() + "caf\xe9".encode("latin-1") + b"\n")
    with pytest.raises(DataError, match="not UTF-8"):
        load_targets(path)


def test_returns_a_fresh_frame_each_call(table):
    again = load_targets()
    again.loc[0, "value"] = -1.0
    assert load_targets().loc[0, "value"] == table.loc[0, "value"]
    assert isinstance(table, pd.DataFrame)
