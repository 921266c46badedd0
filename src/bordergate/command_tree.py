"""The ``bordergate`` command tree: loaded lazily, with the CLI conventions applied once.

A command's module is imported only when that command runs (or its own
``--help`` is asked for): the root lists each group by name and short help
without importing it (:class:`DeferredCommand`), so ``bordergate --help`` and
``bordergate log checkpoint`` start without importing the gateway, the policy
engine or the auditor.  Every command loaded through here gets the conventions
of :mod:`bordergate.exit_codes`: the exit codes in its ``--help`` (epilog) and
plain help text (Typer's rich help alone costs about 0.13 s to import), plain
conversion of simple values (:mod:`bordergate.command_params`), and the
root command (:class:`BordergateRoot`) reports every error in the common format
with the common exit codes: usage errors (exit 2) as well as a
:class:`~bordergate.errors.BordergateError` or ``OSError`` a command lets escape.

This module must never import a command module at import time.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import typer
from typer import _click
from typer.core import TyperCommand, TyperGroup

from bordergate.command_params import use_plain_conversion
from bordergate.errors import BordergateError
from bordergate.exit_codes import EXIT_CODES_HELP, ExitCode, error_text, exit_code_for, hint_for

__all__ = ["BordergateRoot", "DeferredCommand", "apply_conventions", "walk"]

_USAGE_CODES: Mapping[type[_click.ClickException], str] = {
    _click.exceptions.NoSuchOption: "unknown_option",
    _click.exceptions.MissingParameter: "missing_parameter",
    _click.exceptions.BadParameter: "bad_parameter",
}


class DeferredCommand(TyperCommand):
    """A command or group named ``target`` (``"module:attribute"``: a ``typer.Typer``
    app or a command function) imported only when it is run or walked.

    ``extras`` are further deferred commands added to the group once it is loaded
    (commands of a group that live in other modules).
    """

    def __init__(self, name: str, target: str, short_help: str,
                 extras: Sequence[DeferredCommand] = ()) -> None:
        super().__init__(name=name, short_help=short_help, help=short_help,
                         rich_markup_mode=None)
        self.target = target
        self.extras = tuple(extras)
        self._loaded: _click.Command | None = None

    def load(self) -> _click.Command:
        """The real command, imported and built on first use."""
        if self._loaded is None:
            module_name, _, attribute = self.target.partition(":")
            found = getattr(importlib.import_module(module_name), attribute)
            if isinstance(found, typer.Typer):
                command: _click.Command = typer.main.get_group(found)
            else:
                single = typer.Typer()
                single.command(self.name)(found)
                command = typer.main.get_command(single)
            command.name = self.name
            # only the root offers shell completion
            command.params = [p for p in command.params
                              if p.name not in ("install_completion", "show_completion")]
            if isinstance(command, TyperGroup):
                for extra in self.extras:
                    command.add_command(extra)
            apply_conventions(command)
            self._loaded = command
        return self._loaded

    def make_context(self, info_name: str | None, args: list[str],
                     parent: _click.Context | None = None, **extra: Any) -> _click.Context:
        """Parse with the real command: the context returned names it, not this stand-in."""
        return self.load().make_context(info_name, args, parent=parent, **extra)


def apply_conventions(command: _click.Command) -> None:
    """Give ``command`` and everything loaded below it the exit codes in ``--help``,
    plain help text and plain value conversion (idempotent; deferred commands get
    theirs when they load)."""
    for _, found in _children(command, load=False):
        if isinstance(found, DeferredCommand):
            continue
        if not found.epilog:
            found.epilog = EXIT_CODES_HELP
        elif "Exit codes" not in found.epilog:  # a command's own epilog comes first
            found.epilog = f"{found.epilog}\n\n{EXIT_CODES_HELP}"
        if isinstance(found, (TyperCommand, TyperGroup)):
            found.rich_markup_mode = None
        help_option = found.get_help_option(_click.Context(found))  # made once, cached
        for param in (*found.params, *([help_option] if help_option else [])):
            use_plain_conversion(param)


def _children(command: _click.Command, *, load: bool, path: tuple[str, ...] = ()
              ) -> Iterator[tuple[tuple[str, ...], _click.Command]]:
    if load and isinstance(command, DeferredCommand):
        command = command.load()
    yield path, command
    if isinstance(command, TyperGroup):
        for name, child in command.commands.items():
            yield from _children(child, load=load, path=(*path, name))


def walk(root: _click.Command) -> Iterator[tuple[tuple[str, ...], _click.Command]]:
    """Every command and group below ``root`` with its path (deferred ones loaded)."""
    return _children(root, load=True)


class BordergateRoot(TyperGroup):
    """The root group: conventions on its own commands, and one error format.

    ``main`` reports a usage error (exit 2), and a ``BordergateError`` or
    ``OSError`` no command caught, in the format of :mod:`bordergate.exit_codes`.
    """

    groups: Sequence[DeferredCommand] = ()  # listed first, loaded when run

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = {**{g.name: g for g in self.groups if g.name}, **self.commands}
        self.rich_markup_mode = None
        apply_conventions(self)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        """Run the command line; exit (or, not standalone, return) with the common code."""
        code = self._run(args, prog_name or "bordergate", complete_var, windows_expand_args,
                         extra)
        if standalone_mode:
            sys.exit(code)
        return code

    def _run(self, args: Sequence[str] | None, prog_name: str, complete_var: str | None,
             windows_expand_args: bool, extra: dict[str, Any]) -> int:
        apply_conventions(self)  # Typer adds the completion options after __init__
        try:
            result = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                  standalone_mode=False,
                                  windows_expand_args=windows_expand_args, **extra)
        except _click.exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.format_message(), err=True)
            return int(ExitCode.USAGE)
        except _click.exceptions.UsageError as exc:
            _print_usage_error(exc)
            return int(ExitCode.USAGE)
        except _click.ClickException as exc:  # e.g. a file option click could not open
            typer.echo(error_text("io_error", exc.format_message(),
                                  hint_for(OSError())), err=True)
            return int(ExitCode.UNAVAILABLE)
        except typer.Abort:
            typer.echo("aborted", err=True)
            return int(ExitCode.REFUSED)
        except (BordergateError, OSError) as exc:
            code = exc.code if isinstance(exc, BordergateError) else "io_error"
            typer.echo(error_text(code, str(exc), hint_for(exc)), err=True)
            return int(exit_code_for(exc))
        return result if isinstance(result, int) else int(ExitCode.OK)


def _print_usage_error(exc: _click.exceptions.UsageError) -> None:
    code = next((c for kind, c in _USAGE_CODES.items() if isinstance(exc, kind)), "usage")
    where = exc.ctx.command_path if exc.ctx is not None else "bordergate"
    typer.echo(error_text(code, exc.format_message(), f"see '{where} --help'"), err=True)
