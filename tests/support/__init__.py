"""Test-support code shared by the gateway's test suites (real servers, no mocks)."""
