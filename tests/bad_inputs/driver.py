"""Run many ``cd7escape`` command lines in one Python process, as the console script would.

``python driver.py jobs.json results.json``: ``jobs.json`` is a list of ``{"id": ..., "argv": [...]}``;
each job calls :func:`cd7escape.cli.main` (the entry point of ``python -m cd7escape.cli``) with that
argv, capturing its exit code and stderr. An exception escaping ``main`` is recorded as the interpreter
would print it (a ``Traceback`` and exit code 1). Importing the package once for the whole corpus keeps
the test fast; ``tests/bad_inputs/test_bad_inputs.py`` also runs a few cases as separate processes.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import traceback


def run_one(argv: list[str]) -> dict:
    from cd7escape.cli import main

    logger = logging.getLogger("cd7escape")
    before = list(logger.handlers)
    err, out = io.StringIO(), io.StringIO()
    code = 0
    sys.argv = ["cd7escape", *argv]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # what python would print and exit with
            err.write(traceback.format_exc())
            code = 1
    for handler in logger.handlers[:]:
        if handler not in before:
            logger.removeHandler(handler)
    return {"code": code, "stderr": err.getvalue(), "stdout": out.getvalue()}


def main() -> None:
    jobs_file, results_file = sys.argv[1:3]
    with open(jobs_file, encoding="utf-8") as fh:
        jobs = json.load(fh)
    results = {job["id"]: run_one(job["argv"]) for job in jobs}
    with open(results_file, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
