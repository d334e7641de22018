"""Key addressing and display: keys are bytes, URLs and pages are text.

A Redis key can be any byte string: not UTF-8, full of HTML, or a megabyte long.
The dashboard needs to (a) put a key in a URL and get the exact bytes back, and
(b) show it to a person without lying about it or letting it break the page.

* :func:`encode_key` / :func:`decode_key`: base64url without padding, reversible
  for every byte string (the empty key encodes to ``""``).
* :func:`key_address` / :func:`resolve_address`: what links should use. Keys up to
  :data:`MAX_URL_KEY_BYTES` are base64url-encoded; longer keys get a short
  ``~<sha256 prefix>`` reference kept in a bounded in-process LRU registry
  (:func:`remember` / :func:`recall`). A reference is valid only while *this*
  dashboard process remembers it: after a restart, in another worker process, or
  once evicted, it resolves to nothing and the page must say the link expired.
* :func:`readable_name`: the key as plain text when it can sit in a URL path as
  itself (``/key/user:42:profile``): UTF-8, printable, no ``.``/``..`` segments a
  browser would fold away; None for every other key, which keeps the base64 form.
* :func:`display_key` / :func:`display_bytes`: readable text. Valid UTF-8 shows as
  itself; invalid bytes show as ``\\xNN``; backslashes, control characters and
  bidi overrides are escaped too, so a display string is unambiguous. HTML is NOT
  escaped here: that is the template's job (Jinja autoescape), and escaping twice
  would show ``&lt;`` to the user. :func:`parse_display` undoes the escaping.
* :func:`redis_cli_arg`: the key as one redis-cli argument (``"odd:\\xff"``), and
  :func:`glob_escape`: the key as a literal inside a SCAN MATCH glob.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import threading
from collections import OrderedDict
from typing import Any

MAX_URL_KEY_BYTES = 1024
REF_PREFIX = "~"
REF_HEX_CHARS = 32  # 128 bits of sha256: collisions are not a practical concern
REGISTRY_ENTRIES = 4096
REGISTRY_BYTES = 64 * 1024 * 1024  # entries alone do not bound memory when keys are 1 MB

_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_REF = re.compile(rf"{re.escape(REF_PREFIX)}[0-9a-f]{{{REF_HEX_CHARS}}}")
_BIDI = {0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


class UnknownKeyRef(LookupError):
    """A ``~ref`` link whose key this process no longer (or never) remembered."""


def encode_key(key: bytes) -> str:
    """URL-safe, reversible text for ``key`` (base64url, no ``=`` padding)."""
    return base64.urlsafe_b64encode(bytes(key)).rstrip(b"=").decode("ascii")


def decode_key(text: str) -> bytes:
    """The key bytes for :func:`encode_key` output; ``ValueError`` on anything else."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError(f"not an encoded key (base64url without padding): {text[:80]!r}")
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not an encoded key: {text[:80]!r} ({exc})") from exc
    if encode_key(key) != text:  # non-canonical trailing bits: two texts for one key
        raise ValueError(f"not a canonical encoded key: {text[:80]!r}")
    return key


class _Registry:
    """LRU of long keys by reference, bounded in entries and in total bytes."""

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._keys: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def remember(self, key: bytes) -> str:
        ref = hashlib.sha256(key).hexdigest()[:REF_HEX_CHARS]
        with self._lock:
            if ref in self._keys:
                self._keys.move_to_end(ref)
                return ref
            self._keys[ref] = key
            self._bytes += len(key)
            while len(self._keys) > 1 and (
                len(self._keys) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, old = self._keys.popitem(last=False)
                self._bytes -= len(old)
        return ref

    def recall(self, ref: str) -> bytes | None:
        with self._lock:
            key = self._keys.get(ref)
            if key is not None:
                self._keys.move_to_end(ref)
            return key

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._bytes = 0


_registry = _Registry(REGISTRY_ENTRIES, REGISTRY_BYTES)


def remember(key: bytes) -> str:
    """Keep ``key`` in this process's registry; return its sha256 hex-prefix reference."""
    return _registry.remember(bytes(key))


def recall(ref: str) -> bytes | None:
    """The key remembered under ``ref`` (a hex reference, with or without ``~``), or None."""
    return _registry.recall(ref.removeprefix(REF_PREFIX))


def key_address(key: bytes) -> str:
    """What a link should carry: base64url for normal keys, ``~ref`` for huge ones."""
    if len(key) <= MAX_URL_KEY_BYTES:
        return encode_key(key)
    return REF_PREFIX + remember(key)


def resolve_address(address: str) -> bytes:
    """Inverse of :func:`key_address`.

    Raises ``ValueError`` for text that is neither form, :class:`UnknownKeyRef` for a
    reference this process does not remember (restarted, other worker, evicted).
    """
    if isinstance(address, str) and address.startswith(REF_PREFIX):
        if not _REF.fullmatch(address):
            raise ValueError(f"not a key reference: {address[:80]!r}")
        key = recall(address)
        if key is None:
            raise UnknownKeyRef(
                f"key reference {address} has expired: this dashboard process no longer "
                "remembers the key (references live only in the process that made them)"
            )
        return key
    return decode_key(address)


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: an invalid UTF-8 byte
        return f"\\x{code - 0xDC00:02x}"
    if ch == "\\":
        return "\\\\"
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    if 0x80 <= code <= 0x9F or code in (0x2028, 0x2029) or code in _BIDI:
        return f"\\u{code:04x}"
    return ch


def escape_bytes(data: bytes) -> str:
    """Unambiguous text for ``data``: UTF-8 as is, ``\\xNN`` for invalid/control bytes."""
    text = bytes(data).decode("utf-8", errors="surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(_escape_char(ch) for ch in text)


def _cut(data: bytes, limit: int) -> bytes:
    """``data[:limit]`` moved back to a UTF-8 character boundary (at most 3 bytes)."""
    end = limit
    for _ in range(3):
        if end <= 0 or end >= len(data) or (data[end] & 0xC0) != 0x80:
            break
        end -= 1
    return data[: end if end > 0 else limit]


def display_key(key: bytes, limit: int | None = 256) -> str:
    """Readable key; longer than ``limit`` bytes it ends with ``… (N bytes)``."""
    key = bytes(key)
    if limit is None or len(key) <= limit:
        return escape_bytes(key)
    return f"{escape_bytes(_cut(key, limit))}… ({len(key):,} bytes)"


def display_bytes(data: bytes, limit: int = 256) -> dict[str, Any]:
    """A value/element for display: ``{"text", "length", "truncated"}`` (length in bytes)."""
    data = bytes(data)
    truncated = len(data) > limit
    shown = _cut(data, limit) if truncated else data
    return {"text": escape_bytes(shown), "length": len(data), "truncated": truncated}


_DISPLAY_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def parse_display(text: str) -> bytes:
    """The bytes behind a :func:`display_key` text shown in full (``limit=None``).

    The escaping is unambiguous (a literal backslash is doubled), so this undoes it;
    group names, consumer names and audit examples come to pages as display text.
    """
    out = bytearray()
    pos = 0
    for match in _DISPLAY_ESCAPE.finditer(text):
        out += text[pos : match.start()].encode("utf-8", "surrogateescape")
        code = match.group(1)
        if code == "\\":
            out += b"\\"
        elif code[0] == "x":
            out.append(int(code[1:], 16))
        else:
            out += chr(int(code[1:], 16)).encode("utf-8", "surrogatepass")
        pos = match.end()
    out += text[pos:].encode("utf-8", "surrogateescape")
    return bytes(out)


def readable_name(key: bytes) -> str | None:
    """``key`` as text fit for a URL path (``/key/<name>``), or None.

    Only names a person could type and a browser passes through unchanged: valid,
    printable UTF-8 of at most :data:`MAX_URL_KEY_BYTES` bytes, not starting with
    ``/`` and without ``.`` or ``..`` path segments (browsers resolve those). Every
    other key keeps the reversible base64 form.
    """
    key = bytes(key)
    if not key or len(key) > MAX_URL_KEY_BYTES or key.startswith(b"/"):
        return None
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text.isprintable() or any(ord(c) in _BIDI for c in text):
        return None
    if any(part in (".", "..") for part in text.split("/")):
        return None
    return text


_CLI_PLAIN = re.compile(rb"[A-Za-z0-9_:.{}/@+=,-]+")
_CLI_ESCAPES = {0x22: '\\"', 0x5C: "\\\\", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def redis_cli_arg(key: bytes) -> str:
    """``key`` as one redis-cli argument that reads back as exactly these bytes.

    Plain names stay bare; anything else is double-quoted with redis-cli's own
    escapes (``\\"``, ``\\\\``, ``\\n``, ``\\r``, ``\\t``, ``\\xHH``), which its
    argument parser (sdssplitargs) turns back into the original bytes.
    """
    key = bytes(key)
    if _CLI_PLAIN.fullmatch(key):
        return key.decode("ascii")
    parts = []
    for byte in key:
        if byte in _CLI_ESCAPES:
            parts.append(_CLI_ESCAPES[byte])
        elif 0x20 <= byte < 0x7F:
            parts.append(chr(byte))
        else:
            parts.append(f"\\x{byte:02x}")
    return '"' + "".join(parts) + '"'


def glob_escape(data: bytes) -> bytes:
    """``data`` as a literal inside a Redis glob (SCAN MATCH): ``* ? [ ] \\`` escaped."""
    return re.sub(rb"([*?\[\]\\])", rb"\\\1", bytes(data))
