"""The shared content-addressed store, as the workers see it.

Layout (shared with the control plane): <root>/cas/sha256/<hex[:2]>/<hex>. A file is
written to a temporary name in the same directory and renamed, so a reader never sees
a partial artifact and two writers of the same bytes do not conflict.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass

from pds_dpo_workers.errors import ArtifactError
from pds_dpo_workers.proto import common_pb2

URI_PREFIX = "cas://sha256/"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Store:
    root: str

    def path_of(self, sha256: str) -> str:
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
            return sha256_file(path) == digest
        except FileNotFoundError:
            return False

    def read_ref(self, ref: common_pb2.ArtifactRef) -> bytes:
        if not ref.uri.startswith(URI_PREFIX):
            raise ArtifactError(f"unsupported artifact uri {ref.uri!r}")
        digest = ref.uri[len(URI_PREFIX):]
        path = self.path_of(digest)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise ArtifactError(f"artifact {ref.uri} is not in the store at {path}") from None
        if sha256_bytes(data) != digest:
            raise ArtifactError(f"artifact {ref.uri} does not match its sha256")
        return data


def read_blob(store: Store | None, blob: common_pb2.Blob) -> bytes:
    kind = blob.WhichOneof("kind")
    if kind == "inline":
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
