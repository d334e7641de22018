"""The server itself: INFO, CONFIG, SLOWLOG, commandstats and ACL (``facts``), and the
overview page's panels built from them (``overview``)."""
