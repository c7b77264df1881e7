"""The one place that turns an error into drctl's exit code and one ``error:`` line.

Every command runs inside ``boundary``: a command raises (``DrctlError``, ``ConfigError``, a
botocore credentials error, a usage error from argument parsing, ...) and the boundary prints one
line on stderr, a ``{"error": {...}}`` document on stdout when the command line has ``--json``,
and exits with the documented code (docs/exit-codes.md). Commands keep no try/except of their own
for reporting. Anything not listed here is a bug: one line naming the exception, exit 70, and
``DRCTL_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import typer
import yaml
from botocore import exceptions as boto

from scripts.common import DrctlError, ExitCode, Failure, print_error, print_json


def _typer_class(name: str) -> type[BaseException]:
    # Typer vendors click from 0.2x on (typer._click), older releases use click itself: take the
    # class from the public typer.BadParameter's bases, whichever click that is.
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


UsageError = _typer_class("UsageError")
ClickException = _typer_class("ClickException")


def wants_json(argv: Sequence[str]) -> bool:
    """``--json`` among the options (not after ``--``)."""
    argv = list(argv)
    if "--" in argv:
        argv = argv[: argv.index("--")]
    return "--json" in argv


def error_document(message: str, code: ExitCode) -> dict[str, Any]:
    """The JSON every ``--json`` command prints on failure: one shape for all of them."""
    return {"error": {"code": int(code), "name": code.name.lower(), "message": message}}


_PATH_ERRORS = FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError
_AWS_REFUSED = {"AccessDenied", "AccessDeniedException", "ExpiredToken", "InvalidClientTokenId"}


def _classify(err: BaseException) -> tuple[str, ExitCode] | None:
    """(one-line message, exit code) of a known error; None for an unknown one."""
    from components.objectives import ConfigError

    if isinstance(err, DrctlError):
        return str(err), err.code
    if isinstance(err, ConfigError):
        return str(err), ExitCode.INVALID_CONFIG
    if isinstance(err, UsageError):
        command = err.ctx.command_path if err.ctx is not None else "drctl"
        return f"{command}: {err.format_message()} (see {command} -h)", ExitCode.INVALID_CONFIG
    if isinstance(err, ClickException):
        return err.format_message(), ExitCode.INVALID_CONFIG
    if isinstance(err, KeyboardInterrupt | typer.Abort):
        return "interrupted", ExitCode.INTERRUPTED
    aws = _classify_aws(err)
    if aws is not None:
        return aws
    if isinstance(err, json.JSONDecodeError):
        return f"not valid JSON: {err.msg} (line {err.lineno} column {err.colno})", (
            ExitCode.INVALID_CONFIG
        )
    if isinstance(err, _PATH_ERRORS):
        return f"{err.filename or ''}: {err.strerror or err}", ExitCode.INVALID_CONFIG
    if isinstance(err, yaml.YAMLError):
        return f"not valid YAML: {err}", ExitCode.INVALID_CONFIG
    return None


def _classify_aws(err: BaseException) -> tuple[str, ExitCode] | None:
    credentials = (
        boto.NoCredentialsError,
        boto.PartialCredentialsError,
        boto.CredentialRetrievalError,
        boto.TokenRetrievalError,
        boto.SSOTokenLoadError,
        boto.UnauthorizedSSOTokenError,
    )
    if isinstance(err, credentials):
        return (
            f"no usable AWS credentials ({err}); set AWS_PROFILE or run `aws configure`",
            ExitCode.PRECONDITION_FAILED,
        )
    if isinstance(err, boto.NoRegionError):
        return f"{err}; pass --region or set AWS_REGION", ExitCode.PRECONDITION_FAILED
    if isinstance(err, boto.EndpointConnectionError):
        return f"AWS unreachable: {err}", ExitCode.PRECONDITION_FAILED
    if isinstance(err, boto.ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        if code in _AWS_REFUSED:
            return f"AWS refused: {err}", ExitCode.PRECONDITION_FAILED
        return f"AWS error: {err}", ExitCode.STEP_FAILED
    return None


def report(message: str, code: ExitCode, argv: Sequence[str], printed: bool = False) -> None:
    """Print the error (unless ``fail`` already did) and its JSON, then exit with ``code``."""
    if not printed:
        print_error(message)
    if wants_json(argv):
        print_json(error_document(" ".join(message.splitlines()), code))
    raise SystemExit(int(code))


@contextlib.contextmanager
def boundary(argv: Sequence[str]) -> Iterator[None]:
    """Run a command; every error leaves as one line and its exit code (see the module doc)."""
    try:
        yield
    except (typer.Exit, BrokenPipeError):
        raise  # --help, --version: not errors; a closed pipe: Typer exits quietly
    except Failure as failure:  # fail() printed its line already
        report(failure.message, failure.exit_code, argv, printed=True)
    except SystemExit:
        raise  # a command's own verdict (e.g. 1: an objective is not met)
    except UsageError as err:
        if type(err).__name__ == "NoArgsIsHelpError":  # `drctl config`: the help was printed
            raise SystemExit(int(ExitCode.INVALID_CONFIG)) from None
        report(*_classify(err), argv)
    except BaseException as err:  # noqa: B036 (KeyboardInterrupt too: one line and 130)
        known = _classify(err)
        if known is None:
            if os.environ.get("DRCTL_DEBUG"):
                raise
            known = (
                f"internal error ({type(err).__name__}: {err}); this is a bug in drctl: "
                "DRCTL_DEBUG=1 shows the traceback",
                ExitCode.INTERNAL_ERROR,
            )
        elif os.environ.get("DRCTL_DEBUG") and not isinstance(err, UsageError):
            raise
        report(*known, argv)
