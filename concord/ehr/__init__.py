"""Data an EHR sends (issue 20): FHIR resources imported by an integration client, matched to
Concord's patients by identifier, kept as sent, read through the same access and disclosure
decisions as Concord's own records."""
