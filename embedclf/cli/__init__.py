"""The ``embedclf`` command line: parsing only; every command builds settings and calls one API function.

``main`` is the one place that turns failures into exit statuses: a usage error prints click's short
usage message (exit 2), an ``EmbedclfError`` one ``embedclf: error: ...`` line (exit 2), Ctrl-C one
line (exit 130), even one that Python would have lost in a finaliser. Anything else is a bug and keeps its
traceback. typer vendors click as ``typer._click``: its exceptions are the ones raised here, not the separate
``click`` package's.
"""

from __future__ import annotations

import _thread
import sys
import threading
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


class _LostInterrupts:
    """Catches the Ctrl-C that Python cannot raise: one that lands while a weakref callback or finaliser runs
    (garbage collection can start one anywhere) is printed as "Exception ignored", traceback and all, and the
    command carries on. This raises it again in the main thread, where it ends the command as any Ctrl-C does;
    ``seen`` still says so where it cannot be raised again (SIGINT not Python's to handle)."""

    def __init__(self) -> None:
        self.seen = False
        self._timers: list[threading.Timer] = []

    def __enter__(self) -> _LostInterrupts:
        self._previous, sys.unraisablehook = sys.unraisablehook, self._hook
        return self

    def __exit__(self, *exc_info) -> None:
        sys.unraisablehook = self._previous
        for timer in self._timers:  # the command has ended: nothing is left to interrupt
            timer.cancel()

    def _hook(self, unraisable) -> None:
        if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
            self.seen = True
            # from another thread, a moment later: raised now, it would land in this hook and be lost again
            timer = threading.Timer(0.05, _thread.interrupt_main)
            timer.daemon = True
            timer.start()
            self._timers.append(timer)
        else:
            self._previous(unraisable)


def main() -> None:
    _register()
    with _LostInterrupts() as lost:
        _run(lost)


def _run(lost: _LostInterrupts) -> None:
    try:
        code = app(standalone_mode=False)  # typer turns Ctrl-C into a returned 130, and typer.Exit into its code
        if code == INTERRUPTED or lost.seen:
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
