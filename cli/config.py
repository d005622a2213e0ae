"""`sdfb config show --config FILE [--set a.b=value ...]`: print the configuration a run
would use (defaults < YAML < overrides) as YAML, or the error that names the misspelt key.
Starts nothing and imports no Prefect."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from cli.common import config_or_exit

config_app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Inspect run configurations without running anything."
)


@config_app.command("show")
def show(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="YAML recipe (default: the built-in defaults)")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="override a key: --set distill.learning_rate=1e-4")
    ] = None,
) -> None:
    """Print the resolved configuration as YAML: every key, with the defaults filled in."""
    cfg = config_or_exit(config, overrides)
    text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    typer.echo(text, nl=False)  # plain text: it can be piped into a file and used as --config
