"""The raw-input pack archive: content addressed, shared across processes, crash tolerant, truly erasable."""

from __future__ import annotations

import hashlib
from pathlib import Path

from inbox.archive import PackArchive


def test_put_get_and_dedupe(tmp_path: Path) -> None:
    a = PackArchive(tmp_path)
    ref = a.put(b"raw mail")
    assert ref == hashlib.sha256(b"raw mail").hexdigest()
    assert a.put(b"raw mail") == ref
    assert a.get(ref) == b"raw mail"
    assert a.exists(ref) and not a.exists("0" * 64)
    assert sum(p.stat().st_size for p in tmp_path.glob("*.pack")) == PackArchive.HEADER.size + len(b"raw mail")


def test_another_instance_reads_what_one_wrote(tmp_path: Path) -> None:
    writer, reader = PackArchive(tmp_path), PackArchive(tmp_path)
    first = writer.put(b"one")
    assert reader.get(first) == b"one"
    second = writer.put(b"two")  # written after the reader's first scan
    assert reader.get(second) == b"two"


def test_a_record_cut_short_by_a_crash_is_ignored(tmp_path: Path) -> None:
    a = PackArchive(tmp_path)
    good = a.put(b"complete")
    a.close()
    pack = next(tmp_path.glob("*.pack"))
    header = PackArchive.HEADER.pack(b"RAW1", b"L", hashlib.sha256(b"lost").digest(), 1000)
    with open(pack, "ab") as fh:
        fh.write(header + b"only part")
    fresh = PackArchive(tmp_path)
    assert fresh.get(good) == b"complete"
    assert not fresh.exists(hashlib.sha256(b"lost").hexdigest())
    assert fresh.get(fresh.put(b"after the crash")) == b"after the crash"


def test_delete_zeroes_every_copy(tmp_path: Path) -> None:
    secret = b"Cedula 1.234.567-8, Juan Perez"
    one, two = PackArchive(tmp_path), PackArchive(tmp_path)
    ref = one.put(secret)
    two.put(secret)  # a second process archived the same input
    assert two.delete(ref)
    assert not one.exists(ref) and not two.exists(ref)
    for pack in tmp_path.glob("*.pack"):
        assert b"Juan" not in pack.read_bytes()
