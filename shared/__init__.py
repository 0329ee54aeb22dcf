"""Shopkeeper's shared library: contracts and plumbing every service imports, never business rules."""
