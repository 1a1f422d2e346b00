"""CEL rule layer."""
