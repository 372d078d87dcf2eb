"""Artifact storage through fsspec: content addressed by sha256, written atomically.

An object lives at `objects/<first two hex digits>/<sha256>` under the root. It is first
written under a temporary name beside its final place, then renamed, so a reader never
sees half an object and a crash leaves only a temporary file that the next write ignores.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import fsspec

from keel.store.errors import IntegrityError, NotFoundError

_CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredObject:
    """Where one stored object is and what its content hashes to."""

    sha256: str
    uri: str
    size: int


class ArtifactStore:
    """Content-addressed objects under a root that fsspec understands.

    Args:
        root: a local folder or any fsspec URL (`memory://keel`, `s3://bucket/prefix`).
    """

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self._fs, self._base = fsspec.core.url_to_fs(self.root)
        self._local = self._fs.protocol in ("file", "local") or "file" in self._fs.protocol

    def _path(self, sha256: str) -> str:
        return f"{self._base}/objects/{sha256[:2]}/{sha256}"

    def uri(self, sha256: str) -> str:
        """The URI of an object, for people and for other tools."""
        path = self._path(sha256)
        return path if self._local else self._fs.unstrip_protocol(path)

    def exists(self, sha256: str) -> bool:
        return bool(self._fs.exists(self._path(sha256)))

    def put_bytes(self, data: bytes) -> StoredObject:
        """Store bytes; storing the same bytes again is free and returns the same object."""
        sha = hashlib.sha256(data).hexdigest()
        path = self._path(sha)
        if not self._fs.exists(path):
            self._write_atomic(path, data)
        return StoredObject(sha, self.uri(sha), len(data))

    def put_file(self, local_path: str | Path) -> StoredObject:
        """Store a local file's content without reading it all into memory at once."""
        sha = sha256_file(local_path)
        path = self._path(sha)
        size = os.path.getsize(local_path)
        if not self._fs.exists(path):
            tmp = self._tmp_name(path)
            self._fs.makedirs(os.path.dirname(path), exist_ok=True)
            self._fs.put_file(str(local_path), tmp)
            self._fs.mv(tmp, path)
        return StoredObject(sha, self.uri(sha), size)

    def get_bytes(self, sha256: str) -> bytes:
        """Read an object and check it against its hash before handing it out."""
        path = self._path(sha256)
        try:
            with self._fs.open(path, "rb") as fh:
                data: bytes = fh.read()
        except FileNotFoundError as exc:
            msg = f"No stored object {sha256[:12]} at {self.uri(sha256)}; the artifact store at {self.root!r} lost it or is not the one that wrote it."
            raise NotFoundError(msg) from exc
        got = hashlib.sha256(data).hexdigest()
        if got != sha256:
            msg = (
                f"Stored object {self.uri(sha256)} was changed: its sha256 is {got[:12]}, "
                f"expected {sha256[:12]}. It was refused; restore it from a backup."
            )
            raise IntegrityError(msg)
        return data

    def _tmp_name(self, path: str) -> str:
        return f"{path}.tmp-{uuid.uuid4().hex}"

    def _write_atomic(self, path: str, data: bytes) -> None:
        self._fs.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = self._tmp_name(path)
        if self._local:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        else:
            with self._fs.open(tmp, "wb") as fh:
                fh.write(data)
            self._fs.mv(tmp, path)


def sha256_file(path: str | Path) -> str:
    """The sha256 of a local file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
