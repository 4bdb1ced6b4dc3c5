"""CLI commands, one module each; app.py registers them."""
