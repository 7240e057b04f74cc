"""doppel-cli: the command-line front end over app.core.pipeline."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time

from app import __version__
from app.core.progress import Progress, ProgressUpdate, format_eta
from app.settings import KEEPER_RULES, Settings


class ProgressBar:
    """One status line on stderr: stage, count, rate, ETA and the current file."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self._last_stage = None

    def __call__(self, u: ProgressUpdate) -> None:
        if u.message and not self.tty:
            print(u.message, file=self.stream, flush=True)
        if u.total <= 0:
            line = u.message or u.stage
        else:
            width = 24
            fill = int(width * u.done / u.total)
            unit = "MB" if u.stage == "download weights" else "files" if u.stage == "embed" else ""
            done, total, rate = u.done, u.total, u.rate
            if unit == "MB":
                done, total, rate = done / 1e6, total / 1e6, rate / 1e6
            line = (f"{u.stage:7s} [{'#' * fill}{'.' * (width - fill)}] {done:.0f}/{total:.0f} {unit} "
                    f"{rate:.1f}/s ETA {format_eta(u.eta)}"
                    + (f" (scan {format_eta(u.left)})" if u.left is not None else "")
                    + f"  {os.path.basename(u.current)[:40]}")
        if u.total <= 0 and u.left is not None:
            line += f" (scan ETA {format_eta(u.left)})"
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:150])
            self.stream.flush()
        elif u.total > 0 and (u.done == u.total or u.stage != self._last_stage):
            print(line, file=self.stream, flush=True)
        self._last_stage = u.stage

    def finish(self):
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--token", help="a secured Milvus server's user:password or API key (also DOPPEL_MILVUS_TOKEN)")
    p.add_argument("--database", help="the Milvus server's database (default: the setting, else the server's default)")


def library_options(args, settings: Settings) -> dict:
    options = settings.library_options()
    if args.token:
        options["token"] = args.token
    if args.database:
        options["database"] = args.database
    return options


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="doppel-cli", description="Find duplicate and edited copies of photos.")
    p.add_argument("--version", action="version", version=f"doppel {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("scan", help="scan folders, update the library, report duplicate groups")
    s.add_argument("folders", nargs="+", metavar="FOLDER")
    s.add_argument("--library", help="Milvus Lite file (default: per-user data dir) or http://host:19530")
    s.add_argument("--json", metavar="REPORT", help="write the JSON report here ('-' for stdout)")
    server_options(s)
    s.add_argument("--similarity", type=float, default=None,
                   help="0..1: higher finds fewer, surer groups (default %(default)s → settings, 0.5)")
    s.add_argument("--weights", help="ResNet-50 weights file (also DOPPEL_WEIGHTS)")
    s.add_argument("--offline", action="store_true", help="never download model weights")
    s.add_argument("--fallback-model", action="store_true", help="use the bundled EfficientNet-Lite0 model")
    s.add_argument("--workers", type=int, default=None, help="decode processes (default: cores - 1)")
    s.add_argument("--reference", action="append", default=[], metavar="FOLDER",
                   help="files here are never suggested for the trash (repeatable)")
    s.add_argument("--keep", choices=KEEPER_RULES, default=None,
                   help="which copy to suggest keeping (default: the original; see the README)")
    s.add_argument("--select-edited", action="store_true",
                   help="preselect edited copies (crops, turns, grayscale ...) for the trash as well")
    s.add_argument("--trash-jpeg-with-raw", action="store_true",
                   help="preselect the JPEG of a RAW + JPEG pair for the trash")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    f = sub.add_parser("find", help="find the copies of one photo in the library (the photo need not be in it)")
    f.add_argument("photo", metavar="PHOTO")
    f.add_argument("--library", help="Milvus Lite file (default: per-user data dir) or http://host:19530")
    f.add_argument("--json", metavar="REPORT", help="write the JSON report here ('-' for stdout)")
    server_options(f)
    f.add_argument("--similarity", type=float, default=None, help="0..1, as for scan (default: settings, 0.5)")
    f.add_argument("--weights", help="ResNet-50 weights file (also DOPPEL_WEIGHTS)")
    f.add_argument("--offline", action="store_true", help="never download model weights")
    f.add_argument("--fallback-model", action="store_true", help="use the bundled EfficientNet-Lite0 model")
    sub.add_parser("journal", help="list the files Doppel moved to the trash")
    r = sub.add_parser("restore", help="move trashed files back to where they were")
    r.add_argument("paths", nargs="*", metavar="PATH", help="original paths to restore (see 'journal')")
    r.add_argument("--all", action="store_true", help="restore every file still in the trash")
    return p


def notice(text: str) -> None:
    print(f"Notice: {text}", file=sys.stderr)


def cmd_scan(args) -> int:
    from app.core import report, session
    from app.core.library import LibraryError
    from app.core.model import WeightsError
    from app.core.pipeline import scan

    settings = Settings.load()
    similarity = args.similarity if args.similarity is not None else settings.similarity
    settings.keeper_rule = args.keep or settings.keeper_rule
    settings.select_edited = settings.select_edited or args.select_edited
    settings.trash_jpeg_with_raw = settings.trash_jpeg_with_raw or args.trash_jpeg_with_raw
    bar = None if args.quiet else ProgressBar()
    progress = Progress(bar)
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum, frame):
        if progress.cancelled:  # second Ctrl-C: the user really wants out
            raise KeyboardInterrupt
        print("\nStopping after the current batch (Ctrl-C again to abort)...", file=sys.stderr, flush=True)
        progress.cancel()

    signal.signal(signal.SIGINT, on_sigint)
    try:
        for f in args.folders:
            if not os.path.isdir(f):
                print(f"doppel-cli: not a folder: {f}", file=sys.stderr)
                return 2
        try:
            with session.opened(args.library or settings.library_location(), progress, "doppel-cli scan", notice,
                                args.weights or settings.weights, settings.allow_download and not args.offline,
                                args.fallback_model, library_options(args, settings)) as (embedder, lib):
                result = scan(args.folders, lib, embedder, progress, similarity=similarity, workers=args.workers,
                              review=settings.review(args.reference),
                              keep_signatures=False)  # the command line never regroups
        except WeightsError as exc:
            print(f"doppel-cli: {exc}", file=sys.stderr)
            return 2
        except session.DownloadCancelled:
            if bar:
                bar.finish()
            print("doppel-cli: cancelled while the ResNet-50 weights were downloading; nothing was scanned. "
                  "The download is offered again next time.", file=sys.stderr)
            return 130
        except LibraryError as exc:
            if bar:
                bar.finish()
            print(f"doppel-cli: {exc}", file=sys.stderr)
            return 3
        if bar:
            bar.finish()
        if args.json == "-":
            import json
            print(json.dumps(report.to_dict(result), indent=1, ensure_ascii=False))
        else:
            if args.json:
                report.write(result, args.json)
            print(report.summary(result))
            if args.json:
                print(f"Report written to {args.json}")
        return 130 if result.stats.cancelled else 0
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_find(args) -> int:
    import json

    from app.core import find, session
    from app.core.library import LibraryError
    from app.core.model import WeightsError

    settings = Settings.load()
    similarity = settings.similarity if args.similarity is None else args.similarity
    if not os.path.isfile(args.photo):
        print(f"doppel-cli: not a file: {args.photo}", file=sys.stderr)
        return 2
    location = args.library or settings.library_location()
    try:
        with session.opened(location, Progress(ProgressBar()), "doppel-cli find", notice,
                            args.weights or settings.weights, settings.allow_download and not args.offline,
                            args.fallback_model, library_options(args, settings)) as (embedder, lib):
            if lib.count() == 0:
                print(f"doppel-cli: the library {location} holds no photos read with {embedder.name}; "
                      f"scan your folders first", file=sys.stderr)
                return 3
            result = find.find_copies(args.photo, lib, embedder, similarity)
    except WeightsError as exc:
        print(f"doppel-cli: {exc}", file=sys.stderr)
        return 2
    except LibraryError as exc:
        print(f"doppel-cli: {exc}", file=sys.stderr)
        return 3
    if args.json:
        text = json.dumps(find.to_dict(result), indent=1, ensure_ascii=False)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w", encoding="utf-8") as fh:
                fh.write(text)
    if result.problem:
        print(f"doppel-cli: {result.photo}: {result.problem}", file=sys.stderr)
        return 1
    if args.json != "-":
        print(f"{len(result.copies)} copies of {result.photo} in {location} "
              f"({result.candidates} neighbours checked, model {result.model}):")
        for c in result.copies:
            print(f"  {c.score:.0%}  {c.how:10s} {c.row.width} x {c.row.height}  {c.row.path}")
        if args.json:
            print(f"Report written to {args.json}")
    return 0


def cmd_journal(args) -> int:
    from app import paths
    from app.core.trash import Journal

    journal = Journal(paths.journal_path())
    entries = journal.entries()
    if not entries:
        print(f"Nothing trashed yet (journal: {journal.path}).")
        return 0
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.time))
        print(f"{when}  {e.action:8s}  {e.size:>12,d} B  {e.path}")
    print(f"{len(journal.trashed_now())} file(s) still in the trash; journal: {journal.path}")
    return 0


def cmd_restore(args) -> int:
    from app import paths
    from app.core.trash import Journal, restore

    journal = Journal(paths.journal_path())
    candidates = journal.trashed_now()
    if not args.all:
        wanted = {os.path.abspath(p) for p in args.paths}
        if not wanted:
            print("doppel-cli: name the paths to restore, or --all", file=sys.stderr)
            return 2
        missing = wanted - {e.path for e in candidates}
        for p in sorted(missing):
            print(f"not in the journal as trashed: {p}", file=sys.stderr)
        candidates = [e for e in candidates if e.path in wanted]
    failures = 0
    for e in candidates:
        why = restore(e, journal)
        if why:
            failures += 1
            print(f"could not restore {e.path}: {why}", file=sys.stderr)
        else:
            print(f"restored {e.path}")
    return 1 if failures else 0


def main(argv=None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.command == "scan":
        return cmd_scan(args)
    if args.command == "find":
        return cmd_find(args)
    if args.command == "journal":
        return cmd_journal(args)
    if args.command == "restore":
        return cmd_restore(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
