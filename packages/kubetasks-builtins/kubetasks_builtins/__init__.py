"""The built-in tasks, registered through the `kubetasks.tasks` entry point like any team's."""

from kubetasks_builtins import arithmetic, flaky, primes, sleep, thumbnail

__all__ = ["arithmetic", "flaky", "primes", "sleep", "thumbnail"]
