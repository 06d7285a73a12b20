"""Recoverable secp256k1 signatures made with the GIL held: coincurve's own libsecp256k1, called through ctypes.

coincurve calls libsecp256k1 through cffi, and cffi releases the GIL around every C call: a signature is two releases
(``secp256k1_ecdsa_sign_recoverable``, ``…_serialize_compact``). On the API's event loop each release lets a worker
thread that waits for the GIL (a write, the caller's key, the screening) take it, and the loop then waits until that
thread blocks or the switch interval (5 ms) passes: under load the loop spent ~9% of its time in ``sign_recoverable``
against ~1.5% of CPU (py-spy, all threads, concurrency 10). A signature is ~30 µs of CPU, too short to gain anything
from running beside another thread. Here the same two functions of the same library (the extension module coincurve
built, which exports libsecp256k1's API) are called through ``ctypes.PyDLL``, whose calls keep the GIL, with the
signing key's coincurve context and the default nonce function (RFC 6979): the same 65 bytes, ``r ‖ s ‖ recovery
id``, as ``coincurve.PrivateKey.sign_recoverable(digest, hasher=None)`` (the unit tests compare them). Where the
library cannot be loaded that way, coincurve signs."""

from __future__ import annotations

import ctypes

import coincurve
from coincurve import _libsecp256k1

_ffi = _libsecp256k1.ffi


def _library() -> tuple[ctypes._CFuncPtr, ctypes._CFuncPtr] | None:  # type: ignore[name-defined]
    """libsecp256k1's recoverable signing and its serialization as ctypes functions that keep the GIL, or None."""
    try:
        library = ctypes.PyDLL(_libsecp256k1.__file__)
        sign = library.secp256k1_ecdsa_sign_recoverable
        serialize = library.secp256k1_ecdsa_recoverable_signature_serialize_compact
    except (OSError, AttributeError):  # pragma: no cover - a coincurve built without the exported API
        return None
    # int secp256k1_ecdsa_sign_recoverable(const secp256k1_context *ctx, secp256k1_ecdsa_recoverable_signature *sig,
    #     const unsigned char *msghash32, const unsigned char *seckey, secp256k1_nonce_function noncefp,
    #     const void *ndata)
    pointer, text = ctypes.c_void_p, ctypes.c_char_p
    sign.argtypes = (pointer, text, text, text, pointer, pointer)
    sign.restype = ctypes.c_int
    # int secp256k1_ecdsa_recoverable_signature_serialize_compact(const secp256k1_context *ctx,
    #     unsigned char *output64, int *recid, const secp256k1_ecdsa_recoverable_signature *sig)
    serialize.argtypes = (ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_char_p)
    serialize.restype = ctypes.c_int
    return sign, serialize


_FUNCTIONS = _library()
#: secp256k1_ecdsa_recoverable_signature is 65 opaque bytes (secp256k1_recovery.h)
_SIGNATURE_STRUCT = 65


class RecoverableSigner:
    """Signs 32-byte digests with one key: ``r ‖ s ‖ recovery id`` (65 bytes), as coincurve's ``sign_recoverable``
    with ``hasher=None``, the GIL held throughout."""

    __slots__ = ("_context", "_ctx", "_key", "_secret")

    def __init__(self, key: coincurve.PrivateKey) -> None:
        self._key = key
        self._secret = bytes(key.secret)
        self._context = key.context  # kept alive with its pointer
        self._ctx = int(_ffi.cast("uintptr_t", key.context.ctx))

    @property
    def holds_gil(self) -> bool:
        """Whether signatures are made with the GIL held (else coincurve signs)."""
        return _FUNCTIONS is not None

    def sign(self, digest: bytes) -> bytes:
        if _FUNCTIONS is None or not isinstance(digest, bytes) or len(digest) != 32:
            return self._key.sign_recoverable(digest, hasher=None)  # its checks and errors
        sign, serialize = _FUNCTIONS
        signature = ctypes.create_string_buffer(_SIGNATURE_STRUCT)
        if not sign(self._ctx, signature, digest, self._secret, None, None):
            raise ValueError("The nonce generation function failed, or the private key was invalid.")
        output = ctypes.create_string_buffer(64)
        recovery = ctypes.c_int()
        serialize(self._ctx, output, ctypes.byref(recovery), signature)
        return output.raw + bytes([recovery.value])
