"""``python -m rfmml``: the ``rfmml`` command (see :mod:`rfmml.cli`)."""

from rfmml.cli import main

if __name__ == "__main__":  # pragma: no cover
    main(prog_name="rfmml")
