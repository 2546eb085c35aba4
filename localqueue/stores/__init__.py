"""Built-in stores. Each module registers its URL scheme as a plugin."""
