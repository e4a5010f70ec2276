"""The demo scenario, loaded through the same service functions as real data."""
