"""The end-to-end tests, against a running system: e2e/run (loopback harness), e2e/test --cluster."""
