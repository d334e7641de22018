"""redis-dashboard: inspect how a Redis is really used, on top of a pattern layer
that shows how to use it right."""

__version__ = "0.1.0"
