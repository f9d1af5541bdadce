"""Seeded faults (``faults``) and misbehaving backends (``misbehaving``) that prove what the suite
catches; users' own tests may import them."""
