"""`sgl components`: the catalogue with each component's fields, from its config model."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from sgl import registry


def _type_name(annotation: object) -> str:
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("pathlib.", "")


def print_components(console: Console, kind: str | None = None) -> None:
    for entry in registry.entries(kind):
        key = registry.KINDS[entry.kind].key
        console.print(f"[bold]{entry.kind}[/bold] {key}: [bold cyan]{entry.name}[/bold cyan]  {entry.doc}")
        table = Table(show_header=True, box=None, padding=(0, 2, 0, 4))
        for column in ("field", "type", "default", "description"):
            table.add_column(column)
        for name, field in entry.config.model_fields.items():
            if name == key:
                continue
            default = "required" if field.is_required() else repr(field.get_default(call_default_factory=True))
            table.add_row(name, _type_name(field.annotation), default, field.description or "")
        console.print(table)
        console.print()
