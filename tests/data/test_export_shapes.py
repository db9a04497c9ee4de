"""Shop exports as users hand them over: compressed, duplicated, with order states."""

from __future__ import annotations

import bz2
import gzip
import lzma
import zipfile

import pytest

from rfmml.data import read_transactions
from rfmml.errors import DataError

WIDE = "customer_id,timestamp,amount\na,2010-01-01,1,234.50\nb,2010-01-02,10\nc,2010-01-03,7\n"


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".zip"])
def test_rows_wider_than_the_header_are_refused_in_every_compression(tmp_path, suffix):
    """A zip or xz file was read without the width check: 1,234.50 became an amount of 1."""
    path = tmp_path / f"log{suffix}"
    data = WIDE.encode()
    if suffix == ".zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("log.csv", data)
    else:
        opener = {".gz": gzip.compress, ".bz2": bz2.compress, ".xz": lzma.compress}
        path.write_bytes(opener.get(path.suffix, bytes)(data))
    with pytest.raises(DataError) as caught:
        read_transactions(path)
    message = str(caught.value)
    assert "1 of 3 rows have more fields than the header's 3" in message
    assert "first: 'a,2010-01-01,1,234.50'" in message and "\n" not in message
