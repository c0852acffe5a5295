"""Run a plain training script inside an MLflow run with autologging switched on.

``python -m mlops_actions.bootstrap [--autolog|--no-autolog] SCRIPT [ARGS...]``: the run to
attach to comes from ``MLFLOW_RUN_ID`` (set by the train stage), so ``mlflow.start_run()`` in
the script resumes it instead of opening a second one. The script's folder comes first on
``sys.path``, as ``python SCRIPT`` would put it, so the script imports its own modules.
"""

from __future__ import annotations

import os
import runpy
import sys


def main(argv: list[str]) -> None:
    autolog = True
    if argv and argv[0] in ("--autolog", "--no-autolog"):
        autolog = argv.pop(0) == "--autolog"
    script = argv[0]
    sys.argv = argv
    # as `python SCRIPT` does: the script's own folder first (this file's folder is not the user's)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    if autolog:
        import mlflow

        mlflow.autolog(log_input_examples=True, log_model_signatures=True, silent=True)
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
