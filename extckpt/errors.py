# SPDX-License-Identifier: GPL-2.0-or-later
"""The one error hierarchy of extckpt.

Every error a user can cause carries two things: a message that says what
went wrong, and a ``hint`` that says what to do next. Each class has an exit
code; the CLI prints ``extckpt: <message>`` and the hint, and exits with it.
Any other exception escaping the API is a bug and shows its traceback.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit statuses of the ``extckpt`` command, defined once here."""

    OK = 0
    DIFFERS = 1  # verify: the image and the process differ
    USAGE = 2  # bad arguments, or a bad/missing image
    NO_SUCH_PROCESS = 3
    PERMISSION = 4
    NOT_PRELOADED = 5  # libckpt.so not loaded or not armed in the target
    MULTI_THREADED = 6
    ALREADY_TRACED = 7
    CHECKPOINT_FAILED = 8  # libckpt reported an error (ckpt_image_done err)
    DEADLINE = 9
    TARGET_EXITED = 10  # the process went away while we worked on it
    INSTALL = 11  # the bundled native files are missing: reinstall
    SELF_CHECK = 12  # libckpt's image failed its own check: not published
    NOT_EXECUTABLE = 126  # run: PROG exists but cannot be executed
    NOT_FOUND = 127  # run: PROG not found (as a shell says)


EXIT_CODE_HELP = """\b
Exit codes:
  0    success (verify: the image agrees with the process)
  1    verify found differences
  2    usage error, or the image is missing, unreadable or corrupt
  3    no such process
  4    permission denied (ptrace or /proc access)
  5    the process does not have libckpt.so loaded and armed
  6    the process is multi-threaded
  7    the process is already traced by another tracer
  8    the checkpoint failed inside the process
  9    a deadline passed (the image did not appear in time)
  10   the process exited or was killed while extckpt worked on it
  11   extckpt's bundled native files are missing (reinstall)
  12   the new image failed libckpt's own check and was not published
  126  run: the program cannot be executed
  127  run: the program was not found"""


class ExtckptError(Exception):
    """Base of every user-facing error: a message, a hint and an exit code."""

    exit_code: ExitCode = ExitCode.USAGE
    default_hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = self.default_hint if hint is None else hint

    def __str__(self) -> str:
        return self.message


class InstallError(ExtckptError):
    exit_code = ExitCode.INSTALL
    default_hint = (
        "Reinstall extckpt with `pip install .` from its source tree; the "
        "build runs `make -C native` and bundles libckpt.so and myrestart."
    )


# ---- image errors -------------------------------------------------------


class ImageError(ExtckptError):
    """The image cannot be used. ``status`` is myrestart's CKPT_EXIT_* for it."""

    exit_code = ExitCode.USAGE
    status = 10  # CKPT_EXIT_CORRUPT unless a subclass says otherwise
    default_hint = "Take a new checkpoint; this image cannot be restarted or inspected."


class ImageOpenError(ImageError):
    status = 3
    default_hint = "Check the path, or take a checkpoint first."


class ImageNotFileError(ImageError):
    status = 4
    default_hint = "Give the path of an image file, not of a directory."


class ImageEmptyError(ImageError):
    status = 5
    default_hint = "The checkpoint that wrote it was probably interrupted; take a new one."


class BadMagicError(ImageError):
    status = 6
    default_hint = "Give the path of an image written by libckpt.so."


class VersionError(ImageError):
    status = 7
    default_hint = "Use the extckpt release that wrote the image, or take a new checkpoint."


class ArchError(ImageError):
    status = 8
    default_hint = "Restart the image on the kind of machine that wrote it."


class TruncatedError(ImageError):
    status = 9
    default_hint = (
        "The file was cut short or appended to (a copy still in progress?); "
        "copy it again or take a new checkpoint."
    )


class CorruptError(ImageError):
    status = 10


class DataCorruptError(ImageError):
    status = 11


class ImageOwnerError(ImageError):
    """The image is another user's, or others may write it: it would run
    their code as the caller."""

    status = 17
    default_hint = "Restart it only if you trust who could write it: --any-owner does."


# ---- process errors -----------------------------------------------------


class ProcessError(ExtckptError):
    """Something about the target process stops us."""


class NoSuchProcessError(ProcessError):
    exit_code = ExitCode.NO_SUCH_PROCESS
    default_hint = "Check the pid with `ps`; the process may have exited."


class PermissionDeniedError(ProcessError):
    exit_code = ExitCode.PERMISSION


class NotPreloadedError(ProcessError):
    exit_code = ExitCode.NOT_PRELOADED


class MultiThreadedError(ProcessError):
    exit_code = ExitCode.MULTI_THREADED
    default_hint = (
        "extckpt checkpoints single-threaded programs only; run the program so that it starts no threads."
    )


class AlreadyTracedError(ProcessError):
    exit_code = ExitCode.ALREADY_TRACED


class CheckpointFailedError(ProcessError):
    exit_code = ExitCode.CHECKPOINT_FAILED
    default_hint = (
        "See the `libckpt:` line on the program's stderr; fix the cause "
        "(space, permissions of the image's directory) and attach again."
    )


class SelfCheckFailedError(CheckpointFailedError):
    """libckpt wrote an image that myrestart would refuse, and kept it from
    the image's path (EBADMSG from ckpt_image_done)."""

    exit_code = ExitCode.SELF_CHECK
    default_hint = (
        "The older image at the path, if any, is intact. The `libckpt:` line on the "
        "program's stderr names the check that failed: please report it with your kernel version."
    )


class DeadlineError(ProcessError):
    exit_code = ExitCode.DEADLINE


class TargetExitedError(ProcessError):
    exit_code = ExitCode.TARGET_EXITED
    default_hint = "The process is gone; start it again to checkpoint it."


# ---- run ----------------------------------------------------------------


class ProgramNotFoundError(ExtckptError):
    exit_code = ExitCode.NOT_FOUND
    default_hint = "Check the program's name and your PATH."


class ProgramNotExecutableError(ExtckptError):
    exit_code = ExitCode.NOT_EXECUTABLE
    default_hint = "Check the file's execute permission (chmod +x)."


class UsageError(ExtckptError):
    exit_code = ExitCode.USAGE
