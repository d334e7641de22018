"""Key naming shared by every pattern: ``namespace:resource:id`` and hash tags.

Keys are joined with ``:`` so that the dashboard's namespace rollup groups them.
Where a pattern needs several keys in one script or transaction, the part that
must keep them on one Redis Cluster slot is wrapped in ``{...}`` (a hash tag):
Redis Cluster hashes only the text between the first ``{`` and the next ``}``.
"""

from __future__ import annotations

DELIMITER = ":"
KeyPart = str | bytes | int


def _as_bytes(part: KeyPart) -> bytes:
    if isinstance(part, bytes):
        return part
    if isinstance(part, int):
        return str(part).encode()
    if isinstance(part, str):
        return part.encode("utf-8")
    raise TypeError(f"key part must be str, bytes or int, not {type(part).__name__}")


def key(*parts: KeyPart) -> str | bytes:
    """Join ``parts`` with ``:``; returns ``str`` unless a part is bytes.

    Empty parts are refused: ``cache::x`` is almost always a bug in the caller.
    """
    if not parts:
        raise ValueError("a key needs at least one part")
    if any(isinstance(p, bytes) for p in parts):
        raw = [_as_bytes(p) for p in parts]
        if any(not p for p in raw):
            raise ValueError(f"empty key part in {parts!r}")
        return DELIMITER.encode().join(raw)
    text = [str(p) for p in parts]
    if any(not p for p in text):
        raise ValueError(f"empty key part in {parts!r}")
    return DELIMITER.join(text)


def tag(part: KeyPart) -> str | bytes:
    """Wrap ``part`` in a hash tag so that keys sharing it map to one cluster slot.

    A part that already contains ``{`` or ``}`` cannot be tagged unambiguously
    (Redis would hash only a piece of it), so it is refused.
    """
    raw = _as_bytes(part)
    if not raw:
        raise ValueError("cannot hash-tag an empty part")
    if b"{" in raw or b"}" in raw:
        raise ValueError(f"a hash-tagged part cannot contain braces: {part!r}")
    if isinstance(part, bytes):
        return b"{" + raw + b"}"
    return "{" + str(part) + "}"


def hash_slot_part(name: str | bytes) -> bytes:
    """The bytes Redis Cluster hashes for ``name`` (the hash tag if there is one)."""
    raw = _as_bytes(name)
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            return raw[start + 1 : end]
    return raw


def _crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def slot(name: str | bytes) -> int:
    """The Redis Cluster hash slot (0..16383) of a key."""
    return _crc16_xmodem(hash_slot_part(name)) % 16384


def same_slot(*names: str | bytes) -> bool:
    """True when every key maps to one cluster slot (safe for multi-key commands)."""
    return len({slot(n) for n in names}) <= 1
