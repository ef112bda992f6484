"""Mermaid ``stateDiagram-v2`` text for a workflow, with zh or en labels."""

from __future__ import annotations

from rectiflow.engine.errors import UsageError
from rectiflow.engine.spec import WorkflowSpec


def mermaid(spec: WorkflowSpec, lang: str = "zh") -> str:
    if lang not in ("zh", "en"):
        raise UsageError(f"unknown language {lang!r}: use zh or en")
    lines = ["stateDiagram-v2", f"    %% {spec.name}@{spec.version}: {spec.title[lang]}"]
    for name, state in spec.states.items():
        lines.append(f'    state "{state.labels[lang]}" as {name}')
    lines.append(f"    [*] --> {spec.initial}")
    for t in spec.transitions:
        label = t.trigger
        if t.guards:
            label += f" [{', '.join(t.guards)}]"
        lines.append(f"    {t.source} --> {t.dest}: {label}")
    for name in spec.final_states:
        lines.append(f"    {name} --> [*]")
    return "\n".join(lines) + "\n"
