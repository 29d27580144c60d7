"""The layerprop playground: the book's SGD and Backpropagation live in the browser.

A Starlette app with one websocket per page (``server.py``) around a :class:`~.session.Session`
(``session.py``), which computes every number with the same library; the front end in
``static/`` only draws. Start it with :func:`serve` (``layerprop playground`` on the command line).
Needs the ``playground`` extra: ``pip install 'layerprop[playground]'``.
"""

from .server import create_app, serve

__all__ = ["create_app", "serve"]
