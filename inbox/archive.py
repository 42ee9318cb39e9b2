"""Content-addressed archive of raw inputs under the data directory: written first, so nothing is ever lost."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path


class RawArchive:
    def __init__(self, root: str | Path, fsync: bool = False):
        self.root = Path(root)
        self.fsync = fsync

    def path_for(self, ref: str) -> Path:
        if len(ref) != 64 or any(ch not in "0123456789abcdef" for ch in ref):
            raise ValueError(f"not a raw reference: {ref!r}")
        return self.root / ref[:2] / ref

    def put(self, data: bytes) -> str:
        """Store ``data``; return its sha256 reference. Idempotent; safe against crashes (write then rename)."""
        ref = hashlib.sha256(data).hexdigest()
        path = self.path_for(ref)
        if path.exists():
            return ref
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{ref}-{os.getpid()}-{threading.get_ident()}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return ref

    def get(self, ref: str) -> bytes:
        return self.path_for(ref).read_bytes()

    def exists(self, ref: str) -> bool:
        return self.path_for(ref).exists()

    def delete(self, ref: str) -> bool:
        try:
            self.path_for(ref).unlink()
            return True
        except FileNotFoundError:
            return False
