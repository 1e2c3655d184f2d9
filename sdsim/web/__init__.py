"""The interactive page (``simulate.py serve``): a JSON service over the engine and one static page."""
