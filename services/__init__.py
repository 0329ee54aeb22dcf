"""The six Shopkeeper services; each is run as `python -m services.<name>`."""
