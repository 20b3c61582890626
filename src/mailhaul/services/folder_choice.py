"""Which folders a run polls and where each one's mail lands: the account's folder rules
(``domain/folders.py``) applied to what the server lists.

The server's folders are listed only when the answer matters: for ``--all-folders`` (every
poll, so new folders are picked up and vanished ones stop being polled; their records stay),
and for a fixed list with folders besides INBOX when the delivery files into folders (their
hierarchy separator and special use decide the local names). An INBOX-only account, or one
whose delivery cannot file into folders, polls as it always did, without a LIST.
"""

from __future__ import annotations

from mailhaul.domain.folders import INBOX, RemoteFolder, chosen, named
from mailhaul.services.poll_run import PollRun

MAX_LOGGED = 20  # folders the run log names one by one


def folders_of(run: PollRun) -> list[tuple[str, str | None]]:
    """(remote folder, local folder or None for the mailbox itself), in polling order."""
    options = run.options
    rules = options.rules
    files = run.deps.sink.files_folders(run.destination)
    others = any(name.upper() != INBOX for name in options.folders)
    remote: list[RemoteFolder]
    if rules.all_folders:
        listed = run.source.list_mailboxes()
        remote = chosen(listed, rules)
        run.log(f"all folders: {len(remote)} of the {len(listed)} the server lists")
    elif files and others:
        remote = named(options.folders, run.source.list_mailboxes())
    else:
        remote = named(options.folders, [])
    if options.move_to:  # never poll what mail is moved into: it would come back as new
        remote = [folder for folder in remote if folder.name != options.move_to]
    pairs = [(folder.name, rules.local_for(folder, files)) for folder in remote]
    moved = [f"{name} -> {local}" for name, local in pairs if local]
    if moved:
        shown = ", ".join(moved[:MAX_LOGGED])
        more = f" and {len(moved) - MAX_LOGGED} more" if len(moved) > MAX_LOGGED else ""
        run.log(f"local folders: {shown}{more}")
    return pairs
