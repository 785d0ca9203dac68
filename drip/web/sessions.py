"""The readers' and operators' session: Flask's signed cookie, same format, keys and
signature, cheaper to read and write (a sign-up post does both: the CSRF token is read, the
address signed up with is written; bench/PROFILE.md, "Sign-up").

- The serializer (keys, salt, signer) is made once per set of keys, where Flask makes one
  for every read and every write.
- SHA-1 is handed to the signer as hashlib's own constructor: Flask's lazy wrapper is a
  Python function, which sends `hmac` down its pure-Python path (twice per read or write:
  the key derivation, then the signature). The bytes signed are the same.
- The payload is not compressed: a session is a CSRF token and a few short fields, which
  zlib barely shrinks. Compressed cookies read as before (itsdangerous tells them by their
  leading dot).
"""

from __future__ import annotations

import hashlib

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer
from itsdangerous.encoding import base64_encode
from itsdangerous.serializer import Serializer


class _Uncompressed(URLSafeTimedSerializer):
    def dump_payload(self, obj: object) -> bytes:
        return base64_encode(Serializer.dump_payload(self, obj))  # past the zlib step


class CookieSessions(SecureCookieSessionInterface):
    """Flask's cookie sessions with the serializer made once per set of keys."""

    def __init__(self) -> None:
        self._made: tuple[tuple[object, ...], URLSafeTimedSerializer] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if not app.secret_key:
            return None
        keys = [*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key]  # signer last
        if self._made is None or self._made[0] != tuple(keys):
            serializer = _Uncompressed(
                keys,
                salt=self.salt,
                serializer=self.serializer,
                signer_kwargs={
                    "key_derivation": self.key_derivation,
                    "digest_method": hashlib.sha1,
                },
            )
            self._made = (tuple(keys), serializer)
        return self._made[1]


def init_app(app: Flask) -> None:
    app.session_interface = CookieSessions()
