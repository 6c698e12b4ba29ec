"""API keys (only their SHA-256 is stored) and a per-key token-bucket rate limit."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time

KEY_PREFIX = "kn-"


def new_secret() -> str:
    """A fresh API key: a prefix people can recognise and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: str) -> str:
    """The stored form of a key: hex SHA-256 (keys are long random strings, so no salt or stretching)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def bearer_token(header: str | None) -> str | None:
    """The key in an `Authorization: Bearer KEY` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class RateLimiter:
    """Token bucket per key: `rate` requests a second on average, bursts of up to `burst`."""

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, last refill time)
        self._lock = threading.Lock()

    def allow(self, key_id: str) -> float:
        """Take a token; returns 0 when allowed, else the seconds until one is free."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key_id] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / self.rate
