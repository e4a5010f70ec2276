"""Puente: the shell (settings, database, FHIR plumbing, auth, audit, tasks, CLI)."""

__version__ = "0.1.0"
