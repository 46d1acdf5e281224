"""The benchmark scripts; the selftests import their modules as `bench.<module>`."""
