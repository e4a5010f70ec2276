"""Exchange: the FHIR resource store, hospital data ownership, (later) matching."""
