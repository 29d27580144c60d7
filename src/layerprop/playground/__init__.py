"""The layerprop playground: the book's SGD and Backpropagation live in the browser.

A Starlette app with one websocket per page (``server.py``) around a :class:`~.session.Session`
(``session.py``), which computes every number with the same library; the front end in
``static/`` only draws. Start it with :func:`serve` (``layerprop playground`` on the command line).
Needs the ``playground`` extra: ``pip install 'layerprop[playground]'``.

In Jupyter, :class:`PlaygroundWidget` (``widget.py``) shows the same front end as a widget around
the same Session; it needs ``anywidget`` and is imported only when first used.
"""

__all__ = ["create_app", "serve", "PlaygroundWidget"]


def __getattr__(name):
    # imported when first used: the server needs starlette and uvicorn, the widget anywidget
    if name in ("create_app", "serve"):
        from . import server

        return getattr(server, name)
    if name == "PlaygroundWidget":
        from .widget import PlaygroundWidget

        return PlaygroundWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
