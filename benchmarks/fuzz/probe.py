"""Parse-only probe of the fuzz campaign: load a data table the way ``carkinetics fit`` does.

    python benchmarks/fuzz/probe.py data MODEL CSV

Prints the dataset summary (exit 0) or ``Error: ...`` (exit 1) for an input error, exactly as
the command line does; any other exception is left to print its traceback (a finding).
"""

import sys


def main(argv):
    from carkinetics.errors import CarKineticsError

    kind, *rest = argv
    try:
        if kind == "data":
            from carkinetics.scenario.data import load_data
            from carkinetics.model.load import load_model

            model, path = rest
            ds = load_data(path, load_model(model))
            print(f"{path}: {ds.summary()}")
        else:
            raise SystemExit(f"unknown probe {kind!r}")
    except CarKineticsError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
