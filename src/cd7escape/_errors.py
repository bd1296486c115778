"""Errors that mean "the input is wrong" (exit code 2) rather than "we have a bug" (exit code 1)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Problem:
    """One thing wrong with the user's input, named precisely enough to fix it."""

    message: str
    field: str | None = None
    file: str | None = None
    sample: str | None = None

    def __str__(self) -> str:
        where = [
            f"{k}={v}"
            for k, v in (("sample", self.sample), ("field", self.field), ("file", self.file))
            if v
        ]
        return f"[{', '.join(where)}] {self.message}" if where else self.message


@dataclass
class InputError(Exception):
    """Bad input or configuration. Carries every problem found, not just the first."""

    problems: list[Problem] = field(default_factory=list)

    @classmethod
    def single(cls, message: str, **where: str | None) -> InputError:
        return cls([Problem(message, **where)])

    def __str__(self) -> str:
        return "\n".join(f"  - {p}" for p in self.problems)
