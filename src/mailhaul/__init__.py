"""mailhaul: retrieve mail from POP3 and IMAP accounts into local mailboxes."""

__version__ = "0.1.0"
