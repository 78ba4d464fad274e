"""The schedules' scheduler: `python -m scheduler`, any number of replicas, one firing."""
