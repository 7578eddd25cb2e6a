"""`python -m server.cli`: how Litestream starts the server as its subprocess."""

from . import main

if __name__ == "__main__":
    main()
