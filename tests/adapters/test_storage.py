"""Storage adapter: the same behaviour on a local folder (path or file:// URI) and on S3 (moto server)."""

from __future__ import annotations

import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from adapters.storage import (
    LocalStorage,
    S3Storage,
    Storage,
    is_s3,
    join_uri,
    read_json,
    read_parquet,
    storage_for,
    write_json,
    write_parquet,
)
from tasks.errors import StorageError


@dataclass
class Store:
    storage: Storage
    base: str  # an empty "folder" URI to work under


@pytest.fixture(params=["local-path", "file-uri", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "local-path":
        return Store(LocalStorage(), str(tmp_path))
    if request.param == "file-uri":
        return Store(LocalStorage(), tmp_path.as_uri())
    endpoint = request.getfixturevalue("s3_server")
    return Store(S3Storage(endpoint_url=endpoint), join_uri(request.getfixturevalue("s3_bucket"), "base"))


def test_bytes_round_trip(store: Store) -> None:
    uri = join_uri(store.base, "dir", "blob.bin")
    data = bytes(range(256)) * 10
    store.storage.write_bytes(uri, data)
    assert store.storage.read_bytes(uri) == data


def test_parquet_round_trip(store: Store) -> None:
    frame = pd.DataFrame({"carrier": ["UA", "AA", "DL"], "delay": [1.5, None, -3.0], "n": [1, 2, 3]})
    uri = join_uri(store.base, "t.parquet")
    write_parquet(store.storage, uri, frame.set_index("n"))  # index is dropped
    pd.testing.assert_frame_equal(read_parquet(store.storage, uri), frame.drop(columns="n"))


def test_json_round_trip_is_sorted_indented_utf8(store: Store) -> None:
    uri = join_uri(store.base, "m.json")
    write_json(store.storage, uri, {"b": 1, "a": ["é", 2.5]})
    assert read_json(store.storage, uri) == {"a": ["é", 2.5], "b": 1}
    assert store.storage.read_bytes(uri).decode("utf-8").startswith('{\n  "a": [\n    "é"')


def test_exists(store: Store) -> None:
    uri = join_uri(store.base, "x.txt")
    store.storage.write_bytes(uri + ".bak", b"-")  # a longer name with the same prefix is another object
    assert not store.storage.exists(uri)
    store.storage.write_bytes(uri, b"x")
    assert store.storage.exists(uri)
    store.storage.delete(uri)
    assert not store.storage.exists(uri)
    store.storage.delete(uri)  # deleting a missing object is fine


def test_list_is_recursive_sorted_and_excludes_sibling_prefix(store: Store) -> None:
    for rel in ["a/b/2.txt", "a/b/1.txt", "a/b/c/3.txt", "a/b2/no.txt", "a/no.txt"]:
        store.storage.write_bytes(join_uri(store.base, rel), b"-")
    expected = [join_uri(store.base, rel) for rel in ["a/b/1.txt", "a/b/2.txt", "a/b/c/3.txt"]]
    assert store.storage.list(join_uri(store.base, "a/b")) == expected
    assert store.storage.list(join_uri(store.base, "a/b") + "/") == expected
    assert store.storage.list(join_uri(store.base, "nothing")) == []


def test_overwrite_replaces(store: Store) -> None:
    uri = join_uri(store.base, "f")
    store.storage.write_bytes(uri, b"old content, longer")
    store.storage.write_bytes(uri, b"new")
    assert store.storage.read_bytes(uri) == b"new"


def test_missing_object_error_names_uri(store: Store) -> None:
    uri = join_uri(store.base, "missing.parquet")
    with pytest.raises(StorageError, match=re.escape(f"not found: {uri}")):
        store.storage.read_bytes(uri)


def test_s3_missing_bucket_names_bucket(s3_server: str) -> None:
    storage = S3Storage(endpoint_url=s3_server)
    for call in (
        lambda: storage.read_bytes("s3://no-such-bucket/k"),
        lambda: storage.write_bytes("s3://no-such-bucket/k", b"x"),
        lambda: storage.exists("s3://no-such-bucket/k"),
        lambda: storage.list("s3://no-such-bucket/p"),
    ):
        with pytest.raises(StorageError, match="S3 bucket 'no-such-bucket' does not exist"):
            call()


def test_s3_unreachable_endpoint_is_a_storage_error(s3_bucket: str) -> None:
    storage = S3Storage(endpoint_url="http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(StorageError, match=re.escape(f"cannot read {s3_bucket}/k")):
        storage.read_bytes(f"{s3_bucket}/k")


def test_pyarrow_filesystem_reads_what_write_bytes_wrote(s3_server: str, s3_bucket: str) -> None:
    storage = S3Storage(endpoint_url=s3_server)
    frame = pd.DataFrame({"x": [1, 2, 3]})
    write_parquet(storage, f"{s3_bucket}/part/0.parquet", frame)
    table = pq.read_table(f"{s3_bucket.removeprefix('s3://')}/part/0.parquet", filesystem=storage.pyarrow_filesystem())
    pd.testing.assert_frame_equal(table.to_pandas(), frame)


def test_s3_storage_pickles_without_its_client(s3_server: str, s3_bucket: str) -> None:
    storage = S3Storage(endpoint_url=s3_server)
    storage.write_bytes(f"{s3_bucket}/k", b"v")  # builds the client
    assert pickle.loads(pickle.dumps(storage)).read_bytes(f"{s3_bucket}/k") == b"v"  # noqa: S301 (our own bytes)


def test_local_write_leaves_no_temp_files(tmp_path: Path) -> None:
    storage = LocalStorage()
    for i in range(3):
        storage.write_bytes(str(tmp_path / "d" / "f.bin"), bytes([i]))
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["f.bin"]


@pytest.mark.parametrize("failing", ["os.replace", "os.fsync"])
def test_failed_local_write_keeps_previous_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    storage, uri = LocalStorage(), str(tmp_path / "f.bin")
    storage.write_bytes(uri, b"previous")

    def boom(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(failing, boom)
    with pytest.raises(StorageError, match=re.escape(f"cannot write {uri}: No space left on device")):
        storage.write_bytes(uri, b"new content")
    monkeypatch.undo()
    assert storage.read_bytes(uri) == b"previous"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_local_write_under_a_file_raises(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    uri = str(tmp_path / "file" / "child.bin")
    with pytest.raises(StorageError, match=re.escape(f"cannot write {uri}: ")):
        LocalStorage().write_bytes(uri, b"x")


def test_local_write_permission_denied_names_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("pathlib.Path.open", denied)  # as root, a 0o555 folder would not refuse
    uri = str(tmp_path / "f")
    with pytest.raises(StorageError, match=re.escape(f"cannot write {uri}: Permission denied")):
        LocalStorage().write_bytes(uri, b"x")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_local_write_into_read_only_folder_raises(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    with pytest.raises(StorageError, match=r"cannot write .*: Permission denied"):
        LocalStorage().write_bytes(str(folder / "f"), b"x")


def test_local_read_of_folder_and_relative_path_raise(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=re.escape(f"cannot read {tmp_path}: ")):
        LocalStorage().read_bytes(str(tmp_path))
    with pytest.raises(StorageError, match="not an absolute path"):
        LocalStorage().read_bytes("relative/f.bin")


def test_file_uri_with_spaces(tmp_path: Path) -> None:
    target = tmp_path / "a b" / "c.txt"
    LocalStorage().write_bytes(target.as_uri(), b"x")
    assert target.read_bytes() == b"x"
    assert LocalStorage().list((tmp_path / "a b").as_uri()) == [target.as_uri()]


def test_helpers() -> None:
    assert isinstance(storage_for("s3://b/k", s3_endpoint_url="http://127.0.0.1:1"), S3Storage)
    assert isinstance(storage_for("/data/x"), LocalStorage)
    assert isinstance(storage_for("file:///data/x"), LocalStorage)
    with pytest.raises(StorageError, match="not an absolute path"):
        storage_for("http://example.com/x")
    assert is_s3("s3://b/k") and not is_s3("/s3/b")
    assert join_uri("s3://b", "a/", "/c") == "s3://b/a/c"
    assert join_uri("s3://b/", "") == "s3://b/"
    assert join_uri("/data/", "x", "y.parquet") == "/data/x/y.parquet"
    assert join_uri("file:///data", "x") == "file:///data/x"
