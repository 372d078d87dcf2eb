"""Artifact storage through fsspec: content addressed by sha256, never seen half written.

An object lives at `objects/<first two hex digits>/<sha256>` under the root.

- On a local disk it is written under a temporary name beside its final place, flushed to
  disk and renamed, so a reader never sees half an object and a crash leaves only a temporary
  file that the next write ignores.
- On an object store (`s3://...`) there is no atomic rename (a "move" is a copy and a delete),
  but an object becomes visible only once its upload completes: it is put once, whole, at its
  final name, and a reader sees the whole object or none.

Every read is checked against the hash the object is named by. Objects read from a remote
store are kept in a local cache by hash (`cache_dir`), and a cached file is hashed again at
every read, like a download: the cache is a plain folder any process of the machine could
write, and hashing a file on local disk costs far less than fetching it again (measured in
docs/scaling.md), so trusting it by its name alone would save little and would let a changed
file reach `load` unchecked.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import fsspec

from keel.store.errors import IntegrityError, NotFoundError

if TYPE_CHECKING:
    from keel.store.settings import Settings

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
        cache_dir: a local folder where objects read from a remote root are kept by hash;
            None: no cache (a local root never uses one).
    """

    def __init__(self, root: str, *, cache_dir: str | Path | None = None) -> None:
        self.root = root.rstrip("/")
        self._fs, self._base = fsspec.core.url_to_fs(self.root)
        protocol = self._fs.protocol
        self._local = protocol in ("file", "local") or "file" in protocol
        self.cache_dir = Path(cache_dir) if cache_dir is not None and not self._local else None

    @classmethod
    def open(cls, settings: Settings) -> ArtifactStore:
        """The store the settings name, with its local cache under the home folder."""
        return cls(settings.resolved_artifacts, cache_dir=settings.cache_dir / "objects")

    @property
    def local(self) -> bool:
        """Whether the root is a local folder (atomic rename exists there)."""
        return self._local

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
            if self._local:
                self._write_local(path, data)
            else:
                self._fs.pipe_file(path, data)  # one PUT: visible whole or not at all
        return StoredObject(sha, self.uri(sha), len(data))

    def put_file(self, local_path: str | Path) -> StoredObject:
        """Store a local file's content without reading it all into memory at once."""
        sha = sha256_file(local_path)
        path = self._path(sha)
        size = os.path.getsize(local_path)
        if not self._fs.exists(path):
            if self._local:
                tmp = self._tmp_name(path)
                self._fs.makedirs(os.path.dirname(path), exist_ok=True)
                self._fs.put_file(str(local_path), tmp)
                os.replace(tmp, path)
            else:  # a (multipart) upload is visible only once it completes
                self._fs.put_file(str(local_path), path)
        return StoredObject(sha, self.uri(sha), size)

    def get_bytes(self, sha256: str) -> bytes:
        """Read an object and check it against its hash before handing it out (from the local
        cache when a remote object was read before; checked all the same)."""
        cached = self._cached(sha256)
        if cached is not None:
            return cached
        path = self._path(sha256)
        try:
            data: bytes = self._fs.cat_file(path)  # one GET on an object store
        except FileNotFoundError as exc:
            msg = f"No stored object {sha256[:12]} at {self.uri(sha256)}; the artifact store at {self.root!r} lost it or is not the one that wrote it."
            raise NotFoundError(msg) from exc
        _check(data, sha256, self.uri(sha256))
        self._keep(sha256, data)
        return data

    def _cache_path(self, sha256: str) -> Path | None:
        return None if self.cache_dir is None else self.cache_dir / sha256[:2] / sha256

    def _cached(self, sha256: str) -> bytes | None:
        path = self._cache_path(sha256)
        if path is None or not path.is_file():
            return None
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:  # changed on disk: fetch it again
            path.unlink(missing_ok=True)
            return None
        return data

    def _keep(self, sha256: str, data: bytes) -> None:
        path = self._cache_path(sha256)
        if path is None or path.is_file():
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_local(str(path), data)
        except OSError:  # a full or read-only cache costs a download next time, nothing else
            return

    def _tmp_name(self, path: str) -> str:
        return f"{path}.tmp-{uuid.uuid4().hex}"

    def _write_local(self, path: str, data: bytes) -> None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = self._tmp_name(path)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


def _check(data: bytes, sha256: str, uri: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != sha256:
        msg = (
            f"Stored object {uri} was changed: its sha256 is {got[:12]}, "
            f"expected {sha256[:12]}. It was refused; restore it from a backup."
        )
        raise IntegrityError(msg)


def sha256_file(path: str | Path) -> str:
    """The sha256 of a local file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
