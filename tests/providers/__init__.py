"""Provider adapters: fixture replay, faults and the retry layer, against a fake provider on loopback."""
