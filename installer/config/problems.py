"""Problems found in the user's files: collected all at once, printed one per line, exit code 2.

Every problem names the file (with line:column when known), the key path and a fix, so an operator
can act on each line without reading code.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from installer.errors import ConfigError

ERROR = "error"
WARNING = "warning"


# A problem line may carry keys and values from hostile files (a 1 MB key, a pasted secret, a newline
# that would forge a second problem line): each part is cut to a bound and kept on one line. Values are
# previewed shorter where they are quoted (installer/config/addresses.py preview); this is the net.
MAX_KEY = 200
MAX_MESSAGE = 500
MAX_FIX = 1000


def one_line(text: str, limit: int) -> str:
    """`text` with control characters escaped (\\n, \\x1b), cut to `limit` characters plus '...'."""
    cut = text[: limit + 1]
    if cut.isprintable() and len(cut) <= limit:
        return cut
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in cut)
    return shown[:limit] + ("..." if len(text) > limit or len(shown) > limit else "")


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in the input, with where it is and how to fix it."""

    file: str
    key: str
    message: str
    fix: str
    severity: str = ERROR
    line: int | None = None
    column: int | None = None
    rule: str | None = None  # the id of its row in installer/config/refusals.py, when it has one

    def where(self) -> str:
        if self.line is None:
            return self.file
        return f"{self.file}:{self.line}:{self.column or 1}"

    def render(self) -> str:
        key = f" {self.key}:" if self.key else ""
        return f"{self.severity}: {self.where()}:{key} {self.message}. Fix: {self.fix}"

    def as_dict(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "key": self.key,
            "message": self.message,
            "fix": self.fix,
            "rule": self.rule,
        }


@dataclass
class Problems:
    """An accumulator: checks add to it, and `raise_if_errors` stops before anything is touched."""

    items: list[Problem] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        problem = replace(problem, key=one_line(problem.key, MAX_KEY), message=one_line(problem.message, MAX_MESSAGE),
                          fix=one_line(problem.fix, MAX_FIX))
        if problem not in self.items:
            self.items.append(problem)

    def error(self, file: str, key: str, message: str, fix: str, **where: int | None) -> None:
        self.add(Problem(file, key, message, fix, ERROR, where.get("line"), where.get("column")))

    def warn(self, file: str, key: str, message: str, fix: str, **where: int | None) -> None:
        self.add(Problem(file, key, message, fix, WARNING, where.get("line"), where.get("column")))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == WARNING]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise InvalidConfig(self.items)


class InvalidConfig(ConfigError):
    """Raised with every problem found; the CLI prints each on its own line and exits 2."""

    def __init__(self, problems: list[Problem]) -> None:
        errors = [p for p in problems if p.severity == ERROR]
        super().__init__(f"{len(errors)} problem(s) in the configuration")
        self.problems = problems

    def lines(self) -> list[str]:
        return [p.render() for p in self.problems]
