"""Errors the command line turns into one sentence and an exit code."""

from __future__ import annotations


class RxauditError(Exception):
    """An expected failure: printed as one sentence, never as a traceback."""

    exit_code = 1


class UsageError(RxauditError):
    exit_code = 2


class DatabaseUnavailable(RxauditError):
    exit_code = 4


class BatchRejected(RxauditError):
    """A batch refused whole. The message never quotes a value from the batch.

    ``where`` names the file, line and column when they are known.
    """

    exit_code = 3

    def __init__(
        self,
        reason: str,
        *,
        batch_id: str | None = None,
        file: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.reason = reason
        self.batch_id = batch_id
        self.file = file
        self.line = line
        self.column = column
        self.folder: str | None = None
        super().__init__(self.sentence())

    def where(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.column:
            parts.append(f"column {self.column}")
        return " ".join(parts)

    def sentence(self) -> str:
        if self.batch_id:
            batch = f"batch {self.batch_id}"
        elif self.folder:
            batch = f"batch folder {self.folder}"
        else:
            batch = "batch"
        where = self.where()
        return f"{batch} rejected: {where + ': ' if where else ''}{self.reason}"

    def in_folder(self, folder: str) -> BatchRejected:
        """Name the folder when the batch's id is not known (no manifest)."""
        self.folder = folder
        self.args = (self.sentence(),)
        return self

    def with_batch(self, batch_id: str) -> BatchRejected:
        if self.batch_id is None:
            self.batch_id = batch_id
            self.args = (self.sentence(),)
        return self
