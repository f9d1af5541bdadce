"""The tutorial's cat-image pipeline (``superres``) and the runners that put a backend in it."""
