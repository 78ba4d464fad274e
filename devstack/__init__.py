"""The whole stack as local processes: Redis, API, worker and Flower.

`make run` uses it to start everything on one machine (`python -m devstack`); the tests use the
same code to start throwaway stacks they can kill and restart. No Docker, no cluster.
"""
