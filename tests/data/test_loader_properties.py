"""Property: any CSV loads with a report whose books balance, or fails with DataError."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rfmml.cli import main
from rfmml.data import read_transactions
from rfmml.errors import DataError

ids = st.one_of(st.sampled_from(["a", "b", "007", "", " ", "=1+2"]), st.integers(-3, 99).map(str))
dates = st.one_of(
    st.dates().map(str),
    st.sampled_from(["2010-01-05", "2099-01-01", "01/03/2010", "13/02/2010", "02/13/2010",
                     "2010-01-05T10:00:00+01:00", "2010-01-05 23:59", "yesterday", "", "0"]),
)  # fmt: skip
amounts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["0", "-5", "12.5", "1e3", "$3", "2,50", "", "nan"]),
)
rows = st.lists(st.tuples(ids, dates, amounts), max_size=12)
separators = st.sampled_from([",", ";"])


def _csv(table: list[tuple[str, str, str]], sep: str) -> str:
    lines = [sep.join(["customer_id", "timestamp", "amount"])]
    lines += [sep.join(f'"{v}"' for v in row) for row in table]
    return "\n".join(lines) + "\n"


@pytest.mark.filterwarnings("ignore:removed .* rows dated in the future:UserWarning")
@settings(max_examples=120, suppress_health_check=[HealthCheck.too_slow])
@given(table=rows, sep=separators, policy=st.sampled_from(["drop", "net"]),
       dedupe=st.booleans())  # fmt: skip
def test_any_csv_loads_balanced_or_raises_data_error(table, sep, policy, dedupe):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.csv"
        path.write_text(_csv(table, sep))
        try:
            tx, report = read_transactions(path, negative_amounts=policy, drop_duplicates=dedupe)
        except DataError:
            return
    report.check()
    assert report.rows_in == len(table)
    assert report.rows_out == len(tx) > 0
    assert tx["timestamp"].notna().all() and tx["amount"].notna().all()
    assert (tx["amount"] >= 0).all()


@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
@given(table=rows, sep=separators)
def test_the_cli_never_shows_a_traceback(table, sep):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "log.csv"
        path.write_text(_csv(table, sep))
        result = CliRunner().invoke(main, ["segment", str(path)])
    assert result.exit_code in (0, 1), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    if result.exit_code == 1:
        assert sum(line.startswith("error: ") for line in result.output.splitlines()) == 1
