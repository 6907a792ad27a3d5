"""The ``embedclf`` command line: parsing only; every command delegates to the Python API."""

from __future__ import annotations

import sys

import typer

from embedclf.errors import EmbedclfError

app = typer.Typer(name="embedclf", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  rich_markup_mode=None,
                  help="Text classification on cached sentence embeddings: encode once, fit many heads.")


def _register() -> None:
    from embedclf.cli import encode  # noqa: F401  (commands register themselves on ``app``)
    from embedclf.cli import classify, cooccur, finetune  # noqa: F401


def main() -> None:
    _register()
    try:
        app(standalone_mode=False)
    except EmbedclfError as exc:
        print(f"embedclf: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("embedclf: interrupted; everything already encoded stays cached", file=sys.stderr)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise
