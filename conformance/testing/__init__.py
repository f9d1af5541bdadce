"""Seeded faults (``faults``) and misbehaving backends (``misbehaving``) that prove what the suite
catches, and informative weights for models shipped with placeholders (``drawn_weights``); users'
own tests may import them."""
