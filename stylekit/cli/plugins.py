"""`stylekit plugins`: list every registered component, or scaffold a plugin package (`new`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .app import PluginOption, ReadableHelpGroup, app, console, err_console, options_text


plugins_app = typer.Typer(cls=ReadableHelpGroup, help="List every registered component (kind, name, source, "
                          "options) or, with `new`, scaffold a plugin package.", invoke_without_command=True)
app.add_typer(plugins_app, name="plugins")


@plugins_app.callback()
def plugins_list(ctx: typer.Context, plugin: Optional[List[str]] = PluginOption) -> None:
    """List every registered component: kind, name, source and options."""
    if ctx.invoked_subcommand is not None:
        return
    from ..plugins import get_plugin_manager

    manager = get_plugin_manager(plugin or [])
    table = Table(title="stylekit components")
    for column in ("kind", "name", "source", "summary", "options (defaults)"):
        table.add_column(column, overflow="fold")
    for entry in manager.registry:
        table.add_row(entry.kind, entry.name, entry.source, entry.cls.summary(), options_text(entry.cls.Options))
    console.print(table)
    for name, message in manager.failures:
        err_console.print(f"[red]plugin {name} failed to load:[/] {message}")


@plugins_app.command("new")
def plugins_new(
    name: str = typer.Argument(..., help="Component name, e.g. edge_loss (package stylekit-edge-loss)."),
    kind: str = typer.Option("loss", "--kind", "-k", help="loss, backbone or depth."),
    output: Path = typer.Option(Path("."), "--output", "-o", help="Folder in which the package folder is created."),
    force: bool = typer.Option(False, "--force", help="Write into an existing, non-empty package folder."),
) -> None:
    """Scaffold a ready-to-install plugin package (pyproject, module, test, recipe, README)."""
    from ..scaffold import scaffold

    target = scaffold(name, kind, output, force=force)
    console.print(f"Created [bold]{target}[/]:")
    for path in sorted(p for p in target.rglob("*") if p.is_file()):
        console.print(f"  {path.relative_to(target)}")
    console.print(f"Next: cd {target} && python -m pytest -q && pip install -e . && stylekit plugins")


