"""The ``carkinetics`` command line: parse, call the library, print."""
