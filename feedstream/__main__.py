"""``python -m feedstream``: the same CLI as the ``feedstream`` script (works from any checkout)."""

from feedstream.cli import main

main()
