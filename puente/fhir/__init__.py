"""FHIR REST plumbing: media types, OperationOutcome, Bundles, search parsing, capabilities."""
