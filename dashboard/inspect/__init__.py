"""Inspection layer: works on any Redis, not only ones written by the pattern layer.

* ``scan``: per-page key facts (type, TTL, bytes, element count) via one read-only
  Lua call per SCAN page, or pipelines when scripting is unavailable.
* ``rollup``: namespace tree with counters, TTL histogram and top-N heaps.
* ``scanjob``: the scan as a background job (progress, cancel, resume, sampling).
* ``server``, ``keydetail``, ``keyid``: server facts, one key's detail, key ids.

Nothing is re-exported here, so importing one module does not import the others.
"""
