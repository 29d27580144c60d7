"""``python -m layerprop``: the same as the ``layerprop`` command."""

from .cli import main

if __name__ == "__main__":
    main()
