"""``python -m rectiflow``: the same as the ``rectiflow`` command."""

from rectiflow.cli import main

if __name__ == "__main__":
    main()
