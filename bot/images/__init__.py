"""Images: checking and re-encoding untrusted bytes (``codec``) and the on-disk image cache (``cache``)."""
