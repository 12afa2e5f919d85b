"""The `rag` command line: argument parsing and printing over the `rag` Python API."""
