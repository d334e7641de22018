"""Inspection layer: works on any Redis, not only ones written by the pattern layer.

Grouped by what it looks at:

* ``keyspace/``: the SCAN engine, the namespace rollup, the scan job, key detail.
* ``server/``: INFO/CONFIG/SLOWLOG/ACL facts and the overview.
* ``live/``: rate limiters, locks, streams and pub/sub of any library.
* ``audit/``: the anti-pattern rules, fed by the same scan.
* ``errors``, ``nodes``: envelopes and error wording; the nodes behind a client.

The observer (``dashboard.observer``) decides when these run; views read its picture.
Nothing is re-exported here, so importing one module does not import the others.
"""
