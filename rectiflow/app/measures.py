"""The Engine's measures concern: the measures of a case's plan and their evidence."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import stat
from pathlib import Path

from loguru import logger

from rectiflow.app.cases import Cases
from rectiflow.engine import history
from rectiflow.engine import text as limits
from rectiflow.engine.errors import (
    EvidenceChanged,
    NotFound,
    TransitionRejected,
    ValidationError,
)
from rectiflow.engine.permissions import authorize
from rectiflow.engine.types import Measure


class Measures(Cases):
    """Measures: added by the owner while a case is open, completed with evidence."""

    def add_measure(
        self,
        case_id: int,
        actor: str,
        text: str,
        *,
        due: dt.date | dt.datetime | None = None,
        expect_version: int | None = None,
        now: dt.datetime | None = None,
    ) -> Measure:
        """Add a measure to an open case (role from the workflow's ``add_measure``); its
        history entry (``measure_added``) records its id, text and due date at ``now``."""
        now = self._now(now)
        if not text.strip():
            raise ValidationError("a measure needs a text")
        limits.check("measure", text.strip())
        due_at = self._end_of(due) if due is not None else None
        if due_at is not None and due_at <= now:
            raise ValidationError(f"due date {due} is not in the future")
        with self.store.case_tx(case_id) as tx:
            case, spec = self._unfinished(tx, expect_version, "add_measure")
            authorize(tx.actor(actor), actor, spec.permissions["add_measure"], case.unit_path,
                      f"add a measure to case {case_id}")  # fmt: skip
            measure = tx.add_measure(text.strip(), actor, due_at)
            data = {
                "measure": measure.id, "text": measure.text, "owner": measure.owner,
                "due": history.value(measure.due),
            }  # fmt: skip
            tx.update({}, self._entry(tx, "measure_added", actor, now, None, data=data))
        logger.bind(case_id=case_id, action="measure").info(
            "case {case_id}: measure {measure} added", case_id=case_id, measure=measure.id
        )
        return measure

    def complete_measure(
        self,
        measure_id: int,
        actor: str,
        *,
        evidence: str | os.PathLike[str] | None = None,
        now: dt.datetime | None = None,
    ) -> Measure:
        """Mark a measure done; evidence is stored as its path and sha256."""
        now = self._now(now)
        found = self.store.get_measure(measure_id)
        if found is None:
            raise NotFound("measure", measure_id)
        path, digest = (None, None) if evidence is None else _evidence(evidence)
        with self.store.case_tx(found.case_id) as tx:
            case, spec = self._unfinished(tx, None, "complete_measure")
            authorize(tx.actor(actor), actor, spec.permissions["complete_measure"], case.unit_path,
                      f"complete measure {measure_id}")  # fmt: skip
            if any(m.id == measure_id and m.done for m in tx.measures()):
                # The first completion's evidence is what the history records.
                raise TransitionRejected(
                    case.id, "complete_measure", case.state, f"measure {measure_id} is already done"
                )
            measure = tx.complete_measure(measure_id, now, path, digest)
            data = {
                "measure": measure_id, "done_at": history.value(now), "evidence_path": path,
                "evidence_sha256": digest,
            }  # fmt: skip
            tx.update({}, self._entry(tx, "measure_done", actor, now, None, data=data))
        logger.bind(case_id=found.case_id, action="measure").info(
            "measure {measure} done", measure=measure_id
        )
        return measure

    def verify_evidence(self, measure_id: int) -> Measure:
        """Hash a done measure's evidence file again: the measure if it still has the stored
        sha256; EvidenceChanged (an IntegrityError) if it does not, NotFound if the file is
        gone, ValidationError if the measure has no evidence."""
        measure = self.store.get_measure(measure_id)
        if measure is None:
            raise NotFound("measure", measure_id)
        if measure.evidence_path is None or measure.evidence_sha256 is None:
            raise ValidationError(f"measure {measure_id} has no evidence file")
        if not os.path.lexists(measure.evidence_path):
            raise NotFound("evidence file", measure.evidence_path)
        _, digest = _evidence(measure.evidence_path)
        if digest != measure.evidence_sha256:
            raise EvidenceChanged(measure, digest)
        return measure


def _evidence(path: str | os.PathLike[str]) -> tuple[str, str]:
    """(the file's path with symlinks resolved, its sha256), read in 1 MiB blocks. Only a
    regular file: a FIFO or a device would block or never end, a folder has no content."""
    file = Path(path)
    digest = hashlib.sha256()
    try:
        resolved = file.resolve(strict=True)
        # O_NONBLOCK: opening a FIFO does not wait for a writer; fstat then refuses it.
        fd = os.open(resolved, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ValidationError(f"evidence {file} is not a regular file")
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise ValidationError(f"cannot read evidence file {file}: {exc.strerror}") from None
    except RuntimeError:  # a symlink loop (Python < 3.13)
        raise ValidationError(f"cannot read evidence file {file}: a symlink loop") from None
    return str(resolved), digest.hexdigest()
