"""The files source: local paths and globs, S3 URIs (moto server), several files per table, clear errors."""

import gzip
import io

import boto3
import pandas as pd
import pytest

from adapters.file_source import read_files, read_source_table, resolve
from tasks.errors import InputDataError
from tasks.usecase import SourceSpec


def files_source(tables) -> SourceSpec:
    return SourceSpec(adapter="files", tables=tables, primary=next(iter(tables)), missing_values=("nil",))


def test_a_reference_file_and_later_files_by_glob_are_stacked_in_order(tmp_path):
    (tmp_path / "later").mkdir()
    (tmp_path / "reference.csv").write_text("at,x\n2010-01-01,1\n")
    (tmp_path / "later" / "2.csv.gz").write_bytes(gzip.compress(b"at,x\n2010-01-03,nil\n"))
    (tmp_path / "later" / "1.csv").write_text("at,x\n2010-01-02,2\n")
    source = files_source({"t": [str(tmp_path / "reference.csv"), str(tmp_path / "later" / "*.csv*")]})
    frame, files = read_source_table(source, "t")
    assert frame["at"].tolist() == ["2010-01-01", "2010-01-02", "2010-01-03"]
    assert frame["x"].tolist()[:2] == ["1", "2"] and pd.isna(frame["x"].iloc[2])  # "nil" is missing
    assert [f.rows for f in files] == [1, 1, 1] and all(len(f.sha256) == 64 for f in files)


def test_parquet_keeps_its_types(tmp_path):
    pd.DataFrame({"at": pd.to_datetime(["2010-01-01"]), "x": [1.5]}).to_parquet(tmp_path / "t.parquet")
    frame, _ = read_source_table(files_source({"t": str(tmp_path / "t.parquet")}), "t")
    assert frame["x"].tolist() == [1.5] and str(frame["at"].dtype).startswith("datetime64")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: [str(d / "nothing-*.csv")], r"source table 't': no file matches '.*nothing-\*\.csv'"),
        (lambda d: [str(d / "missing.csv")], "no file matches"),
        (lambda d: [str(d / "a.csv"), str(d / "b.csv")], "b.csv has columns"),
        (lambda d: [str(d / "a.json")], "unknown file type"),
    ],
)
def test_bad_file_lists_get_one_line_errors(tmp_path, make, message):
    (tmp_path / "a.csv").write_text("at,x\n1,2\n")
    (tmp_path / "b.csv").write_text("when,x\n1,2\n")
    (tmp_path / "a.json").write_text("{}")
    with pytest.raises(InputDataError, match=message) as raised:
        read_source_table(files_source({"t": make(tmp_path)}), "t")
    assert "\n" not in str(raised.value)


def test_an_empty_file_list_is_an_error():
    with pytest.raises(InputDataError, match="file list is empty"):
        read_files([], "t")


def test_s3_uris_and_globs(s3_server, s3_bucket):
    s3 = boto3.client("s3", endpoint_url=s3_server)
    bucket = s3_bucket.removeprefix("s3://")
    for key, body in (
        ("in/ref.csv", b"at,x\n1,a\n"),
        ("in/new-1.csv", b"at,x\n2,b\n"),
        ("other/x.csv", b"at,x\n9,z\n"),
    ):
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    buffer = io.BytesIO()
    pd.DataFrame({"at": ["3"], "x": ["c"]}).to_parquet(buffer)
    s3.put_object(Bucket=bucket, Key="in/new-2.parquet", Body=buffer.getvalue())
    found = resolve((f"{s3_bucket}/in/ref.csv", f"{s3_bucket}/in/new-*"), "t", s3_endpoint_url=s3_server)
    assert found == [f"{s3_bucket}/in/ref.csv", f"{s3_bucket}/in/new-1.csv", f"{s3_bucket}/in/new-2.parquet"]
    frame, _ = read_files(found, "t", s3_endpoint_url=s3_server)
    assert frame["x"].tolist() == ["a", "b", "c"]
    with pytest.raises(InputDataError, match="no file matches"):
        resolve((f"{s3_bucket}/nope/*.csv",), "t", s3_endpoint_url=s3_server)
