"""Translation: Babel catalogs (es_MX, en_US), locale negotiation and formatting."""
