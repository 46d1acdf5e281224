"""Unit tests of the harness's own tools (make offline): e2elib, e2e/trace, the benchmark's parsing."""
