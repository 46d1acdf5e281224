"""The fault tests, on the harness of e2e/run --faults: processes stopped, killed, paused, restarted."""
