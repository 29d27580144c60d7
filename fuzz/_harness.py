"""What the atheris harnesses share: start from a corpus of small valid files, then fuzz."""

import tempfile
from pathlib import Path


def fuzz(argv, check_bytes, seed_files, prefix) -> None:
    """Run atheris on check_bytes; with no corpus folder in argv, seed one in a new temporary folder."""
    import atheris

    if not any(not a.startswith("-") for a in argv[1:]):
        corpus = Path(tempfile.mkdtemp(prefix=prefix))
        seed_files(corpus)
        argv = [*argv, str(corpus)]
    atheris.Setup(argv, check_bytes)
    atheris.Fuzz()
