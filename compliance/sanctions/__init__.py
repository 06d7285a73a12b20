"""OFAC sanctions screening: EVM wallet addresses and fuzzy names, with list versions and a maximum age per list."""
