"""The demo app the demo config wraps."""
