"""The file layer: content-addressed array caches, image and video decoding, lazy ``.npz`` members.

It imports nothing from emoframe but ``emoframe.errors``, so faces/, features/ and data/ all read files
through it without importing each other.
"""
