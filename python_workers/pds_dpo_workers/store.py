"""The shared content-addressed store, as the workers see it.

Layout (shared with the control plane): <root>/cas/sha256/<hex[:2]>/<hex>. A file is
written to a temporary name in the same directory and renamed, so a reader never sees
a partial artifact and two writers of the same bytes do not conflict.

Everything a request names is distrusted here: an artifact reference is read only when
its digest is 64 lowercase hex digits, its file is a regular file inside the store no
larger than its declared size and MAX_BLOB_BYTES, and its bytes hash to the digest; a path
is used only inside the store or a root the worker was started with (confine_path).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from typing import Iterable

from pds_dpo_workers.errors import ArtifactError, InvalidRequest, PathNotAllowed
from pds_dpo_workers.proto import common_pb2

URI_PREFIX = "cas://sha256/"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
# The most bytes one input blob (a stored artifact or inline bytes) may hold: it is read
# into memory whole. Inline bytes are also bounded by the gRPC message limit (64 MiB).
MAX_BLOB_BYTES = 256 * 1024 * 1024
_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _is_sha256(value: str) -> bool:
    # fullmatch: "$" alone would accept a trailing newline.
    return SHA256_HEX.fullmatch(value) is not None


def _within(path: str, root: str) -> bool:
    """Both already resolved (realpath)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve_roots(roots: Iterable[str]) -> tuple[str, ...]:
    """The roots as confine_path compares them: absolute, symlinks resolved."""
    return tuple(os.path.realpath(r) for r in roots)


def confine_path(path: str, roots: Iterable[str], what: str) -> str:
    """`path` resolved (os.path.realpath: symlinks followed, the missing tail kept as is) when
    it lies inside one of `roots`; else PathNotAllowed. A relative path is taken from the
    worker's working directory. Nothing is created or opened, and the error is the same
    whether or not the path exists, so a caller cannot probe the disk outside the roots."""
    try:
        if not isinstance(path, str) or not path:
            raise ValueError
        resolved = os.path.realpath(path)
    except (ValueError, TypeError):  # an embedded NUL byte, not a string
        raise InvalidRequest(f"{what}: {path!r} is not a path") from None
    if any(_within(resolved, root) for root in resolve_roots(roots)):
        return resolved
    raise PathNotAllowed(f"{what}: path {path} is outside the store and the worker's allowed roots")


@dataclass(frozen=True)
class Store:
    root: str

    def path_of(self, sha256: str) -> str:
        if not _is_sha256(sha256):
            raise ArtifactError(f"not a sha256 digest (64 lowercase hex digits): {sha256[:80]!r}")
        return os.path.join(self.root, "cas", "sha256", sha256[:2], sha256)

    def put(self, data: bytes, media_type: str) -> common_pb2.ArtifactRef:
        digest = sha256_bytes(data)
        dest = self.path_of(digest)
        # An existing copy is trusted only if it still hashes right: a damaged one is replaced.
        if not self._intact(dest, digest):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(dest), prefix=".tmp-")
            try:
                # mkstemp makes 0600 files; a shared store must be readable by other users.
                os.chmod(tmp, 0o644)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, dest)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
        return common_pb2.ArtifactRef(uri=URI_PREFIX + digest, sha256=digest, bytes=len(data), media_type=media_type)

    @staticmethod
    def _intact(path: str, digest: str) -> bool:
        try:
            st = os.stat(path)
            return stat.S_ISREG(st.st_mode) and sha256_file(path) == digest
        except FileNotFoundError:
            return False

    @staticmethod
    def digest_of(ref: common_pb2.ArtifactRef) -> str:
        """The reference's digest, checked before anything touches the disk: the URI is
        cas://sha256/<64 lowercase hex>, and sha256, when set, is the same digest."""
        if not ref.uri.startswith(URI_PREFIX):
            raise ArtifactError(f"unsupported artifact uri {ref.uri[:200]!r}")
        digest = ref.uri[len(URI_PREFIX):]
        if not _is_sha256(digest):
            raise ArtifactError(f"artifact uri {ref.uri[:200]!r}: the digest must be 64 lowercase hex digits")
        if ref.sha256 and not _is_sha256(ref.sha256):
            raise ArtifactError(f"artifact {ref.uri}: sha256 {ref.sha256[:80]!r} is not 64 lowercase hex digits")
        if ref.sha256 and ref.sha256 != digest:
            raise ArtifactError(f"artifact {ref.uri}: its sha256 field names another digest ({ref.sha256})")
        return digest

    def read_ref(self, ref: common_pb2.ArtifactRef) -> bytes:
        digest = self.digest_of(ref)
        if ref.bytes < 0:
            raise ArtifactError(f"artifact {ref.uri}: bytes {ref.bytes} is negative")
        if ref.bytes > MAX_BLOB_BYTES:
            raise ArtifactError(f"artifact {ref.uri} declares {ref.bytes} bytes; a blob may hold at most {MAX_BLOB_BYTES}")
        path = self.path_of(digest)
        # A store entry that is a symlink out of the store is no entry of it.
        confine_path(path, (self.root,), f"artifact {ref.uri}")
        try:
            # stat, not open: opening a FIFO would block until something writes to it.
            st = os.stat(path)
        except FileNotFoundError:
            raise ArtifactError(f"artifact {ref.uri} is not in the store at {path}") from None
        except OSError as e:
            raise ArtifactError(f"artifact {ref.uri}: cannot read {path}: {e.strerror or e}") from None
        if not stat.S_ISREG(st.st_mode):
            raise ArtifactError(f"artifact {ref.uri}: {path} is not a regular file")
        if ref.bytes > 0 and st.st_size != ref.bytes:
            raise ArtifactError(f"artifact {ref.uri} is {st.st_size} bytes in the store, not the {ref.bytes} its reference declares")
        if st.st_size > MAX_BLOB_BYTES:
            raise ArtifactError(f"artifact {ref.uri} is {st.st_size} bytes; a blob may hold at most {MAX_BLOB_BYTES}")
        limit = ref.bytes if ref.bytes > 0 else MAX_BLOB_BYTES
        try:
            # O_NONBLOCK: should the entry have become a FIFO since the stat, open does not hang.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise ArtifactError(f"artifact {ref.uri} is not in the store at {path}") from None
        except OSError as e:
            raise ArtifactError(f"artifact {ref.uri}: cannot read {path}: {e.strerror or e}") from None
        with os.fdopen(fd, "rb") as f:
            opened = os.fstat(f.fileno())
            if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                raise ArtifactError(f"artifact {ref.uri}: {path} changed while it was being read")
            h = hashlib.sha256()
            parts: list[bytes] = []
            size = 0
            while chunk := f.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raise ArtifactError(f"artifact {ref.uri}: {path} grew past {limit} bytes while it was being read")
                h.update(chunk)
                parts.append(chunk)
        if h.hexdigest() != digest:
            raise ArtifactError(f"artifact {ref.uri} does not match its sha256")
        return b"".join(parts)


def read_blob(store: Store | None, blob: common_pb2.Blob) -> bytes:
    kind = blob.WhichOneof("kind")
    if kind == "inline":
        if len(blob.inline) > MAX_BLOB_BYTES:
            raise ArtifactError(f"an inline blob of {len(blob.inline)} bytes; a blob may hold at most {MAX_BLOB_BYTES}")
        return blob.inline
    if kind == "ref":
        if store is None:
            raise ArtifactError("artifact reference given but this worker has no store")
        return store.read_ref(blob.ref)
    raise ArtifactError("empty blob")


def write_blob(store: Store | None, data: bytes, media_type: str, mode: int) -> common_pb2.Blob:
    if mode == common_pb2.OUTPUT_MODE_INLINE or store is None:
        return common_pb2.Blob(inline=data)
    return common_pb2.Blob(ref=store.put(data, media_type))
