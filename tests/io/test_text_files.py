"""``io._text_files``: text inputs read as UTF-8 (gzipped or not); yes/no columns."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from cd7escape._errors import InputError
from cd7escape.io._text_files import as_bool, open_text


def test_open_text_plain_gzip_and_bom(tmp_path):
    (tmp_path / "a.csv").write_bytes("\ufeffsample,path\nP1,é\n".encode())
    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"sample,path\n"))
    assert open_text(tmp_path / "a.csv").read() == "sample,path\nP1,é\n"
    assert open_text(tmp_path / "a.csv.gz").read() == "sample,path\n"


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"\x1f\x8bnot gzip", "corrupt gzip file"), (b"caf\xe9", "not UTF-8 text (byte 3")],
)
def test_open_text_names_the_problem(tmp_path, content, says):
    (tmp_path / "bad.csv").write_bytes(content)
    with pytest.raises(InputError, match=r"(?s)" + says.replace("(", r"\(")) as err:
        open_text(tmp_path / "bad.csv", field="samples", sample="S1")
    problem = err.value.problems[0]
    assert (problem.field, problem.sample) == ("samples", "S1")
    assert problem.file.endswith("bad.csv")


def test_open_text_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read file"):
        open_text(tmp_path / "absent.csv")


def test_as_bool():
    values = pd.Series(["True", " true", "TRUE", "1", "yes", "t", "False", "0", "no", "", None])
    assert as_bool(values).tolist() == [True] * 6 + [False] * 5
    flags = pd.Series([True, False])
    assert as_bool(flags) is flags
