"""Two releases of one team's task, for the rolling-update test (tests/test_rolling_update.py):
`new` adds an argument that `old` does not accept."""
