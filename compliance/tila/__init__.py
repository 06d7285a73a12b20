"""Truth in Lending (Regulation Z) disclosures: the Appendix J actuarial APR, amortization schedules, and the
disclosure whose canonical-JSON keccak256 is an offer's ``termsHash``."""
