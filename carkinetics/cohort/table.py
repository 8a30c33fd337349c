"""The patient table of a cohort, filled chunk by chunk into columns allocated once.

Each chunk's rows (covariates, varying parameters, status, endpoints) are copied into
columns of the cohort's full length as the chunk is reduced, so the table is held once: no
list of per-chunk arrays joined at the end. The per-chunk arrays are small (a few hundred
patients) and freed at once, so the allocator reuses their memory for the next chunk; the
full columns are single large allocations that the C library maps and unmaps as a whole.
Joining per-chunk arrays at the end of a run held both for a while and left the freed chunk
memory in the heap of the process (about 0.6 kB a patient at 10^6 patients;
benchmarks/README.md, "Stop 30").
"""

from __future__ import annotations

import numpy as np


class PatientColumns:
    """Columns of ``n`` rows filled by :meth:`add` (rows ``start:start + m`` of each chunk).

    A column's type is that of its first chunk; a later chunk whose values need a wider type
    (floats after integers, say) widens the column (:func:`numpy.result_type`), so no value
    is cast to a narrower type. A :class:`pandas.Categorical` column (the arm) is kept as its
    codes with the categories of its first chunk, which every chunk of a design shares.

    Examples
    --------
    >>> import numpy as np
    >>> from carkinetics.cohort.table import PatientColumns
    >>> t = PatientColumns(4)
    >>> t.add({"x": np.array([1, 2])}, 0)
    >>> t.add({"x": np.array([0.5, 4.0])}, 2)
    >>> t.frame()["x"].tolist()
    [1.0, 2.0, 0.5, 4.0]
    """

    def __init__(self, n: int):
        self.n = int(n)
        self._columns: dict | None = None  # name -> full-length array (codes for a categorical)
        self._categories: dict = {}  # name -> categories of a categorical column
        self.rows = 0  # rows filled so far

    def add(self, table, start: int) -> None:
        """Copy a chunk's columns (name -> array or Categorical, in the table's column order)
        into rows ``start:start + m``."""
        import pandas as pd

        if self._columns is None:
            self._columns = {}
            for name, col in table.items():
                if isinstance(col, pd.Categorical):
                    self._categories[name] = col.categories
                    self._columns[name] = np.empty(self.n, dtype=col.codes.dtype)
                else:
                    self._columns[name] = np.empty(self.n, dtype=np.asarray(col).dtype)
        if list(table) != list(self._columns):
            raise ValueError(f"chunk columns {list(table)} differ from the first chunk's {list(self._columns)}")
        m = 0
        for name, col in table.items():
            if name in self._categories:
                if not col.categories.equals(self._categories[name]):
                    raise ValueError(f"column {name}: categories {list(col.categories)} differ from the first "
                                     f"chunk's {list(self._categories[name])}")
                values = col.codes
            else:
                values = np.asarray(col)
            m = len(values)
            self._column_for(name, values.dtype)[start:start + m] = values
        self.rows += m

    def _column_for(self, name, dtype):
        """The column ``name``, widened first if ``dtype`` does not fit in it."""
        col = self._columns[name]
        wider = np.result_type(col.dtype, dtype)
        if wider != col.dtype:
            new = np.empty(self.n, dtype=wider)
            new[:] = col  # rows not yet filled are copied too, and overwritten later
            self._columns[name] = col = new
        return col

    def frame(self):
        """The table as a DataFrame (the columns are handed over, not copied; ``arm`` as text)."""
        import pandas as pd

        if self._columns is None:
            return pd.DataFrame()
        if self.rows != self.n:
            raise ValueError(f"{self.rows} of {self.n} rows filled")
        columns, self._columns = self._columns, None
        for name, cats in self._categories.items():
            columns[name] = pd.Categorical.from_codes(columns[name], categories=cats)
        patients = pd.DataFrame(columns, copy=False)
        columns = None
        if "arm" in patients.columns:
            patients["arm"] = patients["arm"].astype(str)
        return patients
