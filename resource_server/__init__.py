"""Adapters that put :mod:`policy` to work: token verification, HTTP frameworks, storage, clients."""
