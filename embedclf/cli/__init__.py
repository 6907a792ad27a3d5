"""The ``embedclf`` command line: parsing only; every command builds settings and calls one API function.

``main`` is the one place that turns failures into exit statuses: a usage error prints click's short
usage message (exit 2), an ``EmbedclfError`` one ``embedclf: error: ...`` line (exit 2), Ctrl-C one
line (exit 130). Anything else is a bug and keeps its traceback. typer vendors click as
``typer._click``: its exceptions are the ones raised here, not the separate ``click`` package's.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from typer._click import exceptions as click_errors

from embedclf import __version__
from embedclf.errors import EmbedclfError

INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C (128 + SIGINT)
app = typer.Typer(name="embedclf", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Text classification on cached sentence embeddings: encode once, fit many heads.")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"embedclf {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: Annotated[Optional[bool], typer.Option(
        "--version", callback=_show_version, is_eager=True, help="Print the version and exit.")] = None) -> None:
    """Text classification on cached sentence embeddings: encode once, fit many heads."""


def _register() -> None:
    from embedclf.cli import encode  # noqa: F401  (commands register themselves on ``app``)
    from embedclf.cli import classify, cooccur, finetune, serve, sweep  # noqa: F401


def main() -> None:
    _register()
    try:
        code = app(standalone_mode=False)  # typer turns Ctrl-C into a returned 130, and typer.Exit into its code
        if code == INTERRUPTED:
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
    except click_errors.NoArgsIsHelpError as exc:  # a bare ``embedclf`` (or group): the help is the answer
        typer.echo(exc.ctx.get_help() if exc.ctx else str(exc))
        sys.exit(0)
    except click_errors.ClickException as exc:  # usage errors: unknown option or command, a bad value
        exc.show()
        sys.exit(2 if isinstance(exc, click_errors.UsageError) else exc.exit_code)
    except EmbedclfError as exc:
        print(f"embedclf: error: {exc}", file=sys.stderr)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        print("\nembedclf: interrupted; what was already encoded stays cached, and the next run resumes",
              file=sys.stderr)
        sys.exit(INTERRUPTED)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
