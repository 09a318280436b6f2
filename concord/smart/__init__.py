"""SMART App Launch 2.x: registered apps, authorization, tokens and the scopes that narrow
what a token may read on /fhir (docs/smart.md)."""
