"""Sessions, rate limits and quotas, counted in the store."""
