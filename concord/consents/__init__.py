"""Consents: what a patient agreed (or refused) to share, with whom, for what, and for how long
(FHIR Consent, R4; 42 CFR Part 2 § 2.31 for substance-use treatment records)."""
