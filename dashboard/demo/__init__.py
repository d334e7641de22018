"""The demo: a shop built only on the pattern layer, its traffic simulator, the
playground's experiments, and ``redis-dashboard demo`` (docs/demo.md)."""
