# SPDX-License-Identifier: GPL-2.0-or-later
"""The ``extckpt`` command: a thin click layer over the API.

Each command parses its options, calls one API function and formats the
result: text for people, ``--json`` for scripts. An ``ExtckptError`` becomes
``extckpt: <message>`` plus its hint on stderr and its exit code; any other
exception is a bug and shows its traceback.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from . import __version__
from .attach import AttachResult
from .attach import attach as api_attach
from .check import CheckResult
from .check import check as api_check
from .errors import EXIT_CODE_HELP, ExitCode, ExtckptError, UsageError
from .launch import parse_duration
from .launch import restart as api_restart
from .launch import resume as api_resume
from .launch import run as api_run
from .ps import PsResult
from .ps import ps as api_ps
from .show import FdInfo, ImageInfo, ProcInfo
from .show import show as api_show
from .verify import VerifyResult
from .verify import verify as api_verify

PROGRESS_MIN = 256 << 20  # show a progress bar for images larger than this


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError


def _json_default(o: Any) -> Any:
    if dataclasses.is_dataclass(o):
        return dataclasses.asdict(o)
    raise TypeError(type(o).__name__)


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, default=_json_default, indent=2))


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, handled as Ctrl-C is: every `finally` runs, so a
    process we hold is released before we exit."""

    def __init__(self, signo: int) -> None:
        super().__init__(signo)
        self.signo = signo


def _terminated(signo: int, _frame: Any) -> None:
    raise Terminated(signo)


def handle_errors(
    error_exit: Callable[[ExtckptError], int] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn ExtckptError into a message, a hint and an exit code."""

    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return f(*args, **kwargs)
            except ExtckptError as e:
                code = error_exit(e) if error_exit else int(e.exit_code)
                if kwargs.get("as_json"):
                    emit_json(
                        {
                            "error": e.message,
                            "hint": e.hint,
                            "kind": type(e).__name__,
                            "exit_code": code,
                        }
                    )
                click.echo(f"extckpt: {e.message}", err=True)
                if e.hint:
                    click.echo(f"  {e.hint}", err=True)
                sys.exit(code)
            except KeyboardInterrupt as e:
                signo = e.signo if isinstance(e, Terminated) else signal.SIGINT
                click.echo(f"extckpt: interrupted by {signal.Signals(signo).name}", err=True)
                sys.exit(128 + signo)

        return wrapper

    return deco


class _Progress:
    """A click progress bar on a terminal, created at the first report once
    the total is known and large enough to be worth it."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total < PROGRESS_MIN:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=total, label="comparing", file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _progress() -> _Progress:
    return _Progress(sys.stderr.isatty())


# ---- the group -----------------------------------------------------------


@click.group(
    help=f"""Checkpoint and restart unmodified single-threaded Linux x86-64 programs.

\b
Examples: start a program so that it can be checkpointed, checkpoint it
from outside (the image is checked against the live process), look at the
image, restart it later:
\b
  extckpt run --image ~/ckpt/prog.ckpt -- ./prog arg1
  extckpt attach PID            # writes ~/ckpt/prog.ckpt, verifies it
  extckpt show ~/ckpt/prog.ckpt
  extckpt restart ~/ckpt/prog.ckpt
\b
Keep images in a directory of your own (mkdir -m 700 ~/ckpt), not /tmp: an
image holds all of the program's memory, and whoever can write it runs code
as you when you restart it.

{EXIT_CODE_HELP}
""",
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="extckpt")
def main() -> None:
    # `run` and `restart` exec: the kernel resets caught signals for PROG.
    for signo in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signo, _terminated)


# ---- run -----------------------------------------------------------------


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    help=f"""Run PROG so that it can be checkpointed.

\b
Replaces extckpt with PROG (same pid, same terminal), with the bundled
libckpt.so first in LD_PRELOAD, CKPT_IMAGE set to the image's absolute path
and CKPT_SIGNAL to the trigger signal. Then `extckpt attach PID`, or
`kill -USR2 PID`, writes the image.
\b
With --resume (start or resume, for job scripts): when the image file
exists, check it (every checksum, and that PROG made it) and restart it as
`extckpt restart` does; when there is none, start PROG. A file there that
cannot be resumed is an error (exit 2), never a fresh start. Files
IMAGE.tmp.PID left by an interrupted checkpoint are removed.
With --every, it also checkpoints itself every DURATION.
\b
Examples:
  extckpt run --image ~/ckpt/counter.ckpt -- ./counter 100
  extckpt run --every 10m --image ~/ckpt/counter.ckpt -- ./counter 100
  CKPT_EXIT_AFTER=1 extckpt run --resume --image ~/ckpt/job.ckpt -- ./counter 100

{EXIT_CODE_HELP}
""",
)
@click.option(
    "--image",
    metavar="PATH",
    help="Where to write the image [default: $CKPT_IMAGE or ./myckpt].",
)
@click.option(
    "--signal",
    "signame",
    metavar="SIG",
    help="Trigger signal: a number, USR1, SIGUSR2, RTMIN+3 ... [default: USR2].",
)
@click.option(
    "--every",
    metavar="DURATION",
    help="Also checkpoint every DURATION (30s, 10m, 2h), counted from the end of the "
    "previous checkpoint (CKPT_INTERVAL).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Restart the image at --image if there is one, else start PROG.",
)
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- PROG [ARGS]...")
@handle_errors()
def run(
    image: str | None, signame: str | None, every: str | None, resume: bool, argv: tuple[str, ...]
) -> None:
    interval = parse_duration(every) if every else None
    if resume:
        api_resume(list(argv), image=image, signal=signame, every=interval)
    api_run(list(argv), image=image, signal=signame, every=interval)


# ---- attach --------------------------------------------------------------


def _verify_lines(v: VerifyResult) -> list[str]:
    lines = []
    for r in v.differing:
        if r.status == "missing":
            what = "missing (in the image, not mapped now)"
        else:
            offs = ", ".join(f"+{o:#x}" for o in r.first_offsets)
            what = f"{r.pages_differ} pages differ (first at {offs})"
        notes = f"  [{'; '.join(r.notes)}]" if r.notes else ""
        lines.append(f"  {r.start:#014x}-{r.end:#014x} {r.perms} {r.name}: {what}{notes}")
    for x in v.extra:
        lines.append(
            f"  {x.start:#014x}-{x.end:#014x} {x.perms} {x.name}: extra (mapped now, not in the image)"
        )
    return lines


def _expected_lines(v: VerifyResult) -> list[str]:
    return [
        f"  {r.start:#014x}-{r.end:#014x} {r.perms} {r.name}: {r.expected_pages} pages, {r.reason}"
        for r in v.expected
    ]


def print_verify(v: VerifyResult) -> None:
    verdict = "agrees" if v.agrees else "DIFFERS"
    click.echo(
        f"verify:  {verdict} ({human(v.compared_bytes)} compared in {v.seconds:.3f} s, "
        f"{len(v.regions)} regions)"
    )
    diff = _verify_lines(v)
    if diff:
        click.echo("differences:")
        for line in diff:
            click.echo(line)
    exp = _expected_lines(v)
    if exp:
        click.echo("expected by design (not counted):")
        for line in exp:
            click.echo(line)


@main.command(
    help=f"""Checkpoint the running process PID and wait for its image.

\b
PID must have been started with `extckpt run` (or LD_PRELOAD=libckpt.so),
be single-threaded and not traced. extckpt holds it with ptrace (no stray
SIGSTOP), sends the trigger signal from the process's CKPT_SIGNAL (default
SIGUSR2) and follows its system calls until libckpt's marker call says the
image at its CKPT_IMAGE (default <cwd>/myckpt) is complete. While the
process is still held it compares the image with its memory (--verify),
then lets it go on (or, once the new image's every checksum is checked,
kills it with --kill). On any error, Ctrl-C, SIGTERM or SIGHUP the process
is released as it was; if extckpt is killed, the kernel releases it and it
runs on.
\b
Examples:
  extckpt attach 4242
  extckpt attach --kill --json 4242

{EXIT_CODE_HELP}
""",
)
@click.argument("pid", type=int)
@click.option(
    "--image-wait",
    type=float,
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="Give up if the image is not complete after this long.",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Compare the image with the process while it is held.",
)
@click.option("--kill", is_flag=True, help="Kill the process once its image is complete.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors()
def attach(pid: int, image_wait: float, verify: bool, kill: bool, as_json: bool) -> None:
    bar = _progress() if not as_json else _Progress(False)
    try:
        r: AttachResult = api_attach(pid, image_wait=image_wait, verify=verify, kill=kill, progress=bar)
    finally:
        bar.close()
    if as_json:
        emit_json(r)
    else:
        click.echo(f"checkpointed process {r.pid} with {r.signal} in {r.seconds:.3f} s")
        click.echo(f"image:   {r.image}")
        click.echo(
            f"size:    {human(r.image_size)}, {r.regions} regions, {human(r.stored_bytes)} of memory stored"
        )
        if r.verify is not None:
            print_verify(r.verify)
        if r.killed:
            click.echo(f"process {r.pid} killed")
        elif r.was_stopped:
            click.echo(f"process {r.pid} left stopped, as it was")
    if r.verify is not None and not r.verify.agrees:
        sys.exit(ExitCode.DIFFERS)


# ---- verify --------------------------------------------------------------


@main.command(
    help="""Compare IMAGE with the memory of the running process PID.

\b
Holds the process with ptrace while comparing (released afterwards), reads
its memory through /proc/PID/mem and reports, per region: match, N pages
differ (with the first offsets), missing (in the image, not mapped now) or
extra (mapped now, not in the image). Pages the image does not store must
read as zeros (anonymous memory) or as the file (private file mappings).
Differences expected by design are listed apart, with their reason: the
writable data of libckpt.so and the stack below the interrupted rsp.
\b
Example:
  extckpt verify ~/ckpt/prog.ckpt 4242

\b
Exit codes:
  0  the image agrees with the process
  1  they differ
  2  error: bad image, no such process, no permission ... (see the message)
""",
)
@click.argument("image", type=click.Path(dir_okay=True))
@click.argument("pid", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors(lambda e: int(ExitCode.USAGE))
def verify(image: str, pid: int, as_json: bool) -> None:
    bar = _progress() if not as_json else _Progress(False)
    try:
        v = api_verify(image, pid, progress=bar)
    finally:
        bar.close()
    if as_json:
        emit_json({**dataclasses.asdict(v), "agrees": v.agrees})
    else:
        click.echo(f"image:   {v.image}")
        click.echo(f"process: {v.pid}")
        print_verify(v)
    sys.exit(ExitCode.OK if v.agrees else ExitCode.DIFFERS)


# ---- restart -------------------------------------------------------------


@main.command(
    context_settings={"ignore_unknown_options": True},
    help=f"""Restart the program saved in IMAGE, in place of extckpt.

\b
Checks the whole image first (header, tables, every region's checksum) so
that a bad image gets a clear message, then replaces extckpt with the
bundled myrestart. The restored program continues with this pid; its open
files are reopened at their numbers and offsets (a deleted one recreated
from the image), and terminals, pipes and sockets among its fds 0-2 become
this process's: a program that wrote to a terminal writes to this one.
Other myrestart options are passed on as they are, before or after IMAGE
(the last argument that is not an option is the image).
\b
Examples:
  extckpt restart ~/ckpt/prog.ckpt
  extckpt restart --keep-stdio -v ~/ckpt/prog.ckpt

{EXIT_CODE_HELP}
\b
Once myrestart runs, its own exit statuses apply (CKPT_EXIT_* in
ckpt_image.h: 3-15 for a bad image, a changed file or a failed restore).
""",
)
@click.argument("args", nargs=-1, required=True, type=click.UNPROCESSED, metavar="IMAGE")
@click.option("-v", "--verbose", is_flag=True, help="myrestart says what it restores.")
@click.option(
    "--keep-stdio",
    is_flag=True,
    help="Give the program this process's fds 0, 1 and 2 whatever they were "
    "(a program whose output went to a file then writes here).",
)
@click.option(
    "--force-files",
    is_flag=True,
    help="Go on when a file the program had open was replaced or cut below its offset.",
)
@click.option(
    "--copy",
    is_flag=True,
    help="Accepted and ignored, for old scripts: every restart reads all memory into place, "
    "and the restarted program no longer uses the image file.",
)
@click.option(
    "--any-owner",
    is_flag=True,
    help="Restart an image that is not yours (root's, for root) or that group or others "
    "may write; it runs as you.",
)
@handle_errors()
def restart(
    args: tuple[str, ...], *, verbose: bool, keep_stdio: bool, force_files: bool, copy: bool, any_owner: bool
) -> None:
    positional = [i for i, a in enumerate(args) if not a.startswith("-")]
    if not positional:
        raise UsageError("no image to restart", "Example: extckpt restart ~/ckpt/prog.ckpt")
    image = args[positional[-1]]
    options = [
        flag
        for flag, on in (
            ("-v", verbose),
            ("--keep-stdio", keep_stdio),
            ("--force-files", force_files),
            ("--copy", copy),
        )
        if on
    ]
    options += [a for i, a in enumerate(args) if i != positional[-1]]
    api_restart(image, options, any_owner=any_owner)


# ---- show ----------------------------------------------------------------


def _time(ns: int) -> str:
    t = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _limit_text(v: int | None, unit: str) -> str:
    if v is None:
        return "unlimited"
    if unit == "bytes":
        return human(v)
    return f"{v} {unit}" if unit else str(v)


def _usec(us: int) -> str:
    return f"{us / 1000:.3f} ms" if us < 1_000_000 else f"{us / 1e6:.3f} s"


def _proc_lines(p: ProcInfo) -> list[str]:
    lines = [
        f"name:      {p.comm}",
        f"cwd:       {p.cwd}",
        f"umask:     {p.umask_octal}",
    ]
    limited = p.limited
    if limited:
        lines.append("rlimits:   (the ones not unlimited)")
        for r in limited:
            soft, hard = _limit_text(r.soft, r.unit), _limit_text(r.hard, r.unit)
            lines.append(f"  {r.resource:<11} soft {soft:<14} hard {hard}")
    else:
        lines.append("rlimits:   all unlimited")
    armed = p.armed_itimers
    if armed:
        lines.append("itimers:")
        for t in armed:
            then = f"then every {_usec(t.interval_us)}" if t.interval_us else "once"
            lines.append(f"  {t.timer:<11} next in {_usec(t.value_us)}, {then}")
    else:
        lines.append("itimers:   none armed")
    lines.append(
        f"prctl:     dumpable {p.dumpable}, no_new_privs {p.no_new_privs}, thp_disable {p.thp_disable}, "
        f"child_subreaper {p.child_subreaper}, timerslack {p.timerslack_ns} ns"
    )
    lines.append(f"oom:       oom_score_adj {p.oom_score_adj}")
    if p.membarrier:
        lines.append(f"membarrier: registered commands {p.membarrier:#x}")
    return lines


def _fd_lines(fds: list[FdInfo]) -> list[str]:
    if not fds:
        return ["files:     none open"]
    width = max(len("|".join(f.flag_names)) for f in fds)
    lines = [
        f"files:     {len(fds)} open",
        f"  {'FD':>4} {'TYPE':<6} {'FLAGS':<{width}} {'OFFSET':>10} {'CLOEXEC':<7} PATH",
    ]
    for f in fds:
        notes = []
        if f.deleted:
            notes.append(f"deleted, {f.saved_bytes} bytes saved")
            if f.checksum == "BAD":
                notes.append("checksum BAD")
        elif f.type in ("pipe", "socket", "other"):
            notes.append("not restorable")
        note = f"  ({'; '.join(notes)})" if notes else ""
        # The kernel's " (deleted)" suffix would say it twice.
        path = f.path.removesuffix(" (deleted)") if f.deleted else f.path
        lines.append(
            f"  {f.fd:>4} {f.type:<6} {'|'.join(f.flag_names):<{width}} {f.offset:>10} "
            f"{'yes' if f.cloexec else 'no':<7} {path}{note}"
        )
    return lines


def print_show(info: ImageInfo) -> None:
    regs = info.registers
    click.echo(f"image:     {info.path} ({human(info.size)}, format version {info.format_version})")
    click.echo(f"created:   {_time(info.created_ns)}")
    click.echo(f"process:   pid {info.pid}, {info.exe}")
    if info.proc is not None:
        for line in _proc_lines(info.proc):
            click.echo(line)
    click.echo(f"signal:    {info.signal}")
    click.echo(f"registers: rip {regs['rip']:#x}  rsp {regs['rsp']:#x}  fs_base {info.fs_base:#x}")
    if info.handlers:
        click.echo("handlers:")
        for h in info.handlers:
            flags = "|".join(h.flags) or "-"
            click.echo(f"  {h.signal:<12} {h.handler:<16} {flags}")
    else:
        click.echo("handlers:  none besides the defaults")
    if info.rseq["addr"]:
        click.echo(f"rseq:      {info.rseq['addr']:#x} len {info.rseq['len']} sig {info.rseq['sig']:#x}")
    else:
        click.echo("rseq:      none registered")
    click.echo(f"brk:       start {info.brk['start_brk']:#x}  end {info.brk['brk']:#x}")
    for line in _fd_lines(info.fds):
        click.echo(line)
    for t in info.timers:
        armed = (
            f"{t.value_ns / 1e9:.3f} s left, every {t.interval_ns / 1e9:.3f} s"
            if t.value_ns and t.interval_ns
            else f"{t.value_ns / 1e9:.3f} s left"
            if t.value_ns
            else "disarmed"
        )
        what = f"notify {t.notify} {t.signal} value {t.sigval:#x}"
        click.echo(f"timer:     id {t.id} {t.clock}, {what}; {armed}")
    if info.pending_signals:
        click.echo("pending:   " + ", ".join(f"{p.signal} (value {p.value})" for p in info.pending_signals))
    if info.checked:
        bad = len(info.bad_regions)
        state = "all checksums ok" if not bad else f"{bad} regions fail their checksum"
    else:
        state = "checksums not checked"
    click.echo(
        f"regions:   {len(info.regions)}, {human(info.stored_bytes)} stored of "
        f"{human(info.mapped_bytes)} mapped; {state}"
    )
    click.echo("")
    vmw = max([len("VMFLAGS")] + [len(",".join(r.vmflags)) for r in info.regions])
    click.echo(
        f"{'START':>14}-{'END':<14} {'PERM':4} {'KIND':<11} {'STORED':>10} {'MAPPED':>10} {'SUM':<9} "
        f"{'VMFLAGS':<{vmw}} NAME"
    )
    for r in info.regions:
        name = r.name + (f" ({', '.join(r.flags)})" if r.flags else "")
        vm = ",".join(r.vmflags) or "-"
        click.echo(
            f"{r.start:#014x}-{r.end:#014x} {r.perms:4} {r.kind:<11} {human(r.stored_bytes):>10} "
            f"{human(r.mapped_bytes):>10} {r.checksum:<9} {vm:<{vmw}} {name}"
        )


@main.command(
    short_help="Show what an image holds, as a readable memory map.",
    help=f"""Show what IMAGE holds: when and from which process it was taken,
the process's name, directory, umask, resource limits (those not
unlimited), armed interval timers and prctl settings, its registers,
signal handlers, rseq and brk, its open files (type, open flags, offset,
close-on-exec; deleted files with their saved size), and its regions as a
memory map with bytes stored against bytes mapped, each region's checksum
state (ok, BAD or unchecked) and its vmflags (noreserve, locked,
dontfork...). --json has all of it, every rlimit and timer included.
\b
Examples:
  extckpt show ~/ckpt/prog.ckpt
  extckpt show --no-check --json ~/ckpt/prog.ckpt

{EXIT_CODE_HELP}
\b
show exits 2 when a region or a deleted file's saved contents fail their
checksum (after printing everything).
""",
)
@click.argument("image", type=click.Path(dir_okay=True))
@click.option(
    "--check/--no-check",
    default=True,
    show_default=True,
    help="Verify every region's checksum (reads all stored bytes).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors()
def show(image: str, check: bool, as_json: bool) -> None:
    info = api_show(image, check=check)
    if as_json:
        emit_json(info)
    else:
        print_show(info)
    if info.bad_regions or info.bad_fds:
        if info.bad_regions:
            r = info.bad_regions[0]
            what = f"region {r.start:#x}-{r.end:#x} ({r.name}) fails its checksum"
        else:
            what = f"the saved contents of deleted file fd {info.bad_fds[0].fd} fail their checksum"
        click.echo(f"extckpt: the image's data is corrupted: {what}", err=True)
        click.echo("  Take a new checkpoint; this image cannot be restarted.", err=True)
        sys.exit(ExitCode.USAGE)


# ---- check ---------------------------------------------------------------


@main.command(
    name="check",
    help="""Tell whether this machine can checkpoint and restart, and what is missing.

\b
Asks the kernel for each feature extckpt uses (PAGEMAP_SCAN, PR_SET_MM_MAP,
the vDSO layout; and, for the features that only warn: clone3 set_tid with
CAP_CHECKPOINT_RESTORE for the original pid, rseq, POSIX timer ids, ptrace
for `extckpt attach`, vm.max_map_count), then checkpoints and restarts a
real program (/bin/sh waiting in `read`) as its last check.
\b
Examples:
  extckpt check
  extckpt check --json

\b
Exit codes:
  0  everything the default path needs is there (warnings may remain)
  1  something it needs is missing (see the lines marked MISSING)
""",
)
@click.option("--no-round-trip", is_flag=True, help="Skip the real checkpoint and restart.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors()
def check_cmd(no_round_trip: bool, as_json: bool) -> None:
    r: CheckResult = api_check(round_trip=not no_round_trip)
    if as_json:
        emit_json({"ok": r.ok, "probes": r.probes})
    else:
        width = max(len(p.name) for p in r.probes)
        for p in r.probes:
            mark = "ok" if p.ok else ("MISSING" if p.required else "warning")
            click.echo(f"{p.name:<{width}}  {mark:<7}  {p.detail}")
            if not p.ok and p.hint:
                click.echo(f"{'':<{width}}           {p.hint}")
        verdict = "can checkpoint and restart" if r.ok else "cannot checkpoint and restart"
        click.echo(f"this machine {verdict}")
    sys.exit(ExitCode.OK if r.ok else 1)


# ---- ps ------------------------------------------------------------------


@main.command(
    name="ps",
    help="""List the running processes that can be checkpointed.

\b
A process is listed when libckpt.so is loaded into it (started with
`extckpt run` or LD_PRELOAD). For each: pid, program, the image its next
checkpoint writes (CKPT_IMAGE), its trigger signal (CKPT_SIGNAL), and the
time and size of that image if it exists. Processes of other users are
counted, not listed.
\b
Examples:
  extckpt ps
  extckpt ps --json
""",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handle_errors()
def ps_cmd(as_json: bool) -> None:
    r: PsResult = api_ps()
    if as_json:
        emit_json(r)
        return
    if not r.processes:
        click.echo("no process has libckpt.so loaded")
    else:
        click.echo(f"{'PID':>7}  {'SIGNAL':<8} {'LAST IMAGE':<30} {'PROGRAM':<24} IMAGE")
        for p in r.processes:
            if p.image_mtime is None:
                last = "none yet"
            else:
                when = datetime.datetime.fromtimestamp(p.image_mtime).strftime("%Y-%m-%d %H:%M:%S")
                last = f"{when}, {human(p.image_size or 0)}"
            click.echo(f"{p.pid:>7}  {p.signal:<8} {last:<30} {os.path.basename(p.program):<24} {p.image}")
    if r.unreadable:
        s = "" if r.unreadable == 1 else "es"
        click.echo(f"({r.unreadable} process{s} whose /proc files this user may not read: not listed)")


if __name__ == "__main__":
    main(prog_name="extckpt")
