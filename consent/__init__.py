"""Consent and disclosure: Consent resources, the decision engine, security labelling.

The pure modules (no I/O): `engine` (who may see which record), `policy` (jurisdiction
policies as a settings file), `parse` and `validation` (FHIR R4 Consent to rules),
`labels` (sensitivity labels from coded content).
"""
