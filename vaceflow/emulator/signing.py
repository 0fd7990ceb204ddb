"""Signed, expiring result URLs like the service's OSS links (`?Expires=&Signature=`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

__all__ = ["Signer"]


class Signer:
    """HMAC-SHA1 over `path` and expiry with a key that never leaves the process."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, path: str, expires: int) -> str:
        mac = hmac.new(self._secret, f"{path}\n{expires}".encode(), hashlib.sha1).digest()
        return base64.b64encode(mac).decode()

    def url(self, root: str, path: str, expires: int) -> str:
        signature = quote(self.sign(path, expires), safe="")
        return f"{root}{path}?Expires={expires}&Signature={signature}"

    def verify(self, path: str, expires: int, signature: str) -> bool:
        return hmac.compare_digest(self.sign(path, expires), signature)
