"""Live state other code keeps in Redis: rate limiters and locks (``claims``,
``detectors``, ``userpatterns``, ``foreign``, ``state``, ``actions``), stream consumer
groups (``streams``) and pub/sub tails (``tails``)."""
