"""Authentication and authorization: systems, apps, accounts, tokens, the Caller."""
