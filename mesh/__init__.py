"""The shared kernel of areamesh: identity, certificates, mTLS, storage, config, errors.

``mesh`` imports neither ``registry`` nor ``connector``; both depend on it.
"""

__version__ = "0.1.0"
