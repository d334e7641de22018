"""Which ``lock:{...}`` keys our layer wrote: decided from what Redis holds, not the name.

``lock:{x}`` is only a candidate: redis-py's ``Lock(r, "lock:{x}")`` and python-redis-lock's
``Lock(r, "{x}")`` write the very same name. Our acquire script (lua/lock_acquire.lua)
always INCRs ``lock:{x}:fence`` (a decimal string that never expires) and HINCRBYs
``attempts`` in the ``lock:{x}:info`` hash, so a resource is ours when one of these
companions is there in that shape. Without them the name belongs to whoever wrote it,
and the key is read like any string lock (its layout named from the token's shape by
``foreign.lock_layout``). One pipeline of bounded reads for all candidates of a node:
TYPE, GETRANGE of the fence's first bytes, HSTRLEN of the counter.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dashboard.inspect.live.claims import Claim
from dashboard.patterns.locks import fence_key, info_key, parse_lock_key

FENCE_BYTES = 24  # a fencing counter is at most 20 digits


def _is_counter(value: Any) -> bool:
    if isinstance(value, str):  # a client with decode_responses=True
        value = value.encode("utf-8", "surrogateescape")
    return isinstance(value, bytes) and 0 < len(value) <= 20 and value.isdigit()


def our_resources(client: Any, claims: list[Claim]) -> list[str | None]:
    """For each ``ours-lock`` candidate, the evidence that it is ours: ``"info"`` (our
    stats hash, with or without the fence), ``"fence"`` (only the fencing counter is
    left: the stats expired a day after the last use) or None (not ours)."""
    pipe = client.pipeline(transaction=False)
    for claim in claims:
        resource = parse_lock_key(claim.key) or b"?"
        pipe.type(fence_key(resource)).getrange(fence_key(resource), 0, FENCE_BYTES - 1)
        pipe.type(info_key(resource)).hstrlen(info_key(resource), "attempts")  # bounded read
    replies = pipe.execute(raise_on_error=False)
    out: list[str | None] = []
    for i in range(len(claims)):
        fence_type, fence, info_type, attempts = replies[4 * i : 4 * i + 4]
        counted = isinstance(attempts, int) and 0 < attempts <= 20  # a decimal counter
        if info_type in (b"hash", "hash") and counted:
            out.append("info")
        elif fence_type in (b"string", "string") and _is_counter(fence):
            out.append("fence")
        else:
            out.append(None)
    return out


def resolve(client: Any, claims: list[Claim]) -> tuple[list[tuple[Claim, str]], list[Claim]]:
    """Split claims into ours, each with its evidence, and the rest: a candidate without
    evidence is replaced by its ``fallback`` claims (each key the search found for it,
    read as the string lock it is)."""
    candidates = [c for c in claims if c.reader == "ours-lock"]
    others = [c for c in claims if c.reader != "ours-lock"]
    ours = []
    proofs = our_resources(client, candidates) if candidates else []
    for claim, proof in zip(candidates, proofs, strict=True):
        if proof is not None:
            ours.append((claim, proof))
        else:
            others += [c for c in claim.fallback if c not in others]
    return ours, others


def merge(first: Claim, second: Claim) -> Claim:
    """Two finds of one candidate (the lock and a companion): keep both fallbacks."""
    extra = tuple(c for c in second.fallback if c not in first.fallback)
    return replace(first, fallback=first.fallback + extra) if extra else first
