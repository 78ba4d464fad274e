"""The built-in tasks, registered through the `kubetasks.tasks` entry point like any team's."""

from kubetasks_builtins import flaky, primes, sleep, thumbnail

__all__ = ["flaky", "primes", "sleep", "thumbnail"]
