"""The keyspace: SCAN facts per key, the namespace rollup, the scan job, one key's detail.

* ``scan``: per-page key facts (type, TTL, bytes, element count) via one read-only Lua
  call per SCAN page, or pipelines when scripting is unavailable.
* ``rollup``: namespace tree with counters, TTL histogram and top-N heaps.
* ``scanjob``: a whole scan (every primary; progress, cancel, resume, sampling).
* ``report``: the ``redis-dashboard keyspace`` report.
* ``keydetail``: one key's bounded preview.
"""
