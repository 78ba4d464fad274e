"""Task implementations, one module each; importing this package registers them all."""

from worker.tasks import flaky, primes, sleep, thumbnail

__all__ = ["flaky", "primes", "sleep", "thumbnail"]
