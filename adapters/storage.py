"""Object storage behind one interface: a local folder or S3. URIs are the only currency.

A URI is either a local path (absolute, or ``file://``) or ``s3://bucket/key``. Writes are atomic: a reader
sees the previous object or the complete new one, never half a file.
"""

from __future__ import annotations

from typing import Protocol


class Storage(Protocol):
    """What every flow needs from a store of files."""

    def read_bytes(self, uri: str) -> bytes: ...

    def write_bytes(self, uri: str, data: bytes) -> None: ...

    def exists(self, uri: str) -> bool: ...

    def list(self, prefix_uri: str) -> list[str]: ...

    def delete(self, uri: str) -> None: ...
