"""``snapsr serve``: a local web app for the dial (``session.py``: what it does; ``ui.py``: the page)."""
