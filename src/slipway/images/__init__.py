"""Container images: the ImageBuilder interface (base.py), its backends (buildah, docker, fake), the
factory that picks one, and the staging + build-and-push step of a release (stage.py).

Import submodules directly; this package imports nothing.
"""
